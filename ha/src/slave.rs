//! The slave side: one thread, `ringmq-ha-slave`, that connects to the master's HA
//! port, reports its CommitLog end (spec 7.2) at once, after every append and at least
//! every `haSendHeartbeatInterval`, receives transfer frames (spec 7.3) and appends them
//! with `MessageStore::put_raw`.
//!
//! What a report promises (the master counts it as this slave's ack): the bytes up to it
//! survive a crash of the slave process. So the slave reports the end of its append when
//! its tail ring lives in shared memory (start-up writes it back after a process crash),
//! else the CommitLog's `write_end` (its O_DIRECT write completed); with SYNC_FLUSH on the
//! slave, `durable_end`. The first report of a session (where streaming starts) waits
//! for that level to reach the log's end, so it promises the same. On any error
//! it closes the connection and retries every `reconnect_interval`, logging once per
//! state change (connected, disconnected, first failed attempt), never in a loop.
//!
//! With `haAuthToken` the session first answers the master's [`auth`](crate::auth)
//! challenge; a slave without one refuses a master that opens with it (token mismatch).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ringmq_engine::commitlog::{FlushMode, Level, RawAppend};
use ringmq_engine::sync::lock;
use ringmq_engine::MessageStore;

use crate::auth;
use crate::config::HaConfig;
use crate::protocol::{encode_report, FrameDecoder};

/// Longest the session sleeps in a read before re-checking its timers.
const TICK: Duration = Duration::from_millis(500);
/// Longest the slave waits for the local writer to take one replicated chunk.
const APPEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Socket read buffer: several frames per read, appended as one pipelined group.
const READ_BUF: usize = 256 * 1024;
/// Longest the session waits after appending for the bytes to reach the level it reports
/// (see the module doc); if they have not, it reads on and reports them on a later turn.
const SAFE_WAIT: Duration = Duration::from_millis(20);
/// Read timeout while appended bytes are not yet reported, to report them soon.
const UNREPORTED_POLL: Duration = Duration::from_millis(2);

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
    /// The live connection, so `stop` can interrupt a blocking read.
    socket: Mutex<Option<TcpStream>>,
    acked: AtomicI64,
    connected: AtomicBool,
}

