//! Helpers for the processors' unit tests: a real broker on a temporary store, and
//! requests built from header fields.

use std::sync::Arc;

use super::{Broker, BrokerConfig};
use ringmq_remoting::command::RemotingCommand;

/// A broker on a fresh temporary store (small segments, no pinning), adjusted by `tweak`.
pub fn broker_with(tweak: impl FnOnce(&mut BrokerConfig)) -> (tempfile::TempDir, Arc<Broker>) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = BrokerConfig {
        store_path_root_dir: dir.path().to_path_buf(),
        pin_threads: false,
        mapped_file_size_commit_log: 1 << 20,
        tail_ring_bytes: 8 << 20,
        ..Default::default()
    };
    tweak(&mut cfg);
    let b = Broker::open(cfg).unwrap();
    (dir, b)
}

pub fn broker() -> (tempfile::TempDir, Arc<Broker>) {
    broker_with(|_| {})
}

/// A request with the given header fields.
pub fn request(code: i32, fields: &[(&str, &str)]) -> RemotingCommand {
    fields
        .iter()
        .fold(RemotingCommand::request(code), |r, (k, v)| {
            r.with_ext(*k, v)
        })
}
