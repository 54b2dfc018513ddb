//! Segment roll exactly at the boundary: a record that leaves exactly 8 bytes stays in the
//! segment, one that would leave fewer moves to the next, behind a blank marker.

mod common;

use common::*;
use ringmq_engine::commitlog::{FlushMode, PutStatus};
use ringmq_engine::io::direct_file;
use ringmq_engine::record::{self, Parsed, BLANK_MAGIC};

fn record_len(m: &ringmq_engine::record::MessageToStore) -> u64 {
    m.encoded_len(&"127.0.0.1:10911".parse().unwrap()) as u64
}

/// Appends one message with a body sized so that the record is exactly `len` bytes.
fn sized(topic: &str, seq: u64, len: u64) -> ringmq_engine::record::MessageToStore {
    let base = record_len(&message(topic, 0, seq, 100));
    message(topic, 0, seq, (100 + len - base) as usize)
}

#[test]
fn record_leaving_exactly_eight_bytes_stays_then_next_rolls() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = open(dir.path(), FlushMode::Sync);
    let log = store.commitlog();
    // Fill the first segment so that exactly 8 bytes remain.
    let first = sized("T", 0, 4000);
    let o = store.put_blocking(vec![first]);
    assert_eq!(o.status, PutStatus::Ok);
    let mut end = o.end_offset as u64;
    let mut seq = 1;
    while SEGMENT - end > 4000 + 8 {
        let o = store.put_blocking(vec![sized("T", seq, 4000)]);
        end = o.end_offset as u64;
        seq += 1;
    }
    let fill = SEGMENT - end - 8;
    let o = store.put_blocking(vec![sized("T", seq, fill)]);
    assert_eq!(o.status, PutStatus::Ok);
    assert_eq!(
        o.end_offset as u64,
        SEGMENT - 8,
        "record ends 8 bytes before the boundary"
    );
    seq += 1;
    // Even the smallest next record does not fit in 8 bytes: blank marker, then segment 2.
    let o = store.put_blocking(vec![sized("T", seq, 200)]);
    assert_eq!(o.status, PutStatus::Ok);
    assert_eq!(
        o.appended[0].phys_offset as u64, SEGMENT,
        "rolled record starts the next segment"
    );
    let mut blank = [0u8; 8];
    log.read(SEGMENT as i64 - 8, &mut blank).unwrap();
    assert_eq!(i32::from_be_bytes(blank[0..4].try_into().unwrap()), 8);
    assert_eq!(
        i32::from_be_bytes(blank[4..8].try_into().unwrap()),
        BLANK_MAGIC
    );
    store.shutdown().unwrap();
    drop(store);

    // On disk: the first file ends with the blank marker and the second begins with the record.
    let seg0 =
        direct_file::open_read(&dir.path().join("commitlog").join("00000000000000000000")).unwrap();
    let mut tail = [0u8; 8];
    seg0.read_exact_at(&mut tail, SEGMENT - 8).unwrap();
    assert_eq!(tail, blank);
    let seg1 = direct_file::open_read(&dir.path().join("commitlog").join(format!("{SEGMENT:020}")))
        .unwrap();
    let mut head = vec![0u8; 4096];
    seg1.read_exact_at(&mut head, 0).unwrap();
    match record::parse(&head, SEGMENT as i64, true).unwrap() {
        Parsed::Record(v) => assert_eq!(v.physical_offset() as u64, SEGMENT),
        _ => panic!("segment 2 must start with a record"),
    }

    // Reopen: the same end, queue offsets continue.
    let store = open(dir.path(), FlushMode::Sync);
    let o = store.put_blocking(vec![sized("T", seq + 1, 300)]);
    assert_eq!(o.appended[0].queue_offset, seq as i64 + 1);
    assert_eq!(store.max_offset_in_queue("T", 0), seq as i64 + 2);
}

#[test]
fn record_that_would_fill_the_segment_exactly_rolls() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = open(dir.path(), FlushMode::Async);
    let mut end = 0u64;
    let mut seq = 0;
    while SEGMENT - end > 5000 {
        end = store.put_blocking(vec![sized("T", seq, 4000)]).end_offset as u64;
        seq += 1;
    }
    // A record of exactly the remaining size would leave no room for the 8-byte marker.
    let o = store.put_blocking(vec![sized("T", seq, SEGMENT - end)]);
    assert_eq!(o.status, PutStatus::Ok);
    assert_eq!(o.appended[0].phys_offset as u64, SEGMENT);
    // A batch that does not fit moves whole.
    let batch: Vec<_> = (0..3).map(|i| sized("T", seq + 1 + i, 15_000)).collect();
    let o = store.put_blocking(batch);
    assert_eq!(o.status, PutStatus::Ok);
    let first = o.appended[0].phys_offset as u64;
    let last = o.appended[2].phys_offset as u64 + 15_000;
    assert_eq!(
        first / SEGMENT,
        (last - 1) / SEGMENT,
        "a batch never straddles segments"
    );
    // Everything reads back through the ConsumeQueue.
    assert!(store.wait_dispatched(o.end_offset, std::time::Duration::from_secs(5)));
    let got = store
        .get_messages("T", 0, 0, 1000, usize::MAX, None)
        .unwrap();
    assert_eq!(got.messages.len() as u64, seq + 4);
    for (i, m) in got.messages.iter().enumerate() {
        match record::parse(m, 0, true).unwrap() {
            Parsed::Record(v) => assert_eq!(seq_of(v.body()), i as u64),
            _ => panic!("not a record"),
        }
    }
}
