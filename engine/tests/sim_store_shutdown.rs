//! A store whose disk died: shutdown reports the failure at once and still stops the
//! dispatcher and housekeeping threads, so nothing of this store writes into the files of
//! the store opened next. Found by `sim_store` (a ConsumeQueue entry past the recovered
//! log end, written by the previous store's dispatcher). (Own test binary: the simulated
//! disk is installed process-wide.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use ringmq_engine::commitlog::{FlushMode, PutStatus};
use ringmq_engine::io::gate;
use ringmq_engine::io::sim::{SimDisk, SimFaults};
use ringmq_engine::record::MessageToStore;
use ringmq_engine::{MessageStore, StoreConfig};

fn store_threads() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .filter(|n| n.starts_with("ringmq-dispatch") || n.starts_with("ringmq-housekee"))
        .collect()
}

#[test]
fn a_failed_shutdown_still_stops_the_store_threads() {
    let disk = SimDisk::new(3, SimFaults::default());
    gate::install(Some(Arc::new(disk.clone())));
    let mut cfg = StoreConfig::new("/sim/shutdown");
    cfg.commitlog.segment_size = 64 * 1024;
    cfg.commitlog.ring_capacity = 256 * 1024;
    cfg.commitlog.max_message_size = 4096;
    cfg.commitlog.flush_mode = FlushMode::Async;
    cfg.commitlog.flush_interval = Duration::from_secs(3600);
    cfg.commitlog.writer_spin = Duration::ZERO;
    cfg.commitlog.tail_shm_dir = None;
    let store = MessageStore::open(cfg).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while store_threads().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5)); // names are set as threads start
    }
    assert_eq!(store_threads().len(), 2, "{:?}", store_threads());
    let msg = MessageToStore::new("T", 0, b"hello".to_vec(), Vec::new());
    assert_eq!(store.put_blocking(vec![msg]).status, PutStatus::Ok);
    // The disk fails every operation from now on: the shutdown's fdatasync fails.
    disk.crash();
    let started = Instant::now();
    assert!(
        store.shutdown().is_err(),
        "the failed fdatasync is reported"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        store_threads().is_empty(),
        "still running: {:?}",
        store_threads()
    );
    drop(store);
    gate::install(None);
}
