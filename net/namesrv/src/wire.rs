//! The JSON bodies a name server reads and writes (wire spec §6; `README.md` here):
//! RegisterBrokerBody in, TopicRouteData, ClusterInfo, TopicList, KVTable and DataVersion
//! out. Properties are declared in alphabetical order, the order Java's standard-JSON mode
//! (`MapSortField`) writes them; map keys are always quoted (spec §6.1: the safe choice,
//! read by Java >= 4.9.4 and by rocketmq-rust).
//!
//! Pure data: no I/O, any thread.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// PermName bits (spec §3.12).
pub const PERM_READ: i32 = 0x4;
pub const PERM_WRITE: i32 = 0x2;

/// Broker id of a group's master.
pub const MASTER_ID: i64 = 0;

/// DataVersion (§6.5). Two versions are equal when all three fields are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DataVersion {
    pub counter: i64,
    pub state_version: i64,
    pub timestamp: i64,
}

/// The fields of a TopicConfig (§6.6) that routes need; the rest is ignored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicConfig {
    pub topic_name: String,
    pub read_queue_nums: i32,
    pub write_queue_nums: i32,
    pub perm: i32,
    pub topic_sys_flag: i32,
}

impl Default for TopicConfig {
    /// Java's defaults: 16/16 queues, READ|WRITE.
    fn default() -> Self {
        TopicConfig {
            topic_name: String::new(),
            read_queue_nums: 16,
            write_queue_nums: 16,
            perm: PERM_READ | PERM_WRITE,
            topic_sys_flag: 0,
        }
    }
}

/// TopicConfigSerializeWrapper, or the 5.x TopicConfigAndMappingSerializeWrapper (its
/// static-topic mapping is only looked at to know whether there is one).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicConfigWrapper {
    pub data_version: DataVersion,
    pub topic_config_table: BTreeMap<String, TopicConfig>,
    pub topic_queue_mapping_info_map: BTreeMap<String, Value>,
}

/// RegisterBrokerBody (§6.10), uncompressed form.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RegisterBrokerBody {
    pub topic_config_serialize_wrapper: TopicConfigWrapper,
    pub filter_server_list: Option<Vec<String>>,
}

/// QueueData (§6.3): one broker group's queues of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueData {
    pub broker_name: String,
    pub perm: i32,
    pub read_queue_nums: i32,
    pub topic_sys_flag: i32,
    pub write_queue_nums: i32,
}

impl QueueData {
    pub fn of(broker_name: &str, c: &TopicConfig) -> Self {
        QueueData {
            broker_name: broker_name.to_owned(),
            perm: c.perm,
            read_queue_nums: c.read_queue_nums,
            topic_sys_flag: c.topic_sys_flag,
            write_queue_nums: c.write_queue_nums,
        }
    }
}

/// BrokerData (§6.3): a group's live addresses by broker id (0 = master).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerData {
    pub broker_addrs: BTreeMap<i64, String>,
    pub broker_name: String,
    pub cluster: String,
    pub enable_acting_master: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone_name: Option<String>,
}

/// TopicRouteData (§6.3), the GET_ROUTEINFO_BY_TOPIC body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicRouteData {
    pub broker_datas: Vec<BrokerData>,
    /// brokerAddr -> filter servers; `{}` unless brokers announced some.
    pub filter_server_table: BTreeMap<String, Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_topic_conf: Option<String>,
    pub queue_datas: Vec<QueueData>,
}

/// ClusterInfo (§6.4), the GET_BROKER_CLUSTER_INFO body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInfo {
    pub broker_addr_table: BTreeMap<String, BrokerData>,
    pub cluster_addr_table: BTreeMap<String, BTreeSet<String>>,
}

/// TopicList, the GET_ALL_TOPIC_LIST_FROM_NAMESERVER body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicList {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_addr: Option<String>,
    pub topic_list: BTreeSet<String>,
}

/// KVTable (§6.11): one namespace of the KV config.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KvTable {
    pub table: BTreeMap<String, String>,
}

/// Parses a REGISTER_BROKER body. Brokers older than V3_0_11 (version ordinal 37) send
/// the bare topic wrapper instead of a RegisterBrokerBody; an empty body registers an
/// empty table with version zero, as Java does.
pub fn parse_register_body(body: &[u8], version: i32) -> serde_json::Result<RegisterBrokerBody> {
    const V3_0_11: i32 = 37;
    if body.is_empty() {
        return Ok(RegisterBrokerBody::default());
    }
    if version < V3_0_11 {
        let wrapper: TopicConfigWrapper = serde_json::from_slice(body)?;
        return Ok(RegisterBrokerBody {
            topic_config_serialize_wrapper: wrapper,
            filter_server_list: None,
        });
    }
    serde_json::from_slice(body)
}

pub fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("wire bodies serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_java_register_body_parses() {
        let body = br#"{"filterServerList":[],"topicConfigSerializeWrapper":{"dataVersion":{"counter":3,"stateVersion":0,"timestamp":1700000000000},
          "mappingDataVersion":{"counter":0,"stateVersion":0,"timestamp":0},
          "topicConfigTable":{"T1":{"attributes":{},"order":false,"perm":6,"readQueueNums":4,"topicFilterType":"SINGLE_TAG","topicName":"T1","topicSysFlag":0,"writeQueueNums":4}},
          "topicQueueMappingDetailMap":{},"topicQueueMappingInfoMap":{}}}"#;
        let b = parse_register_body(body, 479).unwrap();
        let w = &b.topic_config_serialize_wrapper;
        assert_eq!(w.data_version.counter, 3);
        assert_eq!(w.topic_config_table["T1"].write_queue_nums, 4);
        assert_eq!(b.filter_server_list, Some(vec![]));
        let old = parse_register_body(
            br#"{"dataVersion":{"counter":1,"timestamp":5},"topicConfigTable":{"A":{"topicName":"A"}}}"#,
            10,
        )
        .unwrap();
        assert_eq!(
            old.topic_config_serialize_wrapper.topic_config_table["A"].read_queue_nums,
            16
        );
        assert_eq!(
            parse_register_body(b"", 479).unwrap(),
            RegisterBrokerBody::default()
        );
    }

    #[test]
    fn route_data_has_quoted_sorted_keys() {
        let route = TopicRouteData {
            broker_datas: vec![BrokerData {
                broker_addrs: [(1, "b:1".to_string()), (0, "a:1".to_string())].into(),
                broker_name: "broker-a".into(),
                cluster: "C".into(),
                enable_acting_master: false,
                zone_name: None,
            }],
            filter_server_table: BTreeMap::new(),
            order_topic_conf: None,
            queue_datas: vec![],
        };
        assert_eq!(
            String::from_utf8(to_json(&route)).unwrap(),
            r#"{"brokerDatas":[{"brokerAddrs":{"0":"a:1","1":"b:1"},"brokerName":"broker-a","cluster":"C","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[]}"#
        );
    }
}
