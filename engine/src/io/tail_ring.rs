//! The tail ring: the most recent `capacity` bytes of the CommitLog, in memory.
//!
//! The ring is one shared-memory file mapped twice back to back, so the bytes of physical
//! offsets `[p, p + n)` with `n <= capacity` are always contiguous at `base + p % capacity`:
//! a record or an O_DIRECT write never has to be split at the wrap point. The writer
//! thread is the only one that mutates it; readers copy out of it. Who may touch which
//! bytes is decided by offsets the writer publishes (see `commitlog::tail`), not by this
//! type.
//!
//! The file is either private (a memfd: gone with the process) or a named file on a tmpfs
//! (`/dev/shm`): then it outlives a crash of the process (kill -9, OOM kill, a panic) but
//! not of the machine, like the page cache RocketMQ writes into. A header page after the
//! ring says which offsets `[lo, hi)` the ring holds; the writer moves it so that at every
//! instant it names only bytes that are there: `hi` rises after the bytes are in, `lo`
//! rises before a slot of an older lap is reused, and a move down passes through an empty
//! window. Start-up reads the window back (`commitlog::crash_tail`).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use super::PAGE;

/// `RMQTAIL1`, little-endian.
pub const MAGIC: u64 = u64::from_le_bytes(*b"RMQTAIL1");
/// Longest store path the header records.
pub const DIR_MAX: usize = 3072;

/// The page after the ring bytes in the file. Plain integers so a reader of the file
/// (start-up after a crash) can decode it with `from_le_bytes` at these offsets.
#[repr(C)]
pub struct Header {
    pub magic: u64,
    pub capacity: u64,
    /// Random per ring: the store's abort marker names it, so start-up never mistakes
    /// another run's ring for this store's.
    pub id: u64,
    /// The window `[lo, hi)` of physical offsets whose bytes the ring holds.
    pub lo: AtomicU64,
    pub hi: AtomicU64,
    pub dir_len: u64,
    pub dir: [u8; DIR_MAX],
}

/// Byte offsets of the header's fields, for readers of the file.
pub mod header_at {
    pub const MAGIC: usize = 0;
    pub const CAPACITY: usize = 8;
    pub const ID: usize = 16;
    pub const LO: usize = 24;
    pub const HI: usize = 32;
    pub const DIR_LEN: usize = 40;
    pub const DIR: usize = 48;
}

const _: () = assert!(std::mem::size_of::<Header>() <= PAGE);

pub struct TailRing {
    base: NonNull<u8>,
    capacity: usize,
    header: NonNull<Header>,
    _file: OwnedFd,
    /// The tmpfs file when the ring outlives the process.
    path: Option<PathBuf>,
}

// SAFETY: the mappings live as long as the TailRing; concurrent access to the ring bytes
// is coordinated by the CommitLog's published offsets (writer writes above `append_end`,
// readers read below it), which is the contract of `slice`/`slice_mut`; the header is
// only touched through atomics or before the ring is shared.
unsafe impl Send for TailRing {}
// SAFETY: as above.
unsafe impl Sync for TailRing {}

impl TailRing {
    /// A ring of `capacity` bytes (a multiple of the page size) in private memory: a
    /// process crash loses it.
    pub fn new(capacity: usize) -> io::Result<Self> {
        // SAFETY: the name is a valid NUL-terminated string; the result is checked.
        let fd = unsafe { libc::memfd_create(c"ringmq-tail".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor we own from here on.
        let file = unsafe { OwnedFd::from_raw_fd(fd) };
        Self::map(file, capacity, None, Path::new(""))
    }

    /// A ring in the file `path`, which must lie on a tmpfs (the ring must be shared
    /// memory to be registered with io_uring, and must not be written back to a disk).
    /// Whatever the file held is discarded. `store_dir` is recorded in the header.
    pub fn in_shared_memory(capacity: usize, path: &Path, store_dir: &Path) -> io::Result<Self> {
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in ring path"))?;
        // SAFETY: a valid NUL-terminated path; the result is checked.
        let fd = unsafe {
            libc::open(
                c_path.as_ptr(),
                libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
                0o600,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor we own from here on.
        let file = unsafe { OwnedFd::from_raw_fd(fd) };
        if !on_tmpfs(&file)? {
            let _ = std::fs::remove_file(path);
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{} is not on a tmpfs", path.display()),
            ));
        }
        // Reserve the pages now: a tmpfs that fills up later would kill the writer with
        // SIGBUS on its next store into the ring; refused here, the caller falls back.
        let len = (capacity + PAGE) as libc::off_t;
        // SAFETY: fallocate on our own descriptor; no memory is touched.
        if unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) } != 0 {
            let err = io::Error::last_os_error();
            let _ = std::fs::remove_file(path);
            return Err(err);
        }
        Self::map(file, capacity, Some(path.to_owned()), store_dir)
    }

