//! GET_CONSUME_STATS (208) and GET_CONSUMER_CONNECTION_LIST (203).

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::fastjson::{mq_key, object_key_map};
use super::topic::store_time_at;
use super::{error, success};
use crate::clients::SubscriptionData;
use crate::Broker;
use ringmq_engine::meta::TOPIC_GROUP_SEPARATOR;
use ringmq_remoting::codes::response_code as rs;
use ringmq_remoting::command::RemotingCommand;
use ringmq_remoting::error::FrameError;
use ringmq_remoting::header::admin_ops::ConsumerGroupHeader;
use ringmq_remoting::header::RequestHeader;

/// GET_CONSUME_STATS (208): `ConsumeStats`, per read queue of each topic the group
/// consumes (the header's, else every topic it committed offsets for or subscribes to)
/// the broker offset (max), the committed offset (0 if none), and the store time of the
/// last consumed message. Lag = brokerOffset - consumerOffset.
pub fn get_consume_stats(b: &Broker, req: &RemotingCommand) -> Result<RemotingCommand, FrameError> {
    let h = ConsumerGroupHeader::decode(req)?;
    let group = h.consumer_group;
    let topics: BTreeSet<String> = match h.topic {
        Some(t) => BTreeSet::from([t.to_string()]),
        None => topics_of_group(b, group),
    };
    let broker_name = &b.cfg.broker_name;
    let mut entries = Vec::new();
    for topic in &topics {
        let Some(info) = b.topics.get(topic) else {
            continue;
        };
        let committed = b.consumer_offsets.query_all(group, topic);
        for qid in 0..info.read_queues {
            let broker_offset = b.store.max_offset_in_queue(topic, qid).max(0);
            let consumer_offset = committed.get(&qid).copied().unwrap_or(0).max(0);
            let last = if consumer_offset > 0 {
                store_time_at(b, topic, qid, consumer_offset - 1)
            } else {
                0
            };
            let value = json!({
                "brokerOffset": broker_offset,
                "consumerOffset": consumer_offset,
                "lastTimestamp": last,
                "pullOffset": consumer_offset,
            });
            entries.push((mq_key(topic, broker_name, qid), value.to_string()));
        }
    }
    // consumeTps: ringmq keeps no per-group rate history yet; 0.0 as a broker without
    // stats would report.
    let body = format!(
        "{{\"consumeTps\":0.0,\"offsetTable\":{}}}",
        object_key_map(entries)
    );
    Ok(success(req).with_body(body))
}

/// Topics `group` committed offsets for or its online members subscribe to.
fn topics_of_group(b: &Broker, group: &str) -> BTreeSet<String> {
    let mut topics: BTreeSet<String> = b
        .consumer_offsets
        .snapshot()
        .offset_table
        .keys()
        .filter_map(|k| k.rsplit_once(TOPIC_GROUP_SEPARATOR))
        .filter(|(_, g)| *g == group)
        .map(|(t, _)| t.to_string())
        .collect();
    for m in b.clients.consumer_members(group) {
        topics.extend(m.subscriptions.keys().cloned());
    }
    topics
}

/// GET_CONSUMER_CONNECTION_LIST (203): `ConsumerConnection` of an online group, else
/// CONSUMER_NOT_ONLINE.
pub fn get_consumer_connection_list(
    b: &Broker,
    req: &RemotingCommand,
) -> Result<RemotingCommand, FrameError> {
    let group = ConsumerGroupHeader::decode(req)?.consumer_group;
    let members = b.clients.consumer_members(group);
    let Some(first) = members.first() else {
        return Ok(error(
            req,
            rs::CONSUMER_NOT_ONLINE,
            format!("the consumer group[{group}] not online"),
        ));
    };
    let connections: Vec<Value> = members
        .iter()
        .map(|m| {
            json!({
                "clientAddr": m.addr.to_string(),
                "clientId": m.client_id,
                "language": m.language,
                "version": m.version,
            })
        })
        .collect();
    let mut subs = serde_json::Map::new();
    for m in &members {
        for (topic, s) in &m.subscriptions {
            let newer = subs
                .get(topic)
                .and_then(|v: &Value| v["subVersion"].as_i64())
                .is_none_or(|v| s.sub_version > v);
            if newer {
                subs.insert(topic.clone(), subscription_json(s));
            }
        }
    }
    let body = json!({
        "connectionSet": connections,
        "consumeFromWhere": first.consume_from_where,
        "consumeType": first.consume_type,
        "messageModel": first.message_model,
        "subscriptionTable": subs,
    });
    Ok(success(req).with_body(body.to_string()))
}

/// Java's `SubscriptionData` fields.
fn subscription_json(s: &SubscriptionData) -> Value {
    json!({
        "classFilterMode": s.class_filter_mode,
        "codeSet": s.code_set,
        "expressionType": if s.expression_type.is_empty() { "TAG" } else { &s.expression_type },
        "subString": s.sub_string,
        "subVersion": s.sub_version,
        "tagsSet": s.tags_set,
        "topic": s.topic,
    })
}
