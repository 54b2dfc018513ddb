//! Seeded crash simulation of the CommitLog on the simulated disk (`io::sim`).
//!
//! Per seed: a random workload (record sizes, SYNC_FLUSH or ASYNC_FLUSH, RWF_DSYNC or
//! linked fdatasync, many queues, 64 KiB segments so rolls are frequent, truncations
//! followed by slave-style raw appends of the cut bytes, short writes, late and
//! reordered completions, an EIO or ENOSPC at a chosen operation), a power cut at a
//! random moment (a chosen disk operation, or between two appends), recovery (sometimes
//! cut by a second power cut), and checks:
//! - every append acknowledged under SYNC_FLUSH is present and byte-identical, and so is
//!   every record below the highest `durable_end` the log published (both flush modes);
//! - every record the recovered log holds parses with a valid CRC (the body's, and with
//!   `enabledAppendPropCRC` the whole record's, the only case where sectors may also be
//!   torn at the crash) and is one that was
//!   sent, byte-identical to what was read back when it was acknowledged;
//! - recovering the recovered disk again changes nothing (same end, same files);
//! - `append_end >= write_end >= durable_end` whenever they are sampled;
//! - a recovered log takes new appends.
//!
//! `RINGMQ_SIM_SEED=<seed>` runs one seed; `RINGMQ_SIM_FIRST`, `RINGMQ_SIM_SEEDS` and
//! `RINGMQ_SIM_SECS` choose a range and a time bound (defaults: seeds 0.., at most 3000,
//! at most 45 s). A failing seed prints itself. The engine's threads run on real time, so
//! a seed replays the same choices, not always the same interleaving.
//! (Own test binary: the simulated disk is installed process-wide.)

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use ringmq_engine::commitlog::recovery;
use ringmq_engine::commitlog::{
    CommitLog, CommitLogConfig, FlushMode, Level, PutStatus, RawAppend, SyncMethod,
};
use ringmq_engine::io::gate;
use ringmq_engine::io::sim::{SimDisk, SimFaults, SimRng};
use ringmq_engine::record::{encode_properties, parse, MessageToStore, Parsed};

const SEGMENT: u64 = 64 * 1024;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
    })
}

#[test]
fn sim_crash() {
    let (first, count, secs) = match env_u64("RINGMQ_SIM_SEED") {
        Some(seed) => (seed, 1, u64::MAX),
        None => (
            env_u64("RINGMQ_SIM_FIRST").unwrap_or(0),
            env_u64("RINGMQ_SIM_SEEDS").unwrap_or(3000),
            env_u64("RINGMQ_SIM_SECS").unwrap_or(45),
        ),
    };
    let trace = std::env::var_os("RINGMQ_SIM_TRACE").is_some();
    let started = Instant::now();
    let mut ran = 0u64;
    let current = watchdog();
    for seed in first..first.saturating_add(count) {
        if started.elapsed() >= Duration::from_secs(secs) {
            break;
        }
        if trace {
            eprintln!("sim_crash: seed {seed}");
        }
        current.store(seed, std::sync::atomic::Ordering::Relaxed);
        let res = std::panic::catch_unwind(|| run_seed(seed));
        gate::install(None);
        if let Err(panic) = res {
            eprintln!("sim_crash: seed {seed} FAILED; replay with RINGMQ_SIM_SEED={seed}");
            std::panic::resume_unwind(panic);
        }
        ran += 1;
    }
    // Straight to stderr, past the test harness's capture, so CI logs show it.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "sim_crash: {ran} seeds from {first} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(ran > 0);
}

/// A seed that hangs (an engine thread died, a wait that never ends) is named and the
/// process stopped, rather than the test running forever.
fn watchdog() -> Arc<std::sync::atomic::AtomicU64> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let current = Arc::new(AtomicU64::new(u64::MAX));
    let seen = current.clone();
    std::thread::spawn(move || {
        let mut last = (u64::MAX, Instant::now());
        loop {
            std::thread::sleep(Duration::from_secs(1));
            let seed = seen.load(Ordering::Relaxed);
            if seed != last.0 {
                last = (seed, Instant::now());
            } else if last.1.elapsed() > Duration::from_secs(30) {
                eprintln!("sim_crash: seed {seed} HUNG; replay with RINGMQ_SIM_SEED={seed}");
                std::process::abort();
            }
        }
    });
    current
}

/// What the model knows of one record it saw acknowledged (or read back).
#[derive(Clone)]
struct Known {
    bytes: Vec<u8>,
    /// Acknowledged under SYNC_FLUSH: must survive any crash.
    durable: bool,
}