    fn map(file: OwnedFd, capacity: usize, path: Option<PathBuf>, dir: &Path) -> io::Result<Self> {
        assert!(
            capacity >= 2 * PAGE && capacity.is_multiple_of(PAGE),
            "ring capacity {capacity}"
        );
        // SAFETY: ftruncate on our own descriptor; no memory is touched.
        if unsafe { libc::ftruncate(file.as_raw_fd(), (capacity + PAGE) as libc::off_t) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // Reserve 2*capacity of address space, then map the file's ring bytes into both
        // halves.
        // SAFETY: an anonymous PROT_NONE reservation at an address of the kernel's choice.
        let reserve = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                2 * capacity,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if reserve == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        for half in 0..2 {
            // SAFETY: MAP_FIXED replaces pages inside the reservation we own; both halves
            // map the same file range [0, capacity), which is the point of the ring.
            let addr = unsafe {
                libc::mmap(
                    (reserve as *mut u8).add(half * capacity) as *mut libc::c_void,
                    capacity,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | libc::MAP_FIXED | libc::MAP_POPULATE,
                    file.as_raw_fd(),
                    0,
                )
            };
            if addr == libc::MAP_FAILED {
                let err = io::Error::last_os_error();
                // SAFETY: unmapping the reservation made above.
                unsafe { libc::munmap(reserve, 2 * capacity) };
                return Err(err);
            }
        }
        // SAFETY: a new shared mapping of the file's header page (offset `capacity`, a
        // multiple of the page size) at an address of the kernel's choice.
        let header = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                capacity as libc::off_t,
            )
        };
        if header == libc::MAP_FAILED {
            let err = io::Error::last_os_error();
            // SAFETY: unmapping the ring mapped above.
            unsafe { libc::munmap(reserve, 2 * capacity) };
            return Err(err);
        }
        let header = NonNull::new(header as *mut Header).expect("mmap returned null");
        let dir = dir.as_os_str().as_bytes();
        let dir = &dir[..dir.len().min(DIR_MAX)];
        // SAFETY: the header page is ours alone (the file was just truncated or created,
        // no other thread has the ring yet), page-aligned and zero-filled by ftruncate;
        // Header is repr(C) of integers and atomics, valid for any bytes.
        unsafe {
            let h = header.as_ptr();
            (*h).capacity = capacity as u64;
            (*h).id = random_id();
            (*h).dir_len = dir.len() as u64;
            (&mut (*h).dir)[..dir.len()].copy_from_slice(dir);
            (*h).lo.store(0, Ordering::Relaxed);
            (*h).hi.store(0, Ordering::Relaxed);
            // Written last: a header without it is ignored.
            std::ptr::write_volatile(&raw mut (*h).magic, MAGIC);
        }
        let base = NonNull::new(reserve as *mut u8).expect("mmap returned null");
        Ok(TailRing {
            base,
            capacity,
            header,
            _file: file,
            path,
        })
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether the ring's bytes outlive a crash of this process.
    pub fn survives_process_crash(&self) -> bool {
        self.path.is_some()
    }

    /// The tmpfs file, when the ring has one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// This ring's random id (see [`Header::id`]).
    pub fn id(&self) -> u64 {
        self.header().id
    }

    fn header(&self) -> &Header {
        // SAFETY: the header mapping lives as long as self; after `map` only its atomics
        // change.
        unsafe { self.header.as_ref() }
    }

    /// Writer only: the ring holds `[.., hi)` now (the bytes below `hi` are in).
    #[inline]
    pub fn publish_end(&self, hi: u64) {
        self.header().hi.store(hi, Ordering::Release);
    }

    /// Writer only: ring bytes below `lo` may be overwritten from now on.
    #[inline]
    pub fn publish_start(&self, lo: u64) {
        self.header().lo.store(lo, Ordering::Release);
    }

    /// Writer only: the ring holds nothing past `end` any more (a truncation). When the
    /// ring does not reach back to `end`, the window becomes empty at `end`.
    pub fn cut_window(&self, end: u64) {
        let h = self.header();
        if end >= h.lo.load(Ordering::Acquire) {
            h.hi.store(end.min(h.hi.load(Ordering::Acquire)), Ordering::Release);
        } else {
            self.empty_window_at(end);
        }
    }

    /// Writer only: an empty window at `at`, reached through empty windows only.
    pub fn empty_window_at(&self, at: u64) {
        let h = self.header();
        h.hi.store(0, Ordering::Release);
        h.lo.store(at, Ordering::Release);
        h.hi.store(at, Ordering::Release);
    }

