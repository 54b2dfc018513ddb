//! One client connection, served on the network core that accepted it.
//!
//! The read loop reads into the decode buffer, decodes every complete frame, hands the
//! turn's sends to the writer as one batch, serves other requests (pulls as their own
//! tasks, since they may be parked) and loops. A writer task owns the socket's send side:
//! it drains the connection's outbox and writes everything queued with one write. A
//! malformed frame closes only this connection, with a log line.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

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

pub async fn serve(b: Arc<Broker>, stream: TcpStream, peer: SocketAddr, id: u64) {
    let _ = stream.set_nodelay(true);
    let stream = Rc::new(stream);
    let (tx, rx) = unbounded_channel();
    let conn = Arc::new(ConnInfo {
        id,
        peer,
        outbox: tx,
    });
    let closed = Rc::new(Notify::new());
    let writer = tokio_uring::spawn(write_loop(b.clone(), stream.clone(), rx, closed.clone()));
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
