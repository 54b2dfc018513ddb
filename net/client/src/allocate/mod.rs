//! Queue allocation strategies for client-side rebalancing, with RocketMQ's
//! arithmetic (package `org.apache.rocketmq.client.consumer.rebalance`).
//!
//! During a rebalance every consumer of a group sees the same queue list and
//! the same consumer id list, sorts both, and asks a strategy for its own
//! share; since all consumers run the same deterministic rule, the shares do
//! not overlap. [`allocate`] does the sorting (in Java's `compareTo` order,
//! see [`order`]) and de-duplication, then calls the strategy.
//!
//! | RocketMQ name | type | file |
//! | --- | --- | --- |
//! | `AVG` | [`Averagely`] | `average.rs` |
//! | `AVG_BY_CIRCLE` | [`AveragelyByCircle`] | `circle.rs` |
//! | `CONSISTENT_HASH` | [`ConsistentHash`] (ring: [`ConsistentHashRouter`]) | `consistent_hash.rs`, `hash_router.rs` |
//! | `CONFIG` | [`ByConfig`] | `config.rs` |
//! | `MACHINE_ROOM` | [`ByMachineRoom`] | `machine_room.rs` |
//! | `MACHINE_ROOM_NEARBY-<inner>` | [`MachineRoomNearby`] | `nearby.rs` |
//!
//! Where Java throws `IllegalArgumentException` (empty current id, queue list
//! or id list; an empty machine room in `MACHINE_ROOM_NEARBY`), these
//! strategies log a warning and return an empty share, since the trait returns
//! a plain list; [`check`] reports those cases as a [`CheckError`] for callers
//! that want to tell them apart (RocketMQ's rebalance keeps its previous
//! queues when the strategy throws).

use std::fmt;

use super::route::MessageQueue;

mod average;
mod circle;
mod config;
mod consistent_hash;
mod hash_router;
mod machine_room;
mod nearby;
pub mod order;

#[cfg(test)]
mod testutil;

pub use average::Averagely;
pub use circle::AveragelyByCircle;
pub use config::ByConfig;
pub use consistent_hash::{java_message_queue_string, ConsistentHash, DEFAULT_VIRTUAL_NODES};
pub use hash_router::{md5_hash, ConsistentHashRouter, HashFunction};
pub use machine_room::ByMachineRoom;
pub use nearby::{AtSignRoomResolver, MachineRoomNearby, MachineRoomResolver};

/// A rule that gives one consumer of a group its share of a topic's queues
/// (RocketMQ's `AllocateMessageQueueStrategy`).
pub trait AllocateStrategy: Send + Sync + fmt::Debug {
    /// RocketMQ's name of the strategy (`AVG`, `AVG_BY_CIRCLE`, ...), as
    /// `AllocateMessageQueueStrategy.getName()` returns it.
    fn name(&self) -> &str;
    /// The queues of `mq_all` that `current_cid` consumes. `mq_all` and
    /// `cid_all` arrive sorted and without duplicates (see [`allocate`]).
    fn allocate(
        &self,
        consumer_group: &str,
        current_cid: &str,
        mq_all: &[MessageQueue],
        cid_all: &[String],
    ) -> Vec<MessageQueue>;
}

/// Sorts and de-duplicates both lists the way RocketMQ's rebalance does
/// (`RebalanceImpl`: queues from a set, then `Collections.sort` of queues and
/// client ids), then asks the strategy for `current_cid`'s share.
pub fn allocate(
    strategy: &dyn AllocateStrategy,
    consumer_group: &str,
    current_cid: &str,
    mqs: &[MessageQueue],
    cids: &[String],
) -> Vec<MessageQueue> {
    let mut mq_all = mqs.to_vec();
    mq_all.sort_by(order::cmp_message_queue);
    mq_all.dedup();
    let mut cid_all = cids.to_vec();
    cid_all.sort_by(|a, b| order::cmp_str(a, b));
    cid_all.dedup();
    strategy.allocate(consumer_group, current_cid, &mq_all, &cid_all)
}

/// The simple strategies by their RocketMQ name: `AVG`, `AVG_BY_CIRCLE` and
/// `CONSISTENT_HASH` (10 virtual nodes). `CONFIG`, `MACHINE_ROOM` and
/// `MACHINE_ROOM_NEARBY` need configuration, so they give `None` here.
pub fn by_name(name: &str) -> Option<Box<dyn AllocateStrategy>> {
    match name {
        "AVG" => Some(Box::new(Averagely)),
        "AVG_BY_CIRCLE" => Some(Box::new(AveragelyByCircle)),
        "CONSISTENT_HASH" => Some(Box::new(ConsistentHash::default())),
        _ => None,
    }
}

