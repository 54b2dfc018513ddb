//! The slave side: one thread, `ringmq-ha-slave`, that connects to the master's HA
//! port, reports its CommitLog end (spec 7.2) at once, as appends become safe and at
//! least every `haSendHeartbeatInterval`, receives transfer frames (spec 7.3) and appends
//! them with `MessageStore::put_raw`.
//!
//! Connecting, the `haAuthToken` handshake and the first report are blocking calls (once
//! per session); the session itself runs on the thread's own io_uring ([`Receiver`]): a
//! Recv of frames, a Send per report, and a Read of an eventfd that the writer's append
//! answers, the report level reaching the appended end, and `stop` write to. The thread
//! waits only in io_uring_enter. At most 64 appends are in flight; past that it stops
//! reading (back-pressure on the master).
//!
//! What a report promises (the master counts it as this slave's ack): the bytes up to it
//! survive a crash of the slave process. So the slave reports the end of its append when
//! its tail ring lives in shared memory (start-up writes it back after a process crash),
//! else the CommitLog's `write_end` (its O_DIRECT write completed); with SYNC_FLUSH on the
//! slave, `durable_end`. The first report of a session (where streaming starts) waits
//! for that level to reach the log's end, so it promises the same; later reports carry
//! only what an answered append reached and the level covers. On any error
//! it closes the connection and retries every `reconnect_interval`, logging once per
//! state change (connected, disconnected, first failed attempt), never in a loop.
//!
//! With `haAuthToken` the session first answers the master's [`auth`](crate::auth)
//! challenge; a slave without one refuses a master that opens with it (token mismatch).

use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ringmq_engine::commitlog::{FlushMode, Level, RawAppend};
use ringmq_engine::sync::lock;
use ringmq_engine::MessageStore;

use crate::auth;
use crate::config::HaConfig;
use crate::protocol::{encode_report, FrameDecoder};
use crate::transfer::uring::{self, RingSpec};
use io_uring::{opcode, types, IoUring};

/// Longest the receiver sleeps in its ring before re-checking its timers.
const TICK: Duration = Duration::from_millis(500);
/// Longest the slave waits for the local writer to take one replicated chunk.
const APPEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Socket read buffer: several frames per read, appended as one pipelined group.
const READ_BUF: usize = 256 * 1024;
/// A running HA slave. Dropping it stops it.
pub struct HaSlave {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    store: Arc<MessageStore>,
    master: SocketAddr,
    cfg: HaConfig,
    stop: AtomicBool,
    stop_lock: Mutex<()>,
    stop_cv: Condvar,
    /// The live connection, so `stop` can end it.
    socket: Mutex<Option<TcpStream>>,
    /// Wakes the receiver's ring: `stop`, the writer's append answers, and the report
    /// level reaching the appended end.
    wake: Arc<OwnedFd>,
    acked: AtomicI64,
    connected: AtomicBool,
}

impl HaSlave {
    /// Starts following `master` (its HA address). Never fails: an unreachable master is
    /// retried every `reconnect_interval`.
    ///
    /// # Panics
    /// If the thread or its eventfd cannot be created.
    pub fn start(store: Arc<MessageStore>, master: SocketAddr, cfg: HaConfig) -> HaSlave {
        let shared = Arc::new(Shared {
            store,
            master,
            cfg,
            stop: AtomicBool::new(false),
            stop_lock: Mutex::new(()),
            stop_cv: Condvar::new(),
            socket: Mutex::new(None),
            wake: Arc::new(eventfd().expect("eventfd for the HA slave")),
            acked: AtomicI64::new(-1),
            connected: AtomicBool::new(false),
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("ringmq-ha-slave".into())
                .spawn(move || shared.run())
                .expect("spawn ringmq-ha-slave")
        };
        HaSlave {
            shared,
            thread: Mutex::new(Some(thread)),
        }
    }

    /// The log end this slave last reported to the master (-1 before the first report).
    pub fn acked_offset(&self) -> i64 {
        self.shared.acked.load(Ordering::Acquire)
    }

    /// Whether a session with the master is up.
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Acquire)
    }

    pub fn master(&self) -> SocketAddr {
        self.shared.master
    }

    /// Closes the connection and joins the thread. Appends already handed to the store
    /// complete; the store itself stays open. Idempotent.
    pub fn stop(&self) {
        let sh = &self.shared;
        sh.stop.store(true, Ordering::Release);
        if let Some(s) = lock(&sh.socket).as_ref() {
            let _ = s.shutdown(Shutdown::Both);
        }
        wake(&sh.wake);
        {
            let _guard = lock(&sh.stop_lock);
            sh.stop_cv.notify_all();
        }
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
    }
}

