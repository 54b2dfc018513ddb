//! The splice transfer path ([`SplicePath`]): CommitLog bytes go from a segment file's
//! page cache to a slave's socket without passing through user space (segment file ->
//! pipe -> socket). Runs on each slave's sender thread (`master`); io_uring runs the
//! splices themselves in that thread's io-wq workers.
//!
//! Frames are queued and sent in flushes. A frame is held back only while the log has
//! more written bytes right after it (the sender calls again at once: its loop streams
//! without waiting while `next < write_end`) and the pipe has room for another frame;
//! the frame that reaches the written end, a full pipe, a hot frame, a heartbeat and an
//! error all flush first. So nothing waits in the pipe while the sender sleeps.
//!
//! A flush runs rounds. One round, into an empty pipe, is a chain of operations, each run
//! only if the one before it moved everything it was asked to:
//!
//! 1. per queued frame: write its 12-byte header into the pipe (the only bytes copied,
//!    so a header leaves in the same socket send as the bodies), then splice its body
//!    from the segment's buffered fd into the pipe, for as many frames as the pipe's
//!    slots hold (a spliced page-cache page takes a slot, and a header one);
//! 2. splice everything in the pipe to the socket (`SPLICE_F_MORE` while frames remain).
//!
//! With io_uring (one ring per sender thread, created on it) a round is one IO_LINK
//! chain and one `io_uring_enter`. Every operation but the last carries
//! IOSQE_CQE_SKIP_SUCCESS, so a round posts exactly one completion: the last operation's,
//! or that of the first one that came up short or failed (a short transfer breaks the
//! link; the rest are cancelled without completions). The next round resumes from the
//! counts. io_uring always runs splice in its io-wq workers (`iou-wrk-<sender tid>`); a
//! linked chain runs on one worker back to back, and that CPU time belongs to this path
//! too. Without io_uring splice (old kernel, io_uring disabled) the same rounds run as
//! write(2)/splice(2) calls on the sender thread, after one log line per process.
//!
//! Only bytes below [`CommitLog::cold_end`] are spliced: they are out of the tail ring,
//! in whole pages the writer never writes again, so the page cache cannot meet an
//! O_DIRECT write in flight. Frames reaching above it (the hot tail) go out by copy from
//! the ring ([`CopyPath`]) on this path; the send_zc path
//! ([`SendZcPath`](super::send_zc::SendZcPath)) sends them without a copy and uses this
//! path for everything older.
//!
//! The pipe is O_NONBLOCK: a full pipe answers EAGAIN instead of blocking a splice into
//! it (splice_to_socket decides blocking by the socket's own flags, so a blocking socket
//! still blocks, up to its SO_SNDTIMEO). A socket that answers EAGAIN is polled for
//! POLLOUT up to its write timeout. A peer that closed shows up as EPIPE/ECONNRESET from
//! the socket splice and fails the flush with that error.

use std::io::{self, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::{opcode, squeue, types, IoUring};
use ringmq_engine::commitlog::segment::SegmentFile;
use ringmq_engine::commitlog::CommitLog;

use super::copy::CopyPath;
use super::path::{Accounting, PathKind, TransferPath};
use super::uring::{self, RingSpec};
use crate::protocol::{encode_transfer_header, TRANSFER_HEADER_SIZE};

const HDR: usize = TRANSFER_HEADER_SIZE;
const PAGE: usize = 4096;
/// Largest pipe asked for (the unprivileged default of /proc/sys/fs/pipe-max-size).
const PIPE_MAX: usize = 1 << 20;
/// Submission queue entries: the longest chain (two operations per frame, one drain).
const RING_ENTRIES: u32 = 128;
/// Write timeout assumed for a socket that has none.
const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(20);
/// Rounds in a row that may move nothing before the flush fails (a kernel answering
/// EAGAIN on an empty pipe forever must not spin the sender).
const MAX_IDLE_ROUNDS: u32 = 1000;

/// A frame waiting to be flushed.
struct Queued {
    seg: Arc<SegmentFile>,
    /// File offset of the body's first byte.
    off: u64,
    len: usize,
    phys: i64,
    /// Read by an io_uring Write: stays in place while a round is in flight (the queue
    /// is not touched until the round's completion is reaped).
    header: [u8; HDR],
}

/// One operation of a round.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// Header of queued frame `.0` -> pipe.
    Header(usize),
    /// `len` body bytes of queued frame `frame`, from file offset `off` -> pipe.
    Fill { frame: usize, off: u64, len: usize },
    /// `len` bytes pipe -> socket.
    Drain { len: usize, more: bool },
}

