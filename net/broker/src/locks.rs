//! LOCK_BATCH_MQ (41) and UNLOCK_BATCH_MQ (42): per-queue locks for orderly consumers
//! (spec §3.9, bodies §6.11).
//!
//! An orderly consumer must hold a queue's lock on its broker before it consumes that
//! queue, so that during a rebalance two members of a group never process the same queue at
//! once. [`RebalanceLocks`] is the broker's table, keyed by consumer group and then by
//! MessageQueue (`topic`, `brokerName`, `queueId`, all three part of the key as in Java),
//! each entry naming the owning clientId and when it last locked or refreshed the queue.
//!
//! Rules (RocketMQ's `RebalanceLockManager`):
//!
//! - **Lock**, per requested queue: a queue with no entry, or whose entry has *expired*, is
//!   given to the requester; a queue already held (unexpired) by the same clientId is
//!   refreshed (its timestamp set to now); a queue held by another unexpired client is not
//!   granted. The answer lists the requested queues the requester now holds.
//! - **Expiry**: an entry expires when more than the max live time (60 s by default, Java's
//!   `rocketmq.broker.rebalance.lockMaxLiveTime`) has passed since its last refresh. Clients
//!   re-lock their queues every 20 s, so a live consumer never loses its locks; a dead one
//!   loses them a minute later. Closing a connection does not release locks (Java neither).
//! - **Unlock** removes only the entries owned by the requesting clientId (expired or not);
//!   entries of other clients are left alone.
//!
//! A whole batch is decided under one acquisition of the table's mutex, so two concurrent
//! batches never split a queue between them. `onlyThisBroker` is accepted and ignored: this
//! broker has no `lockInStrictMode` quorum over replicas, every lock is local.
//!
//! Bodies are parsed with the fastjson-tolerant parser; null fields read as empty, numbers
//! written as strings are accepted. A missing or unparsable body, or one without
//! `consumerGroup` or `clientId`, is answered SYSTEM_ERROR with a remark naming the problem.
//! A missing, null or empty `mqSet` locks nothing and is answered SUCCESS with an empty set.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ringmq_engine::meta::json::null_as_default;
use ringmq_engine::sync::lock;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::{groups, validate, Broker};
use ringmq_remoting::codes::response_code as rs;
use ringmq_remoting::command::RemotingCommand;
use ringmq_remoting::error::FrameError;

/// Default lock lifetime without refresh (Java's `REBALANCE_LOCK_MAX_LIVE_TIME`, 60 000 ms).
pub const DEFAULT_LOCK_MAX_LIVE: Duration = Duration::from_secs(60);

/// A queue as carried in lock bodies: Java's `MessageQueue`
/// (`{"brokerName":"broker-a","queueId":0,"topic":"T1"}`, §6.11).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MessageQueue {
    #[serde(deserialize_with = "lenient_string")]
    pub broker_name: String,
    #[serde(deserialize_with = "lenient_i32")]
    pub queue_id: i32,
    #[serde(deserialize_with = "lenient_string")]
    pub topic: String,
}

impl MessageQueue {
    /// The queue `queue_id` of `topic` on broker `broker_name`.
    pub fn new(topic: impl Into<String>, broker_name: impl Into<String>, queue_id: i32) -> Self {
        Self {
            broker_name: broker_name.into(),
            queue_id,
            topic: topic.into(),
        }
    }
}

/// `LockBatchRequestBody` / `UnlockBatchRequestBody` (same shape, §6.11).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LockBatchBody {
    #[serde(deserialize_with = "lenient_string")]
    pub consumer_group: String,
    #[serde(deserialize_with = "lenient_string")]
    pub client_id: String,
    /// Java: do not forward to replicas (strict mode only). Ignored here.
    #[serde(deserialize_with = "lenient_bool")]
    pub only_this_broker: bool,
    #[serde(deserialize_with = "null_as_default")]
    pub mq_set: Vec<MessageQueue>,
}

