//! Metadata writes stay off the network loops (issue 11, item 3): topics and groups
//! created by a heartbeat, a pull, auto-create on send and an admin request are changed
//! in memory; the housekeeping thread writes each table at most once per interval, and a
//! clean restart finds them all.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ringmq_broker::METADATA_PERSIST_INTERVAL;
use ringmq_client::{Connection, Message, MessageQueue, Producer, PullConsumer};
use ringmq_remoting::codes::{request_code as rq, response_code as rs};
use ringmq_remoting::RemotingCommand;

const T: Duration = Duration::from_secs(5);

fn heartbeat(conn: &Connection, group: &str, topic: &str) {
    let body = serde_json::json!({
        "clientID": "meta-client",
        "consumerDataSet": [{"consumeFromWhere":"CONSUME_FROM_LAST_OFFSET",
            "consumeType":"CONSUME_PASSIVELY","groupName":group,"messageModel":"CLUSTERING",
            "subscriptionDataSet":[{"classFilterMode":false,"codeSet":[],"expressionType":"TAG",
                "subString":"*","subVersion":1,"tagsSet":[],"topic":topic}],
            "unitMode":false}],
        "heartbeatFingerprint": 0,
        "producerDataSet": [{"groupName":"CLIENT_INNER_PRODUCER"}],
        "withoutSub": false,
    });
    let req = RemotingCommand::request(rq::HEART_BEAT).with_body(body.to_string());
    assert_eq!(conn.request(req, T).unwrap().code, rs::SUCCESS);
}

#[test]
fn creation_writes_no_file_on_a_network_core_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = common::start(dir.path());
    let stats = |b: &common::TestBroker| {
        let s = &b.server.as_ref().unwrap().broker().stats;
        (
            s.meta_persists.load(Ordering::Relaxed),
            s.meta_persists_on_network_thread.load(Ordering::Relaxed),
        )
    };
    let started = Instant::now();
    let (before, _) = stats(&broker);

    // Many creations in a burst, by every path that creates.
    let conn = Connection::connect(&broker.addr).unwrap();
    let p = Producer::connect(&broker.addr, "pg").unwrap();
    for i in 0..20 {
        p.send_to(
            &MessageQueue::new(format!("Auto{i}"), "broker-a", 0),
            Message::new("x"),
        )
        .unwrap();
        heartbeat(&conn, &format!("HbGroup{i}"), &format!("Auto{i}"));
        let c = PullConsumer::connect(&broker.addr, &format!("PullGroup{i}")).unwrap();
        c.pull(
            &MessageQueue::new(format!("Auto{i}"), "broker-a", 0),
            0,
            1,
            None,
        )
        .unwrap();
    }
    common::create_topic(&broker.addr, "AdminTopic", 4);
    // Answered before the file is written: had the network thread written it, each new
    // topic would be in the file the moment its creation was answered.
    let topics_json = dir.path().join("config/topics.json");
    let written_at_once = (0..5)
        .filter(|i| {
            let topic = format!("AdminNow{i}");
            common::create_topic(&broker.addr, &topic, 1);
            let t = std::fs::read_to_string(&topics_json).unwrap_or_default();
            t.contains(&format!("\"{topic}\""))
        })
        .count();
    assert!(
        written_at_once < 5,
        "every creation wrote the file before answering"
    );

    // Written by housekeeping, coalesced: each table at most once per interval.
    let groups_json = dir.path().join("config/subscriptionGroup.json");
    let deadline = Instant::now() + T;
    loop {
        let t = std::fs::read_to_string(&topics_json).unwrap_or_default();
        let g = std::fs::read_to_string(&groups_json).unwrap_or_default();
        if t.contains("AdminTopic") && t.contains("%RETRY%HbGroup19") && g.contains("PullGroup19") {
            break;
        }
        assert!(Instant::now() < deadline, "tables not written within {T:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (after, on_net) = stats(&broker);
    assert_eq!(on_net, 0, "metadata written on a network thread");
    let intervals = started.elapsed().as_millis() / METADATA_PERSIST_INTERVAL.as_millis() + 1;
    let writes = after - before;
    assert!(
        writes as u128 <= 2 * intervals,
        "{writes} table writes in {intervals} intervals (about 80 creations)"
    );

    broker.stop();
    let broker = common::start(dir.path());
    let b = broker.server.as_ref().unwrap().broker();
    for i in 0..20 {
        assert!(b.topics.get(&format!("Auto{i}")).is_some());
        assert!(b.topics.get(&format!("%RETRY%HbGroup{i}")).is_some());
        assert!(b.subscription_groups.get(&format!("HbGroup{i}")).is_some());
        assert!(b
            .subscription_groups
            .get(&format!("PullGroup{i}"))
            .is_some());
    }
    assert_eq!(b.topics.get("AdminTopic").unwrap().write_queues, 4);
}