impl Op {
    fn len(self) -> usize {
        match self {
            Op::Header(_) => HDR,
            Op::Fill { len, .. } | Op::Drain { len, .. } => len,
        }
    }
}

enum Driver {
    Uring(Box<IoUring>),
    Syscall,
}

/// The splice transfer path (see the module docs).
pub struct SplicePath {
    driver: Driver,
    pipe_r: OwnedFd,
    pipe_w: OwnedFd,
    /// Page slots of the pipe (each spliced page and each header takes one).
    pipe_slots: usize,
    /// Most body bytes one fill asks for (tests lower it to force many rounds).
    fill_max: usize,
    queue: Vec<Queued>,
    /// Pipe slots the queued frames take.
    queued_slots: usize,
    /// Truncation epoch when the first queued frame was queued.
    epoch: u64,
    ops: Vec<Op>,
    /// For the hot tail, and for the rest of a flush after a file refused to splice.
    copy: CopyPath,
    /// False once a segment file refused splice (EINVAL): copy from then on.
    file_splice: bool,
}

impl SplicePath {
    /// A splice path for frames of up to `batch_size` bytes. Uses io_uring unless
    /// `syscall_only` or io_uring splice is unavailable (then splice(2), logged once).
    /// Create it on the thread that will use it.
    pub fn new(batch_size: usize, syscall_only: bool) -> io::Result<SplicePath> {
        let (pipe_r, pipe_w, pipe_slots) = sized_pipe()?;
        let driver = if syscall_only {
            Driver::Syscall
        } else {
            match uring() {
                Ok(ring) => Driver::Uring(Box::new(ring)),
                Err(e) => {
                    static LOGGED: AtomicBool = AtomicBool::new(false);
                    if !LOGGED.swap(true, Ordering::Relaxed) {
                        tracing::warn!(error = %e, "io_uring splice unavailable; HA senders use splice(2)");
                    }
                    Driver::Syscall
                }
            }
        };
        Ok(SplicePath {
            driver,
            pipe_r,
            pipe_w,
            pipe_slots,
            fill_max: batch_size.max(1),
            queue: Vec::new(),
            queued_slots: 0,
            epoch: 0,
            ops: Vec::with_capacity(RING_ENTRIES as usize),
            copy: CopyPath::new(batch_size),
            file_splice: true,
        })
    }

    /// Lowers the most body bytes one fill asks for (at least 1), so a frame takes
    /// several rounds (tests).
    pub fn limit_fill(&mut self, bytes: usize) {
        self.fill_max = self.fill_max.min(bytes.max(1));
    }

    /// Whether the rounds go through io_uring (false: splice(2)).
    pub fn uses_io_uring(&self) -> bool {
        matches!(self.driver, Driver::Uring(_))
    }

    fn kind(&self) -> PathKind {
        match self.driver {
            Driver::Uring(_) => PathKind::Splice,
            Driver::Syscall => PathKind::SpliceSyscall,
        }
    }

