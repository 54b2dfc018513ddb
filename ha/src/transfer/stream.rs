//! [`Stream`]: one slave's outgoing CommitLog stream as a state machine driven by the
//! master's HA loop (`master_loop`), which owns the one io_uring every slave's stream
//! shares. Runs on that loop thread (`ringmq-ha-loop`) only; io_uring runs the splices in
//! the loop's io-wq workers.
//!
//! A stream has at most one *job* in flight, and the loop asks for the next one
//! ([`Stream::pump`]) only once the last finished, so no slave gets more than one job's
//! worth of a turn however fast its socket drains. A job is one of:
//!
//! | job | bytes | how |
//! | --- | --- | --- |
//! | zc | hot frames of at least [`ZC_MIN_BYTES`], pinned in the tail ring | rounds of linked Send (12-byte header, MSG_MORE) + SEND_ZC (body, fixed buffer 0 = the registered ring) per frame, as [`SendZcPath`](super::send_zc::SendZcPath) does; the pins stay until each send's notification |
//! | splice | frames below [`CommitLog::cold_end`] | rounds of linked Write (header -> pipe), Splice (segment -> pipe) per frame, then one Splice (pipe -> socket), as [`SplicePath`](super::splice::SplicePath) does; one completion per round |
//! | send | small hot frames, the copy path, heartbeats, and whatever a socket or file refused to take zero-copy | one Send (MSG_WAITALL) of a buffer the stream owns |
//!
//! Buffer lifetime: every SQE a job submits names memory the stream owns (its header
//! array, its send buffer) or a tail pin it holds; none of it is written, moved or freed
//! until every operation naming it has posted its completion ([`Stream::quiet`]). The loop
//! frees a connection only when its stream is quiet; one that never gets quiet (the
//! kernel did not answer after the socket was reset) is leaked, never freed.
//!
//! With `splice-syscall` asked for, the stream splices through io_uring as `splice` does
//! (a loop thread must not block in splice(2)), booking its bytes under the kind asked
//! for. Sockets stay blocking: io_uring waits for them itself, so no send on this path
//! blocks the loop; a stream that makes no progress for the write timeout is aborted by
//! the loop ([`Stream::check`]).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use ringmq_engine::commitlog::segment::SegmentFile;
use ringmq_engine::commitlog::{CommitLog, TailBuffer, TailPin};

use super::path::{count_zc_notifs, Accounting, Moved, PathKind};
use super::send_zc::{
    abort_socket, zc_support, IORING_NOTIF_USAGE_ZC_COPIED, IORING_SEND_ZC_REPORT_USAGE,
    MAX_OUTSTANDING, MAX_PINNED_BYTES, MAX_ROUND_FRAMES, ZC_MIN_BYTES,
};
use super::send_zc_state::{Cursor, Op as ZcOp, Round, Sends, Settled};
use super::splice::{op_error, sized_pipe, spanned_pages};
use super::uring::{self, RingSpec};
use crate::protocol::{encode_transfer_header, TRANSFER_HEADER_SIZE};

const HDR: usize = TRANSFER_HEADER_SIZE;
const PAGE: usize = 4096;
/// Most bytes one send job copies (several small frames go in one Send).
const SEND_JOB_MAX: usize = 256 * 1024;
/// Rounds in a row that may move nothing before the stream fails.
const MAX_IDLE_ROUNDS: u32 = 1000;
/// Submission queue entries of the loop ring: two full rounds of any job at once.
pub(crate) const LOOP_SQ_ENTRIES: u32 = 256;
/// Completion queue of the loop ring (the kernel keeps overflow without dropping).
const LOOP_CQ_ENTRIES: u32 = 8192;

/// `user_data` layout: slot (20 bits) | tag (4 bits) | id (40 bits).
const ID_BITS: u32 = 40;
const TAG_BITS: u32 = 4;
const ID_MASK: u64 = (1 << ID_BITS) - 1;
/// Tags of the stream's operations; the loop's own start at [`FIRST_LOOP_TAG`].
const TAG_SEND: u8 = 1;
const TAG_SPLICE: u8 = 2;
const TAG_ZC: u8 = 3;
pub(crate) const FIRST_LOOP_TAG: u8 = 4;

/// The `user_data` of operation `id` with `tag` of the connection in `slot`.
pub(crate) fn user_data(slot: u32, tag: u8, id: u64) -> u64 {
    debug_assert!(slot < 1 << (64 - ID_BITS - TAG_BITS) && tag < 1 << TAG_BITS);
    (slot as u64) << (ID_BITS + TAG_BITS) | (tag as u64) << ID_BITS | (id & ID_MASK)
}

/// (slot, tag, id) of a `user_data`.
pub(crate) fn split_user_data(ud: u64) -> (u32, u8, u64) {
    (
        (ud >> (ID_BITS + TAG_BITS)) as u32,
        ((ud >> ID_BITS) & ((1 << TAG_BITS) - 1)) as u8,
        ud & ID_MASK,
    )
}

