//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use ringmq_engine::commitlog::FlushMode;
use ringmq_engine::record::{encode_properties, MessageToStore};
use ringmq_engine::{MessageStore, StoreConfig};

pub const SEGMENT: u64 = 64 * 1024;

/// A store with tiny segments and ConsumeQueue files, so tests cross boundaries often.
pub fn small_config(root: &Path, flush: FlushMode) -> StoreConfig {
    let mut cfg = StoreConfig::new(root);
    cfg.commitlog.segment_size = SEGMENT;
    cfg.commitlog.ring_capacity = 1 << 20;
    cfg.commitlog.max_message_size = 16 * 1024;
    cfg.commitlog.flush_mode = flush;
    cfg.commitlog.flush_interval = Duration::from_millis(20);
    // Tests share 2 cores: no busy-polling writers.
    cfg.commitlog.writer_spin = Duration::ZERO;
    cfg.cq_entries_per_file = 64;
    cfg.checkpoint_interval = Duration::from_millis(50);
    cfg
}

pub fn open(root: &Path, flush: FlushMode) -> MessageStore {
    MessageStore::open(small_config(root, flush)).expect("store opens")
}

/// A message whose body encodes `seq`, with a tag and a key, of `len` bytes of body.
pub fn message(topic: &str, queue_id: i32, seq: u64, len: usize) -> MessageToStore {
    let mut body = format!("msg-{seq:010}-").into_bytes();
    while body.len() < len {
        body.push(b'a' + (body.len() % 26) as u8);
    }
    body.truncate(len.max(15));
    let props = encode_properties([
        ("TAGS", format!("tag{}", seq % 3)),
        ("KEYS", format!("k{seq}")),
    ]);
    MessageToStore::new(topic, queue_id, body, props)
}

/// The sequence number a [`message`] body carries.
pub fn seq_of(body: &[u8]) -> u64 {
    std::str::from_utf8(&body[4..14]).unwrap().parse().unwrap()
}

/// Copies a store directory (all but its lock file), as a crash would leave it.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != "lock" {
            match std::fs::copy(entry.path(), &target) {
                Ok(_) => {}
                // A temporary file renamed meanwhile (an atomic metadata write).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("copy {}: {e}", entry.path().display()),
            }
        }
    }
}
