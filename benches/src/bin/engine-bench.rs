//! engine-bench: the CommitLog's append throughput and flush latency, each beside the raw
//! device ceiling measured in the same run on the same file system.
//!
//! Prints: the raw ceiling (io_uring O_DIRECT sequential writes, 1 MiB blocks, QD 8);
//! ASYNC_FLUSH append throughput for 128 B, 1 KiB and 4 KiB bodies; SYNC_FLUSH latency
//! with 1, 16 and 128 appenders in flight for both durability methods; the raw 4 KiB
//! write+fdatasync latency; the ASYNC_FLUSH single-appender ack latency for each way an
//! ack can survive (or not) a process crash (answered from the tail ring in shared memory,
//! the default; after the O_DIRECT write with a private ring; from a private ring, lost by
//! a crash) beside the raw 4 KiB O_DIRECT write latency; and a last machine-readable
//! `RESULT` line.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use clap::Parser;
use hdrhistogram::Histogram;
use ringmq_benches::ceiling::{
    direct_write, latency_histogram, pwrite_all, random_buf, sync_write, ScratchFile,
};
use ringmq_benches::report::Table;
use ringmq_engine::commitlog::recovery;
use ringmq_engine::commitlog::{
    AppendRequest, CommitLog, CommitLogConfig, FlushMode, PutStatus, SyncMethod,
};
use ringmq_engine::record::{encode_properties, MessageToStore};
use ringmq_engine::{MessageStore, StoreConfig};

#[derive(Parser)]
#[command(about = "CommitLog append throughput and flush latency beside the raw device ceiling")]
struct Args {
    /// Directory on the file system to measure (default: ./bench-data, removed after).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// MiB written for the raw bandwidth ceiling.
    #[arg(long, default_value_t = 2048)]
    ceiling_mib: u64,
    /// Seconds of ASYNC_FLUSH appending per body size.
    #[arg(long, default_value_t = 4.0)]
    async_secs: f64,
    /// Seconds per SYNC_FLUSH case.
    #[arg(long, default_value_t = 3.0)]
    sync_secs: f64,
    /// Messages per append request in the throughput runs (one network ring turn's batch).
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Append requests in flight in the throughput runs.
    #[arg(long, default_value_t = 16)]
    inflight: usize,
    /// Raw write+fdatasync samples for the latency ceiling.
    #[arg(long, default_value_t = 2000)]
    raw_samples: usize,
    /// Do not pin the writer (core 0) and the load thread (core 1).
    #[arg(long)]
    no_pin: bool,
    /// Where the throughput and SYNC_FLUSH runs keep the tail ring and when ASYNC_FLUSH
    /// answers: `shared` (in /dev/shm, answered from the ring; the default), `write`
    /// (private ring, answered after the write) or `memory` (private ring, answered from
    /// it, lost by a process crash).
    #[arg(long, value_enum, default_value_t = Ack::Shared)]
    ack: Ack,
    /// Append with `enabledAppendPropCRC` (a CRC of every whole record, 20 bytes more per
    /// record): its cost against a run without.
    #[arg(long)]
    prop_crc: bool,
    /// MiB of log written for the crash-recovery timing (0 skips it).
    #[arg(long, default_value_t = 1024)]
    recovery_mib: u64,
}

/// See `Args::ack`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Ack {
    Shared,
    Write,
    Memory,
}

impl Ack {
    fn label(self) -> &'static str {
        match self {
            Ack::Shared => "from the ring in shared memory (survives kill -9)",
            Ack::Write => "after the O_DIRECT write, private ring (survives kill -9)",
            Ack::Memory => "from a private ring (lost by kill -9)",
        }
    }
}

