//! Shared by the compatibility tests: a ringmq broker to point the client at, and env knobs.
#![allow(dead_code)]

use ringmq_net::broker::BrokerConfig;
use ringmq_net::server::Server;

/// `name` parsed from the environment, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// A ringmq broker on a free loopback port with a temporary store, unpinned (tests share
/// the machine's cores).
pub fn start_broker() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = BrokerConfig {
        store_path_root_dir: dir.path().to_path_buf(),
        listen_port: 0,
        pin_threads: false,
        mapped_file_size_commit_log: 64 << 20,
        tail_ring_bytes: 32 << 20,
        ..Default::default()
    };
    let server = Server::open(cfg).expect("broker serves");
    (dir, server)
}
