//! Topic configurations: `TopicConfig`, `TopicConfigSerializeWrapper` (wire spec §6.6) and
//! [`TopicStore`], which keeps `<config>/topics.json` (a [`JsonStore`], written pretty).
//! Any thread.
//!
//! Properties unknown to this version are kept in `extra` and written back, so a table
//! synced from a newer Java master survives a round trip through this broker.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::data_version::DataVersion;
use super::json::{self, null_as_default};
use super::json_store::{JsonStore, JsonTable};
use crate::Result;

/// File name under `<storePathRootDir>/config/`.
pub const TOPICS_FILE: &str = "topics.json";

/// `PermName` bits.
pub const PERM_PRIORITY: i32 = 0x8;
pub const PERM_READ: i32 = 0x4;
pub const PERM_WRITE: i32 = 0x2;
pub const PERM_INHERIT: i32 = 0x1;

/// Java's `TopicFilterType`, written by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum TopicFilterType {
    #[default]
    #[serde(rename = "SINGLE_TAG")]
    SingleTag,
    #[serde(rename = "MULTI_TAG")]
    MultiTag,
}

/// One topic's configuration. Fields are declared in fastjson's (alphabetical) order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicConfig {
    /// 5.x only; `{}` by default.
    #[serde(deserialize_with = "null_as_default")]
    pub attributes: BTreeMap<String, String>,
    pub order: bool,
    pub perm: i32,
    pub read_queue_nums: i32,
    #[serde(deserialize_with = "null_as_default")]
    pub topic_filter_type: TopicFilterType,
    #[serde(deserialize_with = "null_as_default")]
    pub topic_name: String,
    pub topic_sys_flag: i32,
    pub write_queue_nums: i32,
    /// Properties this version does not know, preserved verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Default for TopicConfig {
    /// Java's defaults: 16 read / 16 write queues, perm READ|WRITE, SINGLE_TAG.
    fn default() -> Self {
        TopicConfig {
            attributes: BTreeMap::new(),
            order: false,
            perm: PERM_READ | PERM_WRITE,
            read_queue_nums: 16,
            topic_filter_type: TopicFilterType::SingleTag,
            topic_name: String::new(),
            topic_sys_flag: 0,
            write_queue_nums: 16,
            extra: BTreeMap::new(),
        }
    }
}

impl TopicConfig {
    /// A topic with Java's defaults.
    pub fn new(topic_name: impl Into<String>) -> Self {
        TopicConfig {
            topic_name: topic_name.into(),
            ..TopicConfig::default()
        }
    }

    /// A topic with the given queue counts and permission bits.
    pub fn with_queues(topic_name: impl Into<String>, read: i32, write: i32, perm: i32) -> Self {
        TopicConfig {
            read_queue_nums: read,
            write_queue_nums: write,
            perm,
            ..TopicConfig::new(topic_name)
        }
    }
}

/// `topics.json` and the 4.x GET_ALL_TOPIC_CONFIG body.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicConfigSerializeWrapper {
    pub data_version: DataVersion,
    #[serde(deserialize_with = "null_as_default")]
    pub topic_config_table: BTreeMap<String, TopicConfig>,
}

impl TopicConfigSerializeWrapper {
    /// Parses a body or file in either JSON dialect. The 5.x
    /// `TopicConfigAndMappingSerializeWrapper` parses too (mapping fields are ignored).
    pub fn from_json(bytes: &[u8]) -> serde_json::Result<Self> {
        json::from_slice(bytes)
    }
}

/// The 5.x GET_ALL_TOPIC_CONFIG body: the wrapper plus empty static-topic mapping data with a
/// constant `mappingDataVersion`, so a Java 5.x slave settles its mapping table once.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireBody<'a> {
    data_version: &'a DataVersion,
    mapping_data_version: DataVersion,
    topic_config_table: &'a BTreeMap<String, TopicConfig>,
    topic_queue_mapping_detail_map: BTreeMap<String, Value>,
    topic_queue_mapping_info_map: BTreeMap<String, Value>,
}

impl JsonTable for TopicConfigSerializeWrapper {
    fn data_version_mut(&mut self) -> &mut DataVersion {
        &mut self.data_version
    }

    fn file_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("topic table serializes")
    }
}

/// The topic table, loaded from and persisted to `topics.json`. Every change bumps the
/// data version and persists at once.
#[derive(Debug)]
pub struct TopicStore {
    store: JsonStore<TopicConfigSerializeWrapper>,
}

