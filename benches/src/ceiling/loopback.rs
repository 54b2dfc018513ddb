//! Ceiling: TCP over 127.0.0.1 (round-trip latency and bandwidth).
//!
//! A server thread accepts one connection on an ephemeral loopback port; the
//! client measures either ping-pong round trips of a small message with
//! `TCP_NODELAY` on both ends ([`rtt`]) or one-way streaming bandwidth
//! acknowledged by the server once everything arrived ([`bandwidth`]).
//! Sockets carry read/write timeouts and the loops carry deadlines, so a
//! stuck peer ends the measurement with an error instead of hanging.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::{latency_histogram, mb_per_s};

/// Size of the ping-pong message used by [`rtt`].
pub const RTT_MESSAGE: usize = 64;
/// Unrecorded round trips before the recorded ones.
pub const RTT_WARMUP: usize = 200;
/// Socket timeout and cap on any one loopback measurement.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// `n` round trips of a 64-byte message over 127.0.0.1 with TCP_NODELAY;
/// histogram in **nanoseconds**. Panics on error. See [`try_rtt`].
pub fn rtt(n: usize) -> Histogram<u64> {
    try_rtt(n, RTT_MESSAGE).unwrap_or_else(|e| panic!("loopback rtt: {e}"))
}

/// Streaming bandwidth of `bytes` over 127.0.0.1, in MB/s (10^6 bytes), timed
/// from the first write to the server's acknowledgement. Panics on error.
pub fn bandwidth(bytes: u64) -> f64 {
    try_bandwidth(bytes).unwrap_or_else(|e| panic!("loopback bandwidth: {e}"))
}

fn configure(s: &TcpStream) -> io::Result<()> {
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.set_write_timeout(Some(TIMEOUT))
}

/// Bind an ephemeral loopback port and serve one connection with `serve` on a
/// thread; the accept gives up after [`TIMEOUT`].
fn spawn_server<F>(
    pin: Option<usize>,
    serve: F,
) -> io::Result<(SocketAddr, JoinHandle<io::Result<()>>)>
where
    F: FnOnce(TcpStream) -> io::Result<()> + Send + 'static,
{
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let handle = thread::Builder::new()
        .name("ceiling-loopback".into())
        .spawn(move || {
            pin_current(pin)?;
            let deadline = Instant::now() + TIMEOUT;
            let stream = loop {
                match listener.accept() {
                    Ok((s, _)) => break s,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if Instant::now() >= deadline {
                            return Err(io::Error::new(io::ErrorKind::TimedOut, "no client"));
                        }
                        thread::sleep(Duration::from_millis(1));
                    }
                    Err(e) => return Err(e),
                }
            };
            stream.set_nonblocking(false)?;
            configure(&stream)?;
            serve(stream)
        })?;
    Ok((addr, handle))
}

/// Pin the calling thread to CPU `core`, if given.
fn pin_current(core: Option<usize>) -> io::Result<()> {
    match core {
        Some(id) if !core_affinity::set_for_current(core_affinity::CoreId { id }) => {
            Err(io::Error::other(format!("cannot pin a thread to CPU {id}")))
        }
        _ => Ok(()),
    }
}

fn join(handle: JoinHandle<io::Result<()>>) -> io::Result<()> {
    handle
        .join()
        .map_err(|_| io::Error::other("loopback server thread panicked"))?
}

/// Round trips of a `msg`-byte message, client on the calling thread, both
/// threads unpinned; histogram in nanoseconds. See [`try_rtt_on`].
pub fn try_rtt(n: usize, msg: usize) -> io::Result<Histogram<u64>> {
    try_rtt_on(n, msg, None)
}

/// Round trips of a `msg`-byte message; histogram in nanoseconds. With
/// `cores = Some((client, server))` the client runs on its own thread pinned
/// to CPU `client` and the server thread is pinned to CPU `server` (equal ids
/// measure a same-CPU handoff, different ids a cross-CPU wakeup, which costs
/// an IPI and is much dearer in a VM). At most [`TIMEOUT`] is spent
/// recording: fewer than `n` samples if that runs out.
pub fn try_rtt_on(
    n: usize,
    msg: usize,
    cores: Option<(usize, usize)>,
) -> io::Result<Histogram<u64>> {
    match cores {
        None => rtt_inner(n, msg, None),
        Some((client, server)) => thread::scope(|s| {
            thread::Builder::new()
                .name("ceiling-rtt-client".into())
                .spawn_scoped(s, move || {
                    pin_current(Some(client))?;
                    rtt_inner(n, msg, Some(server))
                })?
                .join()
                .map_err(|_| io::Error::other("rtt client thread panicked"))?
        }),
    }
}

fn rtt_inner(n: usize, msg: usize, server_core: Option<usize>) -> io::Result<Histogram<u64>> {
    let msg = msg.max(1);
    let (addr, server) = spawn_server(server_core, move |mut s| {
        let mut buf = vec![0u8; msg];
        loop {
            match s.read_exact(&mut buf) {
                Ok(()) => s.write_all(&buf)?,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    })?;
    let result = (|| -> io::Result<Histogram<u64>> {
        let mut c = TcpStream::connect_timeout(&addr, TIMEOUT)?;
        configure(&c)?;
        let mut out = vec![0xA5u8; msg];
        let mut back = vec![0u8; msg];
        let mut hist = latency_histogram();
        let deadline = Instant::now() + TIMEOUT;
        for i in 0..RTT_WARMUP + n {
            if Instant::now() >= deadline {
                break;
            }
            out[..8.min(msg)].copy_from_slice(&(i as u64).to_le_bytes()[..8.min(msg)]);
            let t0 = Instant::now();
            c.write_all(&out)?;
            c.read_exact(&mut back)?;
            let ns = t0.elapsed().as_nanos() as u64;
            if back != out {
                return Err(io::Error::other("loopback echo mismatch"));
            }
            if i >= RTT_WARMUP {
                hist.saturating_record(ns.max(1));
            }
        }
        Ok(hist)
        // `c` drops here: the server sees EOF and exits.
    })();
    let served = join(server);
    let hist = result?;
    served?;
    Ok(hist)
}

/// Stream `bytes` to a loopback server in 256 KiB writes; MB/s (10^6 bytes)
/// from the first write to the server's one-byte acknowledgement.
pub fn try_bandwidth(bytes: u64) -> io::Result<f64> {
    const CHUNK: usize = 256 * 1024;
    let bytes = bytes.max(1);
    let (addr, server) = spawn_server(None, move |mut s| {
        let mut buf = vec![0u8; CHUNK];
        let mut got = 0u64;
        while got < bytes {
            let want = CHUNK.min((bytes - got) as usize);
            let k = s.read(&mut buf[..want])?;
            if k == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "client left"));
            }
            got += k as u64;
        }
        s.write_all(&[1])
    })?;
    let result = (|| -> io::Result<f64> {
        let mut c = TcpStream::connect_timeout(&addr, TIMEOUT)?;
        configure(&c)?;
        let chunk = vec![0x5Au8; CHUNK];
        let t0 = Instant::now();
        let mut sent = 0u64;
        while sent < bytes {
            let k = CHUNK.min((bytes - sent) as usize);
            c.write_all(&chunk[..k])?;
            sent += k as u64;
        }
        let mut ack = [0u8; 1];
        c.read_exact(&mut ack)?;
        Ok(mb_per_s(bytes, t0.elapsed().as_secs_f64()))
    })();
    let served = join(server);
    let mbps = result?;
    served?;
    Ok(mbps)
}
