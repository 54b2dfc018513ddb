//! Retries and dead letters end to end: CONSUMER_SEND_MSG_BACK puts a consumed message
//! into `%RETRY%<group>` after its delay level, counting reconsumes, and into
//! `%DLQ%<group>` once the limit is reached (or when asked to); sends to a `%RETRY%`
//! topic past the limit go to the DLQ as well (the Java client's fallback path).

mod common;

use ringmq_engine::clock::now_millis;
use std::time::Duration;

use ringmq_client::{
    fetch_route, Connection, Message, MessageQueue, Producer, PullConsumer, ReceivedMessage,
};
use ringmq_engine::meta::SubscriptionGroupConfig;
use ringmq_remoting::{request_code, response_code, RemotingCommand};

const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";
/// Every level is one second, so the broker's default retry level (3 + reconsumeTimes)
/// is quick too.
const LEVELS: &str = "1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s";
const T: Duration = Duration::from_secs(5);

fn send_back(conn: &Connection, fields: &[(&str, String)]) -> RemotingCommand {
    let cmd = fields.iter().fold(
        RemotingCommand::request(request_code::CONSUMER_SEND_MSG_BACK),
        |c, (k, v)| c.with_ext(*k, v),
    );
    conn.request(cmd, T).unwrap()
}

/// Send-back of `m` for `group` with a delay level and a retry limit.
fn back(conn: &Connection, m: &ReceivedMessage, group: &str, level: i32, max: i32) {
    let r = send_back(
        conn,
        &[
            ("offset", m.phys_offset.to_string()),
            ("group", group.to_string()),
            ("delayLevel", level.to_string()),
            ("originMsgId", m.msg_id.clone()),
            ("originTopic", m.topic.clone()),
            ("maxReconsumeTimes", max.to_string()),
        ],
    );
    assert_eq!(r.code, response_code::SUCCESS, "{:?}", r.remark);
}

/// Long-polls `mq` from `from` until `n` messages arrived.
fn wait_for(c: &PullConsumer, mq: &MessageQueue, from: i64, n: usize) -> Vec<ReceivedMessage> {
    common::pull_until(c, mq, from, Duration::from_secs(20), |got| got.len() >= n)
}

fn only(c: &PullConsumer, mq: &MessageQueue, offset: i64) -> ReceivedMessage {
    let mut got = wait_for(c, mq, offset, 1);
    assert_eq!(got.len(), 1);
    got.remove(0)
}

#[test]
fn sent_back_messages_retry_then_land_in_the_dlq() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start_with(common::config_with_delay_levels(dir.path(), LEVELS));
    let p = Producer::connect(&broker.addr, "pg").unwrap();
    let orders = MessageQueue::new("Orders", "broker-a", 0);
    p.send_to(
        &orders,
        Message::new("order-1").with_tags("TagA").with_keys("k1"),
    )
    .unwrap();
    let c = PullConsumer::connect(&broker.addr, "cg").unwrap();
    let conn = c.connection();
    let original = only(&c, &orders, 0);
    let retry = MessageQueue::new("%RETRY%cg", "broker-a", 0);
    let dlq = MessageQueue::new("%DLQ%cg", "broker-a", 0);

    // First failure: level 1 requested.
    back(conn, &original, "cg", 1, 2);
    let waiting = only(&c, &MessageQueue::new(SCHEDULE_TOPIC, "broker-a", 0), 0);
    assert_eq!(waiting.property("REAL_TOPIC"), Some("%RETRY%cg"));
    let r1 = only(&c, &retry, 0);
    assert!(r1.store_timestamp >= waiting.store_timestamp + 1000);
    assert_eq!(r1.reconsume_times, 1);
    assert_eq!(&r1.body[..], b"order-1");
    assert_eq!(r1.msg_id, original.msg_id, "UNIQ_KEY kept");
    assert_eq!(r1.property("RETRY_TOPIC"), Some("Orders"));
    assert_eq!(
        r1.property("ORIGIN_MESSAGE_ID"),
        Some(original.offset_msg_id.as_str())
    );
    assert_eq!(
        (r1.tags.as_deref(), r1.keys.as_deref()),
        (Some("TagA"), Some("k1"))
    );
    assert_eq!(r1.property("DELAY"), None);
    assert_eq!(r1.born_timestamp, original.born_timestamp);

    // Second failure, level left to the broker: 3 + reconsumeTimes = 4 (queue 3).
    back(conn, &r1, "cg", 0, 2);
    let sched4 = MessageQueue::new(SCHEDULE_TOPIC, "broker-a", 3);
    // (dispatch into ConsumeQueues is asynchronous: long-poll, don't peek at max offsets)
    let waiting4 = only(&c, &sched4, 0);
    assert_eq!(waiting4.property("REAL_TOPIC"), Some("%RETRY%cg"));
    let r2 = only(&c, &retry, 1);
    assert_eq!(r2.reconsume_times, 2);
    assert_eq!(r2.property("RETRY_TOPIC"), Some("Orders"));
    assert_eq!(
        r2.property("ORIGIN_MESSAGE_ID"),
        Some(original.offset_msg_id.as_str()),
        "the first delivery's id stays"
    );

    // Third failure: reconsumeTimes 2 reached maxReconsumeTimes 2 -> DLQ, at once.
    back(conn, &r2, "cg", 1, 2);
    let d = only(&c, &dlq, 0);
    assert_eq!(d.reconsume_times, 3);
    assert_eq!(&d.body[..], b"order-1");
    assert_eq!(d.property("RETRY_TOPIC"), Some("Orders"));
    assert_eq!(
        d.property("ORIGIN_MESSAGE_ID"),
        Some(original.offset_msg_id.as_str())
    );
    assert_eq!(d.property("DELAY"), Some("0"));
    let route = fetch_route(conn, "%DLQ%cg").unwrap();
    let q = &route.queue_datas[0];
    assert_eq!((q.read_queue_nums, q.write_queue_nums, q.perm), (1, 1, 6));

    // delayLevel -1: straight to the DLQ, whatever the count.
    p.send_to(&orders, Message::new("order-2")).unwrap();
    let second = only(&c, &orders, 1);
    back(conn, &second, "cg", -1, 16);
    let d2 = only(&c, &dlq, 1);
    assert_eq!(&d2.body[..], b"order-2");
    assert_eq!(d2.reconsume_times, 1);
    assert_eq!(c.max_offset(&retry).unwrap(), 2, "nothing more retried");
}

