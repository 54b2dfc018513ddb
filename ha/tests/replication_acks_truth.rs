//! Acks bounded by truth (issue 13, item 1), with hand-driven peers and real slaves on
//! 127.0.0.1: a report beyond what the master sent drops the connection; a diverged
//! slave's longer end (which it truncates) never releases a waiter; a raw client's fake
//! report of 2^62 counts for nothing once it disconnects; with a quorum of two slaves a
//! wait is released only once both hold the end, and one frozen slave makes it time out.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use ringmq_ha::protocol::{decode_transfer_header, encode_report, TRANSFER_HEADER_SIZE};
use ringmq_ha::{HaMaster, HaSlave, Quorum};

fn read_frame(s: &mut TcpStream) -> (i64, Vec<u8>) {
    let mut h = [0u8; TRANSFER_HEADER_SIZE];
    s.read_exact(&mut h).unwrap();
    let (phys, size) = decode_transfer_header(&h);
    let mut body = vec![0u8; size as usize];
    s.read_exact(&mut body).unwrap();
    (phys, body)
}

/// Reads until EOF or an error; true if the peer closed within `timeout`.
fn closed_within(s: &mut TcpStream, timeout: Duration) -> bool {
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

fn any() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[test]
fn a_report_beyond_what_was_sent_drops_the_connection() {
    let dir = tempdir();
    let master = open(&dir.path().join("master"));
    let end = produce(&master, 0..20);
    let ha = HaMaster::start(master.clone(), any(), fast_ha()).unwrap();
    let table = ha.slaves().clone();
    let mut fake = TcpStream::connect(ha.local_addr()).unwrap();
    fake.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    fake.write_all(&encode_report(end)).unwrap();
    assert_eq!(
        read_frame(&mut fake),
        (end, Vec::new()),
        "starts at its end"
    );
    assert!(
        table.wait_acked(end, Duration::from_secs(5)),
        "it holds the prefix"
    );
    fake.write_all(&encode_report(end + 100)).unwrap();
    assert!(closed_within(&mut fake, Duration::from_secs(5)), "dropped");
    assert!(wait_until(Duration::from_secs(5), || table
        .connected_slaves()
        == 0));
    assert_eq!(table.replicated_end(), -1);
    ha.shutdown();
    master.shutdown().unwrap();
}

#[test]
fn a_truncating_slaves_old_end_never_releases_a_waiter() {
    let dir = tempdir();
    let master = open(&dir.path().join("master"));
    let end = produce(&master, 0..20);
    let ha = HaMaster::start(master.clone(), any(), fast_ha()).unwrap();
    let table = ha.slaves().clone();
    // A diverged slave: its log is longer than the master's.
    let claimed = end + 10_000;
    let mut fake = TcpStream::connect(ha.local_addr()).unwrap();
    fake.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    fake.write_all(&encode_report(claimed)).unwrap();
    assert_eq!(
        read_frame(&mut fake),
        (end, Vec::new()),
        "cut back to {end}"
    );
    // It repeats its old end before it read the frame: not an ack, and not an error.
    fake.write_all(&encode_report(claimed)).unwrap();
    assert!(!table.wait_acked(end + 5_000, Duration::from_millis(500)));
    assert!(!table.wait_acked(end, Duration::from_millis(10)));
    assert_eq!(table.connected_slaves(), 1, "a repeat is no protocol error");
    // It truncates to the master's end and reports it.
    fake.write_all(&encode_report(end)).unwrap();
    assert!(table.wait_acked(end, Duration::from_secs(5)));
    assert!(!table.wait_acked(end + 1, Duration::from_millis(300)));
    assert_eq!(table.replicated_end(), end);
    ha.shutdown();
    master.shutdown().unwrap();
}

#[test]
fn a_fake_report_counts_for_nothing_once_it_disconnects() {
    let dir = tempdir();
    let master = open(&dir.path().join("master"));
    produce(&master, 0..20);
    let ha = HaMaster::start(master.clone(), any(), fast_ha()).unwrap();
    let table = ha.slaves().clone();
    let mut fake = TcpStream::connect(ha.local_addr()).unwrap();
    fake.write_all(&encode_report(1 << 62)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    drop(fake);
    assert!(wait_until(Duration::from_secs(5), || table
        .connected_slaves()
        == 0));
    let end = produce(&master, 20..30);
    assert!(!table.wait_acked(end, Duration::from_millis(500)));
    assert_eq!(table.replicated_end(), -1);
    ha.shutdown();
    master.shutdown().unwrap();
}

#[test]
fn two_of_two_slaves_must_hold_a_send() {
    let dir = tempdir();
    let master = open(&dir.path().join("master"));
    let ha = HaMaster::start(master.clone(), any(), fast_ha()).unwrap();
    let table = ha.slaves().clone();
    table.set_quorum(Quorum {
        acks: 2,
        ..Quorum::default()
    });
    let proxies = [Proxy::start(ha.local_addr()), Proxy::start(ha.local_addr())];
    let stores = [open(&dir.path().join("s1")), open(&dir.path().join("s2"))];
    let slaves: Vec<HaSlave> = (0..2)
        .map(|i| HaSlave::start(stores[i].clone(), proxies[i].addr, fast_ha()))
        .collect();
    assert!(wait_until(Duration::from_secs(10), || table
        .connected_slaves()
        == 2));
    let end = produce(&master, 0..50);
    assert!(table.wait_acked(end, Duration::from_secs(20)));
    for s in &stores {
        assert!(
            s.commitlog().max_offset() >= end,
            "released before both held it"
        );
    }
    // One slave frozen: the other alone is not enough.
    proxies[1].frozen.store(true, Ordering::Release);
    let end = produce(&master, 50..60);
    assert!(wait_until(Duration::from_secs(10), || stores[0]
        .commitlog()
        .max_offset()
        >= end));
    assert!(
        !table.wait_acked(end, Duration::from_millis(800)),
        "one of two"
    );
    proxies[1].frozen.store(false, Ordering::Release);
    assert!(table.wait_acked(end, Duration::from_secs(20)));
    assert!(stores[1].commitlog().max_offset() >= end);
    for s in &slaves {
        s.stop();
    }
    ha.shutdown();
    for s in stores {
        s.shutdown().unwrap();
    }
    master.shutdown().unwrap();
}
