//! Broker metadata kept as JSON files under `<storePathRootDir>/config/` (wire spec §6,
//! §8.3-8.4), byte-compatible with what a Java broker writes and serves:
//!
//! | file | store | Java body |
//! | --- | --- | --- |
//! | `topics.json` | [`TopicStore`] | GET_ALL_TOPIC_CONFIG (21) |
//! | `consumerOffset.json` | [`ConsumerOffsetStore`] | GET_ALL_CONSUMER_OFFSET (43) |
//! | `delayOffset.json` | [`DelayOffsetStore`] | GET_ALL_DELAY_OFFSET (45) |
//! | `subscriptionGroup.json` | [`SubscriptionGroupStore`] | GET_ALL_SUBSCRIPTIONGROUP_CONFIG (201) |
//!
//! Every file is replaced with [`write_atomically`] (temp file, fsync, rename, fsync dir;
//! the previous version is kept as `<name>.bak`). Parsing accepts Java's fastjson dialect
//! (unquoted integer keys, see [`json`]), ignores or preserves unknown properties and
//! defaults missing ones; the offset tables are emitted with unquoted integer keys, the form
//! Java peers are sure to read (§11). A file that does not parse is an
//! [`Error::Json`](crate::Error::Json) naming it.
//!
//! Each store is a [`JsonStore`] (load, lock, dirty flag, data version, atomic write) plus
//! what is its own: the table's types, its file dialect and its operations.
//!
//! Each store is internally locked and can be shared (`Arc`) between threads. Consumer and
//! delay offsets change in memory only; the broker persists them periodically with
//! [`MetaStores::persist_all`]. Topic and subscription-group changes persist at once.

pub mod atomic_file;
pub mod consumer_offsets;
pub mod data_version;
pub mod delay_offsets;
pub mod json;
pub mod json_store;
pub mod subscription_groups;
pub mod topics;

use std::path::Path;

pub use atomic_file::{read_if_exists, write_atomically};
pub use consumer_offsets::{
    ConsumerOffsetSerializeWrapper, ConsumerOffsetStore, CONSUMER_OFFSET_FILE,
    TOPIC_GROUP_SEPARATOR,
};
pub use data_version::DataVersion;
pub use delay_offsets::{DelayOffsetSerializeWrapper, DelayOffsetStore, DELAY_OFFSET_FILE};
pub use json_store::{JsonStore, JsonTable};
pub use subscription_groups::{
    SubscriptionGroupConfig, SubscriptionGroupStore, SubscriptionGroupWrapper,
    SUBSCRIPTION_GROUP_FILE,
};
pub use topics::{
    TopicConfig, TopicConfigSerializeWrapper, TopicFilterType, TopicStore, PERM_INHERIT,
    PERM_PRIORITY, PERM_READ, PERM_WRITE, TOPICS_FILE,
};

use crate::{Error, Result};

/// The four metadata stores of one broker.
#[derive(Debug)]
pub struct MetaStores {
    pub topics: TopicStore,
    pub consumer_offsets: ConsumerOffsetStore,
    pub subscription_groups: SubscriptionGroupStore,
    pub delay_offsets: DelayOffsetStore,
}

impl MetaStores {
    /// Opens (creating the directory if needed) and loads all stores from `config_dir`,
    /// normally `<storePathRootDir>/config`. Missing files give empty tables.
    pub fn open(config_dir: &Path) -> Result<MetaStores> {
        crate::io::gate::disk()
            .create_dir_all(config_dir)
            .map_err(|e| Error::io(format!("create directory {}", config_dir.display()), e))?;
        Ok(MetaStores {
            topics: TopicStore::load(config_dir)?,
            consumer_offsets: ConsumerOffsetStore::load(config_dir)?,
            subscription_groups: SubscriptionGroupStore::load(config_dir)?,
            delay_offsets: DelayOffsetStore::load(config_dir)?,
        })
    }

    /// Persists every store; all are attempted, the first error is returned.
    pub fn persist_all(&self) -> Result<()> {
        let results = [
            self.topics.persist(),
            self.consumer_offsets.persist(),
            self.subscription_groups.persist(),
            self.delay_offsets.persist(),
        ];
        results.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_persist_all_reopen() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("config");
        let m = MetaStores::open(&dir).unwrap();
        m.topics.put_and_persist(TopicConfig::new("T1")).unwrap();
        m.consumer_offsets.commit("G1", "T1", 0, 42);
        m.subscription_groups.get_or_create("G1", true).unwrap();
        m.delay_offsets.set(3, 9);
        m.persist_all().unwrap();
        for f in [
            TOPICS_FILE,
            CONSUMER_OFFSET_FILE,
            SUBSCRIPTION_GROUP_FILE,
            DELAY_OFFSET_FILE,
        ] {
            assert!(dir.join(f).is_file(), "{f}");
        }

        let again = MetaStores::open(&dir).unwrap();
        assert!(again.topics.contains("T1"));
        assert_eq!(again.consumer_offsets.query("G1", "T1", 0), Some(42));
        assert!(again.subscription_groups.get("G1").is_some());
        assert_eq!(again.delay_offsets.get(3), Some(9));
    }
}
