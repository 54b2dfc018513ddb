//! `ceiling`: print every ceiling of this machine and file system.
//!
//! Runs, in a scratch directory on the file system being measured (by default
//! a temporary directory under the current directory, never tmpfs):
//! io_uring O_DIRECT sequential write bandwidth at `--qd`/`--block` with and
//! without fallocate, the latency of durable 4 KiB writes (write+fdatasync vs
//! RWF_DSYNC, on written-before and fallocate-only files), and loopback TCP
//! round trip and bandwidth. Every part is bounded in time.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use ringmq_benches::ceiling::{self, direct_write, loopback, sync_write, CpuSnapshot};
use ringmq_benches::report::{fmt_value, percentile_table, Table};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Part {
    Direct,
    Sync,
    Loopback,
}

/// Print the I/O and network ceilings of this machine.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Directory on the file system to measure (a scratch subdirectory is
    /// created and removed). Default: the current directory's file system.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// MiB written by each direct-write run.
    #[arg(long, default_value_t = 2048)]
    total_mib: u64,
    /// Recorded durable writes per sync-write case (and loopback round trips).
    #[arg(long, default_value_t = 2000)]
    n: usize,
    /// Writes in flight for the direct-write runs.
    #[arg(long, default_value_t = 8)]
    qd: usize,
    /// Bytes per direct write; suffixes K, M (powers of 1024). Multiple of 4K.
    #[arg(long, default_value = "1M", value_parser = parse_size)]
    block: usize,
    /// Block size of the durable-write latency cases.
    #[arg(long, default_value = "4K", value_parser = parse_size)]
    sync_block: usize,
    /// Repetitions of each direct-write run (to see the noise).
    #[arg(long, default_value_t = 1)]
    reps: usize,
    /// Cap in seconds on each direct-write run and each sync-write case.
    #[arg(long, default_value_t = 60)]
    max_secs: u64,
    /// Use plain Write instead of registered buffers (WriteFixed).
    #[arg(long)]
    no_fixed: bool,
    /// MiB streamed for the loopback bandwidth ceiling.
    #[arg(long, default_value_t = 2048)]
    loopback_mib: u64,
    /// Only these parts (repeatable); default all.
    #[arg(long, value_enum)]
    only: Vec<Part>,
    /// Allow measuring a tmpfs/ramfs directory (numbers then say nothing about disks).
    #[arg(long)]
    allow_tmpfs: bool,
}

fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&s[..s.len() - 1], 1usize << 10),
        Some('M') => (&s[..s.len() - 1], 1 << 20),
        Some('G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n: usize = num.parse().map_err(|e| format!("bad size {s:?}: {e}"))?;
    let v = n.checked_mul(mult).ok_or("size overflows")?;
    if v == 0 || !ceiling::is_aligned(v) {
        return Err(format!("size {v} must be a non-zero multiple of 4096"));
    }
    Ok(v)
}

