//! INVOKE_BROKER_TO_RESET_OFFSET (222): moves a group's offsets on a topic to a point in
//! time, commits them on the broker (so a group that is offline finds them when it comes
//! back, as 5.x's server-side reset does) and tells every online member with the oneway
//! RESET_CONSUMER_CLIENT_OFFSET (220), body `ResetOffsetBody`.
//!
//! Java answers CONSUMER_NOT_ONLINE when no member is online and mqadmin then falls back
//! to committing the offsets itself; ringmq has already committed them and answers
//! SUCCESS, so both tools end in the same state.

use super::fastjson::{mq_key, object_key_map};
use super::{error, success};
use crate::conn::Outgoing;
use crate::Broker;
use ringmq_remoting::codes::{request_code as rq, response_code as rs};
use ringmq_remoting::command::RemotingCommand;
use ringmq_remoting::error::FrameError;
use ringmq_remoting::header::admin_ops::ResetOffsetHeader;
use ringmq_remoting::header::RequestHeader;

pub fn invoke_broker_to_reset_offset(
    b: &Broker,
    req: &RemotingCommand,
) -> Result<RemotingCommand, FrameError> {
    let h = ResetOffsetHeader::decode(req)?;
    let (topic, group) = (h.topic, h.group);
    let Some(info) = b.topics.get(topic) else {
        return Ok(error(
            req,
            rs::SYSTEM_ERROR,
            format!("[reset-offset] reset offset failed, no topic in this broker. topic={topic}"),
        ));
    };
    let committed = b.consumer_offsets.query_all(group, topic);
    if committed.is_empty() && b.clients.consumer_members(group).is_empty() {
        return Ok(error(
            req,
            rs::SYSTEM_ERROR,
            format!("THe consumer group <{group}> not exist"),
        ));
    }
    let mut table = Vec::new();
    for qid in 0..info.write_queues.max(info.read_queues) {
        if h.queue_id >= 0 && qid != h.queue_id {
            continue;
        }
        let current = committed.get(&qid).copied().unwrap_or(0);
        let wanted = match h.offset.filter(|_| h.queue_id >= 0) {
            Some(o) => o,
            None if h.timestamp == -1 => b.store.max_offset_in_queue(topic, qid),
            None => match b.store.offset_by_time(topic, qid, h.timestamp, false) {
                Ok(o) => o,
                Err(e) => {
                    return Ok(error(
                        req,
                        rs::SYSTEM_ERROR,
                        format!("cannot search {topic}:{qid} by time: {e}"),
                    ))
                }
            },
        };
        let (min, max) = (
            b.store.min_offset_in_queue(topic, qid),
            b.store.max_offset_in_queue(topic, qid),
        );
        let wanted = wanted.clamp(min, max.max(min));
        let offset = if h.is_force || wanted < current {
            wanted
        } else {
            current
        };
        b.consumer_offsets.commit(group, topic, qid, offset);
        table.push((qid, offset));
    }
    if let Err(e) = b.consumer_offsets.persist() {
        tracing::error!(error = %e, "persisting consumer offsets after a reset failed");
    }
    let body = format!(
        "{{\"offsetTable\":{}}}",
        object_key_map(
            table
                .iter()
                .map(|(q, o)| (mq_key(topic, &b.cfg.broker_name, *q), o.to_string()))
        )
    );
    let outboxes = b.clients.consumer_outboxes(group);
    for outbox in &outboxes {
        let mut cmd = RemotingCommand::request(rq::RESET_CONSUMER_CLIENT_OFFSET)
            .with_ext("topic", topic)
            .with_ext("group", group)
            .with_ext("timestamp", h.timestamp)
            .with_ext("isForce", h.is_force)
            .with_body(body.clone());
        cmd.mark_oneway();
        let _ = outbox.send(Outgoing::Command(cmd));
    }
    tracing::info!(
        topic,
        group,
        timestamp = h.timestamp,
        clients = outboxes.len(),
        "consumer offsets reset by admin request"
    );
    Ok(success(req).with_body(body))
}
