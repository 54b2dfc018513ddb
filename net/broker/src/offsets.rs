//! Consumer offsets and queue offset queries: QUERY_CONSUMER_OFFSET (14),
//! UPDATE_CONSUMER_OFFSET (15), GET_MAX_OFFSET (30), GET_MIN_OFFSET (31) and
//! SEARCH_OFFSET_BY_TIMESTAMP (29) (spec §3.3, §3.4, §3.10).
//!
//! Every offset here is a ConsumeQueue offset (a message index), never a CommitLog byte
//! offset. Committed offsets live in memory in the `ConsumerOffsetStore` and are written to
//! `consumerOffset.json` by the broker's housekeeping every few seconds.

use std::sync::OnceLock;

use super::{validate, Broker};
use ringmq_remoting::codes::response_code as rs;
use ringmq_remoting::command::RemotingCommand;
use ringmq_remoting::error::FrameError;
use ringmq_remoting::header::{
    BoundaryType, GetMaxOffsetHeader, GetMinOffsetHeader, QueryConsumerOffsetHeader, RequestHeader,
    SearchOffsetHeader, UpdateConsumerOffsetHeader,
};

/// RocketMQ's `accessMessageInMemoryMaxRatio`: a message whose CommitLog position is within
/// this share of physical memory from the log's end counts as "in memory".
const ACCESS_MESSAGE_IN_MEMORY_MAX_RATIO: u64 = 40;

fn success_with_offset(req: &RemotingCommand, offset: i64) -> RemotingCommand {
    RemotingCommand::response_to(req, rs::SUCCESS, None).with_ext("offset", offset)
}

/// QUERY_CONSUMER_OFFSET (14): the committed offset of (`consumerGroup`, `topic`,
/// `queueId`). Without one: QUERY_NOT_FOUND if `setZeroIfNotFound` is explicitly false;
/// 0 if the queue still starts at offset 0 and that message is still in memory (a group
/// consuming a young queue for the first time); QUERY_NOT_FOUND otherwise.
pub fn query_consumer_offset(
    b: &Broker,
    req: &RemotingCommand,
) -> Result<RemotingCommand, FrameError> {
    let h = QueryConsumerOffsetHeader::decode(req)?;
    let (group, topic, queue_id) = (h.consumer_group, h.topic, h.queue_id);
    if let Some(offset) = b
        .consumer_offsets
        .query(group, topic, queue_id)
        .filter(|o| *o >= 0)
    {
        return Ok(success_with_offset(req, offset));
    }
    if h.set_zero_if_not_found == Some(false) {
        return Ok(RemotingCommand::response_to(
            req,
            rs::QUERY_NOT_FOUND,
            Some("Not found, do not set to zero, maybe this group boot first".into()),
        ));
    }
    if b.store.min_offset_in_queue(topic, queue_id) <= 0
        && first_message_in_memory(b, topic, queue_id)
    {
        return Ok(success_with_offset(req, 0));
    }
    Ok(RemotingCommand::response_to(
        req,
        rs::QUERY_NOT_FOUND,
        Some("Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first".into()),
    ))
}

/// Whether queue offset 0 exists and its message lies within the in-memory window at the
/// end of the CommitLog (Java's `checkInMemByConsumeOffset(topic, queueId, 0, 1)`).
fn first_message_in_memory(b: &Broker, topic: &str, queue_id: i32) -> bool {
    let Some(cq) = b.store.consume_queues().get(topic, queue_id) else {
        return false;
    };
    let Ok(Some(entry)) = cq.get(0) else {
        return false;
    };
    let behind = b
        .store
        .commitlog()
        .max_offset()
        .saturating_sub(entry.phys_offset)
        .max(0) as u64;
    behind <= in_memory_window()
}

