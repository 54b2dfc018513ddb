//! The zero-copy transfer paths (`SplicePath` through io_uring and through splice(2), and
//! `SendZcPath`: send_zc from the tail ring, splice below it): frames arrive whole and
//! byte-identical over a socket that takes them in small pieces (partial splices and
//! sends) or answers EAGAIN (non-blocking), a closed peer ends the stream with an error
//! instead of a hang (and releases every tail pin), and a slave following a master
//! through each ends with the same log and ConsumeQueues.

mod common;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::*;
use ringmq_engine::MessageStore;
use ringmq_ha::protocol::FrameDecoder;
use ringmq_ha::transfer::{
    path_stats, set_default_path, PathKind, SendZcPath, SplicePath, TransferPath,
};
use ringmq_ha::{HaMaster, HaSlave};

const BATCH: usize = 32 * 1024;

/// The path counters are process-wide: one test at a time reads them.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A connected pair over 127.0.0.1: (sender side, receiver side).
fn socket_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let tx = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (rx, _) = l.accept().unwrap();
    tx.set_nodelay(true).unwrap();
    (tx, rx)
}

fn set_sndbuf(s: &TcpStream, bytes: i32) {
    // SAFETY: setsockopt reads one live int for the duration of the call.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            &bytes as *const i32 as *const libc::c_void,
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0);
}

/// Frames covering `[from, to)`: at most `batch` bytes, never across a segment end.
fn frames(from: i64, to: i64, batch: usize) -> Vec<(i64, usize)> {
    let seg = SEGMENT as i64;
    let mut out = Vec::new();
    let mut at = from;
    while at < to {
        let len = (to.min(at - at % seg + seg) - at).min(batch as i64);
        out.push((at, len as usize));
        at += len;
    }
    out
}

/// A store whose log holds more than its 1 MiB tail ring, so a cold part exists.
fn store_with_history(root: &std::path::Path) -> std::sync::Arc<MessageStore> {
    let store = open(root);
    produce(&store, 0..600);
    assert!(store.commitlog().cold_end() > 2 * SEGMENT as i64);
    store
}

/// Sends every frame (of up to `batch` bytes) of `[0, end)` through `path` to a receiver
/// that reads in small, slow pieces at first; checks every byte against the log.
fn stream_and_check(
    store: &MessageStore,
    mut path: impl TransferPath,
    batch: usize,
    nonblocking: bool,
) {
    let log = store.commitlog();
    let end = log.max_offset();
    let (mut tx, mut rx) = socket_pair();
    set_sndbuf(&tx, 4096);
    tx.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let reader = std::thread::spawn(move || {
        let mut dec = FrameDecoder::new(batch);
        let mut got: Vec<(i64, Vec<u8>)> = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut reads = 0u64;
        loop {
            // Small, slow reads first: the sender meets a full socket and partial splices.
            let want = if reads < 200 { 777 } else { buf.len() };
            if reads < 200 && reads.is_multiple_of(20) {
                std::thread::sleep(Duration::from_millis(5));
            }
            reads += 1;
            let n = rx.read(&mut buf[..want]).unwrap();
            if n == 0 {
                assert!(dec.at_boundary(), "stream ended inside a frame");
                return got;
            }
            let mut input = &buf[..n];
            while !input.is_empty() {
                if let Some(f) = dec.decode(&mut input).unwrap() {
                    got.push((f.phys_offset, f.body.to_vec()));
                }
            }
        }
    });
    let plan = frames(0, end, batch);
    let cold = log.cold_end();
    for &(phys, len) in &plan {
        // Only spliced frames meet EAGAIN: the copy fallback and heartbeats write with
        // write_all, which (like the master's sockets) wants a blocking socket.
        tx.set_nonblocking(nonblocking && phys + len as i64 <= cold)
            .unwrap();
        path.send_data(log, &mut tx, phys, len).unwrap();
    }
    tx.set_nonblocking(false).unwrap();
    path.send_heartbeat(&mut tx, end).unwrap();
    // Until the kernel has let go of every send (send_zc notifications), the path keeps
    // the connection open; idle() reaps them.
    while let Some(poll) = path.idle(log, &mut tx).unwrap() {
        std::thread::sleep(poll);
    }
    drop(path);
    drop(tx);
    let got = reader.join().unwrap();
    assert_eq!(got.len(), plan.len() + 1, "frames received");
    let mut expect = vec![0u8; batch];
    for (&(phys, len), (gphys, body)) in plan.iter().zip(&got) {
        assert_eq!(*gphys, phys);
        assert_eq!(body.len(), len, "frame at {phys}");
        log.read(phys, &mut expect[..len]).unwrap();
        assert!(body[..] == expect[..len], "frame at {phys} differs");
    }
    assert_eq!(got.last().unwrap(), &(end, Vec::new()), "heartbeat last");
}