/// `LockBatchResponseBody`: `{"lockOKMQSet":[MessageQueue,…]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockBatchResponseBody {
    #[serde(rename = "lockOKMQSet", default, deserialize_with = "null_as_default")]
    pub lock_ok_mq_set: Vec<MessageQueue>,
}

/// A string, or any scalar written as text; null = empty.
fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s),
        v @ (Value::Number(_) | Value::Bool(_)) => Ok(v.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a string, got {other}"
        ))),
    }
}

/// A 32-bit integer, or one written as a string.
fn lenient_i32<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    let v = Value::deserialize(d)?;
    let n = match &v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    n.and_then(|n| i32::try_from(n).ok())
        .ok_or_else(|| serde::de::Error::custom(format!("expected a queue id, got {v}")))
}

/// A boolean, or `"true"`/`"false"`; null or anything else = false.
fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => b,
        Value::String(s) => s.eq_ignore_ascii_case("true"),
        _ => false,
    })
}

/// Owner of one locked queue.
#[derive(Debug, Clone)]
struct LockEntry {
    client_id: String,
    last_update: Instant,
}

impl LockEntry {
    fn expired(&self, now: Instant, max_live: Duration) -> bool {
        now.saturating_duration_since(self.last_update) > max_live
    }
}

/// group → queue → owner.
type Table = HashMap<String, HashMap<MessageQueue, LockEntry>>;

/// The group → queue → owner table of queue locks (see the module doc for the rules).
/// Thread-safe; every batch runs under one mutex acquisition.
#[derive(Debug)]
pub struct RebalanceLocks {
    table: Mutex<Table>,
    /// Max live time in nanoseconds.
    max_live_nanos: AtomicU64,
}

