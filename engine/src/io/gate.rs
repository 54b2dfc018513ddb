//! The I/O gate: every file operation of the engine outside `io/` goes through [`Disk`]
//! (path operations) and [`GateFile`] (operations on an open file), so a simulated disk
//! can stand in for the kernel. [`RealDisk`] is the kernel (std and libc). Runs on the
//! caller's thread.
//!
//! The disk is process-wide: [`disk`] returns the one [`install`]ed, else the real one.
//! Only path operations look it up (an `Arc` clone under a read lock); an open
//! [`GateFile`] calls its own implementation, one virtual call per operation, never one
//! per record on the CommitLog path (the writer batches records into page writes).
//!
//! The writer's O_DIRECT writes and fdatasyncs go through the [`WriteRing`] the disk
//! gives ([`Disk::write_ring`]: io_uring with registered buffers on the real disk, an
//! in-memory ring on the simulated one), naming files by [`GateFile::raw_fd`]. HA's
//! splice uses the kernel fd directly and needs the real disk.
//!
//! Errors are `io::Error` as the kernel gives them; EINTR is retried here, and short
//! reads and writes are completed here (`read_full_at`, `write_all_at`), so callers never
//! see a partial transfer counted as whole.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};

/// How a file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    ReadWrite,
    /// Read and write, created if missing, kept if present.
    Create,
    /// Read and write, created if missing, emptied if present.
    Truncate,
    /// Read and write with O_DIRECT (4096-aligned buffers, offsets and lengths), created
    /// if missing.
    Direct,
}

/// What a directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Other,
}

/// One entry of a directory listing.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: std::ffi::OsString,
    pub kind: Kind,
}

/// Path operations: opening, listing, creating, deleting, renaming, syncing directories,
/// locking; and the writer's submission ring.
pub trait Disk: Send + Sync + 'static {
    /// The CommitLog writer's submission ring (io_uring on the real disk) with `entries`
    /// slots; its writes and fdatasyncs name files by [`GateFile::raw_fd`].
    fn write_ring(&self, entries: u32) -> crate::Result<Box<dyn WriteRing>>;
    fn open(&self, path: &Path, how: Open) -> io::Result<GateFile>;
    /// The entries of `dir` (not `.` and `..`), in no particular order.
    fn list(&self, dir: &Path) -> io::Result<Vec<Entry>>;
    /// What `path` is, or None when it does not exist.
    fn kind(&self, path: &Path) -> io::Result<Option<Kind>>;
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// fsync of a directory, so entries created, renamed or deleted in it survive a crash.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf>;
    /// Opens (creating) `path` and takes an exclusive lock on it, held while the returned
    /// file is open; `WouldBlock` if another holder has it.
    fn lock(&self, path: &Path) -> io::Result<GateFile>;
}

pub use super::write_ring::{Completion, WriteRing};

/// Operations on one open file.
pub trait FileOps: Send + Sync + 'static {
    /// One pread (may be short).
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize>;
    /// One pwrite (may be short).
    fn write_at(&self, buf: &[u8], off: u64) -> io::Result<usize>;
    fn sync_data(&self) -> io::Result<()>;
    fn sync_all(&self) -> io::Result<()>;
    /// Reserves `[0, len)` (fallocate mode 0).
    fn allocate(&self, len: u64) -> io::Result<()>;
    /// Makes `[from, to)` read as zeros without changing the size.
    fn zero_range(&self, from: u64, to: u64) -> io::Result<()>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    fn size(&self) -> io::Result<u64>;
    /// The first data region `[start, end)` at or after `from` (SEEK_DATA/SEEK_HOLE), None
    /// past the last one. A file system without holes reports everything as data.
    fn data_region(&self, from: u64) -> io::Result<Option<(u64, u64)>>;
    /// The kernel fd, for io_uring and splice; None for a simulated file.
    fn raw_fd(&self) -> Option<RawFd>;
}

/// An open file of the gate.
pub struct GateFile(Box<dyn FileOps>);

impl GateFile {
    pub fn new(ops: impl FileOps) -> Self {
        GateFile(Box::new(ops))
    }

    pub fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        loop {
            match self.0.read_at(buf, off) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }

    /// pread until `buf` is full or end of file; returns the bytes read (the rest of
    /// `buf` is zeroed).
    pub fn read_full_at(&self, buf: &mut [u8], mut off: u64) -> io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match self.read_at(&mut buf[done..], off)? {
                0 => break,
                n => {
                    done += n;
                    off += n as u64;
                }
            }
        }
        buf[done..].fill(0);
        Ok(done)
    }

    /// pread of exactly `buf.len()` bytes; UnexpectedEof if the file ends first.
    pub fn read_exact_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        if self.read_full_at(buf, off)? < buf.len() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    /// pwrite of every byte of `buf`: a short write is continued, a write of nothing is
    /// WriteZero.
    pub fn write_all_at(&self, mut buf: &[u8], mut off: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.0.write_at(buf, off) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    buf = &buf[n..];
                    off += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    pub fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    pub fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }

    pub fn allocate(&self, len: u64) -> io::Result<()> {
        self.0.allocate(len)
    }

    pub fn zero_range(&self, from: u64, to: u64) -> io::Result<()> {
        if to <= from {
            return Ok(());
        }
        self.0.zero_range(from, to)
    }

    pub fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    pub fn size(&self) -> io::Result<u64> {
        self.0.size()
    }

    pub fn data_region(&self, from: u64) -> io::Result<Option<(u64, u64)>> {
        self.0.data_region(from)
    }

    pub fn raw_fd(&self) -> Option<RawFd> {
        self.0.raw_fd()
    }
}

