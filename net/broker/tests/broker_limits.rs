//! Bounded resources (issue 11, item 2): connections are capped and idle ones closed,
//! parked pulls are bounded per connection and their suspend time clamped, the topic and
//! group tables refuse growth past their caps, and a client that pipelines pulls and
//! never reads its answers holds a bounded amount of broker memory while another
//! connection keeps its latency.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringmq_client::{Connection, Message, MessageQueue, Producer, PullConsumer};
use ringmq_remoting::codes::{request_code as rq, response_code as rs};
use ringmq_remoting::{encode_frame, RemotingCommand};

const T: Duration = Duration::from_secs(5);

fn pull_request(topic: &str, offset: i64, suspend_ms: i64) -> RemotingCommand {
    let mut req = RemotingCommand::request(rq::PULL_MESSAGE);
    req.set_ext("consumerGroup", "LimitGroup");
    req.set_ext("topic", topic);
    req.set_ext("queueId", 0);
    req.set_ext("queueOffset", offset);
    req.set_ext("maxMsgNums", 32);
    req.set_ext("sysFlag", if suspend_ms > 0 { 2 } else { 0 });
    req.set_ext("suspendTimeoutMillis", suspend_ms);
    req
}

fn closed_by_peer(mut s: TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 64];
    matches!(s.read(&mut buf), Ok(0) | Err(_))
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[test]
fn connections_are_capped_and_idle_ones_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.max_connections = 2;
    cfg.server_channel_max_idle_time = Duration::from_secs(1);
    let broker = common::start_with(cfg);
    let ping = |c: &Connection| {
        let r = c.request(RemotingCommand::request(rq::GET_BROKER_CLUSTER_INFO), T);
        r.map(|r| r.code)
    };
    let a = Connection::connect(&broker.addr).unwrap();
    let b = Connection::connect(&broker.addr).unwrap();
    assert_eq!(ping(&a).unwrap(), rs::SUCCESS);
    assert_eq!(ping(&b).unwrap(), rs::SUCCESS);
    // A third is closed at once.
    let third = TcpStream::connect(&broker.addr).unwrap();
    assert!(closed_by_peer(third, T), "third connection closed");
    // Room again once one leaves.
    drop(a);
    let deadline = Instant::now() + T;
    let c = loop {
        let c = Connection::connect(&broker.addr).unwrap();
        if matches!(ping(&c), Ok(rs::SUCCESS)) {
            break c;
        }
        assert!(Instant::now() < deadline, "no room after a connection left");
        std::thread::sleep(Duration::from_millis(50));
    };
    drop((b, c));

    // Idle for longer than serverChannelMaxIdleTimeSeconds: closed by the broker.
    std::thread::sleep(Duration::from_millis(300));
    let idle = TcpStream::connect(&broker.addr).unwrap();
    let started = Instant::now();
    assert!(closed_by_peer(idle, T), "idle connection closed");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "closed after {waited:?}"
    );
}

#[test]
fn parked_pulls_are_bounded_and_their_suspend_clamped() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.max_parked_pulls_per_connection = 2;
    cfg.max_pull_suspend = Duration::from_millis(500);
    let broker = common::start_with(cfg);
    common::create_topic(&broker.addr, "Parked", 1);

    // A client asking for a minute waits at most maxPullSuspendMillis.
    let c = PullConsumer::connect(&broker.addr, "LimitGroup").unwrap();
    let mq = MessageQueue::new("Parked", "broker-a", 0);
    let started = Instant::now();
    let r = c.pull(&mq, 0, 32, Some(Duration::from_secs(60))).unwrap();
    assert_eq!(r.status, ringmq_client::PullStatus::NoNewMessage);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // Two parked pulls per connection; the third is refused as SYSTEM_BUSY.
    let conn = Arc::new(Connection::connect(&broker.addr).unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    for _ in 0..3 {
        let tx = tx.clone();
        conn.request_async(pull_request("Parked", 0, 60_000), move |r| {
            let _ = tx.send(r.map(|r| (r.code, r.remark)));
        });
    }
    let first = rx.recv_timeout(T).unwrap().unwrap();
    assert_eq!(first.0, rs::SYSTEM_BUSY, "{first:?}");
    assert!(first.1.unwrap().contains("maxParkedPullsPerConnection"));
    for _ in 0..2 {
        let r = rx.recv_timeout(T).unwrap().unwrap();
        assert_eq!(r.0, rs::PULL_NOT_FOUND, "{r:?}");
    }
}

