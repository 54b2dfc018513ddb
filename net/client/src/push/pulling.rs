//! A held queue's pull loop (RocketMQ's `PullMessageService` + `pullMessage`, one thread
//! per queue since pulls block): take the broker lock first when the listener is orderly
//! (retrying every `lock_retry_interval`, not waiting for the next rebalance), then find
//! the start offset (the group's committed offset, else `consume_from`), then long-poll
//! PULL_MESSAGE and hand what arrives to the consume side. Pulling pauses while the queue
//! holds `pull_threshold_per_queue` unconsumed messages. The loop ends when the queue is
//! dropped or the consumer stops; a pull answered after that is discarded.

use std::sync::Arc;
use std::time::Duration;

use super::options::ConsumeFromWhere;
use super::process_queue::ProcessQueue;
use super::{consume, Shared};
use crate::connection::Result;
use crate::consumer::{PullArgs, PullStatus, ReceivedMessage};
use crate::route::MessageQueue;

/// Pause when the queue holds too many unconsumed messages (RocketMQ: 50 ms).
const FLOW_CONTROL_PAUSE: Duration = Duration::from_millis(50);
/// Pause after a failed pull (RocketMQ: 3 s).
const ERROR_PAUSE: Duration = Duration::from_secs(1);

pub fn start(shared: &Arc<Shared>, pq: Arc<ProcessQueue>) {
    let s = shared.clone();
    let name = format!("ringmq-pull-{}-{}", pq.mq.topic, pq.mq.queue_id);
    shared.spawn(name, move || run(&s, &pq));
}

fn run(shared: &Shared, pq: &Arc<ProcessQueue>) {
    let mq = &pq.mq;
    let orderly = shared.listener.is_orderly();
    let mut next: Option<i64> = None;
    let mut failures = 0u32;
    while !pq.is_dropped() && !shared.is_stopping() {
        if orderly && !pq.has_lock() {
            if !try_lock(shared, pq) {
                std::thread::sleep(shared.opts.lock_retry_interval);
                continue;
            }
            // The previous owner committed before unlocking: read its offset now.
            next = None;
        }
        let offset = match next {
            Some(o) => o,
            None => match start_offset(shared, mq) {
                Ok(o) => {
                    shared.offsets.update(mq, o, false);
                    next = Some(o);
                    o
                }
                Err(e) => {
                    pause_after_error(shared, mq, &mut failures, "finding the start offset", &e);
                    continue;
                }
            },
        };
        if pq.count() >= shared.opts.pull_threshold_per_queue {
            std::thread::sleep(FLOW_CONTROL_PAUSE);
            continue;
        }
        match pull_once(shared, mq, offset) {
            Ok(result) => {
                failures = 0;
                if pq.is_dropped() {
                    return;
                }
                match result.status {
                    PullStatus::Found => {
                        let msgs = restore_retry_topics(result.messages);
                        if orderly {
                            pq.put(&msgs);
                        } else {
                            pq.hold(msgs.iter().map(|m| m.queue_offset));
                            consume::submit(shared, pq, msgs);
                        }
                    }
                    PullStatus::NoNewMessage | PullStatus::NoMatchedMsg => {
                        // Nothing held: nothing to hold the committed offset back.
                        if pq.count() == 0 {
                            shared.offsets.update(mq, result.next_begin_offset, false);
                        }
                    }
                    PullStatus::OffsetIllegal => {
                        tracing::warn!(
                            queue = %mq,
                            offset,
                            next = result.next_begin_offset,
                            "pull offset illegal: moving to the broker's suggestion"
                        );
                        shared.offsets.update(mq, result.next_begin_offset, false);
                    }
                }
                next = Some(result.next_begin_offset);
            }
            Err(e) => {
                if pq.is_dropped() || shared.is_stopping() {
                    return;
                }
                pause_after_error(shared, mq, &mut failures, "pull", &e);
            }
        }
    }
}

fn pull_once(
    shared: &Shared,
    mq: &MessageQueue,
    offset: i64,
) -> Result<crate::consumer::PullResult> {
    let broker = shared.links.broker_of(mq)?;
    let filter = shared.subscription(&mq.topic).map(|s| &s.filter);
    let commit_offset = match shared.opts.message_model {
        super::MessageModel::Clustering => shared.offsets.get(mq).filter(|o| *o > 0),
        super::MessageModel::Broadcasting => None,
    };
    broker.pull_with(
        mq,
        &PullArgs {
            offset,
            max_nums: shared.opts.pull_batch_size,
            suspend: Some(shared.opts.suspend),
            filter,
            commit_offset,
        },
    )
}

/// Logs the first failure of a run and every 30th after it, then pauses.
fn pause_after_error(
    shared: &Shared,
    mq: &MessageQueue,
    failures: &mut u32,
    what: &str,
    e: &dyn std::fmt::Display,
) {
    if failures.is_multiple_of(30) {
        tracing::warn!(queue = %mq, error = %e, failures = *failures + 1, "{what} failed");
    }
    *failures += 1;
    let mut left = ERROR_PAUSE;
    while !left.is_zero() && !shared.is_stopping() {
        let step = left.min(Duration::from_millis(100));
        std::thread::sleep(step);
        left -= step;
    }
}

fn try_lock(shared: &Shared, pq: &ProcessQueue) -> bool {
    match shared
        .links
        .lock_queues(&pq.mq.broker_name, std::slice::from_ref(&pq.mq))
    {
        Ok(granted) if granted.contains(&pq.mq) => {
            pq.set_locked(true);
            true
        }
        Ok(_) => false,
        Err(e) => {
            tracing::debug!(queue = %pq.mq, error = %e, "lock request failed");
            false
        }
    }
}

/// The group's committed offset, else where `consume_from` says a new queue starts.
fn start_offset(shared: &Shared, mq: &MessageQueue) -> Result<i64> {
    if let Some(o) = shared.offsets.read_stored(&shared.links, mq)? {
        if o >= 0 {
            return Ok(o);
        }
    }
    let broker = shared.links.broker_of(mq)?;
    Ok(match shared.opts.consume_from {
        _ if mq.topic.starts_with("%RETRY%") => 0,
        ConsumeFromWhere::LastOffset => broker.max_offset(mq)?,
        ConsumeFromWhere::FirstOffset => broker.min_offset(mq)?,
        ConsumeFromWhere::Timestamp(ms) => broker.search_offset(mq, ms, false)?,
    })
}

/// Messages of the group's retry topic are handed to the listener under their original
/// topic (`RETRY_TOPIC`), as RocketMQ clients do.
fn restore_retry_topics(mut msgs: Vec<ReceivedMessage>) -> Vec<ReceivedMessage> {
    for m in &mut msgs {
        if m.topic.starts_with("%RETRY%") {
            if let Some(t) = m.property("RETRY_TOPIC").map(str::to_owned) {
                m.topic = t;
            }
        }
    }
    msgs
}
