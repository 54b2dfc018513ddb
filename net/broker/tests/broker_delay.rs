//! Delayed delivery end to end: messages sent with `DELAY` wait in SCHEDULE_TOPIC_XXXX and
//! reach their topic no earlier than their level's delay after they were stored, also
//! across broker restarts (delayOffset.json), at least once and never lost.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use ringmq_client::{
    ClientError, Message, MessageQueue, Producer, PullConsumer, PullOptions, PullStatus,
    ReceivedMessage,
};

const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";
/// Short levels so the tests run in seconds; level 18 (the highest) is 2 s.
const LEVELS: &str = "1s 2s 3s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 2s";

fn level_ms(level: i32) -> i64 {
    let token = LEVELS.split(' ').nth(level as usize - 1).unwrap();
    token.trim_end_matches('s').parse::<i64>().unwrap() * 1000
}

fn delayed(body: &str, level: &str) -> Message {
    Message::new(body.to_string())
        .with_tags("TagA")
        .with_property("DELAY", level)
}

/// The record waiting in the schedule queue of `level` at `offset`.
fn scheduled(c: &PullConsumer, level: i32, offset: i64) -> ReceivedMessage {
    let mq = MessageQueue::new(SCHEDULE_TOPIC, "broker-a", level - 1);
    // Long-poll: indexing is asynchronous, the record may not be dispatched yet.
    let r = c
        .pull(&mq, offset, 1, Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(r.status, PullStatus::Found, "nothing at {level}/{offset}");
    r.messages.into_iter().next().unwrap()
}

fn by_body(msgs: &[ReceivedMessage]) -> HashMap<String, Vec<&ReceivedMessage>> {
    let mut map: HashMap<String, Vec<&ReceivedMessage>> = HashMap::new();
    for m in msgs {
        map.entry(String::from_utf8_lossy(&m.body).into_owned())
            .or_default()
            .push(m);
    }
    map
}

#[test]
fn delayed_messages_arrive_after_their_level() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start_with(common::config_with_delay_levels(dir.path(), LEVELS));
    let p = Producer::connect(&broker.addr, "pg").unwrap();
    let mq = MessageQueue::new("Delayed", "broker-a", 0);
    let r1 = p.send_to(&mq, delayed("one", "1")).unwrap();
    let r2 = p.send_to(&mq, delayed("two", "2")).unwrap();
    // Above the highest level: clamped to level 18.
    let r18 = p.send_to(&mq, delayed("clamped", "99")).unwrap();
    p.send_to(&mq, Message::new("now").with_tags("TagA"))
        .unwrap();
    // The answer names the queue the producer chose, not the schedule queue.
    assert_eq!((r1.queue_id, r2.queue_id, r18.queue_id), (0, 0, 0));

    let c = PullConsumer::connect(&broker.addr, "cg").unwrap();
    // Only the undelayed message is in the topic at first.
    let first = c.pull(&mq, 0, 32, Some(Duration::from_secs(5))).unwrap();
    assert_eq!(first.status, PullStatus::Found);
    assert_eq!(first.messages.len(), 1);
    assert_eq!(&first.messages[0].body[..], b"now");

    // Each waits in queue level - 1 of the schedule topic, with its real place recorded.
    let waiting = [
        ("one", 1, scheduled(&c, 1, 0)),
        ("two", 2, scheduled(&c, 2, 0)),
        ("clamped", 18, scheduled(&c, 18, 0)),
    ];
    for (body, level, w) in &waiting {
        assert_eq!(&w.body[..], body.as_bytes());
        assert_eq!(w.property("REAL_TOPIC"), Some("Delayed"));
        assert_eq!(w.property("REAL_QID"), Some("0"));
        assert_eq!(w.property("DELAY"), Some(level.to_string().as_str()));
    }

    // A TAG subscription: the delivered copies carry the tags code of their TAGS again.
    let tagged = PullConsumer::connect_with(
        &broker.addr,
        "cg",
        PullOptions {
            subscription: "TagA".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let got = common::pull_until(&tagged, &mq, 1, Duration::from_secs(20), |g| g.len() >= 3);
    let bodies: Vec<&[u8]> = got.iter().map(|m| &m.body[..]).collect();
    assert_eq!(bodies, [&b"one"[..], b"two", b"clamped"]);
    for (body, level, w) in &waiting {
        let m = got.iter().find(|m| &m.body[..] == body.as_bytes()).unwrap();
        assert!(
            m.store_timestamp >= w.store_timestamp + level_ms(*level),
            "{body}: stored {} in the schedule queue, delivered {}",
            w.store_timestamp,
            m.store_timestamp
        );
        assert_eq!(m.msg_id, w.msg_id, "UNIQ_KEY kept");
        assert_eq!(m.property("DELAY"), None);
        assert_eq!(m.property("WAIT"), Some("false"));
        assert_eq!(m.tags.as_deref(), Some("TagA"));
        assert_eq!((m.topic.as_str(), m.queue_id), ("Delayed", 0));
        assert_eq!(m.born_timestamp, w.born_timestamp);
    }
}

#[test]
fn delays_are_refused_where_rocketmq_refuses_them() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start_with(common::config_with_delay_levels(dir.path(), LEVELS));
    let p = Producer::connect(&broker.addr, "pg").unwrap();
    let mq = MessageQueue::new("Batched", "broker-a", 0);
    let err = p
        .send_batch_to(
            &mq,
            vec![
                Message::new("a"),
                Message::new("b").with_property("DELAY", "1"),
            ],
        )
        .unwrap_err();
    assert!(matches!(err, ClientError::Broker { code: 13, .. }), "{err}");
    // Producers cannot write into the schedule topic themselves.
    let sched = MessageQueue::new(SCHEDULE_TOPIC, "broker-a", 0);
    let err = p.send_to(&sched, Message::new("x")).unwrap_err();
    assert!(matches!(err, ClientError::Broker { code: 16, .. }), "{err}");
    // DELAY=0, negative or not a number: stored at once.
    for level in ["0", "-1", "soon"] {
        let r = p
            .send_to(&mq, Message::new(level).with_property("DELAY", level))
            .unwrap();
        assert_eq!(r.queue_id, 0);
    }
    let c = PullConsumer::connect(&broker.addr, "cg").unwrap();
    let got = common::pull_until(&c, &mq, 0, Duration::from_secs(10), |g| g.len() >= 3);
    assert_eq!(got.len(), 3);
}

#[test]
fn delayed_messages_survive_restarts_at_least_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::config_with_delay_levels(dir.path(), LEVELS);
    let mq = MessageQueue::new("Restart", "broker-a", 0);
    let (waiting_long, sent_at_level_3);
    {
        let mut broker = common::start_with(cfg.clone());
        let p = Producer::connect(&broker.addr, "pg").unwrap();
        p.send_to(&mq, delayed("short", "1")).unwrap();
        p.send_to(&mq, delayed("long", "3")).unwrap();
        let c = PullConsumer::connect(&broker.addr, "cg").unwrap();
        let got = common::pull_until(&c, &mq, 0, Duration::from_secs(10), |g| !g.is_empty());
        assert_eq!(&got[0].body[..], b"short");
        waiting_long = scheduled(&c, 3, 0);
        sent_at_level_3 = waiting_long.store_timestamp;
        // Stop while "long" still waits.
        assert_eq!(c.max_offset(&mq).unwrap(), 1);
        broker.stop();
    }
    let offsets = std::fs::read_to_string(dir.path().join("config/delayOffset.json")).unwrap();
    assert!(offsets.contains("1:1"), "level 1 delivered: {offsets}");
    assert!(!offsets.contains("3:1"), "level 3 still waiting: {offsets}");
    {
        let mut broker = common::start_with(cfg.clone());
        let c = PullConsumer::connect(&broker.addr, "cg").unwrap();
        let got = common::pull_until(&c, &mq, 0, Duration::from_secs(15), |g| g.len() >= 2);
        // Give a duplicate a moment to show up (there must be none after a clean stop).
        std::thread::sleep(Duration::from_millis(300));
        let all = common::pull_until(&c, &mq, 0, Duration::from_secs(5), |g| g.len() >= 2);
        assert_eq!(all.len(), 2, "{got:?}");
        let long = all.iter().find(|m| &m.body[..] == b"long").unwrap();
        assert!(long.store_timestamp >= sent_at_level_3 + level_ms(3));
        assert_eq!(long.msg_id, waiting_long.msg_id);
        broker.stop();
    }
    // A crash after delivering but before the offsets were persisted: the table on disk
    // is behind. Both messages come again: at least once, nothing lost.
    std::fs::write(
        dir.path().join("config/delayOffset.json"),
        "{\"offsetTable\":{1:0,3:0}}",
    )
    .unwrap();
    let broker = common::start_with(cfg);
    let c = PullConsumer::connect(&broker.addr, "cg").unwrap();
    let all = common::pull_until(&c, &mq, 0, Duration::from_secs(15), |g| g.len() >= 4);
    let seen = by_body(&all);
    assert_eq!(seen["short"].len(), 2);
    assert_eq!(seen["long"].len(), 2);
}
