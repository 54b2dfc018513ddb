//! ASYNC_FLUSH: after a failed fdatasync the writer stops issuing fdatasyncs, so shutdown
//! finishes (with the failure) instead of waiting forever for a writer that re-issued
//! one every turn and so was never idle. Found by `sim_crash` (seed 1). (Own test
//! binary: the simulated disk is installed process-wide.)

use std::collections::HashMap;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use ringmq_engine::commitlog::{recovery, CommitLog, CommitLogConfig, FlushMode, PutStatus};
use ringmq_engine::io::gate;
use ringmq_engine::io::sim::{SimDisk, SimFaults};
use ringmq_engine::record::MessageToStore;

#[test]
fn shutdown_after_a_failed_async_fdatasync_finishes() {
    let disk = SimDisk::new(7, SimFaults::default());
    gate::install(Some(Arc::new(disk.clone())));
    let mut cfg = CommitLogConfig::new("/sim/async-fsync");
    cfg.segment_size = 64 * 1024;
    cfg.ring_capacity = 256 * 1024;
    cfg.max_message_size = 4096;
    cfg.flush_mode = FlushMode::Async;
    cfg.flush_interval = Duration::from_secs(3600);
    cfg.writer_spin = Duration::ZERO;
    cfg.tail_shm_dir = None;
    let end = recovery::recover(&cfg, None, false, None).unwrap().end;
    let log = CommitLog::start(cfg, end).unwrap();
    log.set_queue_offsets(HashMap::new());
    let msg = MessageToStore::new("T", 0, b"hello".to_vec(), Vec::new());
    assert_eq!(log.append_blocking(vec![msg]).status, PutStatus::Ok);
    // The disk fails every operation from now on: the shutdown's fdatasync fails.
    disk.crash();
    let (tx, rx) = mpsc::channel();
    let log = Arc::new(log);
    let l = log.clone();
    std::thread::spawn(move || tx.send(l.shutdown()).unwrap());
    let res = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("shutdown hangs after a failed fdatasync");
    assert!(res.is_err(), "the failed fdatasync is reported: {res:?}");
    gate::install(None);
}
