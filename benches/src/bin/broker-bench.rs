//! broker-bench: produce throughput and fixed-rate latency over loopback with the project's
//! client, beside the loopback round trip measured in the same run.
//!
//! Starts a broker in this process (or uses `--addr` to measure any RocketMQ-compatible
//! broker), then: throughput with 1 and with 16 connections (1 KiB bodies, a bounded
//! number of sends in flight per connection); latency at a fixed offered rate (open loop:
//! each send has a scheduled time and its latency counts from that time, so a stall
//! cannot hide); and the loopback TCP round trip. Last line: `RESULT ...`.
//!
//! CPU per message: the broker started here runs as a child process (this program
//! re-executed with `--serve`), so its CPU time is read whole from `/proc/<pid>/stat`
//! (every thread of it, exited ones included) and none of the load generator's is
//! counted. `broker_cpu_us_per_msg` is that time over the acknowledged sends of the
//! 16-connection run (and, on its own line, of the fixed-rate run).
//! `engine_cpu_us_per_msg` is the CommitLog alone in this process after the broker runs:
//! 1 KiB ASYNC_FLUSH appends in batches of 64 (engine-bench's setup), this whole
//! process's CPU time (the appending thread and the writer) over the records acknowledged.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use clap::Parser;
use hdrhistogram::Histogram;
use ringmq_benches::ceiling::loopback;
use ringmq_benches::cpu;
use ringmq_benches::open_loop;
use ringmq_benches::report::{Percentiles, Table};
use ringmq_broker::BrokerConfig;
use ringmq_broker::Server;
use ringmq_client::{Credentials, Message, Producer, ProducerOptions};
use ringmq_engine::commitlog::{AppendRequest, CommitLog, CommitLogConfig, FlushMode, PutStatus};
use ringmq_engine::record::encode_properties;
use ringmq_engine::record::MessageToStore;
use ringmq_remoting::SerializeType;

#[derive(Parser)]
#[command(
    about = "Broker produce throughput and latency over loopback beside the loopback round trip"
)]
struct Args {
    /// Measure this broker instead of starting one (host:port).
    #[arg(long)]
    addr: Option<String>,
    /// Store directory for the broker started here (removed after).
    #[arg(long, default_value = "bench-data-broker")]
    dir: PathBuf,
    /// Seconds per throughput run.
    #[arg(long, default_value_t = 5.0)]
    secs: f64,
    /// Body size in bytes.
    #[arg(long, default_value_t = 1024)]
    body: usize,
    /// Sends in flight per connection in the throughput runs.
    #[arg(long, default_value_t = 256)]
    inflight: usize,
    /// Offered rate of the latency run (msgs/s).
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Seconds of the latency run.
    #[arg(long, default_value_t = 5.0)]
    latency_secs: f64,
    /// Remoting header form: json or binary.
    #[arg(long, default_value = "json")]
    header: String,
    /// Pin the broker's threads to their cores (off by default: on a 2-core machine shared
    /// with this load generator, pinned loops fight the client's threads; measured here:
    /// 16 connections 95-115 k msgs/s pinned vs 128-134 k unpinned).
    #[arg(long)]
    pin: bool,
    /// Start the broker with ACL on (one admin account) and sign every request: the cost
    /// of ACL against a run without.
    #[arg(long)]
    acl: bool,
    /// Start the broker with `metricsExporterType=PROM` and scrape `/metrics` once a second
    /// during the runs, as Prometheus would: the cost of metrics against a run without.
    #[arg(long)]
    metrics: bool,
    /// Seconds of the engine-alone append run (CPU per record beside the broker's).
    #[arg(long, default_value_t = 2.0)]
    engine_secs: f64,
    /// Internal: run only the broker, print its address, serve until stdin closes.
    #[arg(long, hide = true)]
    serve: bool,
}

const TOPIC: &str = "BenchTopic";
/// The one account `--acl` gives the broker; the load signs with it.
const ACL_ACCOUNT: (&str, &str) = ("bench-ak", "bench-secret-1");

