//! ha-bench: master -> slave replication, each figure beside a ceiling measured in the
//! same run on the same file system.
//!
//! 1. Produce latency at a fixed offered rate (open loop: latency counts from each send's
//!    scheduled time) against in-process master + slave nodes, for ASYNC_MASTER and
//!    SYNC_MASTER, each with ASYNC_FLUSH and SYNC_FLUSH, beside the loopback round trip.
//!    First, while the disk is quiet: deleting the GiB files of the later phases sets
//!    off ms-long stalls on a virtual disk.
//! 2. Ceilings: loopback TCP bandwidth, and io_uring O_DIRECT sequential write bandwidth
//!    (1 MiB blocks, QD 8) in `--dir`. A catching-up slave receives over TCP and writes
//!    what it receives, so catch-up is rated against the lower of the two.
//! 3. Catch-up: `--catchup-mib` of log written into a master store (page cache warmed,
//!    so every path reads cached pages), then a fresh slave catches up from offset 0
//!    through each transfer path: `zc` (the default: IORING_OP_SEND_ZC from the tail
//!    ring for the last `--ring-mib`, in frames of at least 12 KiB, segment file -> pipe
//!    -> socket through io_uring splice below it), `copy` (read + write), `splice` (io_uring splice below the ring,
//!    copy from the ring above it) and `splice-syscall` (the HA loop cannot block in
//!    splice(2), so this runs the io_uring splice rounds too), `--reps` times each, alternating. Wall time gives MB/s. CPU time of the
//!    master's HA loop thread (`ringmq-ha-loop`: it also reads the slave's reports), and
//!    of its io_uring io-wq workers (`iou-wrk-<loop tid>`: io_uring always runs splice
//!    there; send_zc runs on the loop thread), is
//!    sampled from /proc/self/task/*/schedstat; per replicated GiB it is the path's cost.
//!    The path's own counter (CLOCK_THREAD_CPUTIME_ID around `send_data`) is shown
//!    beside it.
//! 4. Hot catch-up: `--hot-mib` of log that all fits the master's tail ring (sized to
//!    hold it), caught up through `zc` (everything by send_zc) and `copy` (read from the
//!    ring + write): the hot-tail path on its own.
//!
//! 5. Slow link: master and slave talk through a TCP proxy that delays each direction by
//!    `--slow-link-delays-ms` (0, 0.5, 1, 2 ms one way); at each delay a closed loop with
//!    `--slow-link-in-flight` sends in flight measures SYNC_MASTER and ASYNC_MASTER
//!    (ASYNC_FLUSH) throughput and p99, `--slow-link-rounds` times (each round runs every
//!    delay once; figures are medians over the rounds). The master streams without
//!    waiting for acks, so SYNC_MASTER throughput should hold up as long as enough sends
//!    are in flight.
//! 6. HA threads: a SYNC_MASTER with 3 slaves in process; the master's HA threads are
//!    counted from /proc/self/task names (`ringmq-ha-*` but the slaves' `ringmq-ha-slave`;
//!    io_uring's `iou-wrk-*` workers are not counted).
//!
//! `--only-slow-link` runs steps 5 and 6 alone (the other keys print NaN).
//!
//! Last line: `RESULT catchup_ratio=.. zc_cpu_s_per_gib=.. copy_cpu_s_per_gib=..
//! sync_async_p99_ratio=.. hot_zc_cpu_s_per_gib=.. hot_copy_cpu_s_per_gib=..
//! sync_2ms_mb_s_ratio=.. ha_threads=..` (zc = the default send_zc + splice path, copy =
//! read() + write(), both from the same run; the p99 ratio compares the ASYNC_FLUSH cases;
//! the hot figures are step 4's; `sync_2ms_mb_s_ratio` is SYNC_MASTER MB/s at 2 ms added
//! one-way delay over that at 0 ms, both through the proxy).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use ringmq_benches::ceiling::{direct_write, fs_info, loopback, CpuSnapshot};
use ringmq_benches::delay_proxy::DelayProxy;
use ringmq_benches::report::{fmt_value, percentile_table, Percentiles, Table};
use ringmq_benches::{closed_loop, open_loop};
use ringmq_broker::Node;
use ringmq_broker::{BrokerConfig, BrokerRole};
use ringmq_client::{Producer, ProducerOptions};
use ringmq_engine::commitlog::{FlushMode, Level, PutStatus};
use ringmq_engine::record::MessageToStore;
use ringmq_engine::{MessageStore, StoreConfig};
use ringmq_ha::transfer::{path_stats, set_cpu_accounting, set_default_path, PathKind, PathStats};
use ringmq_ha::{HaConfig, HaMaster, HaSlave};

