//! Client registrations: HEART_BEAT (34), UNREGISTER_CLIENT (35), GET_CONSUMER_LIST_BY_GROUP
//! (38), and the broker → client NOTIFY_CONSUMER_IDS_CHANGED (40) (spec §3.5-§3.8, §6.2).
//!
//! [`ClientRegistry`] keeps, per consumer group, one member per connection (a Java client
//! uses one connection per broker address; RocketMQ keys members by channel the same way):
//! its clientID, language, last heartbeat, message model, consume-from-where and the
//! subscriptions it announced, plus a clone of the connection's outbox so the broker can
//! push NOTIFY_CONSUMER_IDS_CHANGED to it. Producer groups are kept the same way, without
//! subscriptions. Members not refreshed for 120 s are dropped (`expire_idle`, called by the
//! broker's housekeeping), and a closed connection drops its members at once.
//!
//! Whenever the member set of a group changes (a new connection, a member's subscribed
//! topics change, unregister, close, expiry) every remaining member is notified, unless the
//! group config disables it or the group consumes in BROADCASTING mode (Java's rules).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ringmq_engine::meta::json::null_as_default;
use ringmq_engine::meta::{TopicConfig, PERM_READ, PERM_WRITE};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedSender;

use super::conn::{ConnInfo, Outgoing};
use super::topics::validate_topic_name;
use super::Broker;
use ringmq_remoting::codes::{request_code as rq, response_code as rs};
use ringmq_remoting::command::RemotingCommand;
use ringmq_remoting::error::FrameError;

/// RocketMQ's `channelExpiredTimeout`: a member not refreshed for this long is dropped.
pub const CHANNEL_EXPIRED_TIMEOUT: Duration = Duration::from_secs(120);
/// Prefix of a consumer group's retry topic.
pub const RETRY_GROUP_TOPIC_PREFIX: &str = "%RETRY%";
/// `MessageModel.BROADCASTING`: groups in this mode are never told about member changes.
pub const BROADCASTING: &str = "BROADCASTING";

/// `TopicSysFlag.buildSysFlag(false, true)`: the retry topic of a unit-mode consumer.
const TOPIC_SYS_FLAG_UNIT_SUB: i32 = 0x2;

// ---- HeartbeatData (§6.2), parsed tolerantly ---------------------------------------------

/// One subscription of a consumer (Java's `SubscriptionData`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionData {
    #[serde(deserialize_with = "lenient_bool")]
    pub class_filter_mode: bool,
    #[serde(deserialize_with = "lenient_string")]
    pub topic: String,
    /// The expression; `*` (or empty) = every message.
    #[serde(deserialize_with = "lenient_string")]
    pub sub_string: String,
    /// `TAG` (the default) or `SQL92`.
    #[serde(deserialize_with = "lenient_string")]
    pub expression_type: String,
    #[serde(deserialize_with = "null_as_default")]
    pub tags_set: Vec<String>,
    /// Tag hashes (§4.9).
    #[serde(deserialize_with = "null_as_default")]
    pub code_set: Vec<i64>,
    /// When the client built the subscription (ms); a newer one replaces an older one.
    #[serde(deserialize_with = "lenient_i64")]
    pub sub_version: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ProducerData {
    #[serde(deserialize_with = "lenient_string")]
    group_name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ConsumerData {
    #[serde(deserialize_with = "lenient_string")]
    group_name: String,
    #[serde(deserialize_with = "lenient_string")]
    consume_type: String,
    #[serde(deserialize_with = "lenient_string")]
    message_model: String,
    #[serde(deserialize_with = "lenient_string")]
    consume_from_where: String,
    #[serde(deserialize_with = "null_as_default")]
    subscription_data_set: Vec<SubscriptionData>,
    #[serde(deserialize_with = "lenient_bool")]
    unit_mode: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct HeartbeatData {
    #[serde(
        rename = "clientID",
        alias = "clientId",
        deserialize_with = "lenient_string"
    )]
    client_id: String,
    #[serde(deserialize_with = "null_as_default")]
    producer_data_set: Vec<ProducerData>,
    #[serde(deserialize_with = "null_as_default")]
    consumer_data_set: Vec<ConsumerData>,
    #[serde(deserialize_with = "lenient_i64")]
    heartbeat_fingerprint: i64,
    #[serde(deserialize_with = "lenient_bool")]
    without_sub: bool,
}

/// A string, or any scalar written as text; null = empty.
fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Null => String::new(),
        Value::String(s) => s,
        other => other.to_string(),
    })
}

