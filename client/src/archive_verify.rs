//! `stamp verify --archive FILE.tar`: every token of an export (`tsa archive export`) verified
//! in parallel against the manifest: the token parses, its file name is its serial, the
//! manifest lists it with the imprint, genTime (to the millisecond) and policy the token
//! carries, and the token verifies (signature,
//! ESSCertID, certificate path to `--trust` at genTime, every check a single token gets). A
//! manifest row without its token, or a token without its row, is a failure too.
//!
//! Two passes over the tar: the manifest (at the end of the export) first, then the tokens in
//! batches, each batch verified on every core; memory holds the manifest and one batch.

use pki::token::{ParsedToken, VerifyOptions};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// Tokens verified in parallel at a time, and the most bytes a batch holds (a hostile tar of
/// 1 MiB entries must not take gigabytes).
const BATCH: usize = 4096;
const BATCH_BYTES: usize = 64 << 20;
/// Largest token read from an export (a token with a long chain is a few KiB).
const MAX_TOKEN: u64 = 1 << 20;
/// Largest manifest read (a million rows are about 200 MB).
const MAX_MANIFEST: u64 = 1 << 30;

/// One manifest row: what the archive said about a token.
#[derive(Clone, Debug)]
struct Row {
    imprint: Vec<u8>,
    /// genTime, ms since the epoch (the manifest's RFC 3339 with milliseconds).
    gen_time_ms: i64,
    /// Policy OID, dotted.
    policy: String,
    seen: bool,
}

/// The outcome of one archive.
#[derive(Debug, Default, serde::Serialize)]
pub struct Summary {
    /// Tokens in the tar.
    pub tokens: usize,
    /// Tokens that verified.
    pub verified: usize,
    /// What failed: serial (or file name) and why, in tar order.
    pub failures: Vec<(String, String)>,
}

fn open(path: &Path) -> anyhow::Result<tar::Archive<std::io::BufReader<std::fs::File>>> {
    let f = std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    Ok(tar::Archive::new(std::io::BufReader::new(f)))
}

fn read_manifest(path: &Path) -> anyhow::Result<HashMap<String, Row>> {
    let mut tar = open(path)?;
    for entry in tar.entries()? {
        let entry = entry?;
        if entry.path()?.as_os_str() != "manifest.csv" {
            continue;
        }
        let mut text = String::new();
        let size = entry.header().size().unwrap_or(0);
        if size > MAX_MANIFEST {
            anyhow::bail!("manifest.csv is {size} bytes, more than {MAX_MANIFEST} are read");
        }
        entry.take(MAX_MANIFEST).read_to_string(&mut text)?;
        let mut rows = HashMap::new();
        for (n, line) in text.lines().enumerate().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            let (Some(serial), Some(gen_time), Some(policy), Some(imprint)) =
                (f.first(), f.get(1), f.get(2), f.get(4))
            else {
                anyhow::bail!("manifest.csv line {}: too few fields", n + 1);
            };
            let gen_time_ms = time::OffsetDateTime::parse(
                gen_time,
                &time::format_description::well_known::Rfc3339,
            )
            .map(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX))
            .map_err(|e| anyhow::anyhow!("manifest.csv line {}: genTime: {e}", n + 1))?;
            let imprint = hex::decode(imprint)
                .map_err(|e| anyhow::anyhow!("manifest.csv line {}: imprint: {e}", n + 1))?;
            let previous = rows.insert(
                (*serial).to_owned(),
                Row {
                    imprint,
                    gen_time_ms,
                    policy: (*policy).to_owned(),
                    seen: false,
                },
            );
            if previous.is_some() {
                anyhow::bail!(
                    "manifest.csv line {}: serial {serial} is listed twice",
                    n + 1
                );
            }
        }
        return Ok(rows);
    }
    anyhow::bail!(
        "{} has no manifest.csv: is it an export of `tsa archive export`?",
        path.display()
    )
}