#[derive(Parser)]
#[command(
    about = "HA replication: catch-up throughput and CPU per GiB by transfer path, \
                   produce latency by broker role, beside ceilings from the same run"
)]
struct Args {
    /// Directory on the file system to measure (removed after).
    #[arg(long, default_value = "bench-data-ha")]
    dir: PathBuf,
    /// MiB of log the slave catches up on.
    #[arg(long, default_value_t = 1024)]
    catchup_mib: u64,
    /// Catch-up runs per transfer path (alternating between paths).
    #[arg(long, default_value_t = 2)]
    reps: usize,
    /// MiB for each ceiling measurement (loopback and O_DIRECT write).
    #[arg(long, default_value_t = 1024)]
    ceiling_mib: u64,
    /// haTransferBatchSize in bytes.
    #[arg(long, default_value_t = 32 * 1024)]
    batch: usize,
    /// mappedFileSizeCommitLog of the catch-up stores, MiB.
    #[arg(long, default_value_t = 1024)]
    segment_mib: u64,
    /// Tail ring of the catch-up master, MiB: the last this many MiB are hot (sent by
    /// send_zc from the ring on the `zc` path, by copy from the ring on the others).
    #[arg(long, default_value_t = 16)]
    ring_mib: usize,
    /// MiB of log in the hot catch-up (step 4), all in a tail ring sized to hold it
    /// (at most 500); 0 skips it.
    #[arg(long, default_value_t = 256)]
    hot_mib: u64,
    /// Transfer path of the latency runs: zc (the default path), copy, splice or
    /// splice-syscall.
    #[arg(long, default_value = "zc", value_parser = parse_path)]
    latency_path: PathKind,
    /// Offered produce rate of the latency runs (msgs/s).
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Body size of the latency runs, bytes.
    #[arg(long, default_value_t = 1024)]
    body: usize,
    /// Seconds of each latency run (after 0.5 s of warm-up).
    #[arg(long, default_value_t = 10.0)]
    latency_secs: f64,
    /// writerSpinUs of the latency nodes: how long each writer busy-polls before it
    /// sleeps. 0 by default: master, slave and the load share this machine's cores.
    #[arg(long, default_value_t = 0)]
    writer_spin_us: u64,
    /// flushIntervalCommitLog of the latency nodes (ASYNC_FLUSH fdatasync period), ms.
    #[arg(long, default_value_t = 500)]
    flush_interval_ms: u64,
    /// Busy-wait for each scheduled send time (default: sleep with 1 us timer slack, so
    /// the load thread does not take a core from the brokers).
    #[arg(long)]
    load_spin: bool,
    /// Pin the brokers' threads (net+writer core 0, dispatch core 1) and the load to core 1.
    #[arg(long)]
    pin: bool,
    /// Added one-way delays of the slow-link runs, ms (comma-separated; 0 is the
    /// baseline, through the same proxy).
    #[arg(long, default_value = "0,0.5,1,2", value_delimiter = ',')]
    slow_link_delays_ms: Vec<f64>,
    /// Seconds of each slow-link run (after 0.5 s of warm-up); 0 skips step 5.
    #[arg(long, default_value_t = 5.0)]
    slow_link_secs: f64,
    /// Rounds of slow-link runs (each round runs every delay, SYNC then ASYNC); each
    /// figure is the median over the rounds, so one noisy run on a shared 2-core box does
    /// not decide a ratio.
    #[arg(long, default_value_t = 3)]
    slow_link_rounds: usize,
    /// Sends in flight in the slow-link runs (the producer's bound). Enough to cover the
    /// 2 ms link's round trip at the brokers' rate (300 MB/s x 4 ms is 1.2 MB, about 300
    /// sends of 4 KiB) beside the sends queued at the brokers; at 512 the window, not
    /// the link, capped SYNC_MASTER at 2 ms.
    #[arg(long, default_value_t = 1024)]
    slow_link_in_flight: usize,
    /// Body size of the slow-link runs, bytes.
    #[arg(long, default_value_t = 4096)]
    slow_link_body: usize,
    /// Run only the slow-link and HA-thread steps (5, 6).
    #[arg(long)]
    only_slow_link: bool,
}

const TOPIC: &str = "HaBenchTopic";

fn parse_path(s: &str) -> Result<PathKind, String> {
    PathKind::parse(s).ok_or_else(|| format!("{s}: expected zc, copy, splice or splice-syscall"))
}
const GIB: f64 = (1u64 << 30) as f64;

