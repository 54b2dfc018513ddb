//! Appends stored the way a send is (spec §3.1, ARCHITECTURE "Offsets the engine
//! publishes"): the outcome is reported once the writer has stored the messages and,
//! when the caller waits, once they are durable under SYNC_FLUSH (else
//! FLUSH_DISK_TIMEOUT) and held by enough slaves under SYNC_MASTER (else
//! FLUSH_SLAVE_TIMEOUT / SLAVE_NOT_AVAILABLE). Sends, send-backs and the schedule
//! service's re-puts all go through [`put_like_send`].
//!
//! Runs on: the caller's thread; `done` runs on the writer thread or the replication
//! thread and must be short.

use std::sync::atomic::Ordering;
use std::time::Instant;

use ringmq_engine::commitlog::{AppendOutcome, AppendRequest, PutStatus};
use ringmq_engine::record::MessageToStore;
use ringmq_ha::ReplicaOutcome;

use super::Broker;

/// What a caller is told: the store's outcome and how the wait for slaves ended.
pub type PutDone = Box<dyn FnOnce(AppendOutcome, ReplicaOutcome) + Send>;

/// Appends `messages`. With `wait`, `done` runs after the flush mode's and the replication
/// role's conditions are met or timed out; without, as soon as the writer stored them.
///
/// One deadline, taken here (on arrival), bounds the whole wait: the local flush and then
/// replication share `syncFlushTimeout`, so a slow disk leaves the slaves less time
/// rather than doubling the wait.
pub fn put_like_send(b: &Broker, messages: Vec<MessageToStore>, wait: bool, done: PutDone) {
    let replication = if wait {
        b.replication()
            .map(|r| (r.clone(), std::sync::Arc::clone(&b.metrics)))
    } else {
        None
    };
    let deadline = Instant::now() + b.cfg.sync_flush_timeout;
    b.store.put(AppendRequest {
        messages,
        wait_durable: wait,
        done: Box::new(move |outcome| {
            let stored = matches!(outcome.status, PutStatus::Ok | PutStatus::FlushDiskTimeout);
            match replication {
                Some((r, metrics)) if stored => {
                    let end = outcome.end_offset;
                    let waiting = Instant::now();
                    metrics.replica_waiters.fetch_add(1, Ordering::Relaxed);
                    r.wait_replicated(
                        end,
                        deadline,
                        Box::new(move |replica| {
                            metrics.replica_waiters.fetch_sub(1, Ordering::Relaxed);
                            metrics.replica_wait.record(waiting.elapsed());
                            done(outcome, replica)
                        }),
                    );
                }
                _ => done(outcome, ReplicaOutcome::NotRequired),
            }
        }),
    });
}