impl Drop for HaSlave {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Sleeps `d` unless stopped first.
    fn sleep(&self, d: Duration) {
        let guard = lock(&self.stop_lock);
        let _ = self
            .stop_cv
            .wait_timeout_while(guard, d, |_| !self.stopped())
            .expect("stop lock");
    }

    fn run(&self) {
        let retry = self.cfg.reconnect_interval;
        let mut failure_logged = false;
        let mut auth_failure_logged = false;
        while !self.stopped() {
            match TcpStream::connect_timeout(&self.master, retry.max(Duration::from_secs(1))) {
                Ok(stream) => {
                    failure_logged = false;
                    let res = self.session(stream);
                    self.connected.store(false, Ordering::Release);
                    *lock(&self.socket) = None;
                    let auth_failed = matches!(&res, Err(e) if auth::is_auth_error(e));
                    match res {
                        Err(e) if auth_failed && !self.stopped() && !auth_failure_logged => {
                            tracing::warn!(
                                master = %self.master,
                                error = %e,
                                retry_ms = retry.as_millis() as u64,
                                "HA auth handshake with the master failed; retrying quietly"
                            )
                        }
                        Err(e) if auth_failed && !self.stopped() => {
                            tracing::debug!(master = %self.master, error = %e, "HA auth retry failed")
                        }
                        Err(e) if !self.stopped() => tracing::warn!(
                            master = %self.master,
                            error = %e,
                            retry_ms = retry.as_millis() as u64,
                            "disconnected from HA master; reconnecting"
                        ),
                        _ => tracing::info!(master = %self.master, "HA slave stopped"),
                    }
                    auth_failure_logged = auth_failed;
                }
                Err(e) if !failure_logged => {
                    failure_logged = true;
                    tracing::warn!(
                        master = %self.master,
                        error = %e,
                        retry_ms = retry.as_millis() as u64,
                        "cannot connect to HA master; retrying quietly"
                    );
                }
                Err(e) => {
                    tracing::debug!(master = %self.master, error = %e, "HA connect retry failed")
                }
            }
            if !self.stopped() {
                self.sleep(retry);
            }
        }
    }

    /// The level a report promises: `durable_end` under SYNC_FLUSH; otherwise
    /// `append_end` when the tail ring survives a process crash, else `write_end`.
    fn report_level(&self) -> Level {
        let log = self.store.commitlog();
        match log.config().flush_mode {
            FlushMode::Sync => Level::Durable,
            FlushMode::Async => log.process_safe_level(),
        }
    }

    /// What may be reported of the log up to `end`: the part at the report level, after
    /// waiting up to `wait` for it to cover `end`.
    fn safe_end(&self, end: i64, wait: Duration) -> i64 {
        let (progress, level) = (self.store.commitlog().progress(), self.report_level());
        if progress.get(level) < end && !wait.is_zero() {
            progress.wait(level, end, wait);
        }
        progress.get(level).min(end)
    }