impl TopicStore {
    /// Loads `<dir>/topics.json` (or its `.bak`); an absent file gives an empty table.
    pub fn load(dir: &Path) -> Result<TopicStore> {
        Ok(TopicStore {
            store: JsonStore::load(dir, TOPICS_FILE)?,
        })
    }

    /// The file this store persists to.
    pub fn path(&self) -> &Path {
        self.store.path()
    }

    /// Writes the current table to disk atomically.
    pub fn persist(&self) -> Result<()> {
        self.store.persist()
    }

    pub fn get(&self, topic: &str) -> Option<TopicConfig> {
        self.store
            .read(|w| w.topic_config_table.get(topic).cloned())
    }

    pub fn contains(&self, topic: &str) -> bool {
        self.store
            .read(|w| w.topic_config_table.contains_key(topic))
    }

    /// Inserts or replaces a topic, bumps the data version and persists.
    pub fn put_and_persist(&self, config: TopicConfig) -> Result<()> {
        self.put(config);
        self.persist()
    }

    /// Inserts or replaces a topic and bumps the data version, in memory only: the caller
    /// persists later (the broker, off its network threads).
    pub fn put(&self, config: TopicConfig) {
        self.store.change(|w| {
            w.topic_config_table
                .insert(config.topic_name.clone(), config);
            ((), true)
        });
    }

    /// Removes a topic; bumps the version and persists only if it existed.
    pub fn remove_and_persist(&self, topic: &str) -> Result<Option<TopicConfig>> {
        let removed = self.store.change(|w| {
            let removed = w.topic_config_table.remove(topic);
            let changed = removed.is_some();
            (removed, changed)
        });
        if removed.is_some() {
            self.persist()?;
        }
        Ok(removed)
    }

    /// All topics, sorted by name.
    pub fn all(&self) -> Vec<TopicConfig> {
        self.store
            .read(|w| w.topic_config_table.values().cloned().collect())
    }

