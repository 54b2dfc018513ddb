//! Slave-side truncation: a store holding bytes its master lost cuts its CommitLog back to
//! the master's end, rebuilds its ConsumeQueues past it and continues with replicated
//! bytes to a byte-identical log; the cut survives a clean restart and a crash; SYNC_FLUSH
//! appends past the cut are refused, never acknowledged. (Own test binary: the fault
//! switches are process-wide, so every test here runs alone.)

mod common;

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use ringmq_engine::commitlog::{recovery, AppendRequest, FlushMode, PutStatus, RawAppend};
use ringmq_engine::io::faults;
use ringmq_engine::record::{self, Parsed};
use ringmq_engine::{Error, GetStatus, MessageStore, TruncateReport};

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Unpauses writes even if the test fails while they are paused.
struct Unpause;

impl Drop for Unpause {
    fn drop(&mut self) {
        faults::pause_writes(false);
    }
}

/// One stored record: (topic, queue id, phys offset, size, queue offset).
#[derive(Debug, Clone)]
struct Rec {
    topic: &'static str,
    queue_id: i32,
    phys: i64,
    size: i64,
    queue_offset: i64,
}

impl Rec {
    fn end(&self) -> i64 {
        self.phys + self.size
    }
}

fn load(store: &MessageStore, topics: &[&'static str], seqs: std::ops::Range<u64>) -> Vec<Rec> {
    seqs.map(|seq| {
        let topic = topics[seq as usize % topics.len()];
        let queue_id = (seq % 3) as i32;
        let o = store.put_blocking(vec![message(
            topic,
            queue_id,
            seq,
            20 + (seq * 53 % 1500) as usize,
        )]);
        assert_eq!(o.status, PutStatus::Ok);
        let a = o.appended[0];
        Rec {
            topic,
            queue_id,
            phys: a.phys_offset,
            size: a.size as i64,
            queue_offset: a.queue_offset,
        }
    })
    .collect()
}

fn raw(store: &MessageStore, at: i64, bytes: Vec<u8>) -> ringmq_engine::Result<i64> {
    let (tx, rx) = mpsc::channel();
    store.put_raw(RawAppend {
        phys_offset: at,
        bytes: bytes.into(),
        done: Box::new(move |r| tx.send(r).unwrap()),
    });
    rx.recv_timeout(Duration::from_secs(10)).unwrap()
}

/// Copies `[from, to)` of `src`'s log to `dst` in uneven chunks, as replication does.
fn replicate(src: &MessageStore, dst: &MessageStore, from: i64, to: i64) {
    replicate_bytes(&log_bytes(src, 0, to), dst, from, to);
}

/// As `replicate`, from a copy of a log (`log[i]` = the byte at offset `i`).
fn replicate_bytes(log: &[u8], dst: &MessageStore, from: i64, to: i64) {
    let mut at = from;
    let mut step = 1i64;
    while at < to {
        let n = (step * 977 % 9000 + 1).min(to - at);
        let chunk = log[at as usize..(at + n) as usize].to_vec();
        assert_eq!(raw(dst, at, chunk).unwrap(), at + n);
        at += n;
        step += 1;
    }
}

fn log_bytes(store: &MessageStore, from: i64, to: i64) -> Vec<u8> {
    let mut buf = vec![0u8; (to - from) as usize];
    store.commitlog().read(from, &mut buf).unwrap();
    buf
}

/// Every record of a queue, from its min offset (one ConsumeQueue file per pull).
fn queue_records(store: &MessageStore, topic: &str, queue_id: i32) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut at = store.min_offset_in_queue(topic, queue_id);
    while at < store.max_offset_in_queue(topic, queue_id) {
        let got = store
            .get_messages(topic, queue_id, at, 1000, usize::MAX, None)
            .unwrap();
        assert_eq!(got.status, GetStatus::Found, "{topic}:{queue_id}@{at}");
        out.extend(got.messages);
        at = got.next_begin_offset;
    }
    out
}

