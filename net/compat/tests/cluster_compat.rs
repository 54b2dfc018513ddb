//! Compatibility across a cluster: two ringmq broker groups register with two ringmq name
//! servers (all in-process on 127.0.0.1); the unmodified `rocketmq-client-rust` 1.0.0
//! producer, given only the name server list, spreads its messages over both groups, and
//! its push consumer group receives every one. Then one group's master stops (it
//! unregisters) and the producer keeps sending to the other group; the failed sends are
//! counted.
//!
//! Optional env: RINGMQ_CLUSTER_COMPAT_MESSAGES (20000), RINGMQ_COMPAT_TIMEOUT_SECS (180).

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringmq_broker::{BrokerConfig, Node};
use ringmq_namesrv::{Namesrv, NamesrvConfig};
use rocketmq_client_rust::{
    ClientRuntime, ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus, DefaultMQProducer,
    DefaultMQPushConsumer, MQPushConsumer, SendStatus,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_single::Message;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

const TOPIC: &str = "compat_cluster";
const QUEUES: i32 = 4;

fn namesrv(dir: &Path) -> Namesrv {
    Namesrv::start(NamesrvConfig {
        listen_port: 0,
        kv_config_path: dir.join("kvConfig.json"),
        ..NamesrvConfig::default()
    })
    .expect("name server starts")
}

fn master(dir: &Path, name: &str, namesrv_addr: &str) -> Node {
    Node::start(BrokerConfig {
        broker_name: name.into(),
        store_path_root_dir: dir.to_path_buf(),
        listen_port: 0,
        ha_listen_port: 0,
        pin_threads: false,
        mapped_file_size_commit_log: 64 << 20,
        tail_ring_bytes: 32 << 20,
        namesrv_addr: Some(namesrv_addr.into()),
        register_name_server_period: Duration::from_secs(1),
        ..BrokerConfig::default()
    })
    .expect("broker starts")
}

fn route_groups(ns: &Namesrv) -> usize {
    ns.route(TOPIC).map_or(0, |r| r.broker_datas.len())
}

#[test]
fn a_rocketmq_client_spreads_over_two_groups_through_two_name_servers() {
    let dir = tempfile::tempdir().unwrap();
    let ns1 = namesrv(&dir.path().join("ns1"));
    let ns2 = namesrv(&dir.path().join("ns2"));
    let ns_list = format!("{};{}", ns1.local_addr(), ns2.local_addr());
    let a0 = master(&dir.path().join("a0"), "broker-a", &ns_list);
    let b0 = master(&dir.path().join("b0"), "broker-b", &ns_list);
    for node in [&a0, &b0] {
        let conn = ringmq_client::Connection::connect(node.addr()).unwrap();
        ringmq_client::create_topic(
            &conn,
            TOPIC,
            QUEUES,
            ringmq_remoting::codes::SerializeType::Json,
            Duration::from_secs(3),
        )
        .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while route_groups(&ns1) < 2 || route_groups(&ns2) < 2 {
        assert!(
            Instant::now() < deadline,
            "both groups never reached both name servers"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let total: u32 = common::env_or("RINGMQ_CLUSTER_COMPAT_MESSAGES", 20_000);
    let timeout = Duration::from_secs(common::env_or("RINGMQ_COMPAT_TIMEOUT_SECS", 180));
    let (owner, client_runtime) = common::build_client_runtime("cluster-compat");
    let mut b0 = Some(b0);
    let result = owner.block_on(run(
        ns_list,
        total,
        timeout,
        Arc::clone(&client_runtime),
        &mut b0,
    ));
    let _ = owner.block_on(client_runtime.shutdown());
    drop(client_runtime);
    owner
        .shutdown_runtime_blocking()
        .expect("runtime shutdown outside async context");
    if let Some(b0) = b0 {
        b0.shutdown().unwrap();
    }
    a0.shutdown().unwrap();
    ns1.stop();
    ns2.stop();
    if let Err(e) = result {
        panic!("cluster compat run failed: {e}");
    }
}

async fn send_many(
    producer: &DefaultMQProducer,
    seqs: std::ops::Range<u32>,
) -> (BTreeMap<String, u32>, u32) {
    let mut per_group = BTreeMap::new();
    let mut failed = 0;
    for seq in seqs {
        let msg = Message::builder()
            .topic(TOPIC)
            .body_slice(seq.to_string().as_bytes())
            .build()
            .expect("message builds");
        match producer.send_with_timeout(msg, 5_000).await {
            Ok(Some(r)) if r.send_status == SendStatus::SendOk => {
                let group = r
                    .message_queue
                    .map(|q| q.broker_name().to_string())
                    .unwrap_or_default();
                *per_group.entry(group).or_insert(0) += 1;
            }
            _ => failed += 1,
        }
    }
    (per_group, failed)
}

async fn run(
    ns_list: String,
    total: u32,
    timeout: Duration,
    client_runtime: Arc<ClientRuntime>,
    b0: &mut Option<Node>,
) -> Result<(), BoxError> {
    let started = Instant::now();
    let mut producer = DefaultMQProducer::builder(Arc::clone(&client_runtime))
        .producer_group("cluster_compat_producer")
        .name_server_addr(ns_list.clone())
        .send_msg_timeout(5_000)
        .build();
    producer.start().await?;
    let (per_group, failed) = send_many(&producer, 0..total).await;
    eprintln!(
        "sent {total} through the name servers in {:?}: per group {per_group:?}, failed {failed}",
        started.elapsed()
    );
    if failed > 0 || per_group.len() != 2 || per_group.values().any(|&n| n < total / 4) {
        return Err(format!("uneven or failed spread: {per_group:?}, {failed} failed").into());
    }

    let received = Arc::new(Mutex::new(HashSet::new()));
    let seen = Arc::clone(&received);
    let mut consumer = DefaultMQPushConsumer::builder(Arc::clone(&client_runtime))
        .consumer_group("cluster_compat_group")
        .name_server_addr(ns_list.clone())
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .build();
    consumer.subscribe(TOPIC, "*").await?;
    consumer.register_message_listener_concurrently(
        move |msgs: &[&MessageExt], _ctx: &ConsumeConcurrentlyContext| {
            let mut seen = seen.lock().expect("listener mutex");
            for m in msgs {
                if let Some(seq) = m
                    .body()
                    .and_then(|b| std::str::from_utf8(&b).ok()?.parse::<u32>().ok())
                {
                    seen.insert(seq);
                }
            }
            Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
        },
    );
    consumer.start().await?;
    let deadline = Instant::now() + timeout;
    while received.lock().expect("mutex").len() < total as usize && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    consumer.shutdown().await;
    let got = received.lock().expect("mutex").len();
    eprintln!(
        "consumer group received {got} distinct of {total} at {:?}",
        started.elapsed()
    );
    if got != total as usize {
        return Err(format!("consumer group received {got} of {total}").into());
    }

    // broker-b's master stops (unregistering from both name servers); the producer's
    // cached route still names it until its sends fail over.
    b0.take().expect("broker-b running").shutdown()?;
    let after = 1_000;
    let (per_group, failed) = send_many(&producer, total..total + after).await;
    eprintln!("after broker-b stopped: {after} sends, per group {per_group:?}, failed {failed}");
    producer.shutdown().await;
    if per_group.contains_key("broker-b")
        || per_group.get("broker-a").copied().unwrap_or(0) + failed != after
    {
        return Err(format!("after broker-b stopped: {per_group:?}, {failed} failed").into());
    }
    Ok(())
}
