//! Segment files: opened for O_DIRECT writes by the writer and buffered reads by readers,
//! preallocated with fallocate, probed once at start-up.

use std::io;
use std::path::Path;

use super::aligned::AlignedBuf;
use super::gate::{disk, GateFile, Open};
use super::{faults, PAGE};
use crate::{Error, Result};

/// Opens (creating if needed) a file for O_DIRECT writes.
pub fn open_direct(path: &Path) -> Result<GateFile> {
    disk()
        .open(path, Open::Direct)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::EINVAL) => Error::DirectIoUnsupported {
                path: path.to_owned(),
                source: e,
            },
            _ => Error::io(format!("open {}", path.display()), e),
        })
}

/// Opens a file for buffered positional reads.
pub fn open_read(path: &Path) -> Result<GateFile> {
    disk()
        .open(path, Open::Read)
        .map_err(|e| Error::io(format!("open {}", path.display()), e))
}

/// Reserves `len` bytes of disk for `file` so appends never allocate on the hot path.
pub fn preallocate(file: &GateFile, path: &Path, len: u64) -> Result<()> {
    if faults::preallocation_should_fail() {
        return Err(Error::DiskFull {
            path: path.to_owned(),
        });
    }
    file.allocate(len)
        .map_err(|e| Error::io(format!("fallocate {}", path.display()), e))
}

/// Writes zeros over `[0, len)` of an O_DIRECT `file` and makes them durable, so the
/// extents are "written" and later overwrites change no metadata.
pub fn write_zeros(file: &GateFile, path: &Path, len: u64) -> Result<()> {
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
pub fn zero_range(file: &GateFile, path: &Path, from: u64, to: u64) -> Result<()> {
    file.zero_range(from, to)
        .map_err(|e| Error::io(format!("zero {}", path.display()), e))
}

/// fdatasync.
pub fn sync_data(file: &GateFile, path: &Path) -> Result<()> {
    file.sync_data()
        .map_err(|e| Error::io(format!("fdatasync {}", path.display()), e))
}

/// fsync of a directory, so a created, renamed or deleted entry survives a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    disk()
        .sync_dir(dir)
        .map_err(|e| Error::io(format!("fsync dir {}", dir.display()), e))
}

/// Checks that `dir` accepts O_DIRECT writes, so a broker on tmpfs fails at start-up with
/// a clear message instead of at the first append.
pub fn probe_direct_io(dir: &Path) -> Result<()> {
    let path = dir.join(".ringmq-direct-io-probe");
    let file = open_direct(&path)?;
    let buf = AlignedBuf::new(PAGE);
    let res = file.write_all_at(buf.as_slice(), 0).map(|()| PAGE);
    let _ = disk().remove_file(&path);
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