/// The ConsumeQueues of `store` hold exactly `recs` (whose bytes `reference` has).
fn assert_queues_hold(
    store: &MessageStore,
    reference: &[u8],
    recs: &[Rec],
    topics: &[&str],
    what: &str,
) {
    for &topic in topics {
        for q in 0..3 {
            let want: Vec<&Rec> = recs
                .iter()
                .filter(|r| r.topic == topic && r.queue_id == q)
                .collect();
            assert_eq!(
                store.max_offset_in_queue(topic, q),
                want.len() as i64,
                "{what}: {topic}:{q} entries"
            );
            let got = queue_records(store, topic, q);
            assert_eq!(got.len(), want.len(), "{what}: {topic}:{q} records");
            for (i, (r, g)) in want.iter().zip(&got).enumerate() {
                assert_eq!(
                    r.queue_offset, i as i64,
                    "{what}: {topic}:{q} queue offsets"
                );
                assert_eq!(
                    &g[..],
                    &reference[r.phys as usize..r.end() as usize],
                    "{what}: {topic}:{q} record at {}",
                    r.phys
                );
            }
        }
    }
}

/// The smallest tail ring the config allows (256 KiB), so a cut into an older segment
/// lies below the ring's window and its partial page must be re-read from the file.
fn open_small_ring(root: &Path) -> MessageStore {
    let mut cfg = small_config(root, FlushMode::Async);
    cfg.commitlog.ring_capacity = 256 << 10;
    MessageStore::open(cfg).expect("store opens")
}

