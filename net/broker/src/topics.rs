//! The broker's topics: a read-mostly cache in front of `topics.json`, RocketMQ's
//! auto-creation from the `TBW102` template, and the route and cluster views a broker
//! answers for its own group (so one broker is a complete deployment).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use ringmq_engine::delay_levels::SCHEDULE_TOPIC;
use ringmq_engine::meta::{TopicConfig, TopicStore, PERM_INHERIT, PERM_READ, PERM_WRITE};
use ringmq_engine::record::RETRY_TOPIC_PREFIX;
use ringmq_engine::sync::{read, write};
use serde_json::json;

use super::config::BrokerConfig;

/// `TopicSysFlag.buildSysFlag(false, true)`: the retry topic of a unit-mode consumer.
const TOPIC_SYS_FLAG_UNIT_SUB: i32 = 0x2;

/// The template topic clients name in `defaultTopic`.
pub const AUTO_CREATE_TOPIC: &str = "TBW102";

/// What the hot paths need to know about a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicInfo {
    pub read_queues: i32,
    pub write_queues: i32,
    pub perm: i32,
    pub sys_flag: i32,
}

impl TopicInfo {
    fn of(c: &TopicConfig) -> Self {
        TopicInfo {
            read_queues: c.read_queue_nums,
            write_queues: c.write_queue_nums,
            perm: c.perm,
            sys_flag: c.topic_sys_flag,
        }
    }

    pub fn writable(&self) -> bool {
        self.perm & PERM_WRITE != 0
    }

    pub fn readable(&self) -> bool {
        self.perm & PERM_READ != 0
    }
}

pub struct Topics {
    store: TopicStore,
    cache: RwLock<HashMap<String, TopicInfo>>,
    auto_create: bool,
    default_queue_nums: i32,
    /// `maxTopicQueueNums`: no topic is stored with more queues on either side.
    max_queue_nums: i32,
    /// `maxTopics`: a new topic beyond this many is refused.
    max_topics: usize,
    /// Changed in memory since the table was last written (see `Broker::persist_metadata`).
    dirty: AtomicBool,
}

/// Why a topic name is refused (RocketMQ's TopicValidator rules).
pub fn validate_topic_name(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        return Err("topic is blank".into());
    }
    let max = if topic.starts_with("%RETRY%") || topic.starts_with("%DLQ%") {
        255
    } else {
        127
    };
    if topic.len() > max {
        return Err(format!("topic {topic:?} is longer than {max} characters"));
    }
    if !topic
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'%' | b'|' | b'_' | b'-'))
    {
        return Err(format!(
            "topic {topic:?} contains characters other than [%|a-zA-Z0-9_-]"
        ));
    }
    Ok(())
}

impl Topics {
    pub fn new(store: TopicStore, cfg: &BrokerConfig) -> ringmq_engine::Result<Self> {
        let topics = Topics {
            store,
            cache: RwLock::new(HashMap::new()),
            auto_create: cfg.auto_create_topic_enable,
            default_queue_nums: cfg.default_topic_queue_nums.min(cfg.max_topic_queue_nums),
            max_queue_nums: cfg.max_topic_queue_nums,
            max_topics: cfg.max_topics,
            dirty: AtomicBool::new(false),
        };
        // System topics RocketMQ brokers always have.
        if cfg.auto_create_topic_enable && !topics.store.contains(AUTO_CREATE_TOPIC) {
            let n = topics.default_queue_nums;
            topics.store.put_and_persist(TopicConfig::with_queues(
                AUTO_CREATE_TOPIC,
                n,
                n,
                PERM_INHERIT | PERM_READ | PERM_WRITE,
            ))?;
        }
        if !topics.store.contains(SCHEDULE_TOPIC) {
            topics.store.put_and_persist(TopicConfig::with_queues(
                SCHEDULE_TOPIC,
                18,
                18,
                PERM_READ | PERM_WRITE,
            ))?;
        }
        topics.reload_cache();
        Ok(topics)
    }