#[test]
fn frames_arrive_byte_identical_through_every_splice_driver() {
    let _serial = serial();
    let dir = tempdir();
    let store = store_with_history(&dir.path().join("m"));
    // Whole-segment frames through a pipe filled 5000 bytes at a time: many rounds each.
    let cases = [(false, false), (false, true), (true, false), (true, true)]
        .into_iter()
        .flat_map(|(s, n)| [(s, n, BATCH), (s, n, SEGMENT as usize)]);
    for (syscall_only, nonblocking, batch) in cases {
        let mut path = SplicePath::new(batch, syscall_only).unwrap();
        if batch > BATCH {
            path.limit_fill(5000);
        }
        let kind = if path.uses_io_uring() {
            PathKind::Splice
        } else {
            PathKind::SpliceSyscall
        };
        assert!(
            syscall_only || path.uses_io_uring(),
            "io_uring splice is available here"
        );
        let before = path_stats(kind);
        stream_and_check(&store, path, batch, nonblocking);
        let after = path_stats(kind);
        let cold = store.commitlog().cold_end() as u64;
        assert!(
            after.spliced_bytes - before.spliced_bytes >= cold - SEGMENT,
            "{kind:?}: spliced {} of the {cold} cold bytes",
            after.spliced_bytes - before.spliced_bytes
        );
        assert!(
            after.copied_bytes > before.copied_bytes,
            "{kind:?}: the hot tail went by copy"
        );
    }
    store.shutdown().unwrap();
}

#[test]
fn frames_arrive_byte_identical_through_send_zc() {
    let _serial = serial();
    let dir = tempdir();
    let store = store_with_history(&dir.path().join("m"));
    let log = store.commitlog();
    for nonblocking in [false, true] {
        let path = SendZcPath::new(BATCH).expect("send_zc is available here");
        let before = path_stats(PathKind::SendZc);
        stream_and_check(&store, path, BATCH, nonblocking);
        let after = path_stats(PathKind::SendZc);
        let cold = log.cold_end() as u64;
        let hot = log.max_offset() as u64 - cold;
        assert!(
            after.spliced_bytes - before.spliced_bytes >= cold - SEGMENT,
            "spliced {} of the {cold} cold bytes",
            after.spliced_bytes - before.spliced_bytes
        );
        assert!(
            // All but the frame straddling the window's start and the short last one.
            after.zc_bytes - before.zc_bytes >= hot - 2 * BATCH as u64,
            "send_zc sent {} of the {hot} hot bytes",
            after.zc_bytes - before.zc_bytes
        );
        assert!(
            after.zc_notifs > before.zc_notifs,
            "send_zc notifications came"
        );
        eprintln!(
            "send_zc: {} bytes, {} notifications, {} of them copied by the kernel",
            after.zc_bytes - before.zc_bytes,
            after.zc_notifs - before.zc_notifs,
            after.zc_copied_notifs - before.zc_copied_notifs
        );
    }
    // Every pin went with its notification: the writer may use the whole ring.
    assert_eq!(log.pin_revoke_below(), 0);
    produce(&store, 600..1200);
    store.shutdown().unwrap();
}