fn main() {
    let args = Args::parse();
    let _ = std::fs::remove_dir_all(&args.dir);
    std::fs::create_dir_all(&args.dir).expect("create bench dir");
    if args.pin {
        core_affinity::set_for_current(core_affinity::CoreId { id: 1 });
    }
    println!(
        "ha-bench in {} ({}), haTransferBatchSize {} B, pinning {}, writerSpinUs {}, load {}",
        args.dir.display(),
        fs_info(&args.dir)
            .map(|f| f.to_string())
            .unwrap_or_else(|e| format!("fs unknown: {e}")),
        args.batch,
        if args.pin { "on" } else { "off" },
        args.writer_spin_us,
        if args.load_spin { "spins" } else { "sleeps" }
    );

    if args.only_slow_link {
        let (sync_2ms, ha_threads) = slow_link_and_threads(&args);
        let _ = std::fs::remove_dir_all(&args.dir);
        println!(
            "RESULT catchup_ratio=NaN zc_cpu_s_per_gib=NaN copy_cpu_s_per_gib=NaN sync_async_p99_ratio=NaN hot_zc_cpu_s_per_gib=NaN hot_copy_cpu_s_per_gib=NaN sync_2ms_mb_s_ratio={sync_2ms:.3} ha_threads={ha_threads}"
        );
        return;
    }

    // 1. Produce latency by role and flush mode, first, on a quiet disk.
    let rtt = loopback::rtt(5000);
    let mut cases = Vec::new();
    for role in [BrokerRole::AsyncMaster, BrokerRole::SyncMaster] {
        for sync_flush in [false, true] {
            let name = format!(
                "{} {}",
                role.name(),
                if sync_flush {
                    "SYNC_FLUSH"
                } else {
                    "ASYNC_FLUSH"
                }
            );
            let lat = latency_case(&args, role, sync_flush);
            cases.push((name, role, sync_flush, lat));
        }
    }
    let rtt_us = to_us(&rtt);
    let mut rows: Vec<(&str, &Histogram<u64>)> = cases
        .iter()
        .map(|(name, _, _, l)| (name.as_str(), &l.latency_us))
        .collect();
    rows.push(("ceiling: loopback RTT", &rtt_us));
    print!(
        "{}",
        percentile_table(
            &format!(
                "produce latency at {} msgs/s offered, {} B bodies, open loop, master + slave in process, HA path {}",
                args.rate, args.body, args.latency_path.name()
            ),
            "us",
            1.0,
            &rows
        )
    );
    let mut t = Table::new("latency runs");
    for (name, _, _, l) in &cases {
        t.row(
            format!("{name} achieved"),
            l.achieved_per_s,
            "msgs/s",
            Some(args.rate as f64),
        );
        t.row(
            format!("{name} not SEND_OK"),
            l.not_ok as f64,
            "sends",
            None,
        );
        t.row(format!("{name} failed"), l.failed as f64, "sends", None);
        if let Some(n) = l.noise_others {
            t.row(
                format!("{name} others' CPU"),
                100.0 * n,
                "% of all CPUs",
                None,
            );
        }
    }
    t.print();
    // 2. Ceilings (after the latency runs: a GiB scratch file and its deletion must not
    // disturb them).
    let loop_mbps = loopback::bandwidth(args.ceiling_mib << 20);
    let disk = direct_write::measure(&args.dir, 1 << 20, 8, args.ceiling_mib << 20, true);
    let (ceiling, ceiling_is) = if loop_mbps <= disk.mb_per_s {
        (loop_mbps, "loopback TCP")
    } else {
        (disk.mb_per_s, "O_DIRECT write")
    };
    let mut t = Table::new("ceilings");
    t.row("loopback TCP bandwidth", loop_mbps, "MB/s", None);
    t.row("O_DIRECT write, 1 MiB QD 8", disk.mb_per_s, "MB/s", None);
    t.row(
        format!("catch-up ceiling ({ceiling_is})"),
        ceiling,
        "MB/s",
        None,
    );
    t.latency_rows("loopback RTT", &rtt, 1000.0, "us", None);
    t.print();

    // 3. Catch-up.
    let runs = catch_up_all(
        &args,
        args.catchup_mib,
        args.ring_mib,
        &[
            PathKind::SendZc,
            PathKind::Copy,
            PathKind::Splice,
            PathKind::SpliceSyscall,
        ],
    );
    let agg = aggregate(runs);
    println!(
        "== catch-up of {} MiB from offset 0, {} run(s) per path (CPU in s per replicated GiB; \
         ratio = MB/s over the {ceiling_is} ceiling of {} MB/s) ==",
        args.catchup_mib,
        args.reps,
        fmt_value(ceiling)
    );
    print_catch_up(&agg, ceiling);
    println!(
        "(master total = sender thread + io-wq workers; the last {} MiB are in the tail ring \
         and go by send_zc on the zc path, by copy on the others)",
        args.ring_mib
    );
    let cpu_per_gib = |agg: &[(PathKind, CatchUp)], k: PathKind| {
        agg.iter()
            .find(|(kind, _)| *kind == k)
            .map(|(_, a)| a.master_ns() as f64 / 1e9 / (a.bytes as f64 / GIB))
            .unwrap_or(f64::NAN)
    };
    let zc_mbps = agg
        .iter()
        .find(|(k, _)| *k == PathKind::SendZc)
        .map(|(_, a)| a.bytes as f64 / 1e6 / a.secs)
        .unwrap_or(f64::NAN);

    // 4. Hot catch-up: the send_zc path on its own.
    let hot = if args.hot_mib > 0 {
        let ring_mib = (args.hot_mib as usize + 16).next_multiple_of(4).min(512);
        let hot_mib = args.hot_mib.min(ring_mib as u64 - 12);
        let runs = catch_up_all(
            &args,
            hot_mib,
            ring_mib,
            &[PathKind::SendZc, PathKind::Copy],
        );
        let agg = aggregate(runs);
        println!(
            "== hot catch-up of {hot_mib} MiB, all in the master's {ring_mib} MiB tail ring, \
             {} run(s) per path ==",
            args.reps
        );
        print_catch_up(&agg, ceiling);
        agg
    } else {
        Vec::new()
    };

    let p99 = |role: BrokerRole| {
        cases
            .iter()
            .find(|(_, r, s, _)| *r == role && !*s)
            .map(|(_, _, _, l)| Percentiles::of(&l.latency_us).p99)
            .unwrap_or(f64::NAN)
    };
    let ratio = p99(BrokerRole::SyncMaster) / p99(BrokerRole::AsyncMaster);
    let (sync_2ms, ha_threads) = slow_link_and_threads(&args);
    let _ = std::fs::remove_dir_all(&args.dir);
    println!(
        "RESULT catchup_ratio={:.3} zc_cpu_s_per_gib={:.3} copy_cpu_s_per_gib={:.3} sync_async_p99_ratio={:.2} hot_zc_cpu_s_per_gib={:.3} hot_copy_cpu_s_per_gib={:.3} sync_2ms_mb_s_ratio={sync_2ms:.3} ha_threads={ha_threads}",
        zc_mbps / ceiling,
        cpu_per_gib(&agg, PathKind::SendZc),
        cpu_per_gib(&agg, PathKind::Copy),
        ratio,
        cpu_per_gib(&hot, PathKind::SendZc),
        cpu_per_gib(&hot, PathKind::Copy),
    );
}

