//! One client connection, served on the network core that accepted it.
//!
//! The read loop reads into the decode buffer, decodes every complete frame, hands the
//! turn's batched requests (the service's sends) over as one batch, serves other requests
//! (parked ones, such as long-poll pulls, as their own tasks) and loops. A writer task owns the socket's send side:
//! it drains the connection's outbox and writes everything queued with one write. A
//! malformed frame closes only this connection, with a log line.
//!
//! Every connection is listed in its loop's [`Connections`] until both of its tasks have
//! ended, so the loop can end them before it stops (see [`Connections::close_all`]).
//!
//! Limits ([`ConnLimits`]): the writer keeps taking items off the outbox while a write is
//! in flight and encodes them into its next buffer, so the bytes queued for a connection
//! are known exactly ([`Backlog`]); above `max_queued_bytes` the reader stops reading
//! requests until the writer has drained to half of it. A client that pipelines requests
//! and never reads its answers thus holds at most about that many bytes (plus what its
//! requests already read produce). Connections idle past `idle_timeout` are shut down by
//! [`Connections::close_idle`], the same way `close_all` ends them.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio::sync::Notify;
use tokio_uring::buf::BoundedBuf;
use tokio_uring::net::TcpStream;

use super::service::{Conn, ConnLimits, Service};
use crate::command::RemotingCommand;
use crate::frame::{encode_frame, FrameDecoder};

const READ_CHUNK: usize = 64 * 1024;

/// The connections one network loop serves.
///
/// Why it exists: tokio-uring 0.5 does not keep the buffer of an operation still in flight
/// when its runtime is dropped. Dropping the runtime drops every task (an in-flight read's
/// future hands its buffer to the driver), then the driver's `Drop` frees those buffers
/// *before* it submits the cancellations and waits for them. A peer that keeps sending
/// meanwhile gets its bytes copied by the kernel into freed heap memory (glibc then aborts
/// with "corrupted double-linked list"). So a loop must not end while one of its reads or
/// writes is in flight: [`Connections::close_all`] shuts every socket down, which completes
/// the reads and writes pending on it, and waits until every connection's tasks have ended.
pub struct Connections {
    live: RefCell<HashMap<u64, Live>>,
    /// Notified when the last connection leaves `live`.
    none_left: Notify,
    /// Open connections over every loop of the server.
    total: Arc<AtomicUsize>,
}

struct Live {
    stream: Rc<TcpStream>,
    /// Tells the connection's writer to stop.
    closed: Rc<Notify>,
    /// When a read or write of this connection last completed.
    last_active: Rc<Cell<Instant>>,
}

/// Bytes encoded for one connection and not yet written; loop-local (reader and writer
/// are tasks of one thread).
#[derive(Default)]
struct Backlog {
    queued: Cell<usize>,
    /// Notified when `queued` falls to half the limit, or the writer ends.
    drained: Notify,
    writer_gone: Cell<bool>,
    /// Requests being served in tasks of their own (parked), and a wake-up when one ends.
    parked: Cell<usize>,
    unparked: Notify,
}

/// Held by a connection's reader and writer tasks: the connection leaves the table when
/// both are gone, that is when none of its socket operations can still be in flight.
struct Registration {
    conns: Rc<Connections>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut live = self.conns.live.borrow_mut();
        if live.remove(&self.id).is_some() {
            self.conns.total.fetch_sub(1, Ordering::AcqRel);
        }
        if live.is_empty() {
            self.conns.none_left.notify_waiters();
        }
    }
}

impl Connections {
    /// The connections of one loop; `total` counts those of every loop of the server.
    pub fn new(total: Arc<AtomicUsize>) -> Self {
        Connections {
            live: RefCell::default(),
            none_left: Notify::new(),
            total,
        }
    }

    /// Open connections over every loop.
    pub fn total(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }

    /// Lists the accepted `stream` and starts serving it on this loop.
    pub fn serve<S: Service>(
        self: &Rc<Self>,
        svc: Arc<S>,
        stream: TcpStream,
        peer: SocketAddr,
        id: u64,
    ) {
        let stream = Rc::new(stream);
        let closed = Rc::new(Notify::new());
        let last_active = Rc::new(Cell::new(Instant::now()));
        self.total.fetch_add(1, Ordering::AcqRel);
        self.live.borrow_mut().insert(
            id,
            Live {
                stream: stream.clone(),
                closed: closed.clone(),
                last_active: last_active.clone(),
            },
        );
        let reg = Rc::new(Registration {
            conns: self.clone(),
            id,
        });
        let tasks = Tasks {
            closed,
            reg,
            last_active,
            backlog: Rc::new(Backlog::default()),
        };
        tokio_uring::spawn(serve(svc, stream, peer, id, tasks));
    }