/// `totalPhysicalMemory * accessMessageInMemoryMaxRatio / 100`, in bytes.
fn in_memory_window() -> u64 {
    static WINDOW: OnceLock<u64> = OnceLock::new();
    *WINDOW.get_or_init(|| {
        // SAFETY: sysconf only reads system configuration values.
        let (pages, page_size) = unsafe {
            (
                libc::sysconf(libc::_SC_PHYS_PAGES),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        let total = if pages > 0 && page_size > 0 {
            pages as u64 * page_size as u64
        } else {
            8 << 30
        };
        total / 100 * ACCESS_MESSAGE_IN_MEMORY_MAX_RATIO
    })
}

/// UPDATE_CONSUMER_OFFSET (15): records `commitOffset` (the next offset to consume) for
/// (`consumerGroup`, `topic`, `queueId`). Usually sent oneway; the response is then dropped.
pub fn update_consumer_offset(
    b: &Broker,
    req: &RemotingCommand,
) -> Result<RemotingCommand, FrameError> {
    let h = UpdateConsumerOffsetHeader::decode(req)?;
    let (group, topic) = (h.consumer_group, h.topic);
    if b.subscription_groups.get(group).is_none() {
        return Ok(RemotingCommand::response_to(
            req,
            rs::SUBSCRIPTION_GROUP_NOT_EXIST,
            Some(format!("Group {group} not exist!")),
        ));
    }
    let Some(info) = b.topics.get(topic) else {
        return Ok(RemotingCommand::response_to(
            req,
            rs::TOPIC_NOT_EXIST,
            Some(format!("Topic {topic} not exist!")),
        ));
    };
    let Some(queue_id) = h.queue_id else {
        return Ok(RemotingCommand::response_to(
            req,
            rs::INVALID_PARAMETER,
            Some(format!("QueueId is null, topic is {topic}")),
        ));
    };
    let Some(offset) = h.commit_offset else {
        return Ok(RemotingCommand::response_to(
            req,
            rs::INVALID_PARAMETER,
            Some(format!("Offset is null, topic is {topic}")),
        ));
    };
    let checked = validate::queue_id(topic, &info, queue_id)
        .and_then(|()| validate::offset("commitOffset", offset));
    if let Err(why) = checked {
        return Ok(RemotingCommand::response_to(
            req,
            rs::INVALID_PARAMETER,
            Some(why),
        ));
    }
    b.consumer_offsets.commit(group, topic, queue_id, offset);
    Ok(RemotingCommand::response_to(req, rs::SUCCESS, None))
}

/// GET_MAX_OFFSET (30): the offset the next message of the queue will get (0 for an unknown
/// queue). `committed` (5.x) is accepted; every dispatched entry counts as committed here.
pub fn get_max_offset(b: &Broker, req: &RemotingCommand) -> Result<RemotingCommand, FrameError> {
    let h = GetMaxOffsetHeader::decode(req)?;
    Ok(success_with_offset(
        req,
        b.store.max_offset_in_queue(h.topic, h.queue_id),
    ))
}

/// GET_MIN_OFFSET (31): the offset of the oldest entry still stored (0 for an empty or
/// unknown queue).
pub fn get_min_offset(b: &Broker, req: &RemotingCommand) -> Result<RemotingCommand, FrameError> {
    let h = GetMinOffsetHeader::decode(req)?;
    Ok(success_with_offset(
        req,
        b.store.min_offset_in_queue(h.topic, h.queue_id),
    ))
}

/// SEARCH_OFFSET_BY_TIMESTAMP (29): by store time; `boundaryType` LOWER (default) gives
/// the first offset stored at or after `timestamp` (the max offset if all are older), UPPER
/// the last stored at or before it. Anything but `upper` (any case) means LOWER, as in Java.
pub fn search_offset_by_timestamp(
    b: &Broker,
    req: &RemotingCommand,
) -> Result<RemotingCommand, FrameError> {
    let h = SearchOffsetHeader::decode(req)?;
    let (topic, queue_id, timestamp) = (h.topic, h.queue_id, h.timestamp);
    let upper = h.boundary_type == BoundaryType::Upper;
    match b.store.offset_by_time(topic, queue_id, timestamp, upper) {
        Ok(offset) => Ok(success_with_offset(req, offset)),
        Err(e) => {
            tracing::warn!(topic, queue_id, timestamp, error = %e, "search offset by timestamp failed");
            Ok(RemotingCommand::response_to(
                req,
                rs::SYSTEM_ERROR,
                Some(format!("search offset by timestamp failed: {e}")),
            ))
        }
    }
}

#[cfg(test)]
mod tests {

    use std::time::Duration;

    use ringmq_engine::commitlog::PutStatus;
    use ringmq_engine::meta::{TopicConfig, PERM_READ, PERM_WRITE};
    use ringmq_engine::record::MessageToStore;

    use super::*;
    use crate::test_support::{broker, request};
    use ringmq_remoting::codes::request_code as rq;

    fn put(b: &Broker, topic: &str, queue_id: i32) {
        let o = b.store.put_blocking(vec![MessageToStore::new(
            topic,
            queue_id,
            &b"hello"[..],
            &b""[..],
        )]);
        assert_eq!(o.status, PutStatus::Ok);
        assert!(b
            .store
            .wait_dispatched(o.end_offset, Duration::from_secs(5)));
    }

    use ringmq_engine::clock::now_millis as now_ms;

    fn offset_of(resp: &RemotingCommand) -> i64 {
        assert_eq!(resp.code, rs::SUCCESS, "{:?}", resp.remark);
        assert!(resp.is_response());
        resp.ext_i64("offset").unwrap()
    }

    fn query(b: &Broker, extra: &[(&str, &str)]) -> RemotingCommand {
        let mut fields = vec![("consumerGroup", "G1"), ("topic", "T1"), ("queueId", "0")];
        fields.extend_from_slice(extra);
        query_consumer_offset(b, &request(rq::QUERY_CONSUMER_OFFSET, &fields)).unwrap()
    }

    #[test]
    fn query_not_found_then_zero_then_committed() {
        let (_dir, b) = broker();
        b.topics
            .put(TopicConfig::with_queues("T1", 4, 4, PERM_READ | PERM_WRITE))
            .unwrap();

        // Nothing committed, queue empty: no offset 0 to start from.
        let r = query(&b, &[]);
        assert_eq!(r.code, rs::QUERY_NOT_FOUND);
        assert_eq!(
            r.remark.as_deref(),
            Some("Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first")
        );
        assert!(r.ext("offset").is_none());

        // The queue starts at 0 and that message is in memory: SUCCESS with 0 ...
        put(&b, "T1", 0);
        assert_eq!(offset_of(&query(&b, &[])), 0);
        assert_eq!(offset_of(&query(&b, &[("setZeroIfNotFound", "true")])), 0);
        // ... unless the client asked not to.
        let r = query(&b, &[("setZeroIfNotFound", "false")]);
        assert_eq!(r.code, rs::QUERY_NOT_FOUND);
        assert!(r.remark.unwrap().contains("do not set to zero"));

        // UPDATE validation, then the committed offset wins.
        let update = |fields: &[(&str, &str)]| {
            update_consumer_offset(&b, &request(rq::UPDATE_CONSUMER_OFFSET, fields)).unwrap()
        };
        let full = [
            ("consumerGroup", "G1"),
            ("topic", "T1"),
            ("queueId", "0"),
            ("commitOffset", "17"),
        ];
        assert_eq!(update(&full).code, rs::SUBSCRIPTION_GROUP_NOT_EXIST);
        b.subscription_groups.get_or_create("G1", true).unwrap();
        let r = update(&[
            ("consumerGroup", "G1"),
            ("topic", "Nope"),
            ("queueId", "0"),
            ("commitOffset", "17"),
        ]);
        assert_eq!(
            (r.code, r.remark.as_deref()),
            (rs::TOPIC_NOT_EXIST, Some("Topic Nope not exist!"))
        );
        assert_eq!(update(&full[..3]).code, rs::INVALID_PARAMETER);
        assert_eq!(
            update(&[full[0], full[1], full[3]]).code,
            rs::INVALID_PARAMETER
        );
        for (field, bad) in [
            ("queueId", "4"),
            ("queueId", "70000"),
            ("queueId", "-1"),
            ("commitOffset", "-5"),
        ] {
            let mut fields = full.to_vec();
            fields.retain(|(k, _)| *k != field);
            fields.push((field, bad));
            let r = update(&fields);
            assert_eq!(r.code, rs::INVALID_PARAMETER, "{field}={bad}");
            assert!(r.remark.unwrap().contains(field), "{field}={bad}");
        }
        let r = update(&full);
        assert_eq!(r.code, rs::SUCCESS);
        assert!(r.ext_fields.is_empty() && r.body.is_empty());
        assert_eq!(offset_of(&query(&b, &[])), 17);
        assert_eq!(offset_of(&query(&b, &[("setZeroIfNotFound", "false")])), 17);
        assert_eq!(b.consumer_offsets.query("G1", "T1", 0), Some(17));

        // Header errors name the field.
        let err =
            query_consumer_offset(&b, &request(rq::QUERY_CONSUMER_OFFSET, &[("topic", "T1")]))
                .unwrap_err();
        assert!(err.to_string().contains("consumerGroup"), "{err}");
        let err = update_consumer_offset(
            &b,
            &request(
                rq::UPDATE_CONSUMER_OFFSET,
                &[
                    ("consumerGroup", "G1"),
                    ("topic", "T1"),
                    ("queueId", "x"),
                    ("commitOffset", "1"),
                ],
            ),
        )
        .unwrap_err();
        assert!(err.to_string().contains("queueId"), "{err}");
        b.shutdown().unwrap();
    }

    #[test]
    fn max_min_and_search_by_time() {
        let (_dir, b) = broker();
        b.topics
            .put(TopicConfig::with_queues("T1", 2, 2, PERM_READ | PERM_WRITE))
            .unwrap();
        let q = |code: i32, fields: &[(&str, &str)]| {
            let req = request(code, fields);
            match code {
                rq::GET_MAX_OFFSET => get_max_offset(&b, &req),
                rq::GET_MIN_OFFSET => get_min_offset(&b, &req),
                _ => search_offset_by_timestamp(&b, &req),
            }
        };
        let t0 = [("topic", "T1"), ("queueId", "0")];
        assert_eq!(offset_of(&q(rq::GET_MAX_OFFSET, &t0).unwrap()), 0);
        assert_eq!(offset_of(&q(rq::GET_MIN_OFFSET, &t0).unwrap()), 0);

        put(&b, "T1", 0);
        std::thread::sleep(Duration::from_millis(20));
        let mid = now_ms().to_string();
        std::thread::sleep(Duration::from_millis(20));
        put(&b, "T1", 0);
        put(&b, "T1", 0);
        put(&b, "T1", 1);

        assert_eq!(offset_of(&q(rq::GET_MAX_OFFSET, &t0).unwrap()), 3);
        assert_eq!(
            offset_of(&q(rq::GET_MAX_OFFSET, &[t0[0], t0[1], ("committed", "false")]).unwrap()),
            3
        );
        assert_eq!(offset_of(&q(rq::GET_MIN_OFFSET, &t0).unwrap()), 0);
        assert_eq!(
            offset_of(&q(rq::GET_MAX_OFFSET, &[("topic", "T1"), ("queueId", "1")]).unwrap()),
            1
        );
        assert_eq!(
            offset_of(
                &q(
                    rq::GET_MAX_OFFSET,
                    &[("topic", "Unknown"), ("queueId", "0")]
                )
                .unwrap()
            ),
            0
        );
        assert!(q(rq::GET_MAX_OFFSET, &[("topic", "T1")])
            .unwrap_err()
            .to_string()
            .contains("queueId"));

        let search = |ts: &str, boundary: Option<&str>| {
            let mut f = vec![t0[0], t0[1], ("timestamp", ts)];
            if let Some(bt) = boundary {
                f.push(("boundaryType", bt));
            }
            offset_of(&q(rq::SEARCH_OFFSET_BY_TIMESTAMP, &f).unwrap())
        };
        let far = (now_ms() + 3_600_000).to_string();
        assert_eq!(search(&mid, None), 1, "LOWER: first stored at or after");
        assert_eq!(search(&mid, Some("lower")), 1);
        assert_eq!(
            search(&mid, Some("UPPER")),
            0,
            "UPPER: last stored at or before"
        );
        assert_eq!(search(&mid, Some("uPpEr")), 0);
        assert_eq!(search("0", None), 0);
        assert_eq!(search(&far, None), 3, "all older: max offset");
        assert_eq!(search(&far, Some("upper")), 2);
        assert_eq!(search("0", Some("upper")), 0);
        assert!(q(rq::SEARCH_OFFSET_BY_TIMESTAMP, &t0)
            .unwrap_err()
            .to_string()
            .contains("timestamp"));
        b.shutdown().unwrap();
    }
}
