//! The master side: accepts slaves on `haListenPort` and, per slave, runs two threads.
//!
//! | thread | does |
//! | --- | --- |
//! | `ringmq-ha-accept` | accepts connections, hands each to its reader thread |
//! | `ringmq-ha-read-<id>` | with `haAuthToken`, runs the master's half of the [`auth`](crate::auth) handshake and drops a peer that fails it unregistered; registers the slave in the [`SlaveTable`], reads offset reports (spec 7.2) into the table, drops a slave silent past `haHousekeepingInterval`, and tears the connection down |
//! | `ringmq-ha-send-<id>` | waits for the first report, decides the start (spec 7.4), streams CommitLog bytes (spec 7.3) through a [`TransferPath`], heartbeats when idle |
//!
//! The sender ships bytes once the CommitLog's `write_end` covers them (the data path in
//! ARCHITECTURE.md: written, then streamed), so a slave never holds bytes the master's
//! own disk has not seen.

use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ringmq_engine::commitlog::Level;
use ringmq_engine::sync::lock;
use ringmq_engine::MessageStore;

use crate::auth;
use crate::config::{EmptySlaveStart, HaConfig};
use crate::protocol::ReportDecoder;
use crate::slave_table::SlaveTable;
use crate::transfer::{sender_path, TransferPath};

/// Longest a master thread sleeps before re-checking for shutdown.
const TICK: Duration = Duration::from_millis(100);

/// Most connections at once that have not proven themselves yet: with `haAuthToken`, not
/// through the handshake (which times out after `auth::HANDSHAKE_TIMEOUT`); without, no
/// first report yet (dropped after `haHousekeepingInterval`). Later ones are closed at
/// accept, so stray clients cannot pile up threads.
pub const MAX_UNPROVEN: usize = 16;

/// One place among the [`MAX_UNPROVEN`], given back once the peer proved itself or left.
struct Unproven<'a> {
    count: &'a AtomicUsize,
    held: bool,
}

impl Unproven<'_> {
    fn prove(&mut self) {
        if std::mem::take(&mut self.held) {
            self.count.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Unproven<'_> {
    fn drop(&mut self) {
        self.prove();
    }
}

/// Where streaming to a slave starts, decided from its first report (spec 7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartDecision {
    /// Stream from this offset.
    At(i64),
    /// The slave's log is longer than the master's, so its tail past `master_end` is not
    /// the master's (the master lost an unflushed tail). Streaming starts at `master_end`;
    /// the slave, seeing a first frame below its own end, truncates its CommitLog to that
    /// offset (`MessageStore::truncate_log`, which also cuts its ConsumeQueues) and
    /// follows from there (see `slave`).
    Diverged { slave_end: i64, master_end: i64 },
    /// The slave needs bytes the master no longer stores.
    Behind { slave_end: i64, master_min: i64 },
}

/// Spec 7.4, with [`EmptySlaveStart`] choosing the start for an empty slave.
pub fn decide_start(
    reported: i64,
    master_min: i64,
    master_end: i64,
    segment_size: u64,
    empty: EmptySlaveStart,
) -> StartDecision {
    if reported == 0 {
        return StartDecision::At(match empty {
            EmptySlaveStart::Oldest => master_min,
            EmptySlaveStart::LastSegment => (master_end - master_end % segment_size as i64).max(0),
        });
    }
    if reported > master_end {
        StartDecision::Diverged {
            slave_end: reported,
            master_end,
        }
    } else if reported < master_min {
        StartDecision::Behind {
            slave_end: reported,
            master_min,
        }
    } else {
        StartDecision::At(reported)
    }
}

/// A running HA master. Dropping it shuts it down.
pub struct HaMaster {
    inner: Arc<Inner>,
    local_addr: SocketAddr,
    acceptor: Mutex<Option<JoinHandle<()>>>,
}

struct Inner {
    store: Arc<MessageStore>,
    cfg: HaConfig,
    table: Arc<SlaveTable>,
    stop: AtomicBool,
    conns: Mutex<Vec<ConnHandle>>,
    /// Connections holding a place among the [`MAX_UNPROVEN`].
    unproven: AtomicUsize,
}