/// A number, or a number written as a string; null or anything else = 0.
fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .unwrap_or(0),
        Value::String(s) => s.trim().parse().unwrap_or(0),
        _ => 0,
    })
}

/// A boolean, or `"true"`/`"false"`; null or anything else = false.
fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => b,
        Value::String(s) => s.eq_ignore_ascii_case("true"),
        _ => false,
    })
}

impl HeartbeatData {
    fn parse(body: &[u8]) -> Result<HeartbeatData, String> {
        if body.is_empty() {
            return Ok(HeartbeatData::default());
        }
        // The fastjson-tolerant parser (bare integer keys); standard JSON passes unchanged.
        ringmq_engine::meta::json::from_slice(body).map_err(|e| e.to_string())
    }
}

// ---- the registry ---------------------------------------------------------------------

/// One consumer connection of a group.
#[derive(Debug, Clone)]
pub struct ConsumerMember {
    pub client_id: String,
    pub conn_id: u64,
    pub language: String,
    pub version: i32,
    pub last_heartbeat: Instant,
    pub consume_type: String,
    pub message_model: String,
    pub consume_from_where: String,
    pub unit_mode: bool,
    /// topic → subscription.
    pub subscriptions: HashMap<String, SubscriptionData>,
    /// Heartbeat v2 fingerprint of the subscriptions above (0 = v1 client).
    pub fingerprint: i64,
    outbox: UnboundedSender<Outgoing>,
}

/// One producer connection of a group.
#[derive(Debug, Clone)]
pub struct ProducerMember {
    pub client_id: String,
    pub conn_id: u64,
    pub language: String,
    pub version: i32,
    pub last_heartbeat: Instant,
}

#[derive(Debug)]
struct ConsumerGroup {
    /// conn id → member.
    members: HashMap<u64, ConsumerMember>,
    /// The group config's `notifyConsumerIdsChangedEnable`, as of the last heartbeat.
    notify_enabled: bool,
    /// Message model of the last heartbeat (Java keeps it per group).
    message_model: String,
}

#[derive(Debug, Default)]
struct Inner {
    consumers: HashMap<String, ConsumerGroup>,
    /// group → conn id → member.
    producers: HashMap<String, HashMap<u64, ProducerMember>>,
}

/// Who is connected, per consumer and producer group. Thread-safe.
#[derive(Debug, Default)]
pub struct ClientRegistry {
    inner: Mutex<Inner>,
}

/// What one consumer heartbeat registers.
struct ConsumerRegistration<'a> {
    group: &'a str,
    conn: &'a ConnInfo,
    client_id: &'a str,
    language: &'a str,
    version: i32,
    data: ConsumerData,
    fingerprint: i64,
    without_sub: bool,
    notify_enabled: bool,
}

/// The outcome of one consumer registration.
struct Registered {
    /// The member set (or a member's subscribed topics) changed: notify the group.
    changed: bool,
    /// Heartbeat v2: the client must send its subscriptions again (IS_SUB_CHANGE).
    sub_change: bool,
}

impl ClientRegistry {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn register_consumer(&self, r: ConsumerRegistration<'_>) -> Registered {
        let now = Instant::now();
        let mut inner = self.lock();
        let group = inner
            .consumers
            .entry(r.group.to_string())
            .or_insert_with(|| ConsumerGroup {
                members: HashMap::new(),
                notify_enabled: r.notify_enabled,
                message_model: String::new(),
            });
        group.notify_enabled = r.notify_enabled;
        group.message_model = r.data.message_model.clone();
        let previous = group.members.remove(&r.conn.id);
        let v2 = r.fingerprint != 0;
        let sub_change = !v2 || previous.as_ref().map(|p| p.fingerprint) != Some(r.fingerprint);
        let old_topics: Option<BTreeSet<String>> = previous
            .as_ref()
            .map(|p| p.subscriptions.keys().cloned().collect());
        let keep_subs = v2 && r.without_sub;
        let (subscriptions, fingerprint) = match previous {
            Some(p) if keep_subs => (p.subscriptions, p.fingerprint),
            None if keep_subs => (HashMap::new(), 0),
            _ => {
                let subs = r
                    .data
                    .subscription_data_set
                    .into_iter()
                    .filter(|s| !s.topic.is_empty())
                    .map(|s| (s.topic.clone(), s))
                    .collect::<HashMap<_, _>>();
                (subs, r.fingerprint)
            }
        };
        // Java: a new channel, or a subscribed topic added or removed, changes the group.
        let changed = match old_topics {
            None => true,
            Some(old) => {
                old.len() != subscriptions.len() || !subscriptions.keys().all(|t| old.contains(t))
            }
        };
        let member = ConsumerMember {
            client_id: r.client_id.to_string(),
            conn_id: r.conn.id,
            language: r.language.to_string(),
            version: r.version,
            last_heartbeat: now,
            consume_type: r.data.consume_type,
            message_model: r.data.message_model,
            consume_from_where: r.data.consume_from_where,
            unit_mode: r.data.unit_mode,
            subscriptions,
            fingerprint,
            outbox: r.conn.outbox.clone(),
        };
        group.members.insert(r.conn.id, member);
        Registered {
            changed,
            sub_change,
        }
    }

