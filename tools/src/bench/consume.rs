//! Optional consumers: N pull consumers of one group share the topic's queues
//! (queue `j` goes to consumer `j % N`), one long-polling thread per queue.
//!
//! Each starts at the queue's max offset taken before the producers start, so
//! only this run's messages are read (messages of other runs are skipped by
//! their `brun` property). For each delivery it marks the `bseq` number in the
//! shared seen-set and records the end-to-end latency: now minus the carried
//! `bts` send timestamp (default), or minus the broker's store timestamp
//! (millisecond resolution). Pull failures are counted by response code.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ringmq_client::{
    ConnectOptions, MessageQueue, PullConsumer, PullOptions, PullStatus, ReceivedMessage,
};
use ringmq_remoting::SerializeType;

use super::produce::Clock;
use super::sequence::{SeqSet, RUN, SENT_US, SEQ};
use super::stats::{error_name, Recorder};

/// Long-poll suspension of each pull.
const SUSPEND: Duration = Duration::from_millis(500);
const BATCH: i32 = 32;

pub struct ConsumeConfig {
    pub addr: String,
    pub group: String,
    pub queues: Vec<MessageQueue>,
    pub consumers: usize,
    pub run_id: String,
    pub clock: Clock,
    pub serialize_type: SerializeType,
    /// Measure from the store timestamp instead of the carried send timestamp.
    pub from_store: bool,
    /// Messages sent (wall clock, us) before this are warm-up.
    pub measure_from_wall_us: Arc<AtomicU64>,
    /// Connection settings (credentials for ACL brokers).
    pub connect: ConnectOptions,
}

/// Running consumers.
pub struct Consumers {
    stop: Arc<AtomicBool>,
    clients: Vec<Arc<PullConsumer>>,
    threads: Vec<JoinHandle<()>>,
    pub seen: Arc<Mutex<SeqSet>>,
    /// End-to-end latencies (and pull errors).
    pub e2e: Arc<Recorder>,
    /// Deliveries of this run's messages.
    pub delivered: Arc<AtomicU64>,
}

impl Consumers {
    /// Connect, read the start offsets and start polling.
    pub fn start(cfg: ConsumeConfig) -> Result<Consumers, String> {
        let n = cfg.consumers.max(1);
        let opts = PullOptions {
            serialize_type: cfg.serialize_type,
            connect: cfg.connect.clone(),
            ..PullOptions::default()
        };
        let mut clients = Vec::with_capacity(n);
        for _ in 0..n {
            let c = PullConsumer::connect_with(&cfg.addr, &cfg.group, opts.clone())
                .map_err(|e| format!("consumer cannot connect to {}: {e}", cfg.addr))?;
            clients.push(Arc::new(c));
        }
        let mut starts = Vec::with_capacity(cfg.queues.len());
        for mq in &cfg.queues {
            let off = clients[0]
                .max_offset(mq)
                .map_err(|e| format!("cannot read the max offset of {mq}: {e}"))?;
            starts.push(off);
        }
        let cfg = Arc::new(cfg);
        let mut me = Consumers {
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            seen: Arc::new(Mutex::new(SeqSet::new())),
            e2e: Arc::new(Recorder::new()),
            delivered: Arc::new(AtomicU64::new(0)),
            clients,
        };
        for (j, (mq, off)) in cfg.queues.iter().zip(starts).enumerate() {
            let ctx = QueueCtx {
                client: me.clients[j % n].clone(),
                mq: mq.clone(),
                cfg: cfg.clone(),
                stop: me.stop.clone(),
                seen: me.seen.clone(),
                e2e: me.e2e.clone(),
                delivered: me.delivered.clone(),
            };
            let t = std::thread::Builder::new()
                .name(format!("bench-consume-{}", mq.queue_id))
                .spawn(move || ctx.run(off))
                .map_err(|e| format!("cannot start a consumer thread: {e}"))?;
            me.threads.push(t);
        }
        Ok(me)
    }

    /// Wait until every number in `acked` was delivered, or nothing new came
    /// for `quiet`, or `max` passed. True if all arrived.
    pub fn wait_for(&self, acked: &SeqSet, quiet: Duration, max: Duration) -> bool {
        let start = Instant::now();
        let mut last = (self.delivered.load(Ordering::Acquire), Instant::now());
        loop {
            let missing = self
                .seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .missing_from(acked);
            if missing == 0 {
                return true;
            }
            let now = Instant::now();
            let d = self.delivered.load(Ordering::Acquire);
            if d != last.0 {
                last = (d, now);
            }
            if now - last.1 >= quiet || now - start >= max {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop polling (committing offsets) and join the threads.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        let deadline = Instant::now() + SUSPEND + Duration::from_secs(2);
        while Instant::now() < deadline && self.threads.iter().any(|t| !t.is_finished()) {
            std::thread::sleep(Duration::from_millis(10));
        }
        // A pull the broker still holds fails at once when its connection closes.
        for c in &self.clients {
            c.connection().close();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

struct QueueCtx {
    client: Arc<PullConsumer>,
    mq: MessageQueue,
    cfg: Arc<ConsumeConfig>,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<SeqSet>>,
    e2e: Arc<Recorder>,
    delivered: Arc<AtomicU64>,
}

impl QueueCtx {
    fn run(self, mut offset: i64) {
        while !self.stop.load(Ordering::Acquire) {
            match self.client.pull(&self.mq, offset, BATCH, Some(SUSPEND)) {
                Ok(r) => {
                    if r.status == PullStatus::Found {
                        for m in &r.messages {
                            self.deliver(m);
                        }
                    }
                    offset = r.next_begin_offset.max(offset);
                }
                Err(e) => {
                    if self.stop.load(Ordering::Acquire) {
                        break;
                    }
                    self.e2e.err(&error_name(&e), true);
                    if self.client.connection().is_closed() {
                        tracing::error!(queue = %self.mq, "consumer connection closed: {e}");
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        let _ = self
            .client
            .update_offset_oneway(&self.cfg.group, &self.mq, offset);
    }

    fn deliver(&self, m: &ReceivedMessage) {
        if m.property(RUN) != Some(self.cfg.run_id.as_str()) {
            return;
        }
        let (Some(seq), Some(sent)) = (
            m.property(SEQ).and_then(|s| s.parse::<u64>().ok()),
            m.property(SENT_US).and_then(|s| s.parse::<u64>().ok()),
        ) else {
            self.e2e.err("bad_bench_properties", true);
            return;
        };
        let done = Instant::now();
        let now_us = self.cfg.clock.wall_us(done);
        let from = if self.cfg.from_store {
            (m.store_timestamp.max(0) as u64) * 1000
        } else {
            sent
        };
        let measured = sent >= self.cfg.measure_from_wall_us.load(Ordering::Relaxed);
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(seq);
        self.e2e.ok(
            now_us.saturating_sub(from).max(1),
            m.body.len() as u64,
            measured,
            done,
        );
        self.delivered.fetch_add(1, Ordering::Release);
    }
}
