//! Schedule progress per delay level: `DelayOffsetSerializeWrapper` (wire spec §6.8) and
//! [`DelayOffsetStore`], which keeps `<config>/delayOffset.json` (a [`JsonStore`]). Any
//! thread.
//!
//! `offsetTable` maps the 1-based delay level to the next ConsumeQueue offset to deliver in
//! queue `level - 1` of `SCHEDULE_TOPIC_XXXX`. Level keys are written unquoted, as Java does;
//! both forms are accepted on read. A slave applies the master's GET_ALL_DELAY_OFFSET body
//! by writing it verbatim and reloading it ([`DelayOffsetStore::replace_from_raw`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::data_version::DataVersion;
use super::json::{self, null_as_default};
use super::json_store::{JsonStore, JsonTable};
use crate::{Error, Result};

/// File name under `<storePathRootDir>/config/`.
pub const DELAY_OFFSET_FILE: &str = "delayOffset.json";

/// `delayOffset.json` and the GET_ALL_DELAY_OFFSET body.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DelayOffsetSerializeWrapper {
    /// 5.x only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_version: Option<DataVersion>,
    #[serde(deserialize_with = "null_as_default")]
    pub offset_table: BTreeMap<i32, i64>,
}

impl DelayOffsetSerializeWrapper {
    /// Parses a body or file with quoted or unquoted level keys.
    pub fn from_json(bytes: &[u8]) -> serde_json::Result<Self> {
        json::from_slice(bytes)
    }

    /// Java's dialect: level keys unquoted.
    pub fn to_java_json(&self) -> String {
        let mut out = String::from("{");
        if let Some(v) = &self.data_version {
            out.push_str("\"dataVersion\":");
            json::push_json(&mut out, v);
            out.push(',');
        }
        out.push_str("\"offsetTable\":");
        json::push_int_key_map(&mut out, &self.offset_table);
        out.push('}');
        out
    }

    /// Standard JSON (level keys quoted).
    pub fn to_standard_json(&self) -> String {
        serde_json::to_string(self).expect("delay offsets serialize")
    }
}

impl JsonTable for DelayOffsetSerializeWrapper {
    fn data_version_mut(&mut self) -> &mut DataVersion {
        self.data_version.get_or_insert_with(DataVersion::default)
    }

    fn file_bytes(&self) -> Vec<u8> {
        self.to_java_json().into_bytes()
    }
}

/// The delay-offset table, loaded from and persisted to `delayOffset.json`. Progress
/// changes memory only (see `persist`).
#[derive(Debug)]
pub struct DelayOffsetStore {
    /// Always holds a `dataVersion` (created at load if the file had none).
    store: JsonStore<DelayOffsetSerializeWrapper>,
}

impl DelayOffsetStore {
    /// Loads `<dir>/delayOffset.json` (or its `.bak`); an absent file gives an empty table.
    pub fn load(dir: &Path) -> Result<DelayOffsetStore> {
        Ok(DelayOffsetStore {
            store: JsonStore::load(dir, DELAY_OFFSET_FILE)?,
        })
    }

    /// The file this store persists to.
    pub fn path(&self) -> &Path {
        self.store.path()
    }

    /// The next offset to deliver for a delay level (1-based).
    pub fn get(&self, level: i32) -> Option<i64> {
        self.store.read(|w| w.offset_table.get(&level).copied())
    }

    /// Records progress for a delay level (memory only; see `persist`).
    pub fn set(&self, level: i32, offset: i64) {
        self.store.touch(|w| {
            w.offset_table.insert(level, offset);
            ((), true)
        });
    }

    /// All levels and offsets.
    pub fn all(&self) -> BTreeMap<i32, i64> {
        self.store.read(|w| w.offset_table.clone())
    }

    pub fn data_version(&self) -> DataVersion {
        self.store.read(|w| w.data_version.unwrap_or_default())
    }

    /// The table and version as the wrapper (always with `dataVersion`).
    pub fn snapshot(&self) -> DelayOffsetSerializeWrapper {
        self.store.read(Clone::clone)
    }

    /// Writes the table atomically (Java dialect), first bumping the version if offsets
    /// changed since the last write.
    pub fn persist(&self) -> Result<()> {
        self.store.persist()
    }

