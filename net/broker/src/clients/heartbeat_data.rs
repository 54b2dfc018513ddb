//! The HEART_BEAT body, `HeartbeatData` (spec §6.2), parsed tolerantly: Java and Rust
//! clients write nulls, numbers as strings and fields of later versions, and fastjson's
//! bare integer keys; none of that may refuse a heartbeat.
//!
//! Pure parsing, no state: runs on the network core that received the heartbeat.

use ringmq_engine::meta::json::null_as_default;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// One subscription of a consumer (Java's `SubscriptionData`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionData {
    #[serde(deserialize_with = "lenient_bool")]
    pub class_filter_mode: bool,
    #[serde(deserialize_with = "lenient_string")]
    pub topic: String,
    /// The expression; `*` (or empty) = every message.
    #[serde(deserialize_with = "lenient_string")]
    pub sub_string: String,
    /// `TAG` (the default) or `SQL92`.
    #[serde(deserialize_with = "lenient_string")]
    pub expression_type: String,
    #[serde(deserialize_with = "null_as_default")]
    pub tags_set: Vec<String>,
    /// Tag hashes (§4.9).
    #[serde(deserialize_with = "null_as_default")]
    pub code_set: Vec<i64>,
    /// When the client built the subscription (ms); a newer one replaces an older one.
    #[serde(deserialize_with = "lenient_i64")]
    pub sub_version: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct ProducerData {
    #[serde(deserialize_with = "lenient_string")]
    pub(super) group_name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct ConsumerData {
    #[serde(deserialize_with = "lenient_string")]
    pub(super) group_name: String,
    #[serde(deserialize_with = "lenient_string")]
    pub(super) consume_type: String,
    #[serde(deserialize_with = "lenient_string")]
    pub(super) message_model: String,
    #[serde(deserialize_with = "lenient_string")]
    pub(super) consume_from_where: String,
    #[serde(deserialize_with = "null_as_default")]
    pub(super) subscription_data_set: Vec<SubscriptionData>,
    #[serde(deserialize_with = "lenient_bool")]
    pub(super) unit_mode: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct HeartbeatData {
    #[serde(
        rename = "clientID",
        alias = "clientId",
        deserialize_with = "lenient_string"
    )]
    pub(super) client_id: String,
    #[serde(deserialize_with = "null_as_default")]
    pub(super) producer_data_set: Vec<ProducerData>,
    #[serde(deserialize_with = "null_as_default")]
    pub(super) consumer_data_set: Vec<ConsumerData>,
    #[serde(deserialize_with = "lenient_i64")]
    pub(super) heartbeat_fingerprint: i64,
    #[serde(deserialize_with = "lenient_bool")]
    pub(super) without_sub: bool,
}

/// A string, or any scalar written as text; null = empty.
fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Null => String::new(),
        Value::String(s) => s,
        other => other.to_string(),
    })
}

/// A number, or a number written as a string; null or anything else = 0.
fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .unwrap_or(0),
        Value::String(s) => s.trim().parse().unwrap_or(0),
        _ => 0,
    })
}

/// A boolean, or `"true"`/`"false"`; null or anything else = false.
fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => b,
        Value::String(s) => s.eq_ignore_ascii_case("true"),
        _ => false,
    })
}

impl HeartbeatData {
    pub(super) fn parse(body: &[u8]) -> Result<HeartbeatData, String> {
        if body.is_empty() {
            return Ok(HeartbeatData::default());
        }
        // The fastjson-tolerant parser (bare integer keys); standard JSON passes unchanged.
        ringmq_engine::meta::json::from_slice(body).map_err(|e| e.to_string())
    }
}
