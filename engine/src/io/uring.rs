//! The writer's io_uring: O_DIRECT writes from registered buffers, fdatasync, and an
//! armed eventfd read that lets other threads wake the ring. Each operation carries a
//! caller-chosen `user_data`; completions come back as `(user_data, result)` pairs.
//!
//! Buffers handed to [`WriterRing::push_write`] must stay valid and unmodified until
//! their completion is reaped: the writer guarantees that by construction (the tail ring
//! lives as long as the ring, and the bytes of an in-flight write are below
//! `append_end`, except the partial last page, which is written from a snapshot copy).

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use io_uring::{opcode, types, IoUring};

use super::write_ring::{Completion, WriteRing};
use crate::{Error, Result};

pub struct WriterRing {
    ring: IoUring,
    /// Whether `register` succeeded, so `WriteFixed` may be used with buffer indices.
    registered: bool,
    /// Operations queued and io_uring_enter calls made, for the writer's metrics.
    pub sqes: u64,
    pub enters: u64,
}

impl WriterRing {
    /// Creates a ring with `entries` submission slots. Fails with
    /// [`Error::IoUringUnavailable`] when the kernel refuses io_uring.
    pub fn new(entries: u32) -> Result<Self> {
        let ring = IoUring::builder()
            .setup_single_issuer()
            .build(entries)
            .or_else(|_| IoUring::new(entries))
            .map_err(|source| Error::IoUringUnavailable { source })?;
        Ok(WriterRing {
            ring,
            registered: false,
            sqes: 0,
            enters: 0,
        })
    }

    /// Registers `buffers` as fixed buffers 0..n. Returns false (and keeps working with
    /// plain writes) if the kernel refuses, e.g. under a low RLIMIT_MEMLOCK.
    ///
    /// # Safety
    /// Every buffer must stay mapped for the life of this ring.
    pub unsafe fn register(&mut self, buffers: &[(*mut u8, usize)]) -> bool {
        let iovecs: Vec<libc::iovec> = buffers
            .iter()
            .map(|&(ptr, len)| libc::iovec {
                iov_base: ptr as *mut libc::c_void,
                iov_len: len,
            })
            .collect();
        // SAFETY: the caller promises the buffers outlive the ring.
        self.registered = unsafe { self.ring.submitter().register_buffers(&iovecs) }.is_ok();
        self.registered
    }

    pub fn is_registered(&self) -> bool {
        self.registered
    }