/// The loop's io_uring: linked operations with CQE skipping, timed waits, cooperative
/// task work where the kernel has it, and every opcode the loop uses.
pub(crate) fn loop_ring() -> io::Result<IoUring> {
    uring::build(&RingSpec {
        entries: LOOP_SQ_ENTRIES,
        cq_entries: Some(LOOP_CQ_ENTRIES),
        coop_taskrun: true,
        timed_waits: true,
        opcodes: &[
            (opcode::Accept::CODE, "IORING_OP_ACCEPT"),
            (opcode::Recv::CODE, "IORING_OP_RECV"),
            (opcode::Send::CODE, "IORING_OP_SEND"),
            (opcode::Read::CODE, "IORING_OP_READ"),
            (opcode::Write::CODE, "IORING_OP_WRITE"),
            (opcode::Splice::CODE, "IORING_OP_SPLICE"),
        ],
    })
}

/// Pushes `entries` (one IO_LINK chain, kept in one submission) onto the loop ring,
/// submitting what is queued first if they do not fit.
///
/// # Safety
/// Every buffer an entry names must stay valid and unmoved until the entry's completion
/// (or, for a SEND_ZC, its notification) has been reaped.
pub(crate) unsafe fn push_chain(ring: &mut IoUring, entries: &[squeue::Entry]) -> io::Result<()> {
    for _ in 0..8 {
        // SAFETY: the caller keeps every named buffer alive (this fn's contract).
        if unsafe { ring.submission().push_multiple(entries) }.is_ok() {
            return Ok(());
        }
        // Without SQPOLL the kernel consumes every queued entry in io_uring_enter (EBUSY:
        // completions overflowed; the kernel keeps them, the next reap takes them).
        match ring.submit() {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINTR) | Some(libc::EAGAIN) | Some(libc::EBUSY)
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "a chain of {} operations does not fit the HA loop's submission queue",
        entries.len()
    )))
}

/// What every stream of one loop shares: the tail ring registered as fixed buffer 0 of
/// the loop ring, whether SEND_ZC works, and the id counter of SEND_ZC operations (ids
/// never repeat within a loop, so a late notification can never be taken for a newer
/// send's).
pub(crate) struct LoopShared {
    /// Declared in the loop after the ring: outlives the registration.
    registered: Option<TailBuffer>,
    registered_len: usize,
    zc: bool,
    report_usage: bool,
    next_id: u64,
}

impl LoopShared {
    /// Probes SEND_ZC and registers `log`'s tail ring with `ring` (call before any
    /// operation is submitted).
    pub(crate) fn new(ring: &IoUring, log: &CommitLog, batch: usize) -> LoopShared {
        let (zc, report_usage) = match zc_support() {
            Ok(usage) => (true, usage),
            Err(e) => {
                static LOGGED: AtomicBool = AtomicBool::new(false);
                if !LOGGED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "no IORING_OP_SEND_ZC: the HA loop splices and copies instead");
                }
                (false, false)
            }
        };
        let mut shared = LoopShared {
            registered: None,
            registered_len: 0,
            zc,
            report_usage,
            next_id: 1,
        };
        if zc {
            let buf = log.tail_buffer();
            // Frames start in the first half; one batch past it covers every frame.
            let len = (buf.len() / 2 + batch.next_multiple_of(PAGE)).min(buf.len());
            let iov = [libc::iovec {
                iov_base: buf.as_ptr() as *mut libc::c_void,
                iov_len: len,
            }];
            // SAFETY: the mapping stays mapped while `buf` lives; it is kept in
            // `shared.registered`, which the loop drops after its ring (so after the
            // registration ends). No operation is in flight yet.
            match unsafe { ring.submitter().register_buffers(&iov) } {
                Ok(()) => {
                    shared.registered = Some(buf);
                    shared.registered_len = len;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot register the tail ring with the HA loop's io_uring; send_zc pins pages per send")
                }
            }
        }
        shared
    }

    fn take_ids(&mut self, n: u64) -> u64 {
        let base = self.next_id;
        self.next_id += n;
        assert!(self.next_id < ID_MASK, "SEND_ZC ids exhausted");
        base
    }
}

/// A frame spliced from a segment file (its header in `Stream::hdrs` at the same index).
struct SpliceFrame {
    seg: Arc<SegmentFile>,
    off: u64,
    len: usize,
}

#[derive(Debug, Clone, Copy)]
enum SpliceOp {
    Header(usize),
    Fill { frame: usize, off: u64, len: usize },
    Drain { len: usize, more: bool },
}

impl SpliceOp {
    fn len(self) -> usize {
        match self {
            SpliceOp::Header(_) => HDR,
            SpliceOp::Fill { len, .. } | SpliceOp::Drain { len, .. } => len,
        }
    }
}

