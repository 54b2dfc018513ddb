//! The name server's request processors: each request's header decoded once into a typed
//! struct, then served against the [`State`] (routes and KV config). A header error is
//! answered with SYSTEM_ERROR naming the field; unknown codes with
//! REQUEST_CODE_NOT_SUPPORTED. Facts per request: `README.md`.
//!
//! Runs on: the name server's network loop (one mutex guards the state; every request is
//! short and none waits on I/O except a KV write).

use std::time::{Duration, Instant};

use ringmq_remoting::codes::{request_code as rq, response_code as rs};
use ringmq_remoting::command::RemotingCommand;
use ringmq_remoting::error::FrameError;

use crate::config::NamesrvConfig;
use crate::kv::{KvConfig, NAMESPACE_ORDER_TOPIC_CONFIG};
use crate::routes::{RegisterOutcome, Registration, RouteTable};
use crate::wire::{self, DataVersion};

/// What a name server knows.
#[derive(Debug)]
pub struct State {
    pub routes: RouteTable,
    pub kv: KvConfig,
}

/// REGISTER_BROKER's header (RegisterBrokerRequestHeader).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterBrokerHeader {
    pub broker_name: String,
    pub broker_addr: String,
    pub cluster_name: String,
    pub ha_server_addr: String,
    pub broker_id: i64,
    pub heartbeat_timeout_millis: Option<i64>,
    pub enable_acting_master: Option<bool>,
    pub compressed: bool,
    pub body_crc32: i32,
    /// extField `__ZONE_NAME`.
    pub zone_name: Option<String>,
}

impl RegisterBrokerHeader {
    pub fn decode(req: &RemotingCommand) -> Result<Self, FrameError> {
        Ok(RegisterBrokerHeader {
            broker_name: req.ext_str("brokerName")?.to_owned(),
            broker_addr: req.ext_str("brokerAddr")?.to_owned(),
            cluster_name: req.ext_str("clusterName")?.to_owned(),
            ha_server_addr: req.ext_str("haServerAddr")?.to_owned(),
            broker_id: req.ext_i64("brokerId")?,
            heartbeat_timeout_millis: req.ext_opt(&["heartbeatTimeoutMillis"])?,
            enable_acting_master: req.ext_opt(&["enableActingMaster"])?,
            compressed: req.ext_opt(&["compressed"])?.unwrap_or(false),
            body_crc32: req.ext_opt(&["bodyCrc32"])?.unwrap_or(0),
            zone_name: req.ext("__ZONE_NAME").map(str::to_owned),
        })
    }
}

/// The header UNREGISTER_BROKER, QUERY_DATA_VERSION and BROKER_HEARTBEAT share (the last
/// two with brokerId optional or ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerHeader {
    pub broker_name: String,
    pub broker_addr: String,
    pub cluster_name: String,
    pub broker_id: Option<i64>,
}

impl BrokerHeader {
    pub fn decode(req: &RemotingCommand, id_required: bool) -> Result<Self, FrameError> {
        Ok(BrokerHeader {
            broker_name: req.ext_str("brokerName")?.to_owned(),
            broker_addr: req.ext_str("brokerAddr")?.to_owned(),
            cluster_name: req.ext_str("clusterName")?.to_owned(),
            broker_id: if id_required {
                Some(req.ext_i64("brokerId")?)
            } else {
                req.ext_opt(&["brokerId"])?
            },
        })
    }
}

/// The 32-bit CRC RocketMQ puts in `bodyCrc32` (spec §4.10: masked to 31 bits).
pub fn body_crc32(body: &[u8]) -> i32 {
    (crc32fast::hash(body) & 0x7FFF_FFFF) as i32
}

fn ok(req: &RemotingCommand) -> RemotingCommand {
    RemotingCommand::response_to(req, rs::SUCCESS, None)
}

fn error(req: &RemotingCommand, code: i32, remark: impl Into<String>) -> RemotingCommand {
    RemotingCommand::response_to(req, code, Some(remark.into()))
}

