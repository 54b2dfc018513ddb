//! Failure paths: a full disk refuses appends and corrupts nothing; a failed write stops
//! the writer, fails every waiter and acknowledges nothing more. (Own test binary: the
//! fault switches are process-wide.)

mod common;

use std::time::Duration;

use common::*;
use ringmq_engine::commitlog::{FlushMode, PutStatus};
use ringmq_engine::io::faults;

/// The fault switches are process-wide: one test at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn disk_full_then_write_failure() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut acked = Vec::new();
    {
        let store = open(dir.path(), FlushMode::Sync);
        // The next segment cannot be preallocated: appends that need it get DiskFull.
        faults::fail_preallocations(u32::MAX);
        std::thread::sleep(Duration::from_millis(50));
        let mut seq = 0;
        let mut full = 0;
        while full < 3 {
            let o = store.put_blocking(vec![message("T", 0, seq, 3000)]);
            match o.status {
                PutStatus::Ok => acked.push((seq, o.appended[0].queue_offset)),
                PutStatus::DiskFull => full += 1,
                other => panic!("unexpected {other:?}"),
            }
            seq += 1;
            assert!(seq < 1000, "segment never filled");
        }
        // Space comes back: appends continue in the next segment.
        faults::fail_preallocations(0);
        let o = store.put_blocking(vec![message("T", 0, seq, 3000)]);
        assert_eq!(
            o.status,
            PutStatus::Ok,
            "appends resume once the disk has room"
        );
        acked.push((seq, o.appended[0].queue_offset));
        seq += 1;
        // A write fails: the writer stops and refuses everything after.
        faults::fail_writes(1);
        let o = store.put_blocking(vec![message("T", 0, seq, 100)]);
        assert!(
            matches!(o.status, PutStatus::ServiceNotAvailable(_)),
            "{:?}",
            o.status
        );
        let o = store.put_blocking(vec![message("T", 0, seq + 1, 100)]);
        assert!(
            matches!(o.status, PutStatus::ServiceNotAvailable(_)),
            "{:?}",
            o.status
        );
        assert!(store.commitlog().stopped().is_some());
        let _ = store.shutdown();
    }
    // Restart: everything acknowledged before the failure is intact.
    let store = open(dir.path(), FlushMode::Sync);
    for (seq, qoff) in &acked {
        let got = store
            .get_messages("T", 0, *qoff, 1, usize::MAX, None)
            .unwrap();
        assert_eq!(got.messages.len(), 1);
        let ringmq_engine::record::Parsed::Record(v) =
            ringmq_engine::record::parse(&got.messages[0], 0, true).unwrap()
        else {
            panic!()
        };
        assert_eq!(seq_of(v.body()), *seq);
    }
}

#[test]
fn stalled_disk_answers_flush_disk_timeout_and_keeps_the_record() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut cfg = small_config(dir.path(), FlushMode::Sync);
    cfg.commitlog.sync_flush_timeout = Duration::from_millis(200);
    let store = ringmq_engine::MessageStore::open(cfg).unwrap();
    let before = store.put_blocking(vec![message("T", 0, 0, 100)]);
    assert_eq!(before.status, PutStatus::Ok);
    faults::pause_writes(true);
    let started = std::time::Instant::now();
    let stalled = store.put_blocking(vec![message("T", 0, 1, 100)]);
    let waited = started.elapsed();
    faults::pause_writes(false);
    assert_eq!(stalled.status, PutStatus::FlushDiskTimeout);
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(2),
        "answered after {waited:?}"
    );
    // The record was stored (offsets assigned) and becomes durable once the disk moves.
    assert_eq!(stalled.appended[0].queue_offset, 1);
    assert!(store.commitlog().progress().wait(
        ringmq_engine::commitlog::Level::Durable,
        stalled.end_offset,
        Duration::from_secs(5)
    ));
    let after = store.put_blocking(vec![message("T", 0, 2, 100)]);
    assert_eq!(after.status, PutStatus::Ok);
}