#[derive(Default)]
struct SpliceJob {
    frames: Vec<SpliceFrame>,
    ops: Vec<SpliceOp>,
    /// Cursor: frame `i`, its header in the pipe or not, `body` bytes of it in the pipe.
    i: usize,
    hdr_done: bool,
    body: usize,
    /// Bytes in the pipe, not yet on the socket.
    in_pipe: usize,
    /// A file refused splice: drain the pipe, then copy the rest.
    copy_rest: bool,
    idle: u32,
}

#[derive(Default)]
struct ZcJob {
    pins: Vec<Arc<TailPin>>,
    at: Cursor,
    idle: u32,
}

enum Job {
    None,
    Send { sent: usize },
    Splice(SpliceJob),
    Zc(ZcJob),
}

/// One slave's stream (see the module docs).
pub(crate) struct Stream {
    kind: PathKind,
    slot: u32,
    fd: RawFd,
    batch: i64,
    segment_size: i64,
    /// Submissions awaiting their one completion (a Send, a splice round).
    pending: usize,
    /// The next CommitLog offset to send.
    next: i64,
    job: Job,
    /// Read by an in-flight Send: written only while no job is in flight.
    out: Vec<u8>,
    /// Frame headers read by in-flight header Writes and Sends: boxed (never moves),
    /// written only while no job is in flight.
    hdrs: Box<[[u8; HDR]; MAX_ROUND_FRAMES]>,
    pipe: Option<(OwnedFd, OwnedFd, usize)>,
    round: Round,
    /// SEND_ZCs the kernel may still read from, each with its pin.
    sends: Sends<Arc<TailPin>>,
    /// The log's truncation epoch when the stream began: a master never truncates, so
    /// a change means the log was cut under the stream.
    epoch: u64,
    /// Last completion while work was outstanding (stall detection).
    progress_at: Instant,
    last_write: Instant,
    heartbeat_due: bool,
    zc_ok: bool,
    file_splice: bool,
}

impl Stream {
    /// A stream from `start` on the socket `fd` of the connection in `slot`; its first
    /// frame is a heartbeat at `start` (spec 7.4).
    pub(crate) fn new(
        log: &CommitLog,
        kind: PathKind,
        slot: u32,
        fd: RawFd,
        start: i64,
        batch: usize,
    ) -> Stream {
        Stream {
            kind,
            slot,
            fd,
            batch: batch as i64,
            segment_size: log.config().segment_size as i64,
            pending: 0,
            next: start,
            job: Job::None,
            out: Vec::with_capacity(HDR + batch),
            hdrs: Box::new([[0; HDR]; MAX_ROUND_FRAMES]),
            pipe: None,
            round: Round::default(),
            sends: Sends::default(),
            epoch: log.truncation_epoch(),
            progress_at: Instant::now(),
            last_write: Instant::now(),
            heartbeat_due: true,
            zc_ok: kind == PathKind::SendZc,
            file_splice: kind != PathKind::Copy,
        }
    }

    /// The next CommitLog offset this stream sends.
    pub(crate) fn next(&self) -> i64 {
        self.next
    }

    /// Whether a job is in flight.
    pub(crate) fn busy(&self) -> bool {
        !matches!(self.job, Job::None)
    }

    /// Whether the kernel references nothing of this stream any more: no job in flight,
    /// no send awaiting its notification. Only then may the stream be dropped.
    pub(crate) fn quiet(&self) -> bool {
        self.pending == 0 && self.sends.is_empty() && self.round.done()
    }

    /// Tail-ring bytes this stream keeps pinned.
    pub(crate) fn pinned_bytes(&self) -> usize {
        self.sends.bytes()
            + match &self.job {
                Job::Zc(z) => z.pins.iter().map(|p| p.len()).sum(),
                _ => 0,
            }
    }

    /// When the stream next needs the loop without a completion or new log bytes: its
    /// heartbeat.
    pub(crate) fn heartbeat_at(&self, interval: Duration) -> Instant {
        self.last_write + interval
    }

    /// Starts the next job if none is in flight: frames from `next` up to the log's
    /// written end, else a heartbeat once `heartbeat` passed without a write. `sent` is
    /// told each frame's end before the frame goes out (acks are clamped to it).
    pub(crate) fn pump(
        &mut self,
        log: &CommitLog,
        sh: &mut LoopShared,
        ring: &mut IoUring,
        heartbeat: Duration,
        sent: &mut dyn FnMut(i64),
    ) -> io::Result<()> {
        if self.busy() {
            return Ok(());
        }
        let acct = Accounting::start(self.kind);
        let res = self.plan(log, sh, ring, heartbeat, sent);
        acct.finish_moved(res.as_ref().ok().copied().flatten());
        res.map(|_| ())
    }