    pub fn len(&self) -> usize {
        self.store.read(|w| w.topic_config_table.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn data_version(&self) -> DataVersion {
        self.store.read(|w| w.data_version)
    }

    /// A copy of the whole table and its version.
    pub fn snapshot(&self) -> TopicConfigSerializeWrapper {
        self.store.read(Clone::clone)
    }

    /// Slave sync (§8.3): if the master's version differs from ours, adopt its version and
    /// table (topics missing on the master are removed) and persist. Returns whether
    /// anything was applied.
    pub fn replace_from_master(&self, master: TopicConfigSerializeWrapper) -> Result<bool> {
        let applied = self.store.write(|w| {
            if w.data_version == master.data_version {
                return false;
            }
            *w = master;
            true
        });
        if applied {
            self.persist()?;
        }
        Ok(applied)
    }

    /// The GET_ALL_TOPIC_CONFIG body (5.x shape, readable by 4.x peers too).
    pub fn to_wire_json(&self) -> String {
        self.store.read(|w| {
            let body = WireBody {
                data_version: &w.data_version,
                mapping_data_version: DataVersion {
                    counter: 0,
                    state_version: 0,
                    timestamp: 0,
                },
                topic_config_table: &w.topic_config_table,
                topic_queue_mapping_detail_map: BTreeMap::new(),
                topic_queue_mapping_info_map: BTreeMap::new(),
            };
            serde_json::to_string(&body).expect("topic table serializes")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    const JAVA_SAMPLE: &str = r#"{"dataVersion":{"counter":3,"stateVersion":0,"timestamp":1700000000000},
 "topicConfigTable":{"T1":{"attributes":{},"order":false,"perm":6,"readQueueNums":4,
   "topicFilterType":"SINGLE_TAG","topicName":"T1","topicSysFlag":0,"writeQueueNums":4}}}"#;

    #[test]
    fn java_sample_parses() {
        let w = TopicConfigSerializeWrapper::from_json(JAVA_SAMPLE.as_bytes()).unwrap();
        assert_eq!(w.data_version.counter, 3);
        let t = &w.topic_config_table["T1"];
        assert_eq!(*t, TopicConfig::with_queues("T1", 4, 4, 6));
    }

    #[test]
    fn tolerant_parsing_and_defaults() {
        // 4.x pretty output (tabs, no attributes, no stateVersion), a future property,
        // a null, and the 5.x mapping fields around the table.
        let s = "{\n\t\"dataVersion\":{\"counter\":1,\"timestamp\":2},\n\t\"topicConfigTable\":{\n\t\t\
                 \"A\":{\"topicName\":\"A\",\"perm\":7,\"topicMessageType\":\"NORMAL\",\"attributes\":null}\n\t},\n\t\
                 \"mappingDataVersion\":{\"counter\":0,\"timestamp\":0},\"topicQueueMappingInfoMap\":{}\n}";
        let w = TopicConfigSerializeWrapper::from_json(s.as_bytes()).unwrap();
        let a = &w.topic_config_table["A"];
        assert_eq!((a.perm, a.read_queue_nums, a.write_queue_nums), (7, 16, 16));
        assert_eq!(a.topic_filter_type, TopicFilterType::SingleTag);
        assert_eq!(a.extra["topicMessageType"], "NORMAL");
        // Unknown properties are written back.
        let out = serde_json::to_string(a).unwrap();
        assert!(out.contains(r#""topicMessageType":"NORMAL""#), "{out}");
        assert!(out.starts_with(r#"{"attributes":{},"order":false,"perm":7,"readQueueNums":16,"#));
    }

    #[test]
    fn round_trip_through_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = TopicStore::load(dir.path()).unwrap();
        assert!(store.is_empty());
        let v0 = store.data_version();
        let mut t = TopicConfig::with_queues("T1", 4, 8, PERM_READ | PERM_WRITE);
        t.attributes.insert("+message.type".into(), "NORMAL".into());
        store.put_and_persist(t.clone()).unwrap();
        store.put_and_persist(TopicConfig::new("T2")).unwrap();
        assert_eq!(store.data_version().counter, v0.counter + 2);

        let again = TopicStore::load(dir.path()).unwrap();
        assert_eq!(again.get("T1"), Some(t));
        assert_eq!(again.all().len(), 2);
        assert_eq!(again.data_version(), store.data_version());

        assert!(again.remove_and_persist("T2").unwrap().is_some());
        assert!(again.remove_and_persist("T2").unwrap().is_none());
        assert!(!TopicStore::load(dir.path()).unwrap().contains("T2"));

        // The wire body carries the 5.x mapping fields and parses back.
        let wire = store.to_wire_json();
        assert!(wire.contains(r#""topicQueueMappingInfoMap":{}"#));
        let back = TopicConfigSerializeWrapper::from_json(wire.as_bytes()).unwrap();
        assert_eq!(back, store.snapshot());
    }

    #[test]
    fn replace_from_master_only_on_new_version() {
        let dir = tempfile::tempdir().unwrap();
        let store = TopicStore::load(dir.path()).unwrap();
        store
            .put_and_persist(TopicConfig::new("LOCAL_ONLY"))
            .unwrap();

        let master = TopicConfigSerializeWrapper::from_json(JAVA_SAMPLE.as_bytes()).unwrap();
        assert!(store.replace_from_master(master.clone()).unwrap());
        assert_eq!(store.data_version(), master.data_version);
        assert!(
            store.get("LOCAL_ONLY").is_none(),
            "entries missing on the master are removed"
        );
        assert!(store.get("T1").is_some());

        // Same version again: nothing changes even if the content differs.
        let mut same_version = master.clone();
        same_version.topic_config_table.clear();
        assert!(!store.replace_from_master(same_version).unwrap());
        assert!(store.get("T1").is_some());

        let on_disk = TopicStore::load(dir.path()).unwrap();
        assert_eq!(on_disk.snapshot(), master);
    }

    #[test]
    fn corrupt_file_is_a_json_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(TOPICS_FILE), b"{\"topicConfigTable\":{").unwrap();
        match TopicStore::load(dir.path()) {
            Err(Error::Json { path, .. }) => assert_eq!(path, dir.path().join(TOPICS_FILE)),
            other => panic!("expected Error::Json, got {other:?}"),
        }
    }

    #[test]
    fn leftover_temp_file_is_ignored_and_bak_used_when_target_missing() {
        let dir = tempfile::tempdir().unwrap();
        let store = TopicStore::load(dir.path()).unwrap();
        store.put_and_persist(TopicConfig::new("OLD")).unwrap();
        // A crashed writer's partial temp file.
        std::fs::write(dir.path().join("topics.json.tmp.1.0"), b"{\"topicConf").unwrap();
        assert!(TopicStore::load(dir.path()).unwrap().contains("OLD"));

        // Java's string2File deletes the target before renaming: only the .bak is left.
        store.put_and_persist(TopicConfig::new("NEW")).unwrap();
        std::fs::remove_file(dir.path().join(TOPICS_FILE)).unwrap();
        let from_bak = TopicStore::load(dir.path()).unwrap();
        assert!(from_bak.contains("OLD") && !from_bak.contains("NEW"));
    }
}
