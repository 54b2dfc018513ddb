//! What a slave's report means (issue 13, item 2): it reports an offset only once those
//! bytes survive a crash of the slave process: with a private tail ring, once its
//! CommitLog write completed (`write_end`), not while they sit in the ring; with the ring
//! in shared memory (the default), as soon as they are in it (start-up writes it back).
//! The slave's disk is stalled with the engine's `faults::pause_writes` (process-wide,
//! hence this file of its own, and both cases in one test) after the master wrote the
//! bytes.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use ringmq_engine::commitlog::Level;
use ringmq_engine::io::faults;
use ringmq_ha::{HaMaster, HaSlave};

#[test]
fn a_slave_reports_only_what_survives_its_crash() {
    slave_with_disk_stalled(false);
    slave_with_disk_stalled(true);
}

fn slave_with_disk_stalled(shared_ring: bool) {
    let dir = tempdir();
    let master = open(&dir.path().join("master"));
    let mut cfg = small_config(&dir.path().join("slave"));
    if !shared_ring {
        cfg.commitlog.tail_shm_dir = None;
    }
    let slave_store = std::sync::Arc::new(ringmq_engine::MessageStore::open(cfg).unwrap());
    assert_eq!(
        slave_store.commitlog().ring_survives_process_crash(),
        shared_ring
    );
    let ha = HaMaster::start(master.clone(), "127.0.0.1:0".parse().unwrap(), fast_ha()).unwrap();
    let proxy = Proxy::start(ha.local_addr());
    let slave = HaSlave::start(slave_store.clone(), proxy.addr, fast_ha());
    let start = produce(&master, 0..20);
    assert!(ha.slaves().wait_acked(start, Duration::from_secs(20)));

    // Written on the master, held back from the slave; then the disk stalls.
    proxy.frozen.store(true, Ordering::Release);
    let end = produce(&master, 20..60);
    let log = master.commitlog();
    assert!(log
        .progress()
        .wait(Level::Write, end, Duration::from_secs(10)));
    faults::pause_writes(true);
    proxy.frozen.store(false, Ordering::Release);
    assert!(
        wait_until(Duration::from_secs(10), || slave_store
            .commitlog()
            .progress()
            .get(Level::Append)
            >= end),
        "the slave appended the bytes to its ring"
    );
    let reported_from_ring = if shared_ring {
        ha.slaves().wait_acked(end, Duration::from_secs(10))
    } else {
        std::thread::sleep(Duration::from_millis(300));
        slave.acked_offset() > start || ha.slaves().replicated_end() > start
    };
    faults::pause_writes(false);
    if shared_ring {
        assert!(
            reported_from_ring,
            "a ring in shared memory survives the slave's crash"
        );
    } else {
        assert!(
            !reported_from_ring,
            "reported bytes only in the slave's private ring"
        );
    }
    assert!(ha.slaves().wait_acked(end, Duration::from_secs(20)));
    assert!(slave_store
        .commitlog()
        .progress()
        .wait(Level::Write, end, Duration::from_secs(10)));

    slave.stop();
    ha.shutdown();
    slave_store.shutdown().unwrap();
    master.shutdown().unwrap();
}
