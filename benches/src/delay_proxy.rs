//! A TCP proxy that adds a fixed one-way delay to every byte in each direction, without
//! capping bandwidth: what a slow link between a master and its slave looks like
//! (`tc netem` is not available on these machines). Used by ha-bench's slow-link mode.
//!
//! Per connection and direction two threads: a reader stamps each chunk it reads with
//! `now + delay` and queues it (bounded: at most [`QUEUE_CHUNKS`] chunks of up to
//! [`CHUNK`] bytes in flight per direction); a writer sleeps until each chunk is due and
//! writes it. Chunks keep their order, so bytes arrive as sent, `delay` later; many chunks
//! are in flight at once, so the link is a pipe, not a stop-and-wait.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Largest chunk one read takes.
pub const CHUNK: usize = 64 * 1024;
/// Chunks queued per direction before the reader waits (bounds memory: 64 MiB).
pub const QUEUE_CHUNKS: usize = 1024;

/// A running proxy; dropping it stops accepting (open connections end with their peers).
pub struct DelayProxy {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl DelayProxy {
    /// Listens on 127.0.0.1 and forwards every connection to `target`, each direction
    /// delayed by `one_way`.
    pub fn start(target: SocketAddr, one_way: Duration) -> io::Result<DelayProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("delay-proxy".into())
                .spawn(move || {
                    for client in listener.incoming() {
                        if stop.load(Ordering::Acquire) {
                            break;
                        }
                        let Ok(client) = client else { continue };
                        if let Err(e) = forward(client, target, one_way) {
                            eprintln!("delay proxy: cannot forward a connection: {e}");
                        }
                    }
                })?
        };
        Ok(DelayProxy {
            addr,
            stop,
            acceptor: Some(acceptor),
        })
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // One connection wakes the acceptor to see `stop`.
        if TcpStream::connect(self.addr).is_ok() {
            if let Some(a) = self.acceptor.take() {
                let _ = a.join();
            }
        }
    }
}

fn forward(client: TcpStream, target: SocketAddr, one_way: Duration) -> io::Result<()> {
    let server = TcpStream::connect(target)?;
    for s in [&client, &server] {
        s.set_nodelay(true)?;
    }
    for (from, to) in [(client.try_clone()?, server.try_clone()?), (server, client)] {
        let (tx, rx) = sync_channel::<(Instant, Vec<u8>)>(QUEUE_CHUNKS);
        std::thread::Builder::new()
            .name("delay-proxy-rd".into())
            .spawn(move || {
                let mut from = from;
                let mut buf = vec![0u8; CHUNK];
                loop {
                    match from.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let chunk = buf[..n].to_vec();
                            if tx.send((Instant::now() + one_way, chunk)).is_err() {
                                break;
                            }
                        }
                    }
                }
            })?;
        std::thread::Builder::new()
            .name("delay-proxy-wr".into())
            .spawn(move || deliver(rx, to))?;
    }
    Ok(())
}

/// Writes each chunk once it is due, together with every later chunk already due by
/// then (one write, not one sleep and write per chunk: the proxy's own CPU would
/// otherwise compete with the brokers it measures); closes the write side when the
/// reader is done.
fn deliver(rx: Receiver<(Instant, Vec<u8>)>, mut to: TcpStream) {
    // SAFETY: prctl(PR_SET_TIMERSLACK) takes integers only and affects this thread: 1 us
    // slack so sub-millisecond delays are kept.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
    let mut out = Vec::with_capacity(4 * CHUNK);
    let mut next = rx.recv().ok();
    while let Some((due, chunk)) = next.take() {
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        out.clear();
        out.extend_from_slice(&chunk);
        let now = Instant::now();
        while out.len() < 4 * CHUNK {
            match rx.try_recv() {
                Ok((due, chunk)) if due <= now => out.extend_from_slice(&chunk),
                Ok(later) => {
                    next = Some(later);
                    break;
                }
                Err(_) => break,
            }
        }
        if to.write_all(&out).is_err() {
            return;
        }
        if next.is_none() {
            next = rx.recv().ok();
        }
    }
    let _ = to.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_arrive_in_order_and_late() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = l.local_addr().unwrap();
        let echo = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 4096];
            loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => s.write_all(&buf[..n]).unwrap(),
                }
            }
        });
        let delay = Duration::from_millis(20);
        let proxy = DelayProxy::start(target, delay).unwrap();
        let mut c = TcpStream::connect(proxy.addr).unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let started = Instant::now();
        let mut w = c.try_clone().unwrap();
        let sent = data.clone();
        let writer = std::thread::spawn(move || w.write_all(&sent).unwrap());
        let mut got = vec![0u8; data.len()];
        c.read_exact(&mut got[..1]).unwrap();
        assert!(started.elapsed() >= 2 * delay, "round trip is two delays");
        c.read_exact(&mut got[1..]).unwrap();
        writer.join().unwrap();
        assert!(got == data);
        drop(c);
        echo.join().unwrap();
    }
}