#[test]
fn topic_and_group_tables_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.max_topics = 4; // TBW102, SCHEDULE_TOPIC_XXXX and two more
    cfg.max_subscription_groups = 1;
    let broker = common::start_with(cfg);
    let p = Producer::connect(&broker.addr, "pg").unwrap();
    for t in ["A", "B"] {
        p.send_to(&MessageQueue::new(t, "broker-a", 0), Message::new("x"))
            .unwrap();
    }
    let err = p
        .send_to(&MessageQueue::new("C", "broker-a", 0), Message::new("x"))
        .unwrap_err();
    assert!(err.to_string().contains("maxTopics"), "{err}");
    // Existing topics still take messages.
    p.send_to(&MessageQueue::new("A", "broker-a", 0), Message::new("y"))
        .unwrap();

    let pull = |group: &str| {
        let c = PullConsumer::connect(&broker.addr, group).unwrap();
        c.pull(&MessageQueue::new("A", "broker-a", 0), 0, 1, None)
    };
    pull("G1").unwrap();
    let err = pull("G2").unwrap_err();
    assert!(err.to_string().contains("maxSubscriptionGroups"), "{err}");
    pull("G1").unwrap();
}

#[test]
fn a_client_that_never_reads_is_paused_and_others_keep_their_latency() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.max_connection_queued_bytes = 1 << 20;
    cfg.max_parked_pulls_per_connection = 8;
    let broker = common::start_with(cfg);
    let stats_of = |b: &common::TestBroker| {
        b.server
            .as_ref()
            .unwrap()
            .broker()
            .stats
            .msgs_got
            .load(Ordering::Relaxed)
    };
    let p = Producer::connect(&broker.addr, "pg").unwrap();
    let big = MessageQueue::new("Big", "broker-a", 0);
    for _ in 0..64 {
        p.send_to(&big, Message::new(vec![b'x'; 8 << 10])).unwrap();
    }

    // 4000 pipelined pulls of 32 x 8 KiB each (1 GB of answers), never read.
    let pulls = 4000;
    let mut frames = BytesMut::new();
    for i in 0..pulls {
        let mut req = pull_request("Big", 0, 0);
        req.opaque = i + 1;
        encode_frame(&req, &mut frames).unwrap();
    }
    let rss_before = rss_bytes();
    let bad = TcpStream::connect(&broker.addr).unwrap();
    let mut writer = bad.try_clone().unwrap();
    writer
        .set_write_timeout(Some(Duration::from_secs(8)))
        .unwrap();
    let flood = std::thread::spawn(move || {
        // Blocks once the broker stops reading; the timeout ends it.
        let _ = writer.write_all(&frames);
    });

    // Meanwhile another connection sends and pulls with its usual latency.
    let good = PullConsumer::connect(&broker.addr, "GoodGroup").unwrap();
    let mq = MessageQueue::new("Good", "broker-a", 0);
    let mut worst = Duration::ZERO;
    let until = Instant::now() + Duration::from_secs(3);
    let mut offset = 0;
    while Instant::now() < until {
        let started = Instant::now();
        p.send_to(&mq, Message::new("ping")).unwrap();
        let got = common::pull_until(&good, &mq, offset, T, |m| !m.is_empty());
        offset += got.len() as i64;
        worst = worst.max(started.elapsed());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(worst < Duration::from_secs(1), "worst send+pull {worst:?}");

    // The flooding client got a bounded share: about maxConnectionQueuedBytes plus its
    // parked pulls plus the sockets' buffers, not its 128000 messages.
    let served = stats_of(&broker);
    let grew = rss_bytes().saturating_sub(rss_before);
    eprintln!(
        "served {served} messages to the flood; RSS grew {} KiB",
        grew >> 10
    );
    assert!(served < 4_000, "served {served} messages");
    assert!(grew < 64 << 20, "RSS grew {grew} bytes (bound: 64 MiB)");

    drop(bad);
    flood.join().unwrap();
    p.send_to(&mq, Message::new("after")).unwrap();
    let mut broker = broker;
    let started = Instant::now();
    broker.stop();
    assert!(
        started.elapsed() < T,
        "shutdown took {:?}",
        started.elapsed()
    );
}
