//! `--self-test`: an in-process fake broker that answers every send at once,
//! so a run measures the load generator's own ceiling (client encode, socket
//! and callback path; the fake shares the machine's CPUs, so the ceiling is a
//! lower bound).
//!
//! It answers SEND_MESSAGE / SEND_MESSAGE_V2 / SEND_BATCH_MESSAGE with SUCCESS
//! (msgId, queueId, queueOffset) and anything else with
//! REQUEST_CODE_NOT_SUPPORTED (so producers fall back to default queues).
//! One thread per connection; responses to one read go out in one write.

use ringmq_engine::sync::lock;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::BytesMut;
use ringmq_remoting::{encode_frame, request_code, response_code, FrameDecoder, RemotingCommand};

/// Accepted connections: a socket clone (to shut it down) and its thread.
type Conns = Arc<Mutex<Vec<(TcpStream, JoinHandle<()>)>>>;

pub struct FakeBroker {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    conns: Conns,
}

impl FakeBroker {
    pub fn start() -> std::io::Result<FakeBroker> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Conns = Arc::default();
        let offsets = Arc::new(AtomicI64::new(0));
        let (stop2, conns2) = (stop.clone(), conns.clone());
        let accept = std::thread::Builder::new()
            .name("bench-fake-accept".into())
            .spawn(move || {
                for s in listener.incoming() {
                    if stop2.load(Ordering::Acquire) {
                        break;
                    }
                    let Ok(s) = s else { continue };
                    let Ok(s2) = s.try_clone() else { continue };
                    let offsets = offsets.clone();
                    if let Ok(t) = std::thread::Builder::new()
                        .name("bench-fake-conn".into())
                        .spawn(move || serve(s, &offsets))
                    {
                        conns2
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((s2, t));
                    }
                }
            })?;
        Ok(FakeBroker {
            addr,
            stop,
            accept: Some(accept),
            conns,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for FakeBroker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let conns = std::mem::take(&mut *lock(&self.conns));
        for (s, t) in conns {
            let _ = s.shutdown(Shutdown::Both);
            let _ = t.join();
        }
    }
}

fn serve(mut s: TcpStream, offsets: &AtomicI64) {
    let _ = s.set_nodelay(true);
    let mut dec = FrameDecoder::default();
    let mut buf = BytesMut::with_capacity(256 * 1024);
    let mut out = BytesMut::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        let n = match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        loop {
            let req = match dec.decode(&mut buf) {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(_) => return,
            };
            if req.is_response() || req.is_oneway() {
                continue;
            }
            let resp = answer(&req, offsets);
            if encode_frame(&resp, &mut out).is_err() {
                return;
            }
        }
        if !out.is_empty() {
            if s.write_all(&out).is_err() {
                return;
            }
            out.clear();
        }
    }
}

/// The fake's answer to one request.
pub fn answer(req: &RemotingCommand, offsets: &AtomicI64) -> RemotingCommand {
    match req.code {
        request_code::SEND_MESSAGE
        | request_code::SEND_MESSAGE_V2
        | request_code::SEND_BATCH_MESSAGE => {
            let queue = req.ext_any(&["e", "queueId"]).unwrap_or("0").to_owned();
            let off = offsets.fetch_add(1, Ordering::Relaxed);
            RemotingCommand::response_to(req, response_code::SUCCESS, None)
                .with_ext("msgId", format!("7F00000100002A9F{off:016X}"))
                .with_ext("queueId", queue)
                .with_ext("queueOffset", off)
        }
        _ => RemotingCommand::response_to(
            req,
            response_code::REQUEST_CODE_NOT_SUPPORTED,
            Some("the bench self-test fake only stores sends".into()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringmq_client::{Message, Producer};

    #[test]
    fn fake_answers_sends_and_shuts_down() {
        let fake = FakeBroker::start().unwrap();
        let p = Producer::connect(&fake.addr().to_string(), "PG").unwrap();
        let r = p.send("T", Message::new("x")).unwrap();
        assert_eq!(r.queue_offset, 0);
        let r = p.send("T", Message::new("y")).unwrap();
        assert_eq!(r.queue_offset, 1);
        drop(p);
        drop(fake);
    }
}
