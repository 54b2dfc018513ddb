//! Send-back is stored like a send (issue 11, item 4): under SYNC_FLUSH a retry copy is
//! durable before SUCCESS (a stalled disk gets FLUSH_DISK_TIMEOUT, not SUCCESS), and under
//! SYNC_MASTER it is on a slave (a slave that does not confirm gets its status named).
//! One test per binary: the stalled-disk fault is process-wide.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringmq_client::{Connection, Message, MessageQueue, Producer, PullConsumer};
use ringmq_engine::io::faults;
use ringmq_engine::sync::lock;
use ringmq_ha::{ReplicaOutcome, Replication};
use ringmq_remoting::codes::{request_code as rq, response_code as rs};
use ringmq_remoting::RemotingCommand;

const T: Duration = Duration::from_secs(10);

fn send_back(conn: &Connection, phys_offset: i64) -> RemotingCommand {
    let mut req = RemotingCommand::request(rq::CONSUMER_SEND_MSG_BACK);
    req.set_ext("offset", phys_offset);
    req.set_ext("group", "RetryGroup");
    req.set_ext("delayLevel", 1);
    req.set_ext("originTopic", "Durable");
    conn.request(req, T).unwrap()
}

/// A message stored on `broker` and the CommitLog offset a consumer got it at.
fn stored_message(addr: &str) -> i64 {
    let p = Producer::connect(addr, "pg").unwrap();
    let mq = MessageQueue::new("Durable", "broker-a", 0);
    p.send_to(&mq, Message::new("retry me")).unwrap();
    let c = PullConsumer::connect(addr, "RetryGroup").unwrap();
    let got = common::pull_until(&c, &mq, 0, T, |m| !m.is_empty());
    got[0].phys_offset
}

/// Answers every replication wait with the outcome it holds now.
struct FixedReplication(Mutex<ReplicaOutcome>);

impl Replication for FixedReplication {
    fn wait_replicated(
        &self,
        _end: i64,
        _deadline: Instant,
        done: Box<dyn FnOnce(ReplicaOutcome) + Send>,
    ) {
        let outcome = *lock(&self.0);
        done(outcome);
    }
}

#[test]
fn a_retry_copy_is_durable_and_replicated_before_success() {
    // SYNC_FLUSH with a stalled disk: FLUSH_DISK_TIMEOUT, then SUCCESS once it writes again.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.sync_flush = true;
    cfg.sync_flush_timeout = Duration::from_millis(500);
    let broker = common::start_with(cfg);
    let offset = stored_message(&broker.addr);
    let conn = Connection::connect(&broker.addr).unwrap();
    faults::pause_writes(true);
    let r = send_back(&conn, offset);
    faults::pause_writes(false);
    assert_eq!(r.code, rs::SYSTEM_ERROR, "{:?}", r.remark);
    assert_eq!(r.remark.as_deref(), Some("FLUSH_DISK_TIMEOUT"));
    let r = send_back(&conn, offset);
    assert_eq!(r.code, rs::SUCCESS, "{:?}", r.remark);
    drop(broker);

    // SYNC_MASTER: a slave that does not confirm is named; one that does gives SUCCESS.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.broker_role = ringmq_broker::BrokerRole::SyncMaster;
    let broker = common::start_with(cfg);
    let offset = stored_message(&broker.addr);
    let b = broker.server.as_ref().unwrap().broker().clone();
    let slave = Arc::new(FixedReplication(Mutex::new(ReplicaOutcome::NotAvailable)));
    b.set_replication(slave.clone());
    let conn = Connection::connect(&broker.addr).unwrap();
    for (outcome, code, remark) in [
        (
            ReplicaOutcome::NotAvailable,
            rs::SYSTEM_ERROR,
            Some("SLAVE_NOT_AVAILABLE"),
        ),
        (
            ReplicaOutcome::Timeout,
            rs::SYSTEM_ERROR,
            Some("FLUSH_SLAVE_TIMEOUT"),
        ),
        (ReplicaOutcome::Replicated, rs::SUCCESS, None),
    ] {
        *lock(&slave.0) = outcome;
        let r = send_back(&conn, offset);
        assert_eq!((r.code, r.remark.as_deref()), (code, remark), "{outcome:?}");
    }
}