struct Model {
    /// Record bytes by physical offset, for records acknowledged (or raw-appended).
    records: HashMap<u64, Known>,
    /// Message bodies by sequence number, for every message ever sent.
    bodies: HashMap<u64, Vec<u8>>,
    /// The highest `durable_end` the log published (lowered by truncations): every
    /// record below it must survive a crash, whatever the flush mode.
    durable_end: u64,
}

fn message(rng: &mut SimRng, seq: u64, bodies: &mut HashMap<u64, Vec<u8>>) -> MessageToStore {
    let len = match rng.below(10) {
        0..=3 => 20 + rng.below(200),
        4..=7 => 200 + rng.below(1800),
        _ => 2000 + rng.below(1900),
    } as usize;
    let mut body = format!("msg-{seq:010}-").into_bytes();
    while body.len() < len {
        body.push(b'a' + ((seq as usize + body.len()) % 26) as u8);
    }
    bodies.insert(seq, body.clone());
    let topic = ["A", "B"][rng.below(2) as usize];
    let props = encode_properties([("KEYS", format!("k{seq}"))]);
    MessageToStore::new(topic, rng.below(8) as i32, body, props)
}

fn config(root: &Path, rng: &mut SimRng) -> CommitLogConfig {
    let mut cfg = CommitLogConfig::new(root);
    cfg.segment_size = SEGMENT;
    cfg.ring_capacity = 256 * 1024;
    cfg.max_message_size = 4096;
    cfg.flush_mode = if rng.below(2) == 0 {
        FlushMode::Sync
    } else {
        FlushMode::Async
    };
    cfg.sync_method = if rng.below(2) == 0 {
        SyncMethod::Dsync
    } else {
        SyncMethod::Fdatasync
    };
    cfg.flush_interval = Duration::from_millis(1 + rng.below(3));
    cfg.sync_flush_timeout = Duration::from_secs(5);
    cfg.writer_spin = Duration::ZERO;
    cfg.tail_shm_dir = None;
    cfg.writer_core = None;
    cfg.zero_fill_segments = Some(rng.below(4) == 0);
    cfg.append_prop_crc = rng.below(2) == 0;
    cfg
}

/// Whether a crash may tear a sector (keep a prefix of its new bytes): only for logs
/// whose records carry the whole-record CRC (`enabledAppendPropCRC`), since BODYCRC alone
/// cannot see a torn header, topic or properties. Disks promise atomic sectors; this is
/// the worse disk. `RINGMQ_SIM_TORN` tears for every seed (and so shows that gap).
fn tears(cfg: &CommitLogConfig, rng: &mut SimRng) -> bool {
    std::env::var_os("RINGMQ_SIM_TORN").is_some() || (cfg.append_prop_crc && rng.below(2) == 0)
}

/// Faults from now on (`ops`: disk operations done so far).
fn faults(rng: &mut SimRng, ops: u64, torn: bool) -> SimFaults {
    SimFaults {
        torn_sectors: torn,
        short_writes_per_mille: [0, 0, 50, 300][rng.below(4) as usize],
        delay_per_mille: [0, 200, 600][rng.below(3) as usize],
        fail_op: (rng.below(6) == 0).then(|| {
            let errno = if rng.below(2) == 0 {
                libc::EIO
            } else {
                libc::ENOSPC
            };
            (ops + 1 + rng.below(150), errno)
        }),
        crash_at_op: (rng.below(3) != 0).then(|| ops + 1 + rng.below(120)),
    }
}

