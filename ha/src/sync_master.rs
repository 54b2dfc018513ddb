//! SYNC_MASTER: a send is answered once a slave holds it (`inSyncReplicas` = 2: the master
//! and one slave), with FLUSH_SLAVE_TIMEOUT past `syncFlushTimeout` and
//! SLAVE_NOT_AVAILABLE at once when no slave is in sync (none connected, or the best one
//! more than `haMaxGapNotInSync` behind). Waiters are the slave table's, in offset order;
//! a sweeper thread checks each waiter's own deadline every tick.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ringmq_engine::MessageStore;

use crate::slave_table::SlaveTable;

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
    store: Arc<MessageStore>,
    max_gap: u64,
    stop: Arc<AtomicBool>,
    sweeper: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl SyncReplication {
    pub fn start(table: Arc<SlaveTable>, store: Arc<MessageStore>, max_gap: u64) -> Arc<Self> {
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
            store,
            max_gap,
            stop,
            sweeper: std::sync::Mutex::new(Some(sweeper)),
        })
    }

    /// Whether some connected slave is close enough to count as in sync.
    fn slave_in_sync(&self) -> bool {
        let Some(best) = self.table.best_acked() else {
            return false;
        };
        let end = self.store.commitlog().max_offset();
        end.saturating_sub(best) as u64 <= self.max_gap
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.sweeper.lock().expect("sweeper lock").take() {
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
        if !self.slave_in_sync() {
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
