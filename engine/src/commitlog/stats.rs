//! What the writer counts for operators: flush latency, group-commit sizes and its
//! io_uring submissions. The writer thread adds with relaxed atomics (per write or flush,
//! never per message); the broker's `/metrics` reads them when scraped.

use std::sync::atomic::{AtomicU64, Ordering};

/// Flush latency bounds (microseconds): one durable write (SYNC_FLUSH) or one periodic
/// fdatasync (ASYNC_FLUSH), from submission to completion.
pub const FLUSH_BOUNDS_US: &[u64] = &[
    50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 50_000, 100_000, 1_000_000,
];
/// Group-commit size bounds: appends answered by one durable step.
pub const BATCH_BOUNDS: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128, 256, 1024];

/// A histogram with fixed bounds; counts are per bucket (not cumulative), +Inf last.
#[derive(Debug)]
pub struct Hist {
    bounds: &'static [u64],
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
}

impl Hist {
    pub fn new(bounds: &'static [u64]) -> Self {
        Hist {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    pub fn record(&self, v: u64) {
        let i = self
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.bounds.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(v, Ordering::Relaxed);
    }

    /// (sum, count, (upper bound, count) per bucket with +Inf last).
    pub fn snapshot(&self) -> (u64, u64, Vec<(f64, u64)>) {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let buckets = self
            .bounds
            .iter()
            .map(|b| *b as f64)
            .chain([f64::INFINITY])
            .zip(counts.iter().copied())
            .collect();
        (
            self.sum.load(Ordering::Relaxed),
            counts.iter().sum(),
            buckets,
        )
    }
}

#[derive(Debug)]
pub struct WriterStats {
    /// Durable writes (SYNC_FLUSH) and fdatasyncs (ASYNC_FLUSH), submission to completion.
    pub flush_us: Hist,
    /// Appends answered by one durable step (SYNC_FLUSH's group commit).
    pub group_commit: Hist,
    /// io_uring_enter calls of the writer's ring.
    pub uring_enters: AtomicU64,
    /// Operations the writer queued to its ring (writes, fdatasyncs, wake-up reads).
    pub uring_sqes: AtomicU64,
}

impl Default for WriterStats {
    fn default() -> Self {
        WriterStats {
            flush_us: Hist::new(FLUSH_BOUNDS_US),
            group_commit: Hist::new(BATCH_BOUNDS),
            uring_enters: AtomicU64::new(0),
            uring_sqes: AtomicU64::new(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_their_buckets() {
        let h = Hist::new(BATCH_BOUNDS);
        for v in [1, 3, 3, 5000] {
            h.record(v);
        }
        let (sum, count, buckets) = h.snapshot();
        assert_eq!((sum, count), (5007, 4));
        assert_eq!(buckets[0], (1.0, 1));
        assert_eq!(buckets[2], (4.0, 2));
        assert_eq!(buckets.last().unwrap().1, 1);
    }
}