    /// One connection: returns Ok when stopped, Err when the connection must be dropped.
    fn session(&self, stream: TcpStream) -> io::Result<()> {
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(self.cfg.housekeeping_interval))?;
        {
            let mut slot = lock(&self.socket);
            if self.stopped() {
                return Ok(());
            }
            *slot = Some(stream.try_clone()?);
        }
        if let Some(token) = &self.cfg.auth_token {
            let cluster = self.cfg.cluster_name.as_deref().unwrap_or("");
            let broker = self.cfg.broker_name.as_deref().unwrap_or("");
            auth::slave_handshake(&stream, token, cluster, broker, auth::HANDSHAKE_TIMEOUT)?;
        }
        self.connected.store(true, Ordering::Release);
        let end = self.store.commitlog().max_offset();
        tracing::info!(master = %self.master, local_end = end, "connected to HA master");
        // The first report is where streaming starts, so it must be the log's end; it
        // also counts as an ack, so it waits until that end is safe (module doc).
        if self.safe_end(end, APPEND_TIMEOUT) < end {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the local log's end was not written in time for the first report",
            ));
        }
        self.acked.store(end, Ordering::Release);
        (&stream).write_all(&encode_report(end))?;
        let mut rx = Receiver::new(self, stream, end)?;
        let res = rx.run();
        rx.quiesce();
        res
    }
}

/// An append handed to the store's writer, answered on the writer's thread.
type Answers = Arc<Mutex<Vec<ringmq_engine::Result<i64>>>>;

/// One session's receiver on its own io_uring (see the module doc): a Recv of the
/// master's frames, a Send of each report, a Read of the wake eventfd.
struct Receiver<'a> {
    /// Declared first: dropped before the buffers its operations name.
    ring: IoUring,
    sh: &'a Shared,
    sock: TcpStream,
    /// Written by the in-flight Recv: boxed, read only after its completion.
    buf: Box<[u8]>,
    recv_pending: bool,
    /// Read by the in-flight report Send: not written until its completion.
    rep: Box<[u8; 8]>,
    rep_sent: usize,
    rep_pending: bool,
    /// Written by the in-flight eventfd Read.
    wake_buf: Box<[u8; 8]>,
    wake_pending: bool,
    /// Set while a progress callback is registered (cleared when it fires).
    armed: Arc<AtomicBool>,
    answers: Answers,
    /// Appends handed to the writer and not answered yet.
    appending: usize,
    decoder: FrameDecoder,
    /// The log end the store has taken (answered appends).
    end: i64,
    reported: i64,
    /// Where the next frame must start: the log end plus appends not answered yet.
    expected: i64,
    /// The master's first frame says where it streams from; only it may move us back.
    first_frame: bool,
    /// Without a token: the master's first bytes, to name a master that wants one.
    head: Vec<u8>,
    last_read: Instant,
    last_report: Instant,
}

/// Most appends in flight before the receiver stops reading (back-pressure).
const MAX_APPENDING: usize = 64;
const UD_RECV: u64 = 1;
const UD_REPORT: u64 = 2;
const UD_WAKE: u64 = 3;

