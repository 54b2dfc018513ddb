//! Subscription-group configurations: `SubscriptionGroupConfig`, `SubscriptionGroupWrapper`
//! (wire spec §6.9) and [`SubscriptionGroupStore`], which keeps
//! `<config>/subscriptionGroup.json` (a [`JsonStore`], written pretty). Any thread.
//!
//! 5.x-only structured properties (`groupRetryPolicy`, `subscriptionDataSet`,
//! `forbiddenTable`) are kept as opaque JSON; unknown properties are preserved in `extra`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::data_version::DataVersion;
use super::json::{self, null_as_default};
use super::json_store::{JsonStore, JsonTable};
use crate::Result;

/// File name under `<storePathRootDir>/config/`.
pub const SUBSCRIPTION_GROUP_FILE: &str = "subscriptionGroup.json";

/// One consumer group's configuration. Fields are declared in fastjson's (alphabetical) order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionGroupConfig {
    /// 5.x.
    #[serde(deserialize_with = "null_as_default")]
    pub attributes: BTreeMap<String, String>,
    pub broker_id: i64,
    pub consume_broadcast_enable: bool,
    pub consume_enable: bool,
    pub consume_from_min_enable: bool,
    /// 5.x.
    pub consume_message_orderly: bool,
    /// 5.x.
    pub consume_timeout_minute: i32,
    #[serde(deserialize_with = "null_as_default")]
    pub group_name: String,
    /// 5.x `{type, exponentialRetryPolicy, customizedRetryPolicy}`; Java's default
    /// (CUSTOMIZED) applies when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_retry_policy: Option<Value>,
    /// 5.x.
    pub group_sys_flag: i32,
    pub notify_consumer_ids_changed_enable: bool,
    pub retry_max_times: i32,
    pub retry_queue_nums: i32,
    /// 5.x; null by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_data_set: Option<Value>,
    pub which_broker_when_consume_slowly: i64,
    /// Properties this version does not know, preserved verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Default for SubscriptionGroupConfig {
    /// Java's defaults.
    fn default() -> Self {
        SubscriptionGroupConfig {
            attributes: BTreeMap::new(),
            broker_id: 0,
            consume_broadcast_enable: true,
            consume_enable: true,
            consume_from_min_enable: true,
            consume_message_orderly: false,
            consume_timeout_minute: 15,
            group_name: String::new(),
            group_retry_policy: None,
            group_sys_flag: 0,
            notify_consumer_ids_changed_enable: true,
            retry_max_times: 16,
            retry_queue_nums: 1,
            subscription_data_set: None,
            which_broker_when_consume_slowly: 1,
            extra: BTreeMap::new(),
        }
    }
}

impl SubscriptionGroupConfig {
    /// A group with Java's defaults.
    pub fn new(group_name: impl Into<String>) -> Self {
        SubscriptionGroupConfig {
            group_name: group_name.into(),
            ..Self::default()
        }
    }
}

/// `subscriptionGroup.json` and the GET_ALL_SUBSCRIPTIONGROUP_CONFIG body.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionGroupWrapper {
    pub data_version: DataVersion,
    /// [J] only: group -> topic -> forbidden bitmask. Local; not taken from the master.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forbidden_table: Option<Value>,
    #[serde(deserialize_with = "null_as_default")]
    pub subscription_group_table: BTreeMap<String, SubscriptionGroupConfig>,
}

impl SubscriptionGroupWrapper {
    /// Parses a body or file in either JSON dialect.
    pub fn from_json(bytes: &[u8]) -> serde_json::Result<Self> {
        json::from_slice(bytes)
    }
}

impl JsonTable for SubscriptionGroupWrapper {
    fn data_version_mut(&mut self) -> &mut DataVersion {
        &mut self.data_version
    }

    fn file_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("subscription groups serialize")
    }
}

/// The subscription-group table, loaded from and persisted to `subscriptionGroup.json`.
/// Every change bumps the data version and persists at once.
#[derive(Debug)]
pub struct SubscriptionGroupStore {
    store: JsonStore<SubscriptionGroupWrapper>,
}