/// Sums the runs of each path, in first-run order.
fn aggregate(runs: Vec<CatchUp>) -> Vec<(PathKind, CatchUp)> {
    let mut agg: Vec<(PathKind, CatchUp)> = Vec::new();
    for r in runs {
        match agg.iter_mut().find(|(k, _)| *k == r.kind) {
            Some((_, a)) => a.add(&r),
            None => agg.push((r.kind, r)),
        }
    }
    agg
}

fn print_catch_up(agg: &[(PathKind, CatchUp)], ceiling: f64) {
    let header = [
        "path",
        "MB/s",
        "ratio",
        "sender thread",
        "(in send_data)",
        "io-wq workers",
        "master total",
        "process (m+s)",
        "spliced",
        "send_zc",
        "kernel copied",
    ];
    let rows: Vec<[String; 11]> = agg
        .iter()
        .map(|(k, a)| {
            let gib = a.bytes as f64 / GIB;
            let mbps = a.bytes as f64 / 1e6 / a.secs;
            let share = |n: u64| format!("{:.1}%", 100.0 * n as f64 / a.bytes.max(1) as f64);
            [
                k.name().to_string(),
                fmt_value(mbps),
                format!("{:.2}x", mbps / ceiling),
                fmt_value(a.sender_ns as f64 / 1e9 / gib),
                fmt_value(a.in_send_ns as f64 / 1e9 / gib),
                fmt_value(a.worker_ns as f64 / 1e9 / gib),
                fmt_value(a.master_ns() as f64 / 1e9 / gib),
                fmt_value(a.process_ns as f64 / 1e9 / gib),
                share(a.spliced),
                share(a.zero_copy),
                if a.zc_notifs > 0 {
                    format!("{}/{} sends", a.zc_copied_notifs, a.zc_notifs)
                } else {
                    "-".to_string()
                },
            ]
        })
        .collect();
    print_grid(&header, &rows);
    if agg.iter().any(|(_, a)| a.zc_copied_notifs > 0) {
        println!(
            "(kernel copied: send_zc notifications reporting that the kernel copied the bytes \
             after all, IORING_SEND_ZC_REPORT_USAGE; over loopback it always does, at delivery \
             to the receiving socket, so these figures include a copy a NIC would not make)"
        );
    }
}

fn print_grid<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let mut w = header.map(str::len);
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = format!("{:<w0$}", cells[0], w0 = w[0]);
        for i in 1..N {
            s.push_str(&format!("  {:>wi$}", cells[i], wi = w[i]));
        }
        println!("{s}");
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

fn to_us(ns: &Histogram<u64>) -> Histogram<u64> {
    let mut us = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    for v in ns.iter_recorded() {
        us.saturating_record_n((v.value_iterated_to() / 1000).max(1), v.count_at_value());
    }
    us
}

// ---------------------------------------------------------------------------------------
// Catch-up

/// One catch-up (or the sum of several of one path).
struct CatchUp {
    kind: PathKind,
    bytes: u64,
    secs: f64,
    /// Whole sender threads (sampled).
    sender_ns: u64,
    /// Sender threads inside `send_data` (the path's own clock).
    in_send_ns: u64,
    /// The senders' io-wq workers (sampled).
    worker_ns: u64,
    /// The whole process, master and slave (getrusage).
    process_ns: u64,
    spliced: u64,
    zero_copy: u64,
    zc_notifs: u64,
    zc_copied_notifs: u64,
}

