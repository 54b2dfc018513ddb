//! Committed consumer offsets: `ConsumerOffsetSerializeWrapper` (wire spec §6.7) and
//! [`ConsumerOffsetStore`], which keeps `<config>/consumerOffset.json` (a [`JsonStore`]).
//! Any thread.
//!
//! The table maps `"<topic>@<group>"` to `{queueId: nextOffset}`. Like Java, queue-id keys
//! are written unquoted (`{"T1@G1":{0:42}}`); both forms are accepted on read.
//! Commits only touch memory; the broker calls [`ConsumerOffsetStore::persist`]
//! periodically, which bumps the data version when something changed since the last write.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::data_version::DataVersion;
use super::json::{self, null_as_default};
use super::json_store::{JsonStore, JsonTable};
use crate::Result;

/// File name under `<storePathRootDir>/config/`.
pub const CONSUMER_OFFSET_FILE: &str = "consumerOffset.json";
/// Separates topic and group in the table keys.
pub const TOPIC_GROUP_SEPARATOR: char = '@';

/// `queueId -> next offset to consume`.
pub type QueueOffsets = BTreeMap<i32, i64>;

/// The table key for a topic and group: `"<topic>@<group>"`.
pub fn table_key(topic: &str, group: &str) -> String {
    format!("{topic}{TOPIC_GROUP_SEPARATOR}{group}")
}

/// `consumerOffset.json` and the GET_ALL_CONSUMER_OFFSET body.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumerOffsetSerializeWrapper {
    /// 5.x only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_version: Option<DataVersion>,
    #[serde(deserialize_with = "null_as_default")]
    pub offset_table: BTreeMap<String, QueueOffsets>,
}

impl ConsumerOffsetSerializeWrapper {
    /// Parses a body or file with quoted or unquoted queue-id keys (5.x `groupTopicMap`
    /// and other unknown properties are ignored).
    pub fn from_json(bytes: &[u8]) -> serde_json::Result<Self> {
        json::from_slice(bytes)
    }

    /// Java's dialect: queue-id keys unquoted. What Java peers are sure to read.
    pub fn to_java_json(&self) -> String {
        let mut out = String::from("{");
        if let Some(v) = &self.data_version {
            out.push_str("\"dataVersion\":");
            json::push_json(&mut out, v);
            out.push(',');
        }
        out.push_str("\"offsetTable\":{");
        for (n, (key, queues)) in self.offset_table.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            json::push_json(&mut out, key);
            out.push(':');
            json::push_int_key_map(&mut out, queues);
        }
        out.push_str("}}");
        out
    }

    /// Standard JSON (queue-id keys quoted).
    pub fn to_standard_json(&self) -> String {
        serde_json::to_string(self).expect("offset table serializes")
    }
}

impl JsonTable for ConsumerOffsetSerializeWrapper {
    fn data_version_mut(&mut self) -> &mut DataVersion {
        self.data_version.get_or_insert_with(DataVersion::default)
    }

    fn file_bytes(&self) -> Vec<u8> {
        self.to_java_json().into_bytes()
    }
}

/// The consumer-offset table, loaded from and persisted to `consumerOffset.json`. Commits
/// change memory only (see `persist`).
#[derive(Debug)]
pub struct ConsumerOffsetStore {
    /// Always holds a `dataVersion` (created at load if the file had none).
    store: JsonStore<ConsumerOffsetSerializeWrapper>,
}

impl ConsumerOffsetStore {
    /// Loads `<dir>/consumerOffset.json` (or its `.bak`); an absent file gives an empty table.
    pub fn load(dir: &Path) -> Result<ConsumerOffsetStore> {
        Ok(ConsumerOffsetStore {
            store: JsonStore::load(dir, CONSUMER_OFFSET_FILE)?,
        })
    }

    /// The file this store persists to.
    pub fn path(&self) -> &Path {
        self.store.path()
    }

    /// Records the next offset to consume for one queue (memory only; see `persist`).
    pub fn commit(&self, group: &str, topic: &str, queue_id: i32, offset: i64) {
        let key = table_key(topic, group);
        self.store.touch(|w| {
            w.offset_table
                .entry(key)
                .or_default()
                .insert(queue_id, offset);
            ((), true)
        });
    }

    /// The committed offset of one queue, if any.
    pub fn query(&self, group: &str, topic: &str, queue_id: i32) -> Option<i64> {
        let key = table_key(topic, group);
        self.store
            .read(|w| w.offset_table.get(&key)?.get(&queue_id).copied())
    }

    /// All committed offsets of a group on a topic.
    pub fn query_all(&self, group: &str, topic: &str) -> QueueOffsets {
        let key = table_key(topic, group);
        self.store
            .read(|w| w.offset_table.get(&key).cloned().unwrap_or_default())
    }

    /// Forgets a group's offsets on every topic (DELETE_SUBSCRIPTIONGROUP). Memory only.
    pub fn remove_group(&self, group: &str) {
        self.store.touch(|w| {
            let before = w.offset_table.len();
            w.offset_table
                .retain(|k, _| k.rsplit_once(TOPIC_GROUP_SEPARATOR).map(|(_, g)| g) != Some(group));
            ((), w.offset_table.len() != before)
        });
    }

    /// Forgets every group's offsets on `topic` (DELETE_TOPIC_IN_BROKER). Memory only.
    pub fn remove_topic(&self, topic: &str) {
        self.store.touch(|w| {
            let before = w.offset_table.len();
            w.offset_table
                .retain(|k, _| k.rsplit_once(TOPIC_GROUP_SEPARATOR).map(|(t, _)| t) != Some(topic));
            ((), w.offset_table.len() != before)
        });
    }