impl SubscriptionGroupStore {
    /// Loads `<dir>/subscriptionGroup.json` (or its `.bak`); an absent file gives an empty
    /// table.
    pub fn load(dir: &Path) -> Result<SubscriptionGroupStore> {
        Ok(SubscriptionGroupStore {
            store: JsonStore::load(dir, SUBSCRIPTION_GROUP_FILE)?,
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

    pub fn get(&self, group: &str) -> Option<SubscriptionGroupConfig> {
        self.store
            .read(|w| w.subscription_group_table.get(group).cloned())
    }

    /// Java's `findSubscriptionGroupConfig`: the group's config; if it does not exist and
    /// `auto_create` (broker `autoCreateSubscriptionGroup`, or a system group), a default
    /// one is added, the version bumped and the table persisted. If persisting fails the
    /// group stays in memory and the error is returned.
    pub fn get_or_create(
        &self,
        group: &str,
        auto_create: bool,
    ) -> Result<Option<SubscriptionGroupConfig>> {
        let (config, created) = self.get_or_add(group, auto_create);
        if created {
            self.persist()?;
        }
        Ok(config)
    }

    /// [`Self::get_or_create`] in memory only: also says whether the group was added (the
    /// caller persists later, off its network threads).
    pub fn get_or_add(
        &self,
        group: &str,
        auto_create: bool,
    ) -> (Option<SubscriptionGroupConfig>, bool) {
        if let Some(c) = self.get(group) {
            return (Some(c), false);
        }
        if !auto_create {
            return (None, false);
        }
        let (config, created) = self.store.change(|w| {
            if let Some(c) = w.subscription_group_table.get(group) {
                return ((c.clone(), false), false);
            }
            let c = SubscriptionGroupConfig::new(group);
            w.subscription_group_table
                .insert(group.to_owned(), c.clone());
            ((c, true), true)
        });
        (Some(config), created)
    }

    /// Inserts or replaces a group (UPDATE_AND_CREATE_SUBSCRIPTIONGROUP), bumps the version
    /// and persists.
    pub fn put(&self, config: SubscriptionGroupConfig) -> Result<()> {
        self.store.change(|w| {
            w.subscription_group_table
                .insert(config.group_name.clone(), config);
            ((), true)
        });
        self.persist()
    }

    /// Removes a group; bumps the version and persists only if it existed.
    pub fn remove(&self, group: &str) -> Result<Option<SubscriptionGroupConfig>> {
        let removed = self.store.change(|w| {
            let removed = w.subscription_group_table.remove(group);
            let changed = removed.is_some();
            (removed, changed)
        });
        if removed.is_some() {
            self.persist()?;
        }
        Ok(removed)
    }

    /// How many groups the table holds.
    pub fn len(&self) -> usize {
        self.store.read(|w| w.subscription_group_table.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All groups, sorted by name.
    pub fn all(&self) -> Vec<SubscriptionGroupConfig> {
        self.store
            .read(|w| w.subscription_group_table.values().cloned().collect())
    }

    pub fn data_version(&self) -> DataVersion {
        self.store.read(|w| w.data_version)
    }

    /// A copy of the whole wrapper.
    pub fn snapshot(&self) -> SubscriptionGroupWrapper {
        self.store.read(Clone::clone)
    }

    /// Slave sync (§8.3): if the master's version differs, adopt it and its table (groups
    /// missing on the master are removed; the local `forbiddenTable` is kept) and persist.
    /// Returns whether anything was applied.
    pub fn replace_from_master(&self, master: SubscriptionGroupWrapper) -> Result<bool> {
        let applied = self.store.write(|w| {
            if w.data_version == master.data_version {
                return false;
            }
            w.data_version = master.data_version;
            w.subscription_group_table = master.subscription_group_table;
            true
        });
        if applied {
            self.persist()?;
        }
        Ok(applied)
    }

    /// The GET_ALL_SUBSCRIPTIONGROUP_CONFIG body.
    pub fn to_wire_json(&self) -> String {
        self.store
            .read(|w| serde_json::to_string(w).expect("subscription groups serialize"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    #[test]
    fn java_shaped_json_parses() {
        // 4.x group (no 5.x fields) and a 5.x group with retry policy, unknown property, nulls.
        let s = r#"{"dataVersion":{"counter":5,"stateVersion":0,"timestamp":1700000000000},
          "forbiddenTable":{"G2":{"T1":1}},
          "subscriptionGroupTable":{
            "G1":{"brokerId":0,"consumeBroadcastEnable":true,"consumeEnable":true,"consumeFromMinEnable":true,
                  "groupName":"G1","notifyConsumerIdsChangedEnable":true,"retryMaxTimes":16,"retryQueueNums":1,
                  "whichBrokerWhenConsumeSlowly":1},
            "G2":{"groupName":"G2","consumeEnable":false,"consumeMessageOrderly":true,"groupSysFlag":0,
                  "groupRetryPolicy":{"type":"CUSTOMIZED","customizedRetryPolicy":{"next":[1000,5000]}},
                  "subscriptionDataSet":null,"attributes":{},"futureFlag":42}}}"#;
        let w = SubscriptionGroupWrapper::from_json(s.as_bytes()).unwrap();
        assert_eq!(w.data_version.counter, 5);
        assert_eq!(
            w.subscription_group_table["G1"],
            SubscriptionGroupConfig::new("G1")
        );
        let g2 = &w.subscription_group_table["G2"];
        assert!(!g2.consume_enable && g2.consume_message_orderly);
        assert_eq!(
            (
                g2.retry_queue_nums,
                g2.retry_max_times,
                g2.consume_timeout_minute
            ),
            (1, 16, 15)
        );
        assert_eq!(
            g2.group_retry_policy.as_ref().unwrap()["type"],
            "CUSTOMIZED"
        );
        assert_eq!(g2.extra["futureFlag"], 42);
        assert!(w.forbidden_table.is_some());
        // Serialized form keeps Java's property names.
        let out = serde_json::to_string(&SubscriptionGroupConfig::new("G")).unwrap();
        for name in [
            "\"groupName\":\"G\"",
            "\"retryQueueNums\":1",
            "\"retryMaxTimes\":16",
            "\"whichBrokerWhenConsumeSlowly\":1",
            "\"notifyConsumerIdsChangedEnable\":true",
            "\"consumeFromMinEnable\":true",
            "\"consumeBroadcastEnable\":true",
        ] {
            assert!(out.contains(name), "{name} missing in {out}");
        }
    }

    #[test]
    fn round_trip_through_disk_and_auto_create() {
        let dir = tempfile::tempdir().unwrap();
        let store = SubscriptionGroupStore::load(dir.path()).unwrap();
        assert_eq!(store.get_or_create("G1", false).unwrap(), None);
        let v0 = store.data_version();
        let g1 = store.get_or_create("G1", true).unwrap().unwrap();
        assert_eq!(g1, SubscriptionGroupConfig::new("G1"));
        assert_eq!(store.data_version().counter, v0.counter + 1);
        assert_eq!(store.get_or_create("G1", true).unwrap(), Some(g1));
        assert_eq!(
            store.data_version().counter,
            v0.counter + 1,
            "existing group: no bump"
        );

        let mut g2 = SubscriptionGroupConfig::new("G2");
        g2.retry_max_times = 3;
        store.put(g2.clone()).unwrap();

        let again = SubscriptionGroupStore::load(dir.path()).unwrap();
        assert_eq!(again.snapshot(), store.snapshot());
        assert_eq!(again.get("G2"), Some(g2));
        assert_eq!(again.all().len(), 2);
        assert!(again.remove("G1").unwrap().is_some());
        assert!(SubscriptionGroupStore::load(dir.path())
            .unwrap()
            .get("G1")
            .is_none());

        let wire = SubscriptionGroupWrapper::from_json(store.to_wire_json().as_bytes()).unwrap();
        assert_eq!(wire, store.snapshot());
    }

    #[test]
    fn replace_from_master_only_on_new_version() {
        let dir = tempfile::tempdir().unwrap();
        let store = SubscriptionGroupStore::load(dir.path()).unwrap();
        store.put(SubscriptionGroupConfig::new("LOCAL")).unwrap();
        let mut master = SubscriptionGroupWrapper {
            data_version: DataVersion {
                counter: 9,
                state_version: 0,
                timestamp: 1,
            },
            ..Default::default()
        };
        master
            .subscription_group_table
            .insert("M".into(), SubscriptionGroupConfig::new("M"));
        assert!(store.replace_from_master(master.clone()).unwrap());
        assert!(store.get("LOCAL").is_none());
        assert!(store.get("M").is_some());
        master.subscription_group_table.clear();
        assert!(!store.replace_from_master(master).unwrap());
        assert!(store.get("M").is_some());
        let on_disk = SubscriptionGroupStore::load(dir.path()).unwrap();
        assert_eq!(on_disk.snapshot(), store.snapshot());
    }

    #[test]
    fn corrupt_file_is_a_json_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SUBSCRIPTION_GROUP_FILE), b"not json").unwrap();
        assert!(matches!(
            SubscriptionGroupStore::load(dir.path()),
            Err(Error::Json { .. })
        ));
    }
}
