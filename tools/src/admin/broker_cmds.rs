//! clusterList, brokerStatus, getBrokerConfig, updateBrokerConfig, queryMsgById.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use clap::Args;
use serde_json::{json, Value};

use super::format::{human_time, row, row_str};
use super::{Admin, CmdResult, Common, Output};
use ringmq_remoting::codes::request_code as rq;
use ringmq_remoting::command::RemotingCommand;

#[derive(Args, Debug)]
pub struct ClusterList {
    #[command(flatten)]
    pub common: Common,
    #[arg(short = 'c', long = "clusterName")]
    pub cluster: Option<String>,
}

/// A broker's runtime table (GET_BROKER_RUNTIME_INFO).
fn runtime(admin: &Admin, addr: &str) -> Result<BTreeMap<String, String>, String> {
    let r = admin.ok(addr, RemotingCommand::request(rq::GET_BROKER_RUNTIME_INFO))?;
    let v: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
    Ok(v["table"]
        .as_object()
        .map(|t| {
            t.iter()
                .map(|(k, v)| (k.clone(), v.as_str().map_or(v.to_string(), str::to_string)))
                .collect()
        })
        .unwrap_or_default())
}

fn first_rate(t: &BTreeMap<String, String>, key: &str) -> String {
    t.get(key)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or("0")
        .to_string()
}

pub fn cluster_list(admin: &Admin, a: &ClusterList) -> CmdResult {
    let info = admin.cluster_info()?;
    let widths = [16, 22, 4, 22, 16, 12, 12];
    let mut text = row_str(
        &[
            "#Cluster Name",
            "#Broker Name",
            "#BID",
            "#Addr",
            "#Version",
            "#InTPS",
            "#OutTPS",
            "#SPACE",
        ],
        &widths,
        "  ",
    );
    let mut rows = Vec::new();
    for (cluster, names) in &info.cluster_addr_table {
        if a.cluster.as_ref().is_some_and(|c| c != cluster) {
            continue;
        }
        for name in names {
            let Some(b) = info.broker_addr_table.get(name) else {
                continue;
            };
            for (id, addr) in &b.broker_addrs {
                let t = runtime(admin, addr).unwrap_or_default();
                let r = json!({
                    "cluster": cluster, "brokerName": name, "brokerId": id, "addr": addr,
                    "version": t.get("brokerVersionDesc").cloned().unwrap_or_default(),
                    "inTps": first_rate(&t, "putTps"),
                    "outTps": first_rate(&t, "getTransferedTps"),
                    "space": t
                        .get("commitLogDiskRatio")
                        .and_then(|r| r.parse::<f64>().ok())
                        .map_or_else(String::new, |r| format!("{r:.4}")),
                });
                let s = |k: &str| r[k].as_str().map_or(r[k].to_string(), str::to_string);
                text.push_str(&row(
                    &[
                        s("cluster"),
                        s("brokerName"),
                        s("brokerId"),
                        s("addr"),
                        s("version"),
                        s("inTps"),
                        s("outTps"),
                        s("space"),
                    ],
                    &widths,
                    "  ",
                ));
                rows.push(r);
            }
        }
    }
    Ok(Output {
        text,
        json: json!({ "brokers": rows }),
    })
}

#[derive(Args, Debug)]
pub struct BrokerTarget {
    #[command(flatten)]
    pub common: Common,
    #[arg(short = 'b', long = "brokerAddr", conflicts_with = "cluster")]
    pub broker: Option<String>,
    #[arg(short = 'c', long = "clusterName")]
    pub cluster: Option<String>,
}

pub fn broker_status(admin: &Admin, a: &BrokerTarget) -> CmdResult {
    let targets = admin.targets(a.broker.as_deref(), a.cluster.as_deref())?;
    let many = targets.len() > 1;
    let mut text = String::new();
    let mut all = serde_json::Map::new();
    for (_, addr) in targets {
        let t = runtime(admin, &addr)?;
        for (k, v) in &t {
            if many {
                text.push_str(&format!("{addr:<24} {k:<32}: {v}\n"));
            } else {
                text.push_str(&format!("{k:<32}: {v}\n"));
            }
        }
        all.insert(addr, json!(t));
    }
    Ok(Output {
        text,
        json: Value::Object(all),
    })
}

pub fn get_broker_config(admin: &Admin, a: &BrokerTarget) -> CmdResult {
    let mut text = String::new();
    let mut all = serde_json::Map::new();
    for (_, addr) in admin.targets(a.broker.as_deref(), a.cluster.as_deref())? {
        let r = admin.ok(&addr, RemotingCommand::request(rq::GET_BROKER_CONFIG))?;
        let props: BTreeMap<String, String> = String::from_utf8_lossy(&r.body)
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        text.push_str(&format!("============{addr}============\n"));
        for (k, v) in &props {
            text.push_str(&format!("{k:<50}=  {v}\n"));
        }
        all.insert(addr, json!(props));
    }
    Ok(Output {
        text,
        json: Value::Object(all),
    })
}

#[derive(Args, Debug)]
pub struct UpdateBrokerConfig {
    #[command(flatten)]
    pub common: Common,
    #[arg(short = 'b', long = "brokerAddr", conflicts_with = "cluster")]
    pub broker: Option<String>,
    #[arg(short = 'c', long = "clusterName")]
    pub cluster: Option<String>,
    #[arg(short = 'k', long)]
    pub key: String,
    #[arg(short = 'v', long)]
    pub value: String,
}

