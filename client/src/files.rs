//! Writing outputs so that a crash or a full disk never leaves a half-written file under the
//! final name: write a temporary file beside it, flush it to disk, rename it over the target.

use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` atomically (temporary file in the same directory, fsync, rename).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_parts_atomically(path, &[bytes])
}

/// Writes `parts`, one after the other, to `path` atomically: a signed PDF is the input and its
/// update, written without joining them in memory.
pub fn write_parts_atomically(path: &Path, parts: &[&[u8]]) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(
        ".{name}.{}-{}.part",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| -> anyhow::Result<()> {
        let mut f = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        // The data must be on disk before the rename makes it visible under its name.
        parts
            .iter()
            .try_for_each(|p| f.write_all(p))
            .and_then(|()| f.sync_data())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Whether `path` is one of our temporary files (skipped when a directory is read).
pub fn is_temporary(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.') && n.ends_with(".part"))
}

/// The regular files directly in `dir`, sorted by name, temporary files left out.
pub fn files_in(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        let path = entry.path();
        if entry.file_type().map(|t| t.is_file()).unwrap_or(false) && !is_temporary(&path) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}