    /// Sends (or queues) one frame; returns (spliced, copied) body bytes. No accounting
    /// (the caller books the frame under its own kind).
    pub(crate) fn send(
        &mut self,
        log: &CommitLog,
        sock: &mut TcpStream,
        phys: i64,
        len: usize,
    ) -> io::Result<(usize, usize)> {
        let end = phys + len as i64;
        if len == 0 || !self.file_splice || end > log.cold_end() {
            self.flush(log, sock)?;
            self.copy.send_copy(log, sock, phys, len, true)?;
            return Ok((0, len));
        }
        let seg = log.segment_at(phys).ok_or_else(|| {
            io::Error::other(format!("offset {phys} is not in any CommitLog segment"))
        })?;
        let off = phys as u64 - seg.base;
        if off + len as u64 > seg.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("range {phys}+{len} crosses the end of segment {}", seg.base),
            ));
        }
        let slots = 1 + spanned_pages(off, len);
        if !self.queue.is_empty()
            && (self.queued_slots + slots > self.pipe_slots
                || 2 * (self.queue.len() + 1) >= RING_ENTRIES as usize)
        {
            self.flush(log, sock)?;
        }
        if self.queue.is_empty() {
            self.epoch = log.truncation_epoch();
        }
        self.queue.push(Queued {
            seg,
            off,
            len,
            phys,
            header: encode_transfer_header(phys, len),
        });
        self.queued_slots += slots;
        // Hold back only while the caller is about to send the bytes right after these.
        if end >= log.process_safe_end() || self.queued_slots >= self.pipe_slots {
            self.flush(log, sock)?;
        }
        Ok((len, 0))
    }

    /// Sends every queued frame. On error the queue is dropped (the stream is broken).
    pub(crate) fn flush(&mut self, log: &CommitLog, sock: &mut TcpStream) -> io::Result<()> {
        if self.queue.is_empty() {
            return Ok(());
        }
        let res = self.flush_queue(log, sock);
        self.queue.clear();
        self.queued_slots = 0;
        res?;
        if log.truncation_epoch() != self.epoch {
            // A master never truncates; a node cut while streaming must not go on.
            return Err(io::Error::other(
                "the CommitLog was truncated while frames were being sent",
            ));
        }
        Ok(())
    }

    fn flush_queue(&mut self, log: &CommitLog, sock: &mut TcpStream) -> io::Result<()> {
        let sock_fd = sock.as_raw_fd();
        let n = self.queue.len();
        // Cursor: frame `i`, its header in the pipe or not, `body` bytes of it in the pipe
        // (or sent); `in_pipe` bytes in the pipe, not yet on the socket.
        let (mut i, mut hdr_done, mut body) = (0usize, false, 0usize);
        let mut in_pipe = 0usize;
        let mut copy_rest = false;
        let mut stalled_since: Option<Instant> = None;
        let mut idle = 0u32;
        while (i < n && !copy_rest) || in_pipe > 0 {
            self.plan(i, hdr_done, body, in_pipe, copy_rest);
            if self.ops.is_empty() {
                return Err(io::Error::other("no room in an empty pipe for a frame"));
            }
            let (k, res) = self.round(sock_fd)?;
            let mut moved = false;
            for idx in 0..=k {
                let op = self.ops[idx];
                let r = if idx < k { op.len() as i32 } else { res };
                match op {
                    Op::Header(_) => {
                        if r == HDR as i32 {
                            hdr_done = true;
                            in_pipe += HDR;
                            moved = true;
                        } else if r != -libc::EAGAIN && r != -libc::EINTR {
                            return Err(op_error("write a frame header into the pipe", r));
                        }
                    }
                    Op::Fill { off, .. } => match r {
                        r if r > 0 => {
                            body += r as usize;
                            in_pipe += r as usize;
                            moved = true;
                            if body == self.queue[i].len {
                                (i, hdr_done, body) = (i + 1, false, 0);
                            }
                        }
                        0 => {
                            return Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                format!(
                                    "segment {} ended at file offset {off}",
                                    self.queue[i].seg.base
                                ),
                            ))
                        }
                        r if r == -libc::EAGAIN || r == -libc::EINTR => {}
                        r if r == -libc::EINVAL || r == -libc::EOPNOTSUPP || r == -libc::ENOSYS => {
                            tracing::warn!(
                                segment = %self.queue[i].seg.path.display(),
                                error = %io::Error::from_raw_os_error(-r),
                                "a segment file cannot be spliced; the HA sender copies instead"
                            );
                            self.file_splice = false;
                            copy_rest = true;
                        }
                        r => return Err(op_error("splice segment -> pipe", r)),
                    },
                    Op::Drain { .. } => match r {
                        r if r > 0 => {
                            in_pipe -= r as usize;
                            stalled_since = None;
                            moved = true;
                        }
                        0 => {
                            return Err(io::Error::new(
                                io::ErrorKind::WriteZero,
                                "splice pipe -> socket moved nothing",
                            ))
                        }
                        r if r == -libc::EINTR => {}
                        r if r == -libc::EAGAIN => {
                            wait_writable(sock, &mut stalled_since)?;
                            moved = true;
                        }
                        r => return Err(op_error("splice pipe -> socket", r)),
                    },
                }
            }
            idle = if moved { 0 } else { idle + 1 };
            if idle > MAX_IDLE_ROUNDS {
                return Err(io::Error::other(format!(
                    "splicing made no progress ({in_pipe} bytes in the pipe)"
                )));
            }
        }
        if copy_rest {
            // The pipe is empty; frame `i` has its header on the socket if `hdr_done`.
            for (j, q) in self.queue.iter().enumerate().skip(i) {
                let (phys, len, header) = if j == i && hdr_done {
                    (q.phys + body as i64, q.len - body, false)
                } else {
                    (q.phys, q.len, true)
                };
                self.copy.send_copy(log, sock, phys, len, header)?;
            }
        }
        Ok(())
    }

    /// Fills `self.ops` with the next round, from the cursor.
    fn plan(&mut self, i: usize, hdr_done: bool, body: usize, in_pipe: usize, copy_rest: bool) {
        self.ops.clear();
        let max_ops = RING_ENTRIES as usize - 1;
        let mut planned = 0usize;
        let (mut j, mut jh, mut jb) = (i, hdr_done, body);
        // Fill only an empty pipe, so its slots are all free.
        if in_pipe == 0 && !copy_rest {
            let mut free = self.pipe_slots;
            while j < self.queue.len() && self.ops.len() + 2 <= max_ops {
                let q = &self.queue[j];
                if !jh {
                    if free < 2 {
                        break;
                    }
                    self.ops.push(Op::Header(j));
                    planned += HDR;
                    free -= 1;
                }
                let at = q.off + jb as u64;
                let fits = (free * PAGE).saturating_sub((at % PAGE as u64) as usize);
                let take = (q.len - jb).min(fits).min(self.fill_max);
                if take == 0 {
                    break;
                }
                self.ops.push(Op::Fill {
                    frame: j,
                    off: at,
                    len: take,
                });
                planned += take;
                free -= spanned_pages(at, take);
                jb += take;
                if jb < q.len {
                    break;
                }
                (j, jh, jb) = (j + 1, false, 0);
            }
        }
        let more = j < self.queue.len() && !copy_rest;
        if in_pipe + planned > 0 {
            self.ops.push(Op::Drain {
                len: in_pipe + planned,
                more,
            });
        }
    }

    /// Runs `self.ops`: each after the one before moved everything. Returns `(k, r)`:
    /// operations before `k` moved everything, operation `k` returned `r` (bytes or
    /// -errno), the ones after it did not run.
    fn round(&mut self, sock_fd: RawFd) -> io::Result<(usize, i32)> {
        let (pipe_r, pipe_w) = (self.pipe_r.as_raw_fd(), self.pipe_w.as_raw_fd());
        let last = self.ops.len() - 1;
        match &mut self.driver {
            Driver::Syscall => {
                for (idx, op) in self.ops.iter().enumerate() {
                    let r = match *op {
                        Op::Header(f) => {
                            let h = &self.queue[f].header;
                            // SAFETY: writes HDR bytes from a live header to our pipe.
                            syscall_result(unsafe {
                                libc::write(pipe_w, h.as_ptr() as *const libc::c_void, HDR)
                            })
                        }
                        Op::Fill { frame, off, len } => {
                            let mut at = off as libc::loff_t;
                            // SAFETY: `at` is a live loff_t the kernel updates; the out
                            // offset is null (a pipe). No user memory holds the data.
                            syscall_result(unsafe {
                                libc::splice(
                                    self.queue[frame].seg.read_file().as_raw_fd(),
                                    &mut at,
                                    pipe_w,
                                    std::ptr::null_mut(),
                                    len,
                                    libc::SPLICE_F_NONBLOCK,
                                )
                            })
                        }
                        Op::Drain { len, more } => {
                            // SAFETY: both offsets are null (pipe, socket); no user memory.
                            syscall_result(unsafe {
                                libc::splice(
                                    pipe_r,
                                    std::ptr::null_mut(),
                                    sock_fd,
                                    std::ptr::null_mut(),
                                    len,
                                    if more { libc::SPLICE_F_MORE } else { 0 },
                                )
                            })
                        }
                    };
                    if idx == last || r != op.len() as i32 {
                        return Ok((idx, r));
                    }
                }
                unreachable!("the last operation returns")
            }
            Driver::Uring(ring) => {
                for (idx, op) in self.ops.iter().enumerate() {
                    let e = match *op {
                        Op::Header(f) => opcode::Write::new(
                            types::Fd(pipe_w),
                            self.queue[f].header.as_ptr(),
                            HDR as u32,
                        )
                        .offset(u64::MAX)
                        .build(),
                        Op::Fill { frame, off, len } => opcode::Splice::new(
                            types::Fd(self.queue[frame].seg.read_file().as_raw_fd()),
                            off as i64,
                            types::Fd(pipe_w),
                            -1,
                            len as u32,
                        )
                        .flags(libc::SPLICE_F_NONBLOCK)
                        .build(),
                        Op::Drain { len, more } => opcode::Splice::new(
                            types::Fd(pipe_r),
                            -1,
                            types::Fd(sock_fd),
                            -1,
                            len as u32,
                        )
                        .flags(if more { libc::SPLICE_F_MORE } else { 0 })
                        .build(),
                    };
                    let e = if idx < last {
                        e.flags(squeue::Flags::IO_LINK | squeue::Flags::SKIP_SUCCESS)
                    } else {
                        e
                    };
                    // SAFETY: a Write reads a queued header, which stays in place until
                    // this round's completion is reaped below (the queue is not touched
                    // meanwhile) or is leaked if the ring fails first; the splices name
                    // only fds, which the kernel holds references to (the segment files
                    // are kept open by the queue). The queue was empty (every round
                    // reaps its one completion) and a round has at most RING_ENTRIES
                    // operations, so the push cannot fail.
                    unsafe { ring.submission().push(&e.user_data(idx as u64)) }
                        .map_err(|_| io::Error::other("io_uring submission queue full"))?;
                }
                loop {
                    match ring.submit_and_wait(1) {
                        Ok(_) => {}
                        Err(e)
                            if matches!(
                                e.raw_os_error(),
                                Some(libc::EINTR) | Some(libc::EAGAIN) | Some(libc::EBUSY)
                            ) => {}
                        Err(e) => {
                            // Operations may still be in flight: keep what they read.
                            std::mem::forget(std::mem::take(&mut self.queue));
                            return Err(io::Error::new(
                                e.kind(),
                                format!("io_uring_enter with splices in flight: {e}"),
                            ));
                        }
                    }
                    if let Some(cqe) = ring.completion().next() {
                        return Ok((cqe.user_data() as usize, cqe.result()));
                    }
                }
            }
        }
    }
}

