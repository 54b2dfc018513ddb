//! The broker's counters and their Prometheus endpoint.
//!
//! | file | owns | runs on |
//! | --- | --- | --- |
//! | `counters` | per-topic and per-(topic, group) message/byte counters, send failure counts | network cores (add), scrape thread (read) |
//! | `tps` | 10 s / 60 s / 600 s rates for GET_BROKER_RUNTIME_INFO | housekeeping thread (sample) |
//! | `rpc` | `rocketmq_rpc_latency` histograms by request and response code | network cores, writer callback |
//! | `inflight` | pull offsets per group and queue, for `rocketmq_consumer_inflight_messages` | network cores (pull), scrape thread |
//! | `prom` | the `/metrics` document (RocketMQ 5 names and labels, `ringmq_` extras) | scrape thread |
//! | `exporter` | the HTTP endpoint, on its own thread | `ringmq-metrics` thread |
//!
//! Counting on the hot path is a read-locked map look-up and relaxed atomic adds; all
//! sums, gauges (lag, storage, connections) and formatting happen when someone asks.

pub mod counters;
pub mod exporter;
pub mod inflight;
pub mod prom;
pub mod rpc;
pub mod tps;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Instant;

use ringmq_engine::record::MessageToStore;
use ringmq_engine::sync::{lock, read, write};
use ringmq_engine::GetResult;
use ringmq_ha::{SlaveInfo, SlaveTable};
use ringmq_remoting::codes::request_code;

use counters::{Flow, FlowMap, SendFailures};
use tps::{Totals, TpsSampler};

/// Every counter the broker keeps for metrics and runtime info.
#[derive(Default)]
pub struct Metrics {
    /// Messages and body bytes stored, per topic.
    pub topics_in: FlowMap<String>,
    /// Messages and stored bytes pulled, per topic then consumer group.
    out: RwLock<std::collections::HashMap<String, Arc<FlowMap<String>>>>,
    /// Bytes pulled in total (getTransferedTps counts messages; this is for throughput).
    pub got_bytes: AtomicU64,
    pub send_failures: SendFailures,
    pub tps: TpsSampler,
    pub rpc: Arc<rpc::RpcLatency>,
    /// Body sizes of stored messages (`rocketmq_message_size`).
    pub message_size: Arc<SizeHist>,
    /// Messages sent back into `%DLQ%<group>`, per group.
    pub dlq: FlowMap<String>,
    /// How far each group's pulls reached, per queue (in-flight messages).
    pub pull_offsets: inflight::PullOffsets,
    /// SYNC_MASTER sends waiting for their slaves now.
    pub replica_waiters: std::sync::atomic::AtomicI64,
    /// How long SYNC_MASTER sends waited for their slaves (after the local store).
    pub replica_wait: rpc::Hist,
    /// A master's slaves (set by the node once HA is up), for per-slave lag.
    slave_table: OnceLock<Arc<SlaveTable>>,
    exporter: Mutex<Option<exporter::Exporter>>,
}

/// What one network turn's sends put, per topic, counted once the writer stored them;
/// also when the turn was handed to the writer, for the send latency.
pub struct PutTally {
    flows: Vec<(Arc<Flow>, u64, u64)>,
    sizes: [u64; SIZE_BOUNDS.len() + 1],
    requests: usize,
    started: Instant,
    rpc: Arc<rpc::RpcLatency>,
    size_hist: Arc<SizeHist>,
}

/// RocketMQ's `rocketmq_message_size` bucket bounds (bytes); +Inf follows.
pub const SIZE_BOUNDS: [u64; 6] = [1 << 10, 4 << 10, 512 << 10, 1 << 20, 2 << 20, 4 << 20];

/// Non-cumulative message counts per size bucket, and the bytes in all.
#[derive(Debug, Default)]
pub struct SizeHist {
    pub buckets: [AtomicU64; SIZE_BOUNDS.len() + 1],
    pub sum: AtomicU64,
}

fn size_bucket(len: usize) -> usize {
    SIZE_BOUNDS
        .iter()
        .position(|b| len as u64 <= *b)
        .unwrap_or(SIZE_BOUNDS.len())
}

