//! HEART_BEAT (34) (spec §3.5): registers the producer and consumer groups of the body,
//! auto-creating a consumer group's subscription config and its retry topic, and tells a
//! group whose members changed.
//!
//! Runs on: the network core of the connection the heartbeat came on.

use super::heartbeat_data::HeartbeatData;
use super::registry::ConsumerRegistration;
use crate::conn::ConnInfo;
use crate::topics::validate_topic_name;
use crate::{groups, validate, Broker};
use ringmq_remoting::codes::response_code as rs;
use ringmq_remoting::command::RemotingCommand;
use ringmq_remoting::error::FrameError;

/// Groups one heartbeat may name, and subscriptions one consumer may announce: what a
/// connection adds to the registry stays bounded (connections are capped too).
pub const MAX_GROUPS_PER_HEARTBEAT: usize = 1024;
pub const MAX_SUBSCRIPTIONS_PER_CONSUMER: usize = 1024;

/// The heartbeat's group names, topic names and sizes, by the broker's rules.
fn check(data: &HeartbeatData) -> Result<(), String> {
    let groups = data.consumer_data_set.len() + data.producer_data_set.len();
    if groups > MAX_GROUPS_PER_HEARTBEAT {
        return Err(format!(
            "heartbeat names {groups} groups, at most {MAX_GROUPS_PER_HEARTBEAT}"
        ));
    }
    let named = (data.consumer_data_set.iter().map(|c| &c.group_name))
        .chain(data.producer_data_set.iter().map(|p| &p.group_name));
    for group in named.filter(|g| !g.is_empty()) {
        validate::group_name(group)?;
    }
    for consumer in &data.consumer_data_set {
        let subs = &consumer.subscription_data_set;
        if subs.len() > MAX_SUBSCRIPTIONS_PER_CONSUMER {
            return Err(format!(
                "consumer group {} subscribes {} topics, at most {MAX_SUBSCRIPTIONS_PER_CONSUMER}",
                consumer.group_name,
                subs.len()
            ));
        }
        for sub in subs {
            validate_topic_name(&sub.topic).map_err(|why| format!("subscription {why}"))?;
        }
    }
    Ok(())
}

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
    // Everything is checked before anything is registered.
    if let Err(why) = check(&data) {
        return Ok(RemotingCommand::response_to(
            req,
            rs::INVALID_PARAMETER,
            Some(why),
        ));
    }
    let language = req.language.name();
    let v2 = data.heartbeat_fingerprint != 0;
    let mut sub_change = !v2;
    for consumer in data.consumer_data_set {
        let group = consumer.group_name.clone();
        if group.is_empty() {
            continue;
        }
        let config = match groups::find_or_create(b, &group) {
            Ok(c) => c,
            Err(_) => {
                tracing::warn!(group = %group, client = %data.client_id, "heartbeat from a consumer of an unknown group ignored");
                continue;
            }
        };
        b.topics
            .ensure_retry_topic(&group, config.retry_queue_nums, consumer.unit_mode);
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
