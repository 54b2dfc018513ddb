//! An in-process broker on 127.0.0.1 with a free port and a temporary store.
#![allow(dead_code)]

use std::path::Path;

use ringmq_broker::BrokerConfig;
use ringmq_broker::Server;

pub struct TestBroker {
    pub server: Option<Server>,
    pub addr: String,
}

pub fn config(store: &Path) -> BrokerConfig {
    BrokerConfig {
        store_path_root_dir: store.to_path_buf(),
        listen_port: 0,
        pin_threads: false,
        mapped_file_size_commit_log: 16 << 20,
        tail_ring_bytes: 32 << 20,
        ..Default::default()
    }
}

/// [`config`] with `messageDelayLevel` set to `levels` (short delays for tests).
pub fn config_with_delay_levels(store: &Path, levels: &str) -> BrokerConfig {
    let mut cfg = config(store);
    cfg.message_delay_level =
        ringmq_engine::delay_levels::DelayLevels::parse(levels).expect("delay levels parse");
    cfg
}

pub fn start_with(cfg: BrokerConfig) -> TestBroker {
    let server = Server::open(cfg).expect("broker serves");
    let addr = server.local_addr().to_string();
    TestBroker {
        server: Some(server),
        addr,
    }
}

pub fn start(store: &Path) -> TestBroker {
    start_with(config(store))
}

impl TestBroker {
    pub fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().expect("clean shutdown");
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Creates `topic` with `queues` queues on the broker at `addr`.
pub fn create_topic(addr: &str, topic: &str, queues: i32) {
    let conn = ringmq_client::Connection::connect(addr).expect("connect");
    ringmq_client::create_topic(
        &conn,
        topic,
        queues,
        ringmq_remoting::codes::SerializeType::Json,
        std::time::Duration::from_secs(3),
    )
    .expect("topic created");
}

/// Long-polls `mq` from `from` until `want` returns true for what has arrived (or panics
/// after `within`).
pub fn pull_until(
    c: &ringmq_client::PullConsumer,
    mq: &ringmq_client::MessageQueue,
    from: i64,
    within: std::time::Duration,
    want: impl Fn(&[ringmq_client::ReceivedMessage]) -> bool,
) -> Vec<ringmq_client::ReceivedMessage> {
    let deadline = std::time::Instant::now() + within;
    let mut got = Vec::new();
    let mut offset = from;
    while !want(&got) {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} messages arrived in {mq:?}",
            got.len()
        );
        let r = c
            .pull(mq, offset, 32, Some(std::time::Duration::from_millis(500)))
            .unwrap();
        if r.status == ringmq_client::PullStatus::Found {
            got.extend(r.messages);
        }
        offset = r.next_begin_offset;
    }
    got
}
