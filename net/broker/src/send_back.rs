//! CONSUMER_SEND_MSG_BACK (36): a consumer hands back a message it failed to consume
//! (spec §3.11, Java `AbstractSendMessageProcessor.consumerSendMsgBack`).
//!
//! The header names the message by its CommitLog physical offset. The broker reads that
//! record and stores a copy for another try: to `%RETRY%<group>` after a delay (the
//! requested level, or `3 + reconsumeTimes` when the consumer left it to the broker), so
//! the copy first waits in `SCHEDULE_TOPIC_XXXX` and the schedule service moves it on; or,
//! once the message was retried `maxReconsumeTimes` times (or the consumer asks with a
//! negative level), straight to the dead-letter queue `%DLQ%<group>`. The copy keeps body,
//! flag, sysFlag, born time and host and the properties, counts one more reconsume, and
//! records where it came from (`RETRY_TOPIC`, `ORIGIN_MESSAGE_ID`).
//!
//! The processor runs on a network thread: the append is queued to the writer and the
//! answer awaited on a oneshot channel fed by the append's completion. The copy is stored
//! like a send (`put`): under SYNC_FLUSH it is durable, under SYNC_MASTER on a slave,
//! before SUCCESS; otherwise the answer names the put status (FLUSH_DISK_TIMEOUT,
//! FLUSH_SLAVE_TIMEOUT, SLAVE_NOT_AVAILABLE). It carries `WAIT=false`, as in RocketMQ,
//! which only concerns the schedule service's later re-put.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use ringmq_engine::commitlog::{AppendOutcome, PutStatus};
use ringmq_engine::meta::{SubscriptionGroupConfig, TopicConfig, PERM_READ, PERM_WRITE};
use ringmq_engine::record::{
    self, keys, MessageToStore, Parsed, DLQ_TOPIC_PREFIX, RETRY_TOPIC_PREFIX,
};
use ringmq_ha::ReplicaOutcome;

use super::put::put_like_send;
use super::topics::validate_topic_name;
use super::{groups, Broker};
use ringmq_engine::delay_levels;
use ringmq_engine::record::edit_properties;
use ringmq_remoting::codes::{response_code as rs, version};
use ringmq_remoting::command::RemotingCommand;
use ringmq_remoting::error::FrameError;
use ringmq_remoting::header::{RequestHeader, SendBackHeader};

/// Queues of a dead-letter topic (Java's `DLQ_NUMS_PER_GROUP`).
pub const DLQ_NUMS_PER_GROUP: i32 = 1;

pub async fn consumer_send_msg_back(
    b: &Arc<Broker>,
    req: &RemotingCommand,
) -> Result<RemotingCommand, FrameError> {
    let h = SendBackHeader::decode(req)?;
    let msg = match prepare(b, req, &h) {
        Ok(Some(m)) => m,
        Ok(None) => return Ok(RemotingCommand::response_to(req, rs::SUCCESS, None)),
        Err(refused) => return Ok(refused),
    };
    let dlq = msg.topic.starts_with(DLQ_TOPIC_PREFIX);
    // Stored like a send: durable under SYNC_FLUSH and on a slave under SYNC_MASTER
    // before SUCCESS (the copy's own WAIT=false only concerns its later re-put).
    let (tx, rx) = tokio::sync::oneshot::channel();
    put_like_send(
        b,
        vec![msg],
        true,
        Box::new(move |outcome, replica| {
            let _ = tx.send((outcome, replica));
        }),
    );
    let (outcome, replica) = rx.await.unwrap_or_else(|_| {
        let dropped = PutStatus::ServiceNotAvailable("the append was dropped".into());
        (
            AppendOutcome::rejected(dropped),
            ReplicaOutcome::NotRequired,
        )
    });
    Ok(answer(b, req, &h, dlq, &outcome, replica))
}