    pub fn store(&self) -> &TopicStore {
        &self.store
    }

    /// Rebuilds the cache from the store (after a slave adopts the master's topics).
    pub fn reload_cache(&self) {
        let map = self
            .store
            .all()
            .iter()
            .map(|c| (c.topic_name.clone(), TopicInfo::of(c)))
            .collect();
        *write(&self.cache) = map;
    }

    pub fn get(&self, topic: &str) -> Option<TopicInfo> {
        read(&self.cache).get(topic).copied()
    }

    /// The most read or write queues a topic may have (`maxTopicQueueNums`).
    pub fn max_queue_nums(&self) -> i32 {
        self.max_queue_nums
    }

    /// Whether the table changed since the last call; the caller writes it.
    pub fn take_dirty(&self) -> bool {
        self.dirty.swap(false, Ordering::AcqRel)
    }

    /// The table must be written (again: a write failed).
    pub fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    /// Creates or replaces a topic in memory and marks the table dirty; the broker's
    /// housekeeping thread writes it (never a network core). Refuses queue counts above
    /// `maxTopicQueueNums` (callers check them first and answer the client).
    pub fn put(&self, config: TopicConfig) -> ringmq_engine::Result<TopicInfo> {
        let max = self.max_queue_nums;
        if config.read_queue_nums > max || config.write_queue_nums > max {
            return Err(ringmq_engine::Error::Invalid(format!(
                "topic {} with {}/{} read/write queues: at most {max} (maxTopicQueueNums)",
                config.topic_name, config.read_queue_nums, config.write_queue_nums
            )));
        }
        let count = read(&self.cache).len();
        if count >= self.max_topics && self.get(&config.topic_name).is_none() {
            return Err(ringmq_engine::Error::Invalid(format!(
                "the topic table is full ({count} topics, maxTopics)"
            )));
        }
        let info = TopicInfo::of(&config);
        let name = config.topic_name.clone();
        self.store.put(config);
        self.mark_dirty();
        write(&self.cache).insert(name, info);
        Ok(info)
    }

    /// Creates `%RETRY%<group>` if missing: `retry_queue_nums` queues (at least 1),
    /// READ|WRITE (a consumer's heartbeat, a send-back).
    pub fn ensure_retry_topic(&self, group: &str, retry_queue_nums: i32, unit_mode: bool) {
        let topic = format!("{RETRY_TOPIC_PREFIX}{group}");
        if self.get(&topic).is_some() {
            return;
        }
        if let Err(why) = validate_topic_name(&topic) {
            tracing::warn!(group, why, "cannot create the retry topic of this group");
            return;
        }
        let n = retry_queue_nums.clamp(1, self.max_queue_nums);
        let mut config = TopicConfig::with_queues(topic.as_str(), n, n, PERM_READ | PERM_WRITE);
        if unit_mode {
            config.topic_sys_flag = TOPIC_SYS_FLAG_UNIT_SUB;
        }
        match self.put(config) {
            Ok(_) => tracing::info!(topic = %topic, queues = n, "created retry topic"),
            Err(e) => {
                tracing::error!(topic = %topic, error = %e, "creating the retry topic failed")
            }
        }
    }

    /// The topic, auto-created from `template` for a producer when allowed (RocketMQ:
    /// template must exist with the INHERIT bit; queue count is the smaller of the
    /// requested and the template's). `%RETRY%` topics are created with one queue.
    pub fn get_or_create_for_send(
        &self,
        topic: &str,
        template: &str,
        requested_queues: i32,
    ) -> Result<TopicInfo, String> {
        if let Some(info) = self.get(topic) {
            return Ok(info);
        }
        let created = match self.get(template) {
            Some(t) if self.auto_create && t.perm & PERM_INHERIT != 0 => {
                let n = requested_queues.clamp(1, t.write_queues.max(1));
                TopicConfig::with_queues(topic, n, n, t.perm & !PERM_INHERIT)
            }
            _ if topic.starts_with("%RETRY%") => {
                TopicConfig::with_queues(topic, 1, 1, PERM_READ | PERM_WRITE)
            }
            _ if self.auto_create && template.is_empty() => {
                let n = self.default_queue_nums;
                TopicConfig::with_queues(topic, n, n, PERM_READ | PERM_WRITE)
            }
            _ => return Err(format!("topic[{topic}] not exist, apply first please!")),
        };
        tracing::info!(
            topic,
            queues = created.write_queue_nums,
            "auto-created topic"
        );
        self.put(created)
            .map_err(|e| format!("cannot create topic {topic}: {e}"))
    }

