//! A record the ConsumeQueues cannot hold (queue id above `MAX_QUEUE_ID`) is refused by
//! an append; one that reaches the log anyway (replicated bytes, a damaged or foreign
//! log) is logged, counted and skipped by the dispatcher and by recovery: later records
//! are still indexed and the store still opens.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::*;
use ringmq_engine::commitlog::{FlushMode, PutStatus, RawAppend};
use ringmq_engine::consumequeue::MAX_QUEUE_ID;
use ringmq_engine::record::StoreFields;
use ringmq_engine::MessageStore;

const BAD_QUEUE: i32 = 70_000;

/// Appends `bytes` at `at` the way a slave stores replicated bytes (no validation).
fn raw(store: &MessageStore, at: i64, bytes: Vec<u8>) -> i64 {
    let (tx, rx) = mpsc::channel();
    store.put_raw(RawAppend {
        phys_offset: at,
        bytes: bytes.into(),
        done: Box::new(move |r| tx.send(r).unwrap()),
    });
    rx.recv().unwrap().expect("raw append")
}

#[test]
fn unindexable_records_are_refused_or_skipped_and_the_store_opens() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let root = dir.path().join("store");
    let store = open(&root, FlushMode::Async);
    assert_eq!(
        store.put_blocking(vec![message("T", 0, 0, 64)]).status,
        PutStatus::Ok
    );

    // The writer refuses what it could not index.
    for queue_id in [BAD_QUEUE, MAX_QUEUE_ID + 1, -1, i32::MAX] {
        match store
            .put_blocking(vec![message("T", queue_id, 1, 64)])
            .status
        {
            PutStatus::MessageIllegal(why) => assert!(why.contains("queueId"), "{why}"),
            other => panic!("queue id {queue_id} accepted: {other:?}"),
        }
    }

    // A bad record that reaches the log anyway, followed by a good one.
    let at = store.commitlog().max_offset();
    let bad = message("T", BAD_QUEUE, 2, 64);
    let fields = StoreFields {
        queue_offset: 0,
        physical_offset: at,
        store_timestamp: 1,
        store_host: "127.0.0.1:10911".parse().unwrap(),
    };
    let mut bytes = vec![0u8; bad.encoded_len(&fields.store_host)];
    bad.encode_into(&mut bytes, &fields);
    raw(&store, at, bytes);
    let o = store.put_blocking(vec![message("T", 0, 3, 64)]);
    assert_eq!(o.status, PutStatus::Ok);
    assert!(store.wait_dispatched(o.end_offset, Duration::from_secs(10)));
    assert_eq!(store.consume_queues().unindexable(), 1, "skipped once");
    assert_eq!(
        store.max_offset_in_queue("T", 0),
        2,
        "later records indexed"
    );
    store.shutdown().unwrap();
    drop(store);

    // Recovery rebuilding every queue from the log meets the bad record again.
    std::fs::remove_dir_all(root.join("consumequeue")).unwrap();
    std::fs::remove_file(root.join("checkpoint")).unwrap();
    std::fs::write(root.join("abort"), b"").unwrap();
    let store = open(&root, FlushMode::Async);
    assert_eq!(store.max_offset_in_queue("T", 0), 2);
    assert_eq!(store.consume_queues().unindexable(), 1);
    let o = store.put_blocking(vec![message("T", 0, 4, 64)]);
    assert_eq!(o.status, PutStatus::Ok);
    assert!(store.wait_dispatched(o.end_offset, Duration::from_secs(10)));
    assert_eq!(store.max_offset_in_queue("T", 0), 3);
    store.shutdown().unwrap();
}