impl TransferPath for SplicePath {
    fn send_data(
        &mut self,
        log: &CommitLog,
        sock: &mut TcpStream,
        phys: i64,
        len: usize,
    ) -> io::Result<()> {
        let acct = Accounting::start(self.kind());
        let res = self.send(log, sock, phys, len);
        acct.finish(res.as_ref().ok().copied());
        res.map(|_| ())
    }

    fn send_heartbeat(&mut self, sock: &mut TcpStream, phys: i64) -> io::Result<()> {
        // Frames are held back only while more written data follows at once, which the
        // sender streams before it ever heartbeats: a queue here is a broken invariant.
        if !self.queue.is_empty() {
            let n = self.queue.len();
            return Err(io::Error::other(format!(
                "{n} frames still queued at a heartbeat"
            )));
        }
        sock.write_all(&encode_transfer_header(phys, 0))
    }

    fn name(&self) -> &'static str {
        self.kind().name()
    }
}

/// Pages (pipe slots) that `len` bytes from file offset `off` span.
pub(super) fn spanned_pages(off: u64, len: usize) -> usize {
    ((off % PAGE as u64) as usize + len).div_ceil(PAGE)
}

/// A ring on which linked IORING_OP_SPLICE with CQE skipping works.
fn uring() -> io::Result<IoUring> {
    uring::build(&RingSpec {
        entries: RING_ENTRIES,
        cq_entries: None,
        coop_taskrun: false,
        timed_waits: false,
        opcodes: &[
            (opcode::Splice::CODE, "IORING_OP_SPLICE"),
            (opcode::Write::CODE, "IORING_OP_WRITE"),
        ],
    })
}

