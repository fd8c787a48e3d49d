//! Writing outputs so that a crash or a full disk never leaves a half-written file under the
//! final name: write a temporary file beside it, flush it to disk, rename it over the target.

use anyhow::Context;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` atomically (temporary file in the same directory, fsync, rename).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_parts_atomically(path, &[bytes])
}

/// Writes `parts`, one after the other, to `path` atomically: a signed PDF is the input and its
/// update, written without joining them in memory.
pub fn write_parts_atomically(path: &Path, parts: &[&[u8]]) -> anyhow::Result<()> {
    let tmp = temporary_name(path);
    let result = (|| -> anyhow::Result<()> {
        // The data must be on disk before the rename makes it visible under its name.
        write_temporary(&tmp, parts, true)?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes a new secret (a private key, a PKCS#12 file) to `path`, which must not exist: mode
/// 0600 from its creation, under a temporary name until its data is on disk, then linked to
/// `path` only if that name is still free (`link(2)` never replaces a file, so an existing key
/// is never overwritten, even by a concurrent run), and the directory synced. A crash leaves
/// no partial key under its name, and no reader sees one being written.
pub fn write_new_secret(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = temporary_name(path);
    let result = (|| -> anyhow::Result<()> {
        write_synced_new(&tmp, bytes, 0o600)?;
        std::fs::hard_link(&tmp, path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                anyhow::anyhow!(
                    "{} exists already: a key is never overwritten (move it away first)",
                    path.display()
                )
            } else {
                anyhow::Error::new(e).context(format!("cannot create {}", path.display()))
            }
        })?;
        sync_parent(path)
    })();
    // The secret now has its own name (or none): the temporary one goes either way.
    let _ = std::fs::remove_file(&tmp);
    result
}

/// Replaces the file at `path` with `bytes` (created with `mode`) and keeps the file it
/// replaces as `PATH.old`, or `PATH.old.1`, `PATH.old.2`, ... when those are taken: an earlier
/// kept file is never overwritten (a renewed key may be needed again, an encryption key to
/// read old mail). The new file is written and synced under a temporary name first, the old
/// one gets its second name with `link(2)` (which never replaces), then the new one is renamed
/// over `path`: `path` always holds the old or the new file, never neither and never a part.
/// Returns the name the old file now has.
pub fn replace_keeping_old(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<PathBuf> {
    let tmp = temporary_name(path);
    let result = (|| -> anyhow::Result<PathBuf> {
        write_synced_new(&tmp, bytes, mode)?;
        let old = (0u32..10_000)
            .map(|n| {
                let suffix = if n == 0 {
                    ".old".to_owned()
                } else {
                    format!(".old.{n}")
                };
                let mut name = path.as_os_str().to_owned();
                name.push(suffix);
                PathBuf::from(name)
            })
            .find_map(|old| match std::fs::hard_link(path, &old) {
                Ok(()) => Some(Ok(old)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
                Err(e) => Some(Err(anyhow::Error::new(e).context(format!(
                    "cannot keep {} as {}",
                    path.display(),
                    old.display()
                )))),
            })
            .unwrap_or_else(|| {
                Err(anyhow::anyhow!(
                    "cannot keep {}: 10,000 old copies exist already",
                    path.display()
                ))
            })?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot replace {}", path.display()))?;
        sync_parent(path)?;
        Ok(old)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Creates `path` (which must not exist) with `mode`, writes `bytes` and syncs them.
fn write_synced_new(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_data())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Syncs the directory holding `path`, so that a name given to a file there is durable.
fn sync_parent(path: &Path) -> anyhow::Result<()> {
    let dir = parent_dir(path);
    open_dir(dir)?
        .sync_all()
        .with_context(|| format!("cannot sync {}", dir.display()))
}

/// A temporary name beside `path`, unique in this process ([`is_temporary`] knows it).
fn temporary_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(
        ".{name}.{}-{}.part",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

fn write_temporary(tmp: &Path, parts: &[&[u8]], sync: bool) -> anyhow::Result<()> {
    let mut f =
        std::fs::File::create(tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    parts
        .iter()
        .try_for_each(|p| f.write_all(p))
        .and_then(|()| if sync { f.sync_data() } else { Ok(()) })
        .with_context(|| format!("cannot write {}", tmp.display()))
}

/// Files written per durable group of [`GroupedWrites`].
pub const GROUP: usize = 512;

/// Atomic writes of many files made durable together (bulk stamping writes thousands of small
/// files, and each file's own fdatasync is a device cache flush: about a fifth of `stamp file`'s
/// CPU per file on a VM). Each file is written under a temporary name; every [`GROUP`] files,
/// and at [`GroupedWrites::finish`], one `syncfs(2)` per file system (on Linux; elsewhere each
/// file's own sync) puts the group's data on disk, then the files are renamed to their names and each directory is fsynced, so that the
/// names are durable too. A file appears under its name only with its data on disk, as with
/// [`write_atomically`]; a run that is killed leaves the files of the group being filled (and
/// of one being made durable) under temporary names, skipped by [`files_in`], never a torn file.
#[derive(Debug, Default)]
pub struct GroupedWrites {
    pending: Mutex<Vec<(PathBuf, PathBuf)>>,
    failed: Mutex<Vec<(PathBuf, String)>>,
}

impl GroupedWrites {
    /// Writes `bytes` for `path`. It has its name once its group is durable: when this call
    /// completes a group (made durable here), or at [`GroupedWrites::finish`]. An error here is
    /// this file's; a group's failures are reported by `finish`.
    pub fn write(&self, path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
        let tmp = temporary_name(path);
        if let Err(e) = write_temporary(&tmp, &[bytes], false) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        let full = {
            let mut pending = lock(&self.pending);
            pending.push((tmp, path.to_owned()));
            (pending.len() >= GROUP).then(|| std::mem::take(&mut *pending))
        };
        if let Some(group) = full {
            let failures = make_durable(&group);
            lock(&self.failed).extend(failures);
        }
        Ok(())
    }

    /// Makes the writes not yet durable durable under their names, and returns every file
    /// written through `self` that is not on disk under its name, with the reason (by name: a
    /// caller looks each of its files up). Call it once every `write` has returned.
    pub fn finish(&self) -> HashMap<PathBuf, String> {
        let group = std::mem::take(&mut *lock(&self.pending));
        let failures = make_durable(&group);
        let mut failed: HashMap<PathBuf, String> = std::mem::take(&mut *lock(&self.failed))
            .into_iter()
            .collect();
        failed.extend(failures);
        failed
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Puts `group`'s data on disk ([`sync_data`]), renames each temporary file to its name and
/// fsyncs the directories. Returns the files that did not make it, with the
/// reason: all of them when a sync fails (nothing is renamed then, and the temporary files are
/// removed), one file when its rename fails, a directory's files when its fsync fails.
fn make_durable(group: &[(PathBuf, PathBuf)]) -> Vec<(PathBuf, String)> {
    let dir_of = |path: &Path| parent_dir(path).to_owned();
    let mut dirs: Vec<PathBuf> = group.iter().map(|(_, path)| dir_of(path)).collect();
    dirs.sort();
    dirs.dedup();
    if let Err(e) = sync_data(&dirs, group) {
        let reason = format!("{e:#}");
        return group
            .iter()
            .map(|(tmp, path)| {
                let _ = std::fs::remove_file(tmp);
                (path.clone(), reason.clone())
            })
            .collect();
    }
    let mut failed = Vec::new();
    for (tmp, path) in group {
        if let Err(e) = std::fs::rename(tmp, path) {
            let _ = std::fs::remove_file(tmp);
            failed.push((
                path.clone(),
                format!("cannot write {}: {e}", path.display()),
            ));
        }
    }
    for dir in &dirs {
        if let Err(e) = open_dir(dir).and_then(|d| {
            d.sync_all()
                .with_context(|| format!("cannot sync {}", dir.display()))
        }) {
            let reason = format!("{e:#}");
            failed.extend(
                group
                    .iter()
                    .filter(|(_, path)| {
                        dir_of(path) == *dir && !failed.iter().any(|(f, _)| f == path)
                    })
                    .map(|(_, path)| (path.clone(), reason.clone()))
                    .collect::<Vec<_>>(),
            );
        }
    }
    failed
}

fn open_dir(dir: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::File::open(dir).with_context(|| format!("cannot open {}", dir.display()))
}

/// Puts the data of `group` (files in `dirs`) on disk: one `syncfs(2)` per file system.
#[cfg(target_os = "linux")]
fn sync_data(dirs: &[PathBuf], _group: &[(PathBuf, PathBuf)]) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mut devices = Vec::new();
    for dir in dirs {
        let d = open_dir(dir)?;
        let dev = d.metadata().map(|m| m.dev()).unwrap_or_default();
        if !devices.contains(&dev) {
            devices.push(dev);
            rustix::fs::syncfs(&d)
                .with_context(|| format!("cannot sync the file system of {}", dir.display()))?;
        }
    }
    Ok(())
}

/// Puts the data of `group` on disk where there is no `syncfs(2)`: each file's own sync.
#[cfg(not(target_os = "linux"))]
fn sync_data(_dirs: &[PathBuf], group: &[(PathBuf, PathBuf)]) -> anyhow::Result<()> {
    for (tmp, _) in group {
        std::fs::File::open(tmp)
            .and_then(|f| f.sync_data())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A new secret has mode 0600 and its bytes; a second one under the same name is refused and
    /// changes nothing; no temporary file is left either way.
    #[test]
    fn a_new_secret_is_private_and_never_replaces_one() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("me.key");
        write_new_secret(&key, b"first key").expect("written");
        assert_eq!(std::fs::read(&key).expect("read"), b"first key");
        let mode = std::fs::metadata(&key).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let err = write_new_secret(&key, b"second key").expect_err("refused");
        assert!(format!("{err:#}").contains("exists already"), "{err:#}");
        assert_eq!(std::fs::read(&key).expect("read"), b"first key");
        assert_eq!(names(dir.path()), ["me.key"]);
    }

    /// Each replacement keeps the file before it under the next free `.old` name; the
    /// replaced file keeps its bytes, the new one has its mode; no temporary file is left; a
    /// missing file is an error that leaves nothing behind.
    #[test]
    fn replacing_keeps_every_old_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("me.key");
        let err = replace_keeping_old(&key, b"new", 0o600).expect_err("nothing to replace");
        assert!(format!("{err:#}").contains("cannot keep"), "{err:#}");
        assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
        write_new_secret(&key, b"first").expect("first");
        let old = replace_keeping_old(&key, b"second", 0o600).expect("second");
        assert_eq!(old, dir.path().join("me.key.old"));
        let old = replace_keeping_old(&key, b"third", 0o600).expect("third");
        assert_eq!(old, dir.path().join("me.key.old.1"));
        let read = |name: &str| std::fs::read(dir.path().join(name)).expect("read");
        assert_eq!(read("me.key"), b"third");
        assert_eq!(read("me.key.old"), b"first");
        assert_eq!(read("me.key.old.1"), b"second");
        assert_eq!(names(dir.path()), ["me.key", "me.key.old", "me.key.old.1"]);
        let mode = std::fs::metadata(&key).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    /// Runs racing for one name: exactly one writes it, whole; the others are refused; a reader
    /// meanwhile sees no file or a whole key, never one being written.
    #[test]
    fn racing_secrets_leave_one_whole_key() {
        for round in 0..10 {
            let dir = tempfile::tempdir().expect("tempdir");
            let key = dir.path().join("race.key");
            let contents: Vec<Vec<u8>> = (0..4u8).map(|i| vec![b'a' + i; 1 << 20]).collect();
            let start = std::sync::Barrier::new(contents.len() + 1);
            let done = std::sync::atomic::AtomicBool::new(false);
            let won = std::thread::scope(|s| {
                let reader = s.spawn(|| {
                    start.wait();
                    let mut seen = 0;
                    while !done.load(std::sync::atomic::Ordering::SeqCst) {
                        if let Ok(got) = std::fs::read(&key) {
                            assert!(contents.contains(&got), "read {} bytes of a key", got.len());
                            seen += 1;
                        }
                    }
                    seen
                });
                let writers: Vec<_> = contents
                    .iter()
                    .map(|c| {
                        s.spawn(|| {
                            start.wait();
                            write_new_secret(&key, c).is_ok()
                        })
                    })
                    .collect();
                let won = writers
                    .into_iter()
                    .map(|h| h.join().expect("join"))
                    .filter(|ok| *ok)
                    .count();
                done.store(true, std::sync::atomic::Ordering::SeqCst);
                reader.join().expect("the reader saw only whole keys");
                won
            });
            assert_eq!(won, 1, "round {round}: {won} writers succeeded");
            let got = std::fs::read(&key).expect("read");
            assert!(
                contents.contains(&got),
                "round {round}: a mixed or partial key"
            );
            assert_eq!(names(dir.path()), ["race.key"], "round {round}");
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// A file appears under its name only when its group is durable: every GROUP files, and
    /// the rest at `finish`; nothing is left under a temporary name, every byte is there.
    #[test]
    fn grouped_writes_appear_by_group_and_all_at_finish() {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = GroupedWrites::default();
        let path = |i: usize| dir.path().join(format!("f{i:04}.tsr"));
        for i in 0..GROUP + 3 {
            w.write(&path(i), format!("token {i}").as_bytes())
                .expect("write");
        }
        let visible = names(dir.path());
        assert_eq!(
            visible.iter().filter(|n| !n.ends_with(".part")).count(),
            GROUP
        );
        assert_eq!(visible.iter().filter(|n| n.ends_with(".part")).count(), 3);
        assert!(!path(GROUP).exists(), "the next group is not named yet");
        assert!(w.finish().is_empty());
        assert_eq!(names(dir.path()).len(), GROUP + 3);
        assert!(names(dir.path()).iter().all(|n| !n.ends_with(".part")));
        for i in [0, GROUP - 1, GROUP, GROUP + 2] {
            assert_eq!(
                std::fs::read(path(i)).expect("read"),
                format!("token {i}").as_bytes()
            );
        }
        assert!(w.finish().is_empty(), "a second finish has nothing to do");
    }

    /// A rename that fails (the name is taken by a directory) is reported for that file alone;
    /// the others of its group land, and no temporary file is left.
    #[test]
    fn a_failed_rename_is_that_files_failure_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blocked = dir.path().join("b.tsr");
        std::fs::create_dir(&blocked).expect("mkdir");
        std::fs::write(blocked.join("inside"), b"x").expect("a non-empty directory");
        let w = GroupedWrites::default();
        w.write(&dir.path().join("a.tsr"), b"a").expect("write a");
        w.write(&blocked, b"b")
            .expect("write b (under its temporary name)");
        w.write(&dir.path().join("c.tsr"), b"c").expect("write c");
        let failed = w.finish();
        assert_eq!(failed.len(), 1, "{failed:?}");
        let reason = failed.get(&blocked).expect("b.tsr is the failure");
        assert!(reason.contains("b.tsr"), "{reason}");
        assert_eq!(std::fs::read(dir.path().join("a.tsr")).expect("a"), b"a");
        assert_eq!(std::fs::read(dir.path().join("c.tsr")).expect("c"), b"c");
        assert_eq!(names(dir.path()), ["a.tsr", "b.tsr", "c.tsr"]);
    }

    /// A file that cannot be created is an error of that write, at once.
    #[test]
    fn a_missing_directory_is_an_error_of_the_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = GroupedWrites::default();
        let err = w
            .write(&dir.path().join("missing/x.tsr"), b"x")
            .expect_err("no directory");
        assert!(format!("{err:#}").contains("cannot create"), "{err:#}");
        assert!(w.finish().is_empty());
    }
}