impl PutTally {
    /// Adds the tallied messages and bytes to their topics and books each request's
    /// hand-off-to-stored latency (the store took them).
    pub fn commit(&self) {
        let mut total = 0;
        for (flow, messages, bytes) in &self.flows {
            flow.add(*messages, *bytes);
            total += bytes;
        }
        for (b, n) in self.size_hist.buckets.iter().zip(self.sizes) {
            if n > 0 {
                b.fetch_add(n, Ordering::Relaxed);
            }
        }
        self.size_hist.sum.fetch_add(total, Ordering::Relaxed);
        let took = self.started.elapsed();
        for _ in 0..self.requests {
            self.rpc.record(request_code::SEND_MESSAGE_V2, 0, took);
        }
    }
}

impl Metrics {
    /// Tallies `messages` of `requests` send requests per topic (runs of one topic share
    /// one look-up).
    pub fn tally(&self, messages: &[MessageToStore], requests: usize) -> PutTally {
        let mut out: Vec<(Arc<Flow>, u64, u64)> = Vec::with_capacity(1);
        let mut last: Option<&str> = None;
        let mut sizes = [0u64; SIZE_BOUNDS.len() + 1];
        for m in messages {
            sizes[size_bucket(m.body.len())] += 1;
            if last != Some(m.topic.as_str()) {
                out.push((
                    self.topics_in.get(m.topic.as_str(), || m.topic.clone()),
                    0,
                    0,
                ));
                last = Some(m.topic.as_str());
            }
            let t = out.last_mut().expect("pushed above");
            t.1 += 1;
            t.2 += m.body.len() as u64;
        }
        PutTally {
            flows: out,
            sizes,
            requests,
            started: Instant::now(),
            rpc: Arc::clone(&self.rpc),
            size_hist: Arc::clone(&self.message_size),
        }
    }

    /// Counts a pull's answer (only FOUND carries messages) and raises the group's pull
    /// offset of the queue.
    pub fn on_pulled(&self, topic: &str, group: &str, queue_id: i32, r: &GetResult) {
        if r.messages.is_empty() {
            return;
        }
        self.pull_offsets
            .record(topic, group, queue_id, r.next_begin_offset);
        let (n, bytes) = (r.messages.len() as u64, r.total_bytes as u64);
        self.got_bytes.fetch_add(bytes, Ordering::Relaxed);
        let groups = read(&self.out).get(topic).cloned();
        let groups = match groups {
            Some(g) => g,
            None => Arc::clone(write(&self.out).entry(topic.to_string()).or_default()),
        };
        groups.add(group, || group.to_string(), n, bytes);
    }

    /// (topic, group, messages, bytes) pulled, sorted.
    pub fn out_snapshot(&self) -> Vec<(String, String, u64, u64)> {
        let topics: Vec<(String, Arc<FlowMap<String>>)> = read(&self.out)
            .iter()
            .map(|(t, g)| (t.clone(), Arc::clone(g)))
            .collect();
        let mut v: Vec<_> = topics
            .into_iter()
            .flat_map(|(t, g)| {
                g.snapshot()
                    .into_iter()
                    .map(move |(group, m, b)| (t.clone(), group, m, b))
            })
            .collect();
        v.sort();
        v
    }

    /// Gives the metrics a master's slave table (per-slave replication lag).
    pub fn set_slave_table(&self, table: Arc<SlaveTable>) {
        let _ = self.slave_table.set(table);
    }

    pub fn slaves(&self) -> Vec<SlaveInfo> {
        self.slave_table
            .get()
            .map(|t| t.slaves())
            .unwrap_or_default()
    }

    /// Starts `/metrics` when `metricsExporterType=PROM` (once; later calls do nothing).
    pub fn start_exporter(&self, b: &Arc<crate::Broker>) -> std::io::Result<()> {
        if !b.cfg.metrics_exporter_type.eq_ignore_ascii_case("PROM") {
            return Ok(());
        }
        let mut slot = lock(&self.exporter);
        if slot.is_none() {
            *slot = Some(exporter::Exporter::start(b)?);
        }
        Ok(())
    }

    /// Where `/metrics` is served, if it is.
    pub fn exporter_addr(&self) -> Option<std::net::SocketAddr> {
        lock(&self.exporter).as_ref().map(exporter::Exporter::addr)
    }

    /// Stops `/metrics` (broker shutdown); joins its thread.
    pub fn stop_exporter(&self) {
        let e = lock(&self.exporter).take();
        drop(e);
    }

    /// Keeps a one-second sample of `totals` for the TPS windows and the day marks.
    pub fn sample(&self, totals: Totals) {
        self.tps.sample(Instant::now(), totals);
        self.tps
            .mark_day(ringmq_engine::clock::now_millis(), totals);
    }
}
