//! A cluster on 127.0.0.1: two broker groups registering with two `ringmq namesrv`, and a
//! producer that knows only the name servers. In-process brokers (`Node`) and name
//! servers, except for the kill test, which needs a broker process to SIGKILL.

mod common_ha;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringmq_broker::{BrokerConfig, BrokerRole, Node};
use ringmq_client::cluster::{ClusterProducer, NameServers};
use ringmq_client::push::{
    ConsumeFromWhere, ConsumeStatus, Listener, PushConsumer, PushConsumerOptions,
};
use ringmq_client::{ConnectOptions, Message, ReceivedMessage, TopicRoute};
use ringmq_namesrv::{Namesrv, NamesrvConfig};

const TOPIC: &str = "ClusterTopic";
const PERIOD: Duration = Duration::from_millis(500);

fn namesrv(dir: &Path, port: u16) -> Namesrv {
    Namesrv::start(NamesrvConfig {
        listen_port: port,
        kv_config_path: dir.join("kvConfig.json"),
        scan_not_active_broker_interval: Duration::from_millis(100),
        ..NamesrvConfig::default()
    })
    .expect("name server starts")
}

fn broker_config(dir: &Path, name: &str, namesrv_addr: &str) -> BrokerConfig {
    BrokerConfig {
        broker_name: name.into(),
        store_path_root_dir: dir.to_path_buf(),
        listen_port: 0,
        ha_listen_port: 0,
        pin_threads: false,
        mapped_file_size_commit_log: 16 << 20,
        tail_ring_bytes: 32 << 20,
        namesrv_addr: Some(namesrv_addr.into()),
        register_name_server_period: PERIOD,
        ..BrokerConfig::default()
    }
}

fn create_topic(addr: &str, queues: i32) {
    let conn = ringmq_client::Connection::connect(addr).expect("connect");
    ringmq_client::create_topic(
        &conn,
        TOPIC,
        queues,
        ringmq_remoting::codes::SerializeType::Json,
        Duration::from_secs(3),
    )
    .expect("topic created");
}

/// broker name -> broker ids, as `ns` routes TOPIC (empty when it has no route).
fn groups(ns: &Namesrv) -> BTreeMap<String, Vec<i64>> {
    ns.route(TOPIC)
        .map(|r| {
            r.broker_datas
                .into_iter()
                .map(|b| (b.broker_name, b.broker_addrs.into_keys().collect()))
                .collect()
        })
        .unwrap_or_default()
}

fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

fn expect(pairs: &[(&str, &[i64])]) -> BTreeMap<String, Vec<i64>> {
    pairs
        .iter()
        .map(|(n, ids)| (n.to_string(), ids.to_vec()))
        .collect()
}

/// Sends `n` messages; returns the count per group.
fn send(p: &ClusterProducer, n: usize) -> BTreeMap<String, usize> {
    let mut per_group = BTreeMap::new();
    for i in 0..n {
        let sent = p
            .send(TOPIC, Message::new(format!("m{i}")))
            .expect("sent to some group");
        *per_group.entry(sent.queue.broker_name).or_insert(0) += 1;
    }
    per_group
}

