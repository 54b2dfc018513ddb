//! The slave-side path: replicated bytes appended at the log's end in arbitrary chunks
//! (cutting records and crossing segments) give a byte-identical log and the same
//! ConsumeQueues; a gap or an overlap is refused with a clear error.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::*;
use ringmq_engine::commitlog::{FlushMode, PutStatus, RawAppend};
use ringmq_engine::Error;

fn raw(store: &ringmq_engine::MessageStore, at: i64, bytes: Vec<u8>) -> ringmq_engine::Result<i64> {
    let (tx, rx) = mpsc::channel();
    store.put_raw(RawAppend {
        phys_offset: at,
        bytes: bytes.into(),
        done: Box::new(move |r| tx.send(r).unwrap()),
    });
    rx.recv().unwrap()
}

#[test]
fn replicated_chunks_rebuild_an_identical_log() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let master = open(&dir.path().join("master"), FlushMode::Async);
    let mut end = 0;
    for seq in 0..400u64 {
        let o = master.put_blocking(vec![message(
            ["A", "B"][seq as usize % 2],
            (seq % 3) as i32,
            seq,
            20 + (seq * 53 % 1500) as usize,
        )]);
        assert_eq!(o.status, PutStatus::Ok);
        end = o.end_offset;
    }
    assert!(end > 3 * SEGMENT as i64, "the load crosses segments");
    let slave = open(&dir.path().join("slave"), FlushMode::Async);
    let mut at = 0i64;
    let mut step = 1i64;
    while at < end {
        let n = (step * 977 % 9000 + 1).min(end - at);
        let mut chunk = vec![0u8; n as usize];
        master.commitlog().read(at, &mut chunk).unwrap();
        assert_eq!(raw(&slave, at, chunk).unwrap(), at + n);
        at += n;
        step += 1;
    }
    // A gap and an overlap are refused and change nothing.
    match raw(&slave, end + 10, vec![1, 2, 3]) {
        Err(Error::Discontinuity { expected, got }) => assert_eq!((expected, got), (end, end + 10)),
        other => panic!("gap accepted: {other:?}"),
    }
    assert!(matches!(
        raw(&slave, end - 5, vec![0; 5]),
        Err(Error::Discontinuity { .. })
    ));
    assert_eq!(slave.commitlog().max_offset(), end);

    // Byte-identical logs, identical ConsumeQueues.
    let mut a = vec![0u8; end as usize];
    let mut b = vec![0u8; end as usize];
    master.commitlog().read(0, &mut a).unwrap();
    slave.commitlog().read(0, &mut b).unwrap();
    assert!(a == b, "logs differ");
    assert!(
        master.wait_dispatched(end, Duration::from_secs(5))
            && slave.wait_dispatched(end, Duration::from_secs(5))
    );
    for topic in ["A", "B"] {
        for q in 0..3 {
            let n = master.max_offset_in_queue(topic, q);
            assert_eq!(slave.max_offset_in_queue(topic, q), n);
            let m = master
                .get_messages(topic, q, 0, 1000, usize::MAX, None)
                .unwrap()
                .messages;
            let s = slave
                .get_messages(topic, q, 0, 1000, usize::MAX, None)
                .unwrap()
                .messages;
            assert_eq!(m, s);
        }
    }
    // The slave's log survives a restart intact.
    slave.shutdown().unwrap();
    drop(slave);
    let slave = open(&dir.path().join("slave"), FlushMode::Async);
    assert_eq!(slave.commitlog().max_offset(), end);
}
