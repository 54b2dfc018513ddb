//! The wedge of issue 11: UPDATE_AND_CREATE_TOPIC with writeQueueNums=2147483647, then
//! SEND_MESSAGE with queueId=70000. Both are refused with a remark naming the field; the
//! broker keeps serving, stops within 5 s and reopens its store with everything stored.

mod common;

use std::time::{Duration, Instant};

use ringmq_client::{Connection, Message, MessageQueue, Producer, PullConsumer, PullStatus};
use ringmq_remoting::codes::{request_code as rq, response_code as rs};
use ringmq_remoting::RemotingCommand;

const T: Duration = Duration::from_secs(5);

fn create_topic(conn: &Connection, topic: &str, read: &str, write: &str) -> RemotingCommand {
    let mut req = RemotingCommand::request(rq::UPDATE_AND_CREATE_TOPIC);
    for (k, v) in [
        ("topic", topic),
        ("defaultTopic", "TBW102"),
        ("readQueueNums", read),
        ("writeQueueNums", write),
        ("perm", "6"),
        ("topicFilterType", "SINGLE_TAG"),
        ("topicSysFlag", "0"),
        ("order", "false"),
    ] {
        req.set_ext(k, v);
    }
    conn.request(req, T).unwrap()
}

fn send(conn: &Connection, topic: &str, queue_id: i32) -> RemotingCommand {
    let mut req = RemotingCommand::request(rq::SEND_MESSAGE);
    req.set_ext("producerGroup", "PG");
    req.set_ext("topic", topic);
    req.set_ext("defaultTopic", "TBW102");
    req.set_ext("defaultTopicQueueNums", 4);
    req.set_ext("queueId", queue_id);
    req.set_ext("sysFlag", 0);
    req.set_ext("bornTimestamp", 1);
    req.set_ext("flag", 0);
    req.set_ext("reconsumeTimes", 0);
    conn.request(req.with_body(b"wedge?".to_vec()), T).unwrap()
}

#[test]
fn the_wedge_is_refused_and_the_broker_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = common::start(dir.path());
    let conn = Connection::connect(&broker.addr).unwrap();

    let r = create_topic(&conn, "Wedge", "8", "2147483647");
    assert_eq!(r.code, rs::INVALID_PARAMETER);
    assert!(r.remark.unwrap().contains("writeQueueNums"));
    let r = create_topic(&conn, "Wedge", "70001", "4");
    assert_eq!(r.code, rs::INVALID_PARAMETER);
    assert!(r.remark.unwrap().contains("readQueueNums"));

    // The topic with a sane count; a send beyond it, or beyond any store, is refused.
    assert_eq!(create_topic(&conn, "Wedge", "4", "4").code, rs::SUCCESS);
    for queue_id in [4, 70_000, i32::MAX] {
        let r = send(&conn, "Wedge", queue_id);
        assert_eq!(r.code, rs::INVALID_PARAMETER, "queueId {queue_id}");
        let remark = r.remark.unwrap();
        assert!(remark.contains("queueId"), "{remark}");
    }
    // An auto-created topic is held to the same bound.
    let r = send(&conn, "WedgeAuto", 70_000);
    assert_eq!(r.code, rs::INVALID_PARAMETER);

    // Still serving: a send and a pull on the same connection and on others.
    assert_eq!(send(&conn, "Wedge", 3).code, rs::SUCCESS);
    let p = Producer::connect(&broker.addr, "pg").unwrap();
    let mq = MessageQueue::new("Wedge", "broker-a", 1);
    assert_eq!(
        p.send_to(&mq, Message::new("after")).unwrap().queue_offset,
        0
    );
    let c = PullConsumer::connect(&broker.addr, "cg").unwrap();
    let got = common::pull_until(&c, &mq, 0, T, |m| !m.is_empty());
    assert_eq!(&got[0].body[..], b"after");
    drop((conn, p, c));

    let started = Instant::now();
    broker.stop();
    assert!(
        started.elapsed() < T,
        "shutdown took {:?}",
        started.elapsed()
    );

    // The store reopens with what was stored.
    let broker = common::start(dir.path());
    let c = PullConsumer::connect(&broker.addr, "cg").unwrap();
    let r = c.pull(&mq, 0, 32, None).unwrap();
    assert_eq!(r.status, PullStatus::Found);
    assert_eq!(&r.messages[0].body[..], b"after");
}

#[test]
fn a_batch_larger_than_max_message_size_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.max_message_size = 64 << 10;
    let broker = common::start_with(cfg);
    let conn = Connection::connect(&broker.addr).unwrap();
    let items: Vec<ringmq_engine::record::BatchItem> = (0..100)
        .map(|_| ringmq_engine::record::BatchItem {
            flag: 0,
            body: vec![b'b'; 1024].into(),
            properties: bytes::Bytes::new(),
        })
        .collect();
    let body = ringmq_engine::record::encode_batch(&items).unwrap();
    let mut req = RemotingCommand::request(rq::SEND_BATCH_MESSAGE);
    for (k, v) in [
        ("a", "PG"),
        ("b", "Batch"),
        ("c", "TBW102"),
        ("d", "4"),
        ("e", "0"),
    ] {
        req.set_ext(k, v);
    }
    let r = conn.request(req.with_body(body.to_vec()), T).unwrap();
    assert_eq!(r.code, rs::MESSAGE_ILLEGAL);
    assert!(r.remark.unwrap().contains("maxMessageSize"));
}