    fn register_producer(
        &self,
        group: &str,
        conn: &ConnInfo,
        client_id: &str,
        language: &str,
        version: i32,
    ) {
        let member = ProducerMember {
            client_id: client_id.to_string(),
            conn_id: conn.id,
            language: language.to_string(),
            version,
            last_heartbeat: Instant::now(),
        };
        self.lock()
            .producers
            .entry(group.to_string())
            .or_default()
            .insert(conn.id, member);
    }

    /// Removes the consumer registration of `conn_id` (and of any other connection of the
    /// same `client_id`) from `group`; returns whether anything was removed.
    fn unregister_consumer(&self, group: &str, conn_id: u64, client_id: &str) -> bool {
        let mut inner = self.lock();
        let Some(g) = inner.consumers.get_mut(group) else {
            return false;
        };
        let before = g.members.len();
        g.members
            .retain(|id, m| *id != conn_id && (client_id.is_empty() || m.client_id != client_id));
        let removed = g.members.len() != before;
        if g.members.is_empty() {
            inner.consumers.remove(group);
        }
        removed
    }

    fn unregister_producer(&self, group: &str, conn_id: u64, client_id: &str) {
        let mut inner = self.lock();
        if let Some(members) = inner.producers.get_mut(group) {
            members.retain(|id, m| {
                *id != conn_id && (client_id.is_empty() || m.client_id != client_id)
            });
            if members.is_empty() {
                inner.producers.remove(group);
            }
        }
    }

    /// Drops members (consumers and producers) not refreshed for 120 s and notifies the
    /// groups that lost consumers.
    pub fn expire_idle(&self) {
        self.expire_older_than(CHANNEL_EXPIRED_TIMEOUT);
    }

    /// Drops members whose last heartbeat is more than `timeout` ago.
    pub fn expire_older_than(&self, timeout: Duration) {
        let now = Instant::now();
        let idle = |t: Instant| now.saturating_duration_since(t) > timeout;
        self.remove_members(
            |m| idle(m.last_heartbeat),
            |p| idle(p.last_heartbeat),
            "expired",
        );
    }

    /// Drops every registration made on connection `conn_id` (the connection closed) and
    /// notifies the groups that lost a consumer.
    pub fn connection_closed(&self, conn_id: u64) {
        self.remove_members(
            |m| m.conn_id == conn_id,
            |p| p.conn_id == conn_id,
            "connection closed",
        );
    }

    fn remove_members(
        &self,
        drop_consumer: impl Fn(&ConsumerMember) -> bool,
        drop_producer: impl Fn(&ProducerMember) -> bool,
        why: &str,
    ) {
        let mut changed = Vec::new();
        {
            let mut inner = self.lock();
            inner.consumers.retain(|name, g| {
                let before = g.members.len();
                g.members.retain(|_, m| {
                    let gone = drop_consumer(m);
                    if gone {
                        tracing::info!(group = %name, client = %m.client_id, conn = m.conn_id, why, "consumer removed");
                    }
                    !gone
                });
                if g.members.len() != before && !g.members.is_empty() {
                    changed.push(name.clone());
                }
                !g.members.is_empty()
            });
            inner.producers.retain(|_, members| {
                members.retain(|_, p| !drop_producer(p));
                !members.is_empty()
            });
        }
        for group in changed {
            self.notify_group_changed(&group);
        }
    }

    /// The subscription of `group` to `topic`: the newest (highest subVersion) announced by
    /// any member. Used by pulls that carry no subscription of their own.
    pub fn subscription(&self, group: &str, topic: &str) -> Option<SubscriptionData> {
        let inner = self.lock();
        inner
            .consumers
            .get(group)?
            .members
            .values()
            .filter_map(|m| m.subscriptions.get(topic))
            .max_by_key(|s| s.sub_version)
            .cloned()
    }

