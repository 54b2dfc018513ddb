//! broker-bench: produce throughput and fixed-rate latency over loopback with the project's
//! client, beside the loopback round trip measured in the same run.
//!
//! Starts a broker in this process (or uses `--addr` to measure any RocketMQ-compatible
//! broker), then: throughput with 1 and with 16 connections (1 KiB bodies, a bounded
//! number of sends in flight per connection); latency at a fixed offered rate (open loop:
//! each send has a scheduled time and its latency counts from that time, so a stall
//! cannot hide); and the loopback TCP round trip. Last line: `RESULT ...`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use ringmq_benches::ceiling::loopback;
use ringmq_benches::open_loop;
use ringmq_benches::report::{Percentiles, Table};
use ringmq_broker::BrokerConfig;
use ringmq_broker::Server;
use ringmq_client::{Message, Producer, ProducerOptions};
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
}

const TOPIC: &str = "BenchTopic";

fn main() {
    let args = Args::parse();
    let serialize_type = match args.header.as_str() {
        "json" => SerializeType::Json,
        "binary" => SerializeType::RocketMq,
        other => panic!("--header {other}: expected json or binary"),
    };
    let rtt = loopback::rtt(5000);
    let (server, addr) = match &args.addr {
        Some(a) => (None, a.clone()),
        None => {
            let _ = std::fs::remove_dir_all(&args.dir);
            let cfg = BrokerConfig {
                store_path_root_dir: args.dir.clone(),
                listen_port: 0,
                pin_threads: args.pin,
                ..Default::default()
            };
            let server = Server::open(cfg).expect("start broker");
            let addr = server.local_addr().to_string();
            (Some(server), addr)
        }
    };
    println!(
        "broker-bench against {addr} ({} headers, {} B bodies)",
        args.header, args.body
    );
    let body = Bytes::from(vec![b'x'; args.body]);
    // Warm up: creates the topic and its queues.
    throughput(&addr, &body, 1, args.inflight, 0.5, serialize_type);
    let conn1 = throughput(&addr, &body, 1, args.inflight, args.secs, serialize_type);
    let conn16 = throughput(&addr, &body, 16, args.inflight, args.secs, serialize_type);
    let lat = fixed_rate(&addr, &body, args.rate, args.latency_secs, serialize_type);

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
    t.print();
    let p = Percentiles::of(&lat.latency_us);
    if let Some(s) = server {
        s.shutdown().expect("broker shutdown");
        let _ = std::fs::remove_dir_all(&args.dir);
    }
    println!(
        "RESULT conn1_msgs_per_s={:.0} conn16_msgs_per_s={:.0} p99_us_at_10k={:.0} rtt_p99_us={:.1}",
        conn1.msgs_per_s, conn16.msgs_per_s, p.p99, rtt_p.p99
    );
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
    errors: u64,
}

fn producer(addr: &str, inflight: usize, st: SerializeType) -> Producer {
    let opts = ProducerOptions {
        max_in_flight: inflight,
        serialize_type: st,
        ..Default::default()
    };
    Producer::connect_with(addr, "bench_producer", opts).expect("connect producer")
}

fn throughput(
    addr: &str,
    body: &Bytes,
    conns: usize,
    inflight: usize,
    secs: f64,
    st: SerializeType,
) -> Throughput {
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(secs);
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let (addr, body, ok, errors) =
                (addr.to_string(), body.clone(), ok.clone(), errors.clone());
            std::thread::spawn(move || {
                let p = producer(&addr, inflight, st);
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
        errors: errors.load(Ordering::Relaxed),
    }
}

struct Latency {
    latency_us: Histogram<u64>,
    achieved_per_s: f64,
    errors: u64,
}

fn fixed_rate(addr: &str, body: &Bytes, rate: u64, secs: f64, st: SerializeType) -> Latency {
    let p = producer(addr, 4096, st);
    let r = open_loop::run(&p, TOPIC, body, rate, secs, false);
    Latency {
        latency_us: r.latency_us,
        achieved_per_s: r.achieved_per_s,
        errors: r.not_ok + r.failed,
    }
}
