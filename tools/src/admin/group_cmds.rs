//! updateSubGroup, deleteSubGroup, consumerProgress, consumerConnection, resetOffsetByTime.

use clap::Args;
use serde_json::{json, Value};

use super::format::{human_time, parse_time, row, row_str};
use super::{Admin, CmdResult, Common, Output};
use ringmq_client::fastjson::parse_object_key_map;
use ringmq_client::ClientError;
use ringmq_engine::meta::SubscriptionGroupConfig;
use ringmq_remoting::codes::{request_code as rq, response_code as rs};
use ringmq_remoting::command::RemotingCommand;

#[derive(Args, Debug)]
pub struct UpdateSubGroup {
    #[command(flatten)]
    pub common: Common,
    #[arg(short = 'b', long = "brokerAddr", conflicts_with = "cluster")]
    pub broker: Option<String>,
    #[arg(short = 'c', long = "clusterName")]
    pub cluster: Option<String>,
    #[arg(short = 'g', long = "groupName")]
    pub group: String,
    /// consumeEnable.
    #[arg(short = 's', long = "consumeEnable", action = clap::ArgAction::Set)]
    pub consume_enable: Option<bool>,
    /// consumeFromMinEnable.
    #[arg(short = 'm', long = "consumeFromMinEnable", action = clap::ArgAction::Set)]
    pub from_min: Option<bool>,
    /// consumeBroadcastEnable.
    #[arg(short = 'd', long = "consumeBroadcastEnable", action = clap::ArgAction::Set)]
    pub broadcast: Option<bool>,
    /// consumeMessageOrderly.
    #[arg(short = 'o', long = "consumeMessageOrderly", action = clap::ArgAction::Set)]
    pub orderly: Option<bool>,
    #[arg(short = 'q', long = "retryQueueNums")]
    pub retry_queue_nums: Option<i32>,
    #[arg(short = 'r', long = "retryMaxTimes")]
    pub retry_max_times: Option<i32>,
    #[arg(short = 'i', long = "brokerId")]
    pub broker_id: Option<i64>,
    #[arg(short = 'w', long = "whichBrokerWhenConsumeSlowly")]
    pub slowly: Option<i64>,
    /// notifyConsumerIdsChangedEnable.
    #[arg(short = 'a', long = "notifyConsumerIdsChanged", action = clap::ArgAction::Set)]
    pub notify: Option<bool>,
}

pub fn update_sub_group(admin: &Admin, a: &UpdateSubGroup) -> CmdResult {
    let mut g = SubscriptionGroupConfig::new(&a.group);
    macro_rules! set {
        ($opt:expr, $field:ident) => {
            if let Some(v) = $opt {
                g.$field = v;
            }
        };
    }
    set!(a.consume_enable, consume_enable);
    set!(a.from_min, consume_from_min_enable);
    set!(a.broadcast, consume_broadcast_enable);
    set!(a.orderly, consume_message_orderly);
    set!(a.retry_queue_nums, retry_queue_nums);
    set!(a.retry_max_times, retry_max_times);
    set!(a.broker_id, broker_id);
    set!(a.slowly, which_broker_when_consume_slowly);
    set!(a.notify, notify_consumer_ids_changed_enable);
    let body = serde_json::to_string(&g).map_err(|e| e.to_string())?;
    let mut text = String::new();
    let mut done = Vec::new();
    for (_, addr) in admin.targets(a.broker.as_deref(), a.cluster.as_deref())? {
        admin.ok(
            &addr,
            RemotingCommand::request(rq::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP)
                .with_body(body.clone()),
        )?;
        text.push_str(&format!("create subscription group to {addr} success.\n"));
        done.push(addr);
    }
    text.push_str(&format!("{body}\n"));
    let config: Value = serde_json::from_str(&body).unwrap_or_default();
    Ok(Output {
        text,
        json: json!({"brokers": done, "subscriptionGroupConfig": config}),
    })
}

#[derive(Args, Debug)]
pub struct DeleteSubGroup {
    #[command(flatten)]
    pub common: Common,
    #[arg(short = 'b', long = "brokerAddr", conflicts_with = "cluster")]
    pub broker: Option<String>,
    #[arg(short = 'c', long = "clusterName")]
    pub cluster: Option<String>,
    #[arg(short = 'g', long = "groupName")]
    pub group: String,
    /// Also remove the group's committed offsets.
    #[arg(short = 'r', long = "removeOffset", default_value_t = false, action = clap::ArgAction::Set)]
    pub remove_offset: bool,
}

