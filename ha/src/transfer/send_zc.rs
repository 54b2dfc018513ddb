//! The send_zc transfer path: the hot tail goes from the CommitLog's tail ring to a
//! slave's socket with IORING_OP_SEND_ZC, without a user-space copy; bytes no longer in
//! the ring go through [`SplicePath`] (segment file -> pipe -> socket).
//!
//! This file owns the path's I/O: its io_uring (submitting each round's Sends and
//! SEND_ZCs, waiting, reaping results and notifications), the tail ring's buffer
//! registration, the once-per-process send_zc probe, and the socket abort. What a round
//! asks for, when it is done, where it leaves the cursor and which pins may go is decided
//! in `send_zc_state` (the sibling module), which does no I/O. Everything runs on the
//! slave's sender thread that created the path (`master`), inline or in its io_uring
//! task work.
//!
//! A frame of at least [`ZC_MIN_BYTES`] whose bytes are all in the ring is *pinned* ([`CommitLog::pin_tail`]): the
//! writer does not rewrite pinned bytes, so the kernel may read them after the send
//! completes, until it posts the send's notification (a second completion with
//! IORING_CQE_F_NOTIF, once no socket buffer references the pages any more: after the
//! peer acknowledged them, or at delivery over loopback). The pin is dropped then. The
//! ring mapping is registered with this path's io_uring as fixed buffer 0, so a send
//! needs no per-call page pinning; if registration is refused, sends name plain user
//! memory instead. Smaller hot frames (a slave following a lightly loaded master gets
//! one message per frame) go by copy: per operation, send_zc costs more than copying a
//! few KiB. Only the first half of the double mapping plus one batch is
//! registered (every frame starts in the first half), which halves the page pinning a
//! new connection pays; a longer range goes out unregistered. A frame that cannot be pinned (below the window, or the window moved
//! on since the caller looked) goes to the splice path, which copies frames straddling
//! the window's start.
//!
//! Frames are queued while the log has more written bytes right after them (as on the
//! splice path) and sent in rounds: one IO_LINK chain per round, per frame a plain send
//! of its 12-byte header (MSG_MORE, IOSQE_CQE_SKIP_SUCCESS: the only bytes copied) and a
//! SEND_ZC of its body from the ring. Every operation carries MSG_WAITALL, so the kernel
//! itself retries a short send; a send that still comes up short (an error after some
//! bytes) breaks the chain, and the next round resumes from the exact byte reached.
//! Each SEND_ZC posts its result first, with IORING_CQE_F_MORE when a notification
//! follows. A round ends once every operation has answered; notifications arrive later
//! and are reaped at every call (and by [`TransferPath::idle`] while the sender waits for
//! new data), so several sends' worth of pins are outstanding at once, bounded by
//! [`MAX_PINNED_BYTES`] per slave.
//!
//! A stalled slave (its socket full) keeps pins from being released. When the writer has
//! waited [`PIN_PRESSURE_AFTER`](ringmq_engine::commitlog::PIN_PRESSURE_AFTER) for them
//! it raises pin pressure ([`CommitLog::pin_revoke_below`]); a sender holding a pin below
//! that offset aborts its connection: SO_LINGER {on, 0} and a disconnect (connect with
//! AF_UNSPEC), which resets the connection and purges its send queue at once, whatever
//! other descriptors of the socket the master still holds. That frees the socket
//! buffers, so the notifications arrive; the pins go, and the send fails, so the master
//! drops the slave (which reconnects and resumes from its own offset, by then read from
//! segment files). The same abort ends a connection that made no progress for its write
//! timeout, one the master shut down, and any error with sends outstanding.
//!
//! With IORING_SEND_ZC_REPORT_USAGE (probed once per process) each notification says
//! whether the kernel had to copy the bytes after all; [`path_stats`](super::path::path_stats)
//! counts both. Over loopback it always copies at delivery: the receiving socket cannot
//! keep the sender's pages. Everything runs on the sender thread (inline, or in its
//! io_uring task work), so `sender_cpu_ns` covers it.

