//! The one set of rules a request field meets before it reaches the store or a metadata
//! table: queue counts of a topic, queue ids against their topic, group names, offsets.
//! Topic names follow `topics::validate_topic_name`. Each rule answers `Err(remark)`
//! naming the field; the processor picks Apache RocketMQ's response code for it.
//!
//! The engine refuses what it could not index anyway (a queue id above
//! [`MAX_QUEUE_ID`]); these rules keep such requests from getting that far and give the
//! client a clear answer instead of a failed append.
//!
//! Runs on: the network core of the request.

use ringmq_engine::consumequeue::MAX_QUEUE_ID;
use ringmq_engine::record::{RETRY_TOPIC_MAX_LEN, RETRY_TOPIC_PREFIX};

use super::topics::TopicInfo;

/// The most queues a topic may have: a ConsumeQueue store holds ids `0..=MAX_QUEUE_ID`.
pub const QUEUE_NUMS_LIMIT: i32 = MAX_QUEUE_ID + 1;

/// `readQueueNums` / `writeQueueNums` of a topic: each in `0..=max` (0 closes that side,
/// as RocketMQ operators do to drain a topic), not both 0.
pub fn queue_nums(read: i32, write: i32, max: i32) -> Result<(), String> {
    debug_assert!((1..=QUEUE_NUMS_LIMIT).contains(&max));
    for (field, n) in [("readQueueNums", read), ("writeQueueNums", write)] {
        if !(0..=max).contains(&n) {
            return Err(format!(
                "{field} {n} is illegal: a topic has 0..={max} queues (maxTopicQueueNums)"
            ));
        }
    }
    if read == 0 && write == 0 {
        return Err("readQueueNums and writeQueueNums are both 0".into());
    }
    Ok(())
}

/// A queue id a request names for `topic`: `0..max(read, write)` (RocketMQ's msgCheck
/// bound; pulls check the narrower read side themselves).
pub fn queue_id(topic: &str, info: &TopicInfo, queue_id: i32) -> Result<(), String> {
    let queues = info.read_queues.max(info.write_queues);
    if !(0..queues).contains(&queue_id) {
        return Err(format!(
            "queueId[{queue_id}] is illegal, topic:[{topic}] has {queues} queues"
        ));
    }
    Ok(())
}

/// A consumer or producer group name: RocketMQ's charset `[%|a-zA-Z0-9_-]`, non-empty,
/// and short enough that its `%RETRY%` topic is a legal topic name.
pub fn group_name(group: &str) -> Result<(), String> {
    if group.is_empty() {
        return Err("group name is blank".into());
    }
    let max = RETRY_TOPIC_MAX_LEN - RETRY_TOPIC_PREFIX.len();
    if group.len() > max {
        return Err(format!(
            "group name of {} characters is longer than {max}",
            group.len()
        ));
    }
    if !group
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'%' | b'|' | b'_' | b'-'))
    {
        return Err(format!(
            "group {group:?} contains characters other than [%|a-zA-Z0-9_-]"
        ));
    }
    Ok(())
}

/// An offset a client asks the broker to store: never negative.
pub fn offset(field: &str, value: i64) -> Result<(), String> {
    if value < 0 {
        return Err(format!("{field} {value} is negative"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_counts_stay_within_what_the_store_holds() {
        assert!(queue_nums(8, 8, 1024).is_ok());
        assert!(queue_nums(0, 4, 1024).is_ok(), "a drained side is allowed");
        assert!(queue_nums(0, 0, 1024).is_err());
        let err = queue_nums(4, i32::MAX, 1024).unwrap_err();
        assert!(err.contains("writeQueueNums"), "{err}");
        assert!(queue_nums(-1, 4, 1024)
            .unwrap_err()
            .contains("readQueueNums"));
        assert!(queue_nums(QUEUE_NUMS_LIMIT, 1, QUEUE_NUMS_LIMIT).is_ok());
    }

    #[test]
    fn queue_ids_stay_within_their_topic() {
        let info = TopicInfo {
            read_queues: 4,
            write_queues: 2,
            perm: 6,
            sys_flag: 0,
        };
        assert!(queue_id("T", &info, 3).is_ok());
        for bad in [-1, 4, 70_000, i32::MAX] {
            assert!(queue_id("T", &info, bad).unwrap_err().contains("queueId"));
        }
    }

    #[test]
    fn group_names_follow_rocketmq_rules() {
        assert!(group_name("CID_orders-1|%").is_ok());
        assert!(group_name("").is_err());
        assert!(group_name("a b").is_err());
        assert!(group_name("a@b").is_err(), "'@' would split offset keys");
        assert!(group_name(&"g".repeat(248)).is_ok());
        assert!(group_name(&"g".repeat(249)).is_err());
        assert!(offset("commitOffset", -1).is_err());
        assert!(offset("commitOffset", 0).is_ok());
    }
}
