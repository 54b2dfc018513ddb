//! A stalled slave on the send_zc path cannot hold producers up: an ASYNC_MASTER with a
//! 1 MiB tail ring streams to a raw peer that reports an offset (and keeps reporting, so
//! the housekeeping timeout never fires) but never reads. Messages are larger than
//! ZC_MIN_BYTES, so every frame goes by send_zc. The sender's tail pins sit in
//! the full socket; the writer raises pin pressure after PIN_PRESSURE_AFTER; the sender
//! aborts the connection, and the master drops the slave well before any timeout would.
//! Appends of several ring capacities complete meanwhile.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use ringmq_engine::commitlog::PutStatus;
use ringmq_ha::protocol::encode_report;
use ringmq_ha::transfer::send_zc::ZC_MIN_BYTES;
use ringmq_ha::transfer::{path_stats, set_default_path, PathKind};
use ringmq_ha::HaMaster;

/// A message large enough that every frame carrying it goes by send_zc.
fn big(seq: u64) -> ringmq_engine::record::MessageToStore {
    let mut body = format!("big-{seq:010}-").into_bytes();
    body.resize(ZC_MIN_BYTES + 1024, b'z');
    ringmq_engine::record::MessageToStore::new("TopicA", (seq % 4) as i32, body, Vec::new())
}

#[test]
fn a_stalled_slave_does_not_block_producers_and_is_dropped() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_ansi(false)
        .try_init();
    set_default_path(PathKind::SendZc);
    let dir = tempdir();
    let master = open(&dir.path().join("master"));
    produce(&master, 0..50);
    let log = master.commitlog().clone();
    let cap = log.config().ring_capacity as i64;
    let ha = HaMaster::start(master.clone(), "127.0.0.1:0".parse().unwrap(), fast_ha()).unwrap();
    let before = path_stats(PathKind::SendZc);

    // The stalled slave: reports the master's end every 200 ms, never reads.
    let mut peer = TcpStream::connect(ha.local_addr()).unwrap();
    let mut reporter = peer.try_clone().unwrap();
    let start_at = log.max_offset();
    let reporting = std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            if reporter.write_all(&encode_report(start_at)).is_err() {
                return true; // the master reset the connection
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    });
    assert!(
        wait_until(Duration::from_secs(5), || ha.slaves().connected_slaves()
            == 1),
        "the peer registered"
    );

    // Several ring capacities of appends.
    let t0 = Instant::now();
    let target = start_at + 6 * cap;
    let mut seq = 1000;
    let mut slowest = Duration::ZERO;
    while log.max_offset() < target {
        let t = Instant::now();
        let o = master.put_blocking(vec![big(seq)]);
        slowest = slowest.max(t.elapsed());
        assert_eq!(o.status, PutStatus::Ok, "append {seq}");
        seq += 1;
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "appends stalled at {} of {target}",
            log.max_offset()
        );
    }
    let took = t0.elapsed();
    eprintln!(
        "{} bytes appended in {} ms past a stalled slave; slowest append {} ms",
        target - start_at,
        took.as_millis(),
        slowest.as_millis()
    );
    // Well below the 5 s housekeeping/write timeout: the pin pressure did it.
    assert!(took < Duration::from_secs(4), "appends took {took:?}");
    assert!(
        wait_until(Duration::from_secs(4), || ha.slaves().connected_slaves()
            == 0),
        "the master dropped the stalled slave"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "dropped before any timeout"
    );
    let after = path_stats(PathKind::SendZc);
    assert!(
        after.zc_bytes > before.zc_bytes,
        "the stream went through send_zc"
    );
    assert!(
        wait_until(Duration::from_secs(2), || log.pin_revoke_below() == 0),
        "pin pressure cleared"
    );
    // The peer's connection was reset: its reporter fails, and a read ends.
    assert!(
        reporting.join().unwrap(),
        "the peer saw its connection reset"
    );
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let t = Instant::now();
    loop {
        match peer.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => assert!(t.elapsed() < Duration::from_secs(5), "the peer still reads"),
        }
    }
    // Producers keep going with no slave.
    produce(&master, seq..seq + 100);
    ha.shutdown();
    master.shutdown().unwrap();
}
