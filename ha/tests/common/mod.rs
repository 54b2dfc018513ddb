//! Helpers shared by the HA integration tests: small stores (64 KiB segments, no writer
//! spin), a mixed-size load, and byte-for-byte log and ConsumeQueue comparisons.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringmq_engine::commitlog::{FlushMode, PutStatus};
use ringmq_engine::record::{encode_properties, MessageToStore};
use ringmq_engine::{MessageStore, StoreConfig};
use ringmq_ha::HaConfig;

pub const SEGMENT: u64 = 64 * 1024;
pub const TOPICS: [&str; 3] = ["TopicA", "TopicB", "TopicC"];
pub const QUEUES: i32 = 4;

pub fn tempdir() -> tempfile::TempDir {
    // Not /tmp: the engine needs O_DIRECT, which tmpfs refuses.
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir")
}

pub fn small_config(root: &Path) -> StoreConfig {
    let mut cfg = StoreConfig::new(root);
    cfg.commitlog.segment_size = SEGMENT;
    cfg.commitlog.ring_capacity = 1 << 20;
    cfg.commitlog.max_message_size = 16 * 1024;
    cfg.commitlog.flush_mode = FlushMode::Async;
    cfg.commitlog.flush_interval = Duration::from_millis(20);
    // Tests share 2 cores: no busy-polling writers.
    cfg.commitlog.writer_spin = Duration::ZERO;
    cfg.cq_entries_per_file = 64;
    cfg.checkpoint_interval = Duration::from_millis(50);
    cfg
}

pub fn open(root: &Path) -> Arc<MessageStore> {
    Arc::new(MessageStore::open(small_config(root)).expect("store opens"))
}

/// Short timers so heartbeats, drops and reconnects happen within a test.
pub fn fast_ha() -> HaConfig {
    HaConfig {
        heartbeat_interval: Duration::from_millis(300),
        housekeeping_interval: Duration::from_secs(5),
        reconnect_interval: Duration::from_millis(200),
        ..HaConfig::default()
    }
}

/// Message `seq` of the standard load: 1..10 KiB bodies over 3 topics x 4 queues.
pub fn message(seq: u64) -> MessageToStore {
    let len = 1024 + (seq.wrapping_mul(2_654_435_761) % (9 * 1024)) as usize;
    let mut body = format!("msg-{seq:010}-").into_bytes();
    while body.len() < len {
        body.push(b'a' + (body.len() % 26) as u8);
    }
    let props = encode_properties([
        ("TAGS", format!("tag{}", seq % 3)),
        ("KEYS", format!("k{seq}")),
    ]);
    let topic = TOPICS[(seq % 3) as usize];
    MessageToStore::new(topic, ((seq / 3) % QUEUES as u64) as i32, body, props)
}

/// Appends messages `range` one by one; returns the log end after the last.
pub fn produce(store: &MessageStore, range: std::ops::Range<u64>) -> i64 {
    let mut end = store.commitlog().max_offset();
    for seq in range {
        let o = store.put_blocking(vec![message(seq)]);
        assert_eq!(o.status, PutStatus::Ok, "append {seq}");
        end = o.end_offset;
    }
    end
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Both logs end at `end` and hold the same bytes over `[0, end)`.
pub fn assert_same_log(master: &MessageStore, slave: &MessageStore, end: i64) {
    assert_eq!(master.commitlog().max_offset(), end, "master end");
    assert_eq!(slave.commitlog().max_offset(), end, "slave end");
    const CHUNK: i64 = 1 << 20;
    let mut a = vec![0u8; CHUNK as usize];
    let mut b = vec![0u8; CHUNK as usize];
    let mut at = 0i64;
    while at < end {
        let n = CHUNK.min(end - at) as usize;
        master
            .commitlog()
            .read(at, &mut a[..n])
            .expect("master read");
        slave.commitlog().read(at, &mut b[..n]).expect("slave read");
        if a[..n] != b[..n] {
            let i = a[..n]
                .iter()
                .zip(&b[..n])
                .position(|(x, y)| x != y)
                .unwrap();
            panic!("logs differ at offset {}", at + i as i64);
        }
        at += n as i64;
    }
}

/// Both stores indexed everything up to `end` and their ConsumeQueues agree.
pub fn assert_same_queues(master: &MessageStore, slave: &MessageStore, end: i64) {
    assert!(
        master.wait_dispatched(end, Duration::from_secs(20)),
        "master dispatch"
    );
    assert!(
        slave.wait_dispatched(end, Duration::from_secs(20)),
        "slave dispatch"
    );
    let mut total = 0;
    for topic in TOPICS {
        for q in 0..QUEUES {
            let max = master.max_offset_in_queue(topic, q);
            assert_eq!(slave.max_offset_in_queue(topic, q), max, "{topic}/{q} max");
            assert_eq!(
                slave.min_offset_in_queue(topic, q),
                master.min_offset_in_queue(topic, q),
                "{topic}/{q} min"
            );
            let mut offset = 0;
            while offset < max {
                let m = master
                    .get_messages(topic, q, offset, 64, usize::MAX, None)
                    .unwrap();
                let s = slave
                    .get_messages(topic, q, offset, 64, usize::MAX, None)
                    .unwrap();
                assert_eq!(m.status, s.status, "{topic}/{q}@{offset}");
                assert_eq!(m.next_begin_offset, s.next_begin_offset);
                assert_eq!(m.messages, s.messages, "{topic}/{q}@{offset} records");
                assert!(m.next_begin_offset > offset, "progress");
                total += m.messages.len();
                offset = m.next_begin_offset;
            }
        }
    }
    assert!(total > 0);
}

/// A TCP proxy that forwards both ways until frozen (bytes read meanwhile are held).
pub struct Proxy {
    pub addr: SocketAddr,
    pub frozen: Arc<AtomicBool>,
}

impl Proxy {
    pub fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let frozen = Arc::new(AtomicBool::new(false));
        let f = frozen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let frozen = f.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n @ 1..) = from.read(&mut buf) {
                            while frozen.load(Ordering::Acquire) {
                                std::thread::sleep(Duration::from_millis(5));
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Proxy { addr, frozen }
    }
}
