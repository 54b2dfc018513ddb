//! `MACHINE_ROOM_NEARBY`: RocketMQ's `AllocateMachineRoomNearby`.

use std::collections::BTreeMap;
use std::fmt;

use super::consistent_hash::java_message_queue_string;
use super::order::JavaString;
use super::{checked_index, AllocateStrategy};
use crate::route::MessageQueue;

/// RocketMQ's `AllocateMachineRoomNearby.MachineRoomResolver`: which machine
/// room a queue's broker and a consumer are deployed in. An empty answer is
/// an error (Java throws; see [`MachineRoomNearby`]).
pub trait MachineRoomResolver: Send + Sync + fmt::Debug {
    /// `brokerDeployIn`: the room of the broker holding `mq`.
    fn broker_deploy_in(&self, mq: &MessageQueue) -> String;
    /// `consumerDeployIn`: the room of the consumer with this client id.
    fn consumer_deploy_in(&self, client_id: &str) -> String;
}

/// A resolver that reads the room as the text before the first `@` of the
/// broker name and of the client id (the whole text when there is no `@`),
/// like Java's `name.split("@")[0]`; it fits broker names in `MACHINE_ROOM`'s
/// `room@broker` form. RocketMQ's own client ids are `ip@instanceName`, so
/// with them this yields the IP; deployments whose client ids do not start
/// with the room need their own [`MachineRoomResolver`].
#[derive(Debug, Default, Clone, Copy)]
pub struct AtSignRoomResolver;

impl AtSignRoomResolver {
    fn room(name: &str) -> String {
        name.split('@').next().unwrap_or_default().to_string()
    }
}

impl MachineRoomResolver for AtSignRoomResolver {
    fn broker_deploy_in(&self, mq: &MessageQueue) -> String {
        Self::room(&mq.broker_name)
    }

    fn consumer_deploy_in(&self, client_id: &str) -> String {
        Self::room(client_id)
    }
}

/// `MACHINE_ROOM_NEARBY-<inner>` (`AllocateMachineRoomNearby`): the queues of
/// a room that has live consumers are shared, by the inner strategy, among
/// that room's consumers only; the queues of each room without consumers are
/// shared by the inner strategy among all consumers. A consumer's share is its
/// own room's part followed by its part of each consumer-less room, rooms in
/// Java `String` order.
///
/// Where Java throws because the resolver gave an empty room, this logs a
/// warning and gives an empty share.
#[derive(Debug)]
pub struct MachineRoomNearby {
    inner: Box<dyn AllocateStrategy>,
    resolver: Box<dyn MachineRoomResolver>,
    name: String,
}

impl MachineRoomNearby {
    /// `new AllocateMachineRoomNearby(allocateMessageQueueStrategy, machineRoomResolver)`.
    pub fn new(inner: Box<dyn AllocateStrategy>, resolver: Box<dyn MachineRoomResolver>) -> Self {
        let name = format!("MACHINE_ROOM_NEARBY-{}", inner.name());
        Self {
            inner,
            resolver,
            name,
        }
    }

    /// [`new`](Self::new) with the [`AtSignRoomResolver`].
    pub fn with_default_resolver(inner: Box<dyn AllocateStrategy>) -> Self {
        Self::new(inner, Box::new(AtSignRoomResolver))
    }
}

