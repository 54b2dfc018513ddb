//! A failed fdatasync of a ConsumeQueue is never followed by a flush that reports
//! success: after a failed fsync the kernel may have dropped the dirty pages, and a retry
//! returns 0 without writing them. (Own test binary: the fault switch is process-wide.)

use ringmq_engine::consumequeue::{ConsumeQueue, CqEntry};
use ringmq_engine::io::faults;

fn entry(k: i64) -> CqEntry {
    CqEntry {
        phys_offset: k * 100,
        size: 100,
        tags_code: k,
    }
}

#[test]
fn flush_after_a_failed_fdatasync_keeps_failing() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let q = ConsumeQueue::open(dir.path(), "T", 0, 16).unwrap();
    for k in 0..10 {
        q.put(k, entry(k)).unwrap();
    }
    q.flush().unwrap();
    for k in 10..20 {
        q.put(k, entry(k)).unwrap();
    }
    faults::fail_cq_syncs(1);
    assert!(q.flush().is_err(), "the injected EIO is reported");
    // The retry's fdatasync would succeed, but the entries it covered may be gone from
    // the page cache: the flush must not call them durable.
    assert!(
        q.flush().is_err(),
        "a retried flush after EIO reports success"
    );
    q.put(20, entry(20)).unwrap();
    assert!(
        q.flush().is_err(),
        "later flushes keep failing until restart"
    );
    assert!(
        q.truncate_to_phys(15 * 100).is_err(),
        "truncation syncs too"
    );
    drop(q);
    // A restart (the dispatcher re-dispatches from the checkpoint) starts clean.
    let q = ConsumeQueue::open(dir.path(), "T", 0, 16).unwrap();
    q.flush().unwrap();
}