    /// The clientIDs of a consumer group, sorted and without duplicates.
    pub fn consumer_ids(&self, group: &str) -> Vec<String> {
        let inner = self.lock();
        let Some(g) = inner.consumers.get(group) else {
            return Vec::new();
        };
        let ids: BTreeSet<&str> = g.members.values().map(|m| m.client_id.as_str()).collect();
        ids.into_iter().map(str::to_string).collect()
    }

    /// A copy of every member of a consumer group.
    pub fn consumer_members(&self, group: &str) -> Vec<ConsumerMember> {
        let inner = self.lock();
        let mut members: Vec<ConsumerMember> = inner
            .consumers
            .get(group)
            .map(|g| g.members.values().cloned().collect())
            .unwrap_or_default();
        members.sort_by_key(|m| m.conn_id);
        members
    }

    /// The clientIDs of a producer group, sorted and without duplicates.
    pub fn producer_ids(&self, group: &str) -> Vec<String> {
        let inner = self.lock();
        let Some(members) = inner.producers.get(group) else {
            return Vec::new();
        };
        let ids: BTreeSet<&str> = members.values().map(|p| p.client_id.as_str()).collect();
        ids.into_iter().map(str::to_string).collect()
    }

    /// Sends the oneway NOTIFY_CONSUMER_IDS_CHANGED request (header `consumerGroup`) to every
    /// member connection of `group`, unless the group's config disabled notifications or it
    /// consumes in BROADCASTING mode. Members whose connection is gone are skipped.
    pub fn notify_group_changed(&self, group: &str) {
        let outboxes: Vec<UnboundedSender<Outgoing>> = {
            let inner = self.lock();
            let Some(g) = inner.consumers.get(group) else {
                return;
            };
            if !g.notify_enabled || g.message_model == BROADCASTING {
                return;
            }
            g.members.values().map(|m| m.outbox.clone()).collect()
        };
        tracing::debug!(
            group,
            members = outboxes.len(),
            "notifying consumer ids changed"
        );
        for outbox in outboxes {
            let mut cmd = RemotingCommand::request(rq::NOTIFY_CONSUMER_IDS_CHANGED)
                .with_ext("consumerGroup", group);
            cmd.mark_oneway();
            let _ = outbox.send(Outgoing::Command(cmd));
        }
    }
}

// ---- processors -------------------------------------------------------------------------

/// HEART_BEAT (34): registers the producer and consumer groups of the body (§3.5).
pub fn heart_beat(
    b: &Broker,
    conn: &ConnInfo,
    req: &RemotingCommand,
) -> Result<RemotingCommand, FrameError> {
    let data = match HeartbeatData::parse(&req.body) {
        Ok(d) => d,
        Err(e) => {
            return Ok(RemotingCommand::response_to(
                req,
                rs::SYSTEM_ERROR,
                Some(format!("invalid HeartbeatData body: {e}")),
            ))
        }
    };
    let language = req.language.name();
    let v2 = data.heartbeat_fingerprint != 0;
    let mut sub_change = !v2;
    for consumer in data.consumer_data_set {
        let group = consumer.group_name.clone();
        if group.is_empty() {
            continue;
        }
        let config = match b
            .subscription_groups
            .get_or_create(&group, b.cfg.auto_create_subscription_group)
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(group = %group, error = %e, "persisting an auto-created subscription group failed");
                b.subscription_groups.get(&group)
            }
        };
        let Some(config) = config else {
            tracing::warn!(group = %group, client = %data.client_id, "heartbeat from a consumer of an unknown group ignored");
            continue;
        };
        ensure_retry_topic(b, &group, config.retry_queue_nums, consumer.unit_mode);
        let registered = b.clients.register_consumer(ConsumerRegistration {
            group: &group,
            conn,
            client_id: &data.client_id,
            language,
            version: req.version,
            data: consumer,
            fingerprint: data.heartbeat_fingerprint,
            without_sub: data.without_sub,
            notify_enabled: config.notify_consumer_ids_changed_enable,
        });
        sub_change |= registered.sub_change;
        if registered.changed {
            tracing::info!(group = %group, client = %data.client_id, conn = conn.id, peer = %conn.peer, "consumer registered");
            b.clients.notify_group_changed(&group);
        }
    }
    for producer in data.producer_data_set {
        if !producer.group_name.is_empty() {
            b.clients.register_producer(
                &producer.group_name,
                conn,
                &data.client_id,
                language,
                req.version,
            );
        }
    }
    Ok(RemotingCommand::response_to(req, rs::SUCCESS, None)
        .with_ext("IS_SUPPORT_HEART_BEAT_V2", true)
        .with_ext("IS_SUB_CHANGE", sub_change))
}

