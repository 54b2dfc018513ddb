//! The master's HA loop: one thread (`ringmq-ha-loop`, pinned to `haCore` when pinning is
//! on) and one io_uring serve every slave. Nothing on it blocks in a syscall: accepts,
//! offset reports, handshake bytes and every transfer go through the ring.
//!
//! | ring operation | does |
//! | --- | --- |
//! | Accept on the listener | a new connection; refused at once past [`MAX_UNPROVEN`], re-armed after a back-off on EMFILE and kin |
//! | Read on the wake eventfd | written by [`HaMaster::shutdown`](crate::HaMaster::shutdown) and by the CommitLog writer when its process-safe end passes what a caught-up slave was sent |
//! | Recv per connection | handshake answer (with `haAuthToken`), then offset reports (spec 7.2) into the [`SlaveTable`] |
//! | Send per connection | handshake challenge and verdict |
//! | a [`Stream`]'s jobs | CommitLog bytes and heartbeats (spec 7.3): send_zc, splice or copy |
//!
//! One turn: arm what is missing (per connection at most one Recv and one stream job, so a
//! flooding peer gets one read of [`RECV_BUF`] bytes per turn like every other), look at
//! the clocks (handshake deadline, `haHousekeepingInterval`, stalled or pinned-too-long
//! streams), wait in io_uring_enter for a completion or the next deadline, run every
//! completion. A connection is torn down by resetting its socket (every pending
//! operation then completes) and is freed once none of its operations is in flight; one
//! whose operations never all answer within [`ABORT_GRACE`] keeps its slot retired and
//! its memory leaked, so the kernel never writes or reads freed memory.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::{opcode, types, IoUring};
use ringmq_engine::MessageStore;

use crate::auth::{self, MasterHandshake};
use crate::config::HaConfig;
use crate::protocol::ReportDecoder;
use crate::slave_table::SlaveTable;
use crate::start_decision::{decide_start, StartDecision};
use crate::transfer::stream::{
    loop_ring, push_chain, split_user_data, user_data, LoopShared, Stream, FIRST_LOOP_TAG,
};

/// Longest the loop sleeps before looking at its clocks again.
const TICK: Duration = Duration::from_millis(100);
/// Bytes one Recv may take: at most this much of one connection's input per turn.
const RECV_BUF: usize = 1024;
/// How long a torn-down connection's operations get to answer before it is leaked.
const ABORT_GRACE: Duration = Duration::from_secs(2);
/// Back-off after an accept failure for lack of descriptors or memory, doubling to the
/// maximum while it lasts.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(50);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

const TAG_ACCEPT: u8 = FIRST_LOOP_TAG;
const TAG_WAKE: u8 = FIRST_LOOP_TAG + 1;
const TAG_RECV: u8 = FIRST_LOOP_TAG + 2;
const TAG_AUTH: u8 = FIRST_LOOP_TAG + 3;
/// The slot number of the loop's own operations (no connection has it).
const LOOP_SLOT: u32 = (1 << 20) - 1;

enum Phase {
    /// With `haAuthToken`: challenge sent (or sending), waiting for the answer.
    Auth(MasterHandshake),
    /// Registered; waiting for the first report (the start request).
    Proving,
    /// Streaming from the start the first report decided.
    Streaming,
}

struct Conn {
    id: u64,
    peer: SocketAddr,
    sock: TcpStream,
    phase: Phase,
    /// Holds one of the [`MAX_UNPROVEN`] places.
    unproven: bool,
    connected_at: Instant,
    last_read: Instant,
    registered: bool,
    /// Read by the in-flight Recv: boxed (never moves), read only after its completion.
    rbuf: Box<[u8; RECV_BUF]>,
    recv_pending: bool,
    /// Read by the in-flight handshake Send: not written until its completion.
    abuf: Vec<u8>,
    asent: usize,
    auth_pending: bool,
    decoder: ReportDecoder,
    /// Created by the first report (the start request).
    stream: Option<Stream>,
    /// Being torn down since, and why.
    closing: Option<Instant>,
}