    /// Shuts down every connection with no read or write completed for `idle`; returns
    /// how many. Their tasks end as in [`Connections::close_all`].
    pub fn close_idle(&self, idle: Duration) -> usize {
        let now = Instant::now();
        let mut closed = 0;
        for (id, l) in self.live.borrow().iter() {
            if now.duration_since(l.last_active.get()) > idle {
                tracing::info!(
                    conn = id,
                    idle_secs = idle.as_secs(),
                    "closing idle connection"
                );
                let _ = l.stream.shutdown(std::net::Shutdown::Both);
                l.closed.notify_one();
                closed += 1;
            }
        }
        closed
    }

    /// Shuts every connection down and waits until all their tasks have ended. Call it
    /// after accepting stopped and before the loop's runtime is dropped.
    ///
    /// The shutdown completes a read or write pending on the socket at once (end of file,
    /// EPIPE), and the writer is told to stop, so each connection ends promptly. Nothing
    /// here gives up after a timeout: returning with a read in flight is the
    /// use-after-free described on [`Connections`].
    pub async fn close_all(&self) {
        for l in self.live.borrow().values() {
            let _ = l.stream.shutdown(std::net::Shutdown::Both);
            l.closed.notify_one();
        }
        let started = Instant::now();
        let mut warned = false;
        loop {
            // Created before the check, so a notification in between is not missed.
            let none_left = self.none_left.notified();
            let left = self.live.borrow().len();
            if left == 0 {
                return;
            }
            if !warned && started.elapsed() > Duration::from_secs(5) {
                tracing::warn!(left, "connections still closing");
                warned = true;
            }
            tokio::select! {
                _ = none_left => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }
}

/// What a connection's reader and writer tasks share.
#[derive(Clone)]
struct Tasks {
    closed: Rc<Notify>,
    reg: Rc<Registration>,
    last_active: Rc<Cell<Instant>>,
    backlog: Rc<Backlog>,
}

/// Waits while more than `max` bytes are queued for the connection. False when the
/// writer has ended (the connection is going away).
async fn wait_for_drain(backlog: &Backlog, max: usize) -> bool {
    loop {
        // Created before the check, so a notification in between is not missed.
        let drained = backlog.drained.notified();
        if backlog.writer_gone.get() {
            return false;
        }
        if backlog.queued.get() <= max {
            return true;
        }
        drained.await;
    }
}

async fn serve<S: Service>(
    svc: Arc<S>,
    stream: Rc<TcpStream>,
    peer: SocketAddr,
    id: u64,
    tasks: Tasks,
) {
    let _ = stream.set_nodelay(true);
    let (tx, rx) = unbounded_channel();
    let conn = Arc::new(Conn::new(id, peer, tx));
    let limits = svc.limits();
    let writer = tokio_uring::spawn(write_loop(
        svc.clone(),
        stream.clone(),
        rx,
        tasks.clone(),
        limits,
    ));
    let Tasks {
        closed,
        reg,
        last_active,
        backlog,
    } = tasks;
    let mut decoder = FrameDecoder::new(svc.max_frame_size());
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    'read: loop {
        if backlog.queued.get() > limits.max_queued_bytes {
            tracing::debug!(%peer, queued = backlog.queued.get(), "client is not reading its answers; pausing reads");
            if !wait_for_drain(&backlog, limits.max_queued_bytes / 2).await {
                break;
            }
        }
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        let len = buf.len();
        let (res, slice) = stream.read(buf.slice(len..)).await;
        buf = slice.into_inner();
        last_active.set(Instant::now());
        match res {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(%peer, error = %e, "read failed; closing connection");
                break;
            }
        }
        let mut batch = Vec::new();
        loop {
            // Answers pile up unread: decode nothing more until the writer drains.
            if backlog.queued.get() > limits.max_queued_bytes {
                submit(&svc, &conn, std::mem::take(&mut batch));
                if !wait_for_drain(&backlog, limits.max_queued_bytes / 2).await {
                    break 'read;
                }
            }
            match decoder.decode(&mut buf) {
                Ok(Some(cmd)) => {
                    tracing::trace!(%peer, code = cmd.code, opaque = cmd.opaque, ext = ?cmd.ext_fields, "request");
                    if cmd.is_response() {
                        continue; // answers to our oneway notifications never come; ignore strays
                    }
                    if svc.is_batched(cmd.code) {
                        batch.push(cmd);
                    } else if svc.may_park(cmd.code) {
                        loop {
                            // Created before the checks, so no wake-up is missed; the
                            // writer's end also wakes `drained`.
                            let unparked = backlog.unparked.notified();
                            let gone = backlog.drained.notified();
                            if backlog.writer_gone.get() {
                                break 'read;
                            }
                            if backlog.parked.get() < limits.max_parked_requests {
                                break;
                            }
                            tokio::select! {
                                _ = unparked => {}
                                _ = gone => {}
                            }
                        }
                        backlog.parked.set(backlog.parked.get() + 1);
                        let (svc, conn, backlog) = (svc.clone(), conn.clone(), backlog.clone());
                        tokio_uring::spawn(async move {
                            if let Some(resp) = S::process(&svc, &conn, cmd).await {
                                conn.send(resp);
                            }
                            backlog.parked.set(backlog.parked.get() - 1);
                            backlog.unparked.notify_waiters();
                        });
                    } else if let Some(resp) = S::process(&svc, &conn, cmd).await {
                        conn.send(resp);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "malformed frame; closing this connection");
                    submit(&svc, &conn, batch);
                    break 'read;
                }
            }
        }
        submit(&svc, &conn, batch);
    }
    svc.connection_closed(id);
    closed.notify_one();
    let _ = writer.await;
    let _ = stream.shutdown(std::net::Shutdown::Both);
    drop(reg);
}