    fn plan(
        &mut self,
        log: &CommitLog,
        sh: &mut LoopShared,
        ring: &mut IoUring,
        heartbeat: Duration,
        sent: &mut dyn FnMut(i64),
    ) -> io::Result<Option<Moved>> {
        let written = log.process_safe_end();
        if self.next >= written && log.progress().is_stopped() {
            return Err(io::Error::other("the master's store has stopped"));
        }
        if self.next >= written || self.heartbeat_due {
            if self.heartbeat_due || self.last_write.elapsed() >= heartbeat {
                self.heartbeat_due = false;
                self.out.clear();
                self.out
                    .extend_from_slice(&encode_transfer_header(self.next, 0));
                self.start_send(ring)?;
            }
            return Ok(None);
        }
        let (phys, len) = self.frame_at(self.next, written);
        if self.kind == PathKind::SendZc && self.zc_ok && sh.zc && len >= ZC_MIN_BYTES {
            if self.pinned_bytes() + len > MAX_PINNED_BYTES || self.sends.len() >= MAX_OUTSTANDING {
                // Wait for notifications to release pins (they wake the loop).
                return Ok(None);
            }
            if let Some(moved) = self.plan_zc(log, sh, ring, written, sent)? {
                return Ok(Some(moved));
            }
        }
        let cold = phys + len as i64 <= log.cold_end();
        if self.file_splice && cold {
            return self.plan_splice(log, ring, written, sent).map(Some);
        }
        self.plan_copy(log, ring, written, sent).map(Some)
    }

    /// The frame at `phys`: at most a batch, never across a segment (spec 7.3).
    fn frame_at(&self, phys: i64, written: i64) -> (i64, usize) {
        let seg = self.segment_size;
        let seg_end = phys - phys % seg + seg;
        (phys, (written.min(seg_end) - phys).min(self.batch) as usize)
    }

    /// Pins and sends hot frames by SEND_ZC; None if the first frame cannot be pinned.
    fn plan_zc(
        &mut self,
        log: &CommitLog,
        sh: &mut LoopShared,
        ring: &mut IoUring,
        written: i64,
        sent: &mut dyn FnMut(i64),
    ) -> io::Result<Option<Moved>> {
        let mut job = ZcJob::default();
        let mut at = self.next;
        let mut pinned = self.sends.bytes();
        while job.pins.len() < MAX_ROUND_FRAMES && at < written {
            let (phys, len) = self.frame_at(at, written);
            if len < ZC_MIN_BYTES
                || pinned + len > MAX_PINNED_BYTES
                || self.sends.len() + job.pins.len() >= MAX_OUTSTANDING
            {
                break;
            }
            let Some(pin) = log.pin_tail(phys, len) else {
                break;
            };
            self.hdrs[job.pins.len()] = encode_transfer_header(phys, len);
            job.pins.push(Arc::new(pin));
            pinned += len;
            at += len as i64;
        }
        if job.pins.is_empty() {
            return Ok(None);
        }
        let bytes = (at - self.next) as usize;
        sent(at);
        self.next = at;
        self.job = Job::Zc(job);
        self.submit_zc_round(sh, ring)?;
        Ok(Some(Moved {
            zero_copy: bytes,
            ..Moved::default()
        }))
    }

    fn submit_zc_round(&mut self, sh: &mut LoopShared, ring: &mut IoUring) -> io::Result<()> {
        let Job::Zc(job) = &mut self.job else {
            unreachable!("a zc round belongs to a zc job")
        };
        let pins = &job.pins;
        let taken = self.round.plan(
            sh.next_id,
            job.at,
            pins.len(),
            |j| pins[j].len(),
            MAX_ROUND_FRAMES,
        );
        sh.take_ids(taken);
        let last = self.round.ops.len() - 1;
        let zc_flags = if sh.report_usage {
            IORING_SEND_ZC_REPORT_USAGE
        } else {
            0
        };
        let mut chain = Vec::with_capacity(self.round.ops.len());
        for k in 0..=last {
            let id = self.round.base + k as u64;
            let e = match self.round.ops[k] {
                ZcOp::Header { frame, from } => {
                    let h = &self.hdrs[frame][from..];
                    opcode::Send::new(types::Fd(self.fd), h.as_ptr(), h.len() as u32)
                        .flags(libc::MSG_MORE | libc::MSG_WAITALL | libc::MSG_NOSIGNAL)
                        .build()
                        .flags(squeue::Flags::IO_LINK | squeue::Flags::SKIP_SUCCESS)
                }
                ZcOp::Body { frame, from } => {
                    let pin = &pins[frame];
                    let len = pin.len() - from;
                    let more = if k < last { libc::MSG_MORE } else { 0 };
                    let fixed = sh.registered.as_ref().is_some_and(|t| {
                        t.holds(pin)
                            && pin.as_ptr() as usize + pin.len()
                                <= t.as_ptr() as usize + sh.registered_len
                    });
                    // SAFETY: `from < pin.len()`, so the pointer stays inside the pinned
                    // range (no dereference here).
                    let ptr = unsafe { pin.as_ptr().add(from) };
                    let e = opcode::SendZc::new(types::Fd(self.fd), ptr, len as u32)
                        .buf_index(fixed.then_some(0))
                        .flags(libc::MSG_WAITALL | libc::MSG_NOSIGNAL | more)
                        .zc_flags(zc_flags)
                        .build();
                    self.sends.insert(id, pin.clone(), len);
                    if k < last {
                        e.flags(squeue::Flags::IO_LINK)
                    } else {
                        e
                    }
                }
            };
            chain.push(e.user_data(user_data(self.slot, TAG_ZC, id)));
        }
        self.progress_at = Instant::now();
        // SAFETY: a header Send reads `self.hdrs[frame]`, boxed and not written until the
        // job ends, which needs every operation of its rounds answered; the stream is
        // dropped only when quiet (or leaked). A SEND_ZC reads pinned ring bytes: the
        // writer does not rewrite them while the pin lives, the pin's Arc keeps the
        // mapping mapped, and the pin stays in `self.sends` until the send's
        // notification (or until the connection was reset and its send queue purged,
        // after which nothing reaches a peer). With buffer index 0 the range lies in the
        // registered part of the mapping (`holds`: the same log; the end is checked).
        unsafe { push_chain(ring, &chain) }
    }

