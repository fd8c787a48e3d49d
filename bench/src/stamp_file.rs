//! Bulk stamping: one `stamp file` of many small files against the first server run's node,
//! while it is still up (after its load window and archive check), once per
//! `--bulk-stamp-jobs` value. The limit beside it is that server's own tokens/s in the run.

use crate::Settings;
use crate::verify::ChildRun;
use anyhow::{Context, Result, bail};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

/// What one `stamp file` run did.
#[derive(Debug, Clone, Copy)]
pub struct BulkStamp {
    /// The run (every file must have its `.tsr`).
    pub run: ChildRun,
    /// `--jobs` given, or `None` for stamp's default (4 per core).
    pub jobs: Option<usize>,
}

/// Stamps `count` new small files in `dir` with one `stamp file --tsa http://addr/`, checks
/// that each got its token file, and times it.
pub fn measure(
    settings: &Settings,
    addr: SocketAddr,
    dir: &Path,
    count: usize,
    jobs: Option<usize>,
) -> Result<BulkStamp> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let files = (0..count)
        .map(|i| {
            let f = dir.join(format!("s{i}.txt"));
            std::fs::write(&f, format!("tsa-bench bulk stamp {i}\n"))
                .with_context(|| format!("cannot write {}", f.display()))
                .map(|()| f)
        })
        .collect::<Result<Vec<_>>>()?;
    crate::verify::settle(dir);
    let mut cmd = Command::new(&settings.stamp_bin);
    cmd.arg("file").arg("--tsa").arg(format!("http://{addr}/"));
    if let Some(j) = jobs {
        cmd.arg("--jobs").arg(j.to_string());
    }
    cmd.args(&files)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let (run, out) = ChildRun::time(&mut cmd, count as u64)
        .with_context(|| format!("cannot run {}", settings.stamp_bin.display()))?;
    if !out.status.success() {
        bail!(
            "stamp file failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let missing = files
        .iter()
        .filter(|f| {
            let mut tsr = f.as_os_str().to_owned();
            tsr.push(".tsr");
            !Path::new(&tsr).is_file()
        })
        .count();
    if missing > 0 {
        bail!("stamp file succeeded but {missing} of {count} token files are missing");
    }
    Ok(BulkStamp { run, jobs })
}
