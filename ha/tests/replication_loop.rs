//! The master's HA loop: one thread serves every slave (no thread per slave), peers
//! that stall and then reset their connection in the middle of a splice or send_zc
//! transfer leave the loop serving the other slaves, which end byte-identical, and a peer
//! flooding the loop with reports does not starve the others.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

use common::*;
use ringmq_ha::protocol::encode_report;
use ringmq_ha::transfer::{path_stats, set_default_path, PathKind};
use ringmq_ha::{HaMaster, HaSlave};

/// The path counters and the default path are process-wide: one test at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// One test at a time, each starting once the loop of the one before is gone (a joined
/// thread may linger in /proc/self/task for a moment).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert!(wait_until(Duration::from_secs(5), || master_ha_threads().is_empty()));
    guard
}

/// Names of this process's HA master threads (`ringmq-ha-*` but the slaves').
fn master_ha_threads() -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        if let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) {
            let comm = comm.trim().to_string();
            if comm.starts_with("ringmq-ha-") && comm != "ringmq-ha-slave" {
                names.push(comm);
            }
        }
    }
    names.sort();
    names
}

fn set_int_opt(s: &TcpStream, opt: libc::c_int, v: libc::c_int) {
    // SAFETY: setsockopt reads one live int for the duration of the call.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            &v as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0);
}

/// A peer that asks for the log from `from`, reads `take` bytes, then stops reading, so
/// the master's transfers to it stall in flight.
fn stalling_peer(addr: SocketAddr, from: i64, take: usize) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    set_int_opt(&s, libc::SO_RCVBUF, 4096);
    s.write_all(&encode_report(from)).unwrap();
    let mut buf = vec![0u8; take];
    s.read_exact(&mut buf).unwrap();
    s
}

/// Drops `s` with a reset (SO_LINGER {on, 0}): the master sees ECONNRESET mid-transfer.
fn reset(s: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads one live linger struct for the duration of the call.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    drop(s);
}

#[test]
fn peers_reset_mid_transfer_leave_the_loop_serving_the_others() {
    let _serial = serial();
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    for kind in [PathKind::SendZc, PathKind::Splice] {
        set_default_path(kind);
        let dir = tempdir();
        let master = open(&dir.path().join("master"));
        // More history than the 1 MiB tail ring and the sockets' buffers hold.
        produce(&master, 0..1500);
        let log = master.commitlog();
        let cold = log.cold_end();
        assert!(cold > 4 * SEGMENT as i64);
        let before = path_stats(kind);
        let ha =
            HaMaster::start(master.clone(), "127.0.0.1:0".parse().unwrap(), fast_ha()).unwrap();
        // One peer stalls in the spliced history, one in the hot tail (send_zc).
        let hot_start = (log.max_offset() - 512 * 1024).max(cold);
        let cold_peer = stalling_peer(ha.local_addr(), 0, 40 * 1024);
        let hot_peer = stalling_peer(ha.local_addr(), hot_start, 40 * 1024);
        let slave_store = open(&dir.path().join("slave"));
        let slave = HaSlave::start(slave_store.clone(), ha.local_addr(), fast_ha());
        assert!(
            wait_until(Duration::from_secs(10), || ha.slaves().connected_slaves()
                == 3),
            "{kind:?}: three connections"
        );
        assert_eq!(
            master_ha_threads(),
            vec!["ringmq-ha-loop".to_string()],
            "{kind:?}: one HA thread serves every slave"
        );
        // The real slave catches up beside the two stalled transfers (nothing new is
        // written meanwhile, so the stalled send_zc keeps its pins without pressure).
        let history = log.max_offset();
        assert!(
            ha.slaves().wait_acked(history, Duration::from_secs(30)),
            "{kind:?}: the slave kept up beside two stalled peers ({} of {history})",
            ha.slaves().replicated_end()
        );
        reset(cold_peer);
        reset(hot_peer);
        assert!(
            wait_until(Duration::from_secs(10), || ha.slaves().connected_slaves()
                == 1),
            "{kind:?}: the reset peers are dropped"
        );
        let end = produce(&master, 1700..2200);
        assert!(
            ha.slaves().wait_acked(end, Duration::from_secs(30)),
            "{kind:?}: slave acked {} of {end} after the resets",
            ha.slaves().replicated_end()
        );
        assert!(wait_until(Duration::from_secs(5), || slave.acked_offset() == end));
        assert_same_log(&master, &slave_store, end);
        assert_same_queues(&master, &slave_store, end);
        let after = path_stats(kind);
        assert!(
            after.spliced_bytes > before.spliced_bytes,
            "{kind:?}: history spliced"
        );
        if kind == PathKind::SendZc {
            assert!(after.zc_bytes > before.zc_bytes, "hot tail sent by send_zc");
        }
        slave.stop();
        ha.shutdown();
        // A joined thread may linger in /proc/self/task for a moment.
        assert!(
            wait_until(Duration::from_secs(2), || master_ha_threads().is_empty()),
            "the loop ends at shutdown: {:?}",
            master_ha_threads()
        );
        slave_store.shutdown().unwrap();
        master.shutdown().unwrap();
    }
}