fn main() {
    let args = Args::parse();
    let serialize_type = match args.header.as_str() {
        "json" => SerializeType::Json,
        "binary" => SerializeType::RocketMq,
        other => panic!("--header {other}: expected json or binary"),
    };
    if args.serve {
        serve(&args);
        return;
    }
    let rtt = loopback::rtt(5000);
    let (mut child, addr, metrics_addr) = match &args.addr {
        Some(a) => (None, a.clone(), None),
        None => {
            let (child, addr, metrics) = spawn_broker(&args);
            (Some(child), addr, metrics)
        }
    };
    let broker_pid = child.as_ref().map(|c| c.id());
    let broker_cpu = || broker_pid.map(|pid| cpu::process_us(pid).expect("broker /proc stat"));
    println!(
        "broker-bench against {addr} ({} headers, {} B bodies, ACL {}, metrics {})",
        args.header,
        args.body,
        if args.acl { "on" } else { "off" },
        if args.metrics {
            "on, scraped every second"
        } else {
            "off"
        },
    );
    let client = Client {
        st: serialize_type,
        credentials: args
            .acl
            .then(|| Credentials::new(ACL_ACCOUNT.0, ACL_ACCOUNT.1)),
    };
    let scraper = metrics_addr.map(Scraper::start);
    let body = Bytes::from(vec![b'x'; args.body]);
    // Warm up: creates the topic and its queues.
    throughput(&addr, &body, 1, args.inflight, 0.5, &client);
    let conn1 = throughput(&addr, &body, 1, args.inflight, args.secs, &client);
    let cpu0 = broker_cpu();
    let conn16 = throughput(&addr, &body, 16, args.inflight, args.secs, &client);
    let cpu1 = broker_cpu();
    let lat = fixed_rate(&addr, &body, args.rate, args.latency_secs, &client);
    let cpu2 = broker_cpu();
    let scrapes = scraper.map(Scraper::stop);
    let per_msg = |a: Option<u64>, b: Option<u64>, msgs: u64| match (a, b) {
        (Some(a), Some(b)) if msgs > 0 => Some((b - a) as f64 / msgs as f64),
        _ => None,
    };
    let conn16_cpu = per_msg(cpu0, cpu1, conn16.ok);
    let fixed_cpu = per_msg(cpu1, cpu2, lat.latency_us.len());

    let rtt_p = Percentiles::of(&rtt).scaled(1000.0);
    let mut t = Table::new("produce throughput, 1 KiB bodies");
    t.row("1 connection", conn1.msgs_per_s, "msgs/s", None);
    t.row("16 connections", conn16.msgs_per_s, "msgs/s", None);
    t.row(
        "16 connections",
        conn16.msgs_per_s * args.body as f64 / 1e6,
        "MB/s (bodies)",
        None,
    );
    t.row(
        "errors",
        (conn1.errors + conn16.errors) as f64,
        "sends",
        None,
    );
    t.print();
    let mut t = Table::new(format!(
        "produce latency at {} msgs/s offered (open loop; us; ceiling = loopback RTT)",
        args.rate
    ));
    t.latency_rows("send", &lat.latency_us, 1.0, "us", Some(&scaled(&rtt)));
    t.row("achieved rate", lat.achieved_per_s, "msgs/s", None);
    t.row("errors", lat.errors as f64, "sends", None);
    if let Some(n) = scrapes {
        t.row("/metrics scrapes", n as f64, "scrapes", None);
    }
    t.print();
    let p = Percentiles::of(&lat.latency_us);
    if let Some(c) = child.as_mut() {
        stop_broker(c);
    }
    let engine = engine_cpu_per_record(&args.dir, args.body, args.engine_secs);
    let fmt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2}"));
    let mut t = Table::new("CPU time per acknowledged message (us; all broker threads)");
    if let Some(v) = conn16_cpu {
        t.row("broker, 16 connections", v, "us/msg", None);
    }
    if let Some(v) = fixed_cpu {
        t.row(format!("broker, {} msgs/s", args.rate), v, "us/msg", None);
    }
    t.row(
        "engine alone (ASYNC_FLUSH)",
        engine.cpu_us_per_msg,
        "us/msg",
        None,
    );
    t.row("engine alone", engine.msgs_per_s, "msgs/s", None);
    t.print();
    println!(
        "fixed_rate broker_cpu_us_per_msg={} at {} msgs/s",
        fmt(fixed_cpu),
        args.rate
    );
    println!(
        "RESULT conn1_msgs_per_s={:.0} conn16_msgs_per_s={:.0} p99_us_at_10k={:.0} rtt_p99_us={:.1} broker_cpu_us_per_msg={} engine_cpu_us_per_msg={:.2}",
        conn1.msgs_per_s, conn16.msgs_per_s, p.p99, rtt_p.p99, fmt(conn16_cpu), engine.cpu_us_per_msg
    );
}

