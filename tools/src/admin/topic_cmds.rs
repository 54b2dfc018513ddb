//! updateTopic, deleteTopic, topicList, topicRoute, topicStatus.

use std::collections::BTreeSet;

use clap::Args;
use serde_json::{json, Value};

use super::format::{human_time, row_str};
use super::{Admin, CmdResult, Common, Output};
use ringmq_client::fastjson::parse_object_key_map;
use ringmq_engine::meta::json::quote_bare_keys;
use ringmq_remoting::codes::{request_code as rq, response_code as rs};
use ringmq_remoting::command::RemotingCommand;

#[derive(Args, Debug)]
pub struct UpdateTopic {
    #[command(flatten)]
    pub common: Common,
    /// Broker address.
    #[arg(short = 'b', long = "brokerAddr", conflicts_with = "cluster")]
    pub broker: Option<String>,
    /// Cluster name (every master of it).
    #[arg(short = 'c', long = "clusterName")]
    pub cluster: Option<String>,
    #[arg(short = 't', long)]
    pub topic: String,
    #[arg(short = 'r', long = "readQueueNums", default_value_t = 8)]
    pub read_queues: i32,
    #[arg(short = 'w', long = "writeQueueNums", default_value_t = 8)]
    pub write_queues: i32,
    /// Permission: 2 read, 4 write, 6 both.
    #[arg(short = 'p', long, default_value_t = 6)]
    pub perm: i32,
    /// Order topic.
    #[arg(short = 'o', long, default_value_t = false, action = clap::ArgAction::Set)]
    pub order: bool,
    /// Attributes, `+key=value,-key`.
    #[arg(short = 'a', long)]
    pub attributes: Option<String>,
}

pub fn update_topic(admin: &Admin, a: &UpdateTopic) -> CmdResult {
    let targets = admin.targets(a.broker.as_deref(), a.cluster.as_deref())?;
    let mut text = String::new();
    let mut done = Vec::new();
    for (_, addr) in &targets {
        let mut cmd = RemotingCommand::request(rq::UPDATE_AND_CREATE_TOPIC)
            .with_ext("topic", &a.topic)
            .with_ext("defaultTopic", "TBW102")
            .with_ext("readQueueNums", a.read_queues)
            .with_ext("writeQueueNums", a.write_queues)
            .with_ext("perm", a.perm)
            .with_ext("topicFilterType", "SINGLE_TAG")
            .with_ext("topicSysFlag", 0)
            .with_ext("order", a.order);
        if let Some(attrs) = &a.attributes {
            cmd.set_ext("attributes", attrs);
        }
        admin.ok(addr, cmd)?;
        text.push_str(&format!("create topic to {addr} success.\n"));
        done.push(addr.clone());
    }
    text.push_str(&format!(
        "TopicConfig [topicName={}, readQueueNums={}, writeQueueNums={}, perm={}, topicFilterType=SINGLE_TAG, topicSysFlag=0, order={}, attributes={}]\n",
        a.topic,
        a.read_queues,
        a.write_queues,
        perm_string(a.perm),
        a.order,
        a.attributes.as_deref().unwrap_or("{}")
    ));
    Ok(Output {
        text,
        json: json!({
            "brokers": done,
            "topicConfig": {
                "topicName": a.topic, "readQueueNums": a.read_queues,
                "writeQueueNums": a.write_queues, "perm": a.perm, "order": a.order,
            }
        }),
    })
}

/// Java's `PermName.perm2String`.
fn perm_string(perm: i32) -> String {
    let bit = |b: i32, c: char| if perm & b != 0 { c } else { '-' };
    format!("{}{}{}", bit(4, 'R'), bit(2, 'W'), bit(1, 'X'))
}

#[derive(Args, Debug)]
pub struct DeleteTopic {
    #[command(flatten)]
    pub common: Common,
    #[arg(short = 't', long)]
    pub topic: String,
    /// Cluster name (default: every master the name server knows).
    #[arg(short = 'c', long = "clusterName")]
    pub cluster: Option<String>,
    /// One broker only.
    #[arg(short = 'b', long = "brokerAddr", conflicts_with = "cluster")]
    pub broker: Option<String>,
}

