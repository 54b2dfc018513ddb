//! A push consumer's subscriptions and the HEART_BEAT body that announces them
//! (`HeartbeatData`, spec §6.2). Clustering consumers also subscribe to their group's
//! retry topic `%RETRY%<group>` with `*`, as RocketMQ clients do, so messages handed back
//! after a failure come round again.

use ringmq_record::tags_hash;
use serde_json::json;

use super::options::{MessageModel, PushConsumerOptions};
use crate::consumer::Filter;

/// One subscribed topic.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub topic: String,
    pub filter: Filter,
    /// When the subscription was made (ms); heartbeats carry it.
    pub sub_version: i64,
}

/// The retry topic of a consumer group.
pub fn retry_topic(group: &str) -> String {
    format!("%RETRY%{group}")
}

/// The subscriptions the consumer announces and rebalances: the application's, plus the
/// retry topic for clustering groups.
pub fn with_retry_topic(
    opts: &PushConsumerOptions,
    mut subs: Vec<Subscription>,
) -> Vec<Subscription> {
    let retry = retry_topic(&opts.group);
    if opts.message_model == MessageModel::Clustering && !subs.iter().any(|s| s.topic == retry) {
        let sub_version = subs.first().map_or(0, |s| s.sub_version);
        subs.push(Subscription {
            topic: retry,
            filter: Filter::all(),
            sub_version,
        });
    }
    subs
}

/// The HEART_BEAT body announcing this consumer.
pub fn heartbeat_body(opts: &PushConsumerOptions, subs: &[Subscription]) -> Vec<u8> {
    let subscriptions: Vec<_> = subs
        .iter()
        .map(|s| {
            let tags = s.filter.tags.clone().unwrap_or_default();
            let codes: Vec<i32> = tags.iter().map(|t| tags_hash(t)).collect();
            json!({
                "classFilterMode": false,
                "topic": s.topic,
                "subString": s.filter.expression,
                "tagsSet": tags,
                "codeSet": codes,
                "subVersion": s.sub_version,
                "expressionType": s.filter.expression_type,
            })
        })
        .collect();
    json!({
        "clientID": opts.client_id,
        "producerDataSet": [],
        "consumerDataSet": [{
            "groupName": opts.group,
            "consumeType": "CONSUME_PASSIVELY",
            "messageModel": opts.message_model.wire_name(),
            "consumeFromWhere": opts.consume_from.wire_name(),
            "subscriptionDataSet": subscriptions,
            "unitMode": false,
        }],
    })
    .to_string()
    .into_bytes()
}
