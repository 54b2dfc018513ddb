//! A slave that joins a master with history (catch-up from segment files, past the tail
//! ring) and then follows a live mixed-size load ends byte-identical, with the same
//! ConsumeQueues; the master's SlaveTable sees its acks.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ringmq_ha::{HaMaster, HaSlave};

#[test]
fn slave_follows_a_live_load_to_an_identical_log() {
    let dir = tempdir();
    let master = open(&dir.path().join("master"));
    // History before the slave exists: more than the 1 MiB tail ring.
    produce(&master, 0..400);
    let ha = HaMaster::start(master.clone(), "127.0.0.1:0".parse().unwrap(), fast_ha()).unwrap();
    let slave_store = open(&dir.path().join("slave"));
    let slave = HaSlave::start(slave_store.clone(), ha.local_addr(), fast_ha());

    let end = produce(&master, 400..3000);
    assert!(
        end > 100 * SEGMENT as i64,
        "the load rolls many segments: {end}"
    );
    let started = Instant::now();
    assert!(
        ha.slaves().wait_acked(end, Duration::from_secs(60)),
        "slave acked {} of {end}",
        ha.slaves().replicated_end()
    );
    eprintln!("caught up {:?} after the load ended", started.elapsed());
    assert!(wait_until(Duration::from_secs(5), || slave.acked_offset() == end));
    assert!(slave.is_connected());
    assert_eq!(ha.slaves().connected_slaves(), 1);
    assert_eq!(ha.slaves().best_acked(), Some(end));

    assert_same_log(&master, &slave_store, end);
    assert_same_queues(&master, &slave_store, end);

    slave.stop();
    ha.shutdown();
    assert_eq!(ha.slaves().connected_slaves(), 0);
    slave_store.shutdown().unwrap();
    master.shutdown().unwrap();
}