pub fn delete_topic(admin: &Admin, a: &DeleteTopic) -> CmdResult {
    let targets = admin.targets(a.broker.as_deref(), a.cluster.as_deref())?;
    let mut text = String::new();
    let mut brokers = Vec::new();
    for (_, addr) in &targets {
        admin.ok(
            addr,
            RemotingCommand::request(rq::DELETE_TOPIC_IN_BROKER).with_ext("topic", &a.topic),
        )?;
        text.push_str(&format!(
            "delete topic [{}] from broker [{addr}] success.\n",
            a.topic
        ));
        brokers.push(addr.clone());
    }
    let cluster = a.cluster.as_deref().unwrap_or("");
    text.push_str(&format!(
        "delete topic [{}] from cluster [{cluster}] success.\n",
        a.topic
    ));
    // A ringmq broker given as -n keeps no name-server table: nothing more to delete.
    let mut namesrv = false;
    for ns in admin.namesrv() {
        let mut cmd =
            RemotingCommand::request(rq::DELETE_TOPIC_IN_NAMESRV).with_ext("topic", &a.topic);
        if let Some(c) = &a.cluster {
            cmd.set_ext("clusterName", c);
        }
        match admin.call(ns, cmd)? {
            r if r.code == rs::SUCCESS => namesrv = true,
            r if r.code == rs::REQUEST_CODE_NOT_SUPPORTED => {}
            r => {
                return Err(format!(
                    "{ns}: {}",
                    ringmq_client::ClientError::from_response(&r)
                ))
            }
        }
    }
    if namesrv {
        text.push_str(&format!(
            "delete topic [{}] from NameServer success.\n",
            a.topic
        ));
    }
    Ok(Output {
        text,
        json: json!({"topic": a.topic, "brokers": brokers, "nameServer": namesrv}),
    })
}

#[derive(Args, Debug)]
pub struct TopicList {
    #[command(flatten)]
    pub common: Common,
}

pub fn topic_list(admin: &Admin, _a: &TopicList) -> CmdResult {
    let resp = admin.ns_call(RemotingCommand::request(
        rq::GET_ALL_TOPIC_LIST_FROM_NAMESERVER,
    ))?;
    let topics: BTreeSet<String> = if resp.code == rs::SUCCESS {
        let v: Value = serde_json::from_slice(&resp.body).map_err(|e| e.to_string())?;
        v["topicList"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect()
    } else if resp.code == rs::REQUEST_CODE_NOT_SUPPORTED {
        // A broker as -n: ask every master for its topic table.
        let mut all = BTreeSet::new();
        for (_, addr) in admin.targets(None, None)? {
            let r = admin.ok(&addr, RemotingCommand::request(rq::GET_ALL_TOPIC_CONFIG))?;
            let v: Value =
                serde_json::from_slice(&quote_bare_keys(&r.body)).map_err(|e| e.to_string())?;
            if let Some(t) = v["topicConfigTable"].as_object() {
                all.extend(t.keys().cloned());
            }
        }
        all
    } else {
        return Err(ringmq_client::ClientError::from_response(&resp).to_string());
    };
    let text = topics.iter().map(|t| format!("{t}\n")).collect();
    Ok(Output {
        text,
        json: json!({ "topicList": topics }),
    })
}

#[derive(Args, Debug)]
pub struct TopicArg {
    #[command(flatten)]
    pub common: Common,
    #[arg(short = 't', long)]
    pub topic: String,
}

pub fn topic_route(admin: &Admin, a: &TopicArg) -> CmdResult {
    let resp = admin.ns_call(
        RemotingCommand::request(rq::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", &a.topic),
    )?;
    if resp.code != rs::SUCCESS {
        return Err(ringmq_client::ClientError::from_response(&resp).to_string());
    }
    let v: Value = serde_json::from_slice(&quote_bare_keys(&resp.body))
        .map_err(|e| format!("bad route: {e}"))?;
    Ok(Output {
        text: format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default()),
        json: v,
    })
}

pub fn topic_status(admin: &Admin, a: &TopicArg) -> CmdResult {
    let widths = [32, 4, 20, 20];
    let mut text = row_str(
        &[
            "#Broker Name",
            "#QID",
            "#Min Offset",
            "#Max Offset",
            "#Last Updated",
        ],
        &widths,
        "  ",
    );
    let mut rows = Vec::new();
    for (name, addr) in admin.route_masters(&a.topic)? {
        let r = admin.ok(
            &addr,
            RemotingCommand::request(rq::GET_TOPIC_STATS_INFO).with_ext("topic", &a.topic),
        )?;
        let (entries, _) = parse_object_key_map(&r.body, "offsetTable")?;
        for (k, v) in entries {
            let broker = k["brokerName"].as_str().unwrap_or(&name).to_string();
            rows.push(json!({
                "brokerName": broker,
                "queueId": k["queueId"],
                "minOffset": v["minOffset"],
                "maxOffset": v["maxOffset"],
                "lastUpdateTimestamp": v["lastUpdateTimestamp"],
            }));
        }
    }
    rows.sort_by_key(|r| (r["brokerName"].to_string(), r["queueId"].as_i64()));
    for r in &rows {
        let last = r["lastUpdateTimestamp"].as_i64().unwrap_or(0);
        let last = if last > 0 {
            human_time(last)
        } else {
            String::new()
        };
        text.push_str(&super::format::row(
            &[
                r["brokerName"].as_str().unwrap_or("").to_string(),
                r["queueId"].to_string(),
                r["minOffset"].to_string(),
                r["maxOffset"].to_string(),
                last,
            ],
            &widths,
            "  ",
        ));
    }
    Ok(Output {
        text,
        json: json!({ "topic": a.topic, "queues": rows }),
    })
}
