//! Segment files: opened for O_DIRECT writes by the writer and buffered reads by readers,
//! preallocated with fallocate, probed once at start-up.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use super::aligned::AlignedBuf;
use super::{faults, PAGE};
use crate::{Error, Result};

/// Opens (creating if needed) a file for O_DIRECT writes.
pub fn open_direct(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_DIRECT | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::EINVAL) => Error::DirectIoUnsupported {
                path: path.to_owned(),
                source: e,
            },
            _ => Error::io(format!("open {}", path.display()), e),
        })
}

/// Opens a file for buffered positional reads.
pub fn open_read(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| Error::io(format!("open {}", path.display()), e))
}

/// Reserves `len` bytes of disk for `file` so appends never allocate on the hot path.
pub fn preallocate(file: &File, path: &Path, len: u64) -> Result<()> {
    if faults::preallocation_should_fail() {
        return Err(Error::DiskFull {
            path: path.to_owned(),
        });
    }
    // SAFETY: fallocate on an fd we own; no memory arguments.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len as libc::off_t) };
    if rc != 0 {
        return Err(Error::io(
            format!("fallocate {}", path.display()),
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Writes zeros over `[0, len)` of an O_DIRECT `file` and makes them durable, so the
/// extents are "written" and later overwrites change no metadata.
pub fn write_zeros(file: &File, path: &Path, len: u64) -> Result<()> {
    let zeros = AlignedBuf::new(1 << 20);
    let mut at = 0u64;
    while at < len {
        let n = (zeros.len() as u64).min(len - at) as usize;
        file.write_all_at(&zeros.as_slice()[..n], at)
            .map_err(|e| Error::io(format!("zero-fill {}", path.display()), e))?;
        at += n as u64;
    }
    sync_data(file, path)
}

/// Makes `[from, to)` of `file` read as zeros (used when recovery cuts a torn tail).
pub fn zero_range(file: &File, path: &Path, from: u64, to: u64) -> Result<()> {
    if to <= from {
        return Ok(());
    }
    // SAFETY: fallocate on an fd we own; no memory arguments.
    let rc = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
            from as libc::off_t,
            (to - from) as libc::off_t,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    // Fall back to writing zeros (file systems without ZERO_RANGE).
    let zeros = vec![0u8; (1 << 20).min((to - from) as usize)];
    let mut at = from;
    while at < to {
        let n = zeros.len().min((to - at) as usize);
        file.write_all_at(&zeros[..n], at)
            .map_err(|e| Error::io(format!("zero {}", path.display()), e))?;
        at += n as u64;
    }
    Ok(())
}

/// fdatasync.
pub fn sync_data(file: &File, path: &Path) -> Result<()> {
    file.sync_data()
        .map_err(|e| Error::io(format!("fdatasync {}", path.display()), e))
}

/// fsync of a directory, so a created, renamed or deleted entry survives a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("fsync dir {}", dir.display()), e))
}

/// Checks that `dir` accepts O_DIRECT writes, so a broker on tmpfs fails at start-up with
/// a clear message instead of at the first append.
pub fn probe_direct_io(dir: &Path) -> Result<()> {
    let path = dir.join(".ringmq-direct-io-probe");
    let file = open_direct(&path)?;
    let buf = AlignedBuf::new(PAGE);
    let res = file.write_at(buf.as_slice(), 0);
    let _ = std::fs::remove_file(&path);
    match res {
        Ok(n) if n == PAGE => Ok(()),
        Ok(n) => Err(Error::Io {
            context: format!("O_DIRECT probe wrote {n} bytes"),
            source: io::ErrorKind::WriteZero.into(),
        }),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Err(Error::DirectIoUnsupported {
            path: dir.to_owned(),
            source: e,
        }),
        Err(e) => Err(Error::io(format!("O_DIRECT probe in {}", dir.display()), e)),
    }
}
