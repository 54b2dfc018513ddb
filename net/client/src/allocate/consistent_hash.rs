//! `CONSISTENT_HASH`: RocketMQ's `AllocateMessageQueueConsistentHash`.

use super::hash_router::{md5_hash, ConsistentHashRouter, HashFunction};
use super::{checked_index, AllocateStrategy};
use crate::route::MessageQueue;

/// Virtual nodes per consumer in RocketMQ's no-argument constructor.
pub const DEFAULT_VIRTUAL_NODES: usize = 10;

/// Java's `MessageQueue.toString()`, the key RocketMQ hashes a queue by:
/// `MessageQueue [topic=T, brokerName=B, queueId=N]`.
pub fn java_message_queue_string(mq: &MessageQueue) -> String {
    format!(
        "MessageQueue [topic={}, brokerName={}, queueId={}]",
        mq.topic, mq.broker_name, mq.queue_id
    )
}

/// `CONSISTENT_HASH` (`AllocateMessageQueueConsistentHash`): every consumer
/// id of the sorted list goes on a [`ConsistentHashRouter`] with
/// `virtual_nodes` replicas; a queue belongs to the consumer its
/// [`java_message_queue_string`] routes to. Adding or removing a consumer
/// moves only the queues that consumer gains or had.
#[derive(Debug, Clone, Copy)]
pub struct ConsistentHash {
    virtual_nodes: usize,
    hash: HashFunction,
}

impl Default for ConsistentHash {
    /// 10 virtual nodes and the MD5 hash, as `new AllocateMessageQueueConsistentHash()`.
    fn default() -> Self {
        Self::new(DEFAULT_VIRTUAL_NODES)
    }
}

impl ConsistentHash {
    /// `new AllocateMessageQueueConsistentHash(virtualNodeCnt)`, MD5 hash.
    /// With 0 virtual nodes the ring is empty and nobody gets any queue, as in Java.
    pub fn new(virtual_nodes: usize) -> Self {
        Self::with_hash(virtual_nodes, md5_hash)
    }

    /// `new AllocateMessageQueueConsistentHash(virtualNodeCnt, customHashFunction)`.
    pub fn with_hash(virtual_nodes: usize, hash: HashFunction) -> Self {
        Self {
            virtual_nodes,
            hash,
        }
    }

    /// Virtual nodes per consumer.
    pub fn virtual_nodes(&self) -> usize {
        self.virtual_nodes
    }
}

impl AllocateStrategy for ConsistentHash {
    fn name(&self) -> &str {
        "CONSISTENT_HASH"
    }

