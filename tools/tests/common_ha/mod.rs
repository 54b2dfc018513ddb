//! Helpers of the HA process-kill tests: `ringmq broker` child processes (killed on drop,
//! their log tail printed when a test panics), a producer load that records every
//! SEND_OK, and a checker that pulls acknowledged messages back from a broker.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ringmq_client::{
    ClientError, Message, MessageQueue, Producer, ProducerOptions, PullConsumer, PullStatus,
    SendStatus,
};

pub const BIN: &str = env!("CARGO_BIN_EXE_ringmq");
pub const BROKER_NAME: &str = "broker-a";

/// Settings every broker of these tests gets.
const COMMON_SETS: [&str; 3] = [
    "mappedFileSizeCommitLog=16777216",
    "tailRingBytes=33554432",
    "syncFlushTimeout=2000",
];

/// xorshift64 (seeded; the seed is printed so a failing run can be replayed).
pub struct Rng(u64);

impl Rng {
    /// From `RINGMQ_HA_SEED` if set, else the clock.
    pub fn from_env_or_clock(test: &str) -> Rng {
        let seed = std::env::var("RINGMQ_HA_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            })
            | 1;
        println!("{test}: seed {seed} (replay with RINGMQ_HA_SEED={seed})");
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform-ish in `[lo, hi)`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The last `lines` lines of a file (for failure reports).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut s = String::new();
    let _ = f.read_to_string(&mut s);
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A `ringmq broker` child process. Dropping it SIGKILLs and reaps it; if the thread is
/// panicking, the tail of its log is printed first.
pub struct BrokerProc {
    pub name: String,
    pub dir: PathBuf,
    pub log: PathBuf,
    /// Remoting address, `host:port`.
    pub addr: String,
    /// HA address of a master.
    pub ha_addr: Option<String>,
    child: Option<Child>,
    /// Later stdout lines (kept so the pipe stays open).
    _stdout: Receiver<String>,
}

impl BrokerProc {
    /// Starts `ringmq broker` with `args` (after the common ones) and waits for its
    /// "listening" lines. Its stderr is appended to `log`.
    pub fn spawn(name: &str, dir: &Path, log: &Path, args: &[String]) -> BrokerProc {
        std::fs::create_dir_all(dir).unwrap();
        let err = File::options().create(true).append(true).open(log).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("broker")
            .arg("--store")
            .arg(dir)
            .args(["--no-pin", "--flush", "ASYNC_FLUSH"]);
        for s in COMMON_SETS {
            cmd.args(["--set", s]);
        }
        let mut child = cmd
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn ringmq broker");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    // Keep draining so the child never blocks on a full pipe.
                    continue;
                }
            }
        });
        let mut p = BrokerProc {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            log: log.to_path_buf(),
            addr: String::new(),
            ha_addr: None,
            child: Some(child),
            _stdout: rx,
        };
        let master = !args.iter().any(|a| a == "SLAVE");
        let deadline = Instant::now() + Duration::from_secs(15);
        while p.addr.is_empty() || (master && p.ha_addr.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            match p._stdout.recv_timeout(left) {
                Ok(line) => {
                    if let Some(a) = line.strip_prefix("ringmq broker listening on ") {
                        p.addr = a.trim().to_string();
                    } else if let Some(a) = line.strip_prefix("ringmq broker HA listening on ") {
                        p.ha_addr = Some(a.trim().to_string());
                    }
                }
                Err(_) => panic!(
                    "{name} did not report its addresses within 15 s; log tail:\n{}",
                    log_tail(log, 40)
                ),
            }
        }
        p
    }

    /// A master (`role` ASYNC_MASTER or SYNC_MASTER); `ports` = (remoting, HA), 0 for any.
    pub fn master(name: &str, dir: &Path, log: &Path, role: &str, ports: (u16, u16)) -> Self {
        let args = [
            "--role".to_string(),
            role.to_string(),
            "--broker-id".into(),
            "0".into(),
            "--listen-port".into(),
            ports.0.to_string(),
            "--set".into(),
            format!("haListenPort={}", ports.1),
        ];
        Self::spawn(name, dir, log, &args)
    }

    /// A slave of `master_ha` / `master_addr`.
    pub fn slave(name: &str, dir: &Path, log: &Path, master_ha: &str, master_addr: &str) -> Self {
        let args = [
            "--role".to_string(),
            "SLAVE".into(),
            "--broker-id".into(),
            "1".into(),
            "--listen-port".into(),
            "0".into(),
            "--set".into(),
            format!("haMasterAddress={master_ha}"),
            "--set".into(),
            format!("masterRemotingAddress={master_addr}"),
            "--set".into(),
            "slaveSyncInitialDelayMillis=50".into(),
            "--set".into(),
            "slaveSyncIntervalMillis=200".into(),
        ];
        Self::spawn(name, dir, log, &args)
    }

    /// (remoting port, HA port) of this broker, to restart it on the same ones.
    pub fn ports(&self) -> (u16, u16) {
        let port = |a: &str| a.rsplit(':').next().unwrap().parse::<u16>().unwrap();
        (port(&self.addr), self.ha_addr.as_deref().map_or(0, port))
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait (up to 20 s, else SIGKILL and panic) for a clean exit.
    pub fn term(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("running");
        // SAFETY: kill(2) on our own child's pid; no memory involved.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st;
            }
            if Instant::now() >= deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!(
                    "{} did not stop within 20 s of SIGTERM; log tail:\n{}",
                    self.name,
                    log_tail(&self.log, 40)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for BrokerProc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- {} log tail ({}) ----\n{}",
                self.name,
                self.log.display(),
                log_tail(&self.log, 30)
            );
        }
        self.kill();
    }
}

