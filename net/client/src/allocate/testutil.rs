//! Test helpers shared by the strategy tests: fixtures and proptest inputs.

use std::collections::BTreeMap;

use proptest::collection::vec;
use proptest::prelude::*;

use super::{allocate, AllocateStrategy};
use crate::route::MessageQueue;

/// Queues `0..n` of one topic on one broker.
pub fn queues(topic: &str, broker: &str, n: usize) -> Vec<MessageQueue> {
    (0..n as i32)
        .map(|q| MessageQueue::new(topic, broker, q))
        .collect()
}

pub fn cids(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

pub fn ids_of(mqs: &[MessageQueue]) -> Vec<i32> {
    mqs.iter().map(|m| m.queue_id).collect()
}

/// A queue list and a consumer id list (with possible duplicates, in any
/// order), plus the same two lists shuffled.
#[derive(Debug, Clone)]
pub struct Sets {
    pub mqs: Vec<MessageQueue>,
    pub cids: Vec<String>,
    pub mqs_shuffled: Vec<MessageQueue>,
    pub cids_shuffled: Vec<String>,
}

fn message_queue() -> impl Strategy<Value = MessageQueue> {
    (
        prop::sample::select(vec!["T0", "T1"]),
        prop::sample::select(vec!["a", "b", "r1@a", "r2@b", "r3@c", "r1@d"]),
        0..32i32,
    )
        .prop_map(|(t, b, q)| MessageQueue::new(t, b, q))
}

fn client_id() -> impl Strategy<Value = String> {
    "((r1|r2|r4)@)?[a-z0-9]{1,3}"
}

/// Up to 64 queues and 16 consumer ids (some ids carry a `room@` prefix).
pub fn mq_and_cid_sets() -> impl Strategy<Value = Sets> {
    (vec(message_queue(), 1..=64), vec(client_id(), 1..=16))
        .prop_flat_map(|(m, c)| {
            (
                Just(m.clone()),
                Just(c.clone()),
                Just(m).prop_shuffle(),
                Just(c).prop_shuffle(),
            )
        })
        .prop_map(|(mqs, cids, mqs_shuffled, cids_shuffled)| Sets {
            mqs,
            cids,
            mqs_shuffled,
            cids_shuffled,
        })
}

/// Asks every distinct consumer for its share, once with the lists as given
/// and once shuffled; panics unless both answers agree, and gives each queue's
/// owners.
pub fn owners(s: &dyn AllocateStrategy, sets: &Sets) -> BTreeMap<MessageQueue, Vec<String>> {
    let mut distinct = sets.cids.clone();
    distinct.sort();
    distinct.dedup();
    let mut owners: BTreeMap<MessageQueue, Vec<String>> = BTreeMap::new();
    for cid in &distinct {
        let share = allocate(s, "G", cid, &sets.mqs, &sets.cids);
        let again = allocate(s, "G", cid, &sets.mqs_shuffled, &sets.cids_shuffled);
        assert_eq!(
            share,
            again,
            "{} share of {cid} depends on input order",
            s.name()
        );
        for mq in share {
            owners.entry(mq).or_default().push(cid.clone());
        }
    }
    owners
}

/// Every queue goes to exactly one consumer, nothing else is handed out, and
/// the answer does not depend on input order.
pub fn assert_partition(s: &dyn AllocateStrategy, sets: &Sets) {
    let owners = owners(s, sets);
    let mut all = sets.mqs.clone();
    all.sort();
    all.dedup();
    let handed: Vec<MessageQueue> = owners.keys().cloned().collect();
    assert_eq!(
        handed,
        all,
        "{}: union of shares is not all queues",
        s.name()
    );
    for (mq, who) in &owners {
        assert_eq!(who.len(), 1, "{}: {mq} went to {who:?}", s.name());
    }
}