    fn allocate(
        &self,
        consumer_group: &str,
        current_cid: &str,
        mq_all: &[MessageQueue],
        cid_all: &[String],
    ) -> Vec<MessageQueue> {
        if checked_index(consumer_group, current_cid, mq_all, cid_all).is_none() {
            return Vec::new();
        }
        let router = ConsistentHashRouter::with_hash(
            cid_all.iter().map(String::as_str),
            self.virtual_nodes,
            self.hash,
        );
        mq_all
            .iter()
            .filter(|mq| router.route_node(&java_message_queue_string(mq)) == Some(current_cid))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::testutil::{assert_partition, cids, ids_of, mq_and_cid_sets, queues};
    use super::super::{allocate, AllocateStrategy};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn java_to_string() {
        let mq = MessageQueue::new("topic_test", "brokerName", -3);
        assert_eq!(
            java_message_queue_string(&mq),
            "MessageQueue [topic=topic_test, brokerName=brokerName, queueId=-3]"
        );
    }

    /// Expected owners come from an independent Python re-implementation of
    /// RocketMQ's ring (run once, output pasted), not from this crate:
    ///
    /// ```text
    /// python3 - <<'PY'
    /// import hashlib, bisect
    /// h = lambda s: int.from_bytes(hashlib.md5(s.encode()).digest()[:4], 'big')
    /// def own(qs, cs, vn):
    ///     ring = {h('%s-%d' % (c, i)): c for c in cs for i in range(vn)}
    ///     ks = sorted(ring)
    ///     def r(q):
    ///         k = bisect.bisect_left(ks, h('MessageQueue [topic=topic_test, brokerName=brokerName, queueId=%d]' % q))
    ///         return ring[ks[k % len(ks)]]
    ///     return [r(q) for q in qs]
    /// print(own(range(6), ['CID-0', 'CID-1', 'CID-2'], 10))
    /// print(own(range(6), ['CID-0', 'CID-1', 'CID-2'], 3))
    /// print(own(range(6), ['CID-0', 'CID-2'], 10))
    /// PY
    /// ['CID-2', 'CID-0', 'CID-1', 'CID-2', 'CID-2', 'CID-2']
    /// ['CID-0', 'CID-1', 'CID-1', 'CID-0', 'CID-2', 'CID-0']
    /// ['CID-2', 'CID-0', 'CID-0', 'CID-2', 'CID-2', 'CID-2']
    /// ```
    fn owners(strategy: &ConsistentHash, consumers: &[&str]) -> Vec<(String, Vec<i32>)> {
        let mq_all = queues("topic_test", "brokerName", 6);
        let ids = cids(consumers);
        ids.iter()
            .map(|c| {
                (
                    c.clone(),
                    ids_of(&allocate(strategy, "G", c, &mq_all, &ids)),
                )
            })
            .collect()
    }

    fn pairs(expected: &[(&str, &[i32])]) -> Vec<(String, Vec<i32>)> {
        expected
            .iter()
            .map(|(c, q)| (c.to_string(), q.to_vec()))
            .collect()
    }

    #[test]
    fn pinned_to_independent_python_ring() {
        let three = ["CID-0", "CID-1", "CID-2"];
        assert_eq!(
            owners(&ConsistentHash::default(), &three),
            pairs(&[("CID-0", &[1]), ("CID-1", &[2]), ("CID-2", &[0, 3, 4, 5])])
        );
        assert_eq!(
            owners(&ConsistentHash::new(3), &three),
            pairs(&[("CID-0", &[0, 3, 5]), ("CID-1", &[1, 2]), ("CID-2", &[4])])
        );
        // Without CID-1, only its queue 2 moves.
        assert_eq!(
            owners(&ConsistentHash::default(), &["CID-0", "CID-2"]),
            pairs(&[("CID-0", &[1, 2]), ("CID-2", &[0, 3, 4, 5])])
        );
        assert_eq!(ConsistentHash::default().name(), "CONSISTENT_HASH");
        assert_eq!(ConsistentHash::default().virtual_nodes(), 10);
    }

    fn owner_map(
        s: &ConsistentHash,
        mqs: &[MessageQueue],
        ids: &[String],
    ) -> BTreeMap<MessageQueue, String> {
        let mut map = BTreeMap::new();
        for cid in ids {
            for mq in allocate(s, "testConsumerGroup", cid, mqs, ids) {
                assert!(map.insert(mq, cid.clone()).is_none(), "queue given twice");
            }
        }
        // verifyAllocateAll: with no consumer left, nothing is allocated.
        let want = if ids.is_empty() { 0 } else { mqs.len() };
        assert_eq!(map.len(), want, "not every queue allocated");
        map
    }

    /// AllocateMessageQueueConsitentHashTest.testAllocate: 3 virtual nodes;
    /// after removing the first consumer only its queues move, after adding
    /// `CID-NEW` only the queues it takes move.
    fn rocketmq_remove_then_add(queue_size: usize, consumer_size: usize) {
        let s = ConsistentHash::new(3);
        let mqs = queues("topic_test", "brokerName", queue_size);
        let mut ids: Vec<String> = (0..consumer_size).map(|i| format!("CID-{i}")).collect();
        let before = owner_map(&s, &mqs, &ids);
        let removed = ids.remove(0);
        let after_remove = owner_map(&s, &mqs, &ids);
        for (mq, owner) in &before {
            if *owner != removed {
                assert_eq!(&after_remove[mq], owner);
            }
        }
        ids.push("CID-NEW".to_string());
        let after_add = owner_map(&s, &mqs, &ids);
        for (mq, owner) in &after_add {
            if owner != "CID-NEW" {
                assert_eq!(&after_remove[mq], owner);
            }
        }
    }

    #[test]
    fn rocketmq_unit_test_cases() {
        rocketmq_remove_then_add(20, 10);
        rocketmq_remove_then_add(10, 20);
        // testCurrentCIDNotExists.
        let mqs = queues("topic_test", "brokerName", 6);
        let ids = cids(&["CID-0", "CID-1"]);
        assert!(allocate(&ConsistentHash::default(), "", "2147483647", &mqs, &ids).is_empty());
    }

    #[test]
    fn zero_virtual_nodes_allocates_nothing() {
        let mqs = queues("T", "b", 4);
        let ids = cids(&["a"]);
        assert!(allocate(&ConsistentHash::new(0), "G", "a", &mqs, &ids).is_empty());
    }

    proptest! {
        #[test]
        fn every_queue_exactly_once_in_any_order(sets in mq_and_cid_sets()) {
            assert_partition(&ConsistentHash::default(), &sets);
        }

        #[test]
        fn rocketmq_random_cases(queue_size in 1usize..=20, consumer_size in 1usize..=20) {
            // testRun100RandomCase: 1..=20 queues and consumers.
            rocketmq_remove_then_add(queue_size, consumer_size);
        }
    }
}