fn check(name: &str, der: &[u8], row: Option<&Row>, opts: &VerifyOptions) -> Result<(), String> {
    let stem = name
        .strip_suffix(".tst")
        .ok_or_else(|| format!("{name}: not a .tst file"))?;
    let token = ParsedToken::parse(der).map_err(|e| format!("not a token: {e}"))?;
    let serial = token
        .info()
        .serial_hex
        .trim_start_matches('0')
        .to_lowercase();
    let serial = if serial.is_empty() {
        "0".into()
    } else {
        serial
    };
    if serial != stem {
        return Err(format!(
            "the token's serial is {serial}, its file name says {stem}"
        ));
    }
    let row = row.ok_or("not listed in manifest.csv")?;
    if token.imprint() != row.imprint.as_slice() {
        return Err("its imprint differs from the manifest's".into());
    }
    if token.gen_time().to_unix_millis() != row.gen_time_ms {
        return Err("its genTime differs from the manifest's".into());
    }
    let policy = token.info().policy;
    if policy != row.policy {
        return Err(format!(
            "its policy {policy} differs from the manifest's {}",
            row.policy
        ));
    }
    let report = pki::token::verify(&token, Some(&row.imprint), opts);
    if report.verified {
        Ok(())
    } else {
        Err(report
            .failures()
            .iter()
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect::<Vec<_>>()
            .join("; "))
    }
}

/// Verifies every token of the export at `path` with `jobs` workers; `progress` shows a bar.
pub fn verify(
    path: &Path,
    opts: &VerifyOptions,
    jobs: usize,
    progress: bool,
) -> anyhow::Result<Summary> {
    let mut manifest = read_manifest(path)?;
    let bar = if progress {
        let b = indicatif::ProgressBar::new(manifest.len() as u64);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("verifying [{bar:40}] {pos}/{len} ({per_sec})")
        {
            b.set_style(style.progress_chars("=> "));
        }
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut summary = Summary::default();
    let mut tar = open(path)?;
    let mut batch: Vec<(String, Vec<u8>)> = Vec::with_capacity(BATCH);
    let mut batch_bytes = 0usize;
    let mut names = std::collections::HashSet::new();
    let run = |batch: &mut Vec<(String, Vec<u8>)>,
               manifest: &mut HashMap<String, Row>,
               summary: &mut Summary| {
        let results = crate::pool::map(batch.len(), jobs, |i| {
            let (name, der) = &batch[i];
            let key = name.strip_suffix(".tst").unwrap_or(name);
            check(name, der, manifest.get(key), opts)
        });
        for ((name, _), r) in batch.drain(..).zip(results) {
            let key = name.strip_suffix(".tst").unwrap_or(&name).to_owned();
            if let Some(row) = manifest.get_mut(&key) {
                row.seen = true;
            }
            summary.tokens += 1;
            match r {
                Ok(()) => summary.verified += 1,
                Err(why) => summary.failures.push((key, why)),
            }
            bar.inc(1);
        }
    };
    for entry in tar.entries()? {
        let entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        if name == "manifest.csv" {
            continue;
        }
        if !names.insert(name.clone()) {
            // A second entry of one name (tar readers keep the last): counted once, failed.
            summary.tokens += 1;
            summary
                .failures
                .push((name.clone(), "the archive holds this entry twice".into()));
            continue;
        }
        let mut der = Vec::new();
        entry.take(MAX_TOKEN).read_to_end(&mut der)?;
        batch_bytes += der.len();
        batch.push((name, der));
        if batch.len() == BATCH || batch_bytes >= BATCH_BYTES {
            run(&mut batch, &mut manifest, &mut summary);
            batch_bytes = 0;
        }
    }
    run(&mut batch, &mut manifest, &mut summary);
    bar.finish_and_clear();
    let mut missing: Vec<&String> = manifest
        .iter()
        .filter(|(_, r)| !r.seen)
        .map(|(s, _)| s)
        .collect();
    missing.sort();
    for serial in missing {
        summary.failures.push((
            serial.clone(),
            "listed in manifest.csv, but its token is not in the archive".into(),
        ));
    }
    Ok(summary)
}
