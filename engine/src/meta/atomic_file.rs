//! Crash-safe replacement of small metadata files.
//!
//! [`write_atomically`] writes the new content to a temporary file in the same directory,
//! fsyncs it, keeps the previous version as `<name>.bak` (a hard link, so no copy), renames
//! the temporary file over the target and fsyncs the directory. After a crash at any point
//! the target holds either the complete old or the complete new content; a leftover
//! `<name>.tmp.*` file is never read.
//!
//! RocketMQ's own `MixAll.string2File` deletes the target before renaming, so a Java broker
//! that crashed at the wrong moment leaves only `<name>.bak`; the loaders in this module
//! family fall back to the `.bak` when the target is missing or empty, as Java does.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::io::gate::{self, disk, Open};
use crate::{Error, Result};

/// Distinguishes temporary files of concurrent writers within one process.
static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// The path of the backup kept next to `path`: `<path>.bak`.
pub fn bak_path(path: &Path) -> PathBuf {
    with_suffix(path, ".bak")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name: OsString = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Replaces the content of `path` with `bytes` so that a crash leaves either the old or the
/// new content, never a mix or an empty file. The parent directory must exist.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let seq = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = with_suffix(path, &format!(".tmp.{}.{seq}", std::process::id()));

    let written = write_and_sync(&tmp, bytes);
    if let Err(e) = written {
        let _ = disk().remove_file(&tmp);
        return Err(Error::io(format!("write {}", tmp.display()), e));
    }

    keep_backup(path);

    if let Err(e) = disk().rename(&tmp, path) {
        let _ = disk().remove_file(&tmp);
        return Err(Error::io(
            format!("rename {} to {}", tmp.display(), path.display()),
            e,
        ));
    }
    sync_dir(dir).map_err(|e| Error::io(format!("fsync directory {}", dir.display()), e))
}

fn write_and_sync(tmp: &Path, bytes: &[u8]) -> io::Result<()> {
    let f = disk().open(tmp, Open::Truncate)?;
    f.write_all_at(bytes, 0)?;
    f.sync_all()
}

/// Points `<path>.bak` at the current content of `path` (best effort: a failure only costs
/// the backup, never the write). Hard link to a temporary name, then rename over the old
/// backup, so the backup itself is always complete.
fn keep_backup(path: &Path) {
    if !gate::exists(path) {
        return;
    }
    let bak = bak_path(path);
    let bak_tmp = with_suffix(path, &format!(".bak.tmp.{}", std::process::id()));
    let d = disk();
    let _ = d.remove_file(&bak_tmp);
    let linked = d
        .hard_link(path, &bak_tmp)
        .and_then(|()| d.rename(&bak_tmp, &bak));
    if let Err(e) = linked {
        let _ = d.remove_file(&bak_tmp);
        tracing::debug!(path = %path.display(), error = %e, "could not keep a .bak of the previous version");
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    disk().sync_dir(dir)
}

/// Reads the whole file, or `None` if it does not exist.
pub fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>> {
    gate::read_whole(path).map_err(|e| Error::io(format!("read {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn write_replace_and_backup() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("topics.json");
        assert_eq!(read_if_exists(&p).unwrap(), None);
        write_atomically(&p, b"one").unwrap();
        assert_eq!(read_if_exists(&p).unwrap().unwrap(), b"one");
        write_atomically(&p, b"two").unwrap();
        assert_eq!(read_if_exists(&p).unwrap().unwrap(), b"two");
        assert_eq!(fs::read(bak_path(&p)).unwrap(), b"one");
        // Only the target and its backup remain: no temporary files.
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["topics.json", "topics.json.bak"]);
    }

    #[test]
    fn crash_leftover_temp_file_does_not_affect_target() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.json");
        write_atomically(&p, b"old").unwrap();
        // A writer that died before its rename leaves a partial temp file behind.
        fs::write(with_suffix(&p, ".tmp.999.0"), b"ne").unwrap();
        assert_eq!(read_if_exists(&p).unwrap().unwrap(), b"old");
        write_atomically(&p, b"new").unwrap();
        assert_eq!(read_if_exists(&p).unwrap().unwrap(), b"new");
    }

    #[test]
    fn missing_directory_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("no/such/dir/x.json");
        assert!(matches!(write_atomically(&p, b"x"), Err(Error::Io { .. })));
    }
}
