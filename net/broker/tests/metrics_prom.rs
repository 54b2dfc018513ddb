//! `/metrics` with `metricsExporterType=PROM` on a master with a slave, scraped while
//! producers run: per-topic messages and bytes in only grow and never pass what was sent,
//! and equal it exactly once the producers are done; pulls show up as messages out;
//! messages pulled and not committed are in flight; replication lag is reported per
//! slave; the send failure counters, RocketMQ's storage gauges and the writer's flush,
//! group-commit and io_uring figures are there.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ringmq_broker::{BrokerConfig, BrokerRole, Node};
use ringmq_client::{Message, MessageQueue, Producer, PullConsumer};

fn config(dir: &std::path::Path, role: BrokerRole) -> BrokerConfig {
    BrokerConfig {
        store_path_root_dir: dir.to_path_buf(),
        listen_port: 0,
        ha_listen_port: 0,
        pin_threads: false,
        broker_role: role,
        broker_id: if role == BrokerRole::Slave { 1 } else { 0 },
        mapped_file_size_commit_log: 16 << 20,
        tail_ring_bytes: 32 << 20,
        ..Default::default()
    }
}

fn scrape(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    body.to_string()
}

/// The value of the sample of `name` whose labels include every one of `labels`.
fn value(doc: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    doc.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn metrics_prom_counts_what_the_load_sent() {
    let mdir = tempfile::tempdir().unwrap();
    let sdir = tempfile::tempdir().unwrap();
    let mut mcfg = config(mdir.path(), BrokerRole::AsyncMaster);
    mcfg.metrics_exporter_type = "PROM".into();
    mcfg.metrics_prom_exporter_host = "127.0.0.1".into();
    mcfg.metrics_prom_exporter_port = 0;
    let master = Node::start(mcfg).expect("master starts");
    let mut scfg = config(sdir.path(), BrokerRole::Slave);
    scfg.ha_master_address = Some(master.ha_addr().unwrap().to_string());
    scfg.master_remoting_address = Some(master.addr().to_string());
    let slave = Node::start(scfg).expect("slave starts");
    let metrics = master
        .broker()
        .metrics
        .exporter_addr()
        .expect("exporter on");
    let addr = master.addr().to_string();

    // Two producers, two topics, bodies of known sizes.
    let plan: [(&str, usize, usize); 2] = [("MetricsA", 400, 100), ("MetricsB", 250, 37)];
    let loads: Vec<_> = plan
        .iter()
        .map(|&(topic, n, size)| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let p = Producer::connect(&addr, &format!("pg_{topic}")).unwrap();
                for i in 0..n {
                    let mq = MessageQueue::new(topic, "broker-a", (i % 2) as i32);
                    p.send_to(&mq, Message::new(vec![b'x'; size])).unwrap();
                }
            })
        })
        .collect();
    // Scrapes during the load: counters grow and never pass what is being sent.
    let mut last: BTreeMap<&str, f64> = BTreeMap::new();
    while !loads.iter().all(|h| h.is_finished()) {
        let doc = scrape(metrics);
        for &(topic, n, size) in &plan {
            let msgs =
                value(&doc, "rocketmq_messages_in_total", &[("topic", topic)]).unwrap_or(0.0);
            let bytes =
                value(&doc, "rocketmq_throughput_in_total", &[("topic", topic)]).unwrap_or(0.0);
            assert!(
                msgs <= n as f64 && bytes == msgs * size as f64,
                "{topic}: {msgs} {bytes}"
            );
            assert!(
                msgs >= *last.get(topic).unwrap_or(&0.0),
                "{topic} went backwards"
            );
            last.insert(topic, msgs);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    for h in loads {
        h.join().unwrap();
    }
    let doc = scrape(metrics);
    for &(topic, n, size) in &plan {
        let labels = [
            ("topic", topic),
            ("cluster", "DefaultCluster"),
            ("node_type", "broker"),
            ("node_id", "broker-a"),
            ("message_type", "Normal"),
            ("is_system", "false"),
        ];
        assert_eq!(
            value(&doc, "rocketmq_messages_in_total", &labels),
            Some(n as f64),
            "{doc}"
        );
        assert_eq!(
            value(&doc, "rocketmq_throughput_in_total", &labels),
            Some((n * size) as f64)
        );
    }

    // Messages out, per topic and group.
    let c = PullConsumer::connect(&addr, "metrics_cg").unwrap();
    let got = c
        .pull(&MessageQueue::new("MetricsA", "broker-a", 0), 0, 32, None)
        .unwrap();
    let pulled = got.messages.len() as f64;
    assert!(pulled > 0.0);
    let doc = scrape(metrics);
    let out = [
        ("topic", "MetricsA"),
        ("consumer_group", "metrics_cg"),
        ("is_retry", "false"),
    ];
    assert_eq!(
        value(&doc, "rocketmq_messages_out_total", &out),
        Some(pulled)
    );
    assert!(value(&doc, "rocketmq_throughput_out_total", &out).unwrap() >= pulled * 100.0);
    // In flight: pulled and not committed, then committed.
    let inflight = [("topic", "MetricsA"), ("consumer_group", "metrics_cg")];
    assert_eq!(
        value(&doc, "rocketmq_consumer_inflight_messages", &inflight),
        Some(pulled)
    );
    let mq0 = MessageQueue::new("MetricsA", "broker-a", 0);
    c.update_offset("metrics_cg", &mq0, pulled as i64 - 2)
        .unwrap();
    let doc = scrape(metrics);
    assert_eq!(
        value(&doc, "rocketmq_consumer_inflight_messages", &inflight),
        Some(2.0)
    );

    // Replication lag per slave: reported, and 0 once the slave has everything.
    let end = master.broker().store.commitlog().max_offset();
    wait_until("the slave to catch up", || {
        slave.broker().store.commitlog().max_offset() >= end
            && value(&scrape(metrics), "ringmq_replication_lag_bytes", &[]) == Some(0.0)
    });
    let doc = scrape(metrics);
    assert_eq!(value(&doc, "ringmq_replication_slaves", &[]), Some(1.0));
    assert!(doc.contains("ringmq_replication_lag_bytes{"), "{doc}");
    assert!(doc.contains("slave=\"127.0.0.1:"), "{doc}");
    for name in [
        "ringmq_send_failures_total",
        "rocketmq_storage_flush_behind_bytes",
        "rocketmq_storage_dispatch_behind_bytes",
        "rocketmq_storage_size",
        "rocketmq_producer_connections",
        "rocketmq_rpc_latency_bucket",
        "ringmq_ha_transfer_bytes_total",
        "rocketmq_send_to_dlq_messages_total",
        "ringmq_sync_master_waiters",
        "ringmq_sync_master_wait_bucket",
        "ringmq_group_commit_appends_bucket",
    ] {
        assert!(doc.contains(name), "{name} missing:\n{doc}");
    }
    assert_eq!(
        value(
            &doc,
            "ringmq_send_failures_total",
            &[("code", "FLUSH_SLAVE_TIMEOUT")]
        ),
        Some(0.0)
    );
    assert!(
        value(
            &doc,
            "rocketmq_rpc_latency_count",
            &[("request_code", "send_message_v2")]
        )
        .unwrap()
            >= 650.0
    );

    // The writer's own: ASYNC_FLUSH fdatasyncs (every 500 ms) and io_uring submissions.
    wait_until("an fdatasync in the flush histogram", || {
        value(
            &scrape(metrics),
            "ringmq_flush_latency_count",
            &[("flush_disk_type", "ASYNC_FLUSH")],
        )
        .is_some_and(|n| n >= 1.0)
    });
    let doc = scrape(metrics);
    let sqes = value(
        &doc,
        "ringmq_io_uring_submissions_total",
        &[("what", "sqes")],
    )
    .unwrap();
    let enters = value(
        &doc,
        "ringmq_io_uring_submissions_total",
        &[("what", "enters")],
    )
    .unwrap();
    assert!(sqes >= 1.0 && enters >= 1.0, "{sqes} {enters}");

    // Anything else is 404; the endpoint goes away with the broker.
    let mut s = TcpStream::connect(metrics).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
    drop(c);
    slave.shutdown().unwrap();
    master.shutdown().unwrap();
    assert!(TcpStream::connect(metrics).is_err(), "exporter stopped");
}
