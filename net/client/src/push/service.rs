//! The consumer's background loop (RocketMQ's `MQClientInstance` scheduled tasks and
//! `RebalanceService`, in one thread): rebalance every `rebalance_interval` and whenever
//! an event asks for it (NOTIFY_CONSUMER_IDS_CHANGED), heartbeats, offset commits, lock
//! refreshes for orderly listeners, and re-running concurrent batches the broker did not
//! take back.

use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{consume, rebalance, Shared};
use crate::connection::Result;
use crate::route::MessageQueue;
use crate::sync::lock;

/// What wakes the loop before its next timer.
pub enum Event {
    Rebalance,
    /// The broker moved the group's offsets (RESET_CONSUMER_CLIENT_OFFSET): drop those
    /// queues, commit the new offsets and take the queues again from there.
    ResetOffset(Vec<(MessageQueue, i64)>),
    Stop,
}

/// The longest the loop sleeps (it also runs due re-consumption).
const TICK: Duration = Duration::from_millis(100);

pub fn start(shared: Arc<Shared>, events: mpsc::Receiver<Event>) -> Result<JoinHandle<()>> {
    let name = format!("ringmq-consumer-{}", shared.opts.group);
    Ok(std::thread::Builder::new()
        .name(name)
        .spawn(move || run(&shared, events))?)
}

fn run(shared: &Arc<Shared>, events: mpsc::Receiver<Event>) {
    let o = shared.opts.clone();
    let now = Instant::now();
    let mut next_rebalance = now + o.rebalance_interval;
    let mut next_heartbeat = now + o.heartbeat_interval;
    let mut next_persist = now + o.persist_interval;
    let mut next_lock = now + o.lock_refresh_interval;
    loop {
        let nearest = next_rebalance
            .min(next_heartbeat)
            .min(next_persist)
            .min(next_lock);
        let wait = nearest.saturating_duration_since(Instant::now()).min(TICK);
        match events.recv_timeout(wait) {
            Ok(Event::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
            Ok(Event::Rebalance) => {
                // Several notifications in a row need one rebalance.
                while let Ok(e) = events.try_recv() {
                    if matches!(e, Event::Stop) {
                        return;
                    }
                }
                rebalance::rebalance_all(shared);
                next_rebalance = Instant::now() + o.rebalance_interval;
            }
            Ok(Event::ResetOffset(table)) => {
                rebalance::reset_offsets(shared, &table);
                rebalance::rebalance_all(shared);
                next_rebalance = Instant::now() + o.rebalance_interval;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if shared.is_stopping() {
            return;
        }
        let now = Instant::now();
        if now >= next_rebalance {
            rebalance::rebalance_all(shared);
            next_rebalance = Instant::now() + o.rebalance_interval;
        }
        if now >= next_heartbeat {
            shared.links.heartbeat_all();
            next_heartbeat = now + o.heartbeat_interval;
        }
        if now >= next_persist {
            let held: Vec<_> = lock(&shared.table).keys().cloned().collect();
            shared.offsets.persist_all(&shared.links, &held);
            next_persist = now + o.persist_interval;
        }
        if now >= next_lock {
            if shared.listener.is_orderly() {
                rebalance::refresh_locks(shared);
            }
            next_lock = now + o.lock_refresh_interval;
        }
        consume::resubmit_due(shared);
    }
}
