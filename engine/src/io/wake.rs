//! An eventfd that producer threads poke to wake a ring that sleeps in `io_uring_enter`.
//!
//! The ring keeps one 8-byte read of the eventfd armed; a poke completes it. Pokes are
//! only sent when the ring said it is going to sleep (see `Doorbell`), so the fast path
//! of an append costs no syscall.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

pub struct Doorbell {
    fd: OwnedFd,
    sleeping: AtomicBool,
}

impl Doorbell {
    pub fn new() -> io::Result<Self> {
        // SAFETY: eventfd has no memory arguments; a non-negative result is a new fd we own.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a freshly created descriptor that nothing else owns.
        Ok(Doorbell {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            sleeping: AtomicBool::new(false),
        })
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Called by the ring thread before it sleeps. The caller must re-check its queue
    /// after this returns and call [`Doorbell::awake`] if it finds work.
    pub fn going_to_sleep(&self) {
        self.sleeping.store(true, Ordering::SeqCst);
    }

    /// Called by the ring thread when it did not sleep after all, or after waking.
    pub fn awake(&self) {
        self.sleeping.store(false, Ordering::SeqCst);
    }

    /// Called by a producer after it enqueued work: rings only if the consumer sleeps.
    pub fn ring(&self) {
        if self.sleeping.swap(false, Ordering::SeqCst) {
            self.ring_always();
        }
    }

    /// Writes to the eventfd unconditionally (shutdown, rare events).
    pub fn ring_always(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live local to an eventfd we own. EAGAIN (counter
        // saturated) means a wake-up is already pending, which is all we want.
        unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                &one as *const u64 as *const libc::c_void,
                8,
            )
        };
    }
}
