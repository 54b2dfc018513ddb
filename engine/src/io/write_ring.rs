//! What the CommitLog writer asks of a ring, whichever disk is behind the gate: the
//! [`WriteRing`] trait the real io_uring ring and the simulated one implement, and the
//! [`Completion`] both hand back. A leaf, so `gate` and `uring` can both name it.

use std::io;
use std::os::fd::RawFd;

/// One reaped completion.
#[derive(Debug, Clone, Copy)]
pub struct Completion {
    pub user_data: u64,
    pub result: i32,
}

/// The CommitLog writer's asynchronous operations: writes (plain, vectored, RWF_DSYNC,
/// linked to the next op) and fdatasyncs of files named by their `raw_fd`, and an armed
/// read of the doorbell eventfd. Each op carries a `user_data`; completions come back as
/// `(user_data, result)` in any order. One virtual call per op, never per record.
pub trait WriteRing: Send {
    /// Registers `buffers` as fixed buffers 0..n; false if refused.
    ///
    /// # Safety
    /// Every buffer must stay mapped for the life of the ring.
    unsafe fn register(&mut self, buffers: &[(*mut u8, usize)]) -> bool;
    /// # Safety
    /// `ptr..ptr+len` must stay valid and unchanged until the completion is reaped.
    #[allow(clippy::too_many_arguments)]
    unsafe fn push_write(
        &mut self,
        fd: RawFd,
        ptr: *const u8,
        len: u32,
        offset: u64,
        buf_index: u16,
        dsync: bool,
        link: bool,
        user_data: u64,
    );
    /// # Safety
    /// The iovecs and every buffer they name must stay valid and unchanged until the
    /// completion is reaped.
    #[allow(clippy::too_many_arguments)]
    unsafe fn push_writev(
        &mut self,
        fd: RawFd,
        iovecs: *const libc::iovec,
        count: u32,
        offset: u64,
        dsync: bool,
        link: bool,
        user_data: u64,
    );
    fn push_fdatasync(&mut self, fd: RawFd, user_data: u64);
    /// # Safety
    /// `buf` must stay valid until the completion is reaped.
    unsafe fn push_eventfd_read(&mut self, fd: RawFd, buf: *mut u64, user_data: u64);
    /// Submits what is queued and waits for `want` completions or `timeout`.
    fn submit_and_wait(
        &mut self,
        want: usize,
        timeout: Option<std::time::Duration>,
    ) -> io::Result<()>;
    fn has_completions(&mut self) -> bool;
    fn reap(&mut self, out: &mut Vec<Completion>);
    /// (ops queued, submission syscalls made), for metrics.
    fn counters(&self) -> (u64, u64);
}