impl Default for RebalanceLocks {
    fn default() -> Self {
        Self::with_max_live(DEFAULT_LOCK_MAX_LIVE)
    }
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl RebalanceLocks {
    /// An empty table whose entries expire `max_live` after their last refresh.
    pub fn with_max_live(max_live: Duration) -> Self {
        Self {
            table: Mutex::new(HashMap::new()),
            max_live_nanos: AtomicU64::new(duration_nanos(max_live)),
        }
    }

    /// How long an entry lives without refresh.
    pub fn max_live(&self) -> Duration {
        Duration::from_nanos(self.max_live_nanos.load(Ordering::Relaxed))
    }

    /// Changes how long entries live without refresh (applies to existing entries too).
    pub fn set_max_live(&self, max_live: Duration) {
        self.max_live_nanos
            .store(duration_nanos(max_live), Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        lock(&self.table)
    }

    /// Tries to lock `mqs` for `client_id` in `group`; returns the requested queues (in
    /// request order, without duplicates) that `client_id` now holds.
    pub fn try_lock_batch(
        &self,
        group: &str,
        client_id: &str,
        mqs: &[MessageQueue],
    ) -> Vec<MessageQueue> {
        self.try_lock_batch_at(group, client_id, mqs, Instant::now())
    }

    /// [`try_lock_batch`](Self::try_lock_batch) as of `now`.
    fn try_lock_batch_at(
        &self,
        group: &str,
        client_id: &str,
        mqs: &[MessageQueue],
        now: Instant,
    ) -> Vec<MessageQueue> {
        if mqs.is_empty() {
            return Vec::new();
        }
        let max_live = self.max_live();
        let mut table = self.lock();
        let queues = table.entry(group.to_string()).or_default();
        let mut seen = HashSet::with_capacity(mqs.len());
        let mut granted = Vec::with_capacity(mqs.len());
        for mq in mqs {
            if !seen.insert(mq) {
                continue;
            }
            match queues.get_mut(mq) {
                None => {
                    tracing::info!(group, client = client_id, %mq.topic, broker = %mq.broker_name,
                        queue = mq.queue_id, "queue locked");
                    queues.insert(
                        mq.clone(),
                        LockEntry {
                            client_id: client_id.to_string(),
                            last_update: now,
                        },
                    );
                }
                Some(e) if e.client_id == client_id && !e.expired(now, max_live) => {
                    e.last_update = now;
                }
                Some(e) if e.expired(now, max_live) => {
                    tracing::info!(group, client = client_id, old_client = %e.client_id,
                        %mq.topic, broker = %mq.broker_name, queue = mq.queue_id,
                        "expired queue lock taken over");
                    e.client_id = client_id.to_string();
                    e.last_update = now;
                }
                Some(e) => {
                    tracing::debug!(group, client = client_id, holder = %e.client_id,
                        %mq.topic, broker = %mq.broker_name, queue = mq.queue_id,
                        "queue locked by another client");
                    continue;
                }
            }
            granted.push(mq.clone());
        }
        granted
    }

    /// Releases those of `mqs` in `group` that `client_id` owns; others' entries stay.
    pub fn unlock_batch(&self, group: &str, client_id: &str, mqs: &[MessageQueue]) {
        let mut table = self.lock();
        let Some(queues) = table.get_mut(group) else {
            return;
        };
        for mq in mqs {
            match queues.get(mq) {
                Some(e) if e.client_id == client_id => {
                    queues.remove(mq);
                    tracing::info!(group, client = client_id, %mq.topic, broker = %mq.broker_name,
                        queue = mq.queue_id, "queue unlocked");
                }
                Some(e) => {
                    tracing::debug!(group, client = client_id, holder = %e.client_id,
                        %mq.topic, broker = %mq.broker_name, queue = mq.queue_id,
                        "unlock of a queue held by another client ignored");
                }
                None => {}
            }
        }
        if queues.is_empty() {
            table.remove(group);
        }
    }

    /// The clientId holding (`topic`, `broker_name`, `queue_id`) for `group`, unless the
    /// queue is free or its lock has expired. For diagnostics.
    pub fn holder(
        &self,
        group: &str,
        topic: &str,
        broker_name: &str,
        queue_id: i32,
    ) -> Option<String> {
        self.holder_at(group, topic, broker_name, queue_id, Instant::now())
    }

    /// True unless some queue of `group` is locked and unexpired: a group holding order
    /// locks consumes orderly, and RocketMQ sends its retry-topic messages straight to the
    /// DLQ (`isLockAllExpired`).
    pub fn is_lock_all_expired(&self, group: &str) -> bool {
        let (now, max_live) = (Instant::now(), self.max_live());
        self.lock()
            .get(group)
            .is_none_or(|queues| queues.values().all(|e| e.expired(now, max_live)))
    }

    fn holder_at(
        &self,
        group: &str,
        topic: &str,
        broker_name: &str,
        queue_id: i32,
        now: Instant,
    ) -> Option<String> {
        let max_live = self.max_live();
        let key = MessageQueue::new(topic, broker_name, queue_id);
        self.lock()
            .get(group)?
            .get(&key)
            .filter(|e| !e.expired(now, max_live))
            .map(|e| e.client_id.clone())
    }
}

/// Parses a lock/unlock body; `what` names the Java class in error remarks.
fn parse_body(req: &RemotingCommand, what: &str) -> Result<LockBatchBody, String> {
    if req.body.is_empty() {
        return Err(format!("{what}: request body is missing"));
    }
    let value: Value = ringmq_engine::meta::json::from_slice(&req.body)
        .map_err(|e| format!("{what}: body does not parse: {e}"))?;
    // Only an object: serde would also read a struct from an array of its fields.
    if !value.is_object() {
        return Err(format!("{what}: body does not parse: not a JSON object"));
    }
    let body: LockBatchBody =
        serde_json::from_value(value).map_err(|e| format!("{what}: body does not parse: {e}"))?;
    if body.consumer_group.is_empty() {
        return Err(format!("{what}: consumerGroup is missing"));
    }
    if body.client_id.is_empty() {
        return Err(format!("{what}: clientId is missing"));
    }
    Ok(body)
}

/// What a lock may name (so the table holds only real queues of real groups): a group
/// that exists or may be created, and queues of existing topics within their queue count.
fn check_lock_request(b: &Broker, body: &LockBatchBody) -> Result<(), groups::Refusal> {
    groups::find_or_create(b, &body.consumer_group)?;
    for (i, mq) in body.mq_set.iter().enumerate() {
        let Some(info) = b.topics.get(&mq.topic) else {
            return Err(groups::Refusal {
                code: rs::TOPIC_NOT_EXIST,
                remark: format!("mqSet[{i}]: topic[{}] not exist", mq.topic),
            });
        };
        if let Err(why) = validate::queue_id(&mq.topic, &info, mq.queue_id) {
            return Err(groups::Refusal {
                code: rs::INVALID_PARAMETER,
                remark: format!("mqSet[{i}]: {why}"),
            });
        }
    }
    Ok(())
}

/// LOCK_BATCH_MQ (41): locks the body's `mqSet` for `clientId` in `consumerGroup`; answers
/// SUCCESS with `{"lockOKMQSet":[…]}`, the requested queues the client now holds.
pub fn lock_batch_mq(b: &Broker, req: &RemotingCommand) -> Result<RemotingCommand, FrameError> {
    let body = match parse_body(req, "LockBatchRequestBody") {
        Ok(body) => body,
        Err(remark) => {
            return Ok(RemotingCommand::response_to(
                req,
                rs::SYSTEM_ERROR,
                Some(remark),
            ))
        }
    };
    if let Err(refused) = check_lock_request(b, &body) {
        return Ok(RemotingCommand::response_to(
            req,
            refused.code,
            Some(refused.remark),
        ));
    }
    let granted = b
        .locks
        .try_lock_batch(&body.consumer_group, &body.client_id, &body.mq_set);
    let answer = LockBatchResponseBody {
        lock_ok_mq_set: granted,
    };
    match serde_json::to_vec(&answer) {
        Ok(json) => Ok(RemotingCommand::response_to(req, rs::SUCCESS, None).with_body(json)),
        Err(e) => Ok(RemotingCommand::response_to(
            req,
            rs::SYSTEM_ERROR,
            Some(format!("LockBatchResponseBody: encoding failed: {e}")),
        )),
    }
}

/// UNLOCK_BATCH_MQ (42): releases those of the body's `mqSet` that `clientId` holds in
/// `consumerGroup`; answers SUCCESS without a body.
pub fn unlock_batch_mq(b: &Broker, req: &RemotingCommand) -> Result<RemotingCommand, FrameError> {
    let body = match parse_body(req, "UnlockBatchRequestBody") {
        Ok(body) => body,
        Err(remark) => {
            return Ok(RemotingCommand::response_to(
                req,
                rs::SYSTEM_ERROR,
                Some(remark),
            ))
        }
    };
    b.locks
        .unlock_batch(&body.consumer_group, &body.client_id, &body.mq_set);
    Ok(RemotingCommand::response_to(req, rs::SUCCESS, None))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::broker;
    use super::*;
    use ringmq_remoting::codes::request_code as rq;
    use serde_json::json;

    fn q(id: i32) -> MessageQueue {
        MessageQueue::new("T1", "broker-a", id)
    }

    fn qs(ids: impl IntoIterator<Item = i32>) -> Vec<MessageQueue> {
        ids.into_iter().map(q).collect()
    }

    fn ids(mqs: &[MessageQueue]) -> Vec<i32> {
        mqs.iter().map(|m| m.queue_id).collect()
    }

    #[test]
    fn a_group_with_a_live_lock_is_orderly() {
        let locks = RebalanceLocks::with_max_live(Duration::from_millis(50));
        assert!(locks.is_lock_all_expired("G"));
        locks.try_lock_batch("G", "A", &qs([0]));
        assert!(!locks.is_lock_all_expired("G"));
        assert!(locks.is_lock_all_expired("other"));
        std::thread::sleep(Duration::from_millis(60));
        assert!(locks.is_lock_all_expired("G"));
    }

    #[test]
    fn grant_refresh_deny_and_expiry() {
        let locks = RebalanceLocks::with_max_live(Duration::from_millis(100));
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);

        // Free queues are granted; duplicates in the request are answered once.
        let got = locks.try_lock_batch_at("G", "A", &qs([0, 1, 1, 2]), at(0));
        assert_eq!(ids(&got), [0, 1, 2]);
        assert_eq!(
            locks.holder_at("G", "T1", "broker-a", 1, at(0)).as_deref(),
            Some("A")
        );

        // Another client gets only the free ones.
        assert_eq!(
            ids(&locks.try_lock_batch_at("G", "B", &qs([1, 2, 3]), at(10))),
            [3]
        );
        // Another group, another broker name or topic are separate locks.
        assert_eq!(
            ids(&locks.try_lock_batch_at("G2", "B", &qs([1]), at(10))),
            [1]
        );
        let other_broker = MessageQueue::new("T1", "broker-b", 1);
        assert_eq!(
            locks.try_lock_batch_at("G", "B", std::slice::from_ref(&other_broker), at(10)),
            [other_broker]
        );

        // A refreshes queue 0 at 80 ms; at 150 ms queue 0 is still A's, 1 and 2 expired.
        assert_eq!(
            ids(&locks.try_lock_batch_at("G", "A", &qs([0]), at(80))),
            [0]
        );
        assert_eq!(locks.holder_at("G", "T1", "broker-a", 1, at(150)), None);
        assert_eq!(
            ids(&locks.try_lock_batch_at("G", "B", &qs([0, 1, 2]), at(150))),
            [1, 2]
        );
        assert_eq!(
            locks
                .holder_at("G", "T1", "broker-a", 1, at(150))
                .as_deref(),
            Some("B")
        );
        assert_eq!(
            locks
                .holder_at("G", "T1", "broker-a", 0, at(150))
                .as_deref(),
            Some("A")
        );

        // Exactly max-live after the refresh is not yet expired (Java: elapsed > max).
        assert_eq!(
            locks
                .holder_at("G", "T1", "broker-a", 0, at(180))
                .as_deref(),
            Some("A")
        );
        assert_eq!(locks.holder_at("G", "T1", "broker-a", 0, at(181)), None);

        // Own expired lock: simply taken again.
        assert_eq!(
            ids(&locks.try_lock_batch_at("G", "A", &qs([0]), at(500))),
            [0]
        );

        // A longer max live revives nothing taken over, but keeps entries alive longer.
        locks.set_max_live(Duration::from_secs(60));
        assert_eq!(locks.max_live(), Duration::from_secs(60));
        assert_eq!(
            locks
                .holder_at("G", "T1", "broker-a", 1, at(10_000))
                .as_deref(),
            Some("B")
        );
        assert_eq!(RebalanceLocks::default().max_live(), DEFAULT_LOCK_MAX_LIVE);

        // Empty request: nothing.
        assert!(locks.try_lock_batch_at("G", "A", &[], at(0)).is_empty());
        assert!(locks.holder("nobody", "T1", "broker-a", 0).is_none());
    }

    #[test]
    fn unlock_releases_only_own_entries() {
        let locks = RebalanceLocks::default();
        assert_eq!(ids(&locks.try_lock_batch("G", "A", &qs([0, 1]))), [0, 1]);
        assert_eq!(ids(&locks.try_lock_batch("G", "B", &qs([2]))), [2]);
        // B cannot release A's queue; A's unlock of B's queue and of free queues is ignored.
        locks.unlock_batch("G", "B", &qs([0]));
        locks.unlock_batch("G", "A", &qs([1, 2, 7]));
        locks.unlock_batch("nogroup", "A", &qs([0]));
        assert_eq!(locks.holder("G", "T1", "broker-a", 0).as_deref(), Some("A"));
        assert_eq!(locks.holder("G", "T1", "broker-a", 1), None);
        assert_eq!(locks.holder("G", "T1", "broker-a", 2).as_deref(), Some("B"));
        assert_eq!(ids(&locks.try_lock_batch("G", "B", &qs([0, 1]))), [1]);
        // Releasing everything drops the group.
        locks.unlock_batch("G", "A", &qs([0]));
        locks.unlock_batch("G", "B", &qs([1, 2]));
        assert!(locks.lock().is_empty());
    }

    #[test]
    fn concurrent_batches_never_split_a_queue() {
        let locks = std::sync::Arc::new(RebalanceLocks::default());
        let handles: Vec<_> = (0..8)
            .map(|n| {
                let locks = locks.clone();
                std::thread::spawn(move || locks.try_lock_batch("G", &format!("c{n}"), &qs(0..64)))
            })
            .collect();
        let mut all: Vec<i32> = handles
            .into_iter()
            .flat_map(|h| ids(&h.join().unwrap()))
            .collect();
        all.sort_unstable();
        assert_eq!(
            all,
            (0..64).collect::<Vec<_>>(),
            "each queue granted exactly once"
        );
    }

    fn lock_req(code: i32, body: &str) -> RemotingCommand {
        RemotingCommand::request(code).with_body(body.as_bytes().to_vec())
    }

    fn granted(resp: &RemotingCommand) -> Vec<i32> {
        assert_eq!(resp.code, rs::SUCCESS, "{:?}", resp.remark);
        let v: Value = serde_json::from_slice(&resp.body).unwrap();
        v["lockOKMQSet"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["queueId"].as_i64().unwrap() as i32)
            .collect()
    }

    #[test]
    fn processors_speak_the_java_bodies() {
        let (_dir, b) = broker();
        b.topics
            .put(ringmq_engine::meta::TopicConfig::with_queues(
                "T1",
                8,
                8,
                ringmq_engine::meta::PERM_READ | ringmq_engine::meta::PERM_WRITE,
            ))
            .unwrap();
        let body = |client: &str, queues: &[i32]| {
            json!({"consumerGroup":"G1","clientId":client,"onlyThisBroker":false,
                   "mqSet": queues.iter().map(|i| json!({"brokerName":"broker-a","queueId":i,"topic":"T1"})).collect::<Vec<_>>()})
            .to_string()
        };
        let r = lock_batch_mq(&b, &lock_req(rq::LOCK_BATCH_MQ, &body("A", &[0, 1]))).unwrap();
        assert_eq!(
            std::str::from_utf8(&r.body).unwrap(),
            r#"{"lockOKMQSet":[{"brokerName":"broker-a","queueId":0,"topic":"T1"},{"brokerName":"broker-a","queueId":1,"topic":"T1"}]}"#
        );
        let r = lock_batch_mq(&b, &lock_req(rq::LOCK_BATCH_MQ, &body("B", &[1, 2]))).unwrap();
        assert_eq!(granted(&r), [2]);
        let r = unlock_batch_mq(&b, &lock_req(rq::UNLOCK_BATCH_MQ, &body("A", &[1]))).unwrap();
        assert_eq!((r.code, r.body.is_empty()), (rs::SUCCESS, true));
        let r = lock_batch_mq(&b, &lock_req(rq::LOCK_BATCH_MQ, &body("B", &[1, 2]))).unwrap();
        assert_eq!(granted(&r), [1, 2]);
        assert_eq!(
            b.locks.holder("G1", "T1", "broker-a", 1).as_deref(),
            Some("B")
        );

        // Tolerated: fastjson-ish values, nulls, unknown properties, a missing mqSet.
        let r = lock_batch_mq(
            &b,
            &lock_req(
                rq::LOCK_BATCH_MQ,
                r#"{"consumerGroup":"G1","clientId":"A","onlyThisBroker":"true","extra":{"x":1},
                    "mqSet":[{"brokerName":"broker-a","queueId":"5","topic":"T1","future":null}]}"#,
            ),
        )
        .unwrap();
        assert_eq!(granted(&r), [5]);

        // Only real queues of existing topics, for legal group names.
        for (bad, code, says) in [
            (body("A", &[8]), rs::INVALID_PARAMETER, "queueId[8]"),
            (
                body("A", &[70_000]),
                rs::INVALID_PARAMETER,
                "queueId[70000]",
            ),
            (body("A", &[-1]), rs::INVALID_PARAMETER, "queueId[-1]"),
            (
                body("A", &[0]).replace("T1", "Nope"),
                rs::TOPIC_NOT_EXIST,
                "Nope",
            ),
            (
                body("A", &[0]).replace("G1", "G 1"),
                rs::INVALID_PARAMETER,
                "group",
            ),
        ] {
            let r = lock_batch_mq(&b, &lock_req(rq::LOCK_BATCH_MQ, &bad)).unwrap();
            assert_eq!(r.code, code, "{bad}");
            assert!(r.remark.unwrap().contains(says), "{bad}");
        }
        for empty in [
            r#"{"consumerGroup":"G1","clientId":"A","mqSet":[]}"#,
            r#"{"consumerGroup":"G1","clientId":"A","mqSet":null}"#,
            r#"{"consumerGroup":"G1","clientId":"A"}"#,
        ] {
            let r = lock_batch_mq(&b, &lock_req(rq::LOCK_BATCH_MQ, empty)).unwrap();
            assert_eq!(
                std::str::from_utf8(&r.body).unwrap(),
                r#"{"lockOKMQSet":[]}"#
            );
            let r = unlock_batch_mq(&b, &lock_req(rq::UNLOCK_BATCH_MQ, empty)).unwrap();
            assert_eq!(r.code, rs::SUCCESS);
        }
        b.shutdown().unwrap();
    }