#[test]
fn a_peer_flooding_reports_does_not_starve_a_slave() {
    let _serial = serial();
    set_default_path(PathKind::SendZc);
    let dir = tempdir();
    let master = open(&dir.path().join("master"));
    produce(&master, 0..300);
    let ha = HaMaster::start(master.clone(), "127.0.0.1:0".parse().unwrap(), fast_ha()).unwrap();
    // Repeats of its first report (0) are valid: the master never drops it for them.
    let mut flooder = TcpStream::connect(ha.local_addr()).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let mut w = flooder.try_clone().unwrap();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let chunk: Vec<u8> = encode_report(0).repeat(8192);
            let mut sent = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                match w.write_all(&chunk) {
                    Ok(()) => sent += chunk.len() as u64,
                    Err(_) => break,
                }
            }
            sent
        })
    };
    // Drain what the master streams to the flooder, so only its reports load the loop.
    let reader = {
        let mut r = flooder.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(1..) = r.read(&mut buf) {}
        })
    };
    let slave_store = open(&dir.path().join("slave"));
    let slave = HaSlave::start(slave_store.clone(), ha.local_addr(), fast_ha());
    let end = produce(&master, 300..800);
    assert!(
        ha.slaves().wait_acked(end, Duration::from_secs(30)),
        "the slave kept up beside the flooder ({} of {end})",
        ha.slaves().replicated_end()
    );
    assert!(wait_until(Duration::from_secs(5), || slave.acked_offset() == end));
    assert_same_log(&master, &slave_store, end);
    assert_eq!(
        ha.slaves().connected_slaves(),
        2,
        "the flooder stays connected"
    );
    stop.store(true, std::sync::atomic::Ordering::Release);
    let _ = flooder.shutdown(std::net::Shutdown::Both);
    let sent = writer.join().unwrap();
    reader.join().unwrap();
    assert!(sent > 1 << 20, "the flooder did flood ({sent} bytes)");
    let _ = flooder.flush();
    slave.stop();
    ha.shutdown();
    slave_store.shutdown().unwrap();
    master.shutdown().unwrap();
}

/// The CPUs the thread named `name` of this process may run on (its status line).
fn cpus_allowed(name: &str) -> Option<String> {
    for entry in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            let status = std::fs::read_to_string(entry.path().join("status")).ok()?;
            return status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .map(|v| v.trim().to_string());
        }
    }
    None
}

#[test]
fn the_loop_is_pinned_to_its_core_only_when_asked() {
    let _serial = serial();
    let dir = tempdir();
    let master = open(&dir.path().join("master"));
    let any = "127.0.0.1:0".parse().unwrap();
    let pinned = HaMaster::start(
        master.clone(),
        any,
        ringmq_ha::HaConfig {
            core: Some(0),
            ..fast_ha()
        },
    )
    .unwrap();
    assert_eq!(cpus_allowed("ringmq-ha-loop").as_deref(), Some("0"));
    pinned.shutdown();
    // A joined thread may linger in /proc/self/task for a moment.
    assert!(wait_until(Duration::from_secs(2), || master_ha_threads().is_empty()));
    let free = HaMaster::start(master.clone(), any, fast_ha()).unwrap();
    // Unpinned, the loop keeps the affinity of the thread that started it.
    let ours = std::fs::read_to_string("/proc/thread-self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| v.trim().to_string());
    assert_eq!(
        cpus_allowed("ringmq-ha-loop"),
        ours,
        "unpinned without haCore"
    );
    free.shutdown();
    master.shutdown().unwrap();
}

/// CPU time (ns) the thread named `name` has used so far.
fn thread_cpu_ns(name: &str) -> Option<u64> {
    for entry in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            let s = std::fs::read_to_string(entry.path().join("schedstat")).ok()?;
            return s.split_whitespace().next()?.parse().ok();
        }
    }
    None
}

#[test]
fn a_stopped_master_store_ends_the_streams_without_spinning() {
    let _serial = serial();
    let dir = tempdir();
    let master = open(&dir.path().join("master"));
    let ha = HaMaster::start(master.clone(), "127.0.0.1:0".parse().unwrap(), fast_ha()).unwrap();
    let slave_store = open(&dir.path().join("slave"));
    let slave = HaSlave::start(slave_store.clone(), ha.local_addr(), fast_ha());
    let end = produce(&master, 0..50);
    assert!(ha.slaves().wait_acked(end, Duration::from_secs(20)));
    master.shutdown().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let before = thread_cpu_ns("ringmq-ha-loop").expect("the loop runs");
    std::thread::sleep(Duration::from_millis(1000));
    let used = thread_cpu_ns("ringmq-ha-loop").unwrap() - before;
    assert!(
        used < 200_000_000,
        "the loop used {} ms of CPU in 1 s with its store stopped",
        used / 1_000_000
    );
    slave.stop();
    ha.shutdown();
    slave_store.shutdown().unwrap();
}
