//! What a master streams to its slaves: the bytes that survive a crash of the master
//! process. With the tail ring in shared memory (the default) that is everything
//! appended, so a SYNC_MASTER send does not wait for the master's own disk write; with a
//! private ring only what its O_DIRECT write completed, so a slave never holds bytes a
//! kill -9 of the master loses. The stalled disk is the engine's `faults::pause_writes`
//! (process-wide: it stalls the slave's writes too, which its shared-memory ring does not
//! wait for; hence one test in a file of its own).

mod ha_common;

use std::path::Path;
use std::time::{Duration, Instant};

use ha_common::*;
use ringmq_broker::{BrokerRole, Node};
use ringmq_client::{Message, MessageQueue, Producer, SendStatus};
use ringmq_engine::commitlog::Level;
use ringmq_engine::io::faults;

fn end(node: &Node, level: Level) -> i64 {
    node.broker().store.commitlog().progress().get(level)
}

/// A SYNC_MASTER + ASYNC_FLUSH pair, both with their tail rings in shared memory or both
/// private, and a producer whose first send to `mq` was acknowledged.
fn pair(dir: &Path, shm: bool, mq: &MessageQueue) -> (Node, Node, Producer) {
    let mut cfg = config(&dir.join("m"), BrokerRole::SyncMaster, 2);
    if !shm {
        cfg.tail_ring_shm_dir = None;
    }
    let master = Node::start(cfg).unwrap();
    let mut scfg = slave_config(&dir.join("s"), &master, master.ha_addr().unwrap());
    if !shm {
        scfg.tail_ring_shm_dir = None;
    }
    let slave = Node::start(scfg).unwrap();
    wait_in_sync(&master, 1);
    let p = warm_producer(&master, mq);
    (master, slave, p)
}

#[test]
fn a_master_streams_what_survives_its_process_crash() {
    let mq = MessageQueue::new("StreamLevel", "broker-a", 0);

    // Shared-memory ring: the send is on the slave and answered while the master's
    // write of it is still stalled.
    let dir = tempfile::tempdir().unwrap();
    let (master, slave, p) = pair(dir.path(), true, &mq);
    assert!(master
        .broker()
        .store
        .commitlog()
        .ring_survives_process_crash());
    faults::pause_writes(true);
    let started = Instant::now();
    let r = p
        .send_to(&mq, Message::new("while the disk stalls"))
        .unwrap();
    let took = started.elapsed();
    let (m_append, m_write) = (end(&master, Level::Append), end(&master, Level::Write));
    let s_append = end(&slave, Level::Append);
    faults::pause_writes(false);
    assert_eq!(r.status, SendStatus::SendOk, "after {took:?}");
    assert!(took < Duration::from_millis(800), "answered after {took:?}");
    assert!(
        m_write < m_append,
        "the master's write was stalled: write_end {m_write}, append_end {m_append}"
    );
    assert!(
        s_append >= m_append,
        "the slave holds what the master appended: {s_append} < {m_append}"
    );
    drop(p);
    slave.shutdown().unwrap();
    master.shutdown().unwrap();

    // Private ring: nothing reaches the slave before the master's write completes.
    let dir = tempfile::tempdir().unwrap();
    let (master, slave, p) = pair(dir.path(), false, &mq);
    assert!(!master
        .broker()
        .store
        .commitlog()
        .ring_survives_process_crash());
    let before = end(&slave, Level::Append);
    faults::pause_writes(true);
    let r = p
        .send_to(&mq, Message::new("while the disk stalls"))
        .unwrap();
    let (m_append, m_write) = (end(&master, Level::Append), end(&master, Level::Write));
    let s_append = end(&slave, Level::Append);
    faults::pause_writes(false);
    assert_ne!(
        r.status,
        SendStatus::SendOk,
        "answered before the write completed"
    );
    assert!(m_write < m_append, "the master's write was stalled");
    assert_eq!(
        s_append, before,
        "the slave got bytes the master had not written"
    );
    wait_until("the slave to catch up", Duration::from_secs(10), || {
        end(&slave, Level::Append) == end(&master, Level::Append)
    });
    assert_eq!(
        p.send_to(&mq, Message::new("after")).unwrap().status,
        SendStatus::SendOk
    );
    drop(p);
    slave.shutdown().unwrap();
    master.shutdown().unwrap();
}
