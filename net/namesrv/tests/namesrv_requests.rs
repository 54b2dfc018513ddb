//! A name server on 127.0.0.1 driven over the wire by the project client: registration
//! from two broker groups, routes across both, a closed connection unregistering at once,
//! expiry, cluster info, topic lists and the persisted KV config.

use std::thread::sleep;
use std::time::{Duration, Instant};

use ringmq_client::{fetch_route, ClientError, Connection};
use ringmq_namesrv::processor::body_crc32;
use ringmq_namesrv::{Namesrv, NamesrvConfig};
use ringmq_remoting::codes::{request_code as rq, response_code as rs};
use ringmq_remoting::RemotingCommand;

fn config(dir: &std::path::Path) -> NamesrvConfig {
    NamesrvConfig {
        listen_port: 0,
        kv_config_path: dir.join("kvConfig.json"),
        scan_not_active_broker_interval: Duration::from_millis(50),
        ..NamesrvConfig::default()
    }
}

fn register_body(topics: &[(&str, i32)]) -> Vec<u8> {
    let table: serde_json::Map<String, serde_json::Value> = topics
        .iter()
        .map(|(t, q)| {
            let c = serde_json::json!({"topicName": t, "readQueueNums": q, "writeQueueNums": q,
                "perm": 6, "topicFilterType": "SINGLE_TAG", "topicSysFlag": 0, "order": false, "attributes": {}});
            (t.to_string(), c)
        })
        .collect();
    serde_json::json!({
        "topicConfigSerializeWrapper": {
            "dataVersion": {"counter": 1, "stateVersion": 0, "timestamp": 1},
            "topicConfigTable": table,
        },
        "filterServerList": [],
    })
    .to_string()
    .into_bytes()
}

fn register(
    conn: &Connection,
    name: &str,
    id: i64,
    addr: &str,
    topics: &[(&str, i32)],
    timeout_ms: Option<i64>,
) -> RemotingCommand {
    // Like a RocketMQ broker, each also has a topic named after its group.
    let mut topics = topics.to_vec();
    topics.push((name, 1));
    let body = register_body(&topics);
    let mut req = RemotingCommand::request(rq::REGISTER_BROKER)
        .with_ext("brokerName", name)
        .with_ext("brokerAddr", addr)
        .with_ext("clusterName", "DefaultCluster")
        .with_ext("haServerAddr", format!("{addr}-ha"))
        .with_ext("brokerId", id)
        .with_ext("enableActingMaster", false)
        .with_ext("compressed", false)
        .with_ext("bodyCrc32", body_crc32(&body));
    if let Some(ms) = timeout_ms {
        req.set_ext("heartbeatTimeoutMillis", ms);
    }
    let resp = conn
        .request(req.with_body(body), Duration::from_secs(3))
        .unwrap();
    assert_eq!(resp.code, rs::SUCCESS, "{:?}", resp.remark);
    resp
}

fn groups(route: &ringmq_client::TopicRoute) -> Vec<(String, Vec<i64>)> {
    let mut g: Vec<_> = route
        .broker_datas
        .iter()
        .map(|b| {
            (
                b.broker_name.clone(),
                b.broker_addrs.keys().copied().collect(),
            )
        })
        .collect();
    g.sort();
    g
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(10));
    }
}

#[test]
fn routes_span_groups_and_a_closed_connection_unregisters_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let ns = Namesrv::start(config(dir.path())).unwrap();
    let addr = ns.local_addr();
    let a0 = Connection::connect(addr).unwrap();
    let a1 = Connection::connect(addr).unwrap();
    let b0 = Connection::connect(addr).unwrap();
    register(&a0, "broker-a", 0, "10.0.0.1:10911", &[("T", 4)], None);
    let slave = register(&a1, "broker-a", 1, "10.0.0.2:10911", &[("T", 4)], None);
    assert_eq!(slave.ext("masterAddr"), Some("10.0.0.1:10911"));
    assert_eq!(slave.ext("haServerAddr"), Some("10.0.0.1:10911-ha"));
    register(
        &b0,
        "broker-b",
        0,
        "10.0.0.3:10911",
        &[("T", 2), ("OnlyB", 1)],
        None,
    );

    let client = Connection::connect(addr).unwrap();
    let route = fetch_route(&client, "T").unwrap();
    assert_eq!(
        groups(&route),
        [
            ("broker-a".into(), vec![0, 1]),
            ("broker-b".into(), vec![0])
        ]
    );
    assert_eq!(route.write_queues().len(), 6);
    match fetch_route(&client, "Nope") {
        Err(ClientError::Broker { code, .. }) => assert_eq!(code, rs::TOPIC_NOT_EXIST),
        other => panic!("{other:?}"),
    }

    let info = client
        .request(
            RemotingCommand::request(rq::GET_BROKER_CLUSTER_INFO),
            Duration::from_secs(3),
        )
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.body).unwrap();
    assert_eq!(
        info["brokerAddrTable"]["broker-a"]["brokerAddrs"]["1"],
        "10.0.0.2:10911"
    );
    assert_eq!(
        info["clusterAddrTable"]["DefaultCluster"],
        serde_json::json!(["broker-a", "broker-b"])
    );
    let list = client
        .request(
            RemotingCommand::request(rq::GET_ALL_TOPIC_LIST_FROM_NAMESERVER),
            Duration::from_secs(3),
        )
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&list.body).unwrap();
    assert_eq!(
        list["topicList"],
        serde_json::json!(["OnlyB", "T", "broker-a", "broker-b"])
    );

    // broker-a's master goes away: its address leaves the routes at once, and producers
    // no longer see broker-a's queues as writable.
    a0.close();
    wait_until("the master to leave", || {
        groups(&fetch_route(&client, "T").unwrap())[0].1 == [1]
    });
    let route = fetch_route(&client, "T").unwrap();
    assert_eq!(route.write_queues().len(), 2);
    assert_eq!(route.read_queues().len(), 6);
    b0.close();
    wait_until("broker-b to leave", || {
        fetch_route(&client, "OnlyB").is_err()
    });
    assert_eq!(
        groups(&fetch_route(&client, "T").unwrap()),
        [("broker-a".into(), vec![1])]
    );
    ns.stop();
}

