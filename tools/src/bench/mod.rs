//! `ringmq bench`: the load generator. Talks to any RocketMQ-compatible broker.
//!
//! Producers over `--connections` connections, each with `--inflight` sends
//! outstanding at most; an open loop at `--rate` msgs/s (latency from each
//! send's due time) or a closed loop (no `--rate`); `--warmup-secs`, then
//! `--duration-secs` or `--count`; optional `--consumers` measuring
//! end-to-end latency and counting lost and duplicated messages. Progress
//! once a second on stderr; at the end a summary on stdout and
//! `<out>/<name>.hgrm` + `<out>/<name>.json` (a `RunSummary`).
//!
//! | file | owns |
//! | --- | --- |
//! | `mod` | arguments, topic setup, the run |
//! | `schedule` | the open-loop timetable |
//! | `produce` | connection threads, in-flight window, message sizes, clock |
//! | `consume` | pull consumers, end-to-end latency |
//! | `sequence` | the seen-set: lost and duplicated by sequence number |
//! | `stats` | histograms, errors by response code, progress line |
//! | `outcome` | the summary: printed, `.hgrm` and `.json` |
//! | `fake` | `--self-test`: an in-process broker, for the generator's ceiling |
//! | `cluster` | `--namesrv`: routes from name servers, connections spread over the groups |

pub mod cluster;
pub mod consume;
pub mod fake;
pub mod outcome;
pub mod produce;
pub mod schedule;
pub mod sequence;
pub mod stats;

use ringmq_engine::sync::lock;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Args, ValueEnum};
use ringmq_client::{
    create_topic, fetch_route, ClientError, ConnectOptions, Connection, Credentials, Producer,
    ProducerOptions,
};
use ringmq_remoting::{response_code, SerializeType};

use consume::{ConsumeConfig, Consumers};
use outcome::{Outcome, RunFacts};
use produce::{Clock, Pace, Plan, SizeSpec};
use schedule::Timetable;
use sequence::SeqSet;
use stats::{error_name, Progress, Recorder};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HeaderArg {
    Json,
    Binary,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum E2eFrom {
    /// The send timestamp carried in the message (`bts`, microseconds).
    Send,
    /// The broker's store timestamp (milliseconds).
    Store,
}

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Broker address.
    #[arg(long, default_value = "127.0.0.1:10911")]
    pub addr: String,
    /// Name servers (`host:port;host:port`) instead of --addr: the connections spread over
    /// every broker group of the topic, with a summary per group beside the total.
    #[arg(long, conflicts_with_all = ["self_test", "consumers"])]
    pub namesrv: Option<String>,
    /// Topic (created with --queues queues if it does not exist).
    #[arg(long, default_value = "BenchTopic")]
    pub topic: String,
    /// Queue count of a topic the bench creates.
    #[arg(long, default_value_t = 8)]
    pub queues: i32,
    /// Producer connections (one sending thread each).
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Sends outstanding per connection at most.
    #[arg(long, default_value_t = 256)]
    pub inflight: usize,
    /// Body size in bytes: N or MIN-MAX (uniform).
    #[arg(long, default_value = "1024", value_parser = SizeSpec::parse)]
    pub size: SizeSpec,
    /// Offered rate in msgs/s (open loop); omitted or 0 = closed loop (maximum throughput).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Warm-up before measuring, seconds.
    #[arg(long, default_value_t = 2.0)]
    pub warmup_secs: f64,
    /// Measured interval, seconds (default 10 unless --count).
    #[arg(long, conflicts_with = "count")]
    pub duration_secs: Option<f64>,
    /// Measured sends (instead of a duration).
    #[arg(long)]
    pub count: Option<u64>,
    /// Tags, comma-separated, used round-robin.
    #[arg(long, value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Give every message a key (`k<seq>`).
    #[arg(long)]
    pub keys: bool,
    /// Pull consumers (one group) measuring end-to-end latency, loss and duplicates.
    #[arg(long, default_value_t = 0)]
    pub consumers: usize,
    /// Consumer group.
    #[arg(long, default_value = "ringmq_bench_cg")]
    pub group: String,
    /// Producer group.
    #[arg(long, default_value = "ringmq_bench_pg")]
    pub producer_group: String,
    /// End-to-end latency origin.
    #[arg(long, value_enum, default_value = "send")]
    pub e2e: E2eFrom,
    /// Run label (also the output file names).
    #[arg(long, default_value = "bench")]
    pub name: String,
    /// Directory for <name>.hgrm and <name>.json.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// Header encoding of requests.
    #[arg(long, value_enum, default_value = "json")]
    pub header: HeaderArg,
    /// Timeout of each send, milliseconds.
    #[arg(long, default_value_t = 3000)]
    pub timeout_ms: u64,
    /// Consumers: stop waiting for missing messages after this long without a delivery.
    #[arg(long, default_value_t = 5.0)]
    pub drain_secs: f64,
    /// Measure the generator's own ceiling against an in-process fake broker (ignores --addr).
    #[arg(long, conflicts_with = "consumers")]
    pub self_test: bool,
    /// No progress lines.
    #[arg(long, short)]
    pub quiet: bool,
    /// Sign every request with this account (brokers with aclEnable=true).
    #[arg(long, requires = "secret_key")]
    pub access_key: Option<String>,
    /// The account's secret key (never printed).
    #[arg(long, requires = "access_key")]
    pub secret_key: Option<String>,
}

