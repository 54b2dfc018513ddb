//! DELETE_TOPIC_IN_BROKER (215) and GET_TOPIC_STATS_INFO (202).

use std::time::Duration;

use serde_json::json;

use super::fastjson::{mq_key, object_key_map};
use super::{error, success};
use crate::admin::is_system_topic;
use crate::topics::validate_topic_name;
use crate::Broker;
use ringmq_engine::record::peek_store_timestamp;
use ringmq_remoting::codes::response_code as rs;
use ringmq_remoting::command::RemotingCommand;
use ringmq_remoting::error::FrameError;
use ringmq_remoting::header::admin_ops::TopicHeader;
use ringmq_remoting::header::RequestHeader;

/// How long a deletion waits for the dispatcher to index records already stored.
const DISPATCH_WAIT: Duration = Duration::from_secs(1);

/// DELETE_TOPIC_IN_BROKER (215): forgets the topic's config, then deletes its
/// ConsumeQueues (files included) and every group's offsets on it, while the broker runs.
/// The CommitLog keeps the records until retention removes them, as in RocketMQ.
///
/// Order matters: with the config gone no new send finds the topic (unless auto-creation
/// makes it again, as in Java); waiting for the dispatcher to pass the log's end then
/// means no record of the topic is left to re-create a queue after the files go.
pub fn delete_topic_in_broker(
    b: &Broker,
    req: &RemotingCommand,
) -> Result<RemotingCommand, FrameError> {
    let topic = TopicHeader::decode(req)?.topic;
    if let Err(why) = validate_topic_name(topic) {
        return Ok(error(req, rs::INVALID_PARAMETER, why));
    }
    if is_system_topic(topic) {
        return Ok(error(
            req,
            rs::INVALID_PARAMETER,
            format!("The topic[{topic}] is conflict with system topic."),
        ));
    }
    if let Err(e) = b.topics.store().remove_and_persist(topic) {
        return Ok(error(
            req,
            rs::SYSTEM_ERROR,
            format!("cannot delete topic {topic}: {e}"),
        ));
    }
    b.topics.reload_cache();
    let end = b.store.commitlog().max_offset();
    if !b.store.wait_dispatched(end, DISPATCH_WAIT) {
        tracing::warn!(
            topic,
            end,
            "deleting a topic before the dispatcher caught up"
        );
    }
    let queues = match b.store.delete_topic_queues(topic) {
        Ok(n) => n,
        Err(e) => {
            return Ok(error(
                req,
                rs::SYSTEM_ERROR,
                format!("cannot delete the consume queues of {topic}: {e}"),
            ))
        }
    };
    b.consumer_offsets.remove_topic(topic);
    b.metrics.pull_offsets.remove_topic(topic);
    if let Err(e) = b.consumer_offsets.persist() {
        tracing::error!(error = %e, "persisting consumer offsets after a topic deletion failed");
    }
    tracing::info!(topic, queues, "topic deleted by admin request");
    Ok(success(req))
}

/// GET_TOPIC_STATS_INFO (202): `TopicStatsTable`, per write queue its min and max offset
/// and the store time of its last message (0 when empty).
pub fn get_topic_stats_info(
    b: &Broker,
    req: &RemotingCommand,
) -> Result<RemotingCommand, FrameError> {
    let topic = TopicHeader::decode(req)?.topic;
    let Some(info) = b.topics.get(topic) else {
        return Ok(error(
            req,
            rs::TOPIC_NOT_EXIST,
            format!("topic[{topic}] not exist"),
        ));
    };
    let broker_name = &b.cfg.broker_name;
    let entries = (0..info.write_queues.max(info.read_queues)).map(|qid| {
        let min = b.store.min_offset_in_queue(topic, qid);
        let max = b.store.max_offset_in_queue(topic, qid);
        let last = if max > 0 {
            store_time_at(b, topic, qid, max - 1)
        } else {
            0
        };
        let value = json!({"lastUpdateTimestamp": last, "maxOffset": max, "minOffset": min});
        (mq_key(topic, broker_name, qid), value.to_string())
    });
    let body = format!("{{\"offsetTable\":{}}}", object_key_map(entries));
    Ok(success(req).with_body(body))
}

/// Store time of the message at `queue_offset` of a queue, 0 if it cannot be read.
pub(super) fn store_time_at(b: &Broker, topic: &str, queue_id: i32, queue_offset: i64) -> i64 {
    let Some(cq) = b.store.consume_queues().get(topic, queue_id) else {
        return 0;
    };
    let Ok(Some(entry)) = cq.get(queue_offset) else {
        return 0;
    };
    b.store
        .commitlog()
        .with_bytes(
            entry.phys_offset,
            entry.size.max(0) as usize,
            peek_store_timestamp,
        )
        .ok()
        .flatten()
        .unwrap_or(0)
}
