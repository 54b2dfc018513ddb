//! Seeded crash simulation of the whole store (CommitLog, dispatcher, ConsumeQueues,
//! checkpoint) on the simulated disk (`io::sim`).
//!
//! Per seed: a store with 64 KiB segments and 32-entry ConsumeQueue files (so both roll
//! often), a random flush mode, checkpoint interval and `enabledAppendPropCRC`, a random
//! workload over two topics and eight queues, a power cut at a random disk operation or
//! between two appends (with short writes, late completions, and sometimes an EIO or
//! ENOSPC before it), then a reboot and checks:
//! - the store opens;
//! - ConsumeQueues agree with the log: every record the log holds is indexed once, in its
//!   queue at its queue offset, and every entry points at such a record;
//! - every append acknowledged under SYNC_FLUSH is there, byte for byte;
//! - a clean restart of the recovered store gives the same log end and queue ends.
//!
//! `RINGMQ_SIM_SEED=<seed>` runs one seed; `RINGMQ_SIM_FIRST`, `RINGMQ_SIM_SEEDS` and
//! `RINGMQ_SIM_SECS` choose a range and a time bound (defaults: seeds 0.., at most 600,
//! at most 30 s). The store's threads run on real time, so a seed replays the same
//! choices, not always the same interleaving. (Own test binary: the simulated disk is
//! installed process-wide.)

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringmq_engine::commitlog::{FlushMode, PutStatus, SyncMethod};
use ringmq_engine::io::gate;
use ringmq_engine::io::sim::{SimDisk, SimFaults, SimRng};
use ringmq_engine::record::{encode_properties, parse, MessageToStore, Parsed};
use ringmq_engine::{MessageStore, StoreConfig};

const SEGMENT: u64 = 64 * 1024;
const TOPICS: [&str; 2] = ["A", "B"];
const QUEUES: i32 = 4;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
    })
}