impl HaSlave {
    /// Starts following `master` (its HA address). Never fails: an unreachable master is
    /// retried every `reconnect_interval`.
    ///
    /// # Panics
    /// If the thread cannot be spawned.
    pub fn start(store: Arc<MessageStore>, master: SocketAddr, cfg: HaConfig) -> HaSlave {
        let shared = Arc::new(Shared {
            store,
            master,
            cfg,
            stop: AtomicBool::new(false),
            stop_lock: Mutex::new(()),
            stop_cv: Condvar::new(),
            socket: Mutex::new(None),
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
            FlushMode::Async if log.ring_survives_process_crash() => Level::Append,
            FlushMode::Async => Level::Write,
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

    fn report(&self, stream: &mut TcpStream, end: i64) -> io::Result<()> {
        // Published before the write: once the master has the report (and may answer a
        // send), `acked_offset` already says so. A failed write ends the session anyway.
        self.acked.store(end, Ordering::Release);
        stream.write_all(&encode_report(end))
    }

    /// Hands one chunk to the store's writer; the receiver yields the new log end.
    fn append(
        &self,
        phys_offset: i64,
        bytes: bytes::Bytes,
    ) -> Receiver<ringmq_engine::Result<i64>> {
        let (tx, rx) = mpsc::channel();
        self.store.put_raw(RawAppend {
            phys_offset,
            bytes,
            done: Box::new(move |r| {
                let _ = tx.send(r);
            }),
        });
        rx
    }

    /// One connection: returns Ok when stopped, Err when the connection must be dropped.
    fn session(&self, mut stream: TcpStream) -> io::Result<()> {
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
        let mut end = self.store.commitlog().max_offset();
        tracing::info!(master = %self.master, local_end = end, "connected to HA master");
        // The first report is where streaming starts, so it must be the log's end; it
        // also counts as an ack, so it waits until that end is safe (module doc).
        if self.safe_end(end, APPEND_TIMEOUT) < end {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the local log's end was not written in time for the first report",
            ));
        }
        self.report(&mut stream, end)?;
        let mut reported = end;
        let mut last_report = Instant::now();
        let mut last_read = Instant::now();
        // Where the next frame must start: the log end plus chunks still being appended.
        let mut expected = end;
        // The master's first frame says where it streams from; only it may move us back.
        let mut first_frame = true;
        let mut decoder = FrameDecoder::new(self.cfg.transfer_batch_size);
        let mut buf = vec![0u8; READ_BUF];
        let mut pending = Vec::new();
        // Without a token: the master's first bytes, to name a master that wants one.
        let mut head = Vec::new();
        loop {
            if self.stopped() {
                return Ok(());
            }
            let until_report = self
                .cfg
                .heartbeat_interval
                .saturating_sub(last_report.elapsed());
            let poll = if reported < end {
                UNREPORTED_POLL
            } else {
                TICK
            };
            stream.set_read_timeout(Some(until_report.clamp(Duration::from_millis(1), poll)))?;
            match stream.read(&mut buf) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the master closed the connection",
                    ))
                }
                Ok(n) => {
                    last_read = Instant::now();
                    if self.cfg.auth_token.is_none() && head.len() < auth::MAGIC.len() {
                        let take = n.min(auth::MAGIC.len() - head.len());
                        head.extend_from_slice(&buf[..take]);
                        if auth::opens_handshake(&head) {
                            return Err(auth::AuthError::MasterRequiresToken.into());
                        }
                    }
                    let mut input = &buf[..n];
                    let mut failure = None;
                    loop {
                        match decoder.decode(&mut input) {
                            Ok(Some(frame)) => {
                                if first_frame && frame.phys_offset < expected && pending.is_empty()
                                {
                                    // The master starts us below our end: we hold bytes it
                                    // does not have (it lost an unflushed tail). Cut them and
                                    // follow from its offset.
                                    let report = self
                                        .store
                                        .truncate_log(frame.phys_offset)
                                        .map_err(|e| {
                                            io::Error::other(format!(
                                                "cannot truncate the diverged log: {e}"
                                            ))
                                        })?;
                                    tracing::warn!(
                                        master = %self.master,
                                        from = frame.phys_offset,
                                        to = expected,
                                        dropped_bytes = report.dropped_bytes,
                                        "log diverged from the master's: dropped our tail and following the master"
                                    );
                                    expected = frame.phys_offset;
                                    end = expected;
                                    reported = -1;
                                }
                                first_frame = false;
                                if frame.phys_offset != expected {
                                    failure = Some(mismatch(frame.phys_offset, expected));
                                    break;
                                }
                                if !frame.is_heartbeat() {
                                    expected += frame.body.len() as i64;
                                    pending.push(self.append(frame.phys_offset, frame.body));
                                }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                failure = Some(e.into());
                                break;
                            }
                        }
                    }
                    // Report only what the store has taken.
                    for rx in pending.drain(..) {
                        end = match rx.recv_timeout(APPEND_TIMEOUT) {
                            Ok(Ok(new_end)) => new_end,
                            Ok(Err(e)) => {
                                return Err(io::Error::other(format!(
                                    "local append of replicated bytes failed: {e}"
                                )))
                            }
                            Err(_) => {
                                return Err(io::Error::new(
                                    io::ErrorKind::TimedOut,
                                    "the local writer did not take replicated bytes in time",
                                ))
                            }
                        };
                    }
                    if let Some(e) = failure {
                        return Err(e);
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    let housekeeping = self.cfg.housekeeping_interval;
                    if last_read.elapsed() > housekeeping {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!(
                                "nothing from the master for {} ms (haHousekeepingInterval)",
                                housekeeping.as_millis()
                            ),
                        ));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            // Report what is safe now: after appends, while earlier ones reach the disk,
            // and at least every heartbeat interval.
            let wait = if reported < end {
                SAFE_WAIT
            } else {
                Duration::ZERO
            };
            let safe = self.safe_end(end, wait);
            if safe > reported || last_report.elapsed() >= self.cfg.heartbeat_interval {
                self.report(&mut stream, safe)?;
                reported = safe;
                last_report = Instant::now();
            }
        }
    }
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