    /// Splices cold frames: segment -> pipe -> socket.
    fn plan_splice(
        &mut self,
        log: &CommitLog,
        ring: &mut IoUring,
        written: i64,
        sent: &mut dyn FnMut(i64),
    ) -> io::Result<Moved> {
        if self.pipe.is_none() {
            self.pipe = Some(sized_pipe()?);
        }
        let slots_max = self.pipe.as_ref().map_or(0, |p| p.2);
        let cold = log.cold_end();
        let mut job = SpliceJob::default();
        let (mut at, mut slots) = (self.next, 0);
        while job.frames.len() < MAX_ROUND_FRAMES && at < written {
            let (phys, len) = self.frame_at(at, written);
            if phys + len as i64 > cold {
                break;
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
            let need = 1 + spanned_pages(off, len);
            if !job.frames.is_empty() && slots + need > slots_max {
                break;
            }
            slots += need;
            self.hdrs[job.frames.len()] = encode_transfer_header(phys, len);
            job.frames.push(SpliceFrame { seg, off, len });
            at += len as i64;
        }
        let bytes = (at - self.next) as usize;
        sent(at);
        self.next = at;
        self.job = Job::Splice(job);
        self.submit_splice_round(ring)?;
        Ok(Moved {
            spliced: bytes,
            ..Moved::default()
        })
    }

    fn submit_splice_round(&mut self, ring: &mut IoUring) -> io::Result<()> {
        let Job::Splice(job) = &mut self.job else {
            unreachable!("a splice round belongs to a splice job")
        };
        let Some((pipe_r, pipe_w, slots)) = &self.pipe else {
            unreachable!("a splice job has its pipe")
        };
        plan_splice_round(job, *slots);
        if job.ops.is_empty() {
            return Err(io::Error::other("no room in an empty pipe for a frame"));
        }
        let (pipe_r, pipe_w) = (pipe_r.as_raw_fd(), pipe_w.as_raw_fd());
        let last = job.ops.len() - 1;
        let mut chain = Vec::with_capacity(job.ops.len());
        for (idx, op) in job.ops.iter().enumerate() {
            let e = match *op {
                SpliceOp::Header(f) => {
                    opcode::Write::new(types::Fd(pipe_w), self.hdrs[f].as_ptr(), HDR as u32)
                        .offset(u64::MAX)
                        .build()
                }
                SpliceOp::Fill { frame, off, len } => opcode::Splice::new(
                    types::Fd(job.frames[frame].seg.read_file().as_raw_fd()),
                    off as i64,
                    types::Fd(pipe_w),
                    -1,
                    len as u32,
                )
                .flags(libc::SPLICE_F_NONBLOCK)
                .build(),
                SpliceOp::Drain { len, more } => {
                    opcode::Splice::new(types::Fd(pipe_r), -1, types::Fd(self.fd), -1, len as u32)
                        .flags(if more { libc::SPLICE_F_MORE } else { 0 })
                        .build()
                }
            };
            let e = if idx < last {
                e.flags(squeue::Flags::IO_LINK | squeue::Flags::SKIP_SUCCESS)
            } else {
                e
            };
            chain.push(e.user_data(user_data(self.slot, TAG_SPLICE, idx as u64)));
        }
        self.progress_at = Instant::now();
        self.pending += 1;
        // SAFETY: a header Write reads `self.hdrs[f]`, boxed and not written until the
        // job ends, which needs this round's one completion (every operation but the
        // last skips its success completion, and a failure silences the rest, so the
        // round posts exactly one); the stream is dropped only when quiet (or leaked).
        // The splices name only descriptors: the kernel holds its own file references,
        // and the job keeps the segment files open anyway.
        unsafe { push_chain(ring, &chain) }
    }

    /// Copies frames into the send buffer and sends it.
    fn plan_copy(
        &mut self,
        log: &CommitLog,
        ring: &mut IoUring,
        written: i64,
        sent: &mut dyn FnMut(i64),
    ) -> io::Result<Moved> {
        self.out.clear();
        let mut at = self.next;
        while at < written && self.out.len() < SEND_JOB_MAX {
            let (phys, len) = self.frame_at(at, written);
            if at > self.next && self.kind == PathKind::SendZc && len >= ZC_MIN_BYTES {
                break; // may go by send_zc
            }
            self.out
                .extend_from_slice(&encode_transfer_header(phys, len));
            let from = self.out.len();
            self.out.resize(from + len, 0);
            log.read(phys, &mut self.out[from..])
                .map_err(|e| io::Error::other(format!("read CommitLog {phys}+{len}: {e}")))?;
            at += len as i64;
        }
        let bytes = (at - self.next) as usize;
        sent(at);
        self.next = at;
        self.start_send(ring)?;
        Ok(Moved {
            copied: bytes,
            ..Moved::default()
        })
    }

    /// Sends `self.out` (from byte `sent` of it).
    fn start_send(&mut self, ring: &mut IoUring) -> io::Result<()> {
        self.job = Job::Send { sent: 0 };
        self.submit_send(ring, 0)
    }

    fn submit_send(&mut self, ring: &mut IoUring, from: usize) -> io::Result<()> {
        let rest = &self.out[from..];
        let e = opcode::Send::new(types::Fd(self.fd), rest.as_ptr(), rest.len() as u32)
            .flags(libc::MSG_WAITALL | libc::MSG_NOSIGNAL)
            .build()
            .user_data(user_data(self.slot, TAG_SEND, 0));
        self.progress_at = Instant::now();
        self.last_write = Instant::now();
        self.pending += 1;
        // SAFETY: the Send reads `self.out[from..]`; `out` is not written (nor its
        // storage reallocated) while the job is in flight, the job ends only with this
        // operation's completion, and the stream is dropped only when quiet (or leaked).
        unsafe { push_chain(ring, &[e]) }
    }

    /// Takes a completion of this stream's operations; Err breaks the stream (the loop
    /// drops the connection). With `closing` (the connection is being torn down) it only
    /// books which operations are still in flight.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_cqe(
        &mut self,
        log: &CommitLog,
        sh: &mut LoopShared,
        ring: &mut IoUring,
        ud: u64,
        res: i32,
        flags: u32,
        closing: bool,
    ) -> io::Result<()> {
        let (_, tag, id) = split_user_data(ud);
        if matches!(tag, TAG_SEND | TAG_SPLICE) {
            // Each Send and each splice round posts exactly one completion.
            self.pending = self.pending.saturating_sub(1);
        }
        if closing {
            if tag == TAG_ZC {
                if cqueue::notif(flags) {
                    self.sends.notified(id);
                } else {
                    for silent in self.round.on_result(id, res) {
                        self.sends.answered(silent, true);
                    }
                    self.sends.answered(id, cqueue::more(flags));
                }
            }
            return Ok(());
        }
        let acct = Accounting::start(self.kind);
        let r = match tag {
            TAG_SEND => self.on_send(ring, res),
            TAG_SPLICE => self.on_splice(log, ring, id as usize, res),
            TAG_ZC => self.on_zc(log, sh, ring, id, res, flags),
            _ => Err(io::Error::other(format!(
                "unknown HA stream operation tag {tag}"
            ))),
        };
        acct.finish_moved(None);
        if r.is_ok() && !self.busy() && log.truncation_epoch() != self.epoch {
            // A master never truncates; a node cut while streaming must not go on.
            return Err(io::Error::other(
                "the CommitLog was truncated while frames were being sent",
            ));
        }
        r
    }