    #[test]
    fn malformed_bodies_are_system_errors() {
        let (_dir, b) = broker();
        let cases = [
            ("", "body is missing"),
            ("{not json", "does not parse"),
            ("[1,2]", "does not parse"),
            (r#"{"clientId":"A","mqSet":[]}"#, "consumerGroup is missing"),
            (
                r#"{"consumerGroup":"G","clientId":null}"#,
                "clientId is missing",
            ),
            (
                r#"{"consumerGroup":"G","clientId":"A","mqSet":5}"#,
                "does not parse",
            ),
            (
                r#"{"consumerGroup":"G","clientId":"A","mqSet":[{"topic":"T","queueId":"x"}]}"#,
                "queue id",
            ),
            (
                r#"{"consumerGroup":"G","clientId":"A","mqSet":[{"topic":"T","queueId":1e12}]}"#,
                "queue id",
            ),
            (
                r#"{"consumerGroup":{"a":1},"clientId":"A"}"#,
                "expected a string",
            ),
        ];
        for (body, why) in cases {
            for (code, class) in [
                (rq::LOCK_BATCH_MQ, "LockBatchRequestBody"),
                (rq::UNLOCK_BATCH_MQ, "UnlockBatchRequestBody"),
            ] {
                let req = lock_req(code, body);
                let r = if code == rq::LOCK_BATCH_MQ {
                    lock_batch_mq(&b, &req)
                } else {
                    unlock_batch_mq(&b, &req)
                }
                .unwrap();
                assert_eq!(r.code, rs::SYSTEM_ERROR, "{body}");
                assert_eq!(r.opaque, req.opaque);
                let remark = r.remark.unwrap_or_default();
                assert!(
                    remark.contains(class) && remark.contains(why),
                    "{body}: {remark}"
                );
                assert!(r.body.is_empty());
            }
        }
        assert!(b.locks.lock().is_empty(), "nothing locked by bad requests");
        b.shutdown().unwrap();
    }
}