    pub fn data_version(&self) -> DataVersion {
        self.store.read(|w| w.data_version.unwrap_or_default())
    }

    /// The table and version as the wrapper (always with `dataVersion`).
    pub fn snapshot(&self) -> ConsumerOffsetSerializeWrapper {
        self.store.read(Clone::clone)
    }

    /// Writes the table atomically (Java dialect), first bumping the version if offsets
    /// were committed since the last write.
    pub fn persist(&self) -> Result<()> {
        self.store.persist()
    }

    /// Slave sync (§8.3): `putAll` of the master's table (each `topic@group` entry replaced
    /// whole, nothing deleted), adopt the master's version if it sent one, persist.
    pub fn merge_from_master(&self, master: ConsumerOffsetSerializeWrapper) -> Result<()> {
        self.store.replace_and_persist(|w| {
            w.offset_table.extend(master.offset_table);
            if let Some(v) = master.data_version {
                w.data_version = Some(v);
            }
        })
    }

    /// The GET_ALL_CONSUMER_OFFSET body, in Java's dialect (unquoted queue ids).
    pub fn to_wire_json(&self) -> String {
        self.store
            .read(ConsumerOffsetSerializeWrapper::to_java_json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    #[test]
    fn java_sample_parses_and_unquoted_keys_are_emitted() {
        let java = r#"{"offsetTable":{"T1@G1":{0:42,1:40},"%RETRY%G1@G1":{0:0}}}"#;
        let w = ConsumerOffsetSerializeWrapper::from_json(java.as_bytes()).unwrap();
        assert_eq!(w.data_version, None);
        assert_eq!(
            w.offset_table["T1@G1"],
            QueueOffsets::from([(0, 42), (1, 40)])
        );
        assert_eq!(w.offset_table["%RETRY%G1@G1"][&0], 0);
        // BTreeMap order: '%' sorts before 'T'.
        assert_eq!(
            w.to_java_json(),
            r#"{"offsetTable":{"%RETRY%G1@G1":{0:0},"T1@G1":{0:42,1:40}}}"#
        );

        // Quoted keys, 5.x extras (dataVersion, groupTopicMap) parse to the same table.
        let std_form = r#"{"dataVersion":{"counter":2,"stateVersion":0,"timestamp":9},
            "groupTopicMap":{"G1":["T1"]},"offsetTable":{"T1@G1":{"0":42,"1":40},"%RETRY%G1@G1":{"0":0}}}"#;
        let s = ConsumerOffsetSerializeWrapper::from_json(std_form.as_bytes()).unwrap();
        assert_eq!(s.offset_table, w.offset_table);
        assert_eq!(s.data_version.unwrap().counter, 2);
        assert!(s.to_standard_json().contains(r#""T1@G1":{"0":42,"1":40}"#));
        let again = ConsumerOffsetSerializeWrapper::from_json(s.to_java_json().as_bytes()).unwrap();
        assert_eq!(again, s);
    }

    #[test]
    fn round_trip_through_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = ConsumerOffsetStore::load(dir.path()).unwrap();
        assert_eq!(store.query("G1", "T1", 0), None);
        store.commit("G1", "T1", 0, 42);
        store.commit("G1", "T1", 1, 40);
        store.commit("G1", "T1", 0, 43);
        store.commit("G2", "T\"q", 3, 7);
        let v0 = store.data_version();
        store.persist().unwrap();
        assert_eq!(store.data_version().counter, v0.counter + 1);
        store.persist().unwrap();
        assert_eq!(
            store.data_version().counter,
            v0.counter + 1,
            "no commits, no bump"
        );

        let text = std::fs::read_to_string(store.path()).unwrap();
        assert!(text.contains(r#""T1@G1":{0:43,1:40}"#), "{text}");
        let again = ConsumerOffsetStore::load(dir.path()).unwrap();
        assert_eq!(again.query("G1", "T1", 0), Some(43));
        assert_eq!(again.query("G2", "T\"q", 3), Some(7));
        assert_eq!(again.query_all("G1", "T1").len(), 2);
        assert_eq!(again.data_version(), store.data_version());
        assert_eq!(again.to_wire_json(), store.to_wire_json());

        again.remove_group("G1");
        assert_eq!(again.query("G1", "T1", 0), None);
        assert_eq!(again.query("G2", "T\"q", 3), Some(7));
    }

    #[test]
    fn merge_from_master_is_put_all() {
        let dir = tempfile::tempdir().unwrap();
        let store = ConsumerOffsetStore::load(dir.path()).unwrap();
        store.commit("LOCAL", "T1", 0, 5);
        store.commit("G1", "T1", 3, 99);
        let master = ConsumerOffsetSerializeWrapper::from_json(
            br#"{"dataVersion":{"counter":8,"stateVersion":0,"timestamp":1},"offsetTable":{"T1@G1":{0:42}}}"#,
        )
        .unwrap();
        store.merge_from_master(master.clone()).unwrap();
        assert_eq!(store.query("LOCAL", "T1", 0), Some(5), "no deletions");
        assert_eq!(store.query("G1", "T1", 0), Some(42));
        assert_eq!(
            store.query("G1", "T1", 3),
            None,
            "entry replaced whole, as Java putAll"
        );
        assert_eq!(store.data_version(), master.data_version.unwrap());
        let on_disk = ConsumerOffsetStore::load(dir.path()).unwrap();
        assert_eq!(on_disk.snapshot(), store.snapshot());
    }

    #[test]
    fn corrupt_file_is_a_json_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CONSUMER_OFFSET_FILE),
            b"{\"offsetTable\":{\"a@b\":{0:}}}",
        )
        .unwrap();
        assert!(matches!(
            ConsumerOffsetStore::load(dir.path()),
            Err(Error::Json { .. })
        ));
    }
}
