//! A slave stopped mid-load (HaSlave::stop, then its store shut down) and restarted on its
//! directory while the master keeps appending catches up to a byte-identical log. The
//! stop falls in the slave's catch-up, where 32 KiB frames cut records, so the slave's
//! log usually ends inside a record.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use ringmq_ha::{HaMaster, HaSlave};

const HISTORY: u64 = 1500;
const TOTAL: u64 = 3000;

#[test]
fn restarted_slave_catches_up() {
    let dir = tempdir();
    let master = open(&dir.path().join("master"));
    let history_end = produce(&master, 0..HISTORY);
    let ha = HaMaster::start(master.clone(), "127.0.0.1:0".parse().unwrap(), fast_ha()).unwrap();
    let slave_dir = dir.path().join("slave");
    let slave_store = open(&slave_dir);
    let slave = HaSlave::start(slave_store.clone(), ha.local_addr(), fast_ha());

    let produced = Arc::new(AtomicU64::new(HISTORY));
    let producer = {
        let (master, produced) = (master.clone(), produced.clone());
        std::thread::spawn(move || {
            let mut end = 0;
            for seq in (HISTORY..TOTAL).step_by(50) {
                end = produce(&master, seq..seq + 50);
                produced.store(seq + 50, Ordering::Release);
                std::thread::sleep(Duration::from_millis(5));
            }
            end
        })
    };

    let long = Duration::from_secs(60);
    assert!(wait_until(long, || slave.acked_offset() > history_end / 3));
    slave.stop();
    let stopped_at = slave_store.commitlog().max_offset();
    let t = Instant::now();
    slave_store.shutdown().unwrap();
    eprintln!(
        "slave stopped at {stopped_at} (acked {}, dispatched {}); store shutdown took {:?}",
        slave.acked_offset(),
        slave_store.dispatched_offset(),
        t.elapsed()
    );
    drop(slave);
    drop(slave_store);
    assert!(wait_until(long, || ha.slaves().connected_slaves() == 0));

    // The load goes on without the slave.
    assert!(wait_until(long, || produced.load(Ordering::Acquire)
        >= (HISTORY + TOTAL) / 2));
    let slave_store = open(&slave_dir);
    let reopened_end = slave_store.commitlog().max_offset();
    eprintln!("slave reopened at {reopened_end}");
    assert!(reopened_end > 0 && reopened_end <= stopped_at);
    let slave = HaSlave::start(slave_store.clone(), ha.local_addr(), fast_ha());

    let end = producer.join().unwrap();
    assert!(
        ha.slaves().wait_acked(end, long),
        "slave acked {} of {end}",
        ha.slaves().replicated_end()
    );
    assert!(wait_until(Duration::from_secs(5), || slave.acked_offset() == end));
    assert_eq!(ha.slaves().connected_slaves(), 1);
    assert_same_log(&master, &slave_store, end);
    assert_same_queues(&master, &slave_store, end);

    slave.stop();
    ha.shutdown();
    slave_store.shutdown().unwrap();
    master.shutdown().unwrap();
}