#[test]
fn silent_brokers_expire_and_unregister_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.broker_channel_expired_time = Duration::from_millis(300);
    let ns = Namesrv::start(cfg).unwrap();
    let conn = Connection::connect(ns.local_addr()).unwrap();
    register(&conn, "broker-a", 0, "10.0.0.1:10911", &[("T", 4)], None);
    register(
        &conn,
        "broker-b",
        0,
        "10.0.0.3:10911",
        &[("T", 4)],
        Some(60_000),
    );
    let started = Instant::now();
    wait_until("broker-a to expire", || {
        ns.route("T").unwrap().broker_datas.len() == 1
    });
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!(
        ns.route("T").unwrap().broker_datas[0].broker_name,
        "broker-b"
    );

    let unregister = RemotingCommand::request(rq::UNREGISTER_BROKER)
        .with_ext("brokerName", "broker-b")
        .with_ext("brokerAddr", "10.0.0.3:10911")
        .with_ext("clusterName", "DefaultCluster")
        .with_ext("brokerId", 0);
    let resp = conn.request(unregister, Duration::from_secs(3)).unwrap();
    assert_eq!(resp.code, rs::SUCCESS);
    assert!(ns.route("T").is_none());
    assert!(ns.cluster_info().broker_addr_table.is_empty());
    ns.stop();
}

#[test]
fn the_kv_config_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let kv = |conn: &Connection, code: i32, fields: &[(&str, &str)]| {
        let mut req = RemotingCommand::request(code);
        for (k, v) in fields {
            req.set_ext(*k, v);
        }
        conn.request(req, Duration::from_secs(3)).unwrap()
    };
    let ns = Namesrv::start(config(dir.path())).unwrap();
    let conn = Connection::connect(ns.local_addr()).unwrap();
    let put = [
        ("namespace", "ORDER_TOPIC_CONFIG"),
        ("key", "T"),
        ("value", "broker-a:4"),
    ];
    assert_eq!(kv(&conn, rq::PUT_KV_CONFIG, &put).code, rs::SUCCESS);
    let put2 = [("namespace", "ns"), ("key", "k"), ("value", "v")];
    assert_eq!(kv(&conn, rq::PUT_KV_CONFIG, &put2).code, rs::SUCCESS);
    assert_eq!(
        kv(
            &conn,
            rq::DELETE_KV_CONFIG,
            &[("namespace", "ns"), ("key", "k")]
        )
        .code,
        rs::SUCCESS
    );
    let missing = kv(&conn, rq::PUT_KV_CONFIG, &[("namespace", "ns")]);
    assert_eq!(missing.code, rs::SYSTEM_ERROR);
    // A registering broker gets the ORDER_TOPIC_CONFIG namespace back.
    let resp = register(&conn, "broker-a", 0, "10.0.0.1:10911", &[("T", 4)], None);
    let table: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(table["table"]["T"], "broker-a:4");
    drop(conn);
    ns.stop();

    let ns = Namesrv::start(config(dir.path())).unwrap();
    let conn = Connection::connect(ns.local_addr()).unwrap();
    let got = kv(
        &conn,
        rq::GET_KV_CONFIG,
        &[("namespace", "ORDER_TOPIC_CONFIG"), ("key", "T")],
    );
    assert_eq!(
        (got.code, got.ext("value")),
        (rs::SUCCESS, Some("broker-a:4"))
    );
    let gone = kv(
        &conn,
        rq::GET_KV_CONFIG,
        &[("namespace", "ns"), ("key", "k")],
    );
    assert_eq!(gone.code, rs::QUERY_NOT_FOUND);
    let list = kv(
        &conn,
        rq::GET_KVLIST_BY_NAMESPACE,
        &[("namespace", "ORDER_TOPIC_CONFIG")],
    );
    let table: serde_json::Value = serde_json::from_slice(&list.body).unwrap();
    assert_eq!(table, serde_json::json!({"table": {"T": "broker-a:4"}}));
    let none = kv(
        &conn,
        rq::GET_KVLIST_BY_NAMESPACE,
        &[("namespace", "nothing")],
    );
    assert_eq!(none.code, rs::QUERY_NOT_FOUND);
    // Routes did not survive: brokers re-register.
    assert!(fetch_route(&conn, "T").is_err());
    ns.stop();
}