/// Creates `%RETRY%<group>` if missing: `retry_queue_nums` queues (at least 1), READ|WRITE.
pub(crate) fn ensure_retry_topic(b: &Broker, group: &str, retry_queue_nums: i32, unit_mode: bool) {
    let topic = format!("{RETRY_GROUP_TOPIC_PREFIX}{group}");
    if b.topics.get(&topic).is_some() {
        return;
    }
    if let Err(why) = validate_topic_name(&topic) {
        tracing::warn!(group, why, "cannot create the retry topic of this group");
        return;
    }
    let n = retry_queue_nums.max(1);
    let mut config = TopicConfig::with_queues(topic.as_str(), n, n, PERM_READ | PERM_WRITE);
    if unit_mode {
        config.topic_sys_flag = TOPIC_SYS_FLAG_UNIT_SUB;
    }
    match b.topics.put(config) {
        Ok(_) => tracing::info!(topic = %topic, queues = n, "created retry topic"),
        Err(e) => tracing::error!(topic = %topic, error = %e, "creating the retry topic failed"),
    }
}

/// UNREGISTER_CLIENT (35): header `clientID`, optional `producerGroup` / `consumerGroup`.
pub fn unregister_client(
    b: &Broker,
    conn: &ConnInfo,
    req: &RemotingCommand,
) -> Result<RemotingCommand, FrameError> {
    let client_id = req.ext_str("clientID")?;
    let producer_group = req.ext("producerGroup").filter(|g| !g.is_empty());
    let consumer_group = req.ext("consumerGroup").filter(|g| !g.is_empty());
    if let Some(group) = producer_group {
        b.clients.unregister_producer(group, conn.id, client_id);
    }
    if let Some(group) = consumer_group {
        if b.clients.unregister_consumer(group, conn.id, client_id) {
            tracing::info!(
                group,
                client = client_id,
                conn = conn.id,
                "consumer unregistered"
            );
            b.clients.notify_group_changed(group);
        }
    }
    Ok(RemotingCommand::response_to(req, rs::SUCCESS, None))
}

/// GET_CONSUMER_LIST_BY_GROUP (38): body `{"consumerIdList":[...]}` (§3.7, §6.11).
pub fn get_consumer_list_by_group(
    b: &Broker,
    req: &RemotingCommand,
) -> Result<RemotingCommand, FrameError> {
    let group = req.ext_str("consumerGroup")?;
    let ids = b.clients.consumer_ids(group);
    if ids.is_empty() {
        tracing::warn!(
            group,
            "GET_CONSUMER_LIST_BY_GROUP for a group without consumers"
        );
        return Ok(RemotingCommand::response_to(
            req,
            rs::SYSTEM_ERROR,
            Some(format!("no consumer for this group, {group}")),
        ));
    }
    let body = json!({ "consumerIdList": ids }).to_string();
    Ok(RemotingCommand::response_to(req, rs::SUCCESS, None).with_body(body))
}

#[cfg(test)]
mod tests {

    use ringmq_engine::meta::{PERM_READ, PERM_WRITE};
    use serde_json::Value;
    use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

    use super::*;
    use crate::test_support::{broker, broker_with};

    fn conn(id: u64) -> (ConnInfo, UnboundedReceiver<Outgoing>) {
        let (tx, rx) = unbounded_channel();
        (
            ConnInfo {
                id,
                peer: "127.0.0.1:5555".parse().unwrap(),
                outbox: tx,
            },
            rx,
        )
    }

    /// A Java 5.x push consumer's heartbeat (spec §6.2).
    fn heartbeat_body(client: &str, group: &str, topics: &[&str]) -> String {
        let subs: Vec<Value> = topics
            .iter()
            .map(|t| {
                json!({"classFilterMode":false,"codeSet":[2598919],"expressionType":"TAG","subString":"TagA",
                       "subVersion":1700000000000i64,"tagsSet":["TagA"],"topic":t})
            })
            .collect();
        json!({"clientID":client,"consumerDataSet":[{"consumeFromWhere":"CONSUME_FROM_LAST_OFFSET",
            "consumeType":"CONSUME_PASSIVELY","groupName":group,"messageModel":"CLUSTERING",
            "subscriptionDataSet":subs,"unitMode":false}],
            "heartbeatFingerprint":0,"producerDataSet":[{"groupName":"CLIENT_INNER_PRODUCER"}],"withoutSub":false})
        .to_string()
    }

