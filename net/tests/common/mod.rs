//! An in-process broker on 127.0.0.1 with a free port and a temporary store.
#![allow(dead_code)]

use std::path::Path;

use ringmq_net::broker::BrokerConfig;
use ringmq_net::server::Server;

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