fn main() {
    let args = Args::parse();
    let own_dir = args.dir.is_none();
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("bench-data"));
    std::fs::create_dir_all(&dir).expect("create bench dir");
    if !args.no_pin {
        core_affinity::set_for_current(core_affinity::CoreId { id: 1 });
    }

    println!(
        "engine-bench in {} (pinning {})",
        dir.display(),
        if args.no_pin {
            "off"
        } else {
            "writer core 0, load core 1"
        }
    );
    let ceiling = direct_write::measure(&dir, 1 << 20, 8, args.ceiling_mib << 20, true);
    let mut t = Table::new(
        "raw ceiling: io_uring O_DIRECT sequential writes, 1 MiB blocks, QD 8 (fallocated file)",
    );
    println!(
        "registered io_uring buffers: {}",
        commitlog(
            &dir,
            "probe",
            FlushMode::Async,
            SyncMethod::Dsync,
            &args,
            args.ack
        )
        .uses_registered_buffers()
    );
    let _ = std::fs::remove_dir_all(dir.join("probe"));
    t.row("write bandwidth", ceiling.mb_per_s, "MB/s", None);
    t.print();

    let mut t = Table::new(
        "ASYNC_FLUSH append throughput (record bytes; ratio = MB/s over the raw ceiling)",
    );
    let mut async_1k_ratio = 0.0;
    for body in [128usize, 1024, 4096] {
        let r = async_throughput(&dir, &args, body);
        t.row(format!("{body} B bodies"), r.msgs_per_s, "msgs/s", None);
        t.row(
            format!("{body} B bodies"),
            r.mb_per_s,
            "MB/s",
            Some(ceiling.mb_per_s),
        );
        if body == 1024 {
            async_1k_ratio = r.mb_per_s / ceiling.mb_per_s;
        }
    }
    t.print();

    let raw = sync_write::measure(&dir, args.raw_samples, 4096);
    let raw_p50 = raw.write_fdatasync.value_at_quantile(0.5) as f64;
    let mut t = Table::new("raw durable 4 KiB write latency, file written before (us)");
    for (name, h) in raw
        .cases()
        .into_iter()
        .filter(|(n, _)| n.contains("written-before"))
    {
        t.latency_rows(&name, h, 1.0, "us", None);
    }
    t.print();

    let mut best: Option<(SyncMethod, f64, f64)> = None; // (method, sync1 p50, sync128 msgs/s)
    for method in [SyncMethod::Dsync, SyncMethod::Fdatasync] {
        let mut t = Table::new(format!(
            "SYNC_FLUSH, 1 KiB bodies, {method:?} (latency us; ratio vs raw write+fdatasync)"
        ));
        let mut p50_1 = 0.0;
        let mut tput_128 = 0.0;
        for appenders in [1usize, 16, 128] {
            let r = ack_latency(&dir, &args, FlushMode::Sync, method, appenders, args.ack);
            t.latency_rows(
                &format!("{appenders} in flight"),
                &r.latency_us,
                1.0,
                "us",
                Some(&raw.write_fdatasync),
            );
            t.row(
                format!("{appenders} in flight throughput"),
                r.msgs_per_s,
                "msgs/s",
                None,
            );
            if appenders == 1 {
                p50_1 = r.latency_us.value_at_quantile(0.5) as f64;
            }
            if appenders == 128 {
                tput_128 = r.msgs_per_s;
            }
        }
        t.print();
        if best.is_none_or(|(_, p, _)| p50_1 < p) {
            best = Some((method, p50_1, tput_128));
        }
    }
    let (method, sync1_p50, sync128) = best.expect("measured");
    let mut t = Table::new("single appender SYNC_FLUSH beside the raw write+fdatasync");
    t.row("raw 4 KiB write+fdatasync p50", raw_p50, "us", None);
    t.row(
        format!("SYNC_FLUSH 1 appender p50 ({method:?})"),
        sync1_p50,
        "us",
        Some(raw_p50),
    );
    t.print();

    // An ASYNC_FLUSH ack waits at most for the record's O_DIRECT write (not for a sync):
    // its ceiling is one plain 4 KiB O_DIRECT write. Each ack choice, in this run.
    let raw_write = raw_direct_write_latency(&dir, args.raw_samples);
    let raw_write_p50 = raw_write.value_at_quantile(0.5) as f64;
    let mut t = Table::new(
        "ASYNC_FLUSH single appender, 1 KiB bodies (latency us; ratio vs raw 4 KiB O_DIRECT write)",
    );
    t.latency_rows("raw 4 KiB O_DIRECT write", &raw_write, 1.0, "us", None);
    let mut async1 = Vec::new();
    for ack in [Ack::Shared, Ack::Write, Ack::Memory] {
        let r = ack_latency(&dir, &args, FlushMode::Async, SyncMethod::Dsync, 1, ack);
        t.latency_rows(
            &format!("ack {}", ack.label()),
            &r.latency_us,
            1.0,
            "us",
            Some(&raw_write),
        );
        let h = &r.latency_us;
        async1.push((
            h.value_at_quantile(0.5) as f64,
            h.value_at_quantile(0.99) as f64,
        ));
    }
    t.print();
    let [(async1_p50, async1_p99), (write_ack_p50, write_ack_p99), (memory_ack_p50, _)] =
        async1[..]
    else {
        unreachable!("three ack choices")
    };

    if args.recovery_mib > 0 {
        let r = recovery_time(&dir, &args);
        let mut t = Table::new("crash recovery: no checkpoint, abort marker present (scan, CRC-verify, re-dispatch everything)");
        t.row(
            "log recovered",
            r.bytes as f64 / (1 << 20) as f64,
            "MiB",
            None,
        );
        t.row("records re-indexed", r.records as f64, "msgs", None);
        t.row("recovery time", r.secs, "s", None);
        t.row(
            "recovery rate",
            r.bytes as f64 / r.secs / 1e6,
            "MB/s",
            Some(ceiling.mb_per_s),
        );
        t.print();
    }
    if own_dir {
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!(
        "RESULT async_1k_ratio={:.3} sync1_p50_ratio={:.3} sync128_msgs_per_s={:.0} \
         async1_ack_p50_us={:.0} async1_ack_p99_us={:.0} raw_write4k_p50_us={:.0} \
         raw_write4k_p99_us={:.0} async1_p50_ratio={:.3} async1_write_ack_p50_us={:.0} \
         async1_write_ack_p99_us={:.0} async1_memory_ack_p50_us={:.0}",
        async_1k_ratio,
        sync1_p50 / raw_p50,
        sync128,
        async1_p50,
        async1_p99,
        raw_write_p50,
        raw_write.value_at_quantile(0.99) as f64,
        async1_p50 / raw_write_p50,
        write_ack_p50,
        write_ack_p99,
        memory_ack_p50,
    );
}

