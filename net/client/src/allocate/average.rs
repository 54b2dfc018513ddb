//! `AVG`: RocketMQ's `AllocateMessageQueueAveragely`.

use super::{checked_index, AllocateStrategy};
use crate::route::MessageQueue;

/// `AVG` (`AllocateMessageQueueAveragely`): each consumer gets one contiguous
/// run of the sorted queues; with `n` queues and `c` consumers the first
/// `n % c` consumers get `n / c + 1` queues and the rest `n / c`. With more
/// consumers than queues, consumer `i < n` gets queue `i` and the rest none.
#[derive(Debug, Default, Clone, Copy)]
pub struct Averagely;

impl AllocateStrategy for Averagely {
    fn name(&self) -> &str {
        "AVG"
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
        // Java's int arithmetic, term for term.
        let (n, c) = (mq_all.len(), cid_all.len());
        let modulo = n % c;
        let average_size = if n <= c {
            1
        } else if modulo > 0 && index < modulo {
            n / c + 1
        } else {
            n / c
        };
        let start = if modulo > 0 && index < modulo {
            index * average_size
        } else {
            index * average_size + modulo
        };
        // Java: Math.min(averageSize, mqAll.size() - startIndex), and a
        // negative range runs the loop zero times.
        let range = average_size.min(n.saturating_sub(start));
        mq_all[start.min(n)..start.min(n) + range].to_vec()
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
            .map(|c| ids_of(&allocate(&Averagely, "G", c, &mq_all, &names)))
            .collect()
    }

    #[test]
    fn eight_queues_three_consumers() {
        assert_eq!(shares(8, 3), vec![vec![0, 1, 2], vec![3, 4, 5], vec![6, 7]]);
    }

    #[test]
    fn rocketmq_unit_test_ten_queues_four_consumers() {
        // AllocateMessageQueueAveragelyTest: sizes 3, 3, 2, 2.
        let sizes: Vec<usize> = shares(10, 4).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![3, 3, 2, 2]);
        assert_eq!(
            shares(10, 4),
            vec![vec![0, 1, 2], vec![3, 4, 5], vec![6, 7], vec![8, 9]]
        );
    }

    #[test]
    fn more_consumers_than_queues() {
        assert_eq!(
            shares(3, 5),
            vec![vec![0], vec![1], vec![2], vec![], vec![]]
        );
    }

    #[test]
    fn consumer_not_in_list_gets_nothing() {
        let mq_all = queues("T", "b", 4);
        assert!(allocate(&Averagely, "G", "x", &mq_all, &cids(&["a", "b"])).is_empty());
        assert_eq!(Averagely.name(), "AVG");
    }

    proptest! {
        #[test]
        fn every_queue_exactly_once_in_any_order(sets in mq_and_cid_sets()) {
            assert_partition(&Averagely, &sets);
        }
    }
}