impl CatchUp {
    fn master_ns(&self) -> u64 {
        self.sender_ns + self.worker_ns
    }

    fn add(&mut self, o: &CatchUp) {
        self.bytes += o.bytes;
        self.secs += o.secs;
        self.sender_ns += o.sender_ns;
        self.in_send_ns += o.in_send_ns;
        self.worker_ns += o.worker_ns;
        self.process_ns += o.process_ns;
        self.spliced += o.spliced;
        self.zero_copy += o.zero_copy;
        self.zc_notifs += o.zc_notifs;
        self.zc_copied_notifs += o.zc_copied_notifs;
    }
}

fn catchup_store(root: &Path, args: &Args, ring_mib: usize) -> Arc<MessageStore> {
    let mut cfg = StoreConfig::new(root);
    cfg.commitlog.segment_size = args.segment_mib << 20;
    cfg.commitlog.ring_capacity = ring_mib << 20;
    cfg.commitlog.max_message_size = 64 * 1024;
    cfg.commitlog.flush_mode = FlushMode::Async;
    Arc::new(MessageStore::open(cfg).expect("open a catch-up store"))
}

fn ha_config(args: &Args) -> HaConfig {
    HaConfig {
        transfer_batch_size: args.batch,
        ..HaConfig::default()
    }
}

/// Writes `mib` of log into a master with a `ring_mib` tail ring, then runs a catch-up
/// through each of `kinds`, `--reps` times, alternating.
fn catch_up_all(args: &Args, mib: u64, ring_mib: usize, kinds: &[PathKind]) -> Vec<CatchUp> {
    let master = catchup_store(&args.dir.join("catchup-master"), args, ring_mib);
    let log = master.commitlog();
    let want = (mib << 20) as i64;
    let started = Instant::now();
    let body = Bytes::from(
        (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect::<Vec<u8>>(),
    );
    let mut seq = 0u64;
    while log.max_offset() < want {
        let msgs = (0..64)
            .map(|_| {
                seq += 1;
                MessageToStore::new(TOPIC, (seq % 8) as i32, body.clone(), Bytes::new())
            })
            .collect();
        let o = master.put_blocking(msgs);
        assert_eq!(o.status, PutStatus::Ok, "pre-write");
    }
    let end = log.max_offset();
    while log.progress().get(Level::Write) < end {
        std::thread::sleep(Duration::from_millis(5));
    }
    let write_secs = started.elapsed().as_secs_f64();
    // Warm the page cache, so that no path pays for (or profits from) the first read.
    let mut buf = vec![0u8; 4 << 20];
    let mut at = 0;
    while at < end {
        let n = (buf.len() as i64).min(end - at) as usize;
        log.read(at, &mut buf[..n]).expect("warm read");
        at += n as i64;
    }
    println!(
        "catch-up log: {} MB written in {:.1} s ({} MB/s, 4 KiB bodies); cold below {} (tail ring {} MiB)",
        end / 1_000_000,
        write_secs,
        fmt_value(end as f64 / 1e6 / write_secs),
        log.cold_end(),
        ring_mib
    );
    set_cpu_accounting(true);
    let mut runs = Vec::new();
    for _ in 0..args.reps {
        for &kind in kinds {
            let r = catch_up(&master, end, kind, args);
            println!(
                "  {:<15} {:>8} MB/s  master CPU {:.3} s ({:.3} s sender + {:.3} s io-wq)",
                kind.name(),
                fmt_value(r.bytes as f64 / 1e6 / r.secs),
                r.master_ns() as f64 / 1e9,
                r.sender_ns as f64 / 1e9,
                r.worker_ns as f64 / 1e9,
            );
            runs.push(r);
        }
    }
    set_cpu_accounting(false);
    master.shutdown().expect("master shutdown");
    let _ = std::fs::remove_dir_all(args.dir.join("catchup-master"));
    runs
}

fn all_stats() -> Vec<(PathKind, PathStats)> {
    PathKind::ALL.iter().map(|&k| (k, path_stats(k))).collect()
}

fn catch_up(master: &Arc<MessageStore>, end: i64, kind: PathKind, args: &Args) -> CatchUp {
    set_default_path(kind);
    let sdir = args.dir.join("catchup-slave");
    let _ = std::fs::remove_dir_all(&sdir);
    let slave_store = catchup_store(&sdir, args, args.ring_mib);
    let before = all_stats();
    let sampler = Sampler::start();
    let cpu0 = process_cpu_ns();
    let ha = HaMaster::start(
        master.clone(),
        "127.0.0.1:0".parse().unwrap(),
        ha_config(args),
    )
    .expect("start HA master");
    let t0 = Instant::now();
    let slave = HaSlave::start(slave_store.clone(), ha.local_addr(), ha_config(args));
    assert!(
        ha.slaves().wait_acked(end, Duration::from_secs(900)),
        "{}: the slave acked {} of {end}",
        kind.name(),
        ha.slaves().replicated_end()
    );
    let secs = t0.elapsed().as_secs_f64();
    let threads = sampler.stop();
    let process_ns = process_cpu_ns().saturating_sub(cpu0);
    slave.stop();
    ha.shutdown();
    slave_store.shutdown().expect("slave shutdown");
    let _ = std::fs::remove_dir_all(&sdir);
    // The io_uring path falls back to splice(2) on its own if it must: count whichever
    // kinds moved bytes.
    let after = all_stats();
    let mut moved = PathStats::default();
    let mut used = Vec::new();
    for ((k, b), (_, a)) in before.iter().zip(&after) {
        if a.bytes > b.bytes {
            used.push(k.name());
        }
        moved.bytes += a.bytes - b.bytes;
        moved.spliced_bytes += a.spliced_bytes - b.spliced_bytes;
        moved.zc_bytes += a.zc_bytes - b.zc_bytes;
        moved.zc_notifs += a.zc_notifs - b.zc_notifs;
        moved.zc_copied_notifs += a.zc_copied_notifs - b.zc_copied_notifs;
        moved.sender_cpu_ns += a.sender_cpu_ns - b.sender_cpu_ns;
    }
    if used != [kind.name()] {
        println!(
            "  note: asked for {}, bytes went through {used:?}",
            kind.name()
        );
    }
    CatchUp {
        kind,
        bytes: moved.bytes.max(end as u64),
        secs,
        sender_ns: threads.sender_ns,
        in_send_ns: moved.sender_cpu_ns,
        worker_ns: threads.worker_ns,
        process_ns,
        spliced: moved.spliced_bytes,
        zero_copy: moved.zc_bytes,
        zc_notifs: moved.zc_notifs,
        zc_copied_notifs: moved.zc_copied_notifs,
    }
}

fn process_cpu_ns() -> u64 {
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a live, writable rusage for the duration of the call.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    (us(ru.ru_utime) + us(ru.ru_stime)) * 1000
}

/// CPU time of the HA sender threads and their io-wq workers, sampled every 5 ms from
/// /proc (workers may exit between samples; at most one interval of theirs is lost).
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<ThreadCpu>,
}