/// The response for the store's outcome: SUCCESS only for PUT_OK, else SYSTEM_ERROR
/// naming RocketMQ's put status.
fn answer(
    b: &Broker,
    req: &RemotingCommand,
    h: &SendBackHeader,
    dlq: bool,
    outcome: &AppendOutcome,
    replica: ReplicaOutcome,
) -> RemotingCommand {
    let status = match (&outcome.status, replica) {
        (PutStatus::Ok, ReplicaOutcome::Timeout) => "FLUSH_SLAVE_TIMEOUT",
        (PutStatus::Ok, ReplicaOutcome::NotAvailable) => "SLAVE_NOT_AVAILABLE",
        (PutStatus::Ok, _) => {
            b.stats.msgs_put.fetch_add(1, Ordering::Relaxed);
            if dlq {
                b.metrics.dlq.add(h.group, || h.group.to_string(), 1, 0);
                tracing::info!(
                    group = %h.group,
                    origin_topic = ?h.origin_topic,
                    origin_msg_id = ?h.origin_msg_id,
                    offset = h.offset,
                    "message sent back to the DLQ"
                );
            }
            return RemotingCommand::response_to(req, rs::SUCCESS, None);
        }
        (PutStatus::FlushDiskTimeout, _) => "FLUSH_DISK_TIMEOUT",
        (PutStatus::MessageIllegal(_), _) => "MESSAGE_ILLEGAL",
        (PutStatus::DiskFull | PutStatus::ServiceNotAvailable(_), _) => "SERVICE_NOT_AVAILABLE",
    };
    b.stats.put_errors.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(group = %h.group, offset = h.offset, status = ?outcome.status, "send-back not stored");
    RemotingCommand::response_to(req, rs::SYSTEM_ERROR, Some(status.to_string()))
}

fn refuse(req: &RemotingCommand, code: i32, remark: impl Into<String>) -> RemotingCommand {
    RemotingCommand::response_to(req, code, Some(remark.into()))
}

/// Java's `findSubscriptionGroupConfig`: the group's config, auto-created when the broker
/// allows it (`autoCreateSubscriptionGroup`) and the name is a valid group name.
pub(crate) fn find_group(b: &Broker, group: &str) -> Option<SubscriptionGroupConfig> {
    groups::find_or_create(b, group).ok()
}

/// Creates `%DLQ%<group>` if missing (one queue, READ|WRITE, as Java's
/// `createTopicInSendMessageBackMethod`) and returns its name.
pub(crate) fn ensure_dlq_topic(b: &Broker, group: &str) -> Result<String, String> {
    let topic = format!("{DLQ_TOPIC_PREFIX}{group}");
    if b.topics.get(&topic).is_some() {
        return Ok(topic);
    }
    validate_topic_name(&topic)?;
    let config = TopicConfig::with_queues(
        topic.as_str(),
        DLQ_NUMS_PER_GROUP,
        DLQ_NUMS_PER_GROUP,
        PERM_READ | PERM_WRITE,
    );
    match b.topics.put(config) {
        Ok(_) => {
            tracing::info!(topic = %topic, "created dead-letter topic");
            Ok(topic)
        }
        Err(e) => Err(format!("topic[{topic}] not exist: {e}")),
    }
}

static NEXT_RETRY_QUEUE: AtomicU32 = AtomicU32::new(0);

