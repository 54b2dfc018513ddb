//! Shared by the compatibility tests: a ringmq broker to point the client at, the
//! rocketmq-client-rust runtime (with its one needed knob), and env knobs.
#![allow(dead_code)]

use std::sync::Arc;

use ringmq_broker::BrokerConfig;
use ringmq_broker::Server;
use rocketmq_client_rust::{ClientRuntime, ClientRuntimeConfig, TelemetryHandle};
use rocketmq_runtime::{RuntimeConfig, RuntimeOwner};

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

/// The rocketmq-client-rust runtime its producers and consumers run on.
///
/// The client quirk: the push consumer runs every listener call through the runtime's
/// metadata-io blocking lane (ClientRuntime -> ChildServiceContext::metadata_io().spawn_io).
/// On a 2-CPU box that lane has max_concurrency 4 and max_queue_depth 16 (8 * parallelism);
/// when the queue is full the call fails at once, the batch is treated as RECONSUME_LATER
/// and sent back to %RETRY%<group>. The depth is raised to 4096 before the owner is built.
pub fn build_client_runtime(name: &'static str) -> (RuntimeOwner, Arc<ClientRuntime>) {
    let mut runtime_config = RuntimeConfig {
        thread_name: name.to_string(),
        ..RuntimeConfig::default()
    };
    runtime_config
        .blocking_lane_policies
        .metadata_io
        .max_queue_depth = 4096;
    let owner = RuntimeOwner::plan(runtime_config)
        .expect("valid runtime config")
        .build()
        .expect("runtime owner builds");
    let client_runtime = ClientRuntime::try_new(
        owner.root_context().component(name),
        ClientRuntimeConfig::default(),
        TelemetryHandle::noop(),
    )
    .expect("client runtime");
    (owner, client_runtime)
}
