//! SYNC_MASTER through real broker nodes on 127.0.0.1: no slave answers
//! SLAVE_NOT_AVAILABLE at once; with a slave a send is answered once the slave holds it;
//! a slave that stops reading (a proxy that stalls) gives FLUSH_SLAVE_TIMEOUT within the
//! timeout plus a small margin, and sends recover once it resumes. Metadata sync carries a
//! new topic, a committed offset and a subscription group to the slave.

use std::time::{Duration, Instant};

use ringmq_broker::{BrokerConfig, BrokerRole, Node};
use ringmq_client::{Message, MessageQueue, Producer, PullConsumer, SendStatus};

mod ha_common;
use ha_common::{slave_of, wait_in_sync, wait_until, Proxy};

/// A master or slave with RocketMQ's inSyncReplicas for its role (2 under SYNC_MASTER).
fn config(dir: &std::path::Path, role: BrokerRole) -> BrokerConfig {
    let in_sync = if role == BrokerRole::SyncMaster { 2 } else { 1 };
    ha_common::config(dir, role, in_sync)
}

#[test]
fn sync_master_without_a_slave_answers_slave_not_available() {
    let dir = tempfile::tempdir().unwrap();
    let master = Node::start(config(dir.path(), BrokerRole::SyncMaster)).unwrap();
    let p = Producer::connect(&master.addr().to_string(), "pg").unwrap();
    let started = Instant::now();
    let r = p
        .send_to(&MessageQueue::new("T", "broker-a", 0), Message::new("x"))
        .unwrap();
    assert_eq!(r.status, SendStatus::SlaveNotAvailable);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "answered at once, not after the timeout"
    );
    master.shutdown().unwrap();
}

#[test]
fn sync_master_waits_for_the_slave_and_times_out_when_it_stalls() {
    let dir = tempfile::tempdir().unwrap();
    let master = Node::start(config(&dir.path().join("m"), BrokerRole::SyncMaster)).unwrap();
    let proxy = Proxy::start(master.ha_addr().unwrap());
    let slave = slave_of(&dir.path().join("s"), &master, proxy.addr);
    wait_in_sync(&master, 1);
    let p = Producer::connect(&master.addr().to_string(), "pg").unwrap();
    let mq = MessageQueue::new("Sync", "broker-a", 0);
    for n in 0..50 {
        let r = p.send_to(&mq, Message::new(format!("m{n}"))).unwrap();
        assert_eq!(r.status, SendStatus::SendOk);
        // Answered only once the slave acked it.
        let end = master.broker().store.commitlog().max_offset();
        assert!(
            master.master().unwrap().slaves().replicated_end() >= end,
            "send {n} answered before the slave acked it"
        );
    }
    let end = master.broker().store.commitlog().max_offset();
    assert!(
        slave.slave().unwrap().acked_offset() >= end,
        "the slave acked every answered send"
    );

    // The slave stops reading: FLUSH_SLAVE_TIMEOUT after syncFlushTimeout (800 ms).
    proxy.freeze(true);
    let started = Instant::now();
    let r = p.send_to(&mq, Message::new("stalled")).unwrap();
    let waited = started.elapsed();
    assert_eq!(r.status, SendStatus::FlushSlaveTimeout);
    assert!(
        waited >= Duration::from_millis(750) && waited < Duration::from_millis(1500),
        "answered after {waited:?}"
    );

    // It resumes: sends are acknowledged again, and the slave holds everything.
    proxy.freeze(false);
    let r = p.send_to(&mq, Message::new("after")).unwrap();
    assert_eq!(r.status, SendStatus::SendOk);
    let end = master.broker().store.commitlog().max_offset();
    wait_until("slave caught up", Duration::from_secs(10), || {
        slave.broker().store.commitlog().max_offset() == end
    });
    let mut a = vec![0u8; end as usize];
    let mut b = vec![0u8; end as usize];
    master.broker().store.commitlog().read(0, &mut a).unwrap();
    slave.broker().store.commitlog().read(0, &mut b).unwrap();
    assert!(a == b, "slave log is byte-identical");
    // The metrics saw every wait: 52 sends waited (one timed out) and none waits now.
    let m = &master.broker().metrics;
    assert_eq!(m.replica_wait.snapshot().1, 52);
    assert_eq!(
        m.replica_waiters.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    slave.shutdown().unwrap();
    master.shutdown().unwrap();
}

#[test]
fn metadata_sync_carries_topics_offsets_and_groups() {
    let dir = tempfile::tempdir().unwrap();
    let master = Node::start(config(&dir.path().join("m"), BrokerRole::AsyncMaster)).unwrap();
    let addr = master.addr().to_string();
    let p = Producer::connect(&addr, "pg").unwrap();
    let mq = MessageQueue::new("SyncedTopic", "broker-a", 1);
    p.send_to(&mq, Message::new("hello")).unwrap();
    let c = PullConsumer::connect(&addr, "synced_group").unwrap();
    c.pull(&mq, 0, 1, None).unwrap();
    c.update_offset("synced_group", &mq, 1).unwrap();
    let slave = slave_of(&dir.path().join("s"), &master, master.ha_addr().unwrap());
    wait_until("metadata synced", Duration::from_secs(10), || {
        slave.metasync().unwrap().rounds() >= 1
    });
    let sb = slave.broker();
    assert!(sb.topics.get("SyncedTopic").is_some(), "topic synced");
    assert_eq!(
        sb.consumer_offsets.query("synced_group", "SyncedTopic", 1),
        Some(1),
        "offset synced"
    );
    assert!(
        sb.subscription_groups.get("synced_group").is_some(),
        "group synced"
    );
    // Persisted on the slave.
    let topics = std::fs::read_to_string(dir.path().join("s/config/topics.json")).unwrap();
    assert!(topics.contains("SyncedTopic"));
    slave.shutdown().unwrap();
    master.shutdown().unwrap();
}