/// Checks the request and builds the copy to store. `Ok(None)`: nothing to do (the group
/// keeps no retry queues). `Err`: the refusal to answer.
fn prepare(
    b: &Broker,
    req: &RemotingCommand,
    h: &SendBackHeader,
) -> Result<Option<MessageToStore>, RemotingCommand> {
    if !b.cfg.broker_role.is_master() {
        return Err(refuse(
            req,
            rs::NO_PERMISSION,
            format!(
                "the broker[{}] sending message is forbidden: it is a SLAVE; send back to the master",
                b.cfg.broker_ip
            ),
        ));
    }
    let group = groups::find_or_create(b, h.group).map_err(|r| refuse(req, r.code, r.remark))?;
    if b.is_stopping() {
        return Err(refuse(req, rs::SYSTEM_ERROR, "SERVICE_NOT_AVAILABLE"));
    }
    if group.retry_queue_nums <= 0 {
        return Ok(None);
    }
    b.topics
        .ensure_retry_topic(h.group, group.retry_queue_nums, h.unit_mode);
    let retry_topic = format!("{RETRY_TOPIC_PREFIX}{}", h.group);
    let Some(info) = b.topics.get(&retry_topic) else {
        return Err(refuse(
            req,
            rs::SYSTEM_ERROR,
            format!("topic[{retry_topic}] not exist"),
        ));
    };
    if !info.writable() {
        return Err(refuse(
            req,
            rs::NO_PERMISSION,
            format!("the topic[{retry_topic}] sending message is forbidden"),
        ));
    }
    let bytes = b.store.read_message_at(h.offset).map_err(|e| {
        refuse(
            req,
            rs::SYSTEM_ERROR,
            format!("look message by offset failed, {}: {e}", h.offset),
        )
    })?;
    let view = match record::parse(&bytes, h.offset, false) {
        Ok(Parsed::Record(v)) => v,
        _ => {
            return Err(refuse(
                req,
                rs::SYSTEM_ERROR,
                format!("look message by offset failed, {}", h.offset),
            ))
        }
    };

    let mut limit = group.retry_max_times;
    if req.version >= version::V3_4_9 {
        limit = h.max_reconsume_times.unwrap_or(limit);
    }
    let reconsumed = view.reconsume_times();
    let to_dlq = reconsumed >= limit || h.delay_level < 0;
    let (topic, queue_id, level) = if to_dlq {
        let dlq = ensure_dlq_topic(b, h.group).map_err(|why| refuse(req, rs::SYSTEM_ERROR, why))?;
        (dlq, 0, 0)
    } else {
        let queues = group.retry_queue_nums.min(info.write_queues).max(1) as u32;
        let queue_id = (NEXT_RETRY_QUEUE.fetch_add(1, Ordering::Relaxed) % queues) as i32;
        let level = if h.delay_level == 0 {
            3i32.saturating_add(reconsumed)
        } else {
            h.delay_level
        };
        (retry_topic, queue_id, level)
    };

    let origin_id = match view.property(keys::ORIGIN_MESSAGE_ID) {
        Some(id) if !id.trim().is_empty() => id.to_owned(),
        _ => view.offset_msg_id(),
    };
    let level_text = level.to_string();
    let mut add: Vec<(&str, &str)> = vec![
        (keys::WAIT, "false"),
        (keys::DELAY, &level_text),
        (keys::ORIGIN_MESSAGE_ID, &origin_id),
    ];
    if view.property(keys::RETRY_TOPIC).is_none() {
        add.push((keys::RETRY_TOPIC, view.topic()));
    }
    let mut msg = MessageToStore {
        topic,
        queue_id,
        flag: view.flag(),
        sys_flag: view.sys_flag(),
        born_timestamp: view.born_timestamp(),
        born_host: view.born_host(),
        reconsume_times: reconsumed.saturating_add(1),
        prepared_transaction_offset: 0,
        body: Bytes::copy_from_slice(view.body()),
        body_crc: view.body_crc(),
        properties: edit_properties(view.properties(), &[], &add),
    };
    if level > 0 && delay_levels::delay_applies(msg.sys_flag) {
        delay_levels::to_schedule_topic(&mut msg, level, b.store.delay_levels());
    }
    Ok(Some(msg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{broker_with, request};
    use ringmq_engine::delay_levels::SCHEDULE_TOPIC;
    use ringmq_engine::meta::SubscriptionGroupConfig;
    use ringmq_engine::record::encode_properties;
    use ringmq_remoting::codes::request_code as rq;

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio_uring::start(f)
    }

    fn send_back(b: &Arc<Broker>, fields: &[(&str, &str)]) -> RemotingCommand {
        let req = request(rq::CONSUMER_SEND_MSG_BACK, fields);
        run(consumer_send_msg_back(b, &req)).unwrap_or_else(|e| crate::conn::header_error(&req, &e))
    }

    fn stored_at(b: &Broker, topic: &str, qid: i32, offset: i64) -> Bytes {
        let r = b
            .store
            .get_messages(topic, qid, offset, 1, 1 << 20, None)
            .unwrap();
        r.messages[0].clone()
    }

    #[test]
    fn refusals() {
        let (_dir, b) = broker_with(|c| c.auto_create_subscription_group = false);
        let o = b.store.put_blocking(vec![MessageToStore::new(
            "T",
            0,
            &b"x"[..],
            encode_properties([("TAGS", "a")]),
        )]);
        let phys = o.appended[0].phys_offset.to_string();
        let r = send_back(
            &b,
            &[("offset", &phys), ("group", "G"), ("delayLevel", "1")],
        );
        assert_eq!(r.code, rs::SUBSCRIPTION_GROUP_NOT_EXIST, "{:?}", r.remark);
        b.subscription_groups
            .put(SubscriptionGroupConfig::new("G"))
            .unwrap();
        for bad in ["1", "999999999", "-5"] {
            let r = send_back(&b, &[("offset", bad), ("group", "G"), ("delayLevel", "1")]);
            assert_eq!(r.code, rs::SYSTEM_ERROR, "{bad}");
            assert!(
                r.remark
                    .as_deref()
                    .unwrap()
                    .starts_with("look message by offset failed"),
                "{:?}",
                r.remark
            );
        }
        // A missing required field is a header error.
        let r = send_back(&b, &[("group", "G"), ("delayLevel", "1")]);
        assert_eq!(r.code, rs::SYSTEM_ERROR);
        let mut none = SubscriptionGroupConfig::new("NoRetry");
        none.retry_queue_nums = 0;
        b.subscription_groups.put(none).unwrap();
        let r = send_back(
            &b,
            &[("offset", &phys), ("group", "NoRetry"), ("delayLevel", "1")],
        );
        assert_eq!(r.code, rs::SUCCESS);
        assert!(b.topics.get("%RETRY%NoRetry").is_none(), "nothing done");
        b.shutdown().unwrap();
    }

    #[test]
    fn slave_refuses() {
        let (_dir, b) = broker_with(|c| {
            c.broker_role = crate::BrokerRole::Slave;
            c.broker_id = 1;
        });
        let r = send_back(&b, &[("offset", "0"), ("group", "G"), ("delayLevel", "1")]);
        assert_eq!(r.code, rs::NO_PERMISSION);
        b.shutdown().unwrap();
    }

    #[test]
    fn retry_copy_waits_in_the_schedule_topic_and_dlq_copy_does_not() {
        let (_dir, b) = broker_with(|_| {});
        let props = encode_properties([("TAGS", "a"), ("UNIQ_KEY", "U1")]);
        let mut orig = MessageToStore::new("T", 0, &b"payload"[..], props);
        orig.reconsume_times = 1;
        orig.flag = 3;
        let o = b.store.put_blocking(vec![orig]);
        let phys = o.appended[0].phys_offset;
        let offset_id = record::offset_msg_id(&b.cfg.broker_addr(), phys);
        let p = phys.to_string();

        // delayLevel 0: the broker picks 3 + reconsumeTimes = level 4, queue 3.
        let r = send_back(&b, &[("offset", &p), ("group", "G"), ("delayLevel", "0")]);
        assert_eq!(r.code, rs::SUCCESS, "{:?}", r.remark);
        assert!(b.topics.get("%RETRY%G").is_some());
        let end = b.store.commitlog().max_offset();
        assert!(b
            .store
            .wait_dispatched(end, std::time::Duration::from_secs(5)));
        assert_eq!(b.store.max_offset_in_queue(SCHEDULE_TOPIC, 3), 1);
        let rec = stored_at(&b, SCHEDULE_TOPIC, 3, 0);
        let Parsed::Record(v) = record::parse(&rec, 0, true).unwrap() else {
            panic!()
        };
        assert_eq!(v.reconsume_times(), 2);
        assert_eq!((v.flag(), v.body()), (3, &b"payload"[..]));
        assert_eq!(v.property(keys::DELAY), Some("4"));
        assert_eq!(v.property(keys::REAL_TOPIC), Some("%RETRY%G"));
        assert_eq!(v.property(keys::REAL_QID), Some("0"));
        assert_eq!(v.property(keys::RETRY_TOPIC), Some("T"));
        assert_eq!(v.property(keys::WAIT), Some("false"));
        assert_eq!(v.property(keys::UNIQ_KEY), Some("U1"));
        assert_eq!(
            v.property(keys::ORIGIN_MESSAGE_ID),
            Some(offset_id.as_str())
        );

        // Past the header's limit (version >= 121): DLQ, not delayed.
        let r = send_back(
            &b,
            &[
                ("offset", &p),
                ("group", "G"),
                ("delayLevel", "2"),
                ("maxReconsumeTimes", "1"),
            ],
        );
        assert_eq!(r.code, rs::SUCCESS, "{:?}", r.remark);
        let dlq = b.topics.get("%DLQ%G").unwrap();
        assert_eq!((dlq.read_queues, dlq.write_queues), (1, 1));
        assert_eq!(dlq.perm, PERM_READ | PERM_WRITE);
        let end = b.store.commitlog().max_offset();
        assert!(b
            .store
            .wait_dispatched(end, std::time::Duration::from_secs(5)));
        let rec = stored_at(&b, "%DLQ%G", 0, 0);
        let Parsed::Record(v) = record::parse(&rec, 0, true).unwrap() else {
            panic!()
        };
        assert_eq!(v.reconsume_times(), 2);
        assert_eq!(v.property(keys::DELAY), Some("0"));
        assert_eq!(v.property(keys::REAL_TOPIC), None);
        b.shutdown().unwrap();
    }
}