#[test]
fn sim_store() {
    let (first, count, secs) = match env_u64("RINGMQ_SIM_SEED") {
        Some(seed) => (seed, 1, u64::MAX),
        None => (
            env_u64("RINGMQ_SIM_FIRST").unwrap_or(0),
            env_u64("RINGMQ_SIM_SEEDS").unwrap_or(600),
            env_u64("RINGMQ_SIM_SECS").unwrap_or(30),
        ),
    };
    let started = Instant::now();
    let mut ran = 0u64;
    for seed in first..first.saturating_add(count) {
        if started.elapsed() >= Duration::from_secs(secs) {
            break;
        }
        let res = std::panic::catch_unwind(|| run_seed(seed));
        gate::install(None);
        if let Err(panic) = res {
            eprintln!("sim_store: seed {seed} FAILED; replay with RINGMQ_SIM_SEED={seed}");
            std::panic::resume_unwind(panic);
        }
        ran += 1;
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "sim_store: {ran} seeds from {first} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(ran > 0);
}

fn config(root: PathBuf, rng: &mut SimRng) -> StoreConfig {
    let mut cfg = StoreConfig::new(root);
    let log = &mut cfg.commitlog;
    log.segment_size = SEGMENT;
    log.ring_capacity = 256 * 1024;
    log.max_message_size = 4096;
    log.flush_mode = if rng.below(2) == 0 {
        FlushMode::Sync
    } else {
        FlushMode::Async
    };
    log.sync_method = if rng.below(2) == 0 {
        SyncMethod::Dsync
    } else {
        SyncMethod::Fdatasync
    };
    log.flush_interval = Duration::from_millis(1 + rng.below(3));
    log.writer_spin = Duration::ZERO;
    log.tail_shm_dir = None;
    log.append_prop_crc = rng.below(2) == 0;
    cfg.cq_entries_per_file = 32;
    cfg.checkpoint_interval = Duration::from_millis(1 + rng.below(20));
    cfg
}

fn message(rng: &mut SimRng, seq: u64) -> MessageToStore {
    let span = if rng.below(4) == 0 { 3000 } else { 300 };
    let len = 20 + rng.below(span) as usize;
    let mut body = format!("msg-{seq:010}-").into_bytes();
    body.resize(len.max(body.len()), b'a' + (seq % 26) as u8);
    let topic = TOPICS[rng.below(2) as usize];
    let props = encode_properties([("KEYS", format!("k{seq}"))]);
    MessageToStore::new(topic, rng.below(QUEUES as u64) as i32, body, props)
}

fn run_seed(seed: u64) {
    let mut rng = SimRng::new(seed);
    let disk = SimDisk::new(seed, SimFaults::default());
    gate::install(Some(Arc::new(disk.clone())));
    let cfg = config(PathBuf::from(format!("/sim/{seed}")), &mut rng);
    let sync = cfg.commitlog.flush_mode == FlushMode::Sync;
    let torn = cfg.commitlog.append_prop_crc && rng.below(2) == 0;
    let store = MessageStore::open(cfg.clone()).expect("an empty store opens");
    disk.set_faults(SimFaults {
        torn_sectors: torn,
        short_writes_per_mille: [0, 50, 300][rng.below(3) as usize],
        delay_per_mille: [0, 200, 600][rng.below(3) as usize],
        fail_op: (rng.below(8) == 0).then(|| {
            let errno = [libc::EIO, libc::ENOSPC][rng.below(2) as usize];
            (disk.ops() + 1 + rng.below(300), errno)
        }),
        crash_at_op: (rng.below(3) != 0).then(|| disk.ops() + 1 + rng.below(300)),
    });

    // Acknowledged under SYNC_FLUSH: must survive. Physical offset -> record bytes.
    let mut durable: HashMap<i64, Vec<u8>> = HashMap::new();
    let ops = 1 + rng.below(80);
    let crash_between = rng.below(ops + 5);
    let mut seq = 0;
    for op in 0..ops {
        if op == crash_between {
            disk.crash();
        }
        if disk.crashed() || store.commitlog().stopped().is_some() {
            break;
        }
        if rng.below(10) == 0 {
            // Let the dispatcher and the checkpoint move.
            std::thread::sleep(Duration::from_millis(rng.below(5)));
        }
        let msgs: Vec<_> = (0..1 + rng.below(4))
            .map(|_| {
                seq += 1;
                message(&mut rng, seq)
            })
            .collect();
        let out = store.put_blocking(msgs);
        if sync && out.status == PutStatus::Ok {
            for a in &out.appended {
                let mut bytes = vec![0u8; a.size as usize];
                if store.commitlog().read(a.phys_offset, &mut bytes).is_ok() {
                    durable.insert(a.phys_offset, bytes);
                }
            }
        }
    }
    disk.crash();
    let _ = store.shutdown();
    drop(store);

    disk.restart(SimFaults {
        torn_sectors: torn,
        ..SimFaults::default()
    });
    let store = MessageStore::open(cfg.clone()).expect("the store opens after a crash");
    let end = store.commitlog().max_offset();
    assert!(
        store.wait_dispatched(end, Duration::from_secs(10)),
        "the dispatcher reaches the recovered end {end}"
    );
    let queue_ends = check_store(&store, &durable);
    store.shutdown().expect("clean shutdown");
    drop(store);

    let store = MessageStore::open(cfg).expect("the store reopens");
    assert_eq!(
        store.commitlog().max_offset(),
        end,
        "a clean restart keeps the end"
    );
    for (&(topic, q), &n) in &queue_ends {
        assert_eq!(
            store.max_offset_in_queue(topic, q),
            n,
            "{topic}/{q} after a restart"
        );
    }
    store.shutdown().expect("clean shutdown");
}

/// A record of the log: physical offset, queue offset, size.
type Indexed = (i64, i64, usize);

/// Walks the log and the ConsumeQueues; returns each queue's end.
fn check_store(
    store: &MessageStore,
    durable: &HashMap<i64, Vec<u8>>,
) -> HashMap<(&'static str, i32), i64> {
    let log = store.commitlog();
    let end = log.max_offset();
    // Every record of the log, by queue, in log order.
    let mut by_queue: HashMap<(String, i32), Vec<Indexed>> = HashMap::new();
    let mut pos = log.min_offset();
    while pos < end {
        let base = pos - pos % SEGMENT as i64;
        let in_seg = (base + SEGMENT as i64 - pos).min(end - pos) as usize;
        let mut head = vec![0u8; in_seg.min(8192)];
        log.read(pos, &mut head).expect("read below the end");
        let total = match parse(&head, pos, false) {
            Ok(Parsed::Blank { .. }) => {
                pos = base + SEGMENT as i64;
                continue;
            }
            Ok(Parsed::Record(v)) => v.total_size() as usize,
            Ok(Parsed::Incomplete) => i32::from_be_bytes(head[..4].try_into().unwrap()) as usize,
            Err(e) => panic!("corrupt bytes at {pos} below the end {end}: {e}"),
        };
        let mut rec = vec![0u8; total];
        log.read(pos, &mut rec).expect("read a record");
        let Ok(Parsed::Record(v)) = parse(&rec, pos, true) else {
            panic!("record at {pos} does not parse with its CRCs");
        };
        assert_eq!(
            v.physical_offset(),
            pos,
            "record at {pos} names another offset"
        );
        by_queue
            .entry((v.topic().to_string(), v.queue_id()))
            .or_default()
            .push((pos, v.queue_offset(), total));
        pos += total as i64;
    }
    for (phys, bytes) in durable {
        assert!(
            *phys < end,
            "acknowledged SYNC_FLUSH record at {phys} lost (end {end})"
        );
        let mut got = vec![0u8; bytes.len()];
        log.read(*phys, &mut got).unwrap();
        assert!(
            got == *bytes,
            "acknowledged SYNC_FLUSH record at {phys} changed"
        );
    }
    let mut ends = HashMap::new();
    for topic in TOPICS {
        for q in 0..QUEUES {
            let records = by_queue.remove(&(topic.to_string(), q)).unwrap_or_default();
            let max = store.max_offset_in_queue(topic, q);
            if max != records.len() as i64 {
                let cq = store.consume_queues().get(topic, q).expect("queue exists");
                let entries: Vec<_> = cq
                    .read(0, max as usize)
                    .unwrap_or_default()
                    .iter()
                    .map(|e| (e.phys_offset, e.size))
                    .collect();
                panic!(
                    "{topic}/{q}: queue end {max} but {} records in the log (min {}, end {end}): \
                     records {records:?}, entries {entries:?}",
                    records.len(),
                    log.min_offset()
                );
            }
            if max > 0 {
                let cq = store.consume_queues().get(topic, q).expect("queue exists");
                let mut entries = Vec::new();
                while (entries.len() as i64) < max {
                    let more = cq
                        .read(entries.len() as i64, max as usize - entries.len())
                        .expect("read the queue");
                    assert!(
                        !more.is_empty(),
                        "{topic}/{q}: entry {} unreadable",
                        entries.len()
                    );
                    entries.extend(more);
                }
                for (i, (e, &(phys, qoff, size))) in entries.iter().zip(&records).enumerate() {
                    assert_eq!(
                        qoff, i as i64,
                        "{topic}/{q}: record at {phys} has queue offset {qoff}"
                    );
                    assert_eq!(
                        (e.phys_offset, e.size as usize),
                        (phys, size),
                        "{topic}/{q}: entry {i} points elsewhere"
                    );
                }
            }
            ends.insert((topic, q), max);
        }
    }
    assert!(
        by_queue.is_empty(),
        "records of unknown queues: {:?}",
        by_queue.keys()
    );
    ends
}
