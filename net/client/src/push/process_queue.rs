//! One assigned queue's state on the consumer side (RocketMQ's `ProcessQueue`): what was
//! pulled but not yet consumed (the offsets only, for a concurrent listener, whose workers
//! own the messages; the messages themselves for an orderly one, which takes them from here), the orderly batch in the listener's hands, the
//! broker lock of an orderly queue, and the `dropped` flag a rebalance sets when the queue
//! goes to another member.
//!
//! Offsets follow RocketMQ: after a concurrent batch the committable offset is the
//! smallest offset still held (or one past the largest seen when nothing is), so a slow
//! message holds back the commit but never lets a later one skip it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::consumer::ReceivedMessage;
use crate::route::MessageQueue;
use crate::sync::{lock, wait_timeout};

#[derive(Default)]
struct State {
    /// Concurrent: offsets pulled and handed to the workers, not yet consumed.
    held: BTreeSet<i64>,
    /// Orderly: pulled, not yet consumed, by queue offset.
    msgs: BTreeMap<i64, ReceivedMessage>,
    /// Orderly: the batch the listener is working on.
    taken: BTreeMap<i64, ReceivedMessage>,
    /// Largest queue offset ever put here (-1 = none).
    max_offset: i64,
    /// Orderly: when the broker last granted or refreshed our lock.
    locked_at: Option<Instant>,
}

pub struct ProcessQueue {
    pub mq: MessageQueue,
    dropped: AtomicBool,
    state: Mutex<State>,
    changed: Condvar,
    /// Held while an orderly listener runs, and by the rebalance that releases the queue
    /// (so a release waits for the batch in progress and commits after it).
    pub consume_lock: Mutex<()>,
}

impl ProcessQueue {
    pub fn new(mq: MessageQueue) -> Self {
        Self {
            mq,
            dropped: AtomicBool::new(false),
            state: Mutex::new(State {
                max_offset: -1,
                ..State::default()
            }),
            changed: Condvar::new(),
            consume_lock: Mutex::new(()),
        }
    }

