//! `DataVersion` (wire spec §6.5): the change stamp of each metadata table.
//!
//! Slaves compare the master's version with their own (all fields) to decide whether to
//! re-apply a table. `stateVersion` is 5.x only but always emitted: the rocketmq-rust
//! deserializer requires all three properties.

pub use crate::clock::now_millis;

use serde::{Deserialize, Serialize};

/// Fields are declared in fastjson's (alphabetical) output order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DataVersion {
    pub counter: i64,
    pub state_version: i64,
    pub timestamp: i64,
}

impl Default for DataVersion {
    /// Like Java's `new DataVersion()`: counter 0, timestamp now.
    fn default() -> Self {
        DataVersion {
            counter: 0,
            state_version: 0,
            timestamp: now_millis(),
        }
    }
}

impl DataVersion {
    /// Java's `nextVersion()`: timestamp = now, counter + 1.
    pub fn next_version(&mut self) {
        self.timestamp = now_millis();
        self.counter += 1;
    }

    /// Java 5.x `nextVersion(stateVersion)`.
    pub fn next_version_with_state(&mut self, state_version: i64) {
        self.next_version();
        self.state_version = state_version;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_names_and_defaults() {
        let v = DataVersion {
            counter: 12,
            state_version: 0,
            timestamp: 1_700_000_000_000,
        };
        let s = serde_json::to_string(&v).unwrap();
        assert_eq!(
            s,
            r#"{"counter":12,"stateVersion":0,"timestamp":1700000000000}"#
        );
        assert_eq!(serde_json::from_str::<DataVersion>(&s).unwrap(), v);
        // 4.x form: no stateVersion; unknown properties ignored.
        let old: DataVersion =
            serde_json::from_str(r#"{"counter":3,"timestamp":5,"extra":[1]}"#).unwrap();
        assert_eq!(
            old,
            DataVersion {
                counter: 3,
                state_version: 0,
                timestamp: 5
            }
        );
    }

    #[test]
    fn next_version_bumps() {
        let mut v = DataVersion {
            counter: 1,
            state_version: 0,
            timestamp: 0,
        };
        v.next_version();
        assert_eq!(v.counter, 2);
        assert!(v.timestamp > 0);
        v.next_version_with_state(7);
        assert_eq!((v.counter, v.state_version), (3, 7));
    }
}