use std::io::{self, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use ringmq_engine::commitlog::{CommitLog, TailBuffer, TailPin};

use super::path::{count_zc_notifs, Accounting, Moved, PathKind, TransferPath};
use super::send_zc_state::{Cursor, Op, Round, Sends, Settled};
use super::splice::SplicePath;
use super::uring::{self, RingSpec};
use crate::protocol::{encode_transfer_header, TRANSFER_HEADER_SIZE};

const HDR: usize = TRANSFER_HEADER_SIZE;
/// Smallest frame sent with send_zc; smaller ones are copied from the ring and written.
///
/// Where the sender's CPU per GiB of send_zc (two operations, a notification and the
/// pin per frame) meets that of copy + write(2), measured with `ha-bench --batch N`
/// (hot catch-up, loopback, same run): 1 KiB frames 2.15 vs 0.88 s/GiB, 4 KiB 0.58 vs
/// 0.40, 8 KiB 0.37 vs 0.32, 12 KiB 0.29 vs 0.29, 16 KiB 0.18-0.26 vs 0.26-0.31, 64 KiB
/// 0.075 vs 0.20. Over loopback the kernel copies send_zc bytes at delivery anyway;
/// over a NIC with scatter-gather it does not, so there the crossover is lower still.
pub const ZC_MIN_BYTES: usize = 12 * 1024;
/// Most tail-ring bytes one sender keeps pinned: frames queued or in a round, plus sends
/// whose notification has not come. Over a link with a bandwidth-delay product above this
/// it caps the rate at this much per round trip.
pub const MAX_PINNED_BYTES: usize = 8 << 20;
/// Most sends whose notification is outstanding (keeps the completion queue from
/// overflowing with small frames).
pub(super) const MAX_OUTSTANDING: usize = 512;
/// Most frames in one round (two submission entries each).
pub(super) const MAX_ROUND_FRAMES: usize = 32;
const RING_ENTRIES: u32 = 2 * MAX_ROUND_FRAMES as u32;
/// Completion queue: every outstanding send's notification plus one round's results.
const CQ_ENTRIES: u32 = 2048;
/// How long one wait in io_uring_enter lasts before the sender looks at pin pressure,
/// stalls and the socket.
const WAIT_TICK: Duration = Duration::from_millis(5);
/// After an abort, how long the kernel gets to answer every operation and notification.
const ABORT_GRACE: Duration = Duration::from_secs(2);
/// When the path is dropped (or moves to another socket) with notifications
/// outstanding, how long a healthy peer gets to acknowledge before the connection is
/// aborted.
const SETTLE_GRACE: Duration = Duration::from_millis(200);
/// Write timeout assumed for a socket that has none.
const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(20);
/// Rounds in a row that may move nothing before the flush fails.
const MAX_IDLE_ROUNDS: u32 = 1000;
/// Longest pause [`TransferPath::idle`] asks for while notifications are outstanding.
const IDLE_POLL_MAX: Duration = Duration::from_millis(10);
/// io_uring UAPI values the io-uring crate does not export.
pub(super) const IORING_SEND_ZC_REPORT_USAGE: u16 = 1 << 3;
pub(super) const IORING_NOTIF_USAGE_ZC_COPIED: u32 = 1 << 31;

/// A frame queued for the next round (its header is in `SendZcPath::headers` at the
/// same index).
struct Frame {
    pin: Arc<TailPin>,
}

/// What the kernel offers, probed once per process.
struct Support {
    report_usage: bool,
}

static SUPPORT: OnceLock<Result<Support, String>> = OnceLock::new();

/// The send_zc transfer path (see the module docs). It serves one connection at a time
/// and keeps a duplicate of its descriptor (so that it can abort the connection even
/// from `drop`): the connection stays open until the path is dropped. Dropping it with
/// sends outstanding waits up to 200 ms for them, then aborts the connection.
pub struct SendZcPath {
    /// Declared before `registered`: the ring (and its buffer registration) goes first.
    ring: IoUring,
    /// The tail mapping whose first `registered_len` bytes are fixed buffer 0 of `ring`.
    registered: Option<TailBuffer>,
    registered_len: usize,
    batch_size: usize,
    registration_tried: bool,
    report_usage: bool,
    /// Cold frames, straddling frames and fallbacks.
    splice: SplicePath,
    /// The socket being sent to: the caller's descriptor number and our own duplicate,
    /// through which an abort reaches the connection even from `drop`.
    sock: Option<(RawFd, OwnedFd)>,
    send_timeout: Duration,
    /// At most MAX_ROUND_FRAMES: a full queue is flushed.
    queue: Vec<Frame>,
    /// The queued frames' headers, read by io_uring Sends: boxed so they stay in place
    /// while a round is in flight (leaked, not freed, if a round never finishes).
    headers: Box<[[u8; HDR]; MAX_ROUND_FRAMES]>,
    queue_bytes: usize,
    /// Truncation epoch when the first queued frame was queued.
    epoch: u64,
    round: Round,
    next_id: u64,
    /// SEND_ZCs the kernel may still read from, each with its pin.
    sends: Sends<Arc<TailPin>>,
    /// Last completion (or first outstanding send): stall detection and idle back-off.
    progress_at: Instant,
    /// Set once the connection was aborted or the ring failed: every later call fails.
    broken: Option<(io::ErrorKind, String)>,
    /// False once a socket refused SEND_ZC: frames are copied from the pinned ring.
    zc_ok: bool,
    cqes: Vec<(u64, i32, u32)>,
}

impl SendZcPath {
    /// A send_zc path for frames of up to `batch_size` bytes. Fails if the kernel's
    /// io_uring lacks IORING_OP_SEND_ZC (probed once per process) or io_uring splice.
    /// Create it on the thread that will use it.
    pub fn new(batch_size: usize) -> io::Result<SendZcPath> {
        let support = SUPPORT.get_or_init(|| probe().map_err(|e| e.to_string()));
        let report_usage = match support {
            Ok(s) => s.report_usage,
            Err(why) => return Err(io::Error::new(io::ErrorKind::Unsupported, why.clone())),
        };
        let ring = uring(&[])?;
        let splice = SplicePath::new(batch_size, false)?;
        if !splice.uses_io_uring() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring splice is unavailable",
            ));
        }
        Ok(SendZcPath {
            ring,
            registered: None,
            registered_len: 0,
            batch_size,
            registration_tried: false,
            report_usage,
            splice,
            sock: None,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            queue: Vec::with_capacity(MAX_ROUND_FRAMES),
            headers: Box::new([[0; HDR]; MAX_ROUND_FRAMES]),
            queue_bytes: 0,
            epoch: 0,
            round: Round::default(),
            next_id: 0,
            sends: Sends::default(),
            progress_at: Instant::now(),
            broken: None,
            zc_ok: true,
            cqes: Vec::with_capacity(64),
        })
    }

    /// Whether sends name the registered tail ring (false: plain user memory).
    pub fn uses_registered_buffer(&self) -> bool {
        self.registered.is_some()
    }

    /// Whether notifications report if the kernel copied (IORING_SEND_ZC_REPORT_USAGE).
    pub fn reports_usage(&self) -> bool {
        self.report_usage
    }

    /// Tail-ring bytes pinned by this path now (queued plus awaiting notification).
    pub fn pinned_bytes(&self) -> usize {
        self.queue_bytes + self.sends.bytes()
    }

    /// Sends (or queues) one frame; returns how its body bytes leave.
    fn send(
        &mut self,
        log: &CommitLog,
        sock: &mut TcpStream,
        phys: i64,
        len: usize,
    ) -> io::Result<Moved> {
        self.check_broken()?;
        self.bind(sock)?;
        self.reap();
        self.check_trouble(log, false)?;
        let end = phys + len as i64;
        if len >= ZC_MIN_BYTES && self.zc_ok && len <= MAX_PINNED_BYTES {
            if self.pinned_bytes() + len > MAX_PINNED_BYTES
                || self.sends.len() + self.queue.len() >= MAX_OUTSTANDING
            {
                self.flush(log, sock)?;
                self.wait_for(log, |p| {
                    p.pinned_bytes() + len <= MAX_PINNED_BYTES && p.sends.len() < MAX_OUTSTANDING
                })?;
            }
            if let Some(pin) = log.pin_tail(phys, len) {
                self.register(log);
                // Frames the splice path holds back go first.
                self.splice.flush(log, sock)?;
                if self.queue.is_empty() {
                    self.epoch = log.truncation_epoch();
                }
                self.headers[self.queue.len()] = encode_transfer_header(phys, len);
                self.queue.push(Frame { pin: Arc::new(pin) });
                self.queue_bytes += len;
                // Hold back only while the caller is about to send the bytes right after.
                if end >= log.process_safe_end() || self.queue.len() >= MAX_ROUND_FRAMES {
                    self.flush(log, sock)?;
                }
                return Ok(Moved {
                    zero_copy: len,
                    ..Moved::default()
                });
            }
        }
        self.flush(log, sock)?;
        let (spliced, copied) = self.splice.send(log, sock, phys, len)?;
        Ok(Moved {
            spliced,
            copied,
            zero_copy: 0,
        })
    }

    fn check_broken(&self) -> io::Result<()> {
        match &self.broken {
            Some((kind, why)) => Err(io::Error::new(*kind, why.clone())),
            None => Ok(()),
        }
    }

    /// Takes `sock` as the connection to send to. Moving to another socket first settles
    /// everything outstanding on the previous one.
    fn bind(&mut self, sock: &TcpStream) -> io::Result<()> {
        let fd = sock.as_raw_fd();
        if self.sock.as_ref().is_some_and(|(n, _)| *n == fd) {
            return Ok(());
        }
        if self.sock.is_some() {
            self.settle();
            self.check_broken()?;
        }
        let dup = sock.as_fd().try_clone_to_owned()?;
        self.send_timeout = sock.write_timeout()?.unwrap_or(DEFAULT_SEND_TIMEOUT);
        self.sock = Some((fd, dup));
        Ok(())
    }

    /// Registers the log's tail mapping as fixed buffer 0, once.
    fn register(&mut self, log: &CommitLog) {
        if self.registration_tried {
            return;
        }
        self.registration_tried = true;
        let buf = log.tail_buffer();
        // Frames start in the first half; one batch past it covers every frame.
        let len = (buf.len() / 2 + self.batch_size.next_multiple_of(4096)).min(buf.len());
        let iov = [libc::iovec {
            iov_base: buf.as_ptr() as *mut libc::c_void,
            iov_len: len,
        }];
        // SAFETY: the mapping stays mapped while `buf` lives, and `buf` is kept in
        // `self.registered`, which is dropped after `self.ring` (field order), so the
        // buffer outlives the registration.
        match unsafe { self.ring.submitter().register_buffers(&iov) } {
            Ok(()) => {
                self.registered = Some(buf);
                self.registered_len = len;
            }
            Err(e) => {
                static LOGGED: std::sync::atomic::AtomicBool =
                    std::sync::atomic::AtomicBool::new(false);
                if !LOGGED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    tracing::warn!(error = %e, "cannot register the tail ring with the HA sender's io_uring; send_zc pins pages per send");
                }
            }
        }
    }

    /// Sends every queued frame. The queue is emptied (its pins stay with the sends that
    /// still need them).
    fn flush(&mut self, log: &CommitLog, sock: &mut TcpStream) -> io::Result<()> {
        if self.queue.is_empty() {
            return Ok(());
        }
        let res = self.flush_queue(log, sock);
        if !self.round.done() {
            // Operations may still read headers: keep the memory they name.
            let fresh = Box::new([[0; HDR]; MAX_ROUND_FRAMES]);
            std::mem::forget(std::mem::replace(&mut self.headers, fresh));
        }
        self.queue.clear();
        self.queue_bytes = 0;
        res?;
        if log.truncation_epoch() != self.epoch {
            return Err(io::Error::other(
                "the CommitLog was truncated while frames were being sent",
            ));
        }
        Ok(())
    }

    fn flush_queue(&mut self, log: &CommitLog, sock: &mut TcpStream) -> io::Result<()> {
        let n = self.queue.len();
        let mut at = Cursor::default();
        let mut idle = 0u32;
        while at.frame < n {
            if !self.zc_ok {
                return self.copy_rest(sock, at);
            }
            self.submit_round(sock.as_raw_fd(), at)?;
            self.wait_for(log, |p| p.round.done())?;
            let before = at;
            if self.round.settle(&mut at)? == Settled::ZcRefused {
                tracing::warn!(
                    "the slave's socket refuses IORING_OP_SEND_ZC; the HA sender copies the hot tail instead"
                );
                self.zc_ok = false;
            }
            idle = if at == before { idle + 1 } else { 0 };
            if idle > MAX_IDLE_ROUNDS {
                return Err(io::Error::other("send_zc made no progress"));
            }
        }
        Ok(())
    }

    /// Queues the round from the cursor: header (unless sent) and body of each frame,
    /// one IO_LINK chain (submitted by the next `enter`).
    fn submit_round(&mut self, sock_fd: RawFd, at: Cursor) -> io::Result<()> {
        let queue = &self.queue;
        self.next_id += self.round.plan(
            self.next_id,
            at,
            queue.len(),
            |j| queue[j].pin.len(),
            MAX_ROUND_FRAMES,
        );
        let round = &self.round;
        if self.sends.is_empty() {
            self.progress_at = Instant::now();
        }
        let last = round.ops.len() - 1;
        let zc_flags = if self.report_usage {
            IORING_SEND_ZC_REPORT_USAGE
        } else {
            0
        };
        for k in 0..=last {
            let id = self.round.base + k as u64;
            let entry = match self.round.ops[k] {
                Op::Header { frame, from } => {
                    let h = &self.headers[frame][from..];
                    opcode::Send::new(types::Fd(sock_fd), h.as_ptr(), h.len() as u32)
                        .flags(libc::MSG_MORE | libc::MSG_WAITALL | libc::MSG_NOSIGNAL)
                        .build()
                        .flags(squeue::Flags::IO_LINK | squeue::Flags::SKIP_SUCCESS)
                }
                Op::Body { frame, from } => {
                    let pin = &self.queue[frame].pin;
                    let len = pin.len() - from;
                    let more = if k < last { libc::MSG_MORE } else { 0 };
                    let fixed = self.registered.as_ref().is_some_and(|t| {
                        t.holds(pin)
                            && pin.as_ptr() as usize + pin.len()
                                <= t.as_ptr() as usize + self.registered_len
                    });
                    // SAFETY: `from < pin.len()`, so the pointer stays inside the pinned
                    // range (no dereference here).
                    let ptr = unsafe { pin.as_ptr().add(from) };
                    let e = opcode::SendZc::new(types::Fd(sock_fd), ptr, len as u32)
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
            // SAFETY: a header Send reads `self.headers[frame]`, which is boxed and not
            // written until every operation of this round has answered (frames are
            // queued only between rounds; `flush` leaks the box if a round never
            // finishes). A SEND_ZC reads pinned ring bytes: the writer does not rewrite
            // them while the pin lives (the window never moves past a pinned start), the
            // pin's Arc keeps the mapping mapped, and the pin stays in `self.sends`
            // until the send's notification says the kernel no longer references them
            // (or the connection was reset and its send queue purged, after which
            // nothing reaches a peer). With buffer index 0 the range lies in the
            // registered part of the mapping (`holds`: the same log; the end is
            // checked). A round has at most RING_ENTRIES operations and the submission
            // queue is empty between rounds, so the push fits.
            if unsafe { self.ring.submission().push(&entry.user_data(id)) }.is_err() {
                return Err(self.abort(io::Error::other("io_uring submission queue full")));
            }
        }
        // The round goes to the kernel with the first wait for its results (one
        // io_uring_enter submits and waits).
        Ok(())
    }

    /// Writes the rest of the queue from the cursor with write(2) from the pinned ring.
    fn copy_rest(&mut self, sock: &mut TcpStream, at: Cursor) -> io::Result<()> {
        for (j, f) in self.queue.iter().enumerate().skip(at.frame) {
            let (h, b) = if j == at.frame {
                (at.hdr, at.body)
            } else {
                (0, 0)
            };
            sock.write_all(&self.headers[j][h..])?;
            sock.write_all(&f.pin.bytes()[b..])?;
        }
        Ok(())
    }

    /// Takes every available completion (a syscall only to run task work the ring
    /// flags as pending). Returns how many there were.
    fn reap(&mut self) -> usize {
        if self.ring.submission().taskrun() {
            let _ = self.ring.submitter().submit_and_wait(0);
        }
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.extend(
            self.ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        let n = cqes.len();
        let (mut notifs, mut copied) = (0u64, 0u64);
        for &(id, res, flags) in &cqes {
            if cqueue::notif(flags) {
                notifs += 1;
                if self.report_usage && (res as u32) & IORING_NOTIF_USAGE_ZC_COPIED != 0 {
                    copied += 1;
                }
                self.sends.notified(id);
            } else {
                self.on_result(id, res, cqueue::more(flags));
            }
        }
        cqes.clear();
        self.cqes = cqes;
        if notifs > 0 {
            count_zc_notifs(PathKind::SendZc, notifs, copied);
        }
        if n > 0 {
            self.progress_at = Instant::now();
        }
        n
    }

    fn on_result(&mut self, id: u64, res: i32, more: bool) {
        for silent in self.round.on_result(id, res) {
            // Cancelled behind a failed header: no result comes, its notification does.
            self.sends.answered(silent, true);
        }
        self.sends.answered(id, more);
    }

    /// Waits in the ring until `done`, every WAIT_TICK looking for trouble (pin pressure,
    /// a stall, a shut-down socket); on trouble, aborts and returns the error.
    fn wait_for(&mut self, log: &CommitLog, done: impl Fn(&Self) -> bool) -> io::Result<()> {
        let mut waited = false;
        loop {
            self.reap();
            if done(self) {
                return Ok(());
            }
            // The syscall-costing checks only once a wait has lasted (most rounds are
            // answered by the first enter).
            self.check_trouble(log, waited)?;
            // A round posts at least one completion per body: wait for them all at once.
            if let Err(e) = self.enter(self.round.bodies_left.max(1), WAIT_TICK) {
                return Err(self.abort(e));
            }
            waited = true;
        }
    }

    /// One io_uring_enter: submits what is queued and waits up to `timeout` for `want`
    /// completions.
    fn enter(&mut self, want: usize, timeout: Duration) -> io::Result<()> {
        let ts = types::Timespec::from(timeout);
        let args = types::SubmitArgs::new().timespec(&ts);
        match self.ring.submitter().submit_with_args(want, &args) {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EAGAIN) | Some(libc::EBUSY)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(io::Error::new(e.kind(), format!("io_uring_enter: {e}"))),
        }
    }

    /// Aborts (and fails) if this path holds pins under pin pressure or, with `deep`,
    /// made no progress for the write timeout or has a shut-down socket, while sends are
    /// outstanding.
    fn check_trouble(&mut self, log: &CommitLog, deep: bool) -> io::Result<()> {
        if self.sends.is_empty() && self.round.done() {
            return Ok(());
        }
        let revoke = log.pin_revoke_below();
        if revoke > 0 {
            let lowest = self
                .sends
                .pins()
                .map(|p| p.phys())
                .chain(self.queue.iter().map(|f| f.pin.phys()))
                .min();
            if let Some(lowest) = lowest.filter(|l| *l < revoke) {
                let e = io::Error::other(format!(
                    "the slave is too slow: the CommitLog writer waits for tail bytes from \
                     {lowest} still in this connection's socket buffers (pin pressure below \
                     {revoke}); dropping the connection"
                ));
                tracing::warn!(error = %e, sends = self.sends.len(), "send_zc: aborting the slave's connection");
                return Err(self.abort(e));
            }
        }
        if !deep {
            return Ok(());
        }
        if self.progress_at.elapsed() > self.send_timeout {
            let e = io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the slave's socket took nothing for {} ms",
                    self.send_timeout.as_millis()
                ),
            );
            tracing::warn!(error = %e, sends = self.sends.len(), "send_zc: aborting the slave's connection");
            return Err(self.abort(e));
        }
        if self.socket_hung_up() {
            let e = io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the slave's connection was shut down with sends outstanding",
            );
            return Err(self.abort(e));
        }
        Ok(())
    }

    fn socket_hung_up(&self) -> bool {
        let Some((_, fd)) = &self.sock else {
            return false;
        };
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: 0,
            revents: 0,
        };
        // SAFETY: one live pollfd for the duration of the call; zero timeout.
        let r = unsafe { libc::poll(&mut pfd, 1, 0) };
        r > 0 && pfd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
    }

    /// Ends the connection at once so the kernel lets go of every pinned byte, waits
    /// (bounded) for every operation and notification, drops the pins, and marks the
    /// path broken. Returns `err` for the caller to pass on.
    fn abort(&mut self, err: io::Error) -> io::Error {
        if self.broken.is_none() {
            self.broken = Some((err.kind(), err.to_string()));
        }
        if let Some((_, fd)) = &self.sock {
            abort_socket(fd.as_raw_fd());
        }
        let until = Instant::now() + ABORT_GRACE;
        loop {
            self.reap();
            if self.sends.is_empty() && self.round.done() {
                break;
            }
            if Instant::now() >= until || self.enter(1, WAIT_TICK).is_err() {
                tracing::error!(
                    sends = self.sends.len(),
                    "send_zc notifications did not come after the connection was aborted; \
                     releasing their pins (nothing more reaches the peer)"
                );
                break;
            }
        }
        // The connection is reset and its send queue purged: no byte of these pins can
        // reach a peer any more, so the writer may have them back.
        self.sends.clear();
        err
    }

    /// Any error breaks the stream: aborts the connection (unless done already), so the
    /// kernel lets go of every pin, and keeps the path failed.
    fn fail(&mut self, e: io::Error) -> io::Error {
        if self.broken.is_some() {
            return e;
        }
        self.abort(e)
    }

    /// Lets outstanding sends finish (a healthy peer acknowledges within SETTLE_GRACE),
    /// else aborts the connection.
    fn settle(&mut self) {
        let until = Instant::now() + SETTLE_GRACE;
        loop {
            self.reap();
            if self.sends.is_empty() && self.round.done() {
                return;
            }
            if Instant::now() >= until || self.enter(1, WAIT_TICK).is_err() {
                self.abort(io::Error::other(
                    "the HA sender stopped with send_zc notifications outstanding",
                ));
                return;
            }
        }
    }
}

