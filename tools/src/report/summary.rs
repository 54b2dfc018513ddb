//! One saved load-generator run: the JSON summary `ringmq bench` writes beside its `.hgrm`
//! file and `ringmq compare` reads back. Latencies are microseconds.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub p9999: f64,
    pub max: f64,
    pub mean: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Label used in tables and chart legends, e.g. "SYNC_MASTER".
    pub name: String,
    /// The broker address the run targeted.
    pub broker: String,
    /// "open" (fixed offered rate) or "closed" (maximum throughput).
    pub mode: String,
    /// Offered rate in msgs/s (open loop), null for closed loop.
    pub offered_rate: Option<f64>,
    /// Measured interval, seconds (warm-up excluded).
    pub duration_s: f64,
    /// Successful sends in the measured interval.
    pub count: u64,
    pub throughput_msgs_per_s: f64,
    pub throughput_mb_per_s: f64,
    /// Send latency (open loop: from each send's scheduled time).
    pub latency_us: Percentiles,
    /// End-to-end latency (send to consume), when consumers ran.
    pub e2e_latency_us: Option<Percentiles>,
    /// Failed sends by response code name (or "io" / "timeout").
    pub errors: BTreeMap<String, u64>,
    /// Consumer accounting by sequence number, when consumers ran.
    pub lost: Option<u64>,
    pub duplicated: Option<u64>,
    /// The percentile-distribution file of `latency_us`, relative to this JSON file.
    pub hgrm: String,
    /// The load generator's own settings (connections, in flight, sizes, ...).
    pub settings: BTreeMap<String, String>,
}

impl RunSummary {
    pub fn load(path: &Path) -> Result<RunSummary, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a run summary: {e}", path.display()))
    }

    pub fn save(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).expect("summary serializes");
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}