/// One message answered SEND_OK.
#[derive(Debug, Clone, Copy)]
pub struct Ack {
    pub queue: i32,
    pub offset: i64,
    pub seq: u64,
}

/// Body of message `seq`: its 20-digit number, then filler of a seq-dependent length.
pub fn body_of(seq: u64) -> Vec<u8> {
    let mut b = format!("{seq:020}").into_bytes();
    let fill = (seq * 37 % 4000) as usize;
    b.extend(std::iter::repeat_n(b'a' + (seq % 26) as u8, fill));
    b
}

/// The sequence number a body carries, if it is a well-formed body.
pub fn seq_of(body: &[u8]) -> Option<u64> {
    let seq: u64 = std::str::from_utf8(body.get(..20)?).ok()?.parse().ok()?;
    (body == body_of(seq).as_slice()).then_some(seq)
}

pub fn mq(topic: &str, queue: i32) -> MessageQueue {
    MessageQueue::new(topic, BROKER_NAME, queue)
}

/// What a load saw: every SEND_OK, and a count of every other outcome.
pub type LoadOutcome = (Vec<Ack>, BTreeMap<String, u64>);

/// Producer threads sending to the queues of one topic until stopped or their
/// connection closes; each records what was answered SEND_OK.
pub struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    threads: Vec<JoinHandle<LoadOutcome>>,
}

impl Load {
    pub fn start(
        addr: &str,
        topic: &str,
        queues: i32,
        threads: usize,
        seq: &Arc<AtomicU64>,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let threads = (0..threads)
            .map(|_| {
                let (addr, topic) = (addr.to_string(), topic.to_string());
                let (stop, acked, seq) = (stop.clone(), acked.clone(), seq.clone());
                std::thread::spawn(move || {
                    let mut acks = Vec::new();
                    let mut other: BTreeMap<String, u64> = BTreeMap::new();
                    let opts = ProducerOptions {
                        timeout: Duration::from_secs(5),
                        ..Default::default()
                    };
                    let Ok(p) = Producer::connect_with(&addr, "ha_kill_pg", opts) else {
                        *other.entry("connect failed".into()).or_default() += 1;
                        return (acks, other);
                    };
                    while !stop.load(Ordering::Acquire) {
                        let s = seq.fetch_add(1, Ordering::Relaxed);
                        let queue = (s % queues as u64) as i32;
                        match p.send_to(&mq(&topic, queue), Message::new(body_of(s))) {
                            Ok(r) if r.status == SendStatus::SendOk => {
                                assert_eq!(r.queue_id, queue, "SEND_OK names another queue");
                                acks.push(Ack {
                                    queue,
                                    offset: r.queue_offset,
                                    seq: s,
                                });
                                acked.fetch_add(1, Ordering::Release);
                            }
                            Ok(r) => {
                                *other.entry(format!("{:?}", r.status)).or_default() += 1;
                                if r.status == SendStatus::SlaveNotAvailable {
                                    std::thread::sleep(Duration::from_millis(2));
                                }
                            }
                            Err(e) if e.is_connection_closed() => {
                                *other.entry("connection closed".into()).or_default() += 1;
                                break;
                            }
                            Err(e) => {
                                let k = match e {
                                    ClientError::Broker { code, .. } => {
                                        format!("broker error {code}")
                                    }
                                    ClientError::Timeout(_) => "timeout".into(),
                                    e => e.to_string(),
                                };
                                *other.entry(k).or_default() += 1;
                                std::thread::sleep(Duration::from_millis(2));
                            }
                        }
                    }
                    (acks, other)
                })
            })
            .collect();
        Load {
            stop,
            acked,
            threads,
        }
    }

    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Acquire)
    }

    /// Stops the threads (they also end by themselves when the broker dies) and
    /// returns every SEND_OK and a count of every other outcome.
    pub fn finish(self) -> LoadOutcome {
        self.stop.store(true, Ordering::Release);
        let mut acks = Vec::new();
        let mut other: BTreeMap<String, u64> = BTreeMap::new();
        for t in self.threads {
            let (a, o) = t.join().expect("producer thread");
            acks.extend(a);
            for (k, v) in o {
                *other.entry(k).or_default() += v;
            }
        }
        (acks, other)
    }
}