impl TransferPath for SendZcPath {
    fn send_data(
        &mut self,
        log: &CommitLog,
        sock: &mut TcpStream,
        phys: i64,
        len: usize,
    ) -> io::Result<()> {
        let acct = Accounting::start(PathKind::SendZc);
        let res = self.send(log, sock, phys, len).map_err(|e| self.fail(e));
        acct.finish_moved(res.as_ref().ok().copied());
        res.map(|_| ())
    }

    fn send_heartbeat(&mut self, sock: &mut TcpStream, phys: i64) -> io::Result<()> {
        self.check_broken()?;
        // As on the splice path: frames are held back only while more data follows.
        if !self.queue.is_empty() {
            let n = self.queue.len();
            return Err(io::Error::other(format!(
                "{n} frames still queued at a heartbeat"
            )));
        }
        self.bind(sock)?;
        self.reap();
        self.splice
            .send_heartbeat(sock, phys)
            .map_err(|e| self.fail(e))
    }

    fn idle(&mut self, log: &CommitLog, sock: &mut TcpStream) -> io::Result<Option<Duration>> {
        if self.sends.is_empty() && self.queue.is_empty() {
            return Ok(None);
        }
        let acct = Accounting::start(PathKind::SendZc);
        let res: io::Result<()> = (|| {
            self.check_broken()?;
            self.flush(log, sock)?;
            self.reap();
            let quiet = self.progress_at.elapsed() >= WAIT_TICK;
            self.check_trouble(log, quiet)?;
            Ok(())
        })();
        acct.finish_moved(None);
        res.map_err(|e| self.fail(e))?;
        if self.sends.is_empty() {
            return Ok(None);
        }
        // Back off while nothing comes (a peer far away, or stalled).
        Ok(Some(
            self.progress_at
                .elapsed()
                .clamp(Duration::from_micros(100), IDLE_POLL_MAX),
        ))
    }