/// A SEND_MESSAGE (code 10, long header names) as the Java client's fallback sends it.
fn send_to_retry(
    conn: &Connection,
    topic: &str,
    body: &str,
    properties: &str,
    reconsume: i32,
    max: i32,
    version: i32,
) -> RemotingCommand {
    let mut cmd = RemotingCommand::request(request_code::SEND_MESSAGE)
        .with_ext("producerGroup", "pg")
        .with_ext("topic", topic)
        .with_ext("defaultTopic", "TBW102")
        .with_ext("defaultTopicQueueNums", 4)
        .with_ext("queueId", 0)
        .with_ext("sysFlag", 0)
        .with_ext("bornTimestamp", now_millis())
        .with_ext("flag", 0)
        .with_ext("properties", properties)
        .with_ext("reconsumeTimes", reconsume)
        .with_ext("maxReconsumeTimes", max)
        .with_body(body.to_string());
    cmd.version = version;
    conn.request(cmd, T).unwrap()
}

#[test]
fn sends_to_a_retry_topic_past_the_limit_go_to_the_dlq() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start_with(common::config_with_delay_levels(dir.path(), LEVELS));
    let c = PullConsumer::connect(&broker.addr, "cg2").unwrap();
    let conn = c.connection();
    let retry = MessageQueue::new("%RETRY%cg2", "broker-a", 0);
    let dlq = MessageQueue::new("%DLQ%cg2", "broker-a", 0);

    // Past the header's limit (version >= 121): DLQ, with DELAY -1 (not delayed).
    let r = send_to_retry(conn, "%RETRY%cg2", "dead", "DELAY\u{1}3\u{2}", 3, 2, 479);
    assert_eq!(r.code, response_code::SUCCESS, "{:?}", r.remark);
    let d = only(&c, &dlq, 0);
    assert_eq!(&d.body[..], b"dead");
    assert_eq!(d.property("DELAY"), Some("-1"));
    assert_eq!(d.reconsume_times, 3);

    // Within the limit: stays a retry, delayed by its level.
    let r = send_to_retry(conn, "%RETRY%cg2", "again", "DELAY\u{1}3\u{2}", 2, 2, 479);
    assert_eq!(r.code, response_code::SUCCESS, "{:?}", r.remark);
    // An old client (version < 121): the header's limit is ignored, the group's 16 holds.
    let r = send_to_retry(conn, "%RETRY%cg2", "old", "", 3, 2, 100);
    assert_eq!(r.code, response_code::SUCCESS, "{:?}", r.remark);
    let got = wait_for(&c, &retry, 0, 2);
    let bodies: Vec<&[u8]> = got.iter().map(|m| &m.body[..]).collect();
    assert_eq!(
        bodies,
        [&b"old"[..], b"again"],
        "the delayed one arrives later"
    );
    assert_eq!(c.max_offset(&dlq).unwrap(), 1);

    // Batches cannot go to a retry topic.
    let p = Producer::connect(&broker.addr, "pg").unwrap();
    let err = p
        .send_batch_to(&retry, vec![Message::new("a"), Message::new("b")])
        .unwrap_err();
    assert!(err.to_string().contains("retry"), "{err}");
}

#[test]
fn send_back_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config_with_delay_levels(dir.path(), LEVELS);
    cfg.auto_create_subscription_group = false;
    let broker = common::start_with(cfg);
    let b = broker.server.as_ref().unwrap().broker().clone();
    let p = Producer::connect(&broker.addr, "pg").unwrap();
    let sent = p
        .send_to(&MessageQueue::new("T", "broker-a", 0), Message::new("m"))
        .unwrap();
    let conn = p.connection();
    let fields = |offset: i64, group: &str| {
        vec![
            ("offset", offset.to_string()),
            ("group", group.to_string()),
            ("delayLevel", "1".to_string()),
        ]
    };
    let phys = i64::from_str_radix(&sent.offset_msg_id[16..], 16).unwrap();

    // Unknown group, and the broker may not create it.
    let r = send_back(conn, &fields(phys, "nobody"));
    assert_eq!(r.code, response_code::SUBSCRIPTION_GROUP_NOT_EXIST);
    let r = send_to_retry(conn, "%RETRY%nobody", "x", "", 0, 16, 479);
    assert_eq!(r.code, response_code::SUBSCRIPTION_GROUP_NOT_EXIST);

    // A known group, but offsets that do not name a message.
    b.subscription_groups
        .put(SubscriptionGroupConfig::new("known"))
        .unwrap();
    for bad in [phys + 1, phys + 4096, 1 << 40, -1] {
        let r = send_back(conn, &fields(bad, "known"));
        assert_eq!(r.code, response_code::SYSTEM_ERROR, "offset {bad}");
        let remark = r.remark.unwrap_or_default();
        assert!(
            remark.starts_with("look message by offset failed"),
            "{remark}"
        );
    }
    // The real offset works.
    let r = send_back(conn, &fields(phys, "known"));
    assert_eq!(r.code, response_code::SUCCESS, "{:?}", r.remark);
}