    fn on_send(&mut self, ring: &mut IoUring, res: i32) -> io::Result<()> {
        let Job::Send { sent } = &mut self.job else {
            return Err(io::Error::other("a send completion without a send job"));
        };
        match res {
            r if r > 0 => {
                *sent += r as usize;
                self.progress_at = Instant::now();
                let from = *sent;
                if from < self.out.len() {
                    return self.submit_send(ring, from);
                }
                self.job = Job::None;
                Ok(())
            }
            r if r == -libc::EINTR || r == -libc::EAGAIN => {
                let from = *sent;
                self.submit_send(ring, from)
            }
            0 => Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "the slave's socket took nothing",
            )),
            r => Err(op_error("send to the slave", r)),
        }
    }

    fn on_splice(
        &mut self,
        log: &CommitLog,
        ring: &mut IoUring,
        k: usize,
        res: i32,
    ) -> io::Result<()> {
        let Job::Splice(job) = &mut self.job else {
            return Err(io::Error::other("a splice completion without a splice job"));
        };
        let mut moved = false;
        for idx in 0..=k.min(job.ops.len().saturating_sub(1)) {
            let op = job.ops[idx];
            let r = if idx < k { op.len() as i32 } else { res };
            match op {
                SpliceOp::Header(_) => {
                    if r == HDR as i32 {
                        job.hdr_done = true;
                        job.in_pipe += HDR;
                        moved = true;
                    } else if r != -libc::EAGAIN && r != -libc::EINTR {
                        return Err(op_error("write a frame header into the pipe", r));
                    }
                }
                SpliceOp::Fill { off, .. } => match r {
                    r if r > 0 => {
                        job.body += r as usize;
                        job.in_pipe += r as usize;
                        moved = true;
                        if job.body == job.frames[job.i].len {
                            (job.i, job.hdr_done, job.body) = (job.i + 1, false, 0);
                        }
                    }
                    0 => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!(
                                "segment {} ended at file offset {off}",
                                job.frames[job.i].seg.base
                            ),
                        ))
                    }
                    r if r == -libc::EAGAIN || r == -libc::EINTR => {}
                    r if r == -libc::EINVAL || r == -libc::EOPNOTSUPP || r == -libc::ENOSYS => {
                        tracing::warn!(
                            segment = %job.frames[job.i].seg.path.display(),
                            error = %io::Error::from_raw_os_error(-r),
                            "a segment file cannot be spliced; the HA stream copies instead"
                        );
                        self.file_splice = false;
                        job.copy_rest = true;
                    }
                    r => return Err(op_error("splice segment -> pipe", r)),
                },
                SpliceOp::Drain { .. } => match r {
                    r if r > 0 => {
                        job.in_pipe -= r as usize;
                        moved = true;
                    }
                    0 => {
                        return Err(io::Error::new(
                            io::ErrorKind::WriteZero,
                            "splice pipe -> socket moved nothing",
                        ))
                    }
                    // EAGAIN: the socket's SO_SNDTIMEO passed in the io-wq worker; the
                    // loop's stall check bounds how often that may repeat.
                    r if r == -libc::EINTR || r == -libc::EAGAIN => {}
                    r => return Err(op_error("splice pipe -> socket", r)),
                },
            }
        }
        if moved {
            self.progress_at = Instant::now();
            self.last_write = Instant::now();
        }
        job.idle = if moved { 0 } else { job.idle + 1 };
        if job.idle > MAX_IDLE_ROUNDS {
            return Err(io::Error::other(format!(
                "splicing made no progress ({} bytes in the pipe)",
                job.in_pipe
            )));
        }
        let (n, i) = (job.frames.len(), job.i);
        if (i < n && !job.copy_rest) || job.in_pipe > 0 {
            return self.submit_splice_round(ring);
        }
        if job.copy_rest && i < n {
            // The pipe is empty; frame `i` has its header on the socket if `hdr_done`.
            let (hdr_done, body) = (job.hdr_done, job.body);
            let frames = std::mem::take(&mut job.frames);
            self.out.clear();
            let mut phys = self.next - frames[i..].iter().map(|f| f.len as i64).sum::<i64>();
            for (j, f) in frames.iter().enumerate().skip(i) {
                let (skip_hdr, skip) = if j == i { (hdr_done, body) } else { (false, 0) };
                if !skip_hdr {
                    self.out.extend_from_slice(&self.hdrs[j]);
                }
                let from = self.out.len();
                self.out.resize(from + f.len - skip, 0);
                log.read(phys + skip as i64, &mut self.out[from..])
                    .map_err(|e| io::Error::other(format!("read CommitLog {phys}: {e}")))?;
                phys += f.len as i64;
            }
            return self.start_send(ring);
        }
        self.job = Job::None;
        Ok(())
    }

    fn on_zc(
        &mut self,
        _log: &CommitLog,
        sh: &mut LoopShared,
        ring: &mut IoUring,
        id: u64,
        res: i32,
        flags: u32,
    ) -> io::Result<()> {
        self.progress_at = Instant::now();
        if cqueue::notif(flags) {
            let copied = sh.report_usage && (res as u32) & IORING_NOTIF_USAGE_ZC_COPIED != 0;
            count_zc_notifs(PathKind::SendZc, 1, copied as u64);
            self.sends.notified(id);
            return Ok(());
        }
        for silent in self.round.on_result(id, res) {
            // Cancelled behind a failed header: no result comes, its notification does.
            self.sends.answered(silent, true);
        }
        self.sends.answered(id, cqueue::more(flags));
        if !self.round.done() {
            return Ok(());
        }
        let Job::Zc(job) = &mut self.job else {
            // A late result of an aborted stream's round.
            return Ok(());
        };
        let before = job.at;
        if self.round.settle(&mut job.at)? == Settled::ZcRefused {
            tracing::warn!(
                "the slave's socket refuses IORING_OP_SEND_ZC; the HA stream copies the hot tail instead"
            );
            self.zc_ok = false;
        }
        self.last_write = Instant::now();
        job.idle = if job.at == before { job.idle + 1 } else { 0 };
        if job.idle > MAX_IDLE_ROUNDS {
            return Err(io::Error::other("send_zc made no progress"));
        }
        if job.at.frame >= job.pins.len() {
            self.job = Job::None;
            return Ok(());
        }
        if self.zc_ok {
            return self.submit_zc_round(sh, ring);
        }
        // Copy the rest from the pinned ring.
        let at = job.at;
        let pins = std::mem::take(&mut job.pins);
        self.out.clear();
        for (j, pin) in pins.iter().enumerate().skip(at.frame) {
            let (h, b) = if j == at.frame {
                (at.hdr, at.body)
            } else {
                (0, 0)
            };
            self.out.extend_from_slice(&self.hdrs[j][h..]);
            self.out.extend_from_slice(&pin.bytes()[b..]);
        }
        self.start_send(ring)
    }

    /// Fails if this stream holds tail pins below the writer's pin-pressure mark, or made
    /// no progress for `timeout` with work outstanding. The loop aborts it then.
    pub(crate) fn check(&self, log: &CommitLog, timeout: Duration) -> io::Result<()> {
        if self.quiet() {
            return Ok(());
        }
        let revoke = log.pin_revoke_below();
        if revoke > 0 {
            let queued = match &self.job {
                Job::Zc(z) => z.pins.iter().map(|p| p.phys()).min(),
                _ => None,
            };
            let lowest = self.sends.pins().map(|p| p.phys()).chain(queued).min();
            if let Some(lowest) = lowest.filter(|l| *l < revoke) {
                return Err(io::Error::other(format!(
                    "the slave is too slow: the CommitLog writer waits for tail bytes from \
                     {lowest} still in this connection's socket buffers (pin pressure below \
                     {revoke}); dropping the connection"
                )));
            }
        }
        if self.progress_at.elapsed() > timeout {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the slave's socket took nothing for {} ms",
                    timeout.as_millis()
                ),
            ));
        }
        Ok(())
    }

    /// Resets the connection so that the kernel lets go of everything this stream's
    /// operations hold: every pending operation fails soon, every notification comes.
    pub(crate) fn abort(&self) {
        abort_socket(self.fd);
    }

    /// After an abort whose notifications never came: drops the pins (the connection is
    /// reset and its send queue purged, so no byte of them reaches a peer any more).
    /// What operations may still name (headers, the send buffer) stays: the caller
    /// leaks the stream.
    pub(crate) fn release_pins(&mut self) {
        self.sends.clear();
        if let Job::Zc(z) = &mut self.job {
            z.pins.clear();
        }
    }
}