impl<'a> Receiver<'a> {
    fn new(sh: &'a Shared, sock: TcpStream, end: i64) -> io::Result<Receiver<'a>> {
        let ring = uring::build(&RingSpec {
            entries: 8,
            cq_entries: None,
            coop_taskrun: true,
            timed_waits: true,
            opcodes: &[
                (opcode::Recv::CODE, "IORING_OP_RECV"),
                (opcode::Send::CODE, "IORING_OP_SEND"),
                (opcode::Read::CODE, "IORING_OP_READ"),
            ],
        })?;
        let now = Instant::now();
        Ok(Receiver {
            ring,
            sh,
            sock,
            buf: vec![0u8; READ_BUF].into_boxed_slice(),
            recv_pending: false,
            rep: Box::new([0; 8]),
            rep_sent: 0,
            rep_pending: false,
            wake_buf: Box::new([0; 8]),
            wake_pending: false,
            armed: Arc::new(AtomicBool::new(false)),
            answers: Arc::new(Mutex::new(Vec::new())),
            appending: 0,
            decoder: FrameDecoder::new(sh.cfg.transfer_batch_size),
            end,
            reported: end,
            expected: end,
            first_frame: true,
            head: Vec::new(),
            last_read: now,
            last_report: now,
        })
    }

    fn run(&mut self) -> io::Result<()> {
        loop {
            if self.sh.stopped() {
                return Ok(());
            }
            self.take_answers()?;
            self.report_if_due()?;
            self.arm()?;
            let housekeeping = self.sh.cfg.housekeeping_interval;
            if self.last_read.elapsed() > housekeeping {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "nothing from the master for {} ms (haHousekeepingInterval)",
                        housekeeping.as_millis()
                    ),
                ));
            }
            let until_report = self
                .sh
                .cfg
                .heartbeat_interval
                .saturating_sub(self.last_report.elapsed());
            self.enter(until_report.clamp(Duration::from_millis(1), TICK))?;
            // Every completion is booked, even after one failed: `quiesce` must know
            // which operations are still in flight.
            let mut failed = None;
            for (ud, res) in self.reap() {
                let r = match ud {
                    UD_RECV if failed.is_none() => self.on_recv(res),
                    UD_REPORT if failed.is_none() => self.on_report_sent(res),
                    _ => {
                        self.book(ud);
                        Ok(())
                    }
                };
                if let Err(e) = r {
                    failed = Some(e);
                }
            }
            if let Some(e) = failed {
                return Err(e);
            }
        }
    }

    /// Books the writer's answers: the store's end moves on.
    fn take_answers(&mut self) -> io::Result<()> {
        let answers = std::mem::take(&mut *lock(&self.answers));
        for a in answers {
            self.appending -= 1;
            self.end = a.map_err(|e| {
                io::Error::other(format!("local append of replicated bytes failed: {e}"))
            })?;
        }
        Ok(())
    }

    /// Reports what is safe (module doc) once it grew, and at least every heartbeat
    /// interval; asks the writer to wake us when the rest becomes safe.
    fn report_if_due(&mut self) -> io::Result<()> {
        let (progress, level) = (self.sh.store.commitlog().progress(), self.sh.report_level());
        if progress.is_stopped() {
            return Err(io::Error::other("the local store has stopped"));
        }
        let safe = progress.get(level).min(self.end);
        if safe < self.end && !self.armed.swap(true, Ordering::AcqRel) {
            let (armed, wake_fd) = (self.armed.clone(), self.sh.wake.clone());
            progress.on_reached(
                level,
                self.end,
                Box::new(move |_| {
                    armed.store(false, Ordering::Release);
                    wake(&wake_fd);
                }),
            );
        }
        let due =
            safe > self.reported || self.last_report.elapsed() >= self.sh.cfg.heartbeat_interval;
        if !due || self.rep_pending {
            return Ok(());
        }
        // Published before the send: once the master has the report (and may answer a
        // send), `acked_offset` already says so. A failed send ends the session anyway.
        self.sh.acked.store(safe, Ordering::Release);
        *self.rep = encode_report(safe);
        self.reported = safe;
        self.last_report = Instant::now();
        self.send_report(0)
    }

    fn send_report(&mut self, from: usize) -> io::Result<()> {
        self.rep_sent = from;
        let e = opcode::Send::new(
            types::Fd(self.sock.as_raw_fd()),
            self.rep[from..].as_ptr(),
            (8 - from) as u32,
        )
        .flags(libc::MSG_NOSIGNAL)
        .build()
        .user_data(UD_REPORT);
        // SAFETY: the Send reads `self.rep[from..]`, boxed and not written while
        // `rep_pending` is set; `quiesce` waits for the completion or leaks the box.
        unsafe { self.ring.submission().push(&e) }
            .map_err(|_| io::Error::other("slave io_uring submission queue full"))?;
        self.rep_pending = true;
        Ok(())
    }

    fn on_report_sent(&mut self, res: i32) -> io::Result<()> {
        self.rep_pending = false;
        if res <= 0 {
            return Err(op_error("send a report to the master", res));
        }
        let sent = self.rep_sent + res as usize;
        if sent < 8 {
            return self.send_report(sent);
        }
        Ok(())
    }

    /// Arms the Recv (unless the writer is behind) and the wake Read.
    fn arm(&mut self) -> io::Result<()> {
        if !self.wake_pending {
            let e = opcode::Read::new(
                types::Fd(self.sh.wake.as_raw_fd()),
                self.wake_buf.as_mut_ptr(),
                8,
            )
            .build()
            .user_data(UD_WAKE);
            // SAFETY: the Read writes `wake_buf`, boxed; `quiesce` waits for the
            // completion (it wakes the eventfd itself) or leaks the box.
            unsafe { self.ring.submission().push(&e) }
                .map_err(|_| io::Error::other("slave io_uring submission queue full"))?;
            self.wake_pending = true;
        }
        if !self.recv_pending && self.appending < MAX_APPENDING {
            let e = opcode::Recv::new(
                types::Fd(self.sock.as_raw_fd()),
                self.buf.as_mut_ptr(),
                self.buf.len() as u32,
            )
            .build()
            .user_data(UD_RECV);
            // SAFETY: the Recv writes `buf`, boxed and read only after the completion;
            // `quiesce` waits for it or leaks the box.
            unsafe { self.ring.submission().push(&e) }
                .map_err(|_| io::Error::other("slave io_uring submission queue full"))?;
            self.recv_pending = true;
        }
        Ok(())
    }

    fn enter(&mut self, wait: Duration) -> io::Result<()> {
        if !self.ring.completion().is_empty() {
            return self.ring.submit().map(|_| ());
        }
        let ts = types::Timespec::from(wait);
        let args = types::SubmitArgs::new().timespec(&ts);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EAGAIN) | Some(libc::EBUSY)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn reap(&mut self) -> Vec<(u64, i32)> {
        if self.ring.submission().taskrun() {
            let _ = self.ring.submitter().submit_and_wait(0);
        }
        self.ring
            .completion()
            .map(|c| (c.user_data(), c.result()))
            .collect()
    }

    fn on_recv(&mut self, res: i32) -> io::Result<()> {
        self.recv_pending = false;
        let n = match res {
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the master closed the connection",
                ))
            }
            r if r == -libc::EINTR || r == -libc::EAGAIN => return Ok(()),
            r if r < 0 => return Err(io::Error::from_raw_os_error(-r)),
            r => r as usize,
        };
        self.last_read = Instant::now();
        if self.sh.cfg.auth_token.is_none() && self.head.len() < auth::MAGIC.len() {
            let take = n.min(auth::MAGIC.len() - self.head.len());
            self.head.extend_from_slice(&self.buf[..take]);
            if auth::opens_handshake(&self.head) {
                return Err(auth::AuthError::MasterRequiresToken.into());
            }
        }
        let buf = std::mem::take(&mut self.buf);
        let res = self.take_frames(&buf[..n]);
        self.buf = buf;
        res
    }

    /// Decodes `input` and hands each frame's bytes to the store's writer.
    fn take_frames(&mut self, mut input: &[u8]) -> io::Result<()> {
        loop {
            let frame = match self.decoder.decode(&mut input) {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(()),
                Err(e) => return Err(e.into()),
            };
            if self.first_frame && frame.phys_offset < self.expected && self.appending == 0 {
                // The master starts us below our end: we hold bytes it does not have (it
                // lost an unflushed tail). Cut them and follow from its offset.
                let report = self.sh.store.truncate_log(frame.phys_offset).map_err(|e| {
                    io::Error::other(format!("cannot truncate the diverged log: {e}"))
                })?;
                tracing::warn!(
                    master = %self.sh.master,
                    from = frame.phys_offset,
                    to = self.expected,
                    dropped_bytes = report.dropped_bytes,
                    "log diverged from the master's: dropped our tail and following the master"
                );
                self.expected = frame.phys_offset;
                self.end = self.expected;
                self.reported = -1;
            }
            self.first_frame = false;
            if frame.phys_offset != self.expected {
                return Err(mismatch(frame.phys_offset, self.expected));
            }
            if !frame.is_heartbeat() {
                self.expected += frame.body.len() as i64;
                self.appending += 1;
                let (answers, wake_fd) = (self.answers.clone(), self.sh.wake.clone());
                self.sh.store.put_raw(RawAppend {
                    phys_offset: frame.phys_offset,
                    bytes: frame.body,
                    done: Box::new(move |r| {
                        lock(&answers).push(r);
                        wake(&wake_fd);
                    }),
                });
            }
        }
    }

    /// Books that operation `ud` is no longer in flight.
    fn book(&mut self, ud: u64) {
        match ud {
            UD_RECV => self.recv_pending = false,
            UD_REPORT => self.rep_pending = false,
            _ => self.wake_pending = false,
        }
    }

    /// Ends the session's I/O: resets the socket, waits (bounded) for every operation
    /// and every append in flight, and leaks what an operation that never answered may
    /// still name.
    fn quiesce(&mut self) {
        let _ = self.sock.shutdown(Shutdown::Both);
        wake(&self.sh.wake);
        let deadline = Instant::now() + APPEND_TIMEOUT;
        while (self.recv_pending || self.rep_pending || self.wake_pending || self.appending > 0)
            && Instant::now() < deadline
        {
            let _ = self.enter(Duration::from_millis(10));
            for (ud, _) in self.reap() {
                self.book(ud);
            }
            let answers = std::mem::take(&mut *lock(&self.answers));
            self.appending -= answers.len();
            if self.wake_pending && !self.recv_pending && !self.rep_pending {
                wake(&self.sh.wake);
            }
        }
        if self.recv_pending || self.rep_pending || self.wake_pending {
            tracing::error!(
                "HA slave: io_uring operations did not complete; leaking their buffers"
            );
            std::mem::forget(std::mem::take(&mut self.buf));
            std::mem::forget(std::mem::replace(&mut self.rep, Box::new([0; 8])));
            std::mem::forget(std::mem::replace(&mut self.wake_buf, Box::new([0; 8])));
        }
        if self.appending > 0 {
            tracing::error!(
                appending = self.appending,
                "HA slave: the local writer did not answer replicated appends in time"
            );
        }
    }
}

fn op_error(what: &str, res: i32) -> io::Error {
    if res < 0 {
        let e = io::Error::from_raw_os_error(-res);
        io::Error::new(e.kind(), format!("{what}: {e}"))
    } else {
        io::Error::new(io::ErrorKind::WriteZero, format!("{what}: nothing sent"))
    }
}

/// A close-on-exec eventfd that wakes a receiver's ring.
fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes no memory arguments.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds 1 to the eventfd, completing the receiver's pending Read.
fn wake(fd: &OwnedFd) {
    let one = 1u64.to_ne_bytes();
    // SAFETY: write reads 8 live bytes for the duration of the call.
    unsafe { libc::write(fd.as_raw_fd(), one.as_ptr().cast(), 8) };
}

fn mismatch(got: i64, expected: i64) -> io::Error {
    let msg = if expected == 0 {
        format!(
            "the master starts this empty slave at offset {got}, but a ringmq store can only \
             be filled from offset 0 (the master needs EmptySlaveStart::Oldest and its log \
             from offset 0)"
        )
    } else {
        format!("the master sent offset {got}, but the local log ends at {expected}")
    };
    io::Error::new(io::ErrorKind::InvalidData, msg)
}
