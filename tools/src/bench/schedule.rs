//! The open-loop timetable.
//!
//! Send `i` is due at `start + i / rate`; connection `c` of `n` owns the sends
//! with `i % n == c`. Each send's latency is counted from its *due* time, not
//! from when it actually left, so a stalled broker (or a full in-flight window)
//! cannot hide its stall by slowing the generator down (coordinated omission).
//! A connection that falls behind sends its overdue messages at once.
//!
//! [`wait_until`] sleeps until ~100 us before the due time and spins the rest;
//! how late each send still left ("scheduling lag") is the generator's own
//! error, reported separately.

use std::time::{Duration, Instant};

/// Spin (rather than sleep) for the last this-much before a due time.
pub const SPIN: Duration = Duration::from_micros(100);

/// Due times of an open-loop run.
#[derive(Debug, Clone, Copy)]
pub struct Timetable {
    pub start: Instant,
    /// Messages per second, > 0.
    pub rate: f64,
}

impl Timetable {
    pub fn new(start: Instant, rate: f64) -> Self {
        assert!(rate > 0.0 && rate.is_finite(), "rate must be positive");
        Self { start, rate }
    }

    /// Offset of send `i` from the start.
    pub fn offset(&self, i: u64) -> Duration {
        Duration::from_nanos((i as f64 * 1e9 / self.rate) as u64)
    }

    /// Due time of send `i`.
    pub fn due(&self, i: u64) -> Instant {
        self.start + self.offset(i)
    }

    /// Number of sends due in the first `secs` seconds.
    pub fn sends_in(&self, secs: f64) -> u64 {
        (secs * self.rate).round().max(0.0) as u64
    }

    /// The send numbers connection `conn` of `conns` owns, below `total`.
    pub fn owned(conn: usize, conns: usize, total: u64) -> impl Iterator<Item = u64> {
        (conn as u64..total).step_by(conns.max(1))
    }
}

/// Block until `t`: sleep while more than [`SPIN`] remains, then spin.
pub fn wait_until(t: Instant) {
    loop {
        let now = Instant::now();
        if now >= t {
            return;
        }
        let left = t - now;
        if left > SPIN + Duration::from_micros(50) {
            std::thread::sleep(left - SPIN);
        } else {
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_and_ownership() {
        let start = Instant::now();
        let t = Timetable::new(start, 2000.0);
        assert_eq!(t.offset(0), Duration::ZERO);
        assert_eq!(t.offset(1), Duration::from_micros(500));
        assert_eq!(t.offset(2000), Duration::from_secs(1));
        assert_eq!(t.sends_in(1.5), 3000);
        let owned: Vec<u64> = Timetable::owned(1, 3, 10).collect();
        assert_eq!(owned, [1, 4, 7]);
        let all: u64 = (0..3)
            .map(|c| Timetable::owned(c, 3, 10).count() as u64)
            .sum();
        assert_eq!(all, 10);
    }

    #[test]
    fn wait_until_is_punctual() {
        let t = Instant::now() + Duration::from_millis(5);
        wait_until(t);
        let late = Instant::now() - t;
        assert!(late < Duration::from_millis(5), "late by {late:?}");
        // A past time returns at once.
        wait_until(Instant::now() - Duration::from_millis(1));
    }
}
