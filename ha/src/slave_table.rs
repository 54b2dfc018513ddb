//! The master's table of connected slaves, each with its own acknowledged end, and waits
//! on the end a quorum of them holds (SYNC_MASTER). Written by the per-slave reader and
//! sender threads (`master`), read and waited on from any thread (net cores answering
//! producers, admin).
//!
//! What counts as an ack, per connection (item 1 of issue 13, "bounded by truth"):
//! - the first report is the slave's start request (spec 7.4), not an ack; nothing the
//!   connection reports counts before its sender has decided where streaming starts
//!   ([`SlaveTable::start`]). A first report the master then streams from (the slave
//!   already holds that prefix, as RocketMQ trusts it) counts as the first ack; a
//!   diverged slave's longer end never does, so a truncating slave's old end cannot
//!   release a waiter;
//! - every later report is clamped by the truth: a report beyond what the master has
//!   sent on this connection ([`SlaveTable::sent`], itself never past the master's
//!   process-safe end) is a protocol error ([`ReportError`]) and the caller drops the
//!   connection; the one exception is a repeat of the first report, which a slave may
//!   send before it read the master's first frame;
//! - the acked end is the last report, not a running maximum, and it leaves the table
//!   with its connection.
//!
//! A send is released when the [`Quorum`] holds its end: `acks` distinct connected
//! slaves acked it (RocketMQ 5's `inSyncReplicas - 1`), and with `all_in_sync` also every
//! slave within `max_gap` of the master's end (`allAckInSyncStateSet`). The quorum's end
//! can fall (a slave leaves); waiters released before stay released.
//!
//! Waiters are the engine's `OffsetWaiters`, as for the CommitLog's own offsets: each
//! rise of the quorum's end releases the prefix it covers in one pass; callback waiters
//! expire against their own deadlines in one sweep per tick.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ringmq_engine::sync::lock;
use ringmq_engine::waiters::OffsetWaiters;

/// One connected slave, as last seen.
#[derive(Debug, Clone)]
pub struct SlaveInfo {
    /// Connection id, unique for the master's lifetime.
    pub id: u64,
    pub addr: SocketAddr,
    /// The slave's acknowledged end (`acked_end`), never past `sent_end`; None before
    /// its first ack (see the module doc).
    pub acked_end: Option<i64>,
    /// The end of what the master has sent (or is sending) on this connection; None
    /// until the sender decided where streaming starts.
    pub sent_end: Option<i64>,
    /// The connection's first report: where the slave asked to start.
    pub first_report: Option<i64>,
    pub connected_at: Instant,
    pub last_report: Option<Instant>,
}

/// How many slaves must hold a send before it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quorum {
    /// Distinct connected slaves that must have acked the end: `inSyncReplicas - 1`.
    pub acks: usize,
    /// `allAckInSyncStateSet`: also every slave in sync (within `max_gap` of the
    /// master's end) must have acked it.
    pub all_in_sync: bool,
    /// `haMaxGapNotInSync`: how far behind the master's end a slave may be and still
    /// count as in sync.
    pub max_gap: u64,
}

impl Default for Quorum {
    fn default() -> Self {
        Quorum {
            acks: 1,
            all_in_sync: false,
            max_gap: 256 << 20,
        }
    }
}

/// A report the master refuses; the caller drops the connection and logs this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportError {
    /// The slave claims bytes the master never sent it (a bogus peer: RocketMQ#3015).
    BeyondSent { reported: i64, sent_end: i64 },
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportError::BeyondSent { reported, sent_end } => write!(
                f,
                "protocol error: the slave reported offset {reported}, beyond the {sent_end} \
                 the master has sent it"
            ),
        }
    }
}

impl std::error::Error for ReportError {}

/// Called with true when released by an ack, false at its deadline or on stop.
pub type AckCallback = ringmq_engine::waiters::Callback;

/// Where the master's log ends now (for the in-sync test).
type LogEnd = Box<dyn Fn() -> i64 + Send + Sync>;

pub struct SlaveTable {
    slaves: Mutex<BTreeMap<u64, SlaveInfo>>,
    next_id: AtomicU64,
    quorum: Mutex<Quorum>,
    log_end: Option<LogEnd>,
    /// The end the quorum holds now; -1 when it holds nothing. Recomputed on every
    /// change of the table.
    replicated: AtomicI64,
    waiters: OffsetWaiters,
    stopped: AtomicBool,
}

impl Default for SlaveTable {
    fn default() -> Self {
        Self::new()
    }
}

impl SlaveTable {
    /// A table that counts every slave with an ack as in sync (no master log to compare).
    pub fn new() -> Self {
        SlaveTable {
            slaves: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            quorum: Mutex::new(Quorum::default()),
            log_end: None,
            replicated: AtomicI64::new(-1),
            waiters: OffsetWaiters::default(),
            stopped: AtomicBool::new(false),
        }
    }

    /// A table whose in-sync test compares acks with `log_end()`, the master's end.
    pub fn with_log_end(log_end: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        SlaveTable {
            log_end: Some(Box::new(log_end)),
            ..Self::new()
        }
    }

