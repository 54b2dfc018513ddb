//! `ringmq admin <command>` end to end: each command run as the real binary against an
//! in-process ringmq broker on 127.0.0.1, once with `-n` at the broker itself (which also
//! answers the name-server queries) and once with `-n` at an in-process `ringmq namesrv`
//! the broker registers with; output checked as a table and as `--json`.

use std::process::Command;
use std::time::Duration;

use ringmq_broker::{BrokerConfig, Server};
use ringmq_client::{Connection, Message, MessageQueue, Producer, PullConsumer};
use ringmq_remoting::codes::request_code as rq;
use ringmq_remoting::command::RemotingCommand;
use serde_json::Value;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn admin(addr: &str, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_ringmq"))
        .arg("admin")
        .args(args)
        .args(["-n", addr])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run ringmq admin");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs a command that must succeed; returns its stdout.
fn ok(addr: &str, args: &[&str]) -> String {
    let r = admin(addr, args);
    assert_eq!(r.code, 0, "{args:?} failed: {}{}", r.stderr, r.stdout);
    r.stdout
}

fn json(addr: &str, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    serde_json::from_str(&ok(addr, &a)).expect("one JSON document")
}

/// A failure: exit 1 and one line on stderr naming the command.
fn fails(addr: &str, args: &[&str]) -> String {
    let r = admin(addr, args);
    assert_eq!(r.code, 1, "{args:?} should fail: {}", r.stdout);
    assert_eq!(r.stderr.trim_end().lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.starts_with(&format!("ringmq admin {}: ", args[0])),
        "{}",
        r.stderr
    );
    r.stderr
}

fn broker(dir: &std::path::Path) -> Server {
    let cfg = BrokerConfig {
        store_path_root_dir: dir.to_path_buf(),
        listen_port: 0,
        pin_threads: false,
        mapped_file_size_commit_log: 1 << 20,
        tail_ring_bytes: 8 << 20,
        ..Default::default()
    };
    Server::open(cfg).expect("broker starts")
}

/// A consumer of `group` subscribed to `topic`, online while the connection lives.
fn heartbeat(addr: &str, group: &str, topic: &str) -> Connection {
    let conn = Connection::connect(addr).unwrap();
    let body = serde_json::json!({
        "clientID": "admin-test-client",
        "consumerDataSet": [{
            "groupName": group, "consumeType": "CONSUME_PASSIVELY",
            "messageModel": "CLUSTERING", "consumeFromWhere": "CONSUME_FROM_LAST_OFFSET",
            "subscriptionDataSet": [{"topic": topic, "subString": "*", "subVersion": 1}],
            "unitMode": false
        }],
        "producerDataSet": []
    });
    let r = conn
        .request(
            RemotingCommand::request(rq::HEART_BEAT).with_body(body.to_string()),
            Duration::from_secs(5),
        )
        .unwrap();
    assert_eq!(r.code, 0, "{:?}", r.remark);
    conn
}

#[test]
fn admin_commands_against_a_broker() {
    let dir = tempfile::tempdir().unwrap();
    let server = broker(dir.path());
    let addr = server.local_addr().to_string();
    let a = addr.as_str();

    // Topics.
    let out = ok(
        a,
        &["updateTopic", "-b", a, "-t", "AdminT", "-r", "2", "-w", "2"],
    );
    assert!(
        out.contains(&format!("create topic to {a} success.")),
        "{out}"
    );
    assert!(out.contains("perm=RW-"), "{out}");
    assert!(ok(a, &["topicList"]).lines().any(|l| l == "AdminT"));
    // -c: every master of the cluster, found through the cluster info at -n.
    let out = ok(
        a,
        &[
            "updateTopic",
            "-c",
            "DefaultCluster",
            "-t",
            "AdminC",
            "-w",
            "1",
            "-r",
            "1",
        ],
    );
    assert!(
        out.contains(&format!("create topic to {a} success.")),
        "{out}"
    );
    assert_eq!(
        json(a, &["topicList"])["topicList"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| *t == "AdminC")
            .count(),
        1
    );
    fails(a, &["updateTopic", "-c", "NoSuchCluster", "-t", "AdminC"]);
    let cl = json(a, &["clusterList"]);
    assert_eq!(cl["brokers"][0]["addr"], a);
    let route = json(a, &["topicRoute", "-t", "AdminT"]);
    assert_eq!(route["queueDatas"][0]["writeQueueNums"], 2);
    assert_eq!(route["brokerDatas"][0]["brokerAddrs"]["0"], a);

    // Produce 6 + 4, consume 4 + 1 (committed offsets): lag 5.
    let producer = Producer::connect(a, "admin_pg").unwrap();
    let mut sent = Vec::new();
    for (qid, n) in [(0, 6), (1, 4)] {
        for i in 0..n {
            let mq = MessageQueue::new("AdminT", "broker-a", qid);
            let body = format!("admin-body-{qid}-{i}");
            sent.push(
                producer
                    .send_to(&mq, Message::new(body.into_bytes()))
                    .unwrap(),
            );
        }
    }
    wait_dispatched(a, "AdminT", 10);
    let status = json(a, &["topicStatus", "-t", "AdminT"]);
    let queues = status["queues"].as_array().unwrap();
    assert_eq!(queues.len(), 2);
    assert_eq!(
        (
            queues[0]["maxOffset"].as_i64(),
            queues[1]["maxOffset"].as_i64()
        ),
        (Some(6), Some(4))
    );
    let table = ok(a, &["topicStatus", "-t", "AdminT"]);
    assert!(table.starts_with("#Broker Name"), "{table}");
    assert!(
        table.lines().nth(1).unwrap().starts_with("broker-a"),
        "{table}"
    );

    ok(a, &["updateSubGroup", "-b", a, "-g", "admin_cg"]);
    let consumer = PullConsumer::connect(a, "admin_cg").unwrap();
    consumer
        .update_offset("admin_cg", &MessageQueue::new("AdminT", "broker-a", 0), 4)
        .unwrap();
    consumer
        .update_offset("admin_cg", &MessageQueue::new("AdminT", "broker-a", 1), 1)
        .unwrap();
    let progress = json(a, &["consumerProgress", "-g", "admin_cg"]);
    assert_eq!(
        progress["diffTotal"],
        10 - 5,
        "lag = produced - consumed: {progress}"
    );
    let q = progress["queues"].as_array().unwrap();
    assert_eq!(
        (q[0]["diff"].as_i64(), q[1]["diff"].as_i64()),
        (Some(2), Some(3))
    );
    let table = ok(a, &["consumerProgress", "-g", "admin_cg", "-t", "AdminT"]);
    assert!(table.contains("Consume Diff Total: 5"), "{table}");
    assert!(table.starts_with("#Topic"), "{table}");

    // Groups.
    let out = ok(a, &["updateSubGroup", "-b", a, "-g", "admin_g2", "-r", "5"]);
    assert!(
        out.contains(&format!("create subscription group to {a} success.")),
        "{out}"
    );
    assert!(out.contains("\"retryMaxTimes\":5"), "{out}");
    let out = ok(a, &["deleteSubGroup", "-b", a, "-g", "admin_g2"]);
    assert!(
        out.contains("delete subscription group [admin_g2]"),
        "{out}"
    );

    fails(a, &["consumerConnection", "-g", "admin_cg"]);
    let hb = heartbeat(a, "admin_cg", "AdminT");
    let conns = ok(a, &["consumerConnection", "-g", "admin_cg"]);
    assert!(conns.contains("admin-test-client"), "{conns}");
    assert!(conns.contains("Topic: AdminT"), "{conns}");
    assert!(conns.contains("MessageModel: CLUSTERING"), "{conns}");

    // Broker.
    let all = json(a, &["brokerStatus", "-c", "DefaultCluster"]);
    assert_eq!(all[a]["msgPutTotalTodayNow"], "10", "{all}");
    let st = ok(a, &["brokerStatus", "-b", a]);
    assert!(
        st.lines()
            .any(|l| l.starts_with("msgPutTotalTodayNow") && l.ends_with(": 10")),
        "{st}"
    );
    assert!(st.contains("putTps"), "{st}");
    let cl = ok(a, &["clusterList"]);
    assert!(
        cl.contains("DefaultCluster") && cl.contains("broker-a") && cl.contains(a),
        "{cl}"
    );
    let cfg = ok(a, &["getBrokerConfig", "-b", a]);
    assert!(
        cfg.lines()
            .any(|l| l.starts_with("brokerName") && l.ends_with("=  broker-a")),
        "{cfg}"
    );
    ok(
        a,
        &[
            "updateBrokerConfig",
            "-b",
            a,
            "-k",
            "rebalanceLockMaxLiveTime",
            "-v",
            "30000",
        ],
    );
    assert!(ok(a, &["getBrokerConfig", "-b", a]).contains("rebalanceLockMaxLiveTime"));
    let err = fails(
        a,
        &["updateBrokerConfig", "-b", a, "-k", "listenPort", "-v", "1"],
    );
    assert!(err.contains("NO_PERMISSION"), "{err}");

    // Messages.
    let m = &sent[2];
    let shown = ok(a, &["queryMsgById", "-i", &m.offset_msg_id]);
    assert!(shown.contains("Topic:               AdminT"), "{shown}");
    assert!(shown.contains("admin-body-0-2"), "{shown}");
    fails(a, &["queryMsgById", "-i", "not-an-id"]);

    // Reset to the beginning: the whole topic is lag again.
    let out = ok(
        a,
        &[
            "resetOffsetByTime",
            "-g",
            "admin_cg",
            "-t",
            "AdminT",
            "-s",
            "0",
        ],
    );
    assert!(out.contains("#brokerName"), "{out}");
    assert_eq!(
        json(a, &["consumerProgress", "-g", "admin_cg"])["diffTotal"],
        10
    );
    drop(hb);

    // Delete: no ConsumeQueue files left, offsets gone.
    let cq = dir.path().join("consumequeue").join("AdminT");
    assert!(cq.is_dir());
    let out = ok(a, &["deleteTopic", "-t", "AdminT", "-b", a]);
    assert!(out.contains("delete topic [AdminT] from broker"), "{out}");
    assert!(!cq.exists(), "deleteTopic left {} behind", cq.display());
    assert!(!ok(a, &["topicList"]).lines().any(|l| l == "AdminT"));
    fails(a, &["topicStatus", "-t", "AdminT"]);
    assert_eq!(
        json(a, &["consumerProgress", "-g", "admin_cg"])["queues"],
        Value::Array(vec![])
    );

    // Nobody listening: one line, exit 1.
    let err = fails("127.0.0.1:1", &["topicList"]);
    assert!(err.contains("127.0.0.1:1"), "{err}");

    drop(producer);
    drop(consumer);
    server.shutdown().unwrap();
}

/// Polls `f` every 20 ms until it holds; panics naming `what` after 10 s.
/// Waits until `topic`'s ConsumeQueues (topicStatus maxOffset, summed) hold `sends`:
/// SEND_OK comes from the CommitLog, and the dispatcher builds the ConsumeQueues after
/// it, as RocketMQ's reput service does.
fn wait_dispatched(addr: &str, topic: &str, sends: i64) {
    wait_until("the ConsumeQueues to hold every send", || {
        let status = json(addr, &["topicStatus", "-t", topic]);
        let queues = status["queues"].as_array().cloned().unwrap_or_default();
        queues
            .iter()
            .filter_map(|q| q["maxOffset"].as_i64())
            .sum::<i64>()
            >= sends
    });
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The same commands with `-n` at a `ringmq namesrv` the broker registers with: cluster,
/// route and topic list come from the name server, `-c` finds the masters there, and
/// `deleteTopic` removes the topic from the broker's files and from the name server.
#[test]
fn admin_commands_through_a_name_server() {
    let dir = tempfile::tempdir().unwrap();
    let ns = ringmq_namesrv::Namesrv::start(ringmq_namesrv::NamesrvConfig {
        listen_port: 0,
        kv_config_path: dir.path().join("kvConfig.json"),
        ..ringmq_namesrv::NamesrvConfig::default()
    })
    .expect("name server starts");
    let nsaddr = ns.local_addr().to_string();
    let n = nsaddr.as_str();
    let store = dir.path().join("store");
    let node = ringmq_broker::Node::start(BrokerConfig {
        store_path_root_dir: store.clone(),
        listen_port: 0,
        ha_listen_port: 0,
        pin_threads: false,
        mapped_file_size_commit_log: 1 << 20,
        tail_ring_bytes: 8 << 20,
        namesrv_addr: Some(nsaddr.clone()),
        register_name_server_period: Duration::from_millis(500),
        ..Default::default()
    })
    .expect("broker starts");
    let addr = node.addr().to_string();
    let a = addr.as_str();
    wait_until("the broker in the name server's cluster list", || {
        admin(n, &["clusterList", "--json"]).stdout.contains(a)
    });
    let cl = json(n, &["clusterList"]);
    assert_eq!(cl["brokers"][0]["addr"], a, "{cl}");
    assert_eq!(cl["brokers"][0]["cluster"], "DefaultCluster", "{cl}");

    // -c: the masters come from the name server's cluster info.
    let out = ok(
        n,
        &[
            "updateTopic",
            "-c",
            "DefaultCluster",
            "-t",
            "NsT",
            "-w",
            "2",
            "-r",
            "2",
        ],
    );
    assert!(
        out.contains(&format!("create topic to {a} success.")),
        "{out}"
    );
    fails(n, &["updateTopic", "-c", "NoSuchCluster", "-t", "NsT"]);
    wait_until("the topic registered with the name server", || {
        admin(n, &["topicList"]).stdout.lines().any(|l| l == "NsT")
    });
    let route = json(n, &["topicRoute", "-t", "NsT"]);
    assert_eq!(route["queueDatas"][0]["writeQueueNums"], 2, "{route}");
    assert_eq!(route["brokerDatas"][0]["brokerAddrs"]["0"], a, "{route}");

    // Produce 3 + 2, commit 1 + 2: lag 2, found through the route.
    let producer = Producer::connect(a, "ns_pg").unwrap();
    let mut sent = Vec::new();
    for (qid, count) in [(0, 3), (1, 2)] {
        for i in 0..count {
            let mq = MessageQueue::new("NsT", "broker-a", qid);
            let body = format!("ns-body-{qid}-{i}").into_bytes();
            sent.push(producer.send_to(&mq, Message::new(body)).unwrap());
        }
    }
    wait_dispatched(n, "NsT", 5);
    let status = json(n, &["topicStatus", "-t", "NsT"]);
    let queues = status["queues"].as_array().unwrap();
    assert_eq!(
        (
            queues[0]["maxOffset"].as_i64(),
            queues[1]["maxOffset"].as_i64()
        ),
        (Some(3), Some(2)),
        "{status}"
    );
    ok(
        n,
        &["updateSubGroup", "-c", "DefaultCluster", "-g", "ns_cg"],
    );
    let consumer = PullConsumer::connect(a, "ns_cg").unwrap();
    for (qid, offset) in [(0, 1), (1, 2)] {
        let mq = MessageQueue::new("NsT", "broker-a", qid);
        consumer.update_offset("ns_cg", &mq, offset).unwrap();
    }
    let progress = json(n, &["consumerProgress", "-g", "ns_cg"]);
    assert_eq!(progress["diffTotal"], 5 - 3, "{progress}");
    let hb = heartbeat(a, "ns_cg", "NsT");
    let conns = ok(n, &["consumerConnection", "-g", "ns_cg"]);
    assert!(conns.contains("admin-test-client"), "{conns}");
    let all = json(n, &["brokerStatus", "-c", "DefaultCluster"]);
    assert_eq!(all[a]["msgPutTotalTodayNow"], "5", "{all}");
    let shown = ok(n, &["queryMsgById", "-i", &sent[1].offset_msg_id]);
    assert!(shown.contains("ns-body-0-1"), "{shown}");
    ok(
        n,
        &["resetOffsetByTime", "-g", "ns_cg", "-t", "NsT", "-s", "0"],
    );
    assert_eq!(
        json(n, &["consumerProgress", "-g", "ns_cg"])["diffTotal"],
        5
    );
    drop(hb);

    // Delete through the cluster: the broker's files and the name server's route go.
    let cq = store.join("consumequeue").join("NsT");
    assert!(cq.is_dir());
    let out = ok(n, &["deleteTopic", "-t", "NsT", "-c", "DefaultCluster"]);
    assert!(out.contains("delete topic [NsT] from broker"), "{out}");
    assert!(!cq.exists(), "deleteTopic left {} behind", cq.display());
    assert!(
        ns.route("NsT").is_none(),
        "the name server still routes NsT"
    );
    assert!(!ok(n, &["topicList"]).lines().any(|l| l == "NsT"));
    fails(n, &["topicRoute", "-t", "NsT"]);

    drop(producer);
    drop(consumer);
    node.shutdown().unwrap();
    drop(ns);
}
