//! torture-client: the load and the check of `scripts/torture.sh`.
//!
//! `produce` sends messages whose bodies are `<tag>-<thread>-<seq>` from several threads,
//! each on its own connection, until the broker goes away (it is killed with SIGKILL), and
//! appends every acknowledged send (SEND_OK) to the send log, one body per line, written
//! once the answer arrived. This process is not killed, so the log is complete.
//!
//! `verify` pulls every queue of the topic from its first offset to its end and checks
//! that every body in the send logs is there; prints `acked=<n> missing=<n>` (and the
//! first missing bodies) and exits 1 if any is missing.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Parser, Subcommand};
use ringmq_client::{
    create_topic, Message, MessageQueue, Producer, PullConsumer, PullStatus, SendStatus,
};
use ringmq_remoting::codes::SerializeType;

#[derive(Parser)]
#[command(about = "load and check for scripts/torture.sh")]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Send until the broker goes away; log every acknowledged body.
    Produce {
        #[arg(long)]
        addr: String,
        #[arg(long, default_value = "Torture")]
        topic: String,
        #[arg(long, default_value_t = 4)]
        queues: i32,
        /// Prefix of every body (unique per round).
        #[arg(long)]
        tag: String,
        /// Send log (appended to).
        #[arg(long)]
        log: PathBuf,
        #[arg(long, default_value_t = 4)]
        threads: usize,
        #[arg(long, default_value_t = 512)]
        size: usize,
    },
    /// Check that every logged body can be pulled.
    Verify {
        #[arg(long)]
        addr: String,
        #[arg(long, default_value = "Torture")]
        topic: String,
        #[arg(long = "log", required = true)]
        logs: Vec<PathBuf>,
    },
}

fn main() {
    let code = match Args::parse().cmd {
        Cmd::Produce {
            addr,
            topic,
            queues,
            tag,
            log,
            threads,
            size,
        } => produce(&addr, &topic, queues, &tag, &log, threads, size),
        Cmd::Verify { addr, topic, logs } => verify(&addr, &topic, &logs),
    };
    std::process::exit(code);
}

fn produce(
    addr: &str,
    topic: &str,
    queues: i32,
    tag: &str,
    log: &PathBuf,
    threads: usize,
    size: usize,
) -> i32 {
    let producer = match Producer::connect(addr, "torture_pg") {
        Ok(p) => p,
        Err(e) => {
            eprintln!("connect {addr}: {e}");
            return 2;
        }
    };
    if let Err(e) = create_topic(
        producer.connection(),
        topic,
        queues,
        SerializeType::Json,
        Duration::from_secs(3),
    ) {
        eprintln!("create topic {topic}: {e}");
        return 2;
    }
    drop(producer);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open send log");
    let file = Arc::new(Mutex::new(std::io::LineWriter::new(file)));
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (addr, topic, tag) = (addr.to_owned(), topic.to_owned(), tag.to_owned());
            let (file, stop) = (file.clone(), stop.clone());
            std::thread::spawn(move || {
                let Ok(producer) = Producer::connect(&addr, "torture_pg") else {
                    return 0u64;
                };
                let mut acked = 0u64;
                for seq in 0u64.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let mut body = format!("{tag}-{t}-{seq}").into_bytes();
                    let id_len = body.len();
                    body.resize(size.max(id_len + 1), b'.');
                    match producer.send(&topic, Message::new(body)) {
                        Ok(r) if r.status == SendStatus::SendOk => {
                            let line = format!("{tag}-{t}-{seq}\n");
                            let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
                            f.write_all(line.as_bytes()).expect("write send log");
                            acked += 1;
                        }
                        Ok(_) => {}
                        // The broker was killed: this round is over.
                        Err(_) => {
                            stop.store(true, Ordering::Relaxed);
                            break;
                        }
                    }
                }
                acked
            })
        })
        .collect();
    let acked: u64 = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    file.lock()
        .unwrap_or_else(|e| e.into_inner())
        .flush()
        .expect("flush send log");
    println!("acked={acked}");
    0
}

fn verify(addr: &str, topic: &str, logs: &[PathBuf]) -> i32 {
    let mut acked = HashSet::new();
    for log in logs {
        let Ok(file) = std::fs::File::open(log) else {
            continue;
        };
        for line in std::io::BufReader::new(file).lines() {
            acked.insert(line.expect("read send log"));
        }
    }
    let producer = Producer::connect(addr, "torture_pg").expect("connect");
    let queues: Vec<MessageQueue> = producer
        .queues(topic)
        .map(|q| q.as_ref().clone())
        .unwrap_or_default();
    let consumer = PullConsumer::connect(addr, "torture_cg").expect("connect");
    let mut found = HashSet::new();
    let mut stored = 0u64;
    for mq in &queues {
        let mut offset = consumer.min_offset(mq).expect("min offset");
        loop {
            let r = consumer.pull(mq, offset, 32, None).expect("pull");
            if r.status != PullStatus::Found || r.messages.is_empty() {
                break;
            }
            for m in &r.messages {
                let body = String::from_utf8_lossy(&m.body);
                let id = body.trim_end_matches('.').to_owned();
                found.insert(id);
                stored += 1;
            }
            offset = r.next_begin_offset;
        }
    }
    let missing: Vec<_> = acked.iter().filter(|b| !found.contains(*b)).collect();
    println!(
        "queues={} stored={stored} acked={} missing={}",
        queues.len(),
        acked.len(),
        missing.len()
    );
    for b in missing.iter().take(10) {
        println!("missing {b}");
    }
    if missing.is_empty() {
        0
    } else {
        1
    }
}