/// What the master keeps to end one connection: a socket handle and its reader thread
/// (which joins the sender).
struct ConnHandle {
    stream: TcpStream,
    thread: JoinHandle<()>,
}

/// One slave connection, shared by its reader and sender threads.
struct Conn {
    id: u64,
    peer: SocketAddr,
    closed: AtomicBool,
    first_report: Mutex<Option<i64>>,
    first_cv: Condvar,
}

impl Conn {
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let _guard = lock(&self.first_report);
        self.first_cv.notify_all();
    }

    /// The first report, once it arrives; None if the connection closed first.
    fn wait_first_report(&self, stop: &AtomicBool) -> Option<i64> {
        let mut first = lock(&self.first_report);
        loop {
            if let Some(v) = *first {
                return Some(v);
            }
            if self.is_closed() || stop.load(Ordering::Acquire) {
                return None;
            }
            first = self
                .first_cv
                .wait_timeout(first, TICK)
                .expect("first report lock")
                .0;
        }
    }
}

impl HaMaster {
    /// Binds `listen` and starts accepting slaves.
    pub fn start(
        store: Arc<MessageStore>,
        listen: SocketAddr,
        cfg: HaConfig,
    ) -> io::Result<HaMaster> {
        if cfg.transfer_batch_size == 0 || cfg.transfer_batch_size > i32::MAX as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "haTransferBatchSize {} must be in 1..=i32::MAX",
                    cfg.transfer_batch_size
                ),
            ));
        }
        let listener = TcpListener::bind(listen)?;
        let local_addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            store: store.clone(),
            cfg,
            table: Arc::new(SlaveTable::with_log_end({
                let store = store.clone();
                move || store.commitlog().max_offset()
            })),
            stop: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
            unproven: AtomicUsize::new(0),
        });
        let acceptor = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("ringmq-ha-accept".into())
                .spawn(move || accept_loop(inner, listener))?
        };
        tracing::info!(listen = %local_addr, "HA master listening");
        Ok(HaMaster {
            inner,
            local_addr,
            acceptor: Mutex::new(Some(acceptor)),
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Connected slaves and their acknowledged offsets.
    pub fn slaves(&self) -> &Arc<SlaveTable> {
        &self.inner.table
    }

    /// Closes every slave connection and stops all HA master threads. Idempotent.
    pub fn shutdown(&self) {
        if self.inner.stop.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(acceptor) = lock(&self.acceptor).take() {
            // The acceptor blocks in accept(): one connection wakes it to see `stop`.
            let mut wake = self.local_addr;
            if wake.ip().is_unspecified() {
                wake.set_ip(match wake {
                    SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            match TcpStream::connect_timeout(&wake, Duration::from_secs(1)) {
                Ok(_) => {
                    let _ = acceptor.join();
                }
                Err(e) => tracing::warn!(error = %e, "cannot wake the HA acceptor; leaving it"),
            }
        }
        let conns = std::mem::take(&mut *lock(&self.inner.conns));
        for c in &conns {
            let _ = c.stream.shutdown(Shutdown::Both);
        }
        for c in conns {
            let _ = c.thread.join();
        }
        self.inner.table.stop();
        tracing::info!(listen = %self.local_addr, "HA master stopped");
    }
}

impl Drop for HaMaster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    for res in listener.incoming() {
        if inner.stop.load(Ordering::Acquire) {
            break;
        }
        match res {
            Ok(stream) => {
                if let Err(e) = add_connection(&inner, stream) {
                    tracing::warn!(error = %e, "cannot set up an HA connection");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "HA accept failed");
                std::thread::sleep(TICK);
            }
        }
        lock(&inner.conns).retain(|c| !c.thread.is_finished());
    }
}

fn add_connection(inner: &Arc<Inner>, stream: TcpStream) -> io::Result<()> {
    let peer = stream.peer_addr()?;
    if inner.unproven.fetch_add(1, Ordering::AcqRel) >= MAX_UNPROVEN {
        inner.unproven.fetch_sub(1, Ordering::AcqRel);
        tracing::warn!(peer = %peer, max = MAX_UNPROVEN, "HA connection refused: too many connections that have not authenticated or reported yet");
        return Ok(());
    }
    // From here the place is the reader thread's (`serve`); give it back on failure.
    let place = Unproven {
        count: &inner.unproven,
        held: true,
    };
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    let handle = stream.try_clone()?;
    let sender_stream = stream.try_clone()?;
    let id = inner.table.next_id();
    let conn = Arc::new(Conn {
        id,
        peer,
        closed: AtomicBool::new(false),
        first_report: Mutex::new(None),
        first_cv: Condvar::new(),
    });
    let thread = {
        let inner = inner.clone();
        std::thread::Builder::new()
            .name(format!("ringmq-ha-read-{id}"))
            .spawn(move || serve(inner, conn, stream, sender_stream))?
    };
    std::mem::forget(place);
    lock(&inner.conns).push(ConnHandle {
        stream: handle,
        thread,
    });
    Ok(())
}

/// The reader thread: owns the connection's lifetime. With a token, the peer is
/// registered (and may report offsets) only once it passed the handshake; the handshake
/// runs here, not on the acceptor, so a stray client cannot hold the accept path.
fn serve(inner: Arc<Inner>, conn: Arc<Conn>, stream: TcpStream, sender_stream: TcpStream) {
    let mut unproven = Unproven {
        count: &inner.unproven,
        held: true,
    };
    if let Some(token) = &inner.cfg.auth_token {
        let cfg = &inner.cfg;
        let (cluster, broker) = (cfg.cluster_name.as_deref(), cfg.broker_name.as_deref());
        match auth::master_handshake(&stream, token, cluster, broker, auth::HANDSHAKE_TIMEOUT) {
            Ok(p) => {
                unproven.prove();
                tracing::info!(slave = %conn.peer, cluster = %p.cluster, broker = %p.broker, "HA peer authenticated")
            }
            Err(e) => {
                tracing::warn!(peer = %conn.peer, error = %e, "HA peer refused: failed the haAuthToken handshake; closed without registering it");
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
        }
    }
    inner.table.register(conn.id, conn.peer);
    tracing::info!(slave = %conn.peer, id = conn.id, "slave connected");
    let sender = {
        let (inner, conn) = (inner.clone(), conn.clone());
        std::thread::Builder::new()
            .name(format!("ringmq-ha-send-{}", conn.id))
            .spawn(move || send_to_slave(inner, conn, sender_stream))
    };
    let why = match &sender {
        Ok(_) => read_reports(&inner, &conn, &stream, &mut unproven),
        Err(e) => format!("cannot spawn the sender: {e}"),
    };
    conn.close();
    let _ = stream.shutdown(Shutdown::Both);
    if let Ok(sender) = sender {
        let _ = sender.join();
    }
    inner.table.unregister(conn.id);
    tracing::info!(slave = %conn.peer, id = conn.id, reason = %why, "slave disconnected");
}

/// Reads offset reports until the connection ends; returns why it ended.
fn read_reports(
    inner: &Inner,
    conn: &Conn,
    mut stream: &TcpStream,
    unproven: &mut Unproven<'_>,
) -> String {
    let housekeeping = inner.cfg.housekeeping_interval;
    if let Err(e) = stream.set_read_timeout(Some(TICK.max(Duration::from_millis(1)))) {
        return e.to_string();
    }
    let mut decoder = ReportDecoder::new();
    let mut buf = [0u8; 1024];
    let mut last_read = Instant::now();
    loop {
        if conn.is_closed() {
            return "connection closed by the sender".into();
        }
        if inner.stop.load(Ordering::Acquire) {
            return "master shutting down".into();
        }
        match stream.read(&mut buf) {
            Ok(0) => return "slave closed the connection".into(),
            Ok(n) => {
                last_read = Instant::now();
                match decoder.decode(&buf[..n]) {
                    Ok(Some(offset)) => {
                        if let Err(e) = inner.table.report(conn.id, offset) {
                            tracing::warn!(slave = %conn.peer, id = conn.id, error = %e, "dropping HA connection");
                            return e.to_string();
                        }
                        unproven.prove();
                        let mut first = lock(&conn.first_report);
                        if first.is_none() {
                            *first = Some(offset);
                            conn.first_cv.notify_all();
                        }
                    }
                    Ok(None) => {}
                    Err(e) => return e.to_string(),
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if last_read.elapsed() > housekeeping {
                    return format!(
                        "no report for {} ms (haHousekeepingInterval)",
                        housekeeping.as_millis()
                    );
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return e.to_string(),
        }
    }
}

/// The sender thread.
fn send_to_slave(inner: Arc<Inner>, conn: Arc<Conn>, mut stream: TcpStream) {
    let path = sender_path(inner.cfg.transfer_batch_size);
    if let Err(e) = stream_log(&inner, &conn, &mut stream, path) {
        if !conn.is_closed() {
            tracing::info!(slave = %conn.peer, id = conn.id, error = %e, "stopped streaming to slave");
        }
    }
    conn.close();
    let _ = stream.shutdown(Shutdown::Both);
}

fn stream_log(
    inner: &Inner,
    conn: &Conn,
    stream: &mut TcpStream,
    mut path: impl TransferPath,
) -> io::Result<()> {
    let cfg = &inner.cfg;
    stream.set_write_timeout(Some(cfg.housekeeping_interval))?;
    let Some(first) = conn.wait_first_report(&inner.stop) else {
        return Ok(());
    };
    let log = inner.store.commitlog();
    let seg = log.config().segment_size as i64;
    let mut next = match decide_start(
        first,
        log.min_offset(),
        log.max_offset(),
        log.config().segment_size,
        cfg.empty_slave_start,
    ) {
        StartDecision::At(at) => at,
        StartDecision::Diverged {
            slave_end,
            master_end,
        } => {
            // The slave cuts its extra tail itself when the first frame (the heartbeat
            // below, at `master_end`) starts below its end.
            tracing::error!(
                slave = %conn.peer,
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
            return Err(io::Error::other(format!(
                "slave needs offset {slave_end}, but the master's oldest stored byte is {master_min}"
            )));
        }
    };
    tracing::info!(slave = %conn.peer, id = conn.id, start = next, reported = first, path = path.name(), "streaming CommitLog to slave");
    // Acks count from here, and never past what was sent (see `slave_table`).
    inner.table.start(conn.id, next);
    // The first frame tells the slave the start at once (spec 7.4: it carries `start`).
    path.send_heartbeat(stream, next)?;
    let mut last_write = Instant::now();
    let batch = cfg.transfer_batch_size as i64;
    loop {
        if conn.is_closed() || inner.stop.load(Ordering::Acquire) {
            return Ok(());
        }
        let written = log.progress().get(Level::Write);
        if next < written {
            // A frame never spans two segment files (spec 7.3).
            let seg_end = next - next % seg + seg;
            let len = (written.min(seg_end) - next).min(batch) as usize;
            inner.table.sent(conn.id, next + len as i64);
            path.send_data(log, stream, next, len)?;
            next += len as i64;
            last_write = Instant::now();
            continue;
        }
        let idle = last_write.elapsed();
        if idle >= cfg.heartbeat_interval {
            path.send_heartbeat(stream, next)?;
            last_write = Instant::now();
            continue;
        }
        if log.progress().is_stopped() {
            return Err(io::Error::other("the master's store has stopped"));
        }
        let mut wait = (cfg.heartbeat_interval - idle).min(TICK);
        // The path may have work the kernel finishes meanwhile (send_zc notifications
        // that release tail pins): it says how soon to look again.
        if let Some(poll) = path.idle(log, stream)? {
            wait = wait.min(poll);
        }
        log.progress().wait(Level::Write, next + 1, wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_rules() {
        let seg = 65536;
        let d = |r, min, end, e| decide_start(r, min, end, seg, e);
        assert_eq!(
            d(0, 0, 200_000, EmptySlaveStart::Oldest),
            StartDecision::At(0)
        );
        assert_eq!(
            d(0, 0, 200_000, EmptySlaveStart::LastSegment),
            StartDecision::At(196_608)
        );
        assert_eq!(
            d(150, 0, 200_000, EmptySlaveStart::Oldest),
            StartDecision::At(150)
        );
        assert_eq!(
            d(300_000, 0, 200_000, EmptySlaveStart::Oldest),
            StartDecision::Diverged {
                slave_end: 300_000,
                master_end: 200_000
            }
        );
        assert_eq!(
            d(10, 65536, 200_000, EmptySlaveStart::Oldest),
            StartDecision::Behind {
                slave_end: 10,
                master_min: 65536
            }
        );
    }
}
