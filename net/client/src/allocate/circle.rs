//! `AVG_BY_CIRCLE`: RocketMQ's `AllocateMessageQueueAveragelyByCircle`.

use super::{checked_index, AllocateStrategy};
use crate::route::MessageQueue;

/// `AVG_BY_CIRCLE` (`AllocateMessageQueueAveragelyByCircle`): deals the
/// sorted queues out like cards, so consumer `i` of `c` gets every queue whose
/// position `p` has `p % c == i`.
#[derive(Debug, Default, Clone, Copy)]
pub struct AveragelyByCircle;

impl AllocateStrategy for AveragelyByCircle {
    fn name(&self) -> &str {
        "AVG_BY_CIRCLE"
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
        // Java: for (i = index; i < size; i++) if (i % cidAll.size() == index).
        mq_all
            .iter()
            .skip(index)
            .step_by(cid_all.len())
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{assert_partition, cids, ids_of, mq_and_cid_sets, queues};
    use super::super::{allocate, AllocateStrategy};
    use super::*;
    use proptest::prelude::*;

    fn shares(mqs: usize, consumers: usize) -> Vec<Vec<i32>> {
        let mq_all = queues("T", "b", mqs);
        let names: Vec<String> = (0..consumers).map(|i| format!("c{i:02}")).collect();
        names
            .iter()
            .map(|c| ids_of(&allocate(&AveragelyByCircle, "G", c, &mq_all, &names)))
            .collect()
    }

    #[test]
    fn eight_queues_three_consumers() {
        assert_eq!(shares(8, 3), vec![vec![0, 3, 6], vec![1, 4, 7], vec![2, 5]]);
    }

    #[test]
    fn rocketmq_unit_test_ten_queues_four_consumers() {
        // AllocateMessageQueueAveragelyByCircleTest.
        assert_eq!(
            shares(10, 4),
            vec![vec![0, 4, 8], vec![1, 5, 9], vec![2, 6], vec![3, 7]]
        );
        let mq_all = queues("T", "b", 10);
        let ids = cids(&["CID_PREFIX0", "CID_PREFIX1"]);
        assert!(allocate(&AveragelyByCircle, "", "CID_PREFIX", &mq_all, &ids).is_empty());
        assert_eq!(AveragelyByCircle.name(), "AVG_BY_CIRCLE");
    }

    #[test]
    fn more_consumers_than_queues() {
        assert_eq!(shares(2, 4), vec![vec![0], vec![1], vec![], vec![]]);
    }

    proptest! {
        #[test]
        fn every_queue_exactly_once_in_any_order(sets in mq_and_cid_sets()) {
            assert_partition(&AveragelyByCircle, &sets);
        }
    }
}