fn human(bytes: usize) -> String {
    if bytes & ((1 << 20) - 1) == 0 {
        format!("{}MiB", bytes >> 20)
    } else {
        format!("{}KiB", bytes >> 10)
    }
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("ceiling: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let want = |p: Part| args.only.is_empty() || args.only.contains(&p);
    let base = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::current_dir()?,
    };
    let info = ceiling::fs_info(&base)?;
    if info.is_memory_backed() && !args.allow_tmpfs && (want(Part::Direct) || want(Part::Sync)) {
        return Err(format!(
            "{} is on {}: pass --dir on a disk-backed file system (or --allow-tmpfs)",
            base.display(),
            info.fs_name
        )
        .into());
    }
    let scratch = tempfile::Builder::new()
        .prefix(".ringmq-ceiling-")
        .tempdir_in(&base)?;
    let dir = scratch.path();
    println!(
        "ceiling: dir {} {info} cpus={} loadavg {}",
        dir.display(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    let cap = Duration::from_secs(args.max_secs);

    if want(Part::Direct) {
        let cpu = CpuSnapshot::now();
        let mut t = Table::new(format!(
            "io_uring O_DIRECT sequential write, {} x QD{}, {} MiB per run, incl. final fdatasync",
            human(args.block),
            args.qd,
            args.total_mib
        ));
        for prealloc in [true, false] {
            let mut rates = Vec::new();
            for rep in 0..args.reps.max(1) {
                let cfg = direct_write::DirectWriteConfig {
                    fixed_buffers: !args.no_fixed,
                    max_duration: cap,
                    ..direct_write::DirectWriteConfig::new(
                        args.block,
                        args.qd,
                        args.total_mib << 20,
                        prealloc,
                    )
                };
                let r = direct_write::try_measure(dir, &cfg)?;
                let name = format!(
                    "{} {} QD{} {}{}{}",
                    if prealloc { "fallocated" } else { "extending" },
                    human(r.block),
                    r.queue_depth,
                    if r.fixed_buffers { "fixed" } else { "plain" },
                    if args.reps > 1 {
                        format!(" #{rep}")
                    } else {
                        String::new()
                    },
                    if r.truncated { " (time cap)" } else { "" }
                );
                t.row(name, r.mb_per_s, "MB/s", None);
                rates.push(r.mb_per_s);
            }
            if rates.len() > 1 {
                rates.sort_by(f64::total_cmp);
                println!(
                    "  {}: min {} median {} max {} MB/s over {} runs",
                    if prealloc { "fallocated" } else { "extending" },
                    fmt_value(rates[0]),
                    fmt_value(rates[rates.len() / 2]),
                    fmt_value(rates[rates.len() - 1]),
                    rates.len()
                );
            }
        }
        t.print();
        noise(cpu);
    }

    if want(Part::Sync) {
        let cpu = CpuSnapshot::now();
        let r = sync_write::try_measure(dir, args.n, args.sync_block, cap)?;
        let cases = r.cases();
        let rows: Vec<(&str, _)> = cases.iter().map(|(n, h)| (n.as_str(), *h)).collect();
        print!(
            "{}",
            percentile_table(
                &format!("durable {} O_DIRECT write latency", human(args.sync_block)),
                "us",
                1.0,
                &rows
            )
        );
        noise(cpu);
    }

    if want(Part::Loopback) {
        let cpu = CpuSnapshot::now();
        let msg = loopback::RTT_MESSAGE;
        let mut hists = vec![("unpinned", loopback::try_rtt(args.n, msg)?)];
        let cpus = core_affinity::get_core_ids().unwrap_or_default();
        if let Some(c0) = cpus.first().map(|c| c.id) {
            hists.push((
                "same CPU",
                loopback::try_rtt_on(args.n, msg, Some((c0, c0)))?,
            ));
            if let Some(c1) = cpus.get(1).map(|c| c.id) {
                hists.push((
                    "cross CPU",
                    loopback::try_rtt_on(args.n, msg, Some((c0, c1)))?,
                ));
            }
        }
        let rows: Vec<(&str, _)> = hists.iter().map(|(n, h)| (*n, h)).collect();
        print!(
            "{}",
            percentile_table(
                &format!("loopback TCP RTT, {msg} B ping-pong, NODELAY"),
                "us",
                1000.0,
                &rows
            )
        );
        let bw = loopback::try_bandwidth(args.loopback_mib << 20)?;
        let mut t = Table::new("loopback TCP bandwidth");
        t.row(
            format!("stream {} MiB", args.loopback_mib),
            bw,
            "MB/s",
            None,
        );
        t.print();
        noise(cpu);
    }
    Ok(())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Print how busy other processes kept the CPUs during a part: a CPU-bound
/// neighbour turns microsecond latencies into multi-millisecond tails.
fn noise(since: Option<CpuSnapshot>) {
    if let Some(n) = since.and_then(|s| s.noise_since()) {
        let warn = if n.others + n.steal > 0.10 {
            "  <-- NOISY, rerun on an idle machine"
        } else {
            ""
        };
        println!(
            "  (others busy {:.0}% + steal {:.0}% of all CPU time during this part; loadavg {}){warn}",
            n.others * 100.0,
            n.steal * 100.0,
            loadavg()
        );
    }
}
