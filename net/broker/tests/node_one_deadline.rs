//! One deadline for a SYNC_MASTER + SYNC_FLUSH send (issue 13, item 3): the local flush
//! and the replication wait share `syncFlushTimeout` counted from the send's arrival, and
//! the answer names the step that missed it. The stalled disk is the engine's
//! `faults::pause_writes` (process-wide, hence this file of its own); the slow slave is
//! a frozen proxy between it and its master.

mod ha_common;

use std::time::{Duration, Instant};

use ha_common::*;
use ringmq_broker::{BrokerRole, Node};
use ringmq_client::{Message, MessageQueue, Producer, SendStatus};
use ringmq_engine::io::faults;

/// `syncFlushTimeout` in `ha_common::config`.
const TIMEOUT: Duration = Duration::from_millis(800);
/// Answer latency on top of the deadline: the 5 ms sweep tick, a loaded 2-core box.
const MARGIN: Duration = Duration::from_millis(250);

/// Sends one message with the disk stalled for `stall` and the slave frozen.
fn send_stalled(p: &Producer, stall: Duration) -> (SendStatus, Duration) {
    let mq = MessageQueue::new("Deadline", "broker-a", 0);
    faults::pause_writes(true);
    let resume = std::thread::spawn(move || {
        std::thread::sleep(stall);
        faults::pause_writes(false);
    });
    let started = Instant::now();
    let r = p.send_to(&mq, Message::new("stalled")).unwrap();
    let took = started.elapsed();
    resume.join().unwrap();
    (r.status, took)
}

#[test]
fn a_stalled_disk_and_a_slow_slave_share_one_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir.path().join("m"), BrokerRole::SyncMaster, 2);
    cfg.sync_flush = true;
    let master = Node::start(cfg).unwrap();
    let proxy = Proxy::start(master.ha_addr().unwrap());
    let slave = slave_of(&dir.path().join("s"), &master, proxy.addr);
    wait_in_sync(&master, 1);
    let mq = MessageQueue::new("Deadline", "broker-a", 0);
    let p = warm_producer(&master, &mq);

    proxy.freeze(true);
    // The flush makes it at 500 ms; the slave never does: FLUSH_SLAVE_TIMEOUT at the
    // arrival's deadline, not 800 ms after the flush.
    let (status, took) = send_stalled(&p, Duration::from_millis(500));
    assert_eq!(status, SendStatus::FlushSlaveTimeout, "after {took:?}");
    assert!(
        took >= TIMEOUT - Duration::from_millis(50) && took < TIMEOUT + MARGIN,
        "answered after {took:?}"
    );
    // The flush misses it: FLUSH_DISK_TIMEOUT, within the same bound.
    let (status, took) = send_stalled(&p, Duration::from_millis(1500));
    assert_eq!(status, SendStatus::FlushDiskTimeout, "after {took:?}");
    assert!(took < TIMEOUT + MARGIN, "answered after {took:?}");
    proxy.freeze(false);
    assert_eq!(
        p.send_to(&mq, Message::new("after")).unwrap().status,
        SendStatus::SendOk
    );
    slave.shutdown().unwrap();
    master.shutdown().unwrap();
}
