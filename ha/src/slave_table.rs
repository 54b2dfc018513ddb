//! The master's table of connected slaves and their acknowledged offsets, and waits on
//! those acks (SYNC_MASTER). Written by the per-slave reader threads (`master`), read and
//! waited on from any thread (net cores answering producers, admin).
//!
//! Waiters are the engine's `OffsetWaiters`, as for the CommitLog's own offsets: each
//! report releases the whole prefix it covers in one pass; callback waiters expire against
//! their own deadlines in one sweep per tick.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ringmq_engine::waiters::OffsetWaiters;

/// One connected slave, as last seen.
#[derive(Debug, Clone)]
pub struct SlaveInfo {
    /// Connection id, unique for the master's lifetime.
    pub id: u64,
    pub addr: SocketAddr,
    /// The slave's last reported log end (`acked_end`); None before its first report.
    pub acked_end: Option<i64>,
    pub connected_at: Instant,
    pub last_report: Option<Instant>,
}

/// Called with true when released by an ack, false at its deadline or on stop.
pub type AckCallback = ringmq_engine::waiters::Callback;

pub struct SlaveTable {
    slaves: Mutex<BTreeMap<u64, SlaveInfo>>,
    next_id: AtomicU64,
    /// Highest offset any slave ever acknowledged (RocketMQ's `push2SlaveMaxOffset`).
    high: AtomicI64,
    waiters: OffsetWaiters,
    stopped: AtomicBool,
}

impl Default for SlaveTable {
    fn default() -> Self {
        Self::new()
    }
}

impl SlaveTable {
    pub fn new() -> Self {
        SlaveTable {
            slaves: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            high: AtomicI64::new(0),
            waiters: OffsetWaiters::default(),
            stopped: AtomicBool::new(false),
        }
    }

    /// Slaves connected now (RocketMQ's `connectionCount`).
    pub fn connected_slaves(&self) -> usize {
        self.lock().len()
    }

    /// The highest log end reported by a slave connected now; None if no connected
    /// slave has reported yet.
    pub fn best_acked(&self) -> Option<i64> {
        self.lock().values().filter_map(|s| s.acked_end).max()
    }

    /// The highest offset any slave ever acknowledged (`push2SlaveMaxOffset`); what
    /// [`SlaveTable::wait_acked`] waits on.
    pub fn acked_high(&self) -> i64 {
        self.high.load(Ordering::Acquire)
    }

    /// A snapshot of the connected slaves, by connection id.
    pub fn slaves(&self) -> Vec<SlaveInfo> {
        self.lock().values().cloned().collect()
    }

    /// Blocks until some slave has acknowledged `offset` (its reported log end reached
    /// it), the table stops, or `timeout` passes. Returns whether it was acknowledged.
    pub fn wait_acked(&self, offset: i64, timeout: Duration) -> bool {
        self.waiters.wait(offset, timeout, || {
            self.acked_high() >= offset || self.stopped.load(Ordering::Acquire)
        });
        self.acked_high() >= offset
    }

    /// Wakes every waiter; later waits return at once (master shutdown).
    /// Calls `done(true)` once some slave has acked `offset`, or `done(false)` at
    /// `deadline` (checked by [`SlaveTable::expire`]) or on stop. Waiters sit in offset
    /// order: each ack releases the prefix it covers in one pass.
    pub fn on_acked(&self, offset: i64, deadline: Instant, done: AckCallback) {
        if self.stopped.load(Ordering::Acquire) && self.acked_high() < offset {
            return done(false);
        }
        self.waiters
            .on_reached(offset, deadline, done, || self.acked_high());
    }

    /// Fails every callback waiter whose own deadline has passed (one sweep per tick).
    pub fn expire(&self, now: Instant) {
        self.waiters.expire(now);
    }

    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.waiters.release_all();
    }

    /// A fresh connection id, unique for the table's lifetime; [`Self::register`] it once
    /// the connection may report.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn register(&self, id: u64, addr: SocketAddr) {
        self.lock().insert(
            id,
            SlaveInfo {
                id,
                addr,
                acked_end: None,
                connected_at: Instant::now(),
                last_report: None,
            },
        );
    }

    pub(crate) fn unregister(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Records a report from slave `id` and releases the waiters it covers.
    pub(crate) fn report(&self, id: u64, offset: i64) {
        if let Some(s) = self.lock().get_mut(&id) {
            s.acked_end = Some(offset);
            s.last_report = Some(Instant::now());
        }
        let prev = self.high.fetch_max(offset, Ordering::AcqRel);
        if offset > prev && !self.waiters.is_empty() {
            self.waiters.release_upto(offset);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, SlaveInfo>> {
        self.slaves.lock().expect("slave table lock")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_report_releases_the_prefix_it_covers() {
        let t = Arc::new(SlaveTable::new());
        let id = t.next_id();
        t.register(id, "127.0.0.1:1".parse().unwrap());
        let handles: Vec<_> = [10, 20, 30]
            .into_iter()
            .map(|x| {
                let t = t.clone();
                std::thread::spawn(move || t.wait_acked(x, Duration::from_secs(10)))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        t.report(id, 20);
        let mut handles = handles.into_iter();
        assert!(handles.next().unwrap().join().unwrap());
        assert!(handles.next().unwrap().join().unwrap());
        assert_eq!(t.best_acked(), Some(20));
        t.stop();
        assert!(!handles.next().unwrap().join().unwrap());
    }
}
