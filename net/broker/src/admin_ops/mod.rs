//! mqadmin's broker requests (issue 15), one file per area, with RocketMQ's JSON bodies so
//! Apache's `mqadmin` works against ringmq as it does against a Java broker.
//!
//! | file | requests |
//! | --- | --- |
//! | `topic` | DELETE_TOPIC_IN_BROKER (215), GET_TOPIC_STATS_INFO (202) |
//! | `group` | UPDATE_AND_CREATE_SUBSCRIPTIONGROUP (200), DELETE_SUBSCRIPTIONGROUP (207) |
//! | `consume` | GET_CONSUME_STATS (208), GET_CONSUMER_CONNECTION_LIST (203) |
//! | `reset` | INVOKE_BROKER_TO_RESET_OFFSET (222), telling clients RESET_CONSUMER_CLIENT_OFFSET (220) |
//! | `message` | VIEW_MESSAGE_BY_ID (33) |
//! | `broker_config` | GET_BROKER_CONFIG (26), UPDATE_BROKER_CONFIG (25) |
//! | `runtime` | GET_BROKER_RUNTIME_INFO (28) with rates and totals filled in |
//!
//! Runs on: the network cores, like every other processor. Only DELETE_TOPIC_IN_BROKER
//! may wait (up to a second, for the dispatcher to index what was already stored).

mod broker_config;
mod consume;
mod group;
mod message;
mod reset;
mod runtime;
mod topic;

pub use ringmq_client::fastjson;

use std::collections::BTreeMap;
use std::sync::Mutex;

pub use broker_config::{config_properties, get_broker_config, update_broker_config};
pub use consume::{get_consume_stats, get_consumer_connection_list};
pub use group::{delete_subscription_group, update_and_create_subscription_group};
pub use message::view_message_by_id;
pub use reset::invoke_broker_to_reset_offset;
pub use runtime::{get_broker_runtime_info, totals};
pub use topic::{delete_topic_in_broker, get_topic_stats_info};

use ringmq_remoting::command::RemotingCommand;

/// Admin state kept beside the broker: runtime config changes made by UPDATE_BROKER_CONFIG.
#[derive(Debug, Default)]
pub struct OpsState {
    /// key → value of every runtime change, shown by GET_BROKER_CONFIG over the file's.
    pub config_overrides: Mutex<BTreeMap<String, String>>,
}

fn error(req: &RemotingCommand, code: i32, remark: impl Into<String>) -> RemotingCommand {
    RemotingCommand::response_to(req, code, Some(remark.into()))
}

fn success(req: &RemotingCommand) -> RemotingCommand {
    RemotingCommand::response_to(req, ringmq_remoting::codes::response_code::SUCCESS, None)
}

#[cfg(test)]
mod tests;