struct Throughput {
    msgs_per_s: f64,
    mb_per_s: f64,
}

fn message(body: &Bytes, seq: u64) -> MessageToStore {
    let props = encode_properties([("TAGS", "bench"), ("KEYS", &format!("k{}", seq % 1024))]);
    MessageToStore::new("BenchTopic", (seq % 8) as i32, body.clone(), props)
}

/// Requests as the network layer produces them from received batch frames: each request
/// owns one buffer (filled by one copy, like a socket read), every body and properties
/// string is a slice of it, the topic is decoded per message and the body CRC is computed
/// on the network thread.
struct FrameSource {
    template: Vec<u8>,
    body_len: usize,
    unit: usize,
    batch: usize,
}

impl FrameSource {
    fn new(batch: usize, body_len: usize) -> Self {
        let props = encode_properties([("TAGS", "bench"), ("KEYS", "k0000")]);
        let mut template = Vec::with_capacity(batch * (body_len + props.len()));
        for i in 0..batch {
            template.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, body_len));
            template.extend_from_slice(props.as_bytes());
        }
        FrameSource {
            template,
            body_len,
            unit: body_len + props.len(),
            batch,
        }
    }

    fn request(&self, seq: u64) -> Vec<MessageToStore> {
        let frame = BytesMut::from(&self.template[..]).freeze();
        (0..self.batch)
            .map(|i| {
                let at = i * self.unit;
                let body = frame.slice(at..at + self.body_len);
                let props = frame.slice(at + self.body_len..at + self.unit);
                MessageToStore::new("BenchTopic", ((seq + i as u64) % 8) as i32, body, props)
            })
            .collect()
    }
}

