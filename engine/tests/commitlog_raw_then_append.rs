//! A log whose replicated bytes end exactly at a segment's end (blank marker included)
//! takes its own appends in the next segment. The writer once rolled it by writing a
//! blank marker into the 0 bytes left and panicked, so every later append hung (found by
//! `sim_crash`).

mod common;

use std::sync::mpsc;

use common::*;
use ringmq_engine::commitlog::{FlushMode, PutStatus, RawAppend};

#[test]
fn append_after_a_replicated_segment_end() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let master = open(&dir.path().join("master"), FlushMode::Async);
    let mut seq = 0;
    while master.commitlog().max_offset() <= SEGMENT as i64 {
        let o = master.put_blocking(vec![message("T", 0, seq, 900)]);
        assert_eq!(o.status, PutStatus::Ok);
        seq += 1;
    }
    let mut first = vec![0u8; SEGMENT as usize];
    master.commitlog().read(0, &mut first).unwrap();
    let slave = open(&dir.path().join("slave"), FlushMode::Async);
    let (tx, rx) = mpsc::channel();
    slave.put_raw(RawAppend {
        phys_offset: 0,
        bytes: first.into(),
        done: Box::new(move |r| tx.send(r).unwrap()),
    });
    assert_eq!(rx.recv().unwrap().unwrap(), SEGMENT as i64);
    let o = slave.put_blocking(vec![message("T", 0, seq, 900)]);
    assert_eq!(o.status, PutStatus::Ok);
    assert_eq!(
        o.appended[0].phys_offset, SEGMENT as i64,
        "lands in the next segment"
    );
    slave.shutdown().unwrap();
}
