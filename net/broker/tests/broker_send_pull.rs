//! Send/pull round trips over the wire with both header forms, batches, and the offset
//! queries.

mod common;

use std::time::Duration;

use ringmq_client::Producer;
use ringmq_client::{
    Message, MessageQueue, ProducerOptions, PullConsumer, PullOptions, PullStatus, SendHeader,
    SendStatus,
};
use ringmq_remoting::SerializeType;

fn producer(addr: &str, header: SendHeader, st: SerializeType) -> Producer {
    let opts = ProducerOptions {
        header,
        serialize_type: st,
        ..Default::default()
    };
    Producer::connect_with(addr, "pg", opts).unwrap()
}

fn consumer(addr: &str, st: SerializeType) -> PullConsumer {
    PullConsumer::connect_with(
        addr,
        "cg",
        PullOptions {
            serialize_type: st,
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn round_trips_with_json_and_binary_headers() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start(dir.path());
    let cases = [
        (SendHeader::Short, SerializeType::Json),
        (SendHeader::Long, SerializeType::Json),
        (SendHeader::Short, SerializeType::RocketMq),
        (SendHeader::Long, SerializeType::RocketMq),
    ];
    for (i, (header, st)) in cases.into_iter().enumerate() {
        let topic = format!("RoundTrip{i}");
        let p = producer(&broker.addr, header, st);
        let mut sent = Vec::new();
        for n in 0..20 {
            let msg = Message::new(format!("body-{i}-{n}"))
                .with_tags(format!("tag{}", n % 2))
                .with_keys(format!("key{n}"))
                .with_property("color", "blue");
            let mq = MessageQueue::new(&topic, "broker-a", 0);
            let r = p.send_to(&mq, msg).unwrap();
            assert_eq!(r.status, SendStatus::SendOk);
            assert_eq!(r.queue_offset, n);
            sent.push(r);
        }
        let c = consumer(&broker.addr, st);
        let mq = MessageQueue::new(&topic, "broker-a", 0);
        let mut got = Vec::new();
        let mut offset = 0;
        while got.len() < 20 {
            // Long-poll: indexing is asynchronous, as in RocketMQ.
            let r = c
                .pull(&mq, offset, 32, Some(Duration::from_secs(5)))
                .unwrap();
            assert_eq!(r.status, PullStatus::Found, "case {i}");
            offset = r.next_begin_offset;
            got.extend(r.messages);
        }
        for (n, m) in got.iter().enumerate() {
            assert_eq!(&m.body[..], format!("body-{i}-{n}").as_bytes());
            assert_eq!(
                m.tags.as_deref(),
                Some(if n % 2 == 0 { "tag0" } else { "tag1" })
            );
            assert_eq!(m.keys.as_deref(), Some(format!("key{n}").as_str()));
            assert_eq!(m.property("color"), Some("blue"));
            assert_eq!(m.msg_id, sent[n].msg_id, "UNIQ_KEY survives the trip");
            assert_eq!(m.queue_offset, n as i64);
        }
        // At the end: no new message.
        let end = c.pull(&mq, offset, 32, None).unwrap();
        assert_eq!(end.status, PullStatus::NoNewMessage);
    }
}

#[test]
fn batch_send_stores_consecutive_messages() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start(dir.path());
    let p = producer(&broker.addr, SendHeader::Short, SerializeType::Json);
    let mq = MessageQueue::new("Batch", "broker-a", 1);
    let batch: Vec<Message> = (0..50)
        .map(|n| Message::new(vec![n as u8; 100 + n]).with_keys(format!("b{n}")))
        .collect();
    let r = p.send_batch_to(&mq, batch).unwrap();
    assert_eq!(r.status, SendStatus::SendOk);
    assert_eq!(r.queue_offset, 0);
    assert_eq!(r.offset_msg_id.split(',').count(), 50);
    let c = consumer(&broker.addr, SerializeType::Json);
    let mut offset = 0;
    let mut n = 0;
    while n < 50 {
        // Long-poll: indexing is asynchronous, as in RocketMQ.
        let r = c
            .pull(&mq, offset, 32, Some(Duration::from_secs(5)))
            .unwrap();
        for m in &r.messages {
            assert_eq!(m.body.len(), 100 + n);
            assert_eq!(m.keys.as_deref(), Some(format!("b{n}").as_str()));
            n += 1;
        }
        offset = r.next_begin_offset;
    }
    assert_eq!(c.max_offset(&mq).unwrap(), 50);
}

#[test]
fn offset_queries() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start(dir.path());
    let p = producer(&broker.addr, SendHeader::Short, SerializeType::Json);
    let c = consumer(&broker.addr, SerializeType::Json);
    let mq = MessageQueue::new("Offsets", "broker-a", 2);
    let mut stamps = Vec::new();
    for n in 0..10 {
        p.send_to(&mq, Message::new(format!("m{n}"))).unwrap();
        std::thread::sleep(Duration::from_millis(3));
        let r = c.pull(&mq, n, 1, Some(Duration::from_secs(2))).unwrap();
        stamps.push(r.messages[0].store_timestamp);
    }
    assert_eq!(c.max_offset(&mq).unwrap(), 10);
    assert_eq!(c.min_offset(&mq).unwrap(), 0);
    assert_eq!(c.search_offset(&mq, stamps[4], false).unwrap(), 4);
    assert_eq!(c.search_offset(&mq, stamps[4], true).unwrap(), 4);
    assert_eq!(c.search_offset(&mq, stamps[9] + 10_000, false).unwrap(), 10);
    // RocketMQ answers 0 for a group with no offset while the queue still starts at 0.
    assert_eq!(c.query_offset("cg", &mq).unwrap(), Some(0));
    c.update_offset("cg", &mq, 7).unwrap();
    assert_eq!(c.query_offset("cg", &mq).unwrap(), Some(7));
}