/// Serves one request that arrived on connection `conn`.
pub fn process(
    cfg: &NamesrvConfig,
    state: &mut State,
    conn: u64,
    req: &RemotingCommand,
    now: Instant,
) -> RemotingCommand {
    let served = match req.code {
        rq::REGISTER_BROKER => register_broker(cfg, state, conn, req, now),
        rq::UNREGISTER_BROKER => unregister_broker(state, req),
        rq::BROKER_HEARTBEAT => broker_heartbeat(state, req, now),
        rq::QUERY_DATA_VERSION => query_data_version(state, req, now),
        rq::GET_ROUTEINFO_BY_TOPIC => get_route_info(cfg, state, req),
        rq::GET_BROKER_CLUSTER_INFO => {
            Ok(ok(req).with_body(wire::to_json(&state.routes.cluster_info())))
        }
        rq::GET_ALL_TOPIC_LIST_FROM_NAMESERVER if cfg.enable_all_topic_list => {
            Ok(ok(req).with_body(wire::to_json(&state.routes.all_topics())))
        }
        rq::GET_TOPICS_BY_CLUSTER if cfg.enable_topic_list => req
            .ext_str("cluster")
            .map(|c| ok(req).with_body(wire::to_json(&state.routes.topics_by_cluster(c)))),
        rq::GET_ALL_TOPIC_LIST_FROM_NAMESERVER | rq::GET_TOPICS_BY_CLUSTER => {
            Ok(error(req, rs::SYSTEM_ERROR, "disable"))
        }
        rq::GET_SYSTEM_TOPIC_LIST_FROM_NS => {
            Ok(ok(req).with_body(wire::to_json(&state.routes.system_topics())))
        }
        rq::DELETE_TOPIC_IN_NAMESRV => delete_topic(state, req),
        rq::WIPE_WRITE_PERM_OF_BROKER => write_perm(state, req, false),
        rq::ADD_WRITE_PERM_OF_BROKER => write_perm(state, req, true),
        rq::PUT_KV_CONFIG => put_kv(state, req),
        rq::GET_KV_CONFIG => get_kv(state, req),
        rq::DELETE_KV_CONFIG => delete_kv(state, req),
        rq::GET_KVLIST_BY_NAMESPACE => get_kv_list(state, req),
        other => Ok(error(
            req,
            rs::REQUEST_CODE_NOT_SUPPORTED,
            format!(" request type {other} not supported"),
        )),
    };
    served.unwrap_or_else(|e| error(req, rs::SYSTEM_ERROR, e.to_string()))
}

fn register_broker(
    cfg: &NamesrvConfig,
    state: &mut State,
    conn: u64,
    req: &RemotingCommand,
    now: Instant,
) -> Result<RemotingCommand, FrameError> {
    let h = RegisterBrokerHeader::decode(req)?;
    if h.body_crc32 != 0 && body_crc32(&req.body) != h.body_crc32 {
        tracing::warn!(broker = %h.broker_addr, "REGISTER_BROKER body crc32 does not match");
        return Ok(error(req, rs::SYSTEM_ERROR, "crc32 not match"));
    }
    if h.compressed {
        return Ok(error(
            req,
            rs::SYSTEM_ERROR,
            "compressed RegisterBrokerBody is not supported (set compressedRegister=false)",
        ));
    }
    let body = match wire::parse_register_body(&req.body, req.version) {
        Ok(b) => b,
        Err(e) => {
            return Ok(error(
                req,
                rs::SYSTEM_ERROR,
                format!("Failed to decode RegisterBrokerBody: {e}"),
            ))
        }
    };
    let reg = Registration {
        cluster: h.cluster_name,
        broker_addr: h.broker_addr,
        broker_name: h.broker_name,
        broker_id: h.broker_id,
        ha_server_addr: h.ha_server_addr,
        zone_name: h.zone_name,
        expiry: h
            .heartbeat_timeout_millis
            .filter(|&ms| ms > 0)
            .map(|ms| Duration::from_millis(ms as u64)),
        enable_acting_master: h.enable_acting_master,
        topics: body.topic_config_serialize_wrapper,
        filter_server_list: body.filter_server_list,
        conn: Some(conn),
    };
    let (ha_server_addr, master_addr) = match state.routes.register(reg, now) {
        RegisterOutcome::Registered {
            ha_server_addr,
            master_addr,
        } => (ha_server_addr, master_addr),
        RegisterOutcome::Refused => {
            return Ok(error(req, rs::SYSTEM_ERROR, "register broker failed"))
        }
    };
    let mut resp = ok(req);
    if let Some(ha) = ha_server_addr {
        resp.set_ext("haServerAddr", ha);
    }
    if let Some(master) = master_addr {
        resp.set_ext("masterAddr", master);
    }
    if cfg.return_order_topic_config_to_broker {
        if let Some(table) = state.kv.namespace(NAMESPACE_ORDER_TOPIC_CONFIG) {
            resp = resp.with_body(wire::to_json(&table));
        }
    }
    Ok(resp)
}