#[derive(Default)]
struct ThreadCpu {
    sender_ns: u64,
    worker_ns: u64,
}

impl Sampler {
    fn start() -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::Builder::new()
            .name("ha-bench-sampler".into())
            .spawn(move || {
                // tid -> (comm, first seen ns, last seen ns)
                let mut seen: HashMap<u32, (String, u64, u64)> = HashMap::new();
                let mut first = true;
                loop {
                    let last = s.load(Ordering::Acquire);
                    for (tid, comm, ns) in ha_tasks() {
                        let base = if first { ns } else { 0 };
                        let e = seen.entry(tid).or_insert((comm, base, ns));
                        e.2 = e.2.max(ns);
                    }
                    first = false;
                    if last {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                let senders: Vec<u32> = seen
                    .iter()
                    .filter(|(_, (c, _, _))| is_sender(c))
                    .map(|(t, _)| *t)
                    .collect();
                let mut out = ThreadCpu::default();
                for (tid, (comm, base, ns)) in &seen {
                    let d = ns.saturating_sub(*base);
                    if senders.contains(tid) {
                        out.sender_ns += d;
                    } else if senders.iter().any(|s| *comm == format!("iou-wrk-{s}")) {
                        out.worker_ns += d;
                    }
                }
                out
            })
            .expect("spawn sampler");
        Sampler { stop, handle }
    }

    fn stop(self) -> ThreadCpu {
        self.stop.store(true, Ordering::Release);
        self.handle.join().expect("sampler")
    }
}

/// (tid, comm, CPU ns) of this process's HA sender and io-wq worker threads.
fn ha_tasks() -> Vec<(u32, String, u64)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(tid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) else {
            continue;
        };
        let comm = comm.trim().to_string();
        if !(is_sender(&comm) || comm.starts_with("iou-wrk-")) {
            continue;
        }
        if let Some(ns) = task_cpu_ns(&entry.path()) {
            out.push((tid, comm, ns));
        }
    }
    out
}

/// Whether a thread is the master's HA sender: the HA loop (`ringmq-ha-loop`, which
/// serves every slave; in the catch-up steps only one is connected), or a per-slave
/// sender thread of older builds.
fn is_sender(comm: &str) -> bool {
    comm == "ringmq-ha-loop" || comm.starts_with("ringmq-ha-send")
}