    fn beat(b: &Broker, c: &ConnInfo, body: String) -> RemotingCommand {
        let req = RemotingCommand::request(rq::HEART_BEAT).with_body(body);
        heart_beat(b, c, &req).unwrap()
    }

    /// The consumer groups NOTIFY_CONSUMER_IDS_CHANGED was sent for, draining the channel.
    fn notified(rx: &mut UnboundedReceiver<Outgoing>) -> Vec<String> {
        let mut groups = Vec::new();
        while let Ok(out) = rx.try_recv() {
            let Outgoing::Command(cmd) = out else {
                panic!("unexpected outgoing sends")
            };
            assert_eq!(cmd.code, rq::NOTIFY_CONSUMER_IDS_CHANGED);
            assert!(cmd.is_oneway() && !cmd.is_response());
            groups.push(cmd.ext_str("consumerGroup").unwrap().to_string());
        }
        groups
    }

    fn consumer_list(b: &Broker, group: &str) -> RemotingCommand {
        let req = RemotingCommand::request(rq::GET_CONSUMER_LIST_BY_GROUP)
            .with_ext("consumerGroup", group);
        get_consumer_list_by_group(b, &req).unwrap()
    }

    fn ids_in(resp: &RemotingCommand) -> Value {
        assert_eq!(resp.code, rs::SUCCESS, "{:?}", resp.remark);
        let body: Value = serde_json::from_slice(&resp.body).unwrap();
        body["consumerIdList"].clone()
    }