impl AsRawFd for GateFile {
    /// The kernel fd (io_uring, splice). Panics for a simulated file: those paths need
    /// the real disk.
    fn as_raw_fd(&self) -> RawFd {
        self.raw_fd()
            .expect("a kernel fd is only available from the real disk")
    }
}

static INSTALLED: RwLock<Option<Arc<dyn Disk>>> = RwLock::new(None);

/// The disk every engine file operation goes to.
pub fn disk() -> Arc<dyn Disk> {
    let installed = INSTALLED.read().unwrap_or_else(|e| e.into_inner()).clone();
    installed.unwrap_or_else(real)
}

/// Makes `disk` the process's disk (None: the real one again); returns the previous one.
/// For tests: stores opened before keep the files they opened.
pub fn install(disk: Option<Arc<dyn Disk>>) -> Option<Arc<dyn Disk>> {
    std::mem::replace(
        &mut *INSTALLED.write().unwrap_or_else(|e| e.into_inner()),
        disk,
    )
}

/// The kernel.
pub fn real() -> Arc<dyn Disk> {
    static REAL: OnceLock<Arc<dyn Disk>> = OnceLock::new();
    REAL.get_or_init(|| Arc::new(RealDisk)).clone()
}

/// Reads a whole file; None when it does not exist.
pub fn read_whole(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let file = match disk().open(path, Open::Read) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut buf = vec![0u8; file.size()? as usize];
    let n = file.read_full_at(&mut buf, 0)?;
    buf.truncate(n);
    Ok(Some(buf))
}

/// Whether `path` exists (an error reading it counts as absent).
pub fn exists(path: &Path) -> bool {
    matches!(disk().kind(path), Ok(Some(_)))
}

/// The kernel: std::fs and libc.
pub struct RealDisk;

impl Disk for RealDisk {
    fn write_ring(&self, entries: u32) -> crate::Result<Box<dyn WriteRing>> {
        Ok(Box::new(super::uring::WriterRing::new(entries)?))
    }

    fn open(&self, path: &Path, how: Open) -> io::Result<GateFile> {
        let mut o = OpenOptions::new();
        o.read(true);
        match how {
            Open::Read => {}
            Open::ReadWrite => {
                o.write(true);
            }
            Open::Create => {
                o.write(true).create(true).truncate(false);
            }
            Open::Truncate => {
                o.write(true).create(true).truncate(true);
            }
            Open::Direct => {
                o.write(true)
                    .create(true)
                    .truncate(false)
                    .custom_flags(libc::O_DIRECT | libc::O_CLOEXEC);
            }
        }
        Ok(GateFile::new(RealFile(o.open(path)?)))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        for ent in std::fs::read_dir(dir)? {
            let ent = ent?;
            // Follows symlinks, as the engine always has (Path::is_dir).
            let kind = match std::fs::metadata(ent.path()) {
                Ok(m) if m.is_dir() => Kind::Dir,
                Ok(m) if m.is_file() => Kind::File,
                _ => Kind::Other,
            };
            out.push(Entry {
                name: ent.file_name(),
                kind,
            });
        }
        Ok(out)
    }

    fn kind(&self, path: &Path) -> io::Result<Option<Kind>> {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => Ok(Some(Kind::Dir)),
            Ok(m) if m.is_file() => Ok(Some(Kind::File)),
            Ok(_) => Ok(Some(Kind::Other)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(dir)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::hard_link(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        std::fs::canonicalize(path)
    }

    fn lock(&self, path: &Path) -> io::Result<GateFile> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        // SAFETY: flock on an fd we own; no memory arguments.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(GateFile::new(RealFile(file)))
    }
}

/// A kernel file.
struct RealFile(File);

impl FileOps for RealFile {
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        self.0.read_at(buf, off)
    }

    fn write_at(&self, buf: &[u8], off: u64) -> io::Result<usize> {
        self.0.write_at(buf, off)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        // SAFETY: fallocate on an fd we own; no memory arguments.
        let rc = unsafe { libc::fallocate(self.0.as_raw_fd(), 0, 0, len as libc::off_t) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn zero_range(&self, from: u64, to: u64) -> io::Result<()> {
        // SAFETY: fallocate on an fd we own; no memory arguments.
        let rc = unsafe {
            libc::fallocate(
                self.0.as_raw_fd(),
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
            self.0.write_all_at(&zeros[..n], at)?;
            at += n as u64;
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn data_region(&self, from: u64) -> io::Result<Option<(u64, u64)>> {
        let fd = self.0.as_raw_fd();
        let end = self.size()?;
        if from >= end {
            return Ok(None);
        }
        let seek = |pos: u64, whence: libc::c_int| -> io::Result<Option<u64>> {
            // SAFETY: lseek on the descriptor of this file, which outlives this call; it
            // touches no memory. The file position it moves is not used (all I/O is
            // positional).
            let r = unsafe { libc::lseek(fd, pos as libc::off_t, whence) };
            if r >= 0 {
                return Ok(Some(r as u64));
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ENXIO) => Ok(None),
                // SEEK_DATA/SEEK_HOLE unsupported: everything is data.
                Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => {
                    Ok(Some(if whence == libc::SEEK_DATA { pos } else { end }))
                }
                _ => Err(e),
            }
        };
        let Some(data) = seek(from, libc::SEEK_DATA)? else {
            return Ok(None);
        };
        let hole = seek(data, libc::SEEK_HOLE)?.unwrap_or(end).max(data);
        Ok(Some((data, hole)))
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.0.as_raw_fd())
    }
}