impl BenchArgs {
    /// Connection settings for the broker connections: signed with --access-key and
    /// --secret-key when given.
    pub fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            credentials: self
                .access_key
                .as_ref()
                .zip(self.secret_key.as_ref())
                .map(|(ak, sk)| Credentials::new(ak, sk)),
            ..ConnectOptions::default()
        }
    }
}

pub fn run(args: BenchArgs) -> i32 {
    match execute(&args) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("ringmq bench: {msg}");
            2
        }
    }
}

fn validate(a: &BenchArgs) -> Result<(), String> {
    let secs = |v: f64, what: &str| {
        if (0.0..1e7).contains(&v) {
            Ok(())
        } else {
            Err(format!("{what} must be a non-negative number of seconds"))
        }
    };
    secs(a.warmup_secs, "--warmup-secs")?;
    secs(a.duration_secs.unwrap_or(0.0), "--duration-secs")?;
    secs(a.drain_secs, "--drain-secs")?;
    if !(a.rate.is_finite() && a.rate >= 0.0) {
        return Err("--rate must be a non-negative number".into());
    }
    if a.connections == 0 || a.inflight == 0 {
        return Err("--connections and --inflight must be at least 1".into());
    }
    if !(1..=1024).contains(&a.queues) {
        return Err("--queues must be 1..=1024".into());
    }
    if a.name.is_empty() || a.name.contains(['/', '\\']) {
        return Err("--name must be a plain file name".into());
    }
    if a.count == Some(0) {
        return Err("--count must be at least 1".into());
    }
    Ok(())
}

/// Make sure `topic` exists: keep an existing route, else try
/// UPDATE_AND_CREATE_TOPIC with `queues` queues (some brokers refuse it; the
/// producer's send then auto-creates the topic). Returns what happened.
pub fn ensure_topic(
    conn: &Connection,
    topic: &str,
    queues: i32,
    st: SerializeType,
    timeout: Duration,
) -> String {
    match fetch_route(conn, topic) {
        Ok(route) => format!("existing, {} write queues", route.write_queues().len()),
        Err(ClientError::Broker { code, .. }) if code == response_code::TOPIC_NOT_EXIST => {
            match create_topic(conn, topic, queues, st, timeout) {
                Ok(_) => format!("created with {queues} queues"),
                Err(e) => format!("not created ({}), auto-created on send", error_name(&e)),
            }
        }
        Err(e) => format!("no route ({}), auto-created on send", error_name(&e)),
    }
}