/// `--serve`: the broker alone, in this (child) process; prints `ADDR host:port` (and,
/// with `--metrics`, `METRICS host:port`), serves until stdin closes, then shuts down
/// cleanly.
fn serve(args: &Args) {
    let _ = std::fs::remove_dir_all(&args.dir);
    let mut cfg = BrokerConfig {
        store_path_root_dir: args.dir.join("store"),
        listen_port: 0,
        pin_threads: args.pin,
        ..Default::default()
    };
    if args.acl {
        std::fs::create_dir_all(&args.dir).expect("create bench dir");
        let file = args.dir.join("plain_acl.yml");
        let (ak, sk) = ACL_ACCOUNT;
        let accounts =
            format!("accounts:\n  - accessKey: {ak}\n    secretKey: {sk}\n    admin: true\n");
        std::fs::write(&file, accounts).expect("write accounts");
        cfg.acl_enable = true;
        cfg.plain_acl_file = file;
    }
    if args.metrics {
        cfg.metrics_exporter_type = "PROM".into();
        cfg.metrics_prom_exporter_host = "127.0.0.1".into();
        cfg.metrics_prom_exporter_port = 0;
    }
    let server = Server::open(cfg).expect("start broker");
    println!("ADDR {}", server.local_addr());
    if let Some(addr) = server.broker().metrics.exporter_addr() {
        println!("METRICS {addr}");
    }
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    server.shutdown().expect("broker shutdown");
    let _ = std::fs::remove_dir_all(&args.dir);
}

