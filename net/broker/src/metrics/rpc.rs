//! `rocketmq_rpc_latency`: a histogram per (request code, response code) with RocketMQ's
//! bucket bounds in milliseconds. Recording is a read-locked look-up, one bucket search
//! over ten bounds and three relaxed adds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ringmq_engine::sync::{read, write};

/// Upper bounds in ms (RocketMQ's RemotingMetricsManager buckets); +Inf follows.
pub const BOUNDS_MS: [f64; 9] = [1.0, 3.0, 5.0, 7.0, 10.0, 100.0, 1000.0, 2000.0, 3000.0];

#[derive(Debug, Default)]
pub struct Hist {
    /// Non-cumulative counts; the last one is +Inf.
    buckets: [AtomicU64; BOUNDS_MS.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Hist {
    pub fn record(&self, d: Duration) {
        let ms = d.as_secs_f64() * 1000.0;
        let i = BOUNDS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(BOUNDS_MS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// (sum in ms, count, (upper bound, count) per bucket with +Inf last).
    pub fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut buckets: Vec<(f64, u64)> = BOUNDS_MS
            .iter()
            .zip(&self.buckets)
            .map(|(b, c)| (*b, c.load(Ordering::Relaxed)))
            .collect();
        buckets.push((
            f64::INFINITY,
            self.buckets[BOUNDS_MS.len()].load(Ordering::Relaxed),
        ));
        (
            self.sum_us.load(Ordering::Relaxed) as f64 / 1000.0,
            self.count.load(Ordering::Relaxed),
            buckets,
        )
    }
}

/// Histograms by (request code, response code).
#[derive(Debug, Default)]
pub struct RpcLatency {
    map: RwLock<HashMap<(i32, i32), Arc<Hist>>>,
}

impl RpcLatency {
    pub fn record(&self, request: i32, response: i32, d: Duration) {
        if let Some(h) = read(&self.map).get(&(request, response)) {
            return h.record(d);
        }
        let h = Arc::clone(write(&self.map).entry((request, response)).or_default());
        h.record(d);
    }

    /// ((request, response), histogram) sorted by codes.
    pub fn snapshot(&self) -> Vec<((i32, i32), Arc<Hist>)> {
        let mut v: Vec<_> = read(&self.map)
            .iter()
            .map(|(k, h)| (*k, Arc::clone(h)))
            .collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_lands_in_its_bucket() {
        let r = RpcLatency::default();
        r.record(10, 0, Duration::from_micros(500));
        r.record(10, 0, Duration::from_millis(50));
        r.record(10, 0, Duration::from_secs(5));
        let s = r.snapshot();
        let (sum, count, buckets) = s[0].1.snapshot();
        assert_eq!(count, 3);
        assert!((sum - 5050.5).abs() < 0.01, "{sum}");
        assert_eq!(buckets[0], (1.0, 1));
        assert_eq!(buckets[5], (100.0, 1));
        assert_eq!(buckets[9].1, 1);
    }
}
