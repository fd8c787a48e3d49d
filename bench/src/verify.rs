//! Bulk verification: `stamp verify` of many files, each with its own token (tokens the server
//! has just issued, read from its SQLite archive), against `openssl ts -verify` of the same
//! tokens. Raw verification of the same key (section 2) is the limit beside both.

use crate::Settings;
use crate::keys::KeySet;
use crate::peer::PeerRate;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The content every benchmark request's imprint covers (see `load::request_der`).
const DATA: &[u8] = b"sigillum tsa-bench";

/// One timed run of a child process (`stamp verify`, `stamp file`) over `items` inputs.
#[derive(Debug, Clone, Copy)]
pub struct ChildRun {
    /// Inputs handled (tokens, files).
    pub items: u64,
    /// Wall-clock time of the run, process start included.
    pub elapsed: Duration,
    /// CPU time of the run (user + system, from this process's reaped-children counters).
    pub cpu: Option<Duration>,
}

impl ChildRun {
    /// Runs `cmd` to its end (its output captured) and times it.
    pub fn time(cmd: &mut Command, items: u64) -> std::io::Result<(ChildRun, Output)> {
        let before = children_ticks();
        let start = Instant::now();
        let out = cmd.output()?;
        let elapsed = start.elapsed();
        let cpu = children_ticks().zip(before).map(|(a, b)| {
            Duration::from_secs_f64((a - b) as f64 / crate::server::CLOCK_TICKS_PER_SEC)
        });
        Ok((
            ChildRun {
                items,
                elapsed,
                cpu,
            },
            out,
        ))
    }

    /// Inputs per second.
    pub fn per_sec(&self) -> f64 {
        self.items as f64 / self.elapsed.as_secs_f64()
    }

    /// CPU per input, in microseconds.
    pub fn cpu_us_per_item(&self) -> Option<f64> {
        self.cpu
            .map(|c| c.as_secs_f64() * 1e6 / self.items.max(1) as f64)
    }
}

/// What `stamp verify` did with the files.
#[derive(Debug, Clone, Copy)]
pub struct BulkVerify {
    /// The one `stamp verify` run (each file with its own token).
    pub run: ChildRun,
    /// `openssl ts -verify` of the same tokens, one process per token.
    pub openssl: Option<PeerRate>,
}

/// Writes `count` files with tokens from `archive` into `dir`, verifies them all with one
/// `stamp verify` (every token must verify), then runs the openssl peer on them.
pub fn measure(
    settings: &Settings,
    key: &KeySet,
    archive: &Path,
    dir: &Path,
    count: usize,
) -> Result<BulkVerify> {
    let files = write_files(archive, dir, count)?;
    settle(dir);
    let (run, out) = ChildRun::time(
        Command::new(&settings.stamp_bin)
            .arg("verify")
            .args(&files)
            .arg("--trust")
            .arg(&key.chain_file)
            .stdin(Stdio::null()),
        files.len() as u64,
    )
    .with_context(|| format!("cannot run {}", settings.stamp_bin.display()))?;
    if !out.status.success() {
        bail!(
            "stamp verify refused the server's tokens ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let openssl = match settings.openssl {
        Some(time) => match openssl_verify_rate(settings, key, &files, time) {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("tsa-bench: openssl ts -verify failed: {e:#}");
                None
            }
        },
        None => None,
    };
    Ok(BulkVerify { run, openssl })
}

/// Writes back the dirty pages of `dir`'s file system (`sync -f`, syncfs(2)) before a timed
/// run, so that the kernel's writeback of the inputs just written does not share the cores with
/// the run (an auditor's or a bank's files are at rest). Best effort: a failure only leaves the
/// figure a little lower.
pub fn settle(dir: &Path) {
    let _ = Command::new("sync").arg("-f").arg(dir).status();
}

/// `dir/f<i>.txt` holding [`DATA`] and `dir/f<i>.txt.tsr` holding the i-th token of the archive.
fn write_files(archive: &Path, dir: &Path, count: usize) -> Result<Vec<PathBuf>> {
    let out = Command::new("sqlite3")
        .arg("-batch")
        .arg(archive)
        .arg(format!(
            "SELECT hex(token) FROM tokens ORDER BY serial LIMIT {count}"
        ))
        .output()
        .context("cannot run sqlite3 (Debian package sqlite3)")?;
    if !out.status.success() {
        bail!(
            "sqlite3 could not read the tokens: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut files = Vec::with_capacity(count);
    for (i, line) in String::from_utf8_lossy(&out.stdout).lines().enumerate() {
        let token = hex::decode(line.trim()).context("sqlite3 printed a token that is not hex")?;
        let file = dir.join(format!("f{i}.txt"));
        std::fs::write(&file, DATA).with_context(|| format!("cannot write {}", file.display()))?;
        std::fs::write(dir.join(format!("f{i}.txt.tsr")), token).context("cannot write a token")?;
        files.push(file);
    }
    if files.len() < count {
        bail!(
            "the archive holds {} tokens, fewer than the {count} to verify",
            files.len()
        );
    }
    Ok(files)
}

/// Runs `openssl ts -verify` over the files' tokens, `settings.openssl_jobs` processes at a
/// time, for about `time`.
fn openssl_verify_rate(
    settings: &Settings,
    key: &KeySet,
    files: &[PathBuf],
    time: Duration,
) -> Result<PeerRate> {
    let make = |file: &Path| {
        let mut tsr = file.as_os_str().to_os_string();
        tsr.push(".tsr");
        let mut cmd = Command::new(&settings.openssl_bin);
        cmd.args(["ts", "-verify", "-token_in", "-data"])
            .arg(file)
            .arg("-in")
            .arg(tsr)
            .arg("-CAfile")
            .arg(&key.chain_file)
            .arg("-untrusted")
            .arg(&key.cert_file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    };
    let verified = |out: &std::process::Output| {
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Verification: OK")
    };
    // One run first, so that a token the peer refuses is reported, not timed.
    let first = files.first().context("no files to verify")?;
    let out = make(first)
        .output()
        .with_context(|| format!("cannot run {}", settings.openssl_bin.display()))?;
    if !verified(&out) {
        bail!(
            "openssl ts -verify refused the server's token: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    crate::peer::timed_runs(settings.openssl_jobs.max(1), time, |worker, jobs, round| {
        let file = &files[(worker + round * jobs) % files.len()];
        // A process that cannot even start counts as a failed verification.
        Ok(make(file).output().is_ok_and(|out| verified(&out)))
    })
}

/// CPU ticks of this process's reaped children (cutime + cstime).
fn children_ticks() -> Option<u64> {
    crate::server::stat_ticks("/proc/self/stat", 16..18)
}