fn unregister_broker(
    state: &mut State,
    req: &RemotingCommand,
) -> Result<RemotingCommand, FrameError> {
    let h = BrokerHeader::decode(req, true)?;
    state
        .routes
        .unregister(&h.cluster_name, &h.broker_addr, &h.broker_name);
    Ok(ok(req))
}

fn broker_heartbeat(
    state: &mut State,
    req: &RemotingCommand,
    now: Instant,
) -> Result<RemotingCommand, FrameError> {
    let h = BrokerHeader::decode(req, false)?;
    state.routes.touch(&h.cluster_name, &h.broker_addr, now);
    Ok(ok(req))
}

fn query_data_version(
    state: &mut State,
    req: &RemotingCommand,
    now: Instant,
) -> Result<RemotingCommand, FrameError> {
    let h = BrokerHeader::decode(req, true)?;
    let theirs: Option<DataVersion> = serde_json::from_slice(&req.body).ok();
    let ours = state.routes.data_version(&h.cluster_name, &h.broker_addr);
    let changed = ours.is_none() || ours != theirs;
    state.routes.touch(&h.cluster_name, &h.broker_addr, now);
    let mut resp = ok(req);
    resp.set_ext("changed", changed);
    if let Some(v) = ours {
        resp = resp.with_body(wire::to_json(&v));
    }
    Ok(resp)
}

fn get_route_info(
    cfg: &NamesrvConfig,
    state: &State,
    req: &RemotingCommand,
) -> Result<RemotingCommand, FrameError> {
    let topic = req.ext_str("topic")?;
    match state.routes.route(topic) {
        Some(mut route) => {
            if cfg.order_message_enable {
                route.order_topic_conf = state
                    .kv
                    .get(NAMESPACE_ORDER_TOPIC_CONFIG, topic)
                    .map(str::to_owned);
            }
            Ok(ok(req).with_body(wire::to_json(&route)))
        }
        None => Ok(error(
            req,
            rs::TOPIC_NOT_EXIST,
            format!("No topic route info in name server for the topic: {topic}"),
        )),
    }
}

fn delete_topic(state: &mut State, req: &RemotingCommand) -> Result<RemotingCommand, FrameError> {
    let topic = req.ext_str("topic")?;
    let cluster = req.ext("clusterName").filter(|c| !c.is_empty());
    state.routes.delete_topic(topic, cluster);
    Ok(ok(req))
}

fn write_perm(
    state: &mut State,
    req: &RemotingCommand,
    add: bool,
) -> Result<RemotingCommand, FrameError> {
    let broker_name = req.ext_str("brokerName")?;
    let count = state.routes.set_write_perm(broker_name, add);
    tracing::info!(
        broker = broker_name,
        add,
        topics = count,
        "write permission changed"
    );
    let field = if add {
        "addTopicCount"
    } else {
        "wipeTopicCount"
    };
    Ok(ok(req).with_ext(field, count))
}

fn kv_persisted(req: &RemotingCommand, result: std::io::Result<()>) -> RemotingCommand {
    match result {
        Ok(()) => ok(req),
        Err(e) => {
            tracing::error!(error = %e, "persisting the KV config failed");
            error(
                req,
                rs::SYSTEM_ERROR,
                format!("cannot persist the KV config: {e}"),
            )
        }
    }
}

fn put_kv(state: &mut State, req: &RemotingCommand) -> Result<RemotingCommand, FrameError> {
    let (ns, key, value) = (
        req.ext_str("namespace")?,
        req.ext_str("key")?,
        req.ext_str("value")?,
    );
    Ok(kv_persisted(req, state.kv.put(ns, key, value)))
}

