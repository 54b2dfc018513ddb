//! The master's SlaveTable over a real socket, with a hand-driven "slave": a waiter for
//! offset X is released when a report covers X and times out otherwise; only the last
//! report of a burst counts; the first report decides where streaming starts and the
//! first frame carries that start; a silent slave is dropped after haHousekeepingInterval.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use ringmq_ha::protocol::{decode_transfer_header, encode_report, TRANSFER_HEADER_SIZE};
use ringmq_ha::{HaConfig, HaMaster};

fn read_frame(s: &mut TcpStream) -> (i64, Vec<u8>) {
    let mut h = [0u8; TRANSFER_HEADER_SIZE];
    s.read_exact(&mut h).unwrap();
    let (phys, size) = decode_transfer_header(&h);
    let mut body = vec![0u8; size as usize];
    s.read_exact(&mut body).unwrap();
    (phys, body)
}

#[test]
fn waiters_are_released_by_acks_and_time_out_without() {
    let dir = tempdir();
    let master = open(&dir.path().join("master"));
    let end = produce(&master, 0..3);
    assert!(end > 4000);
    let ha = HaMaster::start(master.clone(), "127.0.0.1:0".parse().unwrap(), fast_ha()).unwrap();
    let table = ha.slaves().clone();
    let mut fake = TcpStream::connect(ha.local_addr()).unwrap();
    fake.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || table
        .connected_slaves()
        == 1));
    assert_eq!(table.best_acked(), None);

    let released = {
        let t = table.clone();
        std::thread::spawn(move || {
            let at = Instant::now();
            (t.wait_acked(1000, Duration::from_secs(20)), at.elapsed())
        })
    };
    let timed_out = {
        let t = table.clone();
        std::thread::spawn(move || {
            let at = Instant::now();
            (t.wait_acked(5000, Duration::from_millis(300)), at.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    fake.write_all(&encode_report(1000)).unwrap();
    let (ok, took) = released.join().unwrap();
    assert!(
        ok && took < Duration::from_secs(5),
        "released: {ok} after {took:?}"
    );
    let (ok, took) = timed_out.join().unwrap();
    assert!(
        !ok && took >= Duration::from_millis(300),
        "timed out: {ok} after {took:?}"
    );
    assert_eq!(table.best_acked(), Some(1000));
    assert!(table.wait_acked(999, Duration::ZERO));

    // The first report (1000) is the start: a heartbeat at 1000, then the log from 1000.
    let (phys, body) = read_frame(&mut fake);
    assert_eq!((phys, body.len()), (1000, 0), "first frame is [start, 0]");
    let mut got = Vec::new();
    for _ in 0..1000 {
        if 1000 + got.len() as i64 >= end {
            break;
        }
        let (phys, body) = read_frame(&mut fake);
        assert_eq!(phys, 1000 + got.len() as i64);
        assert!(body.len() <= HaConfig::default().transfer_batch_size);
        got.extend_from_slice(&body);
    }
    assert_eq!(1000 + got.len() as i64, end, "the whole log was streamed");
    let mut want = vec![0u8; got.len()];
    master.commitlog().read(1000, &mut want).unwrap();
    assert!(got == want, "streamed bytes are the log's");
    // Idle: heartbeats at the end.
    assert_eq!(read_frame(&mut fake), (end, Vec::new()));

    // A burst: only the last complete value counts, a partial one waits for its rest.
    let mut burst = encode_report(1500).to_vec();
    burst.extend_from_slice(&encode_report(2000));
    burst.extend_from_slice(&encode_report(3000)[..5]);
    fake.write_all(&burst).unwrap();
    assert!(table.wait_acked(2000, Duration::from_secs(5)));
    assert!(!table.wait_acked(3000, Duration::from_millis(100)));
    fake.write_all(&encode_report(3000)[5..]).unwrap();
    assert!(table.wait_acked(3000, Duration::from_secs(5)));
    assert_eq!(table.slaves()[0].acked_end, Some(3000));

    drop(fake);
    assert!(wait_until(Duration::from_secs(5), || table
        .connected_slaves()
        == 0));
    assert_eq!(table.best_acked(), None);
    assert_eq!(table.replicated_end(), -1, "acks leave with the connection");

    // Shutdown releases a pending waiter.
    let pending = {
        let t = table.clone();
        std::thread::spawn(move || t.wait_acked(1 << 40, Duration::from_secs(30)))
    };
    std::thread::sleep(Duration::from_millis(50));
    ha.shutdown();
    assert!(!pending.join().unwrap());
    master.shutdown().unwrap();
}

#[test]
fn a_silent_slave_is_dropped() {
    let dir = tempdir();
    let master = open(&dir.path().join("master"));
    let cfg = HaConfig {
        housekeeping_interval: Duration::from_millis(500),
        ..fast_ha()
    };
    let ha = HaMaster::start(master.clone(), "127.0.0.1:0".parse().unwrap(), cfg).unwrap();
    let mut fake = TcpStream::connect(ha.local_addr()).unwrap();
    assert!(wait_until(Duration::from_secs(5), || ha
        .slaves()
        .connected_slaves()
        == 1));
    let at = Instant::now();
    assert!(wait_until(Duration::from_secs(10), || ha
        .slaves()
        .connected_slaves()
        == 0));
    assert!(at.elapsed() >= Duration::from_millis(300));
    // The master closed the socket: EOF.
    fake.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(fake.read(&mut buf).unwrap(), 0);
    ha.shutdown();
    master.shutdown().unwrap();
}