/// Short writes (the kernel takes fewer bytes than asked) are written again, never
/// counted as written: when `write_end` covers an append, the file holds it. Checked on a
/// copy of the store taken at that moment, as a crash would leave it.
#[test]
fn short_writes_are_completed_before_they_count() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    use ringmq_engine::commitlog::{Level, SyncMethod};
    for (flush, method) in [
        (FlushMode::Sync, SyncMethod::Dsync),
        (FlushMode::Sync, SyncMethod::Fdatasync),
        (FlushMode::Async, SyncMethod::Dsync),
    ] {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let live = dir.path().join("live");
        let mut cfg = small_config(&live, flush);
        cfg.commitlog.sync_method = method;
        let store = ringmq_engine::MessageStore::open(cfg).unwrap();
        const SHORT: u32 = 12;
        faults::short_writes(SHORT);
        let mut acked = Vec::new();
        // Batches of ~9 KiB: every write is more than a page, so each may be cut short;
        // 40 of them cross several 64 KiB segments.
        for batch in 0..40u64 {
            let msgs = (0..3)
                .map(|i| message("T", 0, batch * 3 + i, 3000))
                .collect();
            let o = store.put_blocking(msgs);
            assert_eq!(o.status, PutStatus::Ok, "{flush:?} {method:?}");
            for (i, a) in o.appended.iter().enumerate() {
                acked.push((batch * 3 + i as u64, a.queue_offset));
            }
            if flush == FlushMode::Async {
                // One write per batch, so the injected short writes are spread out.
                assert!(store.commitlog().progress().wait(
                    Level::Write,
                    o.end_offset,
                    Duration::from_secs(5)
                ));
            }
        }
        assert_eq!(faults::short_writes_left(), 0, "every short write happened");
        // The last write is short too: nothing after it would heal its hole.
        faults::short_writes(1);
        let msgs = (0..3).map(|i| message("T", 0, 120 + i, 3000)).collect();
        let o = store.put_blocking(msgs);
        assert_eq!(o.status, PutStatus::Ok);
        for (i, a) in o.appended.iter().enumerate() {
            acked.push((120 + i as u64, a.queue_offset));
        }
        let end = o.end_offset;
        let progress = store.commitlog().progress();
        assert!(progress.wait(Level::Write, end, Duration::from_secs(5)));
        assert_eq!(faults::short_writes_left(), 0, "the last write was short");
        assert_eq!(
            progress.get(Level::Write),
            end,
            "write_end is exactly the end"
        );
        if flush == FlushMode::Sync {
            assert_eq!(progress.get(Level::Durable), end);
        }
        assert!(store.commitlog().stopped().is_none());
        // What the files hold now, as a kill -9 would leave them.
        let copy = dir.path().join("copy");
        common::copy_dir(&live, &copy);
        let _ = store.shutdown();
        let store = open(&copy, flush);
        assert_eq!(store.commitlog().max_offset(), end, "{flush:?} {method:?}");
        for (seq, qoff) in &acked {
            let got = store
                .get_messages("T", 0, *qoff, 1, usize::MAX, None)
                .unwrap();
            assert_eq!(got.messages.len(), 1, "message {seq} is in the copy");
            let ringmq_engine::record::Parsed::Record(v) =
                ringmq_engine::record::parse(&got.messages[0], 0, true).unwrap()
            else {
                panic!()
            };
            assert_eq!(seq_of(v.body()), *seq);
        }
    }
}

/// Under ASYNC_FLUSH an append is answered from the tail ring when the ring lives in
/// shared memory (it survives a kill -9 there: see crash_kill.rs), else once its write
/// completed (it then survives a kill -9 too); `ack_before_write` with a private ring
/// answers from memory, even with the disk stalled, and loses it in a crash.
#[test]
fn async_flush_answers_from_a_shared_ring_or_after_the_write() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    use ringmq_engine::commitlog::Level;
    // (ring in /dev/shm, ack_before_write): answered before the write?
    for (shared_ring, ack_before_write) in [(false, false), (false, true), (true, false)] {
        let from_memory = shared_ring || ack_before_write;
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let mut cfg = small_config(dir.path(), FlushMode::Async);
        cfg.commitlog.ack_before_write = ack_before_write;
        if !shared_ring {
            cfg.commitlog.tail_shm_dir = None;
        }
        cfg.commitlog.sync_flush_timeout = Duration::from_secs(5);
        let store = std::sync::Arc::new(ringmq_engine::MessageStore::open(cfg).unwrap());
        assert_eq!(store.commitlog().acks_from_ring(), from_memory);
        for seq in 0..20 {
            let o = store.put_blocking(vec![message("T", 0, seq, 500)]);
            assert_eq!(o.status, PutStatus::Ok);
            if !from_memory {
                assert!(store.commitlog().progress().get(Level::Write) >= o.end_offset);
            }
        }
        faults::pause_writes(true);
        let (tx, rx) = std::sync::mpsc::channel();
        let s = store.clone();
        std::thread::spawn(move || {
            let _ = tx.send(s.put_blocking(vec![message("T", 0, 20, 500)]));
        });
        let early = rx.recv_timeout(Duration::from_millis(300));
        faults::pause_writes(false);
        if from_memory {
            let o = early.expect("answered from memory while the disk stalls");
            assert_eq!(o.status, PutStatus::Ok);
        } else {
            assert!(early.is_err(), "answered before its write: {early:?}");
            let o = rx.recv_timeout(Duration::from_secs(5)).unwrap();
            assert_eq!(o.status, PutStatus::Ok);
            assert!(store.commitlog().progress().get(Level::Write) >= o.end_offset);
        }
    }
}