    /// Sets how many slaves must hold a send (SYNC_MASTER start-up).
    pub fn set_quorum(&self, q: Quorum) {
        *lock(&self.quorum) = q;
        self.recompute();
    }

    pub fn quorum(&self) -> Quorum {
        *lock(&self.quorum)
    }

    /// Slaves connected now (RocketMQ's `connectionCount`).
    pub fn connected_slaves(&self) -> usize {
        self.lock().len()
    }

    /// The highest acked end of a slave connected now; None if none has acked yet.
    pub fn best_acked(&self) -> Option<i64> {
        self.lock().values().filter_map(|s| s.acked_end).max()
    }

    /// Connected slaves whose acked end is within `max_gap` of the master's end.
    pub fn in_sync_slaves(&self) -> usize {
        let max_gap = self.quorum().max_gap;
        let end = self.log_end.as_ref().map(|f| f());
        self.lock()
            .values()
            .filter(|s| in_sync(s, end, max_gap))
            .count()
    }

    /// The end the quorum of connected slaves holds now (-1: none); what
    /// [`SlaveTable::wait_acked`] waits on. It falls when a slave leaves.
    pub fn replicated_end(&self) -> i64 {
        self.replicated.load(Ordering::Acquire)
    }

    /// A snapshot of the connected slaves, by connection id.
    pub fn slaves(&self) -> Vec<SlaveInfo> {
        self.lock().values().cloned().collect()
    }

    /// Blocks until the quorum holds `offset`, the table stops, or `timeout` passes.
    /// Returns whether it is held.
    pub fn wait_acked(&self, offset: i64, timeout: Duration) -> bool {
        self.waiters.wait(offset, timeout, || {
            self.replicated_end() >= offset || self.stopped.load(Ordering::Acquire)
        });
        self.replicated_end() >= offset
    }

    /// Calls `done(true)` once the quorum holds `offset`, or `done(false)` at `deadline`
    /// (checked by [`SlaveTable::expire`]) or on stop. Waiters sit in offset order: each
    /// rise releases the prefix it covers in one pass.
    pub fn on_acked(&self, offset: i64, deadline: Instant, done: AckCallback) {
        if self.stopped.load(Ordering::Acquire) && self.replicated_end() < offset {
            return done(false);
        }
        self.waiters
            .on_reached(offset, deadline, done, || self.replicated_end());
    }

    /// Fails every callback waiter whose own deadline has passed (one sweep per tick).
    pub fn expire(&self, now: Instant) {
        self.waiters.expire(now);
    }