fn run_seed(seed: u64) {
    let mut rng = SimRng::new(seed);
    let disk = SimDisk::new(seed, SimFaults::default());
    gate::install(Some(Arc::new(disk.clone())));
    let cfg = config(&PathBuf::from(format!("/sim/{seed}")), &mut rng);
    let dir = cfg.dir.clone();
    let sync = cfg.flush_mode == FlushMode::Sync;
    let torn = tears(&cfg, &mut rng);
    let mut model = Model {
        records: HashMap::new(),
        bodies: HashMap::new(),
        durable_end: 0,
    };
    let rec = recovery::recover(&cfg, None, false, None).expect("empty disk recovers");
    let log = CommitLog::start(cfg.clone(), rec.end).expect("log starts");
    log.set_queue_offsets(HashMap::new());
    let f = faults(&mut rng, disk.ops(), torn);
    disk.set_faults(f);
    let trace = std::env::var_os("RINGMQ_SIM_TRACE").is_some();
    if trace {
        eprintln!(
            "  {:?} {:?} zero_fill={:?} prop_crc={} {f:?}",
            cfg.flush_mode, cfg.sync_method, cfg.zero_fill_segments, cfg.append_prop_crc
        );
    }

    let ops = 1 + rng.below(60);
    let crash_between = rng.below(ops + 5);
    let mut seq = 0u64;
    for op in 0..ops {
        if op == crash_between {
            disk.crash();
        }
        if disk.crashed() || log.stopped().is_some() {
            break;
        }
        check_order(&log, &mut model);
        if rng.below(12) == 0 && !model.records.is_empty() {
            truncate_and_reappend(&log, &mut rng, &mut model);
            continue;
        }
        let n = 1 + rng.below(3);
        let msgs: Vec<_> = (0..n)
            .map(|_| {
                seq += 1;
                message(&mut rng, seq, &mut model.bodies)
            })
            .collect();
        let out = log.append_blocking(msgs);
        if trace {
            eprintln!(
                "  op {op}: {:?} at {:?} disk ops {} crashed {}",
                out.status,
                out.appended
                    .iter()
                    .map(|a| (a.phys_offset, a.size))
                    .collect::<Vec<_>>(),
                disk.ops(),
                disk.crashed()
            );
        }
        if out.status == PutStatus::Ok || out.status == PutStatus::FlushDiskTimeout {
            for a in &out.appended {
                let mut bytes = vec![0u8; a.size as usize];
                if log.read(a.phys_offset, &mut bytes).is_ok() {
                    let durable = sync && out.status == PutStatus::Ok;
                    model
                        .records
                        .insert(a.phys_offset as u64, Known { bytes, durable });
                }
            }
        }
        check_order(&log, &mut model);
    }
    disk.crash();
    let _ = log.shutdown();
    drop(log);

    // Reboot; sometimes the power fails again during recovery.
    if rng.below(4) == 0 {
        disk.restart(SimFaults {
            crash_at_op: Some(1 + rng.below(8)),
            torn_sectors: torn,
            ..SimFaults::default()
        });
        let _ = recovery::recover(&cfg, None, true, None);
        disk.crash();
    }
    disk.restart(SimFaults {
        torn_sectors: torn,
        ..SimFaults::default()
    });
    let end = recovery::recover(&cfg, None, true, None)
        .expect("recovery succeeds")
        .end;
    let files = disk.snapshot();
    let again = recovery::recover(&cfg, None, true, None)
        .expect("second recovery succeeds")
        .end;
    assert_eq!(again, end, "recovering twice gives the same end");
    assert!(files == disk.snapshot(), "recovering twice changes no file");

    if std::env::var_os("RINGMQ_SIM_TRACE").is_some() {
        eprintln!(
            "  recovered end {end}, published durable_end {}",
            model.durable_end
        );
    }
    check_log(&disk, &dir, end, &model);

    if rng.below(4) == 0 {
        let log = CommitLog::start(cfg.clone(), end).expect("recovered log starts");
        log.set_queue_offsets(HashMap::new());
        let out = log.append_blocking(vec![message(&mut rng, seq + 1, &mut model.bodies)]);
        assert_eq!(out.status, PutStatus::Ok, "a recovered log takes appends");
        let at = out.appended[0].phys_offset as u64;
        // At the end, or at the next segment when it did not fit in this one.
        assert!(
            at == end || (at == end - end % SEGMENT + SEGMENT),
            "first append after recovery at {at}, recovered end {end}"
        );
        log.shutdown().expect("clean shutdown");
    }
}

/// Sampled durable first, then written, then appended: each only grows (between
/// truncations), so the samples keep the order of the values.
fn check_order(log: &CommitLog, model: &mut Model) {
    let p = log.progress();
    let durable = p.get(Level::Durable);
    model.durable_end = model.durable_end.max(durable as u64);
    let written = p.get(Level::Write);
    let appended = p.get(Level::Append);
    assert!(
        appended >= written && written >= durable,
        "append_end {appended} >= write_end {written} >= durable_end {durable}"
    );
}