/// A non-blocking pipe of up to [`PIPE_MAX`] bytes: (read end, write end, the page
/// slots a round may fill, one kept spare so that a header written after a partial page
/// never merges into it).
pub(super) fn sized_pipe() -> io::Result<(OwnedFd, OwnedFd, usize)> {
    let (pipe_r, pipe_w) = pipe()?;
    // SAFETY: fcntl on a pipe fd we own; F_SETPIPE_SZ takes an int and touches no
    // user memory. Failure (over the user's pipe quota) leaves the default size.
    let set = unsafe {
        libc::fcntl(
            pipe_w.as_raw_fd(),
            libc::F_SETPIPE_SZ,
            PIPE_MAX as libc::c_int,
        )
    };
    let cap = if set > 0 {
        set as usize
    } else {
        // SAFETY: as above; F_GETPIPE_SZ only returns the size.
        let got = unsafe { libc::fcntl(pipe_w.as_raw_fd(), libc::F_GETPIPE_SZ) };
        if got > 0 {
            got as usize
        } else {
            64 * 1024
        }
    };
    Ok((pipe_r, pipe_w, (cap / PAGE).saturating_sub(1).max(3)))
}

/// A non-blocking, close-on-exec pipe: (read end, write end).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a live array of two ints the kernel fills.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A syscall's return as an io_uring-style result: bytes, or -errno.
fn syscall_result(r: isize) -> i32 {
    if r < 0 {
        -io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    } else {
        r.min(i32::MAX as isize) as i32
    }
}

