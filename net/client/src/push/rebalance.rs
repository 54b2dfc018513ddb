//! Who holds which queue (RocketMQ's `RebalanceImpl`).
//!
//! For each subscribed topic: the route's readable queues and the group's consumer ids
//! (GET_CONSUMER_LIST_BY_GROUP), sorted, go to the allocation strategy (clustering) or
//! are all taken (broadcasting). Queues no longer ours are released: the dropped flag
//! stops their pull loop, an orderly listener's batch in progress is waited for, the
//! offset is committed to the broker (and answered) before the broker lock is released,
//! so the next owner starts exactly where we stopped. New queues get a pull loop, which
//! for an orderly listener first takes the broker lock.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use super::options::MessageModel;
use super::process_queue::ProcessQueue;
use super::{consume, pulling, Shared};
use crate::allocate::allocate;
use crate::connection::Result;
use crate::route::MessageQueue;
use crate::sync::lock;

/// Rebalances every subscribed topic.
pub fn rebalance_all(shared: &Arc<Shared>) {
    for sub in &shared.subs {
        if shared.is_stopping() {
            return;
        }
        if let Err(e) = rebalance_topic(shared, &sub.topic) {
            // A retry topic exists only once the broker has seen the group; quiet then.
            if sub.topic.starts_with("%RETRY%") {
                tracing::debug!(topic = %sub.topic, error = %e, "rebalance skipped");
            } else {
                tracing::warn!(topic = %sub.topic, error = %e, "rebalance failed");
            }
        }
    }
}

fn rebalance_topic(shared: &Arc<Shared>, topic: &str) -> Result<()> {
    let route = shared.links.refresh_route(topic)?;
    let mqs = route.read_queues();
    let mine = match shared.opts.message_model {
        MessageModel::Broadcasting => mqs,
        MessageModel::Clustering => {
            let cids = shared.links.consumer_ids(&route)?;
            let o = &shared.opts;
            let mine = allocate(&*o.strategy, &o.group, &o.client_id, &mqs, &cids);
            tracing::debug!(
                topic,
                consumers = cids.len(),
                queues = mqs.len(),
                mine = mine.len(),
                "allocated"
            );
            mine
        }
    };
    update_table(shared, topic, mine);
    Ok(())
}

/// Releases the topic's queues not in `mine` and starts the new ones.
fn update_table(shared: &Arc<Shared>, topic: &str, mine: Vec<MessageQueue>) {
    let wanted: HashSet<&MessageQueue> = mine.iter().collect();
    let released: Vec<(MessageQueue, Arc<ProcessQueue>)> = {
        let mut table = lock(&shared.table);
        let gone: Vec<MessageQueue> = table
            .iter()
            .filter(|(q, pq)| q.topic == topic && (!wanted.contains(q) || pq.is_dropped()))
            .map(|(q, _)| q.clone())
            .collect();
        gone.into_iter()
            .filter_map(|q| table.remove(&q).map(|pq| (q, pq)))
            .collect()
    };
    for (mq, pq) in &released {
        release(shared, mq, pq);
    }
    for mq in mine {
        if shared.is_stopping() {
            return;
        }
        let pq = {
            let mut table = lock(&shared.table);
            if table.contains_key(&mq) {
                continue;
            }
            let pq = Arc::new(ProcessQueue::new(mq.clone()));
            table.insert(mq.clone(), pq.clone());
            pq
        };
        tracing::debug!(queue = %mq, client = %shared.opts.client_id, "queue taken");
        pulling::start(shared, pq.clone());
        if shared.listener.is_orderly() {
            consume::start_orderly(shared, pq);
        }
    }
}

/// Gives a queue up: stop, wait for an orderly batch in progress, commit, unlock.
fn release(shared: &Shared, mq: &MessageQueue, pq: &ProcessQueue) {
    pq.drop_queue();
    let orderly_clustering =
        shared.listener.is_orderly() && shared.opts.message_model == MessageModel::Clustering;
    let _consuming = orderly_clustering.then(|| lock(&pq.consume_lock));
    if let Err(e) = shared.offsets.persist_now(&shared.links, mq) {
        tracing::warn!(queue = %mq, error = %e, "committing a released queue's offset failed");
    }
    shared.offsets.remove(mq);
    if orderly_clustering && pq.has_lock() {
        if let Err(e) = shared
            .links
            .unlock_queues(&mq.broker_name, std::slice::from_ref(mq))
        {
            tracing::warn!(queue = %mq, error = %e, "unlocking a released queue failed");
        }
        pq.set_locked(false);
    }
    tracing::debug!(queue = %mq, client = %shared.opts.client_id, "queue released");
}

/// Applies an offset reset (Java's `MQClientInstance.resetOffset`): drops the held queues
/// it names without committing their old offsets, sets and commits the new ones, and lets
/// the next rebalance take the queues again from there. A pull or a batch still in flight
/// on a dropped queue no longer moves its offset.
pub fn reset_offsets(shared: &Shared, table: &[(MessageQueue, i64)]) {
    let dropped: Vec<(MessageQueue, Arc<ProcessQueue>)> = {
        let mut held = lock(&shared.table);
        table
            .iter()
            .filter_map(|(q, _)| held.remove(q).map(|pq| (q.clone(), pq)))
            .collect()
    };
    for (mq, pq) in &dropped {
        pq.drop_queue();
        let _consuming = shared.listener.is_orderly().then(|| lock(&pq.consume_lock));
        if pq.has_lock() {
            let _ = shared
                .links
                .unlock_queues(&mq.broker_name, std::slice::from_ref(mq));
            pq.set_locked(false);
        }
    }
    for (mq, offset) in table {
        shared.offsets.update(mq, *offset, false);
        if let Err(e) = shared.offsets.persist_now(&shared.links, mq) {
            tracing::warn!(queue = %mq, error = %e, "committing a reset offset failed");
        }
        shared.offsets.remove(mq);
        tracing::debug!(queue = %mq, offset, "offset reset");
    }
}

/// Releases every queue (shutdown).
pub fn release_all(shared: &Shared) {
    let all: Vec<_> = lock(&shared.table).drain().collect();
    for (mq, pq) in &all {
        release(shared, mq, pq);
    }
}

/// Orderly: refreshes the broker locks of every held queue (RocketMQ's `lockAll`, every
/// 20 s); a queue the broker no longer grants stops consuming until it is locked again.
pub fn refresh_locks(shared: &Shared) {
    let mut by_broker: BTreeMap<String, Vec<Arc<ProcessQueue>>> = BTreeMap::new();
    for pq in lock(&shared.table).values() {
        if !pq.is_dropped() {
            by_broker
                .entry(pq.mq.broker_name.clone())
                .or_default()
                .push(pq.clone());
        }
    }
    for (broker, pqs) in by_broker {
        let mqs: Vec<MessageQueue> = pqs.iter().map(|p| p.mq.clone()).collect();
        match shared.links.lock_queues(&broker, &mqs) {
            Ok(granted) => {
                let granted: HashSet<MessageQueue> = granted.into_iter().collect();
                for pq in pqs {
                    pq.set_locked(granted.contains(&pq.mq));
                }
            }
            Err(e) => tracing::warn!(broker, error = %e, "refreshing queue locks failed"),
        }
    }
}