    /// Queues a write of `len` bytes at `ptr` to `fd` at `offset`. `buf_index` names the
    /// registered buffer containing `ptr` (ignored if registration failed). With `dsync`
    /// the write is durable when it completes (RWF_DSYNC, FUA where the device has it).
    /// With `link`, the next queued operation starts only after this one succeeds.
    ///
    /// # Safety
    /// `ptr..ptr+len` must stay valid and unchanged until this operation's completion is
    /// reaped.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn push_write(
        &mut self,
        fd: RawFd,
        ptr: *const u8,
        len: u32,
        offset: u64,
        buf_index: u16,
        dsync: bool,
        link: bool,
        user_data: u64,
    ) {
        let flags = if dsync { libc::RWF_DSYNC } else { 0 };
        let entry = if self.registered {
            opcode::WriteFixed::new(types::Fd(fd), ptr, len, buf_index)
                .offset(offset)
                .rw_flags(flags)
                .build()
        } else {
            opcode::Write::new(types::Fd(fd), ptr, len)
                .offset(offset)
                .rw_flags(flags)
                .build()
        };
        let entry = if link {
            entry.flags(io_uring::squeue::Flags::IO_LINK)
        } else {
            entry
        };
        // SAFETY: the caller keeps the buffer alive and unchanged until completion.
        unsafe { self.push(entry.user_data(user_data)) };
    }

    /// Queues one vectored write of `iovecs` to `fd` at `offset` (one device flush under
    /// `dsync`, where two separate writes would each flush).
    ///
    /// # Safety
    /// The iovec array and every buffer it names must stay valid and unchanged until this
    /// operation's completion is reaped.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn push_writev(
        &mut self,
        fd: RawFd,
        iovecs: *const libc::iovec,
        count: u32,
        offset: u64,
        dsync: bool,
        link: bool,
        user_data: u64,
    ) {
        let flags = if dsync { libc::RWF_DSYNC } else { 0 };
        let entry = opcode::Writev::new(types::Fd(fd), iovecs, count)
            .offset(offset)
            .rw_flags(flags)
            .build();
        let entry = if link {
            entry.flags(io_uring::squeue::Flags::IO_LINK)
        } else {
            entry
        };
        // SAFETY: the caller keeps the iovecs and their buffers alive until completion.
        unsafe { self.push(entry.user_data(user_data)) };
    }

    /// Queues an fdatasync of `fd`.
    pub fn push_fdatasync(&mut self, fd: RawFd, user_data: u64) {
        let entry = opcode::Fsync::new(types::Fd(fd))
            .flags(types::FsyncFlags::DATASYNC)
            .build()
            .user_data(user_data);
        // SAFETY: fsync references no user memory.
        unsafe { self.push(entry) };
    }

    /// Queues an 8-byte read of an eventfd into `*buf`.
    ///
    /// # Safety
    /// `buf` must stay valid until the completion is reaped.
    pub unsafe fn push_eventfd_read(&mut self, fd: RawFd, buf: *mut u64, user_data: u64) {
        let entry = opcode::Read::new(types::Fd(fd), buf as *mut u8, 8)
            .build()
            .user_data(user_data);
        // SAFETY: the caller keeps buf alive until completion.
        unsafe { self.push(entry) };
    }

    /// # Safety
    /// Memory referenced by `entry` must outlive its completion.
    unsafe fn push(&mut self, entry: io_uring::squeue::Entry) {
        self.sqes += 1;
        loop {
            // SAFETY: forwarded from the caller.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return;
            }
            // Submission queue full: hand what we have to the kernel and retry.
            self.enters += 1;
            let _ = self.ring.submit();
        }
    }

    /// Submits queued operations and waits for at least `want` completions or `timeout`.
    pub fn submit_and_wait(&mut self, want: usize, timeout: Option<Duration>) -> io::Result<()> {
        self.enters += 1;
        let res = match timeout {
            Some(t) if want > 0 => {
                let ts = types::Timespec::from(t);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(want, &args)
            }
            _ => self.ring.submit_and_wait(want),
        };
        match res {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Whether completions are waiting to be reaped (no syscall).
    pub fn has_completions(&mut self) -> bool {
        !self.ring.completion().is_empty()
    }

    /// Moves every available completion into `out`.
    pub fn reap(&mut self, out: &mut Vec<Completion>) {
        for cqe in self.ring.completion() {
            out.push(Completion {
                user_data: cqe.user_data(),
                result: cqe.result(),
            });
        }
    }
}

impl WriteRing for WriterRing {
    unsafe fn register(&mut self, buffers: &[(*mut u8, usize)]) -> bool {
        // SAFETY: forwarded from the caller.
        unsafe { WriterRing::register(self, buffers) }
    }

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
    ) {
        // SAFETY: forwarded from the caller.
        unsafe {
            WriterRing::push_write(
                self, fd, ptr, len, offset, buf_index, dsync, link, user_data,
            )
        }
    }

    unsafe fn push_writev(
        &mut self,
        fd: RawFd,
        iovecs: *const libc::iovec,
        count: u32,
        offset: u64,
        dsync: bool,
        link: bool,
        user_data: u64,
    ) {
        // SAFETY: forwarded from the caller.
        unsafe { WriterRing::push_writev(self, fd, iovecs, count, offset, dsync, link, user_data) }
    }

    fn push_fdatasync(&mut self, fd: RawFd, user_data: u64) {
        WriterRing::push_fdatasync(self, fd, user_data)
    }

    unsafe fn push_eventfd_read(&mut self, fd: RawFd, buf: *mut u64, user_data: u64) {
        // SAFETY: forwarded from the caller.
        unsafe { WriterRing::push_eventfd_read(self, fd, buf, user_data) }
    }

    fn submit_and_wait(&mut self, want: usize, timeout: Option<Duration>) -> io::Result<()> {
        WriterRing::submit_and_wait(self, want, timeout)
    }

    fn has_completions(&mut self) -> bool {
        WriterRing::has_completions(self)
    }

    fn reap(&mut self, out: &mut Vec<Completion>) {
        WriterRing::reap(self, out)
    }

    fn counters(&self) -> (u64, u64) {
        (self.sqes, self.enters)
    }
}