/// Starts `--serve` in a child process with this run's broker options; returns it, its
/// address and, with `--metrics`, its exporter's.
fn spawn_broker(args: &Args) -> (Child, String, Option<SocketAddr>) {
    let mut cmd = Command::new(std::env::current_exe().expect("own executable"));
    cmd.arg("--serve").arg("--dir").arg(&args.dir);
    for (on, flag) in [
        (args.pin, "--pin"),
        (args.acl, "--acl"),
        (args.metrics, "--metrics"),
    ] {
        if on {
            cmd.arg(flag);
        }
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn broker process");
    let mut out = BufReader::new(child.stdout.take().expect("child stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("broker address");
    let addr = line
        .trim()
        .strip_prefix("ADDR ")
        .unwrap_or_else(|| panic!("broker printed {line:?}, expected ADDR host:port"))
        .to_string();
    let metrics = args.metrics.then(|| {
        line.clear();
        out.read_line(&mut line).expect("exporter address");
        line.trim()
            .strip_prefix("METRICS ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("broker printed {line:?}, expected METRICS host:port"))
    });
    (child, addr, metrics)
}

fn stop_broker(child: &mut Child) {
    drop(child.stdin.take());
    let status = child.wait().expect("wait for broker");
    assert!(status.success(), "broker exited with {status}");
}

struct EngineCpu {
    cpu_us_per_msg: f64,
    msgs_per_s: f64,
}

/// The CommitLog alone: 1 KiB ASYNC_FLUSH appends, 64 records per request (a network ring
/// turn's batch, slices of one buffer as the network layer makes them), 16 requests in
/// flight; CPU time of this whole process (appender and writer threads) per record.
fn engine_cpu_per_record(dir: &Path, body_len: usize, secs: f64) -> EngineCpu {
    const BATCH: usize = 64;
    const IN_FLIGHT: usize = 16;
    let root = dir.join("engine");
    let _ = std::fs::remove_dir_all(&root);
    let mut cfg = CommitLogConfig::new(&root);
    cfg.flush_mode = FlushMode::Async;
    cfg.ring_capacity = 256 << 20;
    let log = CommitLog::start(cfg, 0).expect("start CommitLog");
    let props = encode_properties([("TAGS", "bench"), ("KEYS", "k0000")]);
    let unit = body_len + props.len();
    let mut template = Vec::with_capacity(BATCH * unit);
    for i in 0..BATCH {
        template.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, body_len));
        template.extend_from_slice(props.as_bytes());
    }
    let request = |seq: u64| -> Vec<MessageToStore> {
        let frame = BytesMut::from(&template[..]).freeze();
        (0..BATCH)
            .map(|i| {
                let at = i * unit;
                let body = frame.slice(at..at + body_len);
                let props = frame.slice(at + body_len..at + unit);
                MessageToStore::new(TOPIC, ((seq + i as u64) % 8) as i32, body, props)
            })
            .collect()
    };
    let (tx, rx) = mpsc::channel::<(PutStatus, usize)>();
    let cpu0 = cpu::self_us();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(secs);
    let (mut in_flight, mut sent, mut acked) = (0usize, 0u64, 0u64);
    loop {
        if Instant::now() < deadline {
            while in_flight < IN_FLIGHT {
                let tx = tx.clone();
                log.append(AppendRequest {
                    messages: request(sent),
                    wait_durable: false,
                    done: Box::new(move |o| {
                        let _ = tx.send((o.status, o.appended.len()));
                    }),
                });
                sent += BATCH as u64;
                in_flight += 1;
            }
        } else if in_flight == 0 {
            break;
        }
        let (status, n) = rx.recv().expect("writer answers");
        assert_eq!(status, PutStatus::Ok, "engine append failed");
        in_flight -= 1;
        acked += n as u64;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_us = cpu::self_us() - cpu0;
    log.shutdown().expect("flush at shutdown");
    drop(log);
    let _ = std::fs::remove_dir_all(&root);
    EngineCpu {
        cpu_us_per_msg: cpu_us as f64 / acked.max(1) as f64,
        msgs_per_s: acked as f64 / elapsed,
    }
}

/// The loopback histogram is in ns; the table wants us.
fn scaled(ns: &Histogram<u64>) -> Histogram<u64> {
    let mut us = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    for v in ns.iter_recorded() {
        us.saturating_record_n((v.value_iterated_to() / 1000).max(1), v.count_at_value());
    }
    us
}

struct Throughput {
    msgs_per_s: f64,
    ok: u64,
    errors: u64,
}

/// How the load's producers connect: header form and, with `--acl`, credentials.
#[derive(Clone)]
struct Client {
    st: SerializeType,
    credentials: Option<Credentials>,
}

fn producer(addr: &str, inflight: usize, c: &Client) -> Producer {
    let mut opts = ProducerOptions {
        max_in_flight: inflight,
        serialize_type: c.st,
        ..Default::default()
    };
    opts.connect.credentials = c.credentials.clone();
    Producer::connect_with(addr, "bench_producer", opts).expect("connect producer")
}

fn throughput(
    addr: &str,
    body: &Bytes,
    conns: usize,
    inflight: usize,
    secs: f64,
    c: &Client,
) -> Throughput {
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(secs);
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let (addr, body, ok, errors, c) = (
                addr.to_string(),
                body.clone(),
                ok.clone(),
                errors.clone(),
                c.clone(),
            );
            std::thread::spawn(move || {
                let p = producer(&addr, inflight, &c);
                while Instant::now() < deadline {
                    for _ in 0..64 {
                        let (ok2, errors2) = (ok.clone(), errors.clone());
                        let sent = p.send_async(TOPIC, Message::new(body.clone()), move |r| {
                            let counter = if r.is_ok() { &ok2 } else { &errors2 };
                            counter.fetch_add(1, Ordering::Relaxed);
                        });
                        if sent.is_err() {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                p.flush(Duration::from_secs(30));
            })
        })
        .collect();
    for t in threads {
        t.join().expect("producer thread");
    }
    let secs = started.elapsed().as_secs_f64();
    Throughput {
        msgs_per_s: ok.load(Ordering::Relaxed) as f64 / secs,
        ok: ok.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
    }
}

struct Latency {
    latency_us: Histogram<u64>,
    achieved_per_s: f64,
    errors: u64,
}

fn fixed_rate(addr: &str, body: &Bytes, rate: u64, secs: f64, c: &Client) -> Latency {
    let p = producer(addr, 4096, c);
    let r = open_loop::run(&p, TOPIC, body, rate, secs, false);
    Latency {
        latency_us: r.latency_us,
        achieved_per_s: r.achieved_per_s,
        errors: r.not_ok + r.failed,
    }
}

/// Scrapes `/metrics` once a second on its own thread until stopped.
struct Scraper {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl Scraper {
    fn start(addr: SocketAddr) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut scrapes = 0;
            while !flag.load(Ordering::Relaxed) {
                if scrape(addr).is_ok() {
                    scrapes += 1;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            scrapes
        });
        Scraper { stop, thread }
    }

    /// Stops scraping; returns how many scrapes succeeded.
    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}

fn scrape(addr: SocketAddr) -> std::io::Result<usize> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(out.len())
}