#[test]
fn two_groups_behind_two_name_servers() {
    let dir = tempfile::tempdir().unwrap();
    let ns1 = namesrv(&dir.path().join("ns1"), 0);
    let mut ns2 = namesrv(&dir.path().join("ns2"), 0);
    let ns_list = format!("{};{}", ns1.local_addr(), ns2.local_addr());

    let a0 = Node::start(broker_config(&dir.path().join("a0"), "broker-a", &ns_list)).unwrap();
    let a_ha = a0.ha_addr().unwrap().to_string();
    let a1 = Node::start(BrokerConfig {
        broker_role: BrokerRole::Slave,
        broker_id: 1,
        ha_master_address: Some(a_ha.clone()),
        master_remoting_address: Some(a0.addr().to_string()),
        slave_sync_initial_delay: Duration::from_millis(50),
        slave_sync_interval: Duration::from_millis(200),
        ..broker_config(&dir.path().join("a1"), "broker-a", &ns_list)
    })
    .unwrap();
    let b0 = Node::start(broker_config(&dir.path().join("b0"), "broker-b", &ns_list)).unwrap();
    // broker-b's slave has no haMasterAddress: the name servers name its master.
    let b1 = Node::start(BrokerConfig {
        broker_role: BrokerRole::Slave,
        broker_id: 1,
        slave_sync_initial_delay: Duration::from_millis(50),
        slave_sync_interval: Duration::from_millis(200),
        ..broker_config(&dir.path().join("b1"), "broker-b", &ns_list)
    })
    .unwrap();
    create_topic(&a0.addr().to_string(), 4);
    create_topic(&b0.addr().to_string(), 4);

    // The new topic reaches both name servers (a topic change registers at once), and
    // the slave joins its group once its metadata sync has copied the topic.
    let both = expect(&[("broker-a", &[0, 1]), ("broker-b", &[0, 1])]);
    for ns in [&ns1, &ns2] {
        wait_until("both groups in the route", Duration::from_secs(10), || {
            groups(ns) == both
        });
    }
    // The slave was told its master's addresses by the name servers.
    let told = a1.registrar().unwrap().last_result().unwrap();
    assert_eq!(told.master_addr, Some(a0.addr().to_string()));
    assert_eq!(told.ha_server_addr, Some(a_ha));

    // A producer that knows only the name servers spreads over both groups.
    let producer = ClusterProducer::connect(&ns_list, "ClusterPG").unwrap();
    assert_eq!(producer.write_queues(TOPIC).unwrap().len(), 8);
    let spread = send(&producer, 400);
    eprintln!("400 messages per group: {spread:?}");
    assert_eq!(spread.get("broker-a"), Some(&200));
    assert_eq!(spread.get("broker-b"), Some(&200));
    assert_eq!(producer.failures(), 0);

    // A push consumer given a name server rebalances over both groups' queues and
    // receives every message.
    let received = Arc::new(Mutex::new(BTreeSet::new()));
    let seen = received.clone();
    // The list starts with an address nobody listens on: the next one is used.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut opts = PushConsumerOptions::new(format!("{dead};{ns_list}"), "ClusterCG");
    opts.consume_from = ConsumeFromWhere::FirstOffset;
    let consumer = PushConsumer::new(opts)
        .subscribe(TOPIC, "*")
        .start(Listener::concurrently(move |msgs: &[ReceivedMessage]| {
            let mut seen = seen.lock().unwrap();
            seen.extend(msgs.iter().map(|m| m.body.clone()));
            ConsumeStatus::Success
        }))
        .unwrap();
    wait_until("every message consumed", Duration::from_secs(20), || {
        received.lock().unwrap().len() == 400
    });
    // Its queues of the topic (the group's %RETRY% topic is subscribed too).
    let assigned: Vec<_> = consumer
        .assigned()
        .into_iter()
        .filter(|q| q.topic == TOPIC)
        .collect();
    let held: BTreeSet<&str> = assigned.iter().map(|q| q.broker_name.as_str()).collect();
    assert_eq!(assigned.len(), 8);
    assert_eq!(held.len(), 2, "{held:?}");
    consumer.shutdown();

    // The slave that found its master through the name servers holds the same bytes.
    let log_of = |n: &Node| n.broker().store.commitlog().clone();
    let end = log_of(&b0).max_offset();
    wait_until(
        "broker-b's slave to catch up",
        Duration::from_secs(10),
        || log_of(&b1).max_offset() == end,
    );
    let first_segment = |d: &str| {
        std::fs::read(
            dir.path()
                .join(d)
                .join("commitlog")
                .join(format!("{:020}", 0)),
        )
        .unwrap()
    };
    let (m, s) = (first_segment("b0"), first_segment("b1"));
    assert!(
        end > 0 && m[..end as usize] == s[..end as usize],
        "slave bytes differ"
    );
    eprintln!(
        "broker-b's slave (master found through the name servers) holds the master's {end} bytes"
    );
    b1.shutdown().unwrap();

    // A name server restarted empty: every broker registers again within one period.
    let port = ns2.local_addr().port();
    ns2.stop();
    ns2 = namesrv(&dir.path().join("ns2"), port);
    let now_live = expect(&[("broker-a", &[0, 1]), ("broker-b", &[0])]);
    assert_eq!(groups(&ns1), now_live, "the stopped slave left the routes");
    let took = wait_until("re-registration", PERIOD * 4, || groups(&ns2) == now_live);
    eprintln!("routes back on the restarted name server after {took:?} (period {PERIOD:?})");
    assert!(took <= PERIOD * 2, "took {took:?}");

    // broker-b's master shuts down: it unregisters, and its routes are gone at once.
    b0.shutdown().unwrap();
    let only_a = expect(&[("broker-a", &[0, 1])]);
    assert_eq!(groups(&ns1), only_a);
    assert_eq!(groups(&ns2), only_a);
    // The producer keeps sending: to broker-a only, after at most a failure or two.
    let after = send(&producer, 100);
    eprintln!(
        "100 messages after broker-b stopped: {after:?}, {} failed attempts",
        producer.failures()
    );
    assert_eq!(after.get("broker-a"), Some(&100));
    assert!(producer.failures() <= 2);

    a1.shutdown().unwrap();
    a0.shutdown().unwrap();
    assert!(ns1.route(TOPIC).is_none());
    ns1.stop();
    ns2.stop();
}

#[test]
fn a_killed_master_leaves_the_routes_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namesrv(&dir.path().join("ns"), 0);
    let log = dir.path().join("broker-b.log");
    let args: Vec<String> = [
        "--broker-name",
        "broker-b",
        "--listen-port",
        "0",
        "--set",
        "haListenPort=0",
        "--set",
        &format!("namesrvAddr={}", ns.local_addr()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut b0 = common_ha::BrokerProc::spawn("broker-b", &dir.path().join("b0"), &log, &args);
    create_topic(&b0.addr, 2);
    wait_until("broker-b registered", Duration::from_secs(10), || {
        groups(&ns) == expect(&[("broker-b", &[0])])
    });
    let names = NameServers::new(&ns.local_addr().to_string(), ConnectOptions::default()).unwrap();
    let route: TopicRoute = names.fetch_route(TOPIC).unwrap();
    assert_eq!(route.write_queues().len(), 2);

    // SIGKILL: no UNREGISTER_BROKER; the closed connection unregisters it, well before
    // the 120 s expiry.
    let killed = Instant::now();
    b0.kill();
    wait_until("broker-b to leave", Duration::from_secs(5), || {
        ns.route(TOPIC).is_none()
    });
    eprintln!(
        "killed master left the routes {:?} after SIGKILL",
        killed.elapsed()
    );
    assert!(ns.cluster_info().broker_addr_table.is_empty());
    ns.stop();
}