    /// The published window `[lo, hi)`.
    pub fn window(&self) -> (u64, u64) {
        let h = self.header();
        (h.lo.load(Ordering::Acquire), h.hi.load(Ordering::Acquire))
    }

    /// Removes the tmpfs file (a clean stop: everything in the ring is on disk). The
    /// mapping stays valid until the ring is dropped.
    pub fn remove_file(&self) {
        if let Some(path) = &self.path {
            if let Err(e) = std::fs::remove_file(path) {
                tracing::warn!(path = %path.display(), error = %e, "removing the tail ring file failed");
            }
        }
    }

    /// The address and length of the whole double mapping, for io_uring buffer registration.
    pub fn mapping(&self) -> (*mut u8, usize) {
        (self.base.as_ptr(), 2 * self.capacity)
    }

    /// Pointer to the bytes of physical offset `phys`; the following `capacity` bytes are
    /// contiguous.
    #[inline]
    pub fn ptr(&self, phys: u64) -> *mut u8 {
        let at = (phys % self.capacity as u64) as usize;
        // SAFETY: at < capacity, inside the first half of the mapping.
        unsafe { self.base.as_ptr().add(at) }
    }

    /// The bytes of `[phys, phys + len)`.
    ///
    /// # Safety
    /// The caller guarantees that no thread writes these ring bytes while the slice lives:
    /// they lie below the published `append_end` and at or above the published
    /// `retain_start` for the whole borrow (readers hold the tail's read lock).
    #[inline]
    pub unsafe fn slice(&self, phys: u64, len: usize) -> &[u8] {
        assert!(len <= self.capacity);
        // SAFETY: ptr(phys) + len stays inside the double mapping (len <= capacity); the
        // caller guarantees the bytes are not written concurrently.
        unsafe { std::slice::from_raw_parts(self.ptr(phys), len) }
    }

    /// Mutable bytes of `[phys, phys + len)`.
    ///
    /// # Safety
    /// Only the writer thread calls this, for bytes at or above `append_end` that no
    /// reader may read and no in-flight write covers; no other slice of them is alive.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice_mut(&self, phys: u64, len: usize) -> &mut [u8] {
        assert!(len <= self.capacity);
        // SAFETY: inside the mapping as in `slice`; exclusivity is the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr(phys), len) }
    }
}

impl Drop for TailRing {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the 2*capacity reservation and the header page created in
        // `map`; no slices outlive the ring because they borrow it.
        unsafe {
            libc::munmap(self.base.as_ptr() as *mut libc::c_void, 2 * self.capacity);
            libc::munmap(self.header.as_ptr() as *mut libc::c_void, PAGE);
        }
    }
}

/// Whether `file` lies on a tmpfs (shared memory that is never written back to a disk).
pub fn on_tmpfs(file: &OwnedFd) -> io::Result<bool> {
    const TMPFS_MAGIC: libc::c_long = 0x0102_1994;
    // SAFETY: statfs is plain old data; zeroed is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: fstatfs on an fd we own, into a struct we own.
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_type as libc::c_long == TMPFS_MAGIC)
}

fn random_id() -> u64 {
    let mut id = 0u64;
    // SAFETY: getrandom writes at most 8 bytes into our u64.
    let n = unsafe { libc::getrandom((&raw mut id).cast(), 8, 0) };
    if n != 8 || id == 0 {
        // Never 0 (0 means "no ring" in the abort marker); time and address as a fallback.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        id = t ^ (&raw const id as u64).rotate_left(32) | 1;
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_window_moves() {
        let ring = TailRing::new(4 * PAGE).unwrap();
        assert!(!ring.survives_process_crash());
        assert_ne!(ring.id(), 0);
        ring.publish_start(4096);
        ring.publish_end(9000);
        assert_eq!(ring.window(), (4096, 9000));
        ring.cut_window(5000);
        assert_eq!(ring.window(), (4096, 5000));
        ring.cut_window(100);
        assert_eq!(ring.window(), (100, 100));
    }

    #[test]
    fn wraps_contiguously() {
        let ring = TailRing::new(4 * PAGE).unwrap();
        let cap = ring.capacity() as u64;
        // SAFETY: single-threaded test; no other borrows alive.
        unsafe {
            let s = ring.slice_mut(cap - 3, 6);
            s.copy_from_slice(b"abcdef");
            assert_eq!(ring.slice(2 * cap - 3, 6), b"abcdef");
            assert_eq!(ring.slice(0, 3), b"def");
            assert_eq!(ring.slice(cap - 3, 3), b"abc");
        }
    }
}