    /// Wakes every waiter; later waits return at once (master shutdown).
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
                sent_end: None,
                first_report: None,
                connected_at: Instant::now(),
                last_report: None,
            },
        );
    }

    /// The connection ended: its acks no longer count.
    pub(crate) fn unregister(&self, id: u64) {
        self.lock().remove(&id);
        self.recompute();
    }

    /// The sender decided to stream to slave `id` from `at`. If that is where the slave
    /// asked to start, it holds the prefix: its first ack is `at`.
    pub(crate) fn start(&self, id: u64, at: i64) {
        let mut map = self.lock();
        let Some(s) = map.get_mut(&id) else { return };
        s.sent_end = Some(at);
        s.acked_end = (s.first_report == Some(at)).then_some(at);
        drop(map);
        self.recompute();
    }

    /// The sender is about to send slave `id` the bytes up to `end` (set before the send,
    /// so a fast slave's report never overtakes it).
    pub(crate) fn sent(&self, id: u64, end: i64) {
        if let Some(s) = self.lock().get_mut(&id) {
            debug_assert!(
                s.sent_end.is_some_and(|e| e <= end),
                "sent end goes forward"
            );
            s.sent_end = Some(end);
        }
    }

    /// Records a report from slave `id` and releases the waiters the quorum now covers.
    /// Err: the report is a protocol error; the caller drops the connection.
    pub(crate) fn report(&self, id: u64, offset: i64) -> Result<(), ReportError> {
        let mut map = self.lock();
        let Some(s) = map.get_mut(&id) else {
            return Ok(());
        };
        s.last_report = Some(Instant::now());
        let first = *s.first_report.get_or_insert(offset);
        let Some(sent_end) = s.sent_end else {
            // Before the start is decided a report is a start request, not an ack.
            return Ok(());
        };
        if offset > sent_end {
            if offset == first {
                // A repeat of the start request sent before the slave read our first
                // frame (a diverged slave about to truncate): not an ack.
                return Ok(());
            }
            return Err(ReportError::BeyondSent {
                reported: offset,
                sent_end,
            });
        }
        s.acked_end = Some(offset);
        drop(map);
        self.recompute();
        Ok(())
    }

    /// Recomputes the quorum's end and releases the waiters a rise covers.
    fn recompute(&self) {
        let q = self.quorum();
        let log_end = self.log_end.as_ref().map(|f| f());
        let end = quorum_end(self.lock().values(), q, log_end);
        let prev = self.replicated.swap(end, Ordering::AcqRel);
        if end > prev && !self.waiters.is_empty() {
            self.waiters.release_upto(end);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, SlaveInfo>> {
        lock(&self.slaves)
    }
}

fn in_sync(s: &SlaveInfo, log_end: Option<i64>, max_gap: u64) -> bool {
    match (s.acked_end, log_end) {
        (Some(a), Some(end)) => end.saturating_sub(a) as u64 <= max_gap,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// The highest end `q` holds over `slaves`: the `q.acks`-th highest acked end, lowered to
/// the lowest in-sync ack when every in-sync slave must ack; -1 when it holds nothing.
fn quorum_end<'a>(
    slaves: impl Iterator<Item = &'a SlaveInfo>,
    q: Quorum,
    log_end: Option<i64>,
) -> i64 {
    let slaves: Vec<&SlaveInfo> = slaves.collect();
    let mut acks: Vec<i64> = slaves.iter().filter_map(|s| s.acked_end).collect();
    acks.sort_unstable_by(|a, b| b.cmp(a));
    let need = q.acks.max(1);
    let Some(&end) = acks.get(need - 1) else {
        return -1;
    };
    if !q.all_in_sync {
        return end;
    }
    slaves
        .iter()
        .filter(|s| in_sync(s, log_end, q.max_gap))
        .filter_map(|s| s.acked_end)
        .fold(end, i64::min)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn table_with(n: usize, q: Quorum) -> (SlaveTable, Vec<u64>) {
        let t = SlaveTable::new();
        t.set_quorum(q);
        let ids: Vec<u64> = (0..n)
            .map(|i| {
                let id = t.next_id();
                t.register(id, format!("127.0.0.1:{}", i + 1).parse().unwrap());
                t.report(id, 0).unwrap();
                t.start(id, 0);
                t.sent(id, 1 << 20);
                id
            })
            .collect();
        (t, ids)
    }

    #[test]
    fn a_report_releases_the_prefix_it_covers() {
        let (t, ids) = table_with(1, Quorum::default());
        let t = Arc::new(t);
        let handles: Vec<_> = [10, 20, 30]
            .into_iter()
            .map(|x| {
                let t = t.clone();
                std::thread::spawn(move || t.wait_acked(x, Duration::from_secs(10)))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        t.report(ids[0], 20).unwrap();
        let mut handles = handles.into_iter();
        assert!(handles.next().unwrap().join().unwrap());
        assert!(handles.next().unwrap().join().unwrap());
        assert_eq!(t.best_acked(), Some(20));
        t.stop();
        assert!(!handles.next().unwrap().join().unwrap());
    }

    #[test]
    fn acks_are_bounded_by_what_was_sent_and_leave_with_the_slave() {
        let t = SlaveTable::new();
        let id = t.next_id();
        t.register(id, "127.0.0.1:1".parse().unwrap());
        // Before the start is decided nothing counts, whatever is claimed.
        t.report(id, 1 << 62).unwrap();
        assert_eq!(t.replicated_end(), -1);
        // Diverged: the master streams from 100, below the slave's claim.
        t.start(id, 100);
        assert_eq!(t.replicated_end(), -1, "a diverged end is no ack");
        t.report(id, 1 << 62).unwrap(); // a repeat of the start request
        assert_eq!(t.replicated_end(), -1);
        assert_eq!(
            t.report(id, 101),
            Err(ReportError::BeyondSent {
                reported: 101,
                sent_end: 100
            })
        );
        t.sent(id, 200);
        t.report(id, 150).unwrap();
        assert_eq!(t.replicated_end(), 150);
        t.unregister(id);
        assert_eq!(t.replicated_end(), -1, "acks leave with the connection");
    }

    #[test]
    fn the_start_the_slave_asked_for_is_its_first_ack() {
        let t = SlaveTable::new();
        let id = t.next_id();
        t.register(id, "127.0.0.1:1".parse().unwrap());
        t.report(id, 500).unwrap();
        t.start(id, 500);
        assert_eq!(t.replicated_end(), 500);
    }

    #[test]
    fn n_of_m_and_all_in_sync() {
        let q = Quorum {
            acks: 2,
            ..Quorum::default()
        };
        let (t, ids) = table_with(3, q);
        t.report(ids[0], 300).unwrap();
        assert_eq!(t.replicated_end(), 0, "one ack of two");
        t.report(ids[1], 200).unwrap();
        assert_eq!(t.replicated_end(), 200);
        t.report(ids[2], 250).unwrap();
        assert_eq!(t.replicated_end(), 250, "the second-highest ack");
        t.set_quorum(Quorum {
            acks: 2,
            all_in_sync: true,
            ..q
        });
        assert_eq!(t.replicated_end(), 200, "every in-sync slave");
        t.unregister(ids[0]);
        t.unregister(ids[1]);
        assert_eq!(t.replicated_end(), -1, "too few slaves left");
    }
}