fn submit<S: Service>(svc: &Arc<S>, conn: &Arc<Conn<S::Outgoing>>, batch: Vec<RemotingCommand>) {
    if !batch.is_empty() {
        S::submit_batch(svc, conn, batch);
    }
}

async fn write_loop<S: Service>(
    svc: Arc<S>,
    stream: Rc<TcpStream>,
    rx: UnboundedReceiver<S::Outgoing>,
    tasks: Tasks,
    limits: ConnLimits,
) {
    write_until_done(&*svc, &stream, rx, &tasks, limits).await;
    // The reader may be waiting for a drain that will not come.
    tasks.backlog.writer_gone.set(true);
    tasks.backlog.queued.set(0);
    tasks.backlog.drained.notify_waiters();
}

/// Writes everything queued with one write at a time. While a write is in flight, items
/// keep coming off the outbox and are encoded into the next buffer, so `backlog` always
/// holds the exact number of bytes not yet written. The write future is never dropped
/// before it completes (see [`Connections`]).
async fn write_until_done<S: Service>(
    svc: &S,
    stream: &TcpStream,
    mut rx: UnboundedReceiver<S::Outgoing>,
    tasks: &Tasks,
    limits: ConnLimits,
) {
    let backlog = &tasks.backlog;
    let mut out = BytesMut::with_capacity(READ_CHUNK);
    let mut spare = BytesMut::new();
    let mut open = true;
    loop {
        if out.is_empty() {
            if !open {
                return;
            }
            let first = tokio::select! {
                item = rx.recv() => match item {
                    Some(item) => item,
                    None => return,
                },
                _ = tasks.closed.notified() => return,
            };
            svc.encode(first, &mut out);
        }
        while let Ok(more) = rx.try_recv() {
            svc.encode(more, &mut out);
        }
        let writing = out.len();
        backlog.queued.set(writing);
        let mut next = std::mem::take(&mut spare);
        let write = stream.write_all(out);
        tokio::pin!(write);
        let (res, buf) = loop {
            tokio::select! {
                done = &mut write => break done,
                item = rx.recv(), if open => match item {
                    Some(item) => {
                        svc.encode(item, &mut next);
                        backlog.queued.set(writing + next.len());
                    }
                    None => open = false,
                },
            }
        };
        tasks.last_active.set(Instant::now());
        spare = buf;
        spare.clear();
        out = next;
        backlog.queued.set(out.len());
        if out.len() <= limits.max_queued_bytes / 2 {
            backlog.drained.notify_waiters();
        }
        if res.is_err() {
            return;
        }
    }
}

/// Appends `cmd` to `out` as one frame; a command that cannot be encoded is logged and
/// skipped (the client times that request out).
pub fn put(cmd: &RemotingCommand, out: &mut BytesMut) {
    tracing::trace!(code = cmd.code, opaque = cmd.opaque, remark = ?cmd.remark, ext = ?cmd.ext_fields, "response");
    if let Err(e) = encode_frame(cmd, out) {
        tracing::error!(code = cmd.code, error = %e, "cannot encode response");
    }
}