/// Fills `job.ops` with the next round from its cursor (an empty pipe is filled with as
/// many frames as its `slots` hold, then drained).
fn plan_splice_round(job: &mut SpliceJob, slots: usize) {
    job.ops.clear();
    let max_ops = LOOP_SQ_ENTRIES as usize / 2 - 1;
    let mut planned = 0usize;
    let (mut j, mut jh, mut jb) = (job.i, job.hdr_done, job.body);
    if job.in_pipe == 0 && !job.copy_rest {
        let mut free = slots;
        while j < job.frames.len() && job.ops.len() + 2 <= max_ops {
            let f = &job.frames[j];
            if !jh {
                if free < 2 {
                    break;
                }
                job.ops.push(SpliceOp::Header(j));
                planned += HDR;
                free -= 1;
            }
            let at = f.off + jb as u64;
            let fits = (free * PAGE).saturating_sub((at % PAGE as u64) as usize);
            let take = (f.len - jb).min(fits);
            if take == 0 {
                break;
            }
            job.ops.push(SpliceOp::Fill {
                frame: j,
                off: at,
                len: take,
            });
            planned += take;
            free -= spanned_pages(at, take);
            jb += take;
            if jb < f.len {
                break;
            }
            (j, jh, jb) = (j + 1, false, 0);
        }
    }
    let more = j < job.frames.len() && !job.copy_rest;
    if job.in_pipe + planned > 0 {
        job.ops.push(SpliceOp::Drain {
            len: job.in_pipe + planned,
            more,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trips() {
        for (slot, tag, id) in [(0, 1, 0), (1 << 19, 15, ID_MASK), (77, TAG_ZC, 12345)] {
            assert_eq!(split_user_data(user_data(slot, tag, id)), (slot, tag, id));
        }
    }
}