    #[test]
    fn heartbeat_registers_and_membership_changes_notify() {
        let (_dir, b) = broker();
        let (c1, mut rx1) = conn(1);
        let (c2, mut rx2) = conn(2);

        let r = beat(
            &b,
            &c1,
            heartbeat_body("10.0.0.5@1", "G1", &["T1", "%RETRY%G1"]),
        );
        assert_eq!(r.code, rs::SUCCESS);
        assert_eq!(r.ext("IS_SUPPORT_HEART_BEAT_V2"), Some("true"));
        assert_eq!(r.ext("IS_SUB_CHANGE"), Some("true"));
        assert!(r.body.is_empty());
        // Group and retry topic auto-created.
        assert!(b.subscription_groups.get("G1").is_some());
        let retry = b.topics.get("%RETRY%G1").expect("retry topic");
        assert_eq!(
            (retry.read_queues, retry.write_queues, retry.perm),
            (1, 1, PERM_READ | PERM_WRITE)
        );
        assert!(
            b.topics.store().get("%RETRY%G1").is_some(),
            "persisted through Topics::put"
        );
        assert_eq!(notified(&mut rx1), ["G1"], "a new member is announced");
        let sub = b.clients.subscription("G1", "T1").unwrap();
        assert_eq!(
            (sub.sub_string.as_str(), sub.expression_type.as_str()),
            ("TagA", "TAG")
        );
        assert_eq!(
            (sub.tags_set.clone(), sub.code_set.clone(), sub.sub_version),
            (vec!["TagA".to_string()], vec![2598919], 1700000000000)
        );
        assert!(b.clients.subscription("G1", "T2").is_none());
        assert!(b.clients.subscription("G2", "T1").is_none());
        assert_eq!(
            b.clients.producer_ids("CLIENT_INNER_PRODUCER"),
            ["10.0.0.5@1"]
        );
        let members = b.clients.consumer_members("G1");
        assert_eq!(members.len(), 1);
        assert_eq!(
            (
                members[0].language.as_str(),
                members[0].message_model.as_str()
            ),
            ("JAVA", "CLUSTERING")
        );
        assert_eq!(members[0].consume_from_where, "CONSUME_FROM_LAST_OFFSET");
        assert_eq!(ids_in(&consumer_list(&b, "G1")), json!(["10.0.0.5@1"]));

        // The same heartbeat again changes nothing: no notification.
        beat(
            &b,
            &c1,
            heartbeat_body("10.0.0.5@1", "G1", &["T1", "%RETRY%G1"]),
        );
        assert!(notified(&mut rx1).is_empty());

        // A second member: everybody is told, the list is sorted.
        beat(
            &b,
            &c2,
            heartbeat_body("10.0.0.4@2", "G1", &["T1", "%RETRY%G1"]),
        );
        assert_eq!(notified(&mut rx1), ["G1"]);
        assert_eq!(notified(&mut rx2), ["G1"]);
        assert_eq!(
            ids_in(&consumer_list(&b, "G1")),
            json!(["10.0.0.4@2", "10.0.0.5@1"])
        );
        assert_eq!(b.clients.consumer_ids("G1"), ["10.0.0.4@2", "10.0.0.5@1"]);

        // A member's subscribed topics change: notify.
        beat(
            &b,
            &c2,
            heartbeat_body("10.0.0.4@2", "G1", &["T1", "T2", "%RETRY%G1"]),
        );
        assert_eq!(notified(&mut rx1), ["G1"]);
        assert_eq!(notified(&mut rx2), ["G1"]);

        // Unregister the second member: the first is told.
        let req = RemotingCommand::request(rq::UNREGISTER_CLIENT)
            .with_ext("clientID", "10.0.0.4@2")
            .with_ext("consumerGroup", "G1")
            .with_ext("producerGroup", "CLIENT_INNER_PRODUCER");
        let r = unregister_client(&b, &c2, &req).unwrap();
        assert_eq!(r.code, rs::SUCCESS);
        assert!(r.ext_fields.is_empty() && r.body.is_empty());
        assert_eq!(notified(&mut rx1), ["G1"]);
        assert!(notified(&mut rx2).is_empty());
        assert_eq!(ids_in(&consumer_list(&b, "G1")), json!(["10.0.0.5@1"]));
        assert_eq!(
            b.clients.producer_ids("CLIENT_INNER_PRODUCER"),
            ["10.0.0.5@1"]
        );
        let missing =
            RemotingCommand::request(rq::UNREGISTER_CLIENT).with_ext("consumerGroup", "G1");
        assert!(unregister_client(&b, &c2, &missing)
            .unwrap_err()
            .to_string()
            .contains("clientID"));

        // The second rejoins, then the first's connection closes: the second is told.
        beat(&b, &c2, heartbeat_body("10.0.0.4@2", "G1", &["T1"]));
        notified(&mut rx1);
        notified(&mut rx2);
        b.clients.connection_closed(1);
        assert_eq!(notified(&mut rx2), ["G1"]);
        assert_eq!(b.clients.consumer_ids("G1"), ["10.0.0.4@2"]);
        assert_eq!(
            b.clients.producer_ids("CLIENT_INNER_PRODUCER"),
            ["10.0.0.4@2"]
        );

        // Idle members expire; the last one leaving empties the group.
        b.clients.expire_idle();
        assert_eq!(
            b.clients.consumer_ids("G1"),
            ["10.0.0.4@2"],
            "fresh members stay"
        );
        std::thread::sleep(Duration::from_millis(5));
        b.clients.expire_older_than(Duration::from_millis(1));
        assert!(b.clients.consumer_ids("G1").is_empty());
        let r = consumer_list(&b, "G1");
        assert_eq!(
            (r.code, r.remark.as_deref()),
            (rs::SYSTEM_ERROR, Some("no consumer for this group, G1"))
        );
        assert!(r.body.is_empty());
        assert!(get_consumer_list_by_group(
            &b,
            &RemotingCommand::request(rq::GET_CONSUMER_LIST_BY_GROUP)
        )
        .is_err());
        b.shutdown().unwrap();
    }

    #[test]
    fn expiry_notifies_the_remaining_members() {
        let (_dir, b) = broker();
        let (c1, mut rx1) = conn(1);
        let (c2, _rx2) = conn(2);
        beat(&b, &c2, heartbeat_body("old", "G1", &["T1"]));
        std::thread::sleep(Duration::from_millis(30));
        beat(&b, &c1, heartbeat_body("fresh", "G1", &["T1"]));
        notified(&mut rx1);
        b.clients.expire_older_than(Duration::from_millis(15));
        assert_eq!(b.clients.consumer_ids("G1"), ["fresh"]);
        assert_eq!(notified(&mut rx1), ["G1"]);
        b.shutdown().unwrap();
    }

