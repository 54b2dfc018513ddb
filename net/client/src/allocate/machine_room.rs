//! `MACHINE_ROOM`: RocketMQ's `AllocateMessageQueueByMachineRoom`.

use std::collections::BTreeSet;

use super::{checked_index, AllocateStrategy};
use crate::route::MessageQueue;

/// `MACHINE_ROOM` (`AllocateMessageQueueByMachineRoom`): only queues whose
/// broker name reads `room@broker` with `room` among the configured rooms
/// (`consumeridcs`) are shared out; queues of other brokers go to nobody.
///
/// With `p` such queues and `c` consumers, consumer `i` gets the run
/// `[i*(p/c), (i+1)*(p/c))` and, if `i < p % c`, also queue `i + (p/c)*c`
/// from the tail: so 5 queues over 2 consumers give `0,1,4` and `2,3`, not
/// AVG's `0,1,2` and `3,4`. Every queue of a served room still goes to
/// exactly one consumer.
#[derive(Debug, Default, Clone)]
pub struct ByMachineRoom {
    consumer_idcs: BTreeSet<String>,
}

impl ByMachineRoom {
    /// A strategy serving the queues of `rooms` (`setConsumeridcs`).
    pub fn new<S: Into<String>>(rooms: impl IntoIterator<Item = S>) -> Self {
        Self {
            consumer_idcs: rooms.into_iter().map(Into::into).collect(),
        }
    }

    /// The served rooms (`getConsumeridcs`).
    pub fn consumer_idcs(&self) -> &BTreeSet<String> {
        &self.consumer_idcs
    }

    /// Whether a queue of `broker_name` is shared out: Java's
    /// `brokerName.split("@")` (trailing empty parts dropped, leading kept)
    /// must give exactly two parts, the first a served room.
    pub fn serves(&self, broker_name: &str) -> bool {
        java_split_room(broker_name).is_some_and(|room| self.consumer_idcs.contains(room))
    }
}

/// The room of `room@broker`, under Java's `String.split("@")` rules: the
/// parts with trailing empty ones removed must number exactly two. So
/// `r@b@` counts (room `r`), `@b` counts (room ``), `r@`, `r` and `r@b@c` do not.
fn java_split_room(broker_name: &str) -> Option<&str> {
    let mut parts: Vec<&str> = broker_name.split('@').collect();
    while parts.last() == Some(&"") {
        parts.pop();
    }
    (parts.len() == 2).then(|| parts[0])
}

impl AllocateStrategy for ByMachineRoom {
    fn name(&self) -> &str {
        "MACHINE_ROOM"
    }

    fn allocate(
        &self,
        consumer_group: &str,
        current_cid: &str,
        mq_all: &[MessageQueue],
        cid_all: &[String],
    ) -> Vec<MessageQueue> {
        let Some(index) = checked_index(consumer_group, current_cid, mq_all, cid_all) else {
            return Vec::new();
        };
        let pre: Vec<&MessageQueue> = mq_all
            .iter()
            .filter(|mq| self.serves(&mq.broker_name))
            .collect();
        // Java's int arithmetic; its `mod` is the quotient.
        let quotient = pre.len() / cid_all.len();
        let rem = pre.len() % cid_all.len();
        let start = quotient * index;
        let mut result: Vec<MessageQueue> = pre[start..start + quotient]
            .iter()
            .map(|&mq| mq.clone())
            .collect();
        if rem > index {
            result.push(pre[index + quotient * cid_all.len()].clone());
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{cids, ids_of, mq_and_cid_sets, owners};
    use super::super::{allocate, AllocateStrategy};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rocketmq_unit_test_two_rooms_one_served() {
        // AllocateMessageQueueByMachineRoomTest: queues 0..5 on room1@broker-a,
        // 5..10 on room2@broker-b, rooms {room1}, two consumers.
        let mqs: Vec<MessageQueue> = (0..10)
            .map(|i| {
                let broker = if i < 5 {
                    "room1@broker-a"
                } else {
                    "room2@broker-b"
                };
                MessageQueue::new("topic", broker, i)
            })
            .collect();
        let s = ByMachineRoom::new(["room1"]);
        let ids = cids(&["CID_PREFIX0", "CID_PREFIX1"]);
        assert!(allocate(&s, "", "CID_PREFIX0", &[], &ids).is_empty());
        assert_eq!(
            ids_of(&allocate(&s, "", "CID_PREFIX0", &mqs, &ids)),
            vec![0, 1, 4]
        );
        assert_eq!(
            ids_of(&allocate(&s, "", "CID_PREFIX1", &mqs, &ids)),
            vec![2, 3]
        );
        assert_eq!(s.name(), "MACHINE_ROOM");
    }

    #[test]
    fn remainder_comes_from_the_tail() {
        // 8 served queues, 3 consumers: quotient 2, remainder 2.
        let mqs: Vec<MessageQueue> = (0..8).map(|i| MessageQueue::new("T", "r@b", i)).collect();
        let s = ByMachineRoom::new(["r"]);
        let ids = cids(&["c0", "c1", "c2"]);
        let got: Vec<Vec<i32>> = ids
            .iter()
            .map(|c| ids_of(&allocate(&s, "G", c, &mqs, &ids)))
            .collect();
        assert_eq!(got, vec![vec![0, 1, 6], vec![2, 3, 7], vec![4, 5]]);
        // More consumers than served queues.
        let ids = cids(&["c0", "c1", "c2", "c3"]);
        let two = &mqs[..2];
        let got: Vec<Vec<i32>> = ids
            .iter()
            .map(|c| ids_of(&allocate(&s, "G", c, two, &ids)))
            .collect();
        assert_eq!(got, vec![vec![0], vec![1], vec![], vec![]]);
    }

    #[test]
    fn broker_names_split_as_java_does() {
        let s = ByMachineRoom::new(["r", ""]);
        assert!(s.serves("r@b"));
        assert!(s.serves("r@b@"));
        assert!(s.serves("r@b@@"));
        assert!(s.serves("@b"));
        assert!(!s.serves("r@b@c"));
        assert!(!s.serves("r@"));
        assert!(!s.serves("r"));
        assert!(!s.serves("@"));
        assert!(!s.serves(""));
        assert!(!s.serves("x@b"));
        assert!(!ByMachineRoom::default().serves("r@b"));
    }

    proptest! {
        /// Every queue of a served room goes to exactly one consumer, no
        /// other queue goes to anyone, and input order does not matter.
        #[test]
        fn served_queues_exactly_once_in_any_order(sets in mq_and_cid_sets()) {
            let s = ByMachineRoom::new(["r1", "r2"]);
            let owners = owners(&s, &sets);
            let mut served: Vec<MessageQueue> = sets
                .mqs
                .iter()
                .filter(|mq| mq.broker_name.starts_with("r1@") || mq.broker_name.starts_with("r2@"))
                .cloned()
                .collect();
            served.sort();
            served.dedup();
            let handed: Vec<MessageQueue> = owners.keys().cloned().collect();
            prop_assert_eq!(handed, served);
            for who in owners.values() {
                prop_assert_eq!(who.len(), 1);
            }
        }
    }
}