    fn name(&self) -> &'static str {
        PathKind::SendZc.name()
    }
}

impl Drop for SendZcPath {
    fn drop(&mut self) {
        if !self.sends.is_empty() || !self.round.done() {
            self.settle();
        }
    }
}

/// Resets the connection now: SO_LINGER {on, 0} (so a later close resets instead of
/// lingering) and a disconnect (connect with AF_UNSPEC: tcp_disconnect sends a RST and
/// purges the send and retransmit queues, freeing their buffers, whatever other
/// descriptors of the socket are still open; close(2) would only do that on the last
/// one, and the master holds several).
pub(super) fn abort_socket(fd: RawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads one live linger struct for the duration of the call.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    // SAFETY: sockaddr is plain old data; all-zero with AF_UNSPEC is what a disconnect
    // takes. connect reads it for the duration of the call.
    let mut sa: libc::sockaddr = unsafe { std::mem::zeroed() };
    sa.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
    // SAFETY: connect reads `sa`, a live sockaddr of the size passed, for the duration
    // of the call; `fd` is our own duplicate of the socket, open until the path drops it.
    unsafe {
        libc::connect(
            fd,
            &sa,
            std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
        )
    };
    // SAFETY: shutdown takes no memory arguments.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
}

/// Whether the kernel has IORING_OP_SEND_ZC (probed once per process): Ok(whether it
/// takes IORING_SEND_ZC_REPORT_USAGE), else why not.
pub(super) fn zc_support() -> io::Result<bool> {
    match SUPPORT.get_or_init(|| probe().map_err(|e| e.to_string())) {
        Ok(s) => Ok(s.report_usage),
        Err(why) => Err(io::Error::new(io::ErrorKind::Unsupported, why.clone())),
    }
}

