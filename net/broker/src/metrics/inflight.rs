//! `rocketmq_consumer_inflight_messages`: what a group has pulled but not yet committed,
//! per topic. RocketMQ keeps a pull offset per (group, topic, queue) beside the consumer
//! offset and reports their difference; so does this. A pull that found messages raises
//! its queue's mark to the answer's next begin offset (a read-locked look-up and one
//! uncontended lock per pull); the scrape subtracts the committed offsets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use ringmq_engine::sync::{lock, read, write};

type QueueMarks = Mutex<HashMap<i32, i64>>;

/// (topic, group, [(queue id, pull offset)]).
pub type GroupMarks = (String, String, Vec<(i32, i64)>);

#[derive(Default)]
pub struct PullOffsets {
    /// topic -> group -> queue id -> next offset the group's pulls reached.
    map: RwLock<HashMap<String, HashMap<String, Arc<QueueMarks>>>>,
}

impl PullOffsets {
    /// Records that `group` pulled `topic`'s queue up to `next` (never moves back).
    pub fn record(&self, topic: &str, group: &str, queue_id: i32, next: i64) {
        let marks = read(&self.map)
            .get(topic)
            .and_then(|g| g.get(group))
            .cloned();
        let marks = match marks {
            Some(m) => m,
            None => Arc::clone(
                write(&self.map)
                    .entry(topic.to_string())
                    .or_default()
                    .entry(group.to_string())
                    .or_default(),
            ),
        };
        let mut q = lock(&marks);
        let e = q.entry(queue_id).or_insert(next);
        *e = (*e).max(next);
    }

    /// Forgets a deleted topic's marks.
    pub fn remove_topic(&self, topic: &str) {
        write(&self.map).remove(topic);
    }

    /// The mark of (topic, group, queue), if the group ever pulled it.
    pub fn get(&self, topic: &str, group: &str, queue_id: i32) -> Option<i64> {
        let marks = read(&self.map).get(topic)?.get(group)?.clone();
        let q = lock(&marks);
        q.get(&queue_id).copied()
    }

    /// (topic, group, [(queue id, mark)]) for every pair that pulled, sorted.
    pub fn snapshot(&self) -> Vec<GroupMarks> {
        let mut v: Vec<_> = read(&self.map)
            .iter()
            .flat_map(|(t, groups)| {
                groups.iter().map(move |(g, m)| {
                    let mut q: Vec<(i32, i64)> = lock(m).iter().map(|(k, v)| (*k, *v)).collect();
                    q.sort_unstable();
                    (t.clone(), g.clone(), q)
                })
            })
            .collect();
        v.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        v
    }
}

/// In flight for one (topic, group): pulled marks minus committed offsets, summed over
/// the queues, never negative per queue. `committed` gives a queue's committed offset
/// (None: nothing committed yet, so everything pulled is in flight from `min`).
pub fn in_flight(
    marks: &[(i32, i64)],
    committed: impl Fn(i32) -> Option<i64>,
    min: impl Fn(i32) -> i64,
) -> i64 {
    marks
        .iter()
        .map(|(q, pulled)| (pulled - committed(*q).unwrap_or_else(|| min(*q))).max(0))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_only_rise_and_in_flight_subtracts_commits() {
        let p = PullOffsets::default();
        p.record("T", "g", 0, 10);
        p.record("T", "g", 0, 4);
        p.record("T", "g", 1, 7);
        assert_eq!(p.get("T", "g", 0), Some(10));
        let snap = p.snapshot();
        assert_eq!(snap, vec![("T".into(), "g".into(), vec![(0, 10), (1, 7)])]);
        let committed = |q: i32| (q == 0).then_some(6);
        assert_eq!(in_flight(&snap[0].2, committed, |_| 0), 4 + 7);
    }
}
