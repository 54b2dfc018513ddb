//! Several slaves can follow one master: both end byte-identical with identical queues.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use ringmq_ha::{HaMaster, HaSlave};

#[test]
fn two_slaves_follow_one_master() {
    let dir = tempdir();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let master = open(&dir.path().join("master"));
    let ha = HaMaster::start(master.clone(), any, fast_ha()).unwrap();
    let s1 = open(&dir.path().join("s1"));
    let s2 = open(&dir.path().join("s2"));
    let f1 = HaSlave::start(s1.clone(), ha.local_addr(), fast_ha());
    produce(&master, 0..200);
    let f2 = HaSlave::start(s2.clone(), ha.local_addr(), fast_ha());
    let end = produce(&master, 200..500);
    for s in [&s1, &s2] {
        assert!(wait_until(Duration::from_secs(20), || s
            .commitlog()
            .max_offset()
            == end));
        assert!(s.wait_dispatched(end, Duration::from_secs(10)));
        assert_same_log(&master, s, end);
        assert_same_queues(&master, s, end);
    }
    assert_eq!(ha.slaves().connected_slaves(), 2);
    f1.stop();
    f2.stop();
    ha.shutdown();
}