fn get_kv(state: &State, req: &RemotingCommand) -> Result<RemotingCommand, FrameError> {
    let (ns, key) = (req.ext_str("namespace")?, req.ext_str("key")?);
    Ok(match state.kv.get(ns, key) {
        Some(v) => ok(req).with_ext("value", v),
        None => error(
            req,
            rs::QUERY_NOT_FOUND,
            format!("No config item, Namespace: {ns} Key: {key}"),
        ),
    })
}

fn delete_kv(state: &mut State, req: &RemotingCommand) -> Result<RemotingCommand, FrameError> {
    let (ns, key) = (req.ext_str("namespace")?, req.ext_str("key")?);
    Ok(kv_persisted(req, state.kv.delete(ns, key)))
}

fn get_kv_list(state: &State, req: &RemotingCommand) -> Result<RemotingCommand, FrameError> {
    let ns = req.ext_str("namespace")?;
    Ok(match state.kv.namespace(ns) {
        Some(table) => ok(req).with_body(wire::to_json(&table)),
        None => error(
            req,
            rs::QUERY_NOT_FOUND,
            format!("No config item, Namespace: {ns}"),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::DEFAULT_BROKER_EXPIRY;

    #[test]
    fn crc_is_masked_like_java() {
        assert_eq!(body_crc32(b"hello"), 907060870);
    }

    #[test]
    fn register_checks_crc_and_answers_a_slave_with_its_master() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = NamesrvConfig::default();
        let mut state = State {
            routes: RouteTable::new(DEFAULT_BROKER_EXPIRY, false),
            kv: KvConfig::load(&dir.path().join("kv.json")).unwrap(),
        };
        let body = br#"{"topicConfigSerializeWrapper":{"dataVersion":{"counter":1,"stateVersion":0,"timestamp":1},"topicConfigTable":{"T":{"topicName":"T","readQueueNums":2,"writeQueueNums":2,"perm":6},"a":{"topicName":"a"}}},"filterServerList":[]}"#;
        let register = |id: i64, addr: &str, crc: i32| {
            RemotingCommand::request(rq::REGISTER_BROKER)
                .with_ext("brokerName", "a")
                .with_ext("brokerAddr", addr)
                .with_ext("clusterName", "C")
                .with_ext("haServerAddr", format!("{addr}-ha"))
                .with_ext("brokerId", id)
                .with_ext("enableActingMaster", false)
                .with_ext("compressed", false)
                .with_ext("bodyCrc32", crc)
                .with_body(body.to_vec())
        };
        let now = Instant::now();
        let bad = process(&cfg, &mut state, 1, &register(0, "m", 5), now);
        assert_eq!(
            (bad.code, bad.remark.as_deref()),
            (rs::SYSTEM_ERROR, Some("crc32 not match"))
        );
        let m = process(
            &cfg,
            &mut state,
            1,
            &register(0, "m", body_crc32(body)),
            now,
        );
        assert_eq!(m.code, rs::SUCCESS);
        assert_eq!(m.ext("masterAddr"), None);
        let s = process(&cfg, &mut state, 2, &register(1, "s", 0), now);
        assert_eq!(
            (s.ext("masterAddr"), s.ext("haServerAddr")),
            (Some("m"), Some("m-ha"))
        );

        let missing = RemotingCommand::request(rq::REGISTER_BROKER).with_ext("brokerName", "a");
        let e = process(&cfg, &mut state, 1, &missing, now);
        assert_eq!(e.code, rs::SYSTEM_ERROR);
        assert!(e.remark.unwrap().contains("brokerAddr"));

        let q = RemotingCommand::request(rq::QUERY_DATA_VERSION)
            .with_ext("brokerName", "a")
            .with_ext("brokerAddr", "m")
            .with_ext("clusterName", "C")
            .with_ext("brokerId", 0)
            .with_body(br#"{"counter":1,"stateVersion":0,"timestamp":1}"#.to_vec());
        let q = process(&cfg, &mut state, 1, &q, now);
        assert_eq!(q.ext("changed"), Some("false"));
        let unknown = process(&cfg, &mut state, 1, &RemotingCommand::request(9999), now);
        assert_eq!(unknown.code, rs::REQUEST_CODE_NOT_SUPPORTED);
    }
}
