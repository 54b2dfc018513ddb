//! `CONFIG`: RocketMQ's `AllocateMessageQueueByConfig`.

use super::AllocateStrategy;
use crate::route::MessageQueue;

/// `CONFIG` (`AllocateMessageQueueByConfig`): always the configured queue
/// list, whatever the current queues and consumers are. As in Java there is
/// no argument check: every consumer using it gets the whole list, so the
/// configuration itself must keep consumers apart.
#[derive(Debug, Default, Clone)]
pub struct ByConfig {
    queues: Vec<MessageQueue>,
}

impl ByConfig {
    /// A strategy that hands out `queues` (`setMessageQueueList`).
    pub fn new(queues: Vec<MessageQueue>) -> Self {
        Self { queues }
    }

    /// The configured list (`getMessageQueueList`).
    pub fn queues(&self) -> &[MessageQueue] {
        &self.queues
    }
}

impl AllocateStrategy for ByConfig {
    fn name(&self) -> &str {
        "CONFIG"
    }

    fn allocate(
        &self,
        _consumer_group: &str,
        _current_cid: &str,
        _mq_all: &[MessageQueue],
        _cid_all: &[String],
    ) -> Vec<MessageQueue> {
        self.queues.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{cids, ids_of, queues};
    use super::super::{allocate, AllocateStrategy};
    use super::*;

    #[test]
    fn rocketmq_unit_test_every_consumer_gets_the_list() {
        // AllocateMessageQueueByConfigTest: both consumers get 0, 1, 2, 3.
        let mqs = queues("topic", "brokerName", 4);
        let s = ByConfig::new(mqs.clone());
        let ids = cids(&["CID_PREFIX0", "CID_PREFIX1"]);
        for c in &ids {
            assert_eq!(ids_of(&allocate(&s, "", c, &mqs, &ids)), vec![0, 1, 2, 3]);
        }
        // No check: not even an unknown consumer or empty lists change it.
        assert_eq!(allocate(&s, "", "nobody", &[], &[]), mqs);
        assert_eq!(s.queues(), &mqs[..]);
        assert_eq!(s.name(), "CONFIG");
        assert!(ByConfig::default().allocate("", "a", &mqs, &ids).is_empty());
    }
}
