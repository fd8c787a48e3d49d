//! `tsa archive export` and `tsa archive list`: the tokens of a period, or of one signing
//! certificate, out of the archive for an auditor.
//!
//! The export is a tar of DER tokens named `<serial in lower-case hex>.tst`, then
//! `manifest.csv` (serial hex, genTime RFC 3339, policy OID, hash algorithm, imprint hex,
//! signing certificate SHA-256 hex). Rows stream from the database into the tar; the manifest
//! is written beside it in a temporary file and appended at the end, so memory stays constant
//! for millions of tokens. The tar is written to a temporary file and renamed into place: a
//! failed export leaves no partial file under the name asked for.

use crate::archive::{Archive, ArchiveError, TokenFilter, TokenRecord};
use anyhow::Context;
use std::io::Write;
use std::path::Path;

/// The manifest's header line.
pub const MANIFEST_HEADER: &str =
    "serial,gen_time,policy,hash_algorithm,imprint,signer_cert_sha256\n";

/// An RFC 3339 time with milliseconds, UTC.
fn rfc3339_ms(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&fmt).unwrap_or_default()
}

/// An RFC 3339 time (or a date, meaning its midnight UTC) as ms since the epoch.
pub fn parse_time(s: &str) -> anyhow::Result<i64> {
    use time::format_description::well_known::Rfc3339;
    let t = match time::OffsetDateTime::parse(s, &Rfc3339) {
        Ok(t) => t,
        Err(_) => {
            let date =
                time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
                    .with_context(|| {
                        format!("{s:?} is neither an RFC 3339 time nor a YYYY-MM-DD date")
                    })?;
            date.midnight().assume_utc()
        }
    };
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).context("time out of range")
}

/// One manifest line.
fn manifest_line(r: &TokenRecord) -> String {
    format!(
        "{:x},{},{},{},{},{}\n",
        r.serial,
        rfc3339_ms(r.gen_time_ms),
        r.policy,
        r.hash_alg,
        hex::encode(&r.imprint),
        r.signer_cert_sha256
            .as_deref()
            .map(hex::encode)
            .unwrap_or_default()
    )
}

fn header(path: &str, size: u64, mtime: u64) -> anyhow::Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    h.set_path(path)?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(mtime);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    Ok(h)
}

/// A progress bar on a terminal, hidden otherwise.
fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

struct ExportError(anyhow::Error);

impl From<ArchiveError> for ExportError {
    fn from(e: ArchiveError) -> Self {
        ExportError(e.into())
    }
}

/// Writes the tokens matching `filter` to `out` (a tar); returns how many.
pub async fn export_tar(
    archive: &Archive,
    filter: &TokenFilter,
    out: &Path,
) -> anyhow::Result<u64> {
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let total = archive.count_matching(filter).await?;
    let bar = progress(total, "exporting");
    let tmp = tempfile::Builder::new()
        .prefix(".export-")
        .suffix(".tar")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    let mut manifest =
        tempfile::tempfile_in(dir).context("cannot create the manifest's scratch file")?;
    manifest.write_all(MANIFEST_HEADER.as_bytes())?;
    let mut builder = tar::Builder::new(std::io::BufWriter::new(tmp.reopen()?));
    let mut count = 0u64;
    let mut last_mtime = 0u64;
    archive
        .for_each_matching(filter, |r| {
            let mtime = u64::try_from(r.gen_time_ms / 1000).unwrap_or(0);
            last_mtime = last_mtime.max(mtime);
            let h = header(&format!("{:x}.tst", r.serial), r.token.len() as u64, mtime)
                .map_err(ExportError)?;
            builder
                .append(&h, r.token.as_slice())
                .map_err(|e| ExportError(e.into()))?;
            manifest
                .write_all(manifest_line(&r).as_bytes())
                .map_err(|e| ExportError(e.into()))?;
            count += 1;
            bar.inc(1);
            Ok(())
        })
        .await
        .map_err(|ExportError(e)| e)?;
    bar.finish_and_clear();
    use std::io::{Seek, SeekFrom};
    let size = manifest.seek(SeekFrom::End(0))?;
    manifest.seek(SeekFrom::Start(0))?;
    builder.append(&header("manifest.csv", size, last_mtime)?, &mut manifest)?;
    let mut inner = builder.into_inner()?;
    inner.flush()?;
    inner.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    tmp.persist(out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(count)
}

/// One listing line: `serial-hex genTime`.
pub fn list_line(r: &TokenRecord) -> String {
    format!("{:x} {}\n", r.serial, rfc3339_ms(r.gen_time_ms))
}

/// Prints `serial-hex genTime` for every token matching `filter`; returns how many.
pub async fn list(archive: &Archive, filter: &TokenFilter) -> anyhow::Result<u64> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut count = 0u64;
    archive
        .for_each_matching(filter, |r| {
            out.write_all(list_line(&r).as_bytes())
                .map_err(|e| ExportError(e.into()))?;
            count += 1;
            Ok(())
        })
        .await
        .map_err(|ExportError(e)| e)?;
    out.flush()?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_parse_as_rfc3339_or_dates_and_print_with_milliseconds() {
        assert_eq!(super::parse_time("1970-01-02").expect("date"), 86_400_000);
        assert_eq!(
            super::parse_time("2026-12-01T10:00:00.250Z").expect("time"),
            1_796_119_200_250
        );
        assert!(super::parse_time("yesterday").is_err());
        assert_eq!(
            super::rfc3339_ms(1_796_119_200_250),
            "2026-12-01T10:00:00.250Z"
        );
    }
}
