//! ConsumeQueue entries agree with the CommitLog: every entry points at the record with
//! its topic, queue and queue offset, and carries that record's tags hash.

mod common;

use std::time::Duration;

use common::*;
use ringmq_engine::commitlog::{AppendRequest, FlushMode, PutStatus};
use ringmq_engine::record::{self, Parsed};

#[test]
fn entries_point_at_their_records() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = open(dir.path(), FlushMode::Async);
    let topics = ["A", "B", "%RETRY%group"];
    let (tx, rx) = std::sync::mpsc::channel();
    let mut expected = 0;
    for seq in 0..3000u64 {
        let topic = topics[(seq % 3) as usize];
        let msgs = vec![message(
            topic,
            (seq % 4) as i32,
            seq,
            30 + (seq % 500) as usize,
        )];
        let tx = tx.clone();
        store.put(AppendRequest {
            messages: msgs,
            wait_durable: true,
            done: Box::new(move |o| tx.send(o).unwrap()),
        });
        expected += 1;
    }
    let mut end = 0;
    for _ in 0..expected {
        let o = rx.recv().unwrap();
        assert_eq!(o.status, PutStatus::Ok);
        end = end.max(o.end_offset);
    }
    assert!(store.wait_dispatched(end, Duration::from_secs(10)));
    let mut seen = 0;
    for topic in topics {
        for q in 0..4 {
            let max = store.max_offset_in_queue(topic, q);
            let cq = store.consume_queues().get(topic, q).expect("queue exists");
            let mut entries = Vec::new();
            while (entries.len() as i64) < max {
                let more = cq
                    .read(entries.len() as i64, max as usize - entries.len())
                    .unwrap();
                assert!(!more.is_empty());
                entries.extend(more);
            }
            assert_eq!(entries.len() as i64, max);
            for (qoff, e) in entries.iter().enumerate() {
                store
                    .commitlog()
                    .with_bytes(e.phys_offset, e.size as usize, |b| {
                        let Parsed::Record(v) = record::parse(b, e.phys_offset, true).unwrap()
                        else {
                            panic!("not a record")
                        };
                        assert_eq!(v.topic(), topic);
                        assert_eq!(v.queue_id(), q);
                        assert_eq!(v.queue_offset(), qoff as i64);
                        assert_eq!(v.physical_offset(), e.phys_offset);
                        assert_eq!(v.total_size(), e.size);
                        assert_eq!(v.tags_code(), e.tags_code);
                        assert_eq!(
                            v.tags_code(),
                            record::tags_hash(&format!("tag{}", seq_of(v.body()) % 3)) as i64
                        );
                    })
                    .unwrap();
                seen += 1;
            }
        }
    }
    assert_eq!(seen, expected);
}

#[test]
fn pull_statuses_and_time_search() {
    use ringmq_engine::GetStatus::*;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = open(dir.path(), FlushMode::Async);
    assert_eq!(
        store
            .get_messages("T", 0, 0, 8, usize::MAX, None)
            .unwrap()
            .status,
        NoMessageInQueue
    );
    let mut stamps = Vec::new();
    let mut end = 0;
    for seq in 0..10 {
        let o = store.put_blocking(vec![message("T", 0, seq, 40)]);
        stamps.push(o.appended[0].store_timestamp);
        end = o.end_offset;
        std::thread::sleep(Duration::from_millis(3));
    }
    assert!(store.wait_dispatched(end, Duration::from_secs(5)));
    let r = store.get_messages("T", 0, 3, 4, usize::MAX, None).unwrap();
    assert_eq!(
        (
            r.status,
            r.messages.len(),
            r.next_begin_offset,
            r.max_offset
        ),
        (Found, 4, 7, 10)
    );
    assert_eq!(
        store
            .get_messages("T", 0, 10, 4, usize::MAX, None)
            .unwrap()
            .status,
        OffsetOverflowOne
    );
    let bad = store.get_messages("T", 0, 12, 4, usize::MAX, None).unwrap();
    assert_eq!(
        (bad.status, bad.next_begin_offset),
        (OffsetOverflowBadly, 10)
    );
    // A tag filter that matches nothing scans on.
    let none = store
        .get_messages("T", 0, 0, 4, usize::MAX, Some(&|_| false))
        .unwrap();
    assert_eq!(none.status, NoMatchedMessage);
    assert_eq!(none.next_begin_offset, 10);
    // Byte limit: at least one message, then stop.
    assert_eq!(
        store
            .get_messages("T", 0, 0, 32, 1, None)
            .unwrap()
            .messages
            .len(),
        1
    );
    // Search by store time.
    assert_eq!(store.offset_by_time("T", 0, stamps[5], false).unwrap(), 5);
    assert_eq!(
        store
            .offset_by_time("T", 0, stamps[0] - 1000, false)
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .offset_by_time("T", 0, stamps[9] + 1000, false)
            .unwrap(),
        10
    );
    assert_eq!(
        store
            .offset_by_time("T", 0, stamps[9] + 1000, true)
            .unwrap(),
        9
    );
}

#[test]
fn a_second_store_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let _store = open(dir.path(), FlushMode::Async);
    let err = ringmq_engine::MessageStore::open(small_config(dir.path(), FlushMode::Async))
        .err()
        .expect("refused");
    assert!(matches!(err, ringmq_engine::Error::Locked { .. }), "{err}");
}