/// A thread's CPU time: schedstat's run time (ns), else utime + stime from stat.
fn task_cpu_ns(task: &Path) -> Option<u64> {
    if let Ok(s) = std::fs::read_to_string(task.join("schedstat")) {
        if let Some(ns) = s.split_whitespace().next().and_then(|v| v.parse().ok()) {
            return Some(ns);
        }
    }
    let stat = std::fs::read_to_string(task.join("stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // SAFETY: sysconf has no memory arguments.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks * 1_000_000_000 / hz)
}

// ---------------------------------------------------------------------------------------
// Produce latency

struct Latency {
    latency_us: Histogram<u64>,
    achieved_per_s: f64,
    not_ok: u64,
    failed: u64,
    noise_others: Option<f64>,
}

fn node_config(args: &Args, dir: &Path, role: BrokerRole, sync_flush: bool) -> BrokerConfig {
    BrokerConfig {
        store_path_root_dir: dir.to_path_buf(),
        listen_port: 0,
        ha_listen_port: 0,
        pin_threads: args.pin,
        broker_role: role,
        broker_id: if role == BrokerRole::Slave { 1 } else { 0 },
        sync_flush,
        in_sync_replicas: if role == BrokerRole::SyncMaster { 2 } else { 1 },
        mapped_file_size_commit_log: 128 << 20,
        ha_transfer_batch_size: args.batch,
        writer_spin_us: args.writer_spin_us,
        flush_interval_commit_log: Duration::from_millis(args.flush_interval_ms),
        ..Default::default()
    }
}

fn latency_case(args: &Args, role: BrokerRole, sync_flush: bool) -> Latency {
    set_default_path(args.latency_path);
    let root = args.dir.join(format!(
        "latency-{}-{}",
        role.name(),
        if sync_flush { "sync" } else { "async" }
    ));
    let _ = std::fs::remove_dir_all(&root);
    let master = Node::start(node_config(args, &root.join("m"), role, sync_flush)).expect("master");
    let mut scfg = node_config(args, &root.join("s"), BrokerRole::Slave, sync_flush);
    scfg.ha_master_address = Some(master.ha_addr().expect("HA address").to_string());
    scfg.master_remoting_address = Some(master.addr().to_string());
    let slave = Node::start(scfg).expect("slave");
    wait_in_sync(&master, 1);
    let addr = master.addr().to_string();
    let body = Bytes::from(vec![b'x'; args.body]);
    let p = Producer::connect_with(
        &addr,
        "ha_bench_producer",
        ProducerOptions {
            max_in_flight: 4096,
            ..Default::default()
        },
    )
    .expect("connect producer");
    let spin = args.load_spin;
    fixed_rate(&p, &body, args.rate, 0.5, spin); // warm-up: topic, routes, first segment
    let cpu = CpuSnapshot::now();
    let mut lat = fixed_rate(&p, &body, args.rate, args.latency_secs, spin);
    lat.noise_others = cpu.and_then(|c| c.noise_since()).map(|n| n.others);
    drop(p);
    slave.shutdown().expect("slave shutdown");
    master.shutdown().expect("master shutdown");
    let _ = std::fs::remove_dir_all(&root);
    lat
}

fn fixed_rate(p: &Producer, body: &Bytes, rate: u64, secs: f64, spin: bool) -> Latency {
    let r = open_loop::run(p, TOPIC, body, rate, secs, spin);
    Latency {
        latency_us: r.latency_us,
        achieved_per_s: r.achieved_per_s,
        not_ok: r.not_ok,
        failed: r.failed,
        noise_others: None,
    }
}

// ---------------------------------------------------------------------------------------
// Slow link (step 5) and HA threads (step 6)

/// Steps 5 and 6; returns (`sync_2ms_mb_s_ratio`, `ha_threads`).
fn slow_link_and_threads(args: &Args) -> (f64, usize) {
    let delays = &args.slow_link_delays_ms;
    let mut sync_mb_s = Vec::new();
    if args.slow_link_secs > 0.0 {
        // runs[d] = (SYNC runs, ASYNC runs) at delays[d], one of each per round.
        let mut runs: Vec<(Vec<closed_loop::ClosedLoop>, Vec<closed_loop::ClosedLoop>)> =
            delays.iter().map(|_| (Vec::new(), Vec::new())).collect();
        let rounds = args.slow_link_rounds.max(1);
        for _ in 0..rounds {
            for (d, &ms) in delays.iter().enumerate() {
                let delay = Duration::from_secs_f64(ms / 1000.0);
                runs[d]
                    .0
                    .push(slow_link_case(args, BrokerRole::SyncMaster, delay));
                runs[d]
                    .1
                    .push(slow_link_case(args, BrokerRole::AsyncMaster, delay));
            }
        }
        let body = args.slow_link_body;
        let mb_s = |rs: &[closed_loop::ClosedLoop]| median(rs.iter().map(|r| r.mb_per_s(body)));
        let p99 = |rs: &[closed_loop::ClosedLoop]| {
            median(rs.iter().map(|r| Percentiles::of(&r.latency_us).p99))
        };
        let bad =
            |rs: &[closed_loop::ClosedLoop]| rs.iter().map(|r| r.not_ok + r.failed).sum::<u64>();
        let mut rows = Vec::new();
        for (d, &ms) in delays.iter().enumerate() {
            let (sync, asyn) = (&runs[d].0, &runs[d].1);
            let (s_mb, a_mb) = (mb_s(sync), mb_s(asyn));
            sync_mb_s.push((ms, s_mb));
            rows.push([
                format!("{ms}"),
                fmt_value(s_mb),
                fmt_value(p99(sync)),
                fmt_value(a_mb),
                fmt_value(p99(asyn)),
                format!("{:.2}", s_mb / a_mb),
                sync.iter()
                    .map(|r| fmt_value(r.mb_per_s(body)))
                    .collect::<Vec<_>>()
                    .join(" "),
                format!("{}/{}", bad(sync), bad(asyn)),
            ]);
        }
        println!(
            "== slow link: slave behind a proxy adding a one-way delay, closed loop with {} \
             sends in flight, {} B bodies, {} s per run, ASYNC_FLUSH, median of {} rounds \
             (each round runs every delay) ==",
            args.slow_link_in_flight, body, args.slow_link_secs, rounds
        );
        print_grid(
            &[
                "delay ms",
                "SYNC MB/s",
                "SYNC p99 us",
                "ASYNC MB/s",
                "ASYNC p99 us",
                "SYNC/ASYNC",
                "SYNC MB/s by round",
                "not ok S/A",
            ],
            &rows,
        );
    }
    let at = |ms: f64| {
        sync_mb_s
            .iter()
            .find(|(d, _)| (*d - ms).abs() < 1e-9)
            .map(|(_, v)| *v)
            .unwrap_or(f64::NAN)
    };
    let ha_threads = count_ha_threads(args);
    println!("HA threads of a SYNC_MASTER with 3 slaves: {ha_threads} (io-wq workers not counted)");
    (at(2.0) / at(0.0), ha_threads)
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn slow_link_case(args: &Args, role: BrokerRole, delay: Duration) -> closed_loop::ClosedLoop {
    set_default_path(args.latency_path);
    let root = args
        .dir
        .join(format!("slow-{}-{}us", role.name(), delay.as_micros()));
    let _ = std::fs::remove_dir_all(&root);
    let master = Node::start(node_config(args, &root.join("m"), role, false)).expect("master");
    let proxy =
        DelayProxy::start(master.ha_addr().expect("HA address"), delay).expect("delay proxy");
    let mut scfg = node_config(args, &root.join("s"), BrokerRole::Slave, false);
    scfg.ha_master_address = Some(proxy.addr.to_string());
    scfg.master_remoting_address = Some(master.addr().to_string());
    let slave = Node::start(scfg).expect("slave");
    wait_in_sync(&master, 1);
    let p = Producer::connect_with(
        &master.addr().to_string(),
        "ha_bench_slow_link",
        ProducerOptions {
            max_in_flight: args.slow_link_in_flight,
            ..Default::default()
        },
    )
    .expect("connect producer");
    let body = Bytes::from(vec![b'x'; args.slow_link_body]);
    closed_loop::run(&p, TOPIC, &body, 0.5); // warm-up: topic, routes, first segment
    let r = closed_loop::run(&p, TOPIC, &body, args.slow_link_secs);
    drop(p);
    slave.shutdown().expect("slave shutdown");
    master.shutdown().expect("master shutdown");
    drop(proxy);
    let _ = std::fs::remove_dir_all(&root);
    r
}

/// Waits until the master counts `slaves` slaves in sync: connected, and their first
/// report arrived (a slave publishes its own acked offset before that report is sent, so
/// the slave side alone would let a SYNC_MASTER send see SLAVE_NOT_AVAILABLE).
fn wait_in_sync(master: &Node, slaves: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while master.master().expect("master").slaves().in_sync_slaves() < slaves {
        assert!(Instant::now() < deadline, "the slaves did not connect");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Threads of this process's HA master: `ringmq-ha-*` names but the slaves'.
fn count_ha_threads(args: &Args) -> usize {
    let root = args.dir.join("threads");
    let _ = std::fs::remove_dir_all(&root);
    let master = Node::start(node_config(
        args,
        &root.join("m"),
        BrokerRole::SyncMaster,
        false,
    ))
    .expect("master");
    let slaves: Vec<Node> = (0..3)
        .map(|i| {
            let mut cfg = node_config(args, &root.join(format!("s{i}")), BrokerRole::Slave, false);
            cfg.broker_id = i + 1;
            cfg.ha_master_address = Some(master.ha_addr().expect("HA address").to_string());
            cfg.master_remoting_address = Some(master.addr().to_string());
            Node::start(cfg).expect("slave")
        })
        .collect();
    wait_in_sync(&master, slaves.len());
    let mut names = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for entry in dir.flatten() {
            if let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) {
                let comm = comm.trim().to_string();
                if comm.starts_with("ringmq-ha-") && comm != "ringmq-ha-slave" {
                    names.push(comm);
                }
            }
        }
    }
    names.sort();
    println!("master HA threads: {}", names.join(" "));
    for s in slaves {
        s.shutdown().expect("slave shutdown");
    }
    master.shutdown().expect("master shutdown");
    let _ = std::fs::remove_dir_all(&root);
    names.len()
}