pub(super) fn op_error(what: &str, res: i32) -> io::Error {
    if res < 0 {
        let e = io::Error::from_raw_os_error(-res);
        io::Error::new(e.kind(), format!("{what}: {e}"))
    } else {
        io::Error::other(format!("{what}: short transfer of {res} bytes"))
    }
}

/// Waits until the socket is writable, failing once it stayed unwritable for its write
/// timeout (counted from the first EAGAIN without progress since).
fn wait_writable(sock: &TcpStream, stalled_since: &mut Option<Instant>) -> io::Result<()> {
    let timeout = sock.write_timeout()?.unwrap_or(DEFAULT_SEND_TIMEOUT);
    let since = *stalled_since.get_or_insert_with(Instant::now);
    let left = timeout.saturating_sub(since.elapsed());
    if left.is_zero() {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the slave's socket was not writable for {} ms",
                timeout.as_millis()
            ),
        ));
    }
    let mut pfd = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    let ms = left.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
    // SAFETY: `pfd` is one live pollfd for the duration of the call.
    let r = unsafe { libc::poll(&mut pfd, 1, ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    // Writable, an error or hang-up (the next splice reports it), or a timeout (the next
    // EAGAIN reports it).
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_fits_the_pipe() {
        let p = SplicePath::new(32 * 1024, true).unwrap();
        assert!(
            p.pipe_slots > 1 + spanned_pages(4095, 32 * 1024),
            "pipe slots {}",
            p.pipe_slots
        );
        assert!(!p.uses_io_uring());
    }

    #[test]
    fn pages_spanned() {
        assert_eq!(spanned_pages(0, 4096), 1);
        assert_eq!(spanned_pages(1, 4096), 2);
        assert_eq!(spanned_pages(4095, 1), 1);
        assert_eq!(spanned_pages(4095, 2), 2);
    }

    #[test]
    fn syscall_results_carry_errno() {
        assert_eq!(syscall_result(5), 5);
        // SAFETY: closing an fd that is certainly not open sets errno to EBADF.
        let r = unsafe { libc::close(-1) };
        assert_eq!(syscall_result(r as isize), -libc::EBADF);
    }
}