fn segment_bases(root: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(root.join("commitlog"))
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str()?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

/// On disk, nothing past `cut` but zeros: the tail of its segment, and any later file
/// (at most one, a fresh preallocation).
fn assert_nothing_past(root: &Path, cut: i64) {
    let seg = SEGMENT as i64;
    let base = cut - cut % seg;
    for b in segment_bases(root) {
        let b = b as i64;
        if b < base {
            continue;
        }
        assert!(b <= base + seg, "segment {b} past the cut {cut} survives");
        let bytes = std::fs::read(root.join("commitlog").join(format!("{b:020}"))).unwrap();
        let from = if b == base { (cut - base) as usize } else { 0 };
        assert!(
            bytes[from.min(bytes.len())..].iter().all(|&x| x == 0),
            "stale bytes past {cut} in segment {b}"
        );
    }
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The first record boundary at or past the middle of segment 1.
fn cut_in_segment_one(recs: &[Rec]) -> i64 {
    let cut = recs
        .iter()
        .map(Rec::end)
        .find(|&e| e >= SEGMENT as i64 * 3 / 2)
        .unwrap();
    assert!(cut < 2 * SEGMENT as i64);
    cut
}

#[test]
fn truncate_into_an_older_segment_then_replicate_a_new_tail() {
    let _serial = serial();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let slave_root = dir.path().join("slave");
    let slave = open_small_ring(&slave_root);
    let recs = load(&slave, &["A", "B"], 0..400);
    let end = recs.last().unwrap().end();
    assert!(end > 4 * SEGMENT as i64, "the load crosses segments");
    assert!(slave.wait_dispatched(end, Duration::from_secs(10)));
    let cut = cut_in_segment_one(&recs);

    // The new master: the same log up to `cut`, then a tail of its own.
    let master_root = dir.path().join("master");
    let master = open(&master_root, FlushMode::Async);
    replicate(&slave, &master, 0, cut);
    assert!(master.wait_dispatched(cut, Duration::from_secs(10)));
    master.shutdown().unwrap();
    drop(master);
    let master = open(&master_root, FlushMode::Async);
    assert_eq!(master.commitlog().max_offset(), cut);
    let new_tail = load(&master, &["A", "C"], 1000..1150);
    let master_end = new_tail.last().unwrap().end();
    assert!(master_end > end - 2 * SEGMENT as i64);

    let report = slave.truncate_log(cut).unwrap();
    assert_eq!(
        report,
        TruncateReport {
            dropped_bytes: (end - cut) as u64,
            new_end: cut
        }
    );
    assert_eq!(slave.commitlog().max_offset(), cut);
    assert_eq!(slave.dispatched_offset(), cut);
    assert_nothing_past(&slave_root, cut);

    // ConsumeQueues hold exactly the records below the cut.
    let reference = log_bytes(&master, 0, master_end);
    let kept: Vec<Rec> = recs.iter().filter(|r| r.end() <= cut).cloned().collect();
    assert!(kept.len() < recs.len() / 2);
    assert_queues_hold(&slave, &reference, &kept, &["A", "B", "C"], "after the cut");

    // Reads past the cut fail cleanly.
    let mut one = [0u8; 1];
    assert!(matches!(
        slave.commitlog().read(cut, &mut one),
        Err(Error::Invalid(_))
    ));
    let mut straddle = [0u8; 8];
    assert!(matches!(
        slave.commitlog().read(cut - 4, &mut straddle),
        Err(Error::Invalid(_))
    ));
    assert!(slave.commitlog().with_bytes(cut, 1, |_| ()).is_err());
    let a0 = slave.max_offset_in_queue("A", 0);
    let past = slave
        .get_messages("A", 0, a0, 10, usize::MAX, None)
        .unwrap();
    assert_eq!(past.status, GetStatus::OffsetOverflowOne);

    // A gap is still refused; replicated bytes continue at the cut.
    assert!(matches!(
        raw(&slave, cut + 1, vec![0]),
        Err(Error::Discontinuity { expected, .. }) if expected == cut
    ));
    replicate(&master, &slave, cut, master_end);
    assert_eq!(slave.commitlog().max_offset(), master_end);
    assert!(log_bytes(&slave, 0, master_end) == reference, "logs differ");
    assert!(slave.wait_dispatched(master_end, Duration::from_secs(10)));
    assert!(master.wait_dispatched(master_end, Duration::from_secs(10)));
    let mut all = kept.clone();
    all.extend(new_tail.iter().cloned());
    assert_queues_hold(&slave, &reference, &all, &["A", "B", "C"], "slave");
    assert_queues_hold(&master, &reference, &all, &["A", "B", "C"], "master");

    // And it all survives a restart.
    slave.shutdown().unwrap();
    drop(slave);
    let slave = open_small_ring(&slave_root);
    assert_eq!(slave.commitlog().max_offset(), master_end);
    assert!(log_bytes(&slave, 0, master_end) == reference);
    assert_queues_hold(&slave, &reference, &all, &["A", "B", "C"], "restarted");
}

#[test]
fn truncation_survives_restart_and_crash() {
    let _serial = serial();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let root = dir.path().join("store");
    let store = open_small_ring(&root);
    let recs = load(&store, &["A", "B"], 0..300);
    let end = recs.last().unwrap().end();
    let reference = log_bytes(&store, 0, end);
    let cut = cut_in_segment_one(&recs);
    // Let housekeeping move the checkpoint past the cut, so the truncation must lower it.
    wait_until("a checkpoint past the cut", || {
        recovery::read_checkpoint(&root)
            .unwrap()
            .is_some_and(|c| c.phys_offset > cut)
    });
    store.truncate_log(cut).unwrap();
    let cp = recovery::read_checkpoint(&root).unwrap().unwrap();
    assert!(
        cp.phys_offset <= cut,
        "checkpoint {} left past the cut",
        cp.phys_offset
    );
    let kept: Vec<Rec> = recs.iter().filter(|r| r.end() <= cut).cloned().collect();

    // A crash right after the truncation: the directory as it is now, abort marker
    // included; once with the checkpoint as left, once with a scan from the log's start.
    assert!(recovery::abort_path(&root).exists());
    let crashed = dir.path().join("crashed");
    copy_dir(&root, &crashed);
    let rescanned = dir.path().join("rescanned");
    copy_dir(&root, &rescanned);
    recovery::write_checkpoint(
        &rescanned,
        &recovery::Checkpoint {
            phys_offset: 0,
            timestamp_ms: 0,
        },
    )
    .unwrap();
    store.shutdown().unwrap();
    drop(store);

    for (what, path) in [
        ("clean restart", &root),
        ("crash", &crashed),
        ("crash, full scan", &rescanned),
    ] {
        let store = open(path, FlushMode::Async);
        assert_eq!(store.commitlog().max_offset(), cut, "{what}");
        assert_nothing_past(path, cut);
        assert_queues_hold(&store, &reference, &kept, &["A", "B"], what);
        let mut one = [0u8; 1];
        assert!(store.commitlog().read(cut, &mut one).is_err(), "{what}");
        // Appends continue at the cut, with the next queue offset.
        let o = store.put_blocking(vec![message("A", 0, 5000, 100)]);
        assert_eq!(o.status, PutStatus::Ok);
        assert_eq!(o.appended[0].phys_offset, cut, "{what}");
        let a0 = kept
            .iter()
            .filter(|r| r.topic == "A" && r.queue_id == 0)
            .count() as i64;
        assert_eq!(o.appended[0].queue_offset, a0, "{what}");
        assert!(store.wait_dispatched(o.end_offset, Duration::from_secs(10)));
        assert_eq!(store.max_offset_in_queue("A", 0), a0 + 1, "{what}");
        assert_eq!(store.max_offset_in_queue("B", 0), {
            kept.iter()
                .filter(|r| r.topic == "B" && r.queue_id == 0)
                .count() as i64
        });
    }
}

#[test]
fn truncate_to_the_end_is_a_no_op_and_past_it_an_error() {
    let _serial = serial();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = open(dir.path(), FlushMode::Sync);
    let recs = load(&store, &["A"], 0..180);
    let end = recs.last().unwrap().end();
    assert!(end > 2 * SEGMENT as i64);
    assert!(store.wait_dispatched(end, Duration::from_secs(10)));
    let reference = log_bytes(&store, 0, end);

    // To the exact end: nothing changes.
    assert_eq!(
        store.truncate_log(end).unwrap(),
        TruncateReport {
            dropped_bytes: 0,
            new_end: end
        }
    );
    store.commitlog().truncate(end).unwrap();
    assert_eq!(store.commitlog().max_offset(), end);
    assert_queues_hold(&store, &reference, &recs, &["A"], "no-op");

    // Past the end, or negative: refused, nothing changes.
    assert!(matches!(
        store.truncate_log(end + 1),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        store.commitlog().truncate(end + 1),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(store.truncate_log(-1), Err(Error::Invalid(_))));
    assert!(matches!(
        store.commitlog().truncate(-1),
        Err(Error::Invalid(_))
    ));
    assert_eq!(store.commitlog().max_offset(), end);
    let o = store.put_blocking(vec![message("A", 0, 500, 100)]);
    assert_eq!(o.status, PutStatus::Ok);
    assert_eq!(o.appended[0].phys_offset, end);
    assert_eq!(o.appended[0].queue_offset, 60);

    // Exactly at a segment start: that segment is the current one.
    let seg = SEGMENT as i64;
    store.truncate_log(seg).unwrap();
    assert_eq!(store.commitlog().max_offset(), seg);
    let kept: Vec<Rec> = recs.iter().filter(|r| r.end() <= seg).cloned().collect();
    assert_queues_hold(&store, &reference, &kept, &["A"], "segment start");
    let o = store.put_blocking(vec![message("A", 0, 501, 100)]);
    assert_eq!(o.status, PutStatus::Ok);
    assert_eq!(o.appended[0].phys_offset, seg);
    let a0 = kept.iter().filter(|r| r.queue_id == 0).count() as i64;
    assert_eq!(o.appended[0].queue_offset, a0);

    // Everything: the log starts over.
    store.truncate_log(0).unwrap();
    assert_eq!(store.commitlog().max_offset(), 0);
    for q in 0..3 {
        assert_eq!(store.max_offset_in_queue("A", q), 0);
    }
    let o = store.put_blocking(vec![message("A", 1, 502, 100)]);
    assert_eq!(o.status, PutStatus::Ok);
    assert_eq!(
        (o.appended[0].phys_offset, o.appended[0].queue_offset),
        (0, 0)
    );
    assert!(store.wait_dispatched(o.end_offset, Duration::from_secs(10)));
    assert_eq!(store.max_offset_in_queue("A", 1), 1);
    assert_eq!(segment_bases(dir.path()).first(), Some(&0));
    assert!(segment_bases(dir.path()).iter().all(|&b| b <= SEGMENT));
}

#[test]
fn sync_flush_ack_past_the_cut_is_refused() {
    let _serial = serial();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut cfg = small_config(dir.path(), FlushMode::Sync);
    cfg.commitlog.sync_flush_timeout = Duration::from_secs(60);
    let store = MessageStore::open(cfg.clone()).unwrap();
    let mut cut = 0;
    for seq in 0..5 {
        let o = store.put_blocking(vec![message("T", 0, seq, 300)]);
        assert_eq!(o.status, PutStatus::Ok);
        cut = o.end_offset;
    }

    // The disk stalls: the next append is in the log but waits for durability.
    faults::pause_writes(true);
    let unpause = Unpause;
    let (tx, rx) = mpsc::channel();
    store.put(AppendRequest {
        messages: vec![message("T", 0, 5, 300)],
        wait_durable: true,
        done: Box::new(move |o| tx.send(o).unwrap()),
    });
    wait_until("the append", || store.commitlog().max_offset() > cut);
    std::thread::sleep(Duration::from_millis(20));
    assert!(rx.try_recv().is_err(), "answered while the disk is stalled");

    let report = store.truncate_log(cut).unwrap();
    assert_eq!(report.new_end, cut);
    let o = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(
        o.status,
        PutStatus::ServiceNotAvailable("truncated".into()),
        "an append past the cut is never acknowledged"
    );
    drop(unpause);

    // The log continues at the cut; the queue reuses the dropped record's offset.
    let o = store.put_blocking(vec![message("T", 0, 6, 300)]);
    assert_eq!(o.status, PutStatus::Ok);
    assert_eq!(o.appended[0].phys_offset, cut);
    assert_eq!(o.appended[0].queue_offset, 5);
    let end = o.end_offset;
    store.shutdown().unwrap();
    drop(store);
    let store = MessageStore::open(cfg).unwrap();
    assert_eq!(store.commitlog().max_offset(), end);
    let got = queue_records(&store, "T", 0);
    let seqs: Vec<u64> = got
        .iter()
        .map(|m| match record::parse(m, 0, true).unwrap() {
            Parsed::Record(v) => seq_of(v.body()),
            _ => panic!("not a record"),
        })
        .collect();
    assert_eq!(seqs, vec![0, 1, 2, 3, 4, 6]);
}

#[test]
fn cut_inside_a_record_resumes_indexing_at_its_start() {
    let _serial = serial();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = open(dir.path(), FlushMode::Async);
    let recs = load(&store, &["A", "B"], 0..60);
    let end = recs.last().unwrap().end();
    assert!(store.wait_dispatched(end, Duration::from_secs(10)));
    let reference = log_bytes(&store, 0, end);
    let cut_rec = &recs[40];
    let cut = cut_rec.phys + 10;

    store.truncate_log(cut).unwrap();
    assert_eq!(store.commitlog().max_offset(), cut);
    // The dispatcher goes back to where the cut record starts; the queues hold the
    // records before it.
    assert_eq!(store.dispatched_offset(), cut_rec.phys);
    assert_queues_hold(&store, &reference, &recs[..40], &["A", "B"], "cut record");

    // Replicated bytes complete the record: it and the rest are indexed again.
    replicate_bytes(&reference, &store, cut, end);
    assert!(log_bytes(&store, 0, end) == reference);
    assert!(store.wait_dispatched(end, Duration::from_secs(10)));
    assert_queues_hold(&store, &reference, &recs, &["A", "B"], "completed");
}