    /// Slave sync (§8.3): the master's body is written verbatim to `delayOffset.json` and
    /// reloaded the way Java's `decode` does it (`putAll` of the levels, adopt the version if
    /// present). The body is parsed first: one that does not parse is an [`Error::Json`] and
    /// leaves the file untouched.
    pub fn replace_from_raw(&self, raw: &[u8]) -> Result<()> {
        let master = DelayOffsetSerializeWrapper::from_json(raw).map_err(|source| Error::Json {
            path: PathBuf::from(format!(
                "GET_ALL_DELAY_OFFSET body for {}",
                self.path().display()
            )),
            source,
        })?;
        self.store.write_raw_then(raw, |w| {
            w.offset_table
                .extend(master.offset_table.iter().map(|(k, v)| (*k, *v)));
            if let Some(v) = master.data_version {
                w.data_version = Some(v);
            }
            // Levels only we know are not in the file yet: the next persist writes them.
            w.offset_table != master.offset_table
        })
    }

    /// The GET_ALL_DELAY_OFFSET body, in Java's dialect (unquoted levels).
    pub fn to_wire_json(&self) -> String {
        self.store.read(DelayOffsetSerializeWrapper::to_java_json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_sample_parses_and_unquoted_keys_are_emitted() {
        let w =
            DelayOffsetSerializeWrapper::from_json(br#"{"offsetTable":{1:17,2:0,3:5}}"#).unwrap();
        assert_eq!(w.offset_table, BTreeMap::from([(1, 17), (2, 0), (3, 5)]));
        assert_eq!(w.to_java_json(), r#"{"offsetTable":{1:17,2:0,3:5}}"#);
        let q = DelayOffsetSerializeWrapper::from_json(
            br#"{"dataVersion":{"counter":1,"stateVersion":0,"timestamp":2},"offsetTable":{"1":17,"2":0,"3":5}}"#,
        )
        .unwrap();
        assert_eq!(q.offset_table, w.offset_table);
        assert_eq!(
            q.to_standard_json(),
            r#"{"dataVersion":{"counter":1,"stateVersion":0,"timestamp":2},"offsetTable":{"1":17,"2":0,"3":5}}"#
        );
        assert_eq!(
            q.to_java_json(),
            r#"{"dataVersion":{"counter":1,"stateVersion":0,"timestamp":2},"offsetTable":{1:17,2:0,3:5}}"#
        );
    }

    #[test]
    fn round_trip_through_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = DelayOffsetStore::load(dir.path()).unwrap();
        assert_eq!(store.get(1), None);
        store.set(1, 17);
        store.set(18, 3);
        store.persist().unwrap();
        let text = std::fs::read_to_string(store.path()).unwrap();
        assert!(text.ends_with(r#""offsetTable":{1:17,18:3}}"#), "{text}");
        let again = DelayOffsetStore::load(dir.path()).unwrap();
        assert_eq!(again.all(), store.all());
        assert_eq!(again.data_version(), store.data_version());
        assert_eq!(again.get(18), Some(3));
    }

    #[test]
    fn replace_from_raw_writes_verbatim_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let store = DelayOffsetStore::load(dir.path()).unwrap();
        store.set(5, 1);
        let raw = b"{\"dataVersion\":{\"counter\":4,\"stateVersion\":0,\"timestamp\":3},\"offsetTable\":{1:17,2:0}}";
        store.replace_from_raw(raw).unwrap();
        assert_eq!(std::fs::read(store.path()).unwrap(), raw);
        assert_eq!(store.get(1), Some(17));
        assert_eq!(store.get(5), Some(1), "Java's decode is putAll");
        assert_eq!(store.data_version().counter, 4);

        // A body that does not parse is rejected and the file is kept.
        assert!(matches!(
            store.replace_from_raw(b"{\"offsetTable\":{1:"),
            Err(Error::Json { .. })
        ));
        assert_eq!(std::fs::read(store.path()).unwrap(), raw);
    }

    #[test]
    fn corrupt_file_is_a_json_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(DELAY_OFFSET_FILE),
            b"{\"offsetTable\":[1,2]}",
        )
        .unwrap();
        assert!(matches!(
            DelayOffsetStore::load(dir.path()),
            Err(Error::Json { .. })
        ));
    }
}