/// Cuts the log back to a record boundary (a slave told to), then appends the cut bytes
/// again as replicated raw bytes.
fn truncate_and_reappend(log: &CommitLog, rng: &mut SimRng, model: &mut Model) {
    let mut offsets: Vec<u64> = model.records.keys().copied().collect();
    offsets.sort_unstable();
    let cut = offsets[rng.below(offsets.len() as u64) as usize];
    let end = log.max_offset() as u64;
    let mut tail = vec![0u8; (end - cut) as usize];
    if log.read(cut as i64, &mut tail).is_err() {
        return;
    }
    // Asked to cut: whatever the answer, records past the cut may be gone.
    model.durable_end = model.durable_end.min(cut);
    for (_, k) in model.records.iter_mut().filter(|(&o, _)| o >= cut) {
        k.durable = false;
    }
    let res = log.truncate(cut as i64);
    if std::env::var_os("RINGMQ_SIM_TRACE").is_some() {
        eprintln!("  truncate {end} -> {cut}: {res:?}");
    }
    if res.is_err() {
        return;
    }
    let cut_records: Vec<(u64, Known)> = model
        .records
        .iter()
        .filter(|(&o, _)| o >= cut)
        .map(|(&o, k)| (o, k.clone()))
        .collect();
    model.records.retain(|&o, _| o < cut);
    model.durable_end = model.durable_end.min(cut);
    if rng.below(3) == 0 {
        return;
    }
    let (tx, rx) = mpsc::channel();
    log.append_raw(RawAppend {
        phys_offset: cut as i64,
        bytes: tail.into(),
        done: Box::new(move |r| {
            let _ = tx.send(r);
        }),
    });
    let res = rx.recv();
    if std::env::var_os("RINGMQ_SIM_TRACE").is_some() {
        eprintln!("  raw append at {cut}: {res:?}");
    }
    if let Ok(Ok(new_end)) = res {
        assert_eq!(new_end as u64, end, "raw append restores the end");
        for (o, mut k) in cut_records {
            // Replicated bytes are not acknowledged appends: only their content is checked.
            k.durable = false;
            model.records.insert(o, k);
        }
    }
}

/// Every record of `[first segment, end)` parses, is one that was sent, and matches what
/// was acknowledged; every SYNC_FLUSH acknowledgement lies below `end`.
fn check_log(disk: &SimDisk, dir: &Path, end: u64, model: &Model) {
    let files: HashMap<u64, Vec<u8>> = disk
        .snapshot()
        .into_iter()
        .filter(|(p, _)| p.parent() == Some(dir))
        .filter_map(|(p, bytes)| {
            let name = p.file_name()?.to_str()?;
            (name.len() == 20).then(|| (name.parse().ok(), bytes))
        })
        .filter_map(|(base, bytes)| Some((base?, bytes)))
        .collect();
    let mut found = std::collections::HashSet::new();
    let first = files.keys().min().copied().unwrap_or(0);
    let mut pos = first;
    while pos < end {
        let base = pos - pos % SEGMENT;
        let seg = files.get(&base).unwrap_or_else(|| {
            panic!(
                "segment {base} below the end {end} is missing: {:?}",
                disk.snapshot()
                    .iter()
                    .map(|(p, b)| (p.clone(), b.len()))
                    .collect::<Vec<_>>()
            )
        });
        let at = (pos - base) as usize;
        match parse(&seg[at..], pos as i64, true) {
            Ok(Parsed::Record(view)) => {
                let size = view.total_size() as usize;
                assert!(
                    pos + size as u64 <= end,
                    "record at {pos} crosses the end {end}"
                );
                let body = view.body();
                let seq: u64 = std::str::from_utf8(&body[4..14])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("record at {pos} has a foreign body"));
                assert_eq!(
                    model.bodies.get(&seq).map(Vec::as_slice),
                    Some(body),
                    "record at {pos}: body of message {seq} differs"
                );
                if let Some(k) = model.records.get(&pos) {
                    let got = &seg[at..at + size];
                    assert!(
                        k.bytes == got,
                        "record at {pos} (message {seq}) differs from what was acknowledged: \
                         {} vs {} bytes, first difference at byte {:?}",
                        got.len(),
                        k.bytes.len(),
                        got.iter().zip(&k.bytes).position(|(a, b)| a != b)
                    );
                }
                found.insert(pos);
                pos += size as u64;
            }
            Ok(Parsed::Blank { remaining }) => {
                assert_eq!(remaining as u64, base + SEGMENT - pos, "blank at {pos}");
                pos = base + SEGMENT;
            }
            other => panic!("no valid record at {pos} below the recovered end {end}: {other:?}"),
        }
    }
    assert!(
        end >= model.durable_end,
        "recovered end {end} is below the published durable_end {}",
        model.durable_end
    );
    for (&o, k) in &model.records {
        if o + k.bytes.len() as u64 <= model.durable_end {
            assert!(
                found.contains(&o),
                "record at {o} below the published durable_end {} lost (recovered end {end})",
                model.durable_end
            );
        }
        if k.durable {
            assert!(
                found.contains(&o),
                "SYNC_FLUSH-acknowledged record at {o} lost (recovered end {end})"
            );
        }
    }
}
