//! Running the listener (RocketMQ's `ConsumeMessageConcurrentlyService` and
//! `ConsumeMessageOrderlyService`).
//!
//! Concurrent: pulled messages are cut into batches of `consume_batch_size` and queued
//! to a pool of `consume_threads` workers. After a batch, its messages leave the process
//! queue and the committable offset advances. A failed batch (ReconsumeLater or a panic)
//! is handed back with CONSUMER_SEND_MSG_BACK in clustering mode (the broker redelivers it
//! through the retry topic after the next delay level, or moves it to the DLQ); a message
//! the broker does not take back stays held and is consumed again here 5 s later.
//! Broadcasting failures are logged and dropped, as in RocketMQ. Results of a batch whose
//! queue was released meanwhile are ignored (its next owner consumes it again).
//!
//! Orderly: one thread per held queue takes batches in offset order and runs the listener
//! holding the queue's consume lock, only while the broker lock is ours and fresh. A
//! suspended batch is given again after `suspend_current_queue`; past
//! `max_reconsume_times` it is sent to the DLQ and consumption moves on.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::listener::{ConcurrentFn, ConsumeStatus, Listener, OrderlyStatus};
use super::options::MessageModel;
use super::process_queue::ProcessQueue;
use super::Shared;
use crate::connection::Result;
use crate::consumer::ReceivedMessage;
use crate::sync::lock;

/// A failed message the broker did not take back is consumed again after this.
const LOCAL_RETRY_DELAY: Duration = Duration::from_secs(5);

type Task = (Arc<ProcessQueue>, Vec<ReceivedMessage>);

/// Messages to consume again locally at the given time.
pub type LocalRetry = (Instant, Arc<ProcessQueue>, Vec<ReceivedMessage>);

/// The concurrent listener's workers.
pub struct ConcurrentPool {
    tx: mpsc::Sender<Task>,
    workers: Vec<JoinHandle<()>>,
}

impl ConcurrentPool {
    pub fn start(shared: &Arc<Shared>, listener: Arc<ConcurrentFn>) -> Result<Self> {
        let (tx, rx) = mpsc::channel::<Task>();
        let rx = Arc::new(Mutex::new(rx));
        let mut workers = Vec::new();
        for i in 0..shared.opts.consume_threads.max(1) {
            let (rx, listener) = (rx.clone(), listener.clone());
            // Weak: the pool lives inside `shared`.
            let weak = Arc::downgrade(shared);
            workers.push(
                std::thread::Builder::new()
                    .name(format!("ringmq-consume-{i}"))
                    .spawn(move || loop {
                        let task = lock(&rx).recv();
                        let Ok((pq, msgs)) = task else { return };
                        let Some(shared) = weak.upgrade() else { return };
                        consume_concurrently(&shared, &*listener, &pq, msgs);
                    })?,
            );
        }
        Ok(Self { tx, workers })
    }

    /// Lets the batches in progress finish (queued ones are skipped) and joins the workers.
    pub fn stop(self) {
        drop(self.tx);
        for w in self.workers {
            let _ = w.join();
        }
    }
}

/// Queues pulled messages for the concurrent listener.
pub fn submit(shared: &Shared, pq: &Arc<ProcessQueue>, msgs: Vec<ReceivedMessage>) {
    let pool = lock(&shared.pool);
    let Some(pool) = pool.as_ref() else { return };
    let n = shared.opts.consume_batch_size.max(1);
    let mut msgs = msgs.into_iter().peekable();
    while msgs.peek().is_some() {
        let batch: Vec<_> = msgs.by_ref().take(n).collect();
        let _ = pool.tx.send((pq.clone(), batch));
    }
}

/// Re-queues failed batches whose local retry time has come (called by the service loop).
pub fn resubmit_due(shared: &Shared) {
    let now = Instant::now();
    let due: Vec<_> = {
        let mut later = lock(&shared.later);
        let (due, wait): (Vec<_>, Vec<_>) = later.drain(..).partition(|(t, _, _)| *t <= now);
        *later = wait;
        due
    };
    for (_, pq, msgs) in due {
        if !pq.is_dropped() {
            submit(shared, &pq, msgs);
        }
    }
}

