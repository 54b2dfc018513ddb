//! [`KvConfig`]: the name server's namespaced key/value table (RocketMQ's KVConfigManager),
//! the only state a name server keeps across restarts. Persisted after every change as
//! `{"configTable":{"<namespace>":{"<key>":"<value>"}}}` (the layout of Java's
//! `kvConfig.json`, so a file from a Java name server loads as is), written to a temporary
//! file and renamed over the old one so a crash leaves either version whole.
//!
//! Runs on: the name server's network loop, behind the server's mutex.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::wire::KvTable;

/// The namespace whose table a name server returns to registering brokers, and whose
/// entries (`brokerName:queueNum;...` per topic) become a route's `orderTopicConf`.
pub const NAMESPACE_ORDER_TOPIC_CONFIG: &str = "ORDER_TOPIC_CONFIG";

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct KvFile {
    config_table: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Debug)]
pub struct KvConfig {
    path: PathBuf,
    table: BTreeMap<String, BTreeMap<String, String>>,
}

impl KvConfig {
    /// Loads `path`; an absent file is an empty table, an unreadable one an error.
    pub fn load(path: &Path) -> io::Result<KvConfig> {
        let table = match std::fs::read(path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => BTreeMap::new(),
            Ok(bytes) => {
                let file: KvFile = serde_json::from_slice(&bytes).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: {e}", path.display()),
                    )
                })?;
                file.config_table
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        Ok(KvConfig {
            path: path.to_owned(),
            table,
        })
    }

    pub fn get(&self, namespace: &str, key: &str) -> Option<&str> {
        self.table.get(namespace)?.get(key).map(String::as_str)
    }

    /// A namespace as a KVTable; None when the namespace has never been written.
    pub fn namespace(&self, namespace: &str) -> Option<KvTable> {
        self.table
            .get(namespace)
            .map(|t| KvTable { table: t.clone() })
    }

    /// Sets `namespace`/`key` and persists.
    pub fn put(&mut self, namespace: &str, key: &str, value: &str) -> io::Result<()> {
        let prev = self
            .table
            .entry(namespace.to_owned())
            .or_default()
            .insert(key.to_owned(), value.to_owned());
        tracing::info!(
            namespace,
            key,
            value,
            updated = prev.is_some(),
            "KV config put"
        );
        self.persist()
    }

    /// Removes `namespace`/`key` (an emptied namespace stays, as in Java) and persists.
    pub fn delete(&mut self, namespace: &str, key: &str) -> io::Result<()> {
        if let Some(t) = self.table.get_mut(namespace) {
            let removed = t.remove(key);
            tracing::info!(
                namespace,
                key,
                removed = removed.is_some(),
                "KV config delete"
            );
        }
        self.persist()
    }

    fn persist(&self) -> io::Result<()> {
        let file = KvFile {
            config_table: self.table.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&file).expect("KV table serializes");
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_reload_and_reads_java_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("kvConfig.json");
        let mut kv = KvConfig::load(&path).unwrap();
        assert!(kv.namespace("ns").is_none());
        kv.put("ns", "k1", "v1").unwrap();
        kv.put("ns", "k2", "v2").unwrap();
        kv.delete("ns", "k1").unwrap();
        kv.delete("other", "x").unwrap();
        let again = KvConfig::load(&path).unwrap();
        assert_eq!(again.get("ns", "k2"), Some("v2"));
        assert_eq!(again.get("ns", "k1"), None);
        assert_eq!(again.namespace("ns").unwrap().table.len(), 1);

        std::fs::write(
            &path,
            r#"{"configTable":{"ORDER_TOPIC_CONFIG":{"T":"broker-a:4;broker-b:4"}}}"#,
        )
        .unwrap();
        let java = KvConfig::load(&path).unwrap();
        assert_eq!(
            java.get(NAMESPACE_ORDER_TOPIC_CONFIG, "T"),
            Some("broker-a:4;broker-b:4")
        );
        std::fs::write(&path, "{nope").unwrap();
        assert!(KvConfig::load(&path).is_err());
    }
}
