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

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio::sync::Notify;
use tokio_uring::buf::BoundedBuf;
use tokio_uring::net::TcpStream;

use super::service::{Conn, Service};
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
#[derive(Default)]
pub struct Connections {
    live: RefCell<HashMap<u64, Live>>,
    /// Notified when the last connection leaves `live`.
    none_left: Notify,
}

struct Live {
    stream: Rc<TcpStream>,
    /// Tells the connection's writer to stop.
    closed: Rc<Notify>,
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
        live.remove(&self.id);
        if live.is_empty() {
            self.conns.none_left.notify_waiters();
        }
    }
}

impl Connections {
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
        self.live.borrow_mut().insert(
            id,
            Live {
                stream: stream.clone(),
                closed: closed.clone(),
            },
        );
        let reg = Rc::new(Registration {
            conns: self.clone(),
            id,
        });
        tokio_uring::spawn(serve(svc, stream, peer, id, closed, reg));
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

async fn serve<S: Service>(
    svc: Arc<S>,
    stream: Rc<TcpStream>,
    peer: SocketAddr,
    id: u64,
    closed: Rc<Notify>,
    reg: Rc<Registration>,
) {
    let _ = stream.set_nodelay(true);
    let (tx, rx) = unbounded_channel();
    let conn = Arc::new(Conn::new(id, peer, tx));
    let writer = tokio_uring::spawn(write_loop(
        svc.clone(),
        stream.clone(),
        rx,
        closed.clone(),
        reg.clone(),
    ));
    let mut decoder = FrameDecoder::new(svc.max_frame_size());
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    'read: loop {
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        let len = buf.len();
        let (res, slice) = stream.read(buf.slice(len..)).await;
        buf = slice.into_inner();
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
            match decoder.decode(&mut buf) {
                Ok(Some(cmd)) => {
                    tracing::trace!(%peer, code = cmd.code, opaque = cmd.opaque, ext = ?cmd.ext_fields, "request");
                    if cmd.is_response() {
                        continue; // answers to our oneway notifications never come; ignore strays
                    }
                    if svc.is_batched(cmd.code) {
                        batch.push(cmd);
                    } else if svc.may_park(cmd.code) {
                        let (svc, conn) = (svc.clone(), conn.clone());
                        tokio_uring::spawn(async move {
                            if let Some(resp) = S::process(&svc, &conn, cmd).await {
                                conn.send(resp);
                            }
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
    mut rx: UnboundedReceiver<S::Outgoing>,
    closed: Rc<Notify>,
    _reg: Rc<Registration>,
) {
    let mut out = BytesMut::with_capacity(READ_CHUNK);
    loop {
        let first = tokio::select! {
            item = rx.recv() => match item {
                Some(item) => item,
                None => return,
            },
            _ = closed.notified() => return,
        };
        svc.encode(first, &mut out);
        while let Ok(more) = rx.try_recv() {
            svc.encode(more, &mut out);
            if out.len() > 4 * READ_CHUNK {
                break;
            }
        }
        let (res, buf) = stream.write_all(out).await;
        out = buf;
        out.clear();
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