fn consume_concurrently(
    shared: &Shared,
    listener: &ConcurrentFn,
    pq: &Arc<ProcessQueue>,
    msgs: Vec<ReceivedMessage>,
) {
    if shared.is_stopping() || pq.is_dropped() {
        return;
    }
    let status =
        catch_unwind(AssertUnwindSafe(|| listener(&msgs))).unwrap_or(ConsumeStatus::ReconsumeLater);
    if pq.is_dropped() {
        return;
    }
    let mut kept = Vec::new();
    if status == ConsumeStatus::ReconsumeLater {
        match shared.opts.message_model {
            MessageModel::Clustering => {
                let max = shared.max_reconsume_times();
                for m in &msgs {
                    if let Err(e) = shared.links.send_back(&pq.mq.broker_name, m, 0, max) {
                        tracing::warn!(msg = %m.msg_id, error = %e, "send-back failed: consuming again locally");
                        let mut m = m.clone();
                        m.reconsume_times += 1;
                        kept.push(m);
                    }
                }
            }
            MessageModel::Broadcasting => {
                for m in &msgs {
                    tracing::warn!(msg = %m.msg_id, "broadcasting consumption failed: message dropped");
                }
            }
        }
    }
    let done = msgs
        .iter()
        .map(|m| m.queue_offset)
        .filter(|o| !kept.iter().any(|k| k.queue_offset == *o));
    if let Some(offset) = pq.remove(done) {
        // A dropped queue's offset belongs to its next owner (or to an offset reset).
        if !pq.is_dropped() {
            shared.offsets.update(&pq.mq, offset, true);
        }
    }
    if !kept.is_empty() {
        lock(&shared.later).push((Instant::now() + LOCAL_RETRY_DELAY, pq.clone(), kept));
    }
}

/// Starts the ordered consume loop of a newly held queue.
pub fn start_orderly(shared: &Arc<Shared>, pq: Arc<ProcessQueue>) {
    let Listener::Orderly(listener) = shared.listener.clone() else {
        return;
    };
    let s = shared.clone();
    let name = format!("ringmq-orderly-{}-{}", pq.mq.topic, pq.mq.queue_id);
    shared.spawn(name, move || {
        while !pq.is_dropped() && !s.is_stopping() {
            let clustering = s.opts.message_model == MessageModel::Clustering;
            if clustering && !pq.lock_valid(s.opts.lock_max_live) {
                std::thread::sleep(s.opts.lock_retry_interval.min(Duration::from_millis(100)));
                continue;
            }
            let consuming = lock(&pq.consume_lock);
            if pq.is_dropped() || s.is_stopping() {
                return;
            }
            let batch = pq.take(s.opts.consume_batch_size.max(1), Duration::from_millis(100));
            if batch.is_empty() {
                continue;
            }
            let status = catch_unwind(AssertUnwindSafe(|| listener(&batch)))
                .unwrap_or(OrderlyStatus::SuspendCurrentQueueAMoment);
            let suspend = match status {
                OrderlyStatus::Success => false,
                OrderlyStatus::SuspendCurrentQueueAMoment => !give_up_on(&s, &pq, &batch),
            };
            if suspend {
                let again: Vec<_> = batch
                    .into_iter()
                    .map(|mut m| {
                        m.reconsume_times += 1;
                        m
                    })
                    .collect();
                pq.return_taken(&again);
            } else if let Some(next) = pq.commit_taken() {
                // Even when the queue was dropped meanwhile: whoever dropped it waits for
                // this consume lock before committing (release) or overwriting (reset)
                // the offset, so a batch consumed here is never handed to the next owner.
                s.offsets.update(&pq.mq, next, false);
            }
            drop(consuming);
            if suspend {
                std::thread::sleep(s.opts.suspend_current_queue);
            }
        }
    });
}

/// Orderly: a batch past `max_reconsume_times` goes to the DLQ (delay level -1) so the
/// queue can move on. True when every message of it was taken by the broker.
fn give_up_on(shared: &Shared, pq: &ProcessQueue, batch: &[ReceivedMessage]) -> bool {
    let max = shared.max_reconsume_times();
    if batch.iter().all(|m| m.reconsume_times < max) {
        return false;
    }
    batch.iter().all(
        |m| match shared.links.send_back(&pq.mq.broker_name, m, -1, max) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(msg = %m.msg_id, error = %e, "moving a message to the DLQ failed");
                false
            }
        },
    )
}