impl AllocateStrategy for MachineRoomNearby {
    /// `MACHINE_ROOM_NEARBY-` followed by the inner strategy's name.
    fn name(&self) -> &str {
        &self.name
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
        // Group queues and consumers by room, keeping list order inside each
        // room (Java: TreeMap<String, List<_>>).
        let mut mr2mq: BTreeMap<JavaString, Vec<MessageQueue>> = BTreeMap::new();
        for mq in mq_all {
            let room = self.resolver.broker_deploy_in(mq);
            if room.is_empty() {
                tracing::warn!(
                    "allocate for group {consumer_group}: Machine room is null for mq {}",
                    java_message_queue_string(mq)
                );
                return Vec::new();
            }
            mr2mq.entry(JavaString(room)).or_default().push(mq.clone());
        }
        let mut mr2c: BTreeMap<JavaString, Vec<String>> = BTreeMap::new();
        for cid in cid_all {
            let room = self.resolver.consumer_deploy_in(cid);
            if room.is_empty() {
                tracing::warn!(
                    "allocate for group {consumer_group}: Machine room is null for consumer id {cid}"
                );
                return Vec::new();
            }
            mr2c.entry(JavaString(room)).or_default().push(cid.clone());
        }

        let mut result = Vec::new();
        // 1. This consumer's room: its queues among its consumers.
        let here = JavaString(self.resolver.consumer_deploy_in(current_cid));
        if let Some(mqs) = mr2mq.remove(&here) {
            let consumers = mr2c.get(&here).map(Vec::as_slice).unwrap_or_default();
            result.extend(
                self.inner
                    .allocate(consumer_group, current_cid, &mqs, consumers),
            );
        }
        // 2. Rooms with no live consumer: their queues among everyone.
        for (room, mqs) in &mr2mq {
            if !mr2c.contains_key(room) {
                result.extend(
                    self.inner
                        .allocate(consumer_group, current_cid, mqs, cid_all),
                );
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::super::testutil::{assert_partition, cids, mq_and_cid_sets, owners};
    use super::super::{allocate, AllocateStrategy, Averagely, AveragelyByCircle, ConsistentHash};
    use super::*;
    use proptest::prelude::*;

    /// The resolver of AllocateMachineRoomNearByTest: `split("-")[0]`.
    #[derive(Debug)]
    struct DashResolver;

    impl MachineRoomResolver for DashResolver {
        fn broker_deploy_in(&self, mq: &MessageQueue) -> String {
            mq.broker_name
                .split('-')
                .next()
                .unwrap_or_default()
                .to_string()
        }
        fn consumer_deploy_in(&self, client_id: &str) -> String {
            client_id.split('-').next().unwrap_or_default().to_string()
        }
    }

    fn nearby_avg() -> MachineRoomNearby {
        MachineRoomNearby::new(Box::new(Averagely), Box::new(DashResolver))
    }

    /// `prepareMQ`: `queue_size` queues on `IDC<i>-brokerName` for i in 1..=idcs.
    fn prepare_mq(idcs: usize, queue_size: usize) -> Vec<MessageQueue> {
        (1..=idcs)
            .flat_map(|i| {
                (0..queue_size as i32)
                    .map(move |q| MessageQueue::new("topic_test", format!("IDC{i}-brokerName"), q))
            })
            .collect()
    }

    /// `prepareConsumer`: `IDC<i>-CID-<j>`.
    fn prepare_consumer(idcs: usize, consumer_size: usize) -> Vec<String> {
        (1..=idcs)
            .flat_map(|i| (0..consumer_size).map(move |j| format!("IDC{i}-CID-{j}")))
            .collect()
    }

    /// Every consumer's share; panics if a queue goes twice or is left out.
    fn all_shares(
        s: &MachineRoomNearby,
        mqs: &[MessageQueue],
        ids: &[String],
    ) -> Vec<(String, Vec<MessageQueue>)> {
        let shares: Vec<(String, Vec<MessageQueue>)> = ids
            .iter()
            .map(|c| (c.clone(), allocate(s, "Test-C-G", c, mqs, ids)))
            .collect();
        let mut handed: Vec<MessageQueue> = shares.iter().flat_map(|(_, q)| q.clone()).collect();
        handed.sort();
        let mut want = if ids.is_empty() {
            Vec::new()
        } else {
            mqs.to_vec()
        };
        want.sort();
        assert_eq!(handed, want, "hasAllocateAllQ");
        shares
    }

    fn when_idc_size_equals(idcs: usize, queue_size: usize, consumer_size: usize) {
        let s = nearby_avg();
        let ids = prepare_consumer(idcs, consumer_size);
        let mqs = prepare_mq(idcs, queue_size);
        for (cid, share) in all_shares(&s, &mqs, &ids) {
            for mq in share {
                assert_eq!(
                    DashResolver.broker_deploy_in(&mq),
                    DashResolver.consumer_deploy_in(&cid)
                );
            }
        }
    }

    fn when_consumer_idc_is_more(
        broker_idcs: usize,
        more: usize,
        queue_size: usize,
        consumer_size: usize,
    ) {
        let s = nearby_avg();
        let ids = prepare_consumer(broker_idcs + more, consumer_size);
        let mqs = prepare_mq(broker_idcs, queue_size);
        for (cid, share) in all_shares(&s, &mqs, &ids) {
            // Every broker room has consumers here, so only they get its queues.
            for mq in share {
                assert_eq!(
                    DashResolver.broker_deploy_in(&mq),
                    DashResolver.consumer_deploy_in(&cid)
                );
            }
        }
    }

    fn when_consumer_idc_is_less(
        broker_idcs: usize,
        less: usize,
        queue_size: usize,
        consumer_size: usize,
    ) {
        let s = nearby_avg();
        let ids = prepare_consumer(broker_idcs - less, consumer_size);
        let mqs = prepare_mq(broker_idcs, queue_size);
        let mut by_room: BTreeMap<String, BTreeSet<MessageQueue>> = BTreeMap::new();
        for (cid, share) in all_shares(&s, &mqs, &ids) {
            by_room
                .entry(DashResolver.consumer_deploy_in(&cid))
                .or_default()
                .extend(share);
        }
        for (room, got) in &by_room {
            for q in 0..queue_size as i32 {
                let mq = MessageQueue::new("topic_test", format!("{room}-brokerName"), q);
                assert!(got.contains(&mq), "{room} lacks its own {mq}");
            }
        }
    }

    #[test]
    fn rocketmq_unit_test_1_idc_size_equals() {
        for consumers in [10, 20, 30, 0] {
            when_idc_size_equals(5, 20, consumers);
        }
    }

    #[test]
    fn rocketmq_unit_test_2_consumer_idc_is_more() {
        for consumers in [10, 5, 20, 0] {
            when_consumer_idc_is_more(5, 1, 10, consumers);
        }
    }

    #[test]
    fn rocketmq_unit_test_3_consumer_idc_is_less() {
        for consumers in [10, 5, 20, 0] {
            when_consumer_idc_is_less(5, 2, 10, consumers);
        }
    }

    #[test]
    fn worked_case_own_room_then_orphan_rooms() {
        // IDC1: 4 queues, consumers IDC1-CID-0/1; IDC2: 4 queues, consumer
        // IDC2-CID-0; IDC3: 2 queues, no consumer, so AVG over all three
        // consumers: 2 queues / 3 consumers gives one each to the first two.
        let mut mqs = prepare_mq(2, 4);
        mqs.extend((0..2).map(|q| MessageQueue::new("topic_test", "IDC3-brokerName", q)));
        let ids = cids(&["IDC1-CID-0", "IDC1-CID-1", "IDC2-CID-0"]);
        let s = nearby_avg();
        let show = |c: &str| -> Vec<String> {
            allocate(&s, "G", c, &mqs, &ids)
                .iter()
                .map(|m| format!("{}:{}", &m.broker_name[..4], m.queue_id))
                .collect()
        };
        assert_eq!(show("IDC1-CID-0"), ["IDC1:0", "IDC1:1", "IDC3:0"]);
        assert_eq!(show("IDC1-CID-1"), ["IDC1:2", "IDC1:3", "IDC3:1"]);
        assert_eq!(show("IDC2-CID-0"), ["IDC2:0", "IDC2:1", "IDC2:2", "IDC2:3"]);
        assert_eq!(s.name(), "MACHINE_ROOM_NEARBY-AVG");
    }

    #[test]
    fn empty_room_gives_nothing() {
        let s = MachineRoomNearby::with_default_resolver(Box::new(Averagely));
        let mqs = vec![
            MessageQueue::new("T", "@b", 0),
            MessageQueue::new("T", "r@b", 1),
        ];
        let ids = cids(&["r@c0"]);
        assert!(allocate(&s, "G", "r@c0", &mqs, &ids).is_empty());
        let ids = cids(&["@c0", "r@c1"]);
        assert!(allocate(&s, "G", "r@c1", &mqs[1..], &ids).is_empty());
    }

    #[test]
    fn at_sign_resolver_reads_text_before_first_at() {
        let r = AtSignRoomResolver;
        assert_eq!(
            r.broker_deploy_in(&MessageQueue::new("T", "room1@broker-a", 0)),
            "room1"
        );
        assert_eq!(
            r.broker_deploy_in(&MessageQueue::new("T", "broker-a", 0)),
            "broker-a"
        );
        assert_eq!(r.consumer_deploy_in("room2@10.0.0.1@inst"), "room2");
        assert_eq!(r.consumer_deploy_in("@x"), "");
    }

    fn inner(choice: u8) -> Box<dyn AllocateStrategy> {
        match choice {
            0 => Box::new(Averagely),
            1 => Box::new(AveragelyByCircle),
            _ => Box::new(ConsistentHash::default()),
        }
    }

    proptest! {
        #[test]
        fn every_queue_exactly_once_in_any_order(sets in mq_and_cid_sets(), choice in 0u8..3) {
            let s = MachineRoomNearby::with_default_resolver(inner(choice));
            assert_partition(&s, &sets);
            // Queues of a room with consumers stay in that room.
            let rooms: BTreeSet<String> =
                sets.cids.iter().map(|c| AtSignRoomResolver.consumer_deploy_in(c)).collect();
            for (mq, who) in owners(&s, &sets) {
                let room = AtSignRoomResolver.broker_deploy_in(&mq);
                if rooms.contains(&room) {
                    prop_assert_eq!(AtSignRoomResolver.consumer_deploy_in(&who[0]), room);
                }
            }
        }

        /// testRun10RandomCase, sizes capped.
        #[test]
        fn rocketmq_random_cases(
            consumer_size in 1usize..=8,
            queue_size in 1usize..=12,
            broker_idcs in 1usize..=5,
            consumer_idcs in 1usize..=5,
        ) {
            if broker_idcs == consumer_idcs {
                when_idc_size_equals(broker_idcs, queue_size, consumer_size);
            } else if broker_idcs > consumer_idcs {
                when_consumer_idc_is_less(broker_idcs, broker_idcs - consumer_idcs, queue_size, consumer_size);
            } else {
                when_consumer_idc_is_more(broker_idcs, consumer_idcs - broker_idcs, queue_size, consumer_size);
            }
        }
    }
}
