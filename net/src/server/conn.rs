//! One client connection, served on the network core that accepted it.
//!
//! The read loop reads into the decode buffer, decodes every complete frame, hands the
//! turn's sends to the writer as one batch, serves other requests (pulls as their own
//! tasks, since they may be parked) and loops. A writer task owns the socket's send side:
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

use crate::broker::route::{self, ConnInfo, Outgoing};
use crate::broker::{send, Broker};
use crate::codes::request_code as rq;
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
    pub fn serve(self: &Rc<Self>, b: Arc<Broker>, stream: TcpStream, peer: SocketAddr, id: u64) {
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
        tokio_uring::spawn(serve(b, stream, peer, id, closed, reg));
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

async fn serve(
    b: Arc<Broker>,
    stream: Rc<TcpStream>,
    peer: SocketAddr,
    id: u64,
    closed: Rc<Notify>,
    reg: Rc<Registration>,
) {
    let _ = stream.set_nodelay(true);
    let (tx, rx) = unbounded_channel();
    let conn = Arc::new(ConnInfo {
        id,
        peer,
        outbox: tx,
    });
    let writer = tokio_uring::spawn(write_loop(
        b.clone(),
        stream.clone(),
        rx,
        closed.clone(),
        reg.clone(),
    ));
    let mut decoder = FrameDecoder::new(b.cfg.max_frame_size);
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
        let mut sends = Vec::new();
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(cmd)) => {
                    tracing::trace!(%peer, code = cmd.code, opaque = cmd.opaque, ext = ?cmd.ext_fields, "request");
                    if cmd.is_response() {
                        continue; // answers to our oneway notifications never come; ignore strays
                    }
                    if route::is_send(cmd.code) {
                        sends.push(cmd);
                    } else if matches!(cmd.code, rq::PULL_MESSAGE | rq::LITE_PULL_MESSAGE) {
                        let (b, conn) = (b.clone(), conn.clone());
                        tokio_uring::spawn(async move {
                            if let Some(resp) = route::process(&b, &conn, cmd).await {
                                conn.send(resp);
                            }
                        });
                    } else if let Some(resp) = route::process(&b, &conn, cmd).await {
                        conn.send(resp);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "malformed frame; closing this connection");
                    submit(&b, &conn, sends);
                    break 'read;
                }
            }
        }
        submit(&b, &conn, sends);
    }
    b.clients.connection_closed(id);
    closed.notify_one();
    let _ = writer.await;
    let _ = stream.shutdown(std::net::Shutdown::Both);
    drop(reg);
}

fn submit(b: &Arc<Broker>, conn: &Arc<ConnInfo>, sends: Vec<RemotingCommand>) {
    if !sends.is_empty() {
        send::submit_turn(b, conn, sends);
    }
}

async fn write_loop(
    b: Arc<Broker>,
    stream: Rc<TcpStream>,
    mut rx: UnboundedReceiver<Outgoing>,
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
        encode(&b, first, &mut out);
        while let Ok(more) = rx.try_recv() {
            encode(&b, more, &mut out);
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

fn encode(b: &Broker, item: Outgoing, out: &mut BytesMut) {
    match item {
        Outgoing::Command(cmd) => put(&cmd, out),
        Outgoing::Sends(ctxs, outcome, replica) => {
            for resp in send::responses(b, ctxs, outcome, replica) {
                put(&resp, out);
            }
        }
    }
}

fn put(cmd: &RemotingCommand, out: &mut BytesMut) {
    tracing::trace!(code = cmd.code, opaque = cmd.opaque, remark = ?cmd.remark, ext = ?cmd.ext_fields, "response");
    if let Err(e) = encode_frame(cmd, out) {
        tracing::error!(code = cmd.code, error = %e, "cannot encode response");
    }
}
