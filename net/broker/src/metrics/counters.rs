//! Per-topic and per-(topic, group) message and byte counters. The hot path (a network
//! core answering a send or a pull) finds its counter under a read lock and adds with
//! relaxed atomics; nothing is summed or sorted until a scrape or an admin request reads
//! them. A counter, once made, lives as long as the broker (a deleted topic's totals stay,
//! as Prometheus counters must).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use ringmq_engine::sync::{read, write};

/// Messages and bytes through one topic (or one topic and group).
#[derive(Debug, Default)]
pub struct Flow {
    pub messages: AtomicU64,
    pub bytes: AtomicU64,
}

impl Flow {
    pub fn add(&self, messages: u64, bytes: u64) {
        self.messages.fetch_add(messages, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn get(&self) -> (u64, u64) {
        (
            self.messages.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

/// A map of [`Flow`]s made on first use.
#[derive(Debug)]
pub struct FlowMap<K> {
    map: RwLock<HashMap<K, Arc<Flow>>>,
}

impl<K> Default for FlowMap<K> {
    fn default() -> Self {
        FlowMap {
            map: RwLock::new(HashMap::new()),
        }
    }
}

impl<K: std::hash::Hash + Eq + Clone + Ord> FlowMap<K> {
    /// The flow of `key` (made when missing; `make` builds the owned key only then).
    pub fn get<Q>(&self, key: &Q, make: impl FnOnce() -> K) -> Arc<Flow>
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        if let Some(f) = read(&self.map).get(key) {
            return Arc::clone(f);
        }
        Arc::clone(write(&self.map).entry(make()).or_default())
    }

    /// Adds to `key`'s flow.
    pub fn add<Q>(&self, key: &Q, make: impl FnOnce() -> K, messages: u64, bytes: u64)
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        if let Some(f) = read(&self.map).get(key) {
            f.add(messages, bytes);
            return;
        }
        self.get(key, make).add(messages, bytes);
    }

    /// (key, messages, bytes) of every flow, sorted by key.
    pub fn snapshot(&self) -> Vec<(K, u64, u64)> {
        let mut v: Vec<_> = read(&self.map)
            .iter()
            .map(|(k, f)| {
                let (m, b) = f.get();
                (k.clone(), m, b)
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// Counts of the send answers RocketMQ operators watch (response codes 10, 11, 12).
#[derive(Debug, Default)]
pub struct SendFailures {
    pub flush_disk_timeout: AtomicU64,
    pub slave_not_available: AtomicU64,
    pub flush_slave_timeout: AtomicU64,
}

impl SendFailures {
    /// Counts `n` answers with response `code` (other codes are ignored).
    pub fn count(&self, code: i32, n: u64) {
        use ringmq_remoting::codes::response_code as rs;
        let c = match code {
            rs::FLUSH_DISK_TIMEOUT => &self.flush_disk_timeout,
            rs::SLAVE_NOT_AVAILABLE => &self.slave_not_available,
            rs::FLUSH_SLAVE_TIMEOUT => &self.flush_slave_timeout,
            _ => return,
        };
        c.fetch_add(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_map_counts_per_key() {
        let m: FlowMap<String> = FlowMap::default();
        m.add("a", || "a".into(), 2, 20);
        m.add("b", || "b".into(), 1, 5);
        m.add("a", || "a".into(), 1, 10);
        assert_eq!(
            m.snapshot(),
            vec![("a".to_string(), 3, 30), ("b".to_string(), 1, 5)]
        );
        let pairs: FlowMap<(String, String)> = FlowMap::default();
        let key = ("t".to_string(), "g".to_string());
        pairs.add(&key, || key.clone(), 4, 4);
        assert_eq!(pairs.snapshot()[0].1, 4);
    }
}
