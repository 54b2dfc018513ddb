//! `ringmq admin <command>`: mqadmin's commands with mqadmin's names and options, speaking
//! the same request codes, so they work against ringmq, Apache RocketMQ and rocketmq-rust
//! brokers and name servers. `-n` is a name server, or a ringmq broker (which answers
//! route and cluster queries for its own group); `-b` picks one broker.
//!
//! | file | owns |
//! | --- | --- |
//! | `call` | one admin session: connections, requests, cluster and route look-ups |
//! | `format` | mqadmin's fixed-width columns and time format |
//! | `topic_cmds` | updateTopic, deleteTopic, topicList, topicRoute, topicStatus |
//! | `group_cmds` | updateSubGroup, deleteSubGroup, consumerProgress, consumerConnection, resetOffsetByTime |
//! | `broker_cmds` | clusterList, brokerStatus, getBrokerConfig, updateBrokerConfig, queryMsgById |
//!
//! Every command prints a table (or `--json`: one JSON document) on stdout and exits 0;
//! a failure prints one line on stderr and exits 1.

mod broker_cmds;
mod call;
mod format;
mod group_cmds;
mod topic_cmds;

use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::Value;

pub use call::Admin;

/// Options every admin command takes.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Name server address (host:port[;host:port]); a ringmq broker's address works too.
    /// Default: $NAMESRV_ADDR, else 127.0.0.1:10911 (a standalone ringmq broker).
    #[arg(short = 'n', long = "namesrvAddr", default_value_t = default_namesrv())]
    pub namesrv: String,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Request timeout in milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub timeout_ms: u64,
}

#[derive(Args, Debug)]
pub struct AdminArgs {
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Subcommand, Debug)]
#[command(rename_all = "camelCase")]
pub enum AdminCommand {
    /// Create or update a topic on a broker (-b) or every master of a cluster (-c).
    UpdateTopic(topic_cmds::UpdateTopic),
    /// Delete a topic from the brokers of a cluster (or one broker) and the name server.
    DeleteTopic(topic_cmds::DeleteTopic),
    /// List topics.
    TopicList(topic_cmds::TopicList),
    /// Show a topic's route.
    TopicRoute(topic_cmds::TopicArg),
    /// Per queue min/max offset and last update time of a topic.
    TopicStatus(topic_cmds::TopicArg),
    /// Create or update a subscription group.
    UpdateSubGroup(group_cmds::UpdateSubGroup),
    /// Delete a subscription group.
    DeleteSubGroup(group_cmds::DeleteSubGroup),
    /// Per queue broker offset, consumer offset and lag of a group.
    ConsumerProgress(group_cmds::ConsumerProgress),
    /// The online connections and subscriptions of a consumer group.
    ConsumerConnection(group_cmds::GroupArg),
    /// Reset a group's offsets on a topic to a time.
    ResetOffsetByTime(group_cmds::ResetOffsetByTime),
    /// Brokers of each cluster with their rates.
    ClusterList(broker_cmds::ClusterList),
    /// A broker's runtime info.
    BrokerStatus(broker_cmds::BrokerTarget),
    /// A broker's configuration.
    GetBrokerConfig(broker_cmds::BrokerTarget),
    /// Change a broker setting at runtime.
    UpdateBrokerConfig(broker_cmds::UpdateBrokerConfig),
    /// A message by its offsetMsgId.
    QueryMsgById(broker_cmds::QueryMsgById),
}

/// What a command prints: a table for people, a document for scripts.
pub struct Output {
    pub text: String,
    pub json: Value,
}

pub type CmdResult = Result<Output, String>;

pub fn run(args: AdminArgs) -> i32 {
    let (name, result) = dispatch(args.command);
    match result {
        Ok((out, json)) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&out.json).unwrap_or_default()
                );
            } else {
                print!("{}", out.text);
            }
            0
        }
        Err(e) => {
            eprintln!("ringmq admin {name}: {}", e.replace('\n', " "));
            1
        }
    }
}

fn dispatch(cmd: AdminCommand) -> (&'static str, Result<(Output, bool), String>) {
    macro_rules! go {
        ($name:literal, $args:expr, $f:path) => {{
            let a = $args;
            let admin = Admin::new(&a.common);
            ($name, $f(&admin, &a).map(|o| (o, a.common.json)))
        }};
    }
    match cmd {
        AdminCommand::UpdateTopic(a) => go!("updateTopic", a, topic_cmds::update_topic),
        AdminCommand::DeleteTopic(a) => go!("deleteTopic", a, topic_cmds::delete_topic),
        AdminCommand::TopicList(a) => go!("topicList", a, topic_cmds::topic_list),
        AdminCommand::TopicRoute(a) => go!("topicRoute", a, topic_cmds::topic_route),
        AdminCommand::TopicStatus(a) => go!("topicStatus", a, topic_cmds::topic_status),
        AdminCommand::UpdateSubGroup(a) => go!("updateSubGroup", a, group_cmds::update_sub_group),
        AdminCommand::DeleteSubGroup(a) => go!("deleteSubGroup", a, group_cmds::delete_sub_group),
        AdminCommand::ConsumerProgress(a) => {
            go!("consumerProgress", a, group_cmds::consumer_progress)
        }
        AdminCommand::ConsumerConnection(a) => {
            go!("consumerConnection", a, group_cmds::consumer_connection)
        }
        AdminCommand::ResetOffsetByTime(a) => {
            go!("resetOffsetByTime", a, group_cmds::reset_offset_by_time)
        }
        AdminCommand::ClusterList(a) => go!("clusterList", a, broker_cmds::cluster_list),
        AdminCommand::BrokerStatus(a) => go!("brokerStatus", a, broker_cmds::broker_status),
        AdminCommand::GetBrokerConfig(a) => {
            go!("getBrokerConfig", a, broker_cmds::get_broker_config)
        }
        AdminCommand::UpdateBrokerConfig(a) => {
            go!("updateBrokerConfig", a, broker_cmds::update_broker_config)
        }
        AdminCommand::QueryMsgById(a) => go!("queryMsgById", a, broker_cmds::query_msg_by_id),
    }
}

fn default_namesrv() -> String {
    std::env::var("NAMESRV_ADDR").unwrap_or_else(|_| "127.0.0.1:10911".into())
}

impl Common {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }
}