    #[test]
    fn heartbeat_v2_fingerprints_and_without_sub() {
        let (_dir, b) = broker();
        let (c1, _rx1) = conn(1);
        let body = |fp: i64, without_sub: bool, subs: Value| {
            json!({"clientID":"c1","heartbeatFingerprint":fp,"withoutSub":without_sub,
                   "consumerDataSet":[{"groupName":"G1","messageModel":"CLUSTERING","subscriptionDataSet":subs}]})
            .to_string()
        };
        let sub = json!([{"topic":"T1","subString":"a || b","subVersion":1}]);
        // Unknown fingerprint, subscriptions withheld: the client must send them.
        assert_eq!(
            beat(&b, &c1, body(42, true, json!(null))).ext("IS_SUB_CHANGE"),
            Some("true")
        );
        assert!(b.clients.subscription("G1", "T1").is_none());
        assert_eq!(
            beat(&b, &c1, body(42, false, sub.clone())).ext("IS_SUB_CHANGE"),
            Some("true")
        );
        assert_eq!(
            b.clients.subscription("G1", "T1").unwrap().sub_string,
            "a || b"
        );
        // Same fingerprint without subscriptions: nothing changed, subscriptions kept.
        let r = beat(&b, &c1, body(42, true, json!([])));
        assert_eq!(
            (r.ext("IS_SUPPORT_HEART_BEAT_V2"), r.ext("IS_SUB_CHANGE")),
            (Some("true"), Some("false"))
        );
        assert_eq!(
            b.clients.subscription("G1", "T1").unwrap().sub_string,
            "a || b"
        );
        // A new fingerprint: changed.
        assert_eq!(
            beat(&b, &c1, body(43, true, json!([]))).ext("IS_SUB_CHANGE"),
            Some("true")
        );
        b.shutdown().unwrap();
    }

    #[test]
    fn tolerant_parsing_and_bad_bodies() {
        let (_dir, b) = broker();
        let (c1, mut rx1) = conn(1);
        // Nulls, unknown properties, numbers as strings, missing fields, 5.x extras.
        let body = r#"{"clientID":"c1","futureField":{"x":1},"producerDataSet":null,
            "consumerDataSet":[{"groupName":"G1","consumeType":null,"messageModel":"CLUSTERING","unitMode":"false",
              "subscriptionDataSet":[{"topic":"T1","subString":"*","tagsSet":null,"codeSet":[],"subVersion":"12",
                "expressionType":null,"filterClassSource":null}]},
              {"groupName":""},{"subscriptionDataSet":[]}],
            "heartbeatFingerprint":null}"#;
        let r = beat(&b, &c1, body.to_string());
        assert_eq!(r.code, rs::SUCCESS, "{:?}", r.remark);
        let sub = b.clients.subscription("G1", "T1").unwrap();
        assert_eq!(
            (sub.sub_string.as_str(), sub.sub_version, sub.tags_set.len()),
            ("*", 12, 0)
        );
        assert_eq!(b.clients.consumer_ids("G1"), ["c1"]);
        assert_eq!(notified(&mut rx1), ["G1"]);

        // An empty body registers nothing; a body that is not JSON is a SYSTEM_ERROR.
        assert_eq!(beat(&b, &c1, String::new()).code, rs::SUCCESS);
        let r = beat(&b, &c1, "{not json".into());
        assert_eq!(r.code, rs::SYSTEM_ERROR);
        assert!(r.remark.unwrap().contains("HeartbeatData"));
        b.shutdown().unwrap();
    }

    #[test]
    fn broadcasting_groups_and_unknown_groups_are_not_notified() {
        let (_dir, b) = broker_with(|c| c.auto_create_subscription_group = false);
        let (c1, mut rx1) = conn(1);
        // No auto-creation: the consumer of an unknown group is ignored, no retry topic.
        assert_eq!(
            beat(&b, &c1, heartbeat_body("c1", "G1", &["T1"])).code,
            rs::SUCCESS
        );
        assert!(b.clients.consumer_ids("G1").is_empty());
        assert!(b.topics.get("%RETRY%G1").is_none());
        assert!(notified(&mut rx1).is_empty());

        b.subscription_groups.get_or_create("GB", true).unwrap();
        let body = heartbeat_body("c1", "GB", &["T1"]).replace("CLUSTERING", "BROADCASTING");
        beat(&b, &c1, body);
        assert_eq!(b.clients.consumer_ids("GB"), ["c1"]);
        assert!(
            notified(&mut rx1).is_empty(),
            "BROADCASTING groups are never notified"
        );
        b.clients.notify_group_changed("GB");
        b.clients.notify_group_changed("nobody");
        assert!(notified(&mut rx1).is_empty());
        b.shutdown().unwrap();
    }
}