#[test]
fn a_closed_peer_ends_the_stream_with_an_error() {
    let _serial = serial();
    let dir = tempdir();
    let store = store_with_history(&dir.path().join("m"));
    let log = store.commitlog();
    let cold = log.cold_end();
    for syscall_only in [false, true] {
        let mut path = SplicePath::new(BATCH, syscall_only).unwrap();
        let (mut tx, mut rx) = socket_pair();
        tx.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut first = [0u8; 1000];
        // The peer reads a little, then closes with unread data (a reset).
        let closer = std::thread::spawn(move || {
            rx.read_exact(&mut first).unwrap();
            drop(rx);
        });
        let started = Instant::now();
        let mut failed = None;
        'outer: for _ in 0..100 {
            for (phys, len) in frames(0, cold, BATCH) {
                if let Err(e) = path.send_data(log, &mut tx, phys, len) {
                    failed = Some(e);
                    break 'outer;
                }
            }
        }
        closer.join().unwrap();
        let e = failed.expect("sending to a closed peer fails");
        assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            ),
            "syscall_only={syscall_only}: {e}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    // send_zc: hot frames (the tail ring) over and over to a peer that goes away.
    let hot = frames(cold, log.max_offset(), BATCH);
    let mut path = SendZcPath::new(BATCH).expect("send_zc is available here");
    let (mut tx, mut rx) = socket_pair();
    tx.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let closer = std::thread::spawn(move || {
        let mut first = [0u8; 1000];
        rx.read_exact(&mut first).unwrap();
        drop(rx);
    });
    let started = Instant::now();
    let mut failed = None;
    'zc: for _ in 0..1000 {
        for &(phys, len) in &hot {
            if let Err(e) = path.send_data(log, &mut tx, phys, len) {
                failed = Some(e);
                break 'zc;
            }
        }
    }
    closer.join().unwrap();
    eprintln!(
        "send_zc from a registered tail ring: {}, usage reported: {}",
        path.uses_registered_buffer(),
        path.reports_usage()
    );
    let e = failed.expect("send_zc to a closed peer fails");
    assert!(
        matches!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
        ),
        "send_zc: {e}"
    );
    // Fails at once: no waiting out the abort grace (2 s) for completions that the
    // kernel never posts (cancellations behind a failed header are silent).
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(path.pinned_bytes(), 0, "pins released after the error");
    // The path stays failed.
    assert!(path.send_data(log, &mut tx, hot[0].0, hot[0].1).is_err());
    drop(path);
    store.shutdown().unwrap();
}

#[test]
fn a_slave_following_through_splice_ends_byte_identical() {
    let _serial = serial();
    for kind in [PathKind::SendZc, PathKind::Splice, PathKind::SpliceSyscall] {
        set_default_path(kind);
        let dir = tempdir();
        let master = store_with_history(&dir.path().join("master"));
        let before = path_stats(kind);
        let ha =
            HaMaster::start(master.clone(), "127.0.0.1:0".parse().unwrap(), fast_ha()).unwrap();
        let slave_store = open(&dir.path().join("slave"));
        let slave = HaSlave::start(slave_store.clone(), ha.local_addr(), fast_ha());
        // Live load while the slave catches up, and after.
        let end = produce(&master, 600..1500);
        assert!(
            ha.slaves().wait_acked(end, Duration::from_secs(60)),
            "{kind:?}: slave acked {} of {end}",
            ha.slaves().replicated_end()
        );
        assert!(wait_until(Duration::from_secs(5), || slave.acked_offset() == end));
        assert_same_log(&master, &slave_store, end);
        assert_same_queues(&master, &slave_store, end);
        let after = path_stats(kind);
        assert!(
            after.spliced_bytes - before.spliced_bytes >= 2 * SEGMENT,
            "{kind:?}: the history went through splice ({} bytes)",
            after.spliced_bytes - before.spliced_bytes
        );
        if kind == PathKind::SendZc {
            // The live load (and the ring's part of the history) went by send_zc.
            assert!(
                after.zc_bytes - before.zc_bytes >= SEGMENT,
                "the hot tail went through send_zc ({} bytes)",
                after.zc_bytes - before.zc_bytes
            );
            assert!(after.frames - before.frames > 0);
            assert!(after.zc_notifs > before.zc_notifs);
        }
        slave.stop();
        ha.shutdown();
        slave_store.shutdown().unwrap();
        master.shutdown().unwrap();
    }
}