impl Conn {
    fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// No operation of this connection is in flight: its memory may go.
    fn quiet(&self) -> bool {
        !self.recv_pending && !self.auth_pending && self.stream.as_ref().is_none_or(Stream::quiet)
    }
}

/// Most connections at once that have not proven themselves yet: with `haAuthToken`, not
/// through the handshake (which times out after `auth::HANDSHAKE_TIMEOUT`); without, no
/// first report yet (dropped after `haHousekeepingInterval`). Later ones are closed at
/// accept, so stray clients cannot pile up.
pub const MAX_UNPROVEN: usize = 16;

/// What the HA loop shares with the `HaMaster` handle that started it.
pub(crate) struct Inner {
    pub(crate) store: Arc<MessageStore>,
    pub(crate) cfg: HaConfig,
    pub(crate) table: Arc<SlaveTable>,
    pub(crate) stop: AtomicBool,
}

enum Slot {
    Free,
    Used(Box<Conn>),
    /// A connection whose operations never all answered: leaked, never reused.
    Retired,
}

pub(crate) struct Loop {
    /// Declared first: dropped before `shared` (which keeps the registered tail ring).
    ring: IoUring,
    shared: LoopShared,
    inner: Arc<Inner>,
    listener: TcpListener,
    wake: Arc<OwnedFd>,
    /// Read by the in-flight eventfd Read: boxed, leaked if still in flight at the end.
    wake_buf: Box<[u8; 8]>,
    wake_pending: bool,
    /// Set while a progress callback is registered (cleared when it fires).
    armed: Arc<AtomicBool>,
    accept_pending: bool,
    accept_backoff: Duration,
    accept_after: Option<Instant>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    unproven: usize,
}

/// A non-blocking eventfd the loop reads through its ring.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes no memory arguments.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds 1 to the eventfd, waking the loop's pending Read.
pub(crate) fn wake(fd: &OwnedFd) {
    let one = 1u64.to_ne_bytes();
    // SAFETY: write reads 8 live bytes for the duration of the call.
    unsafe { libc::write(fd.as_raw_fd(), one.as_ptr().cast(), 8) };
}

impl Loop {
    /// Builds the ring (on the thread that runs the loop: a ring belongs to its creator).
    pub(crate) fn new(
        inner: Arc<Inner>,
        listener: TcpListener,
        wake: Arc<OwnedFd>,
    ) -> io::Result<Loop> {
        let ring = loop_ring()?;
        let shared = LoopShared::new(
            &ring,
            inner.store.commitlog(),
            inner.cfg.transfer_batch_size,
        );
        Ok(Loop {
            ring,
            shared,
            inner,
            listener,
            wake,
            wake_buf: Box::new([0; 8]),
            wake_pending: false,
            armed: Arc::new(AtomicBool::new(false)),
            accept_pending: false,
            accept_backoff: ACCEPT_BACKOFF_MIN,
            accept_after: None,
            slots: Vec::new(),
            free: Vec::new(),
            unproven: 0,
        })
    }

    /// Runs until the master stops and every connection is gone.
    pub(crate) fn run(mut self) {
        let mut stopping_since = None;
        loop {
            let stop = self.inner.stop.load(Ordering::Acquire);
            if stop && stopping_since.is_none() {
                stopping_since = Some(Instant::now());
                for slot in 0..self.slots.len() as u32 {
                    self.close(slot, "master shutting down");
                }
            }
            if let Err(e) = self.arm_loop_ops(stop) {
                tracing::error!(error = %e, "HA loop: cannot arm its operations; stopping");
                break;
            }
            let wait = self.turn(stop);
            if stop && self.slots.iter().all(|s| !matches!(s, Slot::Used(_))) {
                break;
            }
            if let Err(e) = self.enter(wait) {
                tracing::error!(error = %e, "HA loop: io_uring_enter failed; stopping");
                break;
            }
            self.reap();
        }
        self.finish();
    }