/// Pulls every acknowledged (queue, offset) from the broker at `addr` and checks it holds
/// the acknowledged message. Polls up to `timeout` for offsets not yet there. Err: a report
/// of what is missing or different.
pub fn check_acks(addr: &str, topic: &str, acks: &[Ack], timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let consumer = PullConsumer::connect(addr, "ha_kill_checker")
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let mut by_queue: BTreeMap<i32, Vec<Ack>> = BTreeMap::new();
    for a in acks {
        by_queue.entry(a.queue).or_default().push(*a);
    }
    let mut problems = Vec::new();
    for (queue, mut want) in by_queue {
        want.sort_by_key(|a| a.offset);
        let q = mq(topic, queue);
        let last = want.last().unwrap().offset;
        // offset -> seq of what the broker holds (None: not a well-formed body).
        let mut got: HashMap<i64, Option<u64>> = HashMap::new();
        let mut cursor = want[0].offset;
        let mut last_status = String::new();
        while cursor <= last {
            match consumer.pull(&q, cursor, 32, None) {
                Ok(r) if r.status == PullStatus::Found => {
                    for m in &r.messages {
                        got.insert(m.queue_offset, seq_of(&m.body));
                    }
                    cursor = r.next_begin_offset.max(cursor + 1);
                    // Skip offsets nobody needs (unacknowledged holes are fine too).
                    if let Some(next) = want.iter().find(|a| a.offset >= cursor) {
                        cursor = next.offset;
                    }
                    continue;
                }
                Ok(r) => {
                    last_status = format!(
                        "{:?} (maxOffset {}, nextBegin {})",
                        r.status, r.max_offset, r.next_begin_offset
                    )
                }
                Err(e) => last_status = e.to_string(),
            }
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let max = consumer
            .max_offset(&q)
            .map_or_else(|e| e.to_string(), |m| m.to_string());
        let mut bad = 0;
        for a in &want {
            let why = match got.get(&a.offset) {
                Some(Some(s)) if *s == a.seq => continue,
                Some(Some(s)) => format!("holds seq {s}"),
                Some(None) => "holds a malformed body".to_string(),
                None => format!("missing (last pull: {last_status})"),
            };
            bad += 1;
            if bad <= 5 {
                problems.push(format!(
                    "queue {queue} offset {} (acked seq {}): {why}",
                    a.offset, a.seq
                ));
            }
        }
        if bad > 0 {
            problems.push(format!(
                "queue {queue}: {bad} of {} acknowledged messages wrong or missing; acked offsets {}..={}, broker maxOffset {max}",
                want.len(),
                want[0].offset,
                last
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// Max offset of each queue at `addr`.
pub fn max_offsets(addr: &str, topic: &str, queues: i32) -> Result<Vec<i64>, String> {
    let c = PullConsumer::connect(addr, "ha_kill_checker").map_err(|e| e.to_string())?;
    (0..queues)
        .map(|q| c.max_offset(&mq(topic, q)).map_err(|e| e.to_string()))
        .collect()
}

/// Whether a pull of every queue of `topic` at `addr` is served (the topic is known).
pub fn topic_served(addr: &str, topic: &str, queues: i32) -> bool {
    let Ok(c) = PullConsumer::connect(addr, "ha_kill_checker") else {
        return false;
    };
    (0..queues).all(|q| c.pull(&mq(topic, q), 0, 1, None).is_ok())
}

/// `physOffset` of the checkpoint a broker wrote under `dir`.
pub fn checkpoint_phys_offset(dir: &Path) -> i64 {
    let text = std::fs::read_to_string(dir.join("checkpoint")).expect("checkpoint");
    let v: serde_json::Value = serde_json::from_str(&text).expect("checkpoint JSON");
    v["physOffset"].as_i64().expect("physOffset")
}

/// CommitLog segment files under `dir/commitlog`, by base offset.
pub fn segments(dir: &Path) -> BTreeMap<u64, PathBuf> {
    std::fs::read_dir(dir.join("commitlog"))
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let name = e.file_name().into_string().ok()?;
            (name.len() == 20)
                .then(|| name.parse::<u64>().ok())
                .flatten()
                .map(|base| (base, e.path()))
        })
        .collect()
}
