//! ASYNC_FLUSH shutdown: makes everything appended durable at once, whatever the flush
//! interval, and returns; a writer that only syncs on its interval once made shutdown
//! wait for durability that never came.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ringmq_engine::commitlog::{FlushMode, PutStatus};
use ringmq_engine::MessageStore;

#[test]
fn async_flush_shutdown_syncs_at_once_across_rolls() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut cfg = small_config(dir.path(), FlushMode::Async);
    cfg.commitlog.flush_interval = Duration::from_secs(3600);
    let store = MessageStore::open(cfg).unwrap();
    let mut seq = 0;
    // Several segments' worth, so writes to an older segment complete after rolls.
    while store.commitlog().max_offset() < 3 * SEGMENT as i64 + 1000 {
        let o = store.put_blocking(vec![message("T", (seq % 4) as i32, seq, 700)]);
        assert_eq!(o.status, PutStatus::Ok);
        seq += 1;
    }
    let end = store.commitlog().max_offset();
    let started = Instant::now();
    store.shutdown().unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "shutdown took {took:?}");
    assert_eq!(
        store.commitlog().shutdown().unwrap(),
        end,
        "durable end at shutdown"
    );
}
