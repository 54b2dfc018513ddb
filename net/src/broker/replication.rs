//! What a SYNC_MASTER's send path asks of replication, as a trait so the broker does not
//! depend on the HA crate (which depends on this one for metadata sync). The HA master
//! implements it; the broker holds it once HA is up.

use std::time::Instant;

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
