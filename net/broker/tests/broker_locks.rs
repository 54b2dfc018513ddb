//! LOCK_BATCH_MQ / UNLOCK_BATCH_MQ over the wire: two clients of one consumer group compete
//! for the queues of a topic; locks are granted per queue, refused while another client
//! holds them, and handed over after the holder unlocks.

mod common;

use std::time::Duration;

use ringmq_client::Connection;
use ringmq_remoting::codes::{request_code, response_code};
use ringmq_remoting::RemotingCommand;
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(5);

fn body(client: &str, queues: impl IntoIterator<Item = i32>) -> Vec<u8> {
    let mq_set: Vec<Value> = queues
        .into_iter()
        .map(|q| json!({"brokerName":"broker-a","queueId":q,"topic":"OrderTopic"}))
        .collect();
    json!({"consumerGroup":"OrderGroup","clientId":client,"onlyThisBroker":false,"mqSet":mq_set})
        .to_string()
        .into_bytes()
}

/// Sends LOCK_BATCH_MQ; returns the granted queue ids, sorted.
fn lock(conn: &Connection, client: &str, queues: impl IntoIterator<Item = i32>) -> Vec<i64> {
    let req = RemotingCommand::request(request_code::LOCK_BATCH_MQ).with_body(body(client, queues));
    let resp = conn.request(req, TIMEOUT).unwrap();
    assert_eq!(resp.code, response_code::SUCCESS, "{:?}", resp.remark);
    let v: Value = serde_json::from_slice(&resp.body).expect("JSON body");
    let set = v["lockOKMQSet"].as_array().expect("lockOKMQSet array");
    let mut ids: Vec<i64> = set
        .iter()
        .map(|mq| {
            assert_eq!(mq["topic"], "OrderTopic");
            assert_eq!(mq["brokerName"], "broker-a");
            mq["queueId"].as_i64().expect("numeric queueId")
        })
        .collect();
    ids.sort_unstable();
    ids
}

fn unlock(conn: &Connection, client: &str, queues: impl IntoIterator<Item = i32>) {
    let req =
        RemotingCommand::request(request_code::UNLOCK_BATCH_MQ).with_body(body(client, queues));
    let resp = conn.request(req, TIMEOUT).unwrap();
    assert_eq!(resp.code, response_code::SUCCESS, "{:?}", resp.remark);
    assert!(resp.body.is_empty());
}

#[test]
fn two_clients_share_queues_through_locks() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start(dir.path());
    // Locks name real queues only (issue 11): the topic exists with 6 queues.
    common::create_topic(&broker.addr, "OrderTopic", 6);
    let a = Connection::connect(&broker.addr).unwrap();
    let b = Connection::connect(&broker.addr).unwrap();

    assert_eq!(lock(&a, "client-A", 0..4), [0, 1, 2, 3]);
    assert_eq!(lock(&b, "client-B", 2..6), [4, 5]);
    // Re-locking refreshes: A still holds its queues, B still gets nothing of A's.
    assert_eq!(lock(&a, "client-A", 0..6), [0, 1, 2, 3]);

    // B cannot release A's queue; A releasing q2 hands it to B.
    unlock(&b, "client-B", [2]);
    assert_eq!(lock(&b, "client-B", 2..6), [4, 5]);
    unlock(&a, "client-A", [2]);
    assert_eq!(lock(&b, "client-B", 2..6), [2, 4, 5]);
    assert_eq!(lock(&a, "client-A", 0..6), [0, 1, 3]);

    // Empty set: SUCCESS, nothing granted. Bad body: SYSTEM_ERROR naming the problem.
    assert!(lock(&a, "client-A", []).is_empty());
    let resp = a
        .request(
            RemotingCommand::request(request_code::LOCK_BATCH_MQ).with_body(&b"{oops"[..]),
            TIMEOUT,
        )
        .unwrap();
    assert_eq!(resp.code, response_code::SYSTEM_ERROR);
    assert!(resp
        .remark
        .unwrap_or_default()
        .contains("LockBatchRequestBody"));
    let resp = a
        .request(
            RemotingCommand::request(request_code::UNLOCK_BATCH_MQ),
            TIMEOUT,
        )
        .unwrap();
    assert_eq!(resp.code, response_code::SYSTEM_ERROR);
    assert!(resp.remark.unwrap_or_default().contains("missing"));

    // The connection stays usable after errors.
    assert_eq!(lock(&a, "client-A", [0]), [0]);
}
