//! RocketMQ's hash ring, `org.apache.rocketmq.common.consistenthash`:
//! `ConsistentHashRouter`, `VirtualNode` and the default `MD5Hash`.

use std::collections::BTreeMap;

use md5::{Digest, Md5};

/// RocketMQ's `HashFunction`: a string to a Java `long`.
pub type HashFunction = fn(&str) -> i64;

/// RocketMQ's default ring hash (`ConsistentHashRouter.MD5Hash`): the MD5 of
/// the key's UTF-8 bytes, first four digest bytes folded big-endian into a
/// long (`h <<= 8; h |= digest[i] & 0xFF`), so always in `0..2^32`.
pub fn md5_hash(key: &str) -> i64 {
    let digest = Md5::digest(key.as_bytes());
    i64::from(u32::from_be_bytes([
        digest[0], digest[1], digest[2], digest[3],
    ]))
}

/// One replica of a physical node on the ring (`VirtualNode`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct VirtualNode {
    physical: String,
    replica: usize,
}

impl VirtualNode {
    /// `VirtualNode.getKey()`: `physicalKey + "-" + replicaIndex`.
    fn key(&self) -> String {
        format!("{}-{}", self.physical, self.replica)
    }
}

/// RocketMQ's `ConsistentHashRouter`: physical nodes (client ids) placed on a
/// ring of `long` hashes through virtual nodes; a key is routed to the first
/// virtual node whose hash is at or after the key's hash (`tailMap`), wrapping
/// to the smallest. A later virtual node whose hash collides with an earlier
/// one replaces it, as `TreeMap.put` does.
#[derive(Debug, Clone)]
pub struct ConsistentHashRouter {
    ring: BTreeMap<i64, VirtualNode>,
    hash: HashFunction,
}

impl ConsistentHashRouter {
    /// A ring of `nodes`, in the order given, `vnode_count` virtual nodes
    /// each, hashed with [`md5_hash`] (`new ConsistentHashRouter(pNodes, vNodeCount)`).
    pub fn new<'a>(nodes: impl IntoIterator<Item = &'a str>, vnode_count: usize) -> Self {
        Self::with_hash(nodes, vnode_count, md5_hash)
    }

    /// Same as [`new`](Self::new) with a custom hash function.
    pub fn with_hash<'a>(
        nodes: impl IntoIterator<Item = &'a str>,
        vnode_count: usize,
        hash: HashFunction,
    ) -> Self {
        let mut router = Self {
            ring: BTreeMap::new(),
            hash,
        };
        for node in nodes {
            router.add_node(node, vnode_count);
        }
        router
    }

    /// `addNode`: adds `vnode_count` more virtual nodes for `node`, numbered
    /// after the ones it already has.
    pub fn add_node(&mut self, node: &str, vnode_count: usize) {
        let existing = self.existing_replicas(node);
        for i in 0..vnode_count {
            let vnode = VirtualNode {
                physical: node.to_string(),
                replica: i + existing,
            };
            self.ring.insert((self.hash)(&vnode.key()), vnode);
        }
    }

    /// `removeNode`: drops every virtual node of `node`.
    pub fn remove_node(&mut self, node: &str) {
        self.ring.retain(|_, v| v.physical != node);
    }

    /// `routeNode`: the physical node that owns `key`, `None` on an empty ring.
    pub fn route_node(&self, key: &str) -> Option<&str> {
        let h = (self.hash)(key);
        self.ring
            .range(h..)
            .next()
            .or_else(|| self.ring.iter().next())
            .map(|(_, v)| v.physical.as_str())
    }

    /// `getExistingReplicas`: how many virtual nodes `node` has on the ring.
    pub fn existing_replicas(&self, node: &str) -> usize {
        self.ring.values().filter(|v| v.physical == node).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_hash_matches_an_independent_md5() {
        // Expected values from python3's hashlib, not from this crate:
        //   python3 -c 'import hashlib,sys; [print(repr(s), int.from_bytes(
        //     hashlib.md5(s.encode()).digest()[:4], "big")) for s in sys.argv[1:]]' \
        //     CID-0-0 CID-1-0 a 'MessageQueue [topic=topic_test, brokerName=brokerName, queueId=0]'
        // md5("CID-0-0") starts 71479af9, md5("a") 0cc175b9, and the queue
        // string 81744117: its top bit is set, and the fold stays unsigned.
        assert_eq!(md5_hash("CID-0-0"), 1_900_518_137);
        assert_eq!(md5_hash("CID-1-0"), 1_110_034_835);
        assert_eq!(md5_hash("a"), 214_005_177);
        assert_eq!(
            md5_hash("MessageQueue [topic=topic_test, brokerName=brokerName, queueId=0]"),
            2_171_879_703
        );
    }

    fn toy(key: &str) -> i64 {
        match key {
            "a-0" => 10,
            "b-0" => 20,
            "k5" => 5,
            "k10" => 10,
            "k15" => 15,
            "k25" => 25,
            _ => 0,
        }
    }

    #[test]
    fn routes_to_first_key_at_or_after_and_wraps() {
        let r = ConsistentHashRouter::with_hash(["a", "b"], 1, toy);
        assert_eq!(r.route_node("k5"), Some("a"));
        assert_eq!(r.route_node("k10"), Some("a"));
        assert_eq!(r.route_node("k15"), Some("b"));
        assert_eq!(r.route_node("k25"), Some("a"));
    }

    #[test]
    fn later_colliding_virtual_node_wins() {
        let r = ConsistentHashRouter::with_hash(["a", "b"], 3, |_| 7);
        assert_eq!(r.route_node("anything"), Some("b"));
        assert_eq!(r.existing_replicas("a"), 0);
        assert_eq!(r.existing_replicas("b"), 1);
    }

    #[test]
    fn add_numbers_after_existing_and_remove_drops_all() {
        let mut r = ConsistentHashRouter::new(["a"], 2);
        r.add_node("a", 3);
        assert_eq!(r.existing_replicas("a"), 5);
        let keys: Vec<String> = r.ring.values().map(VirtualNode::key).collect();
        for i in 0..5 {
            assert!(keys.contains(&format!("a-{i}")));
        }
        r.remove_node("a");
        assert_eq!(r.route_node("x"), None);
        assert_eq!(ConsistentHashRouter::new(["a"], 0).route_node("x"), None);
    }
}
