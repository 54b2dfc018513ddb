//! Producer and pull-consumer tests against the fake server: both send
//! header forms (short/JSON and long/binary), batches, bounded async sends,
//! pull statuses and decoding of concatenated stored records.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ringmq_record::{
    decode_batch, decode_properties, encode_properties, MessageToStore, StoreFields,
};

use super::test_server::FakeServer;
use super::*;
use crate::sync::lock;
use ringmq_remoting::codes::{request_code, response_code, SerializeType};
use ringmq_remoting::command::RemotingCommand;

const ROUTE: &str = r#"{"brokerDatas":[{"brokerAddrs":{0:"10.9.9.9:10911"},"brokerName":"b1","cluster":"C","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[{"brokerName":"b1","perm":6,"readQueueNums":3,"topicSysFlag":0,"writeQueueNums":3}]}"#;

/// A fake broker answering route, send and batch requests; every request is
/// also forwarded to `seen`.
fn send_server(seen: mpsc::Sender<RemotingCommand>) -> FakeServer {
    let offset = Arc::new(AtomicUsize::new(100));
    FakeServer::start(move |req, out| {
        let resp = match req.code {
            request_code::GET_ROUTEINFO_BY_TOPIC => match req.ext("topic") {
                Some("T") => RemotingCommand::response_to(&req, 0, None).with_body(ROUTE),
                _ => RemotingCommand::response_to(&req, response_code::TOPIC_NOT_EXIST, None),
            },
            request_code::SEND_MESSAGE
            | request_code::SEND_MESSAGE_V2
            | request_code::SEND_BATCH_MESSAGE => {
                let q = req.ext_any(&["e", "queueId"]).unwrap().to_owned();
                let topic = req.ext_any(&["b", "topic"]).unwrap();
                let code = if topic == "Busy" {
                    response_code::SYSTEM_BUSY
                } else if topic == "Slow" {
                    response_code::FLUSH_DISK_TIMEOUT
                } else {
                    0
                };
                let o = offset.fetch_add(1, Ordering::SeqCst);
                let mut r = RemotingCommand::response_to(&req, code, None);
                if code == response_code::SYSTEM_BUSY {
                    r.remark = Some("[REJECTREQUEST]system busy".into());
                } else {
                    r.set_ext("msgId", "0A090909000027AF0000000000000000");
                    r.set_ext("queueId", q);
                    r.set_ext("queueOffset", o);
                }
                r
            }
            _ => {
                RemotingCommand::response_to(&req, response_code::REQUEST_CODE_NOT_SUPPORTED, None)
            }
        };
        // Report before answering, so the test sees it once it has the answer.
        let _ = seen.send(req);
        out.send(resp);
    })
}

fn props_of(s: &str) -> Vec<(String, String)> {
    decode_properties(s.as_bytes())
}

fn prop<'a>(p: &'a [(String, String)], k: &str) -> Option<&'a str> {
    p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

