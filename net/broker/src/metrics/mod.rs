//! The broker's counters and their Prometheus endpoint.
//!
//! | file | owns | runs on |
//! | --- | --- | --- |
//! | `counters` | per-topic and per-(topic, group) message/byte counters, send failure counts | network cores (add), scrape thread (read) |
//! | `tps` | 10 s / 60 s / 600 s rates for GET_BROKER_RUNTIME_INFO | housekeeping thread (sample) |
//!
//! Counting on the hot path is a read-locked map look-up and relaxed atomic adds; all
//! sums, gauges (lag, storage, connections) and formatting happen when someone asks.

pub mod counters;
pub mod tps;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use ringmq_engine::record::MessageToStore;
use ringmq_engine::sync::{read, write};
use ringmq_engine::GetResult;

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
}

/// What one network turn's sends put, per topic, counted once the writer stored them.
pub struct PutTally(Vec<(Arc<Flow>, u64, u64)>);

impl PutTally {
    /// Adds the tallied messages and bytes to their topics (the store took them).
    pub fn commit(&self) {
        for (flow, messages, bytes) in &self.0 {
            flow.add(*messages, *bytes);
        }
    }
}

impl Metrics {
    /// Tallies `messages` per topic (runs of one topic share one look-up).
    pub fn tally(&self, messages: &[MessageToStore]) -> PutTally {
        let mut out: Vec<(Arc<Flow>, u64, u64)> = Vec::with_capacity(1);
        let mut last: Option<&str> = None;
        for m in messages {
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
        PutTally(out)
    }

    /// Counts a pull's answer (only FOUND carries messages).
    pub fn on_pulled(&self, topic: &str, group: &str, r: &GetResult) {
        if r.messages.is_empty() {
            return;
        }
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

    /// Keeps a one-second sample of `totals` for the TPS windows.
    pub fn sample(&self, totals: Totals) {
        self.tps.sample(Instant::now(), totals);
    }
}