pub fn update_broker_config(admin: &Admin, a: &UpdateBrokerConfig) -> CmdResult {
    let mut text = String::new();
    let mut done = Vec::new();
    for (_, addr) in admin.targets(a.broker.as_deref(), a.cluster.as_deref())? {
        admin.ok(
            &addr,
            RemotingCommand::request(rq::UPDATE_BROKER_CONFIG)
                .with_body(format!("{}={}\n", a.key, a.value)),
        )?;
        text.push_str(&format!("update broker config success, {addr}\n"));
        done.push(addr);
    }
    Ok(Output {
        text,
        json: json!({"key": a.key, "value": a.value, "brokers": done}),
    })
}

#[derive(Args, Debug)]
pub struct QueryMsgById {
    #[command(flatten)]
    pub common: Common,
    /// offsetMsgId (the broker address and CommitLog offset, in hex).
    #[arg(short = 'i', long = "msgId")]
    pub msg_id: String,
    /// Ask this broker instead of the address inside the id.
    #[arg(short = 'b', long = "brokerAddr")]
    pub broker: Option<String>,
}

/// (store host, CommitLog offset) of an offsetMsgId (spec §4.7).
pub fn decode_offset_msg_id(id: &str) -> Result<(SocketAddr, i64), String> {
    let bad = || format!("{id:?} is not an offsetMsgId (32 or 56 hex digits)");
    if !id.is_ascii() || !matches!(id.len(), 32 | 56) {
        return Err(bad());
    }
    let bytes: Vec<u8> = (0..id.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&id[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let ip_len = bytes.len() - 12;
    let ip: IpAddr = if ip_len == 4 {
        Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).into()
    } else {
        let a: [u8; 16] = bytes[..16].try_into().map_err(|_| bad())?;
        Ipv6Addr::from(a).into()
    };
    let port = i32::from_be_bytes(bytes[ip_len..ip_len + 4].try_into().map_err(|_| bad())?);
    let offset = i64::from_be_bytes(bytes[ip_len + 4..].try_into().map_err(|_| bad())?);
    let port = u16::try_from(port).map_err(|_| bad())?;
    Ok((SocketAddr::new(ip, port), offset))
}

pub fn query_msg_by_id(admin: &Admin, a: &QueryMsgById) -> CmdResult {
    let (host, offset) = decode_offset_msg_id(a.msg_id.trim())?;
    let addr = a.broker.clone().unwrap_or_else(|| host.to_string());
    let r = admin.ok(
        &addr,
        RemotingCommand::request(rq::VIEW_MESSAGE_BY_ID).with_ext("offset", offset),
    )?;
    let msgs = ringmq_client::decode_messages(&r.body, true).map_err(|e| e.to_string())?;
    let m = msgs.first().ok_or("the broker sent no message")?;
    let props: BTreeMap<&str, &str> = m
        .properties
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let body = String::from_utf8_lossy(&m.body).into_owned();
    let fields: Vec<(&str, String)> = vec![
        ("OffsetID:", m.offset_msg_id.clone()),
        ("Topic:", m.topic.clone()),
        ("Tags:", format!("[{}]", m.tags.as_deref().unwrap_or(""))),
        ("Keys:", format!("[{}]", m.keys.as_deref().unwrap_or(""))),
        ("Queue ID:", m.queue_id.to_string()),
        ("Queue Offset:", m.queue_offset.to_string()),
        ("CommitLog Offset:", m.phys_offset.to_string()),
        ("Reconsume Times:", m.reconsume_times.to_string()),
        ("Born Timestamp:", human_time(m.born_timestamp)),
        ("Store Timestamp:", human_time(m.store_timestamp)),
        ("Born Host:", m.born_host.to_string()),
        ("Store Host:", m.store_host.to_string()),
        ("System Flag:", m.sys_flag.to_string()),
        ("Properties:", format!("{props:?}")),
        ("Message Body:", body.clone()),
    ];
    let text = fields
        .iter()
        .map(|(k, v)| format!("{k:<20} {v}\n"))
        .collect();
    Ok(Output {
        text,
        json: json!({
            "offsetMsgId": m.offset_msg_id, "msgId": m.msg_id, "topic": m.topic,
            "tags": m.tags, "keys": m.keys, "queueId": m.queue_id,
            "queueOffset": m.queue_offset, "commitLogOffset": m.phys_offset,
            "reconsumeTimes": m.reconsume_times, "bornTimestamp": m.born_timestamp,
            "storeTimestamp": m.store_timestamp, "bornHost": m.born_host.to_string(),
            "storeHost": m.store_host.to_string(), "sysFlag": m.sys_flag,
            "properties": props, "body": body,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_decodes_offset_msg_ids() {
        let (host, off) = decode_offset_msg_id("7F00000100002A9F0000000000000C8A").unwrap();
        assert_eq!(host.to_string(), "127.0.0.1:10911");
        assert_eq!(off, 0xC8A);
        assert!(decode_offset_msg_id("xyz").is_err());
        assert!(decode_offset_msg_id("ZZ00000100002A9F0000000000000C8A").is_err());
    }
}