    /// Arms the accept (unless stopping or backing off) and the eventfd read.
    fn arm_loop_ops(&mut self, stop: bool) -> io::Result<()> {
        if !self.wake_pending {
            let e = opcode::Read::new(
                types::Fd(self.wake.as_raw_fd()),
                self.wake_buf.as_mut_ptr(),
                8,
            )
            .build()
            .user_data(user_data(LOOP_SLOT, TAG_WAKE, 0));
            // SAFETY: the Read writes `wake_buf`, boxed and owned by the loop, which
            // leaks it in `finish` if the Read is still in flight then.
            unsafe { push_chain(&mut self.ring, &[e]) }?;
            self.wake_pending = true;
        }
        let backing_off = self.accept_after.is_some_and(|t| Instant::now() < t);
        if !self.accept_pending && !stop && !backing_off {
            let e = opcode::Accept::new(
                types::Fd(self.listener.as_raw_fd()),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(user_data(LOOP_SLOT, TAG_ACCEPT, 0));
            // SAFETY: the Accept names no memory (null address arguments).
            unsafe { push_chain(&mut self.ring, &[e]) }?;
            self.accept_pending = true;
            self.accept_after = None;
        }
        Ok(())
    }

    /// Per connection: free it if torn down and quiet, check its clocks, arm its Recv,
    /// start its next stream job. Returns how long the loop may sleep.
    fn turn(&mut self, stop: bool) -> Duration {
        let now = Instant::now();
        let mut wait = TICK;
        if let Some(t) = self.accept_after {
            wait = wait.min(t.saturating_duration_since(now));
        }
        let log = self.inner.store.commitlog();
        let written = log.process_safe_end();
        let mut caught_up = false;
        for slot in 0..self.slots.len() as u32 {
            let Slot::Used(c) = &mut self.slots[slot as usize] else {
                continue;
            };
            if let Some(since) = c.closing {
                if c.quiet() {
                    self.free_slot(slot);
                } else if since.elapsed() > ABORT_GRACE {
                    self.retire(slot);
                } else {
                    wait = wait.min(Duration::from_millis(10));
                }
                continue;
            }
            if stop {
                continue;
            }
            if let Err(why) = self.check_clocks(slot, now) {
                self.close(slot, &why);
                continue;
            }
            if let Err(e) = self.arm_recv(slot) {
                self.close(slot, &format!("cannot read from the slave: {e}"));
                continue;
            }
            match self.pump(slot) {
                Ok(Some(until)) => {
                    let Slot::Used(c) = &self.slots[slot as usize] else {
                        continue;
                    };
                    let s = c.stream.as_ref().expect("pump returned a deadline");
                    if !s.busy() && s.next() >= written {
                        caught_up = true;
                    }
                    if s.pinned_bytes() > 0 {
                        // Notifications wake the loop; the pressure check needs a tick.
                        wait = wait.min(Duration::from_millis(10));
                    }
                    wait = wait.min(until.saturating_duration_since(Instant::now()));
                }
                Ok(None) => {}
                Err(e) => self.close(slot, &e.to_string()),
            }
        }
        if caught_up && !stop {
            self.arm_write_wake(written);
        }
        wait
    }

    /// Handshake deadline, housekeeping, stream stalls and pin pressure.
    fn check_clocks(&mut self, slot: u32, now: Instant) -> Result<(), String> {
        let Slot::Used(c) = &self.slots[slot as usize] else {
            return Ok(());
        };
        let cfg = &self.inner.cfg;
        if matches!(c.phase, Phase::Auth(_))
            && now.duration_since(c.connected_at) > auth::HANDSHAKE_TIMEOUT
        {
            return Err(format!(
                "HA peer refused: failed the haAuthToken handshake: {}",
                auth::AuthError::AnswerTimedOut
            ));
        }
        if now.duration_since(c.last_read) > cfg.housekeeping_interval {
            return Err(format!(
                "no report for {} ms (haHousekeepingInterval)",
                cfg.housekeeping_interval.as_millis()
            ));
        }
        if let Some(s) = &c.stream {
            s.check(self.inner.store.commitlog(), cfg.housekeeping_interval)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn arm_recv(&mut self, slot: u32) -> io::Result<()> {
        let Slot::Used(c) = &mut self.slots[slot as usize] else {
            return Ok(());
        };
        if c.recv_pending || c.auth_pending {
            return Ok(());
        }
        let e = opcode::Recv::new(types::Fd(c.fd()), c.rbuf.as_mut_ptr(), RECV_BUF as u32)
            .build()
            .user_data(user_data(slot, TAG_RECV, 0));
        // SAFETY: the Recv writes `c.rbuf`, boxed inside the connection, which is freed
        // only once `recv_pending` is false again (its completion was reaped) or leaked.
        unsafe { push_chain(&mut self.ring, &[e]) }?;
        c.recv_pending = true;
        Ok(())
    }

    /// Starts the connection's next stream job; returns when it next needs the loop.
    fn pump(&mut self, slot: u32) -> io::Result<Option<Instant>> {
        let Slot::Used(c) = &mut self.slots[slot as usize] else {
            return Ok(None);
        };
        let Some(s) = &mut c.stream else {
            return Ok(None);
        };
        let (table, id) = (&self.inner.table, c.id);
        let cfg = &self.inner.cfg;
        s.pump(
            self.inner.store.commitlog(),
            &mut self.shared,
            &mut self.ring,
            cfg.heartbeat_interval,
            &mut |end| table.sent(id, end),
        )?;
        Ok(Some(s.heartbeat_at(cfg.heartbeat_interval)))
    }

    /// Asks the writer to wake the loop once the log's process-safe end (what may be
    /// streamed, see `crate::master`) passes `written`.
    fn arm_write_wake(&mut self, written: i64) {
        let log = self.inner.store.commitlog();
        let progress = log.progress();
        // A stopped store answers at once: the streams see it and end instead.
        if progress.is_stopped() || self.armed.swap(true, Ordering::AcqRel) {
            return;
        }
        let (armed, wake_fd) = (self.armed.clone(), self.wake.clone());
        progress.on_reached(
            log.process_safe_level(),
            written + 1,
            Box::new(move |_| {
                armed.store(false, Ordering::Release);
                wake(&wake_fd);
            }),
        );
    }

    fn enter(&mut self, wait: Duration) -> io::Result<()> {
        if self.ring.completion().is_empty() {
            let ts = types::Timespec::from(wait.max(Duration::from_micros(50)));
            let args = types::SubmitArgs::new().timespec(&ts);
            match self.ring.submitter().submit_with_args(1, &args) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ETIME)
                            | Some(libc::EINTR)
                            | Some(libc::EAGAIN)
                            | Some(libc::EBUSY)
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn reap(&mut self) {
        if self.ring.submission().taskrun() {
            let _ = self.ring.submitter().submit_and_wait(0);
        }
        let cqes: Vec<(u64, i32, u32)> = self
            .ring
            .completion()
            .map(|c| (c.user_data(), c.result(), c.flags()))
            .collect();
        for (ud, res, flags) in cqes {
            let (slot, tag, _) = split_user_data(ud);
            match tag {
                TAG_ACCEPT => self.on_accept(res),
                TAG_WAKE => self.wake_pending = false,
                TAG_RECV => self.on_recv(slot, res),
                TAG_AUTH => self.on_auth_sent(slot, res),
                _ => self.on_stream(slot, ud, res, flags),
            }
        }
    }

    fn on_accept(&mut self, res: i32) {
        self.accept_pending = false;
        if res < 0 {
            let e = io::Error::from_raw_os_error(-res);
            if matches!(
                -res,
                libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM
            ) {
                tracing::warn!(error = %e, backoff_ms = self.accept_backoff.as_millis(), "HA accept failed; backing off");
                self.accept_after = Some(Instant::now() + self.accept_backoff);
                self.accept_backoff = (self.accept_backoff * 2).min(ACCEPT_BACKOFF_MAX);
            } else if !matches!(-res, libc::EINTR | libc::EAGAIN | libc::ECONNABORTED) {
                // Not a transient error either: still never retried in a tight loop.
                tracing::warn!(error = %e, "HA accept failed");
                self.accept_after = Some(Instant::now() + ACCEPT_BACKOFF_MIN);
            }
            return;
        }
        self.accept_backoff = ACCEPT_BACKOFF_MIN;
        // SAFETY: a successful Accept returns a new descriptor owned by nobody else.
        let sock = unsafe { TcpStream::from_raw_fd(res) };
        if let Err(e) = self.add_connection(sock) {
            tracing::warn!(error = %e, "cannot set up an HA connection");
        }
    }

    fn add_connection(&mut self, sock: TcpStream) -> io::Result<()> {
        let peer = sock.peer_addr()?;
        if self.unproven >= MAX_UNPROVEN {
            tracing::warn!(peer = %peer, max = MAX_UNPROVEN, "HA connection refused: too many connections that have not authenticated or reported yet");
            return Ok(());
        }
        sock.set_nodelay(true)?;
        // A splice into the socket runs in an io-wq worker and blocks there; the timeout
        // bounds each such wait (the loop's own stall check bounds the sum).
        sock.set_write_timeout(Some(self.inner.cfg.housekeeping_interval))?;
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                if self.slots.len() as u32 >= LOOP_SLOT {
                    return Err(io::Error::other("HA loop: no connection slot left"));
                }
                self.slots.push(Slot::Free);
                self.slots.len() as u32 - 1
            }
        };
        let id = self.inner.table.next_id();
        let now = Instant::now();
        let mut conn = Box::new(Conn {
            id,
            peer,
            sock,
            phase: Phase::Proving,
            unproven: true,
            connected_at: now,
            last_read: now,
            registered: false,
            rbuf: Box::new([0; RECV_BUF]),
            recv_pending: false,
            abuf: Vec::new(),
            asent: 0,
            auth_pending: false,
            decoder: ReportDecoder::new(),
            stream: None,
            closing: None,
        });
        self.unproven += 1;
        if self.inner.cfg.auth_token.is_some() {
            let (hs, hello) = MasterHandshake::new()?;
            conn.phase = Phase::Auth(hs);
            conn.abuf.extend_from_slice(&hello);
        } else {
            self.inner.table.register(id, peer);
            conn.registered = true;
            tracing::info!(slave = %peer, id, "slave connected");
        }
        self.slots[slot as usize] = Slot::Used(conn);
        if self.inner.cfg.auth_token.is_some() {
            self.send_auth(slot, 0)?;
        }
        Ok(())
    }

    /// Sends the handshake bytes in `abuf` from byte `from`.
    fn send_auth(&mut self, slot: u32, from: usize) -> io::Result<()> {
        let Slot::Used(c) = &mut self.slots[slot as usize] else {
            return Ok(());
        };
        c.asent = from;
        let rest = &c.abuf[from..];
        let e = opcode::Send::new(types::Fd(c.fd()), rest.as_ptr(), rest.len() as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(user_data(slot, TAG_AUTH, 0));
        // SAFETY: the Send reads `c.abuf[from..]`; `abuf` is not written while
        // `auth_pending` is set, and the connection is freed only when it is clear again
        // (or leaked).
        unsafe { push_chain(&mut self.ring, &[e]) }?;
        c.auth_pending = true;
        Ok(())
    }

    fn on_auth_sent(&mut self, slot: u32, res: i32) {
        let Slot::Used(c) = &mut self.slots[slot as usize] else {
            return;
        };
        c.auth_pending = false;
        if c.closing.is_some() {
            return;
        }
        if res <= 0 {
            let e = io::Error::from_raw_os_error(-res.min(-1));
            return self.close(
                slot,
                &format!("HA peer refused: failed the haAuthToken handshake: {e}"),
            );
        }
        let from = c.asent + res as usize;
        if from < c.abuf.len() {
            if let Err(e) = self.send_auth(slot, from) {
                self.close(slot, &e.to_string());
            }
        }
    }

    fn on_recv(&mut self, slot: u32, res: i32) {
        let Slot::Used(c) = &mut self.slots[slot as usize] else {
            return;
        };
        c.recv_pending = false;
        if c.closing.is_some() {
            return;
        }
        let n = match res {
            0 => return self.close(slot, "slave closed the connection"),
            r if r == -libc::EINTR || r == -libc::EAGAIN => return,
            r if r < 0 => {
                let e = io::Error::from_raw_os_error(-r);
                return self.close(slot, &e.to_string());
            }
            r => r as usize,
        };
        c.last_read = Instant::now();
        let mut bytes = &c.rbuf[..n];
        if let Phase::Auth(hs) = &mut c.phase {
            let cfg = &self.inner.cfg;
            let token = cfg.auth_token.as_deref().unwrap_or_default();
            match hs.feed(
                bytes,
                token,
                cfg.cluster_name.as_deref(),
                cfg.broker_name.as_deref(),
            ) {
                Ok((_, None)) => return,
                Ok((used, Some((peer, verdict)))) => {
                    tracing::info!(slave = %c.peer, cluster = %peer.cluster, broker = %peer.broker, "HA peer authenticated");
                    bytes = &bytes[used..];
                    c.phase = Phase::Proving;
                    c.abuf.clear();
                    c.abuf.extend_from_slice(&verdict);
                    self.inner.table.register(c.id, c.peer);
                    c.registered = true;
                    if c.unproven {
                        c.unproven = false;
                        self.unproven -= 1;
                    }
                    tracing::info!(slave = %c.peer, id = c.id, "slave connected");
                    let rest = bytes.to_vec();
                    if let Err(e) = self.send_auth(slot, 0) {
                        return self.close(slot, &e.to_string());
                    }
                    if !rest.is_empty() {
                        self.on_report_bytes(slot, &rest);
                    }
                    return;
                }
                Err(e) => {
                    let why = format!("HA peer refused: failed the haAuthToken handshake; closed without registering it: {e}");
                    return self.close(slot, &why);
                }
            }
        }
        let bytes = bytes.to_vec();
        self.on_report_bytes(slot, &bytes);
    }

    fn on_report_bytes(&mut self, slot: u32, bytes: &[u8]) {
        let Slot::Used(c) = &mut self.slots[slot as usize] else {
            return;
        };
        let offset = match c.decoder.decode(bytes) {
            Ok(Some(offset)) => offset,
            Ok(None) => return,
            Err(e) => return self.close(slot, &e.to_string()),
        };
        if let Err(e) = self.inner.table.report(c.id, offset) {
            tracing::warn!(slave = %c.peer, id = c.id, error = %e, "dropping HA connection");
            return self.close(slot, &e.to_string());
        }
        if c.unproven {
            c.unproven = false;
            self.unproven -= 1;
        }
        if matches!(c.phase, Phase::Proving) {
            if let Err(why) = self.start_stream(slot, offset) {
                self.close(slot, &why);
            }
        }
    }

    /// Decides where streaming starts (spec 7.4) from the first report.
    fn start_stream(&mut self, slot: u32, first: i64) -> Result<(), String> {
        let Slot::Used(c) = &mut self.slots[slot as usize] else {
            return Ok(());
        };
        let log = self.inner.store.commitlog();
        let start = match decide_start(
            first,
            log.min_offset(),
            log.max_offset(),
            log.config().segment_size,
            self.inner.cfg.empty_slave_start,
        ) {
            StartDecision::At(at) => at,
            StartDecision::Diverged {
                slave_end,
                master_end,
            } => {
                tracing::error!(
                    slave = %c.peer,
                    slave_end,
                    master_end,
                    "slave's CommitLog is longer than the master's: the logs have diverged; \
                     streaming from the master's end (the slave drops its tail past \
                     {master_end} and follows)"
                );
                master_end
            }
            StartDecision::Behind {
                slave_end,
                master_min,
            } => {
                return Err(format!(
                    "slave needs offset {slave_end}, but the master's oldest stored byte is {master_min}"
                ));
            }
        };
        let kind = crate::transfer::default_path();
        tracing::info!(slave = %c.peer, id = c.id, start, reported = first, path = kind.name(), "streaming CommitLog to slave");
        // Acks count from here, and never past what was sent (see `slave_table`).
        self.inner.table.start(c.id, start);
        c.phase = Phase::Streaming;
        c.stream = Some(Stream::new(
            log,
            kind,
            slot,
            c.fd(),
            start,
            self.inner.cfg.transfer_batch_size,
        ));
        Ok(())
    }

    fn on_stream(&mut self, slot: u32, ud: u64, res: i32, flags: u32) {
        let Slot::Used(c) = &mut self.slots[slot as usize] else {
            return;
        };
        let closing = c.closing.is_some();
        let Some(s) = &mut c.stream else {
            return;
        };
        let r = s.on_cqe(
            self.inner.store.commitlog(),
            &mut self.shared,
            &mut self.ring,
            ud,
            res,
            flags,
            closing,
        );
        if let Err(e) = r {
            if !closing {
                tracing::info!(slave = %c.peer, id = c.id, error = %e, "stopped streaming to slave");
            }
            self.close(slot, &e.to_string());
        }
    }

    /// Tears a connection down: unregisters it (its acks go with it) and resets its
    /// socket so every pending operation completes; it is freed once quiet.
    fn close(&mut self, slot: u32, why: &str) {
        let Slot::Used(c) = &mut self.slots[slot as usize] else {
            return;
        };
        if c.closing.is_some() {
            return;
        }
        c.closing = Some(Instant::now());
        if c.unproven {
            c.unproven = false;
            self.unproven -= 1;
        }
        if c.registered {
            self.inner.table.unregister(c.id);
            tracing::info!(slave = %c.peer, id = c.id, reason = %why, "slave disconnected");
        } else {
            tracing::warn!(peer = %c.peer, reason = %why, "HA connection closed before it was registered");
        }
        match &c.stream {
            Some(s) => s.abort(),
            None => {
                let _ = c.sock.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    fn free_slot(&mut self, slot: u32) {
        self.slots[slot as usize] = Slot::Free;
        self.free.push(slot);
    }

    /// A torn-down connection whose operations did not all answer: its pins go (its
    /// socket was reset, nothing of them reaches a peer), the rest is leaked.
    fn retire(&mut self, slot: u32) {
        if let Slot::Used(mut c) = std::mem::replace(&mut self.slots[slot as usize], Slot::Retired)
        {
            tracing::error!(slave = %c.peer, id = c.id, "HA operations did not complete after the connection was reset; leaking its buffers");
            if let Some(s) = &mut c.stream {
                s.release_pins();
            }
            Box::leak(c);
        }
    }

    /// At the end: leaks whatever an operation may still name, then drops the ring.
    fn finish(mut self) {
        for slot in 0..self.slots.len() as u32 {
            if let Slot::Used(c) = &self.slots[slot as usize] {
                if c.quiet() {
                    self.free_slot(slot);
                } else {
                    self.retire(slot);
                }
            }
        }
        if self.wake_pending {
            Box::leak(std::mem::replace(&mut self.wake_buf, Box::new([0; 8])));
        }
        self.inner.table.stop();
    }
}