/// Why [`check`] refused an allocation (`AbstractAllocateMessageQueueStrategy.check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckError {
    /// Java throws `IllegalArgumentException("currentCID is empty")`.
    EmptyCurrentCid,
    /// Java throws `IllegalArgumentException("mqAll is null or mqAll empty")`.
    EmptyMqAll,
    /// Java throws `IllegalArgumentException("cidAll is null or cidAll empty")`.
    EmptyCidAll,
    /// Java logs `[BUG] ... not in cidAll` and allocates nothing.
    NotInCidAll,
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CheckError::EmptyCurrentCid => "currentCID is empty",
            CheckError::EmptyMqAll => "mqAll is null or mqAll empty",
            CheckError::EmptyCidAll => "cidAll is null or cidAll empty",
            CheckError::NotInCidAll => "current consumer id not in cidAll",
        })
    }
}

impl std::error::Error for CheckError {}

/// RocketMQ's argument check shared by all strategies but `CONFIG`, in Java's
/// order: empty current id, empty queue list, empty id list, then current id
/// missing from the id list. On success gives the current id's index in
/// `cid_all` (Java's `cidAll.indexOf(currentCID)`).
pub fn check(
    current_cid: &str,
    mq_all: &[MessageQueue],
    cid_all: &[String],
) -> Result<usize, CheckError> {
    if current_cid.is_empty() {
        return Err(CheckError::EmptyCurrentCid);
    }
    if mq_all.is_empty() {
        return Err(CheckError::EmptyMqAll);
    }
    if cid_all.is_empty() {
        return Err(CheckError::EmptyCidAll);
    }
    cid_all
        .iter()
        .position(|c| c == current_cid)
        .ok_or(CheckError::NotInCidAll)
}

/// [`check`] with RocketMQ's logging: the "not in cidAll" case is logged at
/// info level as Java does, the cases where Java throws at warn level.
pub(crate) fn checked_index(
    consumer_group: &str,
    current_cid: &str,
    mq_all: &[MessageQueue],
    cid_all: &[String],
) -> Option<usize> {
    match check(current_cid, mq_all, cid_all) {
        Ok(index) => Some(index),
        Err(CheckError::NotInCidAll) => {
            tracing::info!(
                "[BUG] ConsumerGroup: {consumer_group} The consumerId: {current_cid} not in cidAll: {cid_all:?}"
            );
            None
        }
        Err(e) => {
            tracing::warn!("allocate for group {consumer_group}: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::{cids, queues};
    use super::*;

    #[test]
    fn check_follows_java_order() {
        let mqs = queues("T", "b", 2);
        let ids = cids(&["c0", "c1"]);
        assert_eq!(check("", &[], &[]), Err(CheckError::EmptyCurrentCid));
        assert_eq!(check("c0", &[], &[]), Err(CheckError::EmptyMqAll));
        assert_eq!(check("c0", &mqs, &[]), Err(CheckError::EmptyCidAll));
        assert_eq!(check("c9", &mqs, &ids), Err(CheckError::NotInCidAll));
        assert_eq!(check("c1", &mqs, &ids), Ok(1));
        assert_eq!(
            CheckError::EmptyMqAll.to_string(),
            "mqAll is null or mqAll empty"
        );
    }

    #[test]
    fn failed_check_gives_nothing() {
        let mqs = queues("T", "b", 4);
        let ids = cids(&["c0", "c1"]);
        for s in ["AVG", "AVG_BY_CIRCLE", "CONSISTENT_HASH"] {
            let s = by_name(s).unwrap();
            assert!(allocate(&*s, "G", "c9", &mqs, &ids).is_empty());
            assert!(allocate(&*s, "G", "", &mqs, &ids).is_empty());
            assert!(allocate(&*s, "G", "c0", &[], &ids).is_empty());
            assert!(allocate(&*s, "G", "c0", &mqs, &[]).is_empty());
        }
    }

    #[test]
    fn by_name_knows_the_simple_ones() {
        for n in ["AVG", "AVG_BY_CIRCLE", "CONSISTENT_HASH"] {
            assert_eq!(by_name(n).unwrap().name(), n);
        }
        for n in ["CONFIG", "MACHINE_ROOM", "MACHINE_ROOM_NEARBY", "avg", ""] {
            assert!(by_name(n).is_none());
        }
    }

    #[test]
    fn allocate_sorts_and_dedups_like_java() {
        // Client ids sort by UTF-16 code unit, as Java's String.compareTo:
        // U+10000 (surrogates D800 DC00) comes before U+FFFD there, though
        // after it in UTF-8 byte order.
        let ids = cids(&["\u{FFFD}", "\u{10000}", "\u{FFFD}"]);
        let mqs = queues("T", "b", 2);
        let mut twice = mqs.clone();
        twice.extend(mqs.iter().rev().cloned());
        let first = allocate(&Averagely, "G", "\u{10000}", &twice, &ids);
        assert_eq!(first, vec![mqs[0].clone()]);
        let second = allocate(&Averagely, "G", "\u{FFFD}", &twice, &ids);
        assert_eq!(second, vec![mqs[1].clone()]);
    }
}
