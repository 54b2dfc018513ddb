//! SYNC_MASTER: a send is answered once its [`Quorum`] of slaves holds it
//! (`inSyncReplicas - 1` distinct connected slaves, each with its own acked end; with
//! `allAckInSyncStateSet` every in-sync slave), with FLUSH_SLAVE_TIMEOUT at the send's
//! deadline (`syncFlushTimeout` from its arrival: the caller passes it) and
//! SLAVE_NOT_AVAILABLE at once when fewer slaves than the quorum needs are in sync (not
//! connected, or more than `haMaxGapNotInSync` behind). Waiters are the slave table's, in
//! offset order; a sweeper thread checks each waiter's own deadline every tick.

use ringmq_engine::sync::lock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::slave_table::{Quorum, SlaveTable};

/// How a replication wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaOutcome {
    /// No replication wait applies (not a SYNC_MASTER, or the message said WAIT=false).
    NotRequired,
    /// Enough slaves hold the data.
    Replicated,
    /// No slave in sync (none connected, or the best one too far behind): SLAVE_NOT_AVAILABLE.
    NotAvailable,
    /// The deadline passed first: FLUSH_SLAVE_TIMEOUT.
    Timeout,
}

/// What a SYNC_MASTER's send path asks of replication. [`SyncReplication`] implements it;
/// the broker holds it as a trait object once HA is up (tests can give it another).
pub trait Replication: Send + Sync {
    /// Calls `done` exactly once: when the log up to `end` is held by enough slaves, at
    /// once with `NotAvailable` when no slave is in sync, or with `Timeout` at `deadline`.
    /// `done` may run on any thread and must be short.
    fn wait_replicated(
        &self,
        end: i64,
        deadline: Instant,
        done: Box<dyn FnOnce(ReplicaOutcome) + Send>,
    );
}

/// How often deadlines are checked: the granularity of FLUSH_SLAVE_TIMEOUT.
const TICK: Duration = Duration::from_millis(5);

pub struct SyncReplication {
    table: Arc<SlaveTable>,
    stop: Arc<AtomicBool>,
    sweeper: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl SyncReplication {
    /// Makes `table` release sends by `quorum` and starts the deadline sweeper.
    pub fn start(table: Arc<SlaveTable>, quorum: Quorum) -> Arc<Self> {
        table.set_quorum(quorum);
        let stop = Arc::new(AtomicBool::new(false));
        let sweeper = {
            let (table, stop) = (table.clone(), stop.clone());
            std::thread::Builder::new()
                .name("ringmq-ha-sweep".into())
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        std::thread::sleep(TICK);
                        table.expire(Instant::now());
                    }
                })
                .expect("spawn HA deadline sweeper")
        };
        Arc::new(SyncReplication {
            table,
            stop,
            sweeper: std::sync::Mutex::new(Some(sweeper)),
        })
    }

    /// Whether enough connected slaves are close enough to count as in sync.
    fn slaves_in_sync(&self) -> bool {
        self.table.in_sync_slaves() >= self.table.quorum().acks.max(1)
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = lock(&self.sweeper).take() {
            let _ = t.join();
        }
        self.table
            .expire(Instant::now() + Duration::from_secs(3600 * 24 * 365));
    }
}

impl Replication for SyncReplication {
    fn wait_replicated(
        &self,
        end: i64,
        deadline: Instant,
        done: Box<dyn FnOnce(ReplicaOutcome) + Send>,
    ) {
        if !self.slaves_in_sync() {
            return done(ReplicaOutcome::NotAvailable);
        }
        self.table.on_acked(
            end,
            deadline,
            Box::new(move |acked| {
                done(if acked {
                    ReplicaOutcome::Replicated
                } else {
                    ReplicaOutcome::Timeout
                })
            }),
        );
    }
}

impl Drop for SyncReplication {
    fn drop(&mut self) {
        self.stop();
    }
}