pub fn delete_sub_group(admin: &Admin, a: &DeleteSubGroup) -> CmdResult {
    let mut text = String::new();
    let mut done = Vec::new();
    for (_, addr) in admin.targets(a.broker.as_deref(), a.cluster.as_deref())? {
        admin.ok(
            &addr,
            RemotingCommand::request(rq::DELETE_SUBSCRIPTIONGROUP)
                .with_ext("groupName", &a.group)
                .with_ext("cleanOffset", a.remove_offset),
        )?;
        text.push_str(&format!(
            "delete subscription group [{}] from broker [{addr}] success.\n",
            a.group
        ));
        done.push(addr);
    }
    Ok(Output {
        text,
        json: json!({"group": a.group, "brokers": done}),
    })
}

#[derive(Args, Debug)]
pub struct ConsumerProgress {
    #[command(flatten)]
    pub common: Common,
    #[arg(short = 'g', long = "groupName")]
    pub group: String,
    /// Only this topic.
    #[arg(short = 't', long)]
    pub topic: Option<String>,
    /// One broker only.
    #[arg(short = 'b', long = "brokerAddr")]
    pub broker: Option<String>,
}

pub fn consumer_progress(admin: &Admin, a: &ConsumerProgress) -> CmdResult {
    let mut rows = Vec::new();
    let mut tps = 0.0;
    for (name, addr) in admin.targets(a.broker.as_deref(), None)? {
        let mut cmd =
            RemotingCommand::request(rq::GET_CONSUME_STATS).with_ext("consumerGroup", &a.group);
        if let Some(t) = &a.topic {
            cmd.set_ext("topic", t);
        }
        let r = admin.ok(&addr, cmd)?;
        let (entries, others) = parse_object_key_map(&r.body, "offsetTable")?;
        tps += others
            .get("consumeTps")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        for (k, v) in entries {
            let broker_offset = v["brokerOffset"].as_i64().unwrap_or(0);
            let consumer_offset = v["consumerOffset"].as_i64().unwrap_or(0);
            let pull_offset = v["pullOffset"].as_i64().unwrap_or(consumer_offset);
            rows.push(json!({
                "topic": k["topic"],
                "brokerName": k["brokerName"].as_str().unwrap_or(&name),
                "queueId": k["queueId"],
                "brokerOffset": broker_offset,
                "consumerOffset": consumer_offset,
                "diff": broker_offset - consumer_offset,
                "inflight": (pull_offset - consumer_offset).max(0),
                "lastTimestamp": v["lastTimestamp"],
            }));
        }
    }
    rows.sort_by_key(|r| {
        (
            r["topic"].to_string(),
            r["brokerName"].to_string(),
            r["queueId"].as_i64(),
        )
    });
    let widths = [64, 32, 4, 20, 20, 20, 20];
    let mut text = row_str(
        &[
            "#Topic",
            "#Broker Name",
            "#QID",
            "#Broker Offset",
            "#Consumer Offset",
            "#Diff",
            "#Inflight",
            "#LastTime",
        ],
        &widths,
        "  ",
    );
    let (mut diff_total, mut inflight_total) = (0i64, 0i64);
    for r in &rows {
        diff_total += r["diff"].as_i64().unwrap_or(0);
        inflight_total += r["inflight"].as_i64().unwrap_or(0);
        let last = r["lastTimestamp"].as_i64().unwrap_or(0);
        let last = if last > 0 {
            human_time(last)
        } else {
            "N/A".into()
        };
        let s = |k: &str| match &r[k] {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        text.push_str(&row(
            &[
                s("topic"),
                s("brokerName"),
                s("queueId"),
                s("brokerOffset"),
                s("consumerOffset"),
                s("diff"),
                s("inflight"),
                last,
            ],
            &widths,
            "  ",
        ));
    }
    text.push_str(&format!(
        "\nConsume TPS: {tps:.2}\nConsume Diff Total: {diff_total}\nConsume Inflight Total: {inflight_total}\n"
    ));
    Ok(Output {
        text,
        json: json!({
            "group": a.group, "consumeTps": tps, "diffTotal": diff_total,
            "inflightTotal": inflight_total, "queues": rows,
        }),
    })
}

#[derive(Args, Debug)]
pub struct GroupArg {
    #[command(flatten)]
    pub common: Common,
    #[arg(short = 'g', long = "consumerGroup")]
    pub group: String,
    #[arg(short = 'b', long = "brokerAddr")]
    pub broker: Option<String>,
}

pub fn consumer_connection(admin: &Admin, a: &GroupArg) -> CmdResult {
    let mut last = format!("the consumer group[{}] not online", a.group);
    for (_, addr) in admin.targets(a.broker.as_deref(), None)? {
        let r = admin.call(
            &addr,
            RemotingCommand::request(rq::GET_CONSUMER_CONNECTION_LIST)
                .with_ext("consumerGroup", &a.group),
        )?;
        if r.code != rs::SUCCESS {
            last = format!("{addr}: {}", ClientError::from_response(&r));
            continue;
        }
        let v: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
        let mut text = String::new();
        for (i, c) in v["connectionSet"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            text.push_str(&format!(
                "{:03}  {:<32} {:<22} {:<8} {}\n",
                i + 1,
                c["clientId"].as_str().unwrap_or(""),
                c["clientAddr"].as_str().unwrap_or(""),
                c["language"].as_str().unwrap_or(""),
                c["version"]
            ));
        }
        text.push_str("\nBelow is subscription:\n");
        if let Some(subs) = v["subscriptionTable"].as_object() {
            for (i, (topic, s)) in subs.iter().enumerate() {
                text.push_str(&format!(
                    "{:03}  Topic: {:<40} SubExpression: {}\n",
                    i + 1,
                    topic,
                    s["subString"].as_str().unwrap_or("")
                ));
            }
        }
        text.push_str(&format!(
            "\nConsumeType: {}\nMessageModel: {}\nConsumeFromWhere: {}\n",
            v["consumeType"].as_str().unwrap_or(""),
            v["messageModel"].as_str().unwrap_or(""),
            v["consumeFromWhere"].as_str().unwrap_or("")
        ));
        return Ok(Output { text, json: v });
    }
    Err(last)
}

#[derive(Args, Debug)]
pub struct ResetOffsetByTime {
    #[command(flatten)]
    pub common: Common,
    #[arg(short = 'g', long)]
    pub group: String,
    #[arg(short = 't', long)]
    pub topic: String,
    /// now, milliseconds, or yyyy-MM-dd#HH:mm:ss:SSS (UTC).
    #[arg(short = 's', long)]
    pub timestamp: String,
    /// Move offsets forward too (not only back).
    #[arg(short = 'f', long, default_value_t = true, action = clap::ArgAction::Set)]
    pub force: bool,
}

pub fn reset_offset_by_time(admin: &Admin, a: &ResetOffsetByTime) -> CmdResult {
    let ts = parse_time(&a.timestamp, ringmq_engine::clock::now_millis())?;
    let mut rows = Vec::new();
    for (name, addr) in admin.route_masters(&a.topic)? {
        let r = admin.ok(
            &addr,
            RemotingCommand::request(rq::INVOKE_BROKER_TO_RESET_OFFSET)
                .with_ext("topic", &a.topic)
                .with_ext("group", &a.group)
                .with_ext("timestamp", ts)
                .with_ext("isForce", a.force),
        )?;
        let (entries, _) = parse_object_key_map(&r.body, "offsetTable")?;
        for (k, v) in entries {
            rows.push(json!({
                "brokerName": k["brokerName"].as_str().unwrap_or(&name),
                "queueId": k["queueId"],
                "offset": v,
            }));
        }
    }
    rows.sort_by_key(|r| (r["brokerName"].to_string(), r["queueId"].as_i64()));
    let mut text = format!(
        "rollback consumer offset by specified group[{}], topic[{}], force[{}], timestamp(string)[{}], timestamp(long)[{ts}]\n",
        a.group, a.topic, a.force, a.timestamp
    );
    let widths = [40, 40];
    text.push_str(&row_str(
        &["#brokerName", "#queueId", "#offset"],
        &widths,
        "  ",
    ));
    for r in &rows {
        text.push_str(&row(
            &[
                r["brokerName"].as_str().unwrap_or("").to_string(),
                r["queueId"].to_string(),
                r["offset"].to_string(),
            ],
            &widths,
            "  ",
        ));
    }
    Ok(Output {
        text,
        json: json!({"group": a.group, "topic": a.topic, "timestamp": ts, "offsets": rows}),
    })
}
