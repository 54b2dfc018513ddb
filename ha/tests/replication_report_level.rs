//! What a slave's report means (issue 13, item 2): it reports an offset only once its
//! CommitLog write of those bytes completed (`write_end`), not when they sit in its tail
//! ring. The slave's disk is stalled with the engine's `faults::pause_writes`
//! (process-wide, hence this file of its own) after the master wrote the bytes.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use ringmq_engine::commitlog::Level;
use ringmq_engine::io::faults;
use ringmq_ha::{HaMaster, HaSlave};

#[test]
fn a_slave_reports_only_what_it_has_written() {
    let dir = tempdir();
    let master = open(&dir.path().join("master"));
    let slave_store = open(&dir.path().join("slave"));
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
    std::thread::sleep(Duration::from_millis(300));
    let unsafe_report = slave.acked_offset() > start || ha.slaves().replicated_end() > start;
    faults::pause_writes(false);
    assert!(!unsafe_report, "reported bytes only in the slave's ring");
    assert!(ha.slaves().wait_acked(end, Duration::from_secs(20)));
    assert!(slave_store.commitlog().progress().get(Level::Write) >= end);

    slave.stop();
    ha.shutdown();
    slave_store.shutdown().unwrap();
    master.shutdown().unwrap();
}
