//! [`ClientRegistry`]: who is connected, per consumer and producer group. Per consumer
//! group, one member per connection (a Java client uses one connection per broker address;
//! RocketMQ keys members by channel the same way): its clientID, language, last heartbeat,
//! message model, consume-from-where and the subscriptions it announced, plus a clone of the
//! connection's outbox so the broker can push to it (`notify`). Producer groups are kept
//! the same way, without subscriptions.
//!
//! This file owns the table and the changes a request makes to it (register, unregister)
//! and the look-ups; dropping idle or closed members is `expiry`, telling a group it
//! changed is `notify`.
//!
//! Runs on: the network cores (heartbeats, unregister, pulls asking for a subscription)
//! and the broker's housekeeping thread (expiry), behind one mutex.

use ringmq_engine::sync::lock;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;

use super::heartbeat_data::{ConsumerData, SubscriptionData};
use crate::conn::{ConnInfo, Outgoing};

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
    /// The connection's remote address (`clientAddr` in admin answers).
    pub addr: std::net::SocketAddr,
    pub(super) outbox: UnboundedSender<Outgoing>,
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
pub(super) struct ConsumerGroup {
    /// conn id → member.
    pub(super) members: HashMap<u64, ConsumerMember>,
    /// The group config's `notifyConsumerIdsChangedEnable`, as of the last heartbeat.
    pub(super) notify_enabled: bool,
    /// Message model of the last heartbeat (Java keeps it per group).
    pub(super) message_model: String,
}

#[derive(Debug, Default)]
pub(super) struct Inner {
    pub(super) consumers: HashMap<String, ConsumerGroup>,
    /// group → conn id → member.
    pub(super) producers: HashMap<String, HashMap<u64, ProducerMember>>,
}

/// Who is connected, per consumer and producer group. Thread-safe.
#[derive(Debug, Default)]
pub struct ClientRegistry {
    inner: Mutex<Inner>,
}

/// What one consumer heartbeat registers.
pub(super) struct ConsumerRegistration<'a> {
    pub(super) group: &'a str,
    pub(super) conn: &'a ConnInfo,
    pub(super) client_id: &'a str,
    pub(super) language: &'a str,
    pub(super) version: i32,
    pub(super) data: ConsumerData,
    pub(super) fingerprint: i64,
    pub(super) without_sub: bool,
    pub(super) notify_enabled: bool,
}

/// The outcome of one consumer registration.
pub(super) struct Registered {
    /// The member set (or a member's subscribed topics) changed: notify the group.
    pub(super) changed: bool,
    /// Heartbeat v2: the client must send its subscriptions again (IS_SUB_CHANGE).
    pub(super) sub_change: bool,
}

impl ClientRegistry {
    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    pub(super) fn register_consumer(&self, r: ConsumerRegistration<'_>) -> Registered {
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
            addr: r.conn.peer,
            outbox: r.conn.outbox.clone(),
        };
        group.members.insert(r.conn.id, member);
        Registered {
            changed,
            sub_change,
        }
    }

    pub(super) fn register_producer(
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
    pub(super) fn unregister_consumer(&self, group: &str, conn_id: u64, client_id: &str) -> bool {
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

    pub(super) fn unregister_producer(&self, group: &str, conn_id: u64, client_id: &str) {
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
}