fn commitlog(
    dir: &Path,
    name: &str,
    mode: FlushMode,
    method: SyncMethod,
    args: &Args,
    ack: Ack,
) -> CommitLog {
    let root = dir.join(name);
    let _ = std::fs::remove_dir_all(&root);
    let mut cfg = CommitLogConfig::new(&root);
    cfg.flush_mode = mode;
    cfg.sync_method = method;
    cfg.ring_capacity = 256 << 20;
    cfg.writer_core = (!args.no_pin).then_some(0);
    cfg.ack_before_write = ack == Ack::Memory;
    cfg.append_prop_crc = args.prop_crc;
    if ack != Ack::Shared {
        cfg.tail_shm_dir = None;
    }
    CommitLog::start(cfg, 0).expect("start CommitLog")
}

fn async_throughput(dir: &Path, args: &Args, body_len: usize) -> Throughput {
    let log = commitlog(
        dir,
        "async",
        FlushMode::Async,
        SyncMethod::Dsync,
        args,
        args.ack,
    );
    let frames = FrameSource::new(args.batch, body_len);
    let (tx, rx) = mpsc::channel::<(PutStatus, i64, usize)>();
    let run = Duration::from_secs_f64(args.async_secs);
    let warmup = Duration::from_millis(500);
    let started = Instant::now();
    let (mut in_flight, mut msgs, mut first_end, mut last_end) = (0usize, 0u64, None, 0i64);
    let mut measure_start = None;
    let mut measure_end = Instant::now();
    loop {
        let elapsed = started.elapsed();
        if elapsed < warmup + run {
            while in_flight < args.inflight {
                let tx = tx.clone();
                log.append(AppendRequest {
                    messages: frames.request(msgs),
                    wait_durable: false,
                    done: Box::new(move |o| {
                        let _ = tx.send((o.status, o.end_offset, o.appended.len()));
                    }),
                });
                in_flight += 1;
            }
        } else if in_flight == 0 {
            break;
        }
        let (status, end, n) = rx.recv().expect("writer answers");
        in_flight -= 1;
        assert_eq!(status, PutStatus::Ok);
        if started.elapsed() >= warmup && started.elapsed() < warmup + run {
            if measure_start.is_none() {
                measure_start = Some(Instant::now());
                first_end = Some(end);
            } else {
                msgs += n as u64;
                last_end = end;
                measure_end = Instant::now();
            }
        }
    }
    let secs = measure_start
        .map(|s| (measure_end - s).as_secs_f64())
        .unwrap_or(1.0);
    let bytes = (last_end - first_end.unwrap_or(0)).max(0) as f64;
    log.shutdown().expect("flush at shutdown");
    drop(log);
    let _ = std::fs::remove_dir_all(dir.join("async"));
    Throughput {
        msgs_per_s: msgs as f64 / secs,
        mb_per_s: bytes / secs / 1e6,
    }
}

struct Latency {
    latency_us: Histogram<u64>,
    msgs_per_s: f64,
}

/// Ack latency of `appenders` single-message appends kept in flight, under `mode`.
fn ack_latency(
    dir: &Path,
    args: &Args,
    mode: FlushMode,
    method: SyncMethod,
    appenders: usize,
    ack: Ack,
) -> Latency {
    let log = commitlog(dir, "latency", mode, method, args, ack);
    let body = Bytes::from(vec![b'y'; 1024]);
    let (tx, rx) = mpsc::channel::<(PutStatus, u64)>();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let run = Duration::from_secs_f64(args.sync_secs);
    let warmup = Duration::from_millis(300);
    let started = Instant::now();
    let mut in_flight = 0;
    let mut seq = 0u64;
    let mut counted = 0u64;
    let mut measure_start = None;
    let mut measure_end = Instant::now();
    loop {
        if started.elapsed() < warmup + run {
            while in_flight < appenders {
                let tx = tx.clone();
                let submitted = Instant::now();
                seq += 1;
                log.append(AppendRequest {
                    messages: vec![message(&body, seq)],
                    wait_durable: true,
                    done: Box::new(move |o| {
                        let _ = tx.send((o.status, submitted.elapsed().as_micros() as u64));
                    }),
                });
                in_flight += 1;
            }
        } else if in_flight == 0 {
            break;
        }
        let (status, us) = rx.recv().expect("writer answers");
        in_flight -= 1;
        assert_eq!(status, PutStatus::Ok, "{mode:?} append failed");
        let e = started.elapsed();
        if e >= warmup && e < warmup + run {
            measure_start.get_or_insert_with(Instant::now);
            hist.saturating_record(us.max(1));
            counted += 1;
            measure_end = Instant::now();
        }
    }
    let secs = measure_start
        .map(|s| (measure_end - s).as_secs_f64())
        .unwrap_or(1.0);
    log.shutdown().expect("flush at shutdown");
    drop(log);
    let _ = std::fs::remove_dir_all(dir.join("latency"));
    Latency {
        latency_us: hist,
        msgs_per_s: counted as f64 / secs,
    }
}