    /// RocketMQ's TopicRouteData for `topic` as served by this one broker group; None
    /// (TOPIC_NOT_EXIST) for an unknown topic, as a name server answers: producers then
    /// take the TBW102 route, clamp its queue count to their defaultTopicQueueNums, and
    /// the first send creates the topic with that count.
    pub fn route_json(&self, topic: &str, cfg: &BrokerConfig) -> Option<String> {
        let info = self.get(topic)?;
        let addr = cfg.broker_addr().to_string();
        let body = json!({
            "orderTopicConf": null,
            "queueDatas": [{
                "brokerName": cfg.broker_name,
                "readQueueNums": info.read_queues,
                "writeQueueNums": info.write_queues,
                "perm": info.perm,
                "topicSysFlag": info.sys_flag,
            }],
            "brokerDatas": [{
                "cluster": cfg.broker_cluster_name,
                "brokerName": cfg.broker_name,
                "brokerAddrs": { cfg.broker_id.to_string(): addr },
                "enableActingMaster": false,
            }],
            "filterServerTable": {},
        });
        Some(body.to_string())
    }

    /// RocketMQ's ClusterInfo for this one broker group.
    pub fn cluster_info_json(cfg: &BrokerConfig) -> String {
        let addr = cfg.broker_addr().to_string();
        json!({
            "brokerAddrTable": {
                cfg.broker_name.clone(): {
                    "cluster": cfg.broker_cluster_name,
                    "brokerName": cfg.broker_name,
                    "brokerAddrs": { cfg.broker_id.to_string(): addr },
                    "enableActingMaster": false,
                }
            },
            "clusterAddrTable": { cfg.broker_cluster_name.clone(): [cfg.broker_name] },
        })
        .to_string()
    }
}

/// Shared handle.
pub type SharedTopics = Arc<Topics>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_rocketmq_rules() {
        assert!(validate_topic_name("Orders_2024-x|%").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("a b").is_err());
        assert!(validate_topic_name(&"t".repeat(128)).is_err());
        assert!(validate_topic_name(&format!("%RETRY%{}", "g".repeat(200))).is_ok());
    }

    #[test]
    fn auto_create_follows_the_template() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = BrokerConfig::default();
        let topics = Topics::new(TopicStore::load(dir.path()).unwrap(), &cfg).unwrap();
        let t = topics
            .get_or_create_for_send("NewTopic", AUTO_CREATE_TOPIC, 4)
            .unwrap();
        assert_eq!(
            (t.read_queues, t.write_queues, t.perm),
            (4, 4, PERM_READ | PERM_WRITE)
        );
        let big = topics
            .get_or_create_for_send("Big", AUTO_CREATE_TOPIC, 100)
            .unwrap();
        assert_eq!(big.write_queues, 8, "capped at the template's queue count");
        assert!(topics
            .get_or_create_for_send("X", "NoSuchTemplate", 4)
            .is_err());
        assert!(
            topics.route_json("Unknown", &cfg).is_none(),
            "unknown topics have no route"
        );
        let route: serde_json::Value =
            serde_json::from_str(&topics.route_json("NewTopic", &cfg).unwrap()).unwrap();
        assert_eq!(route["queueDatas"][0]["writeQueueNums"], 4);
        assert_eq!(
            route["brokerDatas"][0]["brokerAddrs"]["0"],
            "127.0.0.1:10911"
        );
    }
}