/// A ring for rounds: linked sends with CQE skipping and timed waits. Cooperative task
/// work where the kernel has it: completions that arrive while the sender sleeps
/// (notifications, mostly) neither interrupt nor wake it; they are run at its next
/// syscall, or by `reap` when the ring flags them (IORING_SQ_TASKRUN). With `opcodes`,
/// the kernel must support them too.
fn uring(opcodes: &'static [(u8, &'static str)]) -> io::Result<IoUring> {
    uring::build(&RingSpec {
        entries: RING_ENTRIES,
        cq_entries: Some(CQ_ENTRIES),
        coop_taskrun: true,
        timed_waits: true,
        opcodes,
    })
}

/// Whether IORING_OP_SEND_ZC exists, and whether it takes IORING_SEND_ZC_REPORT_USAGE:
/// a SEND_ZC with that flag on a Unix socket pair fails with EOPNOTSUPP (Unix sockets do
/// no zero-copy) if the flag is known, EINVAL if not.
fn probe() -> io::Result<Support> {
    let mut ring = uring(&[
        (opcode::SendZc::CODE, "IORING_OP_SEND_ZC"),
        (opcode::Send::CODE, "IORING_OP_SEND"),
    ])?;
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a live array of two ints the kernel fills.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nothing else.
    let (a, _b) = unsafe {
        use std::os::fd::FromRawFd;
        (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
    };
    let byte = [0u8; 1];
    let e = opcode::SendZc::new(types::Fd(a.as_raw_fd()), byte.as_ptr(), 1)
        .zc_flags(IORING_SEND_ZC_REPORT_USAGE)
        .build()
        .user_data(1);
    // SAFETY: `byte` lives until every completion of this send (result and, with
    // IORING_CQE_F_MORE, notification) has been reaped below; the queue is empty.
    unsafe { ring.submission().push(&e) }
        .map_err(|_| io::Error::other("io_uring submission queue full"))?;
    let mut result = None;
    let mut waiting_notif = false;
    let deadline = Instant::now() + Duration::from_secs(5);
    while result.is_none() || waiting_notif {
        let ts = types::Timespec::from(Duration::from_millis(100));
        let args = types::SubmitArgs::new().timespec(&ts);
        match ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME) | Some(libc::EINTR)) => {}
            Err(e) => {
                // The send may still be in flight: keep the byte it names.
                std::mem::forget(ring);
                return Err(e);
            }
        }
        for c in ring.completion() {
            if cqueue::notif(c.flags()) {
                waiting_notif = false;
            } else {
                result = Some(c.result());
                waiting_notif = cqueue::more(c.flags());
            }
        }
        if Instant::now() > deadline {
            std::mem::forget(ring);
            return Err(io::Error::other("the send_zc probe did not complete"));
        }
    }
    Ok(Support {
        report_usage: result != Some(-libc::EINVAL),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Set to 1 on a kernel known to lack IORING_OP_SEND_ZC (before 6.0): the probe test
    /// then skips, saying why, instead of failing.
    const ALLOW_NO_SEND_ZC: &str = "RINGMQ_TEST_ALLOW_NO_SEND_ZC";

    #[test]
    fn send_zc_is_probed() {
        let p = match SendZcPath::new(32 * 1024) {
            Ok(p) => p,
            Err(e) if std::env::var(ALLOW_NO_SEND_ZC).is_ok_and(|v| v == "1") => {
                eprintln!(
                    "SKIPPED send_zc_is_probed: send_zc is unavailable on this kernel ({e}); \
                     {ALLOW_NO_SEND_ZC}=1 allows that"
                );
                return;
            }
            Err(e) => panic!(
                "send_zc is unavailable on this kernel: {e}. It is the default HA transfer \
                 path (senders fall back to splice without it); on a kernel known to lack \
                 it, set {ALLOW_NO_SEND_ZC}=1 to skip this test"
            ),
        };
        assert!(p.reports_usage(), "a 6.x kernel reports usage");
    }
}