#[test]
fn send_short_json_header_round_robin() {
    let (tx, rx) = mpsc::channel();
    let server = send_server(tx);
    let p = Producer::connect(&server.addr().to_string(), "PG").unwrap();
    let mut queues = Vec::new();
    for i in 0..4 {
        let msg = Message::new(format!("body{i}"))
            .with_tags("TagA")
            .with_keys("k1 k2")
            .with_flag(7)
            .with_property("color", "red");
        let r = p.send("T", msg).unwrap();
        assert_eq!(r.status, SendStatus::SendOk);
        assert_eq!(r.queue_offset, 100 + i);
        assert_eq!(r.msg_id.len(), 32);
        assert_eq!(r.offset_msg_id, "0A090909000027AF0000000000000000");
        queues.push(r.queue_id);
    }
    assert_eq!(queues, [0, 1, 2, 0]);
    let route_req = rx.recv().unwrap();
    assert_eq!(route_req.code, request_code::GET_ROUTEINFO_BY_TOPIC);
    let req = rx.recv().unwrap();
    assert_eq!(req.code, request_code::SEND_MESSAGE_V2);
    assert_eq!(req.serialize_type, SerializeType::Json);
    for (k, v) in [
        ("a", "PG"),
        ("b", "T"),
        ("c", "TBW102"),
        ("d", "4"),
        ("e", "0"),
        ("f", "0"),
        ("h", "7"),
        ("j", "0"),
        ("k", "false"),
        ("m", "false"),
        ("n", "b1"),
    ] {
        assert_eq!(req.ext(k), Some(v), "field {k}");
    }
    assert!(req.ext("g").unwrap().parse::<i64>().unwrap() > 1_600_000_000_000);
    assert_eq!(req.ext("producerGroup"), None);
    assert_eq!(&req.body[..], b"body0");
    let props = props_of(req.ext("i").unwrap());
    assert_eq!(prop(&props, "TAGS"), Some("TagA"));
    assert_eq!(prop(&props, "KEYS"), Some("k1 k2"));
    assert_eq!(prop(&props, "color"), Some("red"));
    assert_eq!(prop(&props, "UNIQ_KEY").unwrap().len(), 32);
    // Unique ids.
    let ids: std::collections::HashSet<String> = (0..3)
        .map(|_| {
            let r = rx.recv().unwrap();
            prop(&props_of(r.ext("i").unwrap()), "UNIQ_KEY")
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 3);
}

#[test]
fn send_long_binary_header_and_statuses() {
    let (tx, rx) = mpsc::channel();
    let server = send_server(tx);
    let opts = ProducerOptions {
        header: SendHeader::Long,
        serialize_type: SerializeType::RocketMq,
        ..Default::default()
    };
    let p = Producer::connect_with(&server.addr().to_string(), "PG", opts).unwrap();
    let msg = Message::new("x").with_property("UNIQ_KEY", "MYID");
    let r = p.send("Slow", msg).unwrap();
    assert_eq!(r.status, SendStatus::FlushDiskTimeout);
    assert_eq!(r.msg_id, "MYID");
    // "Slow" has no route and TBW102 neither: 4 default queues, no bname.
    assert_eq!(p.queues("Slow").unwrap().len(), 4);
    let reqs: Vec<RemotingCommand> = rx.try_iter().collect();
    let req = reqs
        .iter()
        .find(|r| r.code == request_code::SEND_MESSAGE)
        .unwrap();
    assert_eq!(req.serialize_type, SerializeType::RocketMq);
    for (k, v) in [
        ("producerGroup", "PG"),
        ("topic", "Slow"),
        ("defaultTopic", "TBW102"),
        ("defaultTopicQueueNums", "4"),
        ("queueId", "0"),
        ("sysFlag", "0"),
        ("flag", "0"),
        ("batch", "false"),
    ] {
        assert_eq!(req.ext(k), Some(v), "field {k}");
    }
    assert_eq!(req.ext("bname"), None);
    assert_eq!(req.ext("a"), None);
    assert_eq!(
        prop(&props_of(req.ext("properties").unwrap()), "UNIQ_KEY"),
        Some("MYID")
    );
    match p.send("Busy", Message::new("x")) {
        Err(ClientError::Broker { code, remark }) => {
            assert_eq!(code, response_code::SYSTEM_BUSY);
            assert!(remark.contains("busy"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn send_batch_body() {
    let (tx, rx) = mpsc::channel();
    let server = send_server(tx);
    let p = Producer::connect(&server.addr().to_string(), "PG").unwrap();
    let msgs = vec![
        Message::new("one").with_tags("A"),
        Message::new("two").with_flag(3),
    ];
    let r = p.send_batch("T", msgs).unwrap();
    let ids: Vec<&str> = r.msg_id.split(',').collect();
    assert_eq!(ids.len(), 2);
    let req = rx
        .try_iter()
        .find(|r| r.code == request_code::SEND_BATCH_MESSAGE)
        .unwrap();
    assert_eq!(req.ext("m"), Some("true"));
    assert_eq!(req.ext("b"), Some("T"));
    let items = decode_batch(&req.body).unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(&items[0].body[..], b"one");
    assert_eq!(items[1].flag, 3);
    let p0 = decode_properties(&items[0].properties);
    assert_eq!(prop(&p0, "TAGS"), Some("A"));
    assert_eq!(prop(&p0, "UNIQ_KEY"), Some(ids[0]));
    let p1 = decode_properties(&items[1].properties);
    assert_eq!(prop(&p1, "UNIQ_KEY"), Some(ids[1]));
    assert!(p.send_batch("T", Vec::new()).is_err());
}

#[test]
fn send_async_is_bounded() {
    // Hold responses until a oneway probe arrives, to observe the bound.
    let held = Arc::new(Mutex::new(Vec::<RemotingCommand>::new()));
    let h2 = held.clone();
    let server = FakeServer::start(move |req, out| {
        if !req.is_oneway() {
            lock(&h2).push(req);
            return;
        }
        for r in lock(&h2).drain(..) {
            let mut resp = RemotingCommand::response_to(&r, 0, None);
            resp.set_ext("msgId", "X");
            resp.set_ext("queueId", r.ext("e").unwrap());
            resp.set_ext("queueOffset", 1);
            out.send(resp);
        }
    });
    let opts = ProducerOptions {
        max_in_flight: 3,
        ..Default::default()
    };
    let p = Arc::new(Producer::connect_with(&server.addr().to_string(), "PG", opts).unwrap());
    p.set_queues(
        "T",
        vec![
            MessageQueue::new("T", "b", 0),
            MessageQueue::new("T", "b", 1),
        ],
    );
    let done = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let d = done.clone();
        p.send_async("T", Message::new("m"), move |r| {
            assert_eq!(r.unwrap().status, SendStatus::SendOk);
            d.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    assert_eq!(p.in_flight(), 3);
    // The 4th send blocks until a response frees a permit.
    let (p2, d2) = (p.clone(), done.clone());
    let t = std::thread::spawn(move || {
        p2.send_async("T", Message::new("m"), move |r| {
            r.unwrap();
            d2.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    });
    std::thread::sleep(Duration::from_millis(100));
    assert!(!t.is_finished(), "4th send must block at the bound");
    assert_eq!(lock(&held).len(), 3);
    let mut probe = RemotingCommand::request(request_code::HEART_BEAT);
    probe.mark_oneway();
    p.connection().oneway(probe).unwrap();
    t.join().unwrap();
    let mut probe = RemotingCommand::request(request_code::HEART_BEAT);
    probe.mark_oneway();
    p.connection().oneway(probe).unwrap();
    assert!(p.flush(Duration::from_secs(5)));
    assert_eq!(done.load(Ordering::SeqCst), 4);
    assert_eq!(p.in_flight(), 0);
}

fn stored(topic: &str, queue_id: i32, qoff: i64, phys: i64, body: &str, props: &str) -> Vec<u8> {
    let mut m = MessageToStore::new(
        topic,
        queue_id,
        Bytes::from(body.to_owned()),
        props.to_owned(),
    );
    m.reconsume_times = 2;
    m.born_timestamp = 1_700_000_000_000;
    let f = StoreFields {
        queue_offset: qoff,
        physical_offset: phys,
        store_timestamp: 1_700_000_000_123,
        store_host: SocketAddr::from(([10, 0, 0, 1], 10911)),
    };
    let mut buf = vec![0u8; m.encoded_len(&f.store_host)];
    m.encode_into(&mut buf, &f);
    buf
}

fn pull_body() -> Bytes {
    let mut body = Vec::new();
    let p1 = encode_properties([("TAGS", "A"), ("KEYS", "k"), ("UNIQ_KEY", "ID1")]);
    body.extend(stored("T", 1, 5, 1000, "first", &p1));
    let p2 = encode_properties([("TAGS", "B")]);
    body.extend(stored("T", 1, 6, 2000, "second message", &p2));
    body.extend(stored("T", 1, 7, 3000, "", ""));
    Bytes::from(body)
}

#[test]
fn decodes_concatenated_records() {
    let body = pull_body();
    let msgs = decode_messages(&body, true).unwrap();
    assert_eq!(msgs.len(), 3);
    let m = &msgs[0];
    assert_eq!(
        (m.topic.as_str(), m.queue_id, m.queue_offset, m.phys_offset),
        ("T", 1, 5, 1000)
    );
    assert_eq!(&m.body[..], b"first");
    assert_eq!(m.tags.as_deref(), Some("A"));
    assert_eq!(m.keys.as_deref(), Some("k"));
    assert_eq!(m.msg_id, "ID1");
    assert_eq!(m.offset_msg_id, "0A00000100002A9F00000000000003E8");
    assert_eq!(m.store_timestamp, 1_700_000_000_123);
    assert_eq!(m.born_timestamp, 1_700_000_000_000);
    assert_eq!(m.reconsume_times, 2);
    assert_eq!(m.property("UNIQ_KEY"), Some("ID1"));
    // Zero-copy body.
    let base = body.as_ptr() as usize;
    assert!((m.body.as_ptr() as usize) > base);
    assert_eq!(&msgs[1].body[..], b"second message");
    assert_eq!(msgs[1].keys, None);
    // No UNIQ_KEY: msg_id falls back to the offsetMsgId.
    assert_eq!(msgs[2].msg_id, msgs[2].offset_msg_id);
    assert!(msgs[2].body.is_empty() && msgs[2].properties.is_empty());
    // Truncated and corrupt bodies are protocol errors.
    assert!(matches!(
        decode_messages(&body.slice(..body.len() - 1), false),
        Err(ClientError::Protocol(_))
    ));
    let mut bad = body.to_vec();
    bad[5] ^= 0xFF;
    assert!(decode_messages(&Bytes::from(bad), false).is_err());
    assert!(decode_messages(&Bytes::new(), false).unwrap().is_empty());
}

fn pull_server(seen: mpsc::Sender<RemotingCommand>) -> FakeServer {
    FakeServer::start(move |req, out| {
        let mut r = RemotingCommand::response_to(&req, 0, None);
        match req.code {
            request_code::PULL_MESSAGE => {
                let off: i64 = req.ext("queueOffset").unwrap().parse().unwrap();
                r.code = match off {
                    5 => 0,
                    8 => response_code::PULL_NOT_FOUND,
                    9 => response_code::PULL_RETRY_IMMEDIATELY,
                    100 => response_code::PULL_OFFSET_MOVED,
                    _ => response_code::SUBSCRIPTION_NOT_EXIST,
                };
                if r.code == 0 {
                    r.body = pull_body();
                }
                r.set_ext("suggestWhichBrokerId", 0);
                r.set_ext("nextBeginOffset", if off == 100 { 8 } else { 8.max(off) });
                r.set_ext("minOffset", 0);
                r.set_ext("maxOffset", 8);
            }
            request_code::QUERY_CONSUMER_OFFSET => {
                if req.ext("queueId") == Some("0") {
                    r.code = response_code::QUERY_NOT_FOUND;
                } else {
                    r.set_ext("offset", 42);
                }
            }
            request_code::GET_MAX_OFFSET => r.set_ext("offset", 8),
            request_code::GET_MIN_OFFSET => r.set_ext("offset", 1),
            request_code::SEARCH_OFFSET_BY_TIMESTAMP => r.set_ext(
                "offset",
                if req.ext("boundaryType") == Some("UPPER") {
                    6
                } else {
                    5
                },
            ),
            _ => {}
        }
        let oneway = req.is_oneway();
        let _ = seen.send(req);
        if !oneway {
            out.send(r);
        }
    })
}

#[test]
fn pull_statuses_and_offsets() {
    let (tx, rx) = mpsc::channel();
    let server = pull_server(tx);
    let c = PullConsumer::connect(&server.addr().to_string(), "CG").unwrap();
    let mq = MessageQueue::new("T", "b1", 1);
    let r = c
        .pull(&mq, 5, 32, Some(Duration::from_millis(1500)))
        .unwrap();
    assert_eq!(r.status, PullStatus::Found);
    assert_eq!((r.next_begin_offset, r.min_offset, r.max_offset), (8, 0, 8));
    assert_eq!(r.messages.len(), 3);
    let req = rx.recv().unwrap();
    for (k, v) in [
        ("consumerGroup", "CG"),
        ("topic", "T"),
        ("queueId", "1"),
        ("queueOffset", "5"),
        ("maxMsgNums", "32"),
        ("sysFlag", "6"),
        ("suspendTimeoutMillis", "1500"),
        ("subscription", "*"),
        ("expressionType", "TAG"),
        ("bname", "b1"),
    ] {
        assert_eq!(req.ext(k), Some(v), "field {k}");
    }
    assert_eq!(
        c.pull(&mq, 8, 32, None).unwrap().status,
        PullStatus::NoNewMessage
    );
    assert_eq!(rx.recv().unwrap().ext("sysFlag"), Some("4"));
    assert_eq!(
        c.pull(&mq, 9, 32, None).unwrap().status,
        PullStatus::NoMatchedMsg
    );
    let r = c.pull(&mq, 100, 32, None).unwrap();
    assert_eq!(
        (r.status, r.next_begin_offset),
        (PullStatus::OffsetIllegal, 8)
    );
    match c.pull(&mq, 1, 32, None) {
        Err(ClientError::Broker { code, .. }) => {
            assert_eq!(code, response_code::SUBSCRIPTION_NOT_EXIST)
        }
        other => panic!("{other:?}"),
    }

    assert_eq!(c.query_offset("CG", &mq).unwrap(), Some(42));
    assert_eq!(
        c.query_offset("CG", &MessageQueue::new("T", "", 0))
            .unwrap(),
        None
    );
    c.update_offset("CG", &mq, 7).unwrap();
    c.update_offset_oneway("CG", &mq, 8).unwrap();
    assert_eq!(c.max_offset(&mq).unwrap(), 8);
    assert_eq!(c.min_offset(&mq).unwrap(), 1);
    assert_eq!(c.search_offset(&mq, 1_700_000_000_123, false).unwrap(), 5);
    assert_eq!(c.search_offset(&mq, 1_700_000_000_123, true).unwrap(), 6);
    let reqs: Vec<RemotingCommand> = rx.try_iter().collect();
    let upd: Vec<&RemotingCommand> = reqs
        .iter()
        .filter(|r| r.code == request_code::UPDATE_CONSUMER_OFFSET)
        .collect();
    assert_eq!(upd.len(), 2);
    assert_eq!(upd[0].ext("commitOffset"), Some("7"));
    assert!(upd[1].is_oneway());
    let search = reqs
        .iter()
        .find(|r| r.code == request_code::SEARCH_OFFSET_BY_TIMESTAMP)
        .unwrap();
    assert_eq!(search.ext("timestamp"), Some("1700000000123"));
}

#[test]
fn pull_tag_filter() {
    let (tx, _rx) = mpsc::channel();
    let server = pull_server(tx);
    let opts = PullOptions {
        subscription: "B || C".into(),
        ..Default::default()
    };
    let c = PullConsumer::connect_with(&server.addr().to_string(), "CG", opts).unwrap();
    let r = c.pull(&MessageQueue::new("T", "", 1), 5, 32, None).unwrap();
    assert_eq!(r.messages.len(), 1);
    assert_eq!(r.messages[0].tags.as_deref(), Some("B"));
}
