//! A slave that holds bytes its master lost (the master's unflushed tail) truncates to the
//! master's offset, rebuilds its ConsumeQueues, logs what it dropped and follows: it does
//! not stay stuck reconnecting.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use ringmq_ha::{HaMaster, HaSlave};

#[test]
fn diverged_slave_truncates_and_follows() {
    let dir = tempdir();
    let (mdir, sdir) = (dir.path().join("master"), dir.path().join("slave"));
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();

    // In sync first.
    let master = open(&mdir);
    let slave = open(&sdir);
    let end = produce(&master, 0..300);
    let ha = HaMaster::start(master.clone(), any, fast_ha()).unwrap();
    let follower = HaSlave::start(slave.clone(), ha.local_addr(), fast_ha());
    assert!(wait_until(Duration::from_secs(20), || slave
        .commitlog()
        .max_offset()
        == end));
    follower.stop();

    // The master loses its tail: its log now ends well below the slave's.
    let kept = {
        // Cut at a record boundary, from the master's own index.
        let (_, _, cq) = master.consume_queues().all().into_iter().next().unwrap();
        cq.get(cq.max_offset() / 2).unwrap().unwrap().phys_offset
    };
    master.truncate_log(kept).unwrap();
    assert!(slave.commitlog().max_offset() > master.commitlog().max_offset());

    // The slave reconnects ahead of the master: it must cut back and follow new data.
    let follower = HaSlave::start(slave.clone(), ha.local_addr(), fast_ha());
    assert!(
        wait_until(Duration::from_secs(20), || slave.commitlog().max_offset()
            == kept),
        "slave truncated to the master's end"
    );
    let end = produce(&master, 1_000..1_200);
    assert!(
        wait_until(Duration::from_secs(20), || slave.commitlog().max_offset()
            == end),
        "slave follows after the cut"
    );
    assert!(
        master.wait_dispatched(end, Duration::from_secs(10))
            && slave.wait_dispatched(end, Duration::from_secs(10))
    );
    assert_same_log(&master, &slave, end);
    assert_same_queues(&master, &slave, end);
    assert!(follower.is_connected(), "not stuck reconnecting");
    follower.stop();
    ha.shutdown();
}