/// One 4 KiB O_DIRECT pwrite (no sync) at a time, at sequential offsets of a file written
/// before: what an ASYNC_FLUSH ack waits for at least.
fn raw_direct_write_latency(dir: &Path, samples: usize) -> Histogram<u64> {
    const WARMUP: usize = 32;
    let file = ScratchFile::create(dir, "write4k").expect("scratch file");
    let buf = random_buf(4096, 7);
    let len = ((samples + WARMUP) * 4096) as u64;
    file.fallocate(len).expect("fallocate");
    file.fill(len, &buf).expect("write the file once");
    file.fdatasync().expect("fdatasync");
    let mut hist = latency_histogram();
    for i in 0..samples + WARMUP {
        let started = Instant::now();
        pwrite_all(file.fd(), buf.as_slice(), (i * 4096) as u64).expect("O_DIRECT write");
        if i >= WARMUP {
            hist.saturating_record((started.elapsed().as_micros() as u64).max(1));
        }
    }
    hist
}

struct Recovery {
    bytes: u64,
    records: u64,
    secs: f64,
}

/// Writes `recovery_mib` of 1 KiB messages through a full store, stops it cleanly, then
/// removes the checkpoint and leaves the abort marker: the next open must scan and
/// re-dispatch the whole log, the worst case after a crash.
fn recovery_time(dir: &Path, args: &Args) -> Recovery {
    let root = dir.join("recovery");
    let _ = std::fs::remove_dir_all(&root);
    let config = || {
        let mut cfg = StoreConfig::new(&root);
        cfg.commitlog.ring_capacity = 256 << 20;
        cfg.commitlog.writer_core = (!args.no_pin).then_some(0);
        cfg
    };
    let target = args.recovery_mib << 20;
    let frames = FrameSource::new(args.batch, 1024);
    let mut records = 0u64;
    {
        let store = MessageStore::open(config()).expect("open store");
        let mut end = 0i64;
        while (end as u64) < target {
            let o = store.put_blocking(frames.request(records));
            assert_eq!(o.status, PutStatus::Ok);
            records += o.appended.len() as u64;
            end = o.end_offset;
        }
        store.shutdown().expect("clean shutdown");
    }
    std::fs::remove_file(recovery::checkpoint_path(&root)).expect("remove checkpoint");
    std::fs::write(recovery::abort_path(&root), b"").expect("abort marker");
    drop_page_cache();
    let started = Instant::now();
    let store = MessageStore::open(config()).expect("recover");
    let secs = started.elapsed().as_secs_f64();
    let bytes = store.commitlog().max_offset() as u64;
    let found: i64 = (0..8)
        .map(|q| store.max_offset_in_queue("BenchTopic", q))
        .sum();
    assert_eq!(found as u64, records, "every record re-indexed");
    drop(store);
    let _ = std::fs::remove_dir_all(&root);
    Recovery {
        bytes,
        records,
        secs,
    }
}

/// Best effort: makes the recovery read the disk, not the page cache (needs root).
fn drop_page_cache() {
    // SAFETY: sync(2) has no arguments.
    unsafe { libc::sync() };
    let _ = std::fs::write("/proc/sys/vm/drop_caches", b"1");
}