fn execute(args: &BenchArgs) -> Result<i32, String> {
    validate(args)?;
    let fake = if args.self_test {
        Some(fake::FakeBroker::start().map_err(|e| format!("cannot start the fake broker: {e}"))?)
    } else {
        None
    };
    let addr = fake
        .as_ref()
        .map_or_else(|| args.addr.clone(), |f| f.addr().to_string());
    let serialize_type = match args.header {
        HeaderArg::Json => SerializeType::Json,
        HeaderArg::Binary => SerializeType::RocketMq,
    };
    let timeout = Duration::from_millis(args.timeout_ms.max(1));

    let opts = ProducerOptions {
        serialize_type,
        timeout,
        max_in_flight: args.inflight + 1,
        default_topic_queue_nums: args.queues,
        connect: args.connect_options(),
        ..ProducerOptions::default()
    };
    // Topic and queues.
    let (producers, queues, topic_note, group_of) = match &args.namesrv {
        Some(ns) => {
            let s = cluster::connect(ns, args, &opts, serialize_type, timeout)?;
            (
                s.producers,
                Vec::new(),
                s.note,
                Some((s.group_of, s.queues)),
            )
        }
        None => {
            let setup = Connection::connect_with(addr.as_str(), args.connect_options())
                .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
            let note = ensure_topic(&setup, &args.topic, args.queues, serialize_type, timeout);
            setup.close();
            let mut producers = Vec::with_capacity(args.connections);
            for _ in 0..args.connections {
                producers.push(
                    Producer::connect_with(&addr, &args.producer_group, opts.clone())
                        .map_err(|e| format!("cannot connect to {addr}: {e}"))?,
                );
            }
            let queues = producers[0]
                .queues(&args.topic)
                .map_err(|e| format!("no queues for topic {}: {e}", args.topic))?;
            for p in &producers[1..] {
                p.set_queues(&args.topic, queues.to_vec());
            }
            (producers, queues.to_vec(), note, None)
        }
    };
    let addr = args.namesrv.clone().unwrap_or(addr);
    let queue_count = group_of.as_ref().map_or(queues.len(), |(_, n)| *n);

    // Consumers start before the producers, at the queues' current ends.
    let clock = Clock::new();
    let run_id = format!(
        "{:x}",
        clock.wall_us(Instant::now()) ^ u64::from(std::process::id())
    );
    let measure_from = Arc::new(AtomicU64::new(u64::MAX));
    let consumers = if args.consumers > 0 {
        Some(Consumers::start(ConsumeConfig {
            addr: addr.clone(),
            group: args.group.clone(),
            queues: queues.to_vec(),
            consumers: args.consumers,
            run_id: run_id.clone(),
            clock,
            serialize_type,
            from_store: args.e2e == E2eFrom::Store,
            measure_from_wall_us: measure_from.clone(),
            connect: args.connect_options(),
        })?)
    } else {
        None
    };

    // The plan.
    let start = Instant::now() + Duration::from_millis(50);
    let warm = Duration::from_secs_f64(args.warmup_secs);
    let duration = args
        .count
        .is_none()
        .then(|| args.duration_secs.unwrap_or(10.0));
    let (pace, measure_start) = if args.rate > 0.0 {
        let timetable = Timetable::new(start, args.rate);
        let warm_n = timetable.sends_in(args.warmup_secs);
        let meas_n = args
            .count
            .unwrap_or_else(|| timetable.sends_in(duration.unwrap_or(0.0)))
            .max(1);
        let pace = Pace::Open {
            timetable,
            warm_n,
            total: warm_n + meas_n,
        };
        (pace, timetable.due(warm_n))
    } else {
        let pace = Pace::Closed {
            start,
            warm_end: start + warm,
            end: duration.map(|d| start + warm + Duration::from_secs_f64(d)),
            count: args.count,
        };
        (pace, start + warm)
    };
    measure_from.store(clock.wall_us(measure_start), Ordering::Release);
    let plan = Arc::new(Plan {
        topic: args.topic.clone(),
        sizes: args.size,
        tags: args
            .tags
            .iter()
            .filter(|t| !t.is_empty())
            .cloned()
            .collect(),
        keys: args.keys,
        inflight: args.inflight,
        run_id: run_id.clone(),
        pace,
        clock,
        drain: timeout + Duration::from_secs(2),
        body: Bytes::from(vec![b'r'; args.size.max]),
        next_seq: AtomicU64::new(0),
        measured_issued: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let recs: Vec<Arc<Recorder>> = (0..args.connections)
        .map(|_| Arc::new(Recorder::new()))
        .collect();
    let acks: Vec<Option<Arc<Mutex<SeqSet>>>> = (0..args.connections)
        .map(|_| consumers.as_ref().map(|_| Arc::default()))
        .collect();

    eprintln!(
        "ringmq bench {}: {} -> {addr} topic {} ({topic_note}; {} queues), {} connections x {} in flight, {} B, {}",
        args.name,
        if args.self_test { "self-test" } else { "producing" },
        args.topic,
        queue_count,
        args.connections,
        args.inflight,
        args.size,
        if args.rate > 0.0 {
            format!("open loop {} msgs/s", args.rate)
        } else {
            "closed loop".into()
        }
    );
    let stop_progress = Arc::new(AtomicBool::new(false));
    let progress = (!args.quiet).then(|| {
        Progress {
            sends: recs.clone(),
            e2e: consumers.as_ref().map(|c| c.e2e.clone()),
            start,
            warm_end: measure_start,
        }
        .spawn(stop_progress.clone())
    });
    let threads: Vec<_> = producers
        .into_iter()
        .enumerate()
        .map(|(c, p)| {
            let (plan, rec, ack) = (plan.clone(), recs[c].clone(), acks[c].clone());
            let n = args.connections;
            std::thread::Builder::new()
                .name(format!("bench-send-{c}"))
                .spawn(move || produce::run_connection(c, n, p, plan, rec, ack))
                .map_err(|e| format!("cannot start a sender thread: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let conns: Vec<_> = threads
        .into_iter()
        .map(|t| t.join().map_err(|_| "a sender thread panicked".to_string()))
        .collect::<Result<_, _>>()?;
    let send_end = Instant::now();

    // Consumers: wait for the acknowledged messages, then count.
    let consumed = consumers.map(|c| {
        let mut acked = SeqSet::new();
        for a in acks.iter().flatten() {
            acked.union_with(&lock(a));
        }
        let quiet = Duration::from_secs_f64(args.drain_secs);
        let complete = c.wait_for(&acked, quiet, quiet * 6);
        let seen = lock(&c.seen).clone();
        let e2e = c.e2e.totals();
        c.stop();
        outcome::Consumed {
            lost: seen.missing_from(&acked),
            duplicated: seen.duplicates(),
            unacked_seen: seen.distinct() - (acked.distinct() - seen.missing_from(&acked)),
            complete,
            e2e,
        }
    });
    stop_progress.store(true, Ordering::Release);
    if let Some(p) = progress {
        let _ = p.join();
    }
    drop(fake);

    let mut sends = stats::Counts::default();
    for r in &recs {
        sends.merge(&r.totals());
    }
    let facts = RunFacts {
        args: args.clone(),
        addr: if args.self_test {
            "self-test (in-process fake broker)".into()
        } else {
            addr
        },
        topic_note,
        queues: queue_count,
        run_id,
        measure_start,
        send_end,
    };
    let out = Outcome::build(&facts, &sends, &conns, consumed);
    out.print(&facts);
    out.write(&args.out, &args.name)?;
    if let Some((group_of, _)) = &group_of {
        write_group_outcomes(&facts, group_of, &recs, conns)?;
    }
    Ok(if out.summary.count == 0 { 1 } else { 0 })
}

/// `--namesrv`: one summary per broker group, from the connections that sent to it
/// (`<name>-<group>.json` / `.hgrm`), and a line per group on stdout.
fn write_group_outcomes(
    facts: &RunFacts,
    group_of: &[String],
    recs: &[Arc<Recorder>],
    conns: Vec<produce::ConnOutcome>,
) -> Result<(), String> {
    let mut by_group: std::collections::BTreeMap<&str, (stats::Counts, Vec<produce::ConnOutcome>)> =
        std::collections::BTreeMap::new();
    for ((group, rec), conn) in group_of.iter().zip(recs).zip(conns) {
        let entry = by_group.entry(group.as_str()).or_default();
        entry.0.merge(&rec.totals());
        entry.1.push(conn);
    }
    for (group, (sends, conns)) in by_group {
        let name = format!("{}-{group}", facts.args.name);
        let group_facts = RunFacts {
            args: BenchArgs {
                name: name.clone(),
                connections: conns.len(),
                // The group's share of the offered load.
                rate: facts.args.rate * conns.len() as f64 / group_of.len() as f64,
                ..facts.args.clone()
            },
            addr: format!("{} (group {group})", facts.addr),
            topic_note: facts.topic_note.clone(),
            queues: facts.queues,
            run_id: facts.run_id.clone(),
            measure_start: facts.measure_start,
            send_end: facts.send_end,
        };
        let out = Outcome::build(&group_facts, &sends, &conns, None);
        println!(
            "group {group}: {} messages acknowledged, {} connections",
            out.summary.count,
            conns.len()
        );
        out.write(&facts.args.out, &name)?;
    }
    Ok(())
}
