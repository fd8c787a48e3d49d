//! Bulk work over files (`stamp email sign --in-dir`, `stamp pdf sign --out-dir`): a bounded
//! pool of workers, each file standing alone. A failure names the file and its cause and
//! touches no other output; a file whose output already exists is skipped, so a rerun after a
//! crash or a failed batch does only what is left.

use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What a bulk run did.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Inputs done now.
    pub signed: usize,
    /// Inputs skipped because their output already existed.
    pub skipped: usize,
    /// Inputs that failed, each named with its cause.
    pub failed: Vec<Failure>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// One input that could not be done.
#[derive(Debug, Serialize)]
pub struct Failure {
    /// The input (a path, or `MBOX#N`).
    pub message: String,
    /// Why, with the cause chain.
    pub error: String,
}

impl Summary {
    /// The closing line.
    pub fn line(&self) -> String {
        let rate = if self.seconds > 0.0 {
            format!(", {:.0} per second", self.signed as f64 / self.seconds)
        } else {
            String::new()
        };
        format!(
            "signed {}, skipped {}, failed {} ({:.2} s{rate})",
            self.signed,
            self.skipped,
            self.failed.len(),
            self.seconds
        )
    }
}

/// Runs `op(input, output)` on each pair, skipping pairs whose output exists; failures are
/// printed above the progress bar as they happen.
pub fn run_files(
    pairs: &[(PathBuf, PathBuf)],
    jobs: usize,
    bar: Option<&indicatif::ProgressBar>,
    op: impl Fn(&Path, &Path) -> anyhow::Result<()> + Sync,
) -> Summary {
    let started = std::time::Instant::now();
    let signed = AtomicUsize::new(0);
    let skipped = AtomicUsize::new(0);
    let failed = Mutex::new(Vec::new());
    crate::pool::for_each(pairs.len(), jobs, |i| {
        let (input, output) = &pairs[i];
        if output.exists() {
            skipped.fetch_add(1, Ordering::Relaxed);
        } else {
            match op(input, output) {
                Ok(()) => {
                    signed.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    let f = Failure {
                        message: input.display().to_string(),
                        error: format!("{e:#}"),
                    };
                    if let Some(b) = bar {
                        b.println(crate::escape::escape(&format!(
                            "stamp: {}: {}",
                            f.message, f.error
                        )));
                    }
                    failed
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(f);
                }
            }
        }
        if let Some(b) = bar {
            b.inc(1);
        }
    });
    let mut failed = failed
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    failed.sort_by(|a, b| a.message.cmp(&b.message));
    Summary {
        signed: signed.into_inner(),
        skipped: skipped.into_inner(),
        failed,
        seconds: started.elapsed().as_secs_f64(),
    }
}
