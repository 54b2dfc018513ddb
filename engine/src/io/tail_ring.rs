//! The tail ring: the most recent `capacity` bytes of the CommitLog, in memory.
//!
//! The ring is one memfd mapped twice back to back, so the bytes of physical offsets
//! `[p, p + n)` with `n <= capacity` are always contiguous at `base + p % capacity`: a
//! record or an O_DIRECT write never has to be split at the wrap point. The writer thread
//! is the only one that mutates it; readers copy out of it. Who may touch which bytes is
//! decided by offsets the writer publishes (see `commitlog::tail`), not by this type.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

use super::PAGE;

pub struct TailRing {
    base: NonNull<u8>,
    capacity: usize,
    _memfd: OwnedFd,
}

// SAFETY: the mapping lives as long as the TailRing; concurrent access to its bytes is
// coordinated by the CommitLog's published offsets (writer writes above `append_end`,
// readers read below it), which is the contract of `slice`/`slice_mut`.
unsafe impl Send for TailRing {}
// SAFETY: as above.
unsafe impl Sync for TailRing {}

impl TailRing {
    /// Maps a ring of `capacity` bytes (a multiple of the page size).
    pub fn new(capacity: usize) -> io::Result<Self> {
        assert!(
            capacity >= 2 * PAGE && capacity.is_multiple_of(PAGE),
            "ring capacity {capacity}"
        );
        // SAFETY: the name is a valid NUL-terminated string; the result is checked.
        let fd = unsafe { libc::memfd_create(c"ringmq-tail".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor we own from here on.
        let memfd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: ftruncate on our own memfd; no memory is touched.
        if unsafe { libc::ftruncate(memfd.as_raw_fd(), capacity as libc::off_t) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // Reserve 2*capacity of address space, then map the memfd into both halves.
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
            // map the same memfd range [0, capacity), which is the point of the ring.
            let addr = unsafe {
                libc::mmap(
                    (reserve as *mut u8).add(half * capacity) as *mut libc::c_void,
                    capacity,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | libc::MAP_FIXED | libc::MAP_POPULATE,
                    memfd.as_raw_fd(),
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
        let base = NonNull::new(reserve as *mut u8).expect("mmap returned null");
        Ok(TailRing {
            base,
            capacity,
            _memfd: memfd,
        })
    }

    pub fn capacity(&self) -> usize {
        self.capacity
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
        // SAFETY: unmaps exactly the 2*capacity reservation created in `new`; no slices
        // outlive the ring because they borrow it.
        unsafe { libc::munmap(self.base.as_ptr() as *mut libc::c_void, 2 * self.capacity) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