    pub fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }

    /// The queue went away (rebalance or shutdown): pulling and consuming stop.
    pub fn drop_queue(&self) {
        self.dropped.store(true, Ordering::Release);
        let _g = lock(&self.state);
        self.changed.notify_all();
    }

    /// Messages held (pulled and not yet consumed, including an orderly batch in progress).
    pub fn count(&self) -> usize {
        let s = lock(&self.state);
        s.held.len() + s.msgs.len() + s.taken.len()
    }

    /// Concurrent: records the offsets of pulled messages handed to the workers.
    pub fn hold(&self, offsets: impl IntoIterator<Item = i64>) {
        let mut s = lock(&self.state);
        for o in offsets {
            s.max_offset = s.max_offset.max(o);
            s.held.insert(o);
        }
    }

    /// Orderly: adds pulled messages (a message already held is not added twice).
    pub fn put(&self, msgs: &[ReceivedMessage]) {
        let mut s = lock(&self.state);
        for m in msgs {
            s.max_offset = s.max_offset.max(m.queue_offset);
            s.msgs.entry(m.queue_offset).or_insert_with(|| m.clone());
        }
        self.changed.notify_all();
    }

    /// Concurrent consumption finished these messages. Returns the offset now safe to
    /// commit, or None if they had already been removed.
    pub fn remove(&self, offsets: impl IntoIterator<Item = i64>) -> Option<i64> {
        let mut s = lock(&self.state);
        if s.held.is_empty() {
            return None;
        }
        for o in offsets {
            s.held.remove(&o);
        }
        Some(s.held.first().copied().unwrap_or(s.max_offset + 1))
    }

    /// Orderly: waits (up to `timeout`) for messages, then moves the first `max` (by
    /// offset) into the listener's batch. Empty when dropped or timed out.
    pub fn take(&self, max: usize, timeout: Duration) -> Vec<ReceivedMessage> {
        let mut s = lock(&self.state);
        if s.msgs.is_empty() && !self.is_dropped() {
            s = wait_timeout(&self.changed, s, timeout);
        }
        if self.is_dropped() {
            return Vec::new();
        }
        let mut out = Vec::new();
        while out.len() < max {
            let Some((o, m)) = s.msgs.pop_first() else {
                break;
            };
            s.taken.insert(o, m.clone());
            out.push(m);
        }
        out
    }

    /// Orderly: the listener consumed its batch; returns the next offset to commit.
    pub fn commit_taken(&self) -> Option<i64> {
        let mut s = lock(&self.state);
        let last = s.taken.keys().next_back().copied();
        s.taken.clear();
        last.map(|o| o + 1)
    }

    /// Orderly: the listener asked to try the batch again; it goes back in front.
    pub fn return_taken(&self, batch: &[ReceivedMessage]) {
        let mut s = lock(&self.state);
        s.taken.clear();
        for m in batch {
            s.msgs.insert(m.queue_offset, m.clone());
        }
    }

    /// Orderly: the broker granted (or refreshed) our lock, or took it away.
    pub fn set_locked(&self, locked: bool) {
        lock(&self.state).locked_at = locked.then(Instant::now);
        self.changed.notify_all();
    }

    /// Orderly: we hold the broker lock and refreshed it within `max_live`.
    pub fn lock_valid(&self, max_live: Duration) -> bool {
        lock(&self.state)
            .locked_at
            .is_some_and(|t| t.elapsed() < max_live)
    }

    pub fn has_lock(&self) -> bool {
        lock(&self.state).locked_at.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn msg(offset: i64) -> ReceivedMessage {
        ReceivedMessage {
            topic: "T".into(),
            queue_id: 0,
            queue_offset: offset,
            phys_offset: 0,
            flag: 0,
            sys_flag: 0,
            body: Bytes::new(),
            properties: Vec::new(),
            tags: None,
            keys: None,
            store_timestamp: 0,
            born_timestamp: 0,
            born_host: "127.0.0.1:1".parse().unwrap(),
            store_host: "127.0.0.1:2".parse().unwrap(),
            msg_id: offset.to_string(),
            offset_msg_id: String::new(),
            reconsume_times: 0,
        }
    }

    #[test]
    fn a_slow_message_holds_back_the_commit() {
        let pq = ProcessQueue::new(MessageQueue::new("T", "b", 0));
        pq.hold([10, 11, 12]);
        assert_eq!(pq.remove([11, 12]), Some(10));
        assert_eq!(pq.remove([10]), Some(13));
        assert_eq!(pq.remove([10]), None);
        assert_eq!(pq.count(), 0);
    }

    #[test]
    fn orderly_batches_come_in_offset_order_and_can_be_returned() {
        let pq = ProcessQueue::new(MessageQueue::new("T", "b", 0));
        pq.put(&[msg(3), msg(1), msg(2)]);
        let b = pq.take(2, Duration::ZERO);
        assert_eq!(b.iter().map(|m| m.queue_offset).collect::<Vec<_>>(), [1, 2]);
        pq.return_taken(&b);
        let b = pq.take(5, Duration::ZERO);
        assert_eq!(b.len(), 3);
        assert_eq!(pq.commit_taken(), Some(4));
        pq.drop_queue();
        assert!(pq.take(1, Duration::from_secs(5)).is_empty());
    }

    #[test]
    fn locks_expire_on_the_client_side() {
        let pq = ProcessQueue::new(MessageQueue::new("T", "b", 0));
        assert!(!pq.lock_valid(Duration::from_secs(30)));
        pq.set_locked(true);
        assert!(pq.lock_valid(Duration::from_secs(30)));
        assert!(!pq.lock_valid(Duration::ZERO));
        pq.set_locked(false);
        assert!(!pq.has_lock());
    }
}
