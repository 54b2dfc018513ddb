//! Admin and name-server-style requests: UPDATE_AND_CREATE_TOPIC (17), GET_ALL_TOPIC_CONFIG
//! (21), GET_ALL_CONSUMER_OFFSET (43), GET_ALL_DELAY_OFFSET (45),
//! GET_ALL_SUBSCRIPTIONGROUP_CONFIG (201), GET_BROKER_RUNTIME_INFO (28), and the name-server
//! calls a broker answers for its own group, GET_ROUTEINFO_BY_TOPIC (105) and
//! GET_BROKER_CLUSTER_INFO (106) (spec §3.12-§3.15, §6.3, §6.4, §6.11).
//!
//! The GET_ALL_* bodies are what a Java broker serves (the engine's metadata stores render
//! them); a slave syncs from them (§8), so they are returned whole, without paging headers.

use ringmq_engine::clock::now_millis;
use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::Ordering;

use ringmq_engine::commitlog::Level;
use ringmq_engine::delay_levels::SCHEDULE_TOPIC;
use ringmq_engine::meta::{TopicConfig, TopicFilterType};

use super::topics::{validate_topic_name, Topics, AUTO_CREATE_TOPIC};
use super::{validate, Broker};
use ringmq_remoting::codes::{response_code as rs, version};
use ringmq_remoting::command::{RemotingCommand, LOCAL_VERSION};
use ringmq_remoting::error::FrameError;
use ringmq_remoting::header::{CreateTopicHeader, GetRouteInfoHeader, RequestHeader};

/// Topics RocketMQ reserves (`TopicValidator.isSystemTopic`); UPDATE_AND_CREATE_TOPIC
/// refuses them (5.x `validateSystemTopicWhenUpdateTopic`, default true).
const SYSTEM_TOPICS: &[&str] = &[
    AUTO_CREATE_TOPIC,
    SCHEDULE_TOPIC,
    "BenchmarkTest",
    "RMQ_SYS_TRANS_HALF_TOPIC",
    "RMQ_SYS_TRACE_TOPIC",
    "RMQ_SYS_TRANS_OP_HALF_TOPIC",
    "TRANS_CHECK_MAX_TIME_TOPIC",
    "SELF_TEST_TOPIC",
    "OFFSET_MOVED_EVENT",
];
/// Any topic with this prefix is a system topic too.
const SYSTEM_TOPIC_PREFIX: &str = "rmq_sys_";

/// Whether `topic` is one RocketMQ reserves for itself.
pub fn is_system_topic(topic: &str) -> bool {
    SYSTEM_TOPICS.contains(&topic) || topic.starts_with(SYSTEM_TOPIC_PREFIX)
}

fn error(req: &RemotingCommand, code: i32, remark: impl Into<String>) -> RemotingCommand {
    RemotingCommand::response_to(req, code, Some(remark.into()))
}

/// SUCCESS with a JSON body, or SYSTEM_ERROR with `empty_remark` when there is nothing.
fn json_body(req: &RemotingCommand, content: String, empty_remark: &str) -> RemotingCommand {
    if content.is_empty() {
        return error(req, rs::SYSTEM_ERROR, empty_remark);
    }
    RemotingCommand::response_to(req, rs::SUCCESS, None).with_body(content)
}

/// UPDATE_AND_CREATE_TOPIC (17): creates or replaces a topic from the header (§3.12).
/// An update keeps the existing attributes (altered by `attributes`) and unknown properties;
/// a request that changes nothing succeeds without writing.
pub fn update_and_create_topic(
    b: &Broker,
    req: &RemotingCommand,
) -> Result<RemotingCommand, FrameError> {
    let h = CreateTopicHeader::decode(req)?;
    let (topic, read_queues, write_queues) = (h.topic, h.read_queue_nums, h.write_queue_nums);
    let filter_type = match h.topic_filter_type.map(str::trim) {
        None | Some("") => TopicFilterType::SingleTag,
        Some(t) if t.eq_ignore_ascii_case("SINGLE_TAG") => TopicFilterType::SingleTag,
        Some(t) if t.eq_ignore_ascii_case("MULTI_TAG") => TopicFilterType::MultiTag,
        Some(t) => {
            return Ok(error(
                req,
                rs::INVALID_PARAMETER,
                format!("topicFilterType {t:?} is not SINGLE_TAG or MULTI_TAG"),
            ))
        }
    };
    if let Err(why) = validate_topic_name(topic) {
        return Ok(error(req, rs::INVALID_PARAMETER, why));
    }
    if is_system_topic(topic) {
        return Ok(error(
            req,
            rs::INVALID_PARAMETER,
            format!("The topic[{topic}] is conflict with system topic."),
        ));
    }
    if let Err(why) = validate::queue_nums(read_queues, write_queues, b.topics.max_queue_nums()) {
        return Ok(error(req, rs::INVALID_PARAMETER, why));
    }
    let existing = b.topics.store().get(topic);
    let mut attributes = existing
        .as_ref()
        .map(|c| c.attributes.clone())
        .unwrap_or_default();
    if let Some(modification) = h.attributes {
        if let Err(why) = alter_attributes(&mut attributes, modification, existing.is_none()) {
            return Ok(error(req, rs::INVALID_PARAMETER, why));
        }
    }
    if attributes
        .get("message.type")
        .is_some_and(|t| t.eq_ignore_ascii_case("MIXED"))
    {
        return Ok(error(
            req,
            rs::INVALID_PARAMETER,
            "MIXED message type is not supported.",
        ));
    }
    let mut config = existing.clone().unwrap_or_else(|| TopicConfig::new(topic));
    config.read_queue_nums = read_queues;
    config.write_queue_nums = write_queues;
    config.perm = h.perm;
    config.topic_filter_type = filter_type;
    config.topic_sys_flag = h.topic_sys_flag;
    config.order = h.order;
    config.attributes = attributes;
    if existing.as_ref() == Some(&config) {
        return Ok(RemotingCommand::response_to(req, rs::SUCCESS, None));
    }
    match b.topics.put(config) {
        Ok(_) => {
            tracing::info!(
                topic,
                read_queues,
                write_queues,
                perm = h.perm,
                "topic created or updated by admin request"
            );
            Ok(RemotingCommand::response_to(req, rs::SUCCESS, None))
        }
        Err(e) => Ok(error(
            req,
            rs::SYSTEM_ERROR,
            format!("cannot store topic {topic}: {e}"),
        )),
    }
}

/// Applies a 5.x attribute modification (`+key=value,-key,...`, Java's `AttributeParser`)
/// to `attributes`. Deleting is refused when the topic is being created, as in Java.
fn alter_attributes(
    attributes: &mut BTreeMap<String, String>,
    modification: &str,
    creating: bool,
) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for item in modification
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        if let Some((key, value)) = item.split_once('=') {
            let Some(name) = key.strip_prefix('+').filter(|k| !k.is_empty()) else {
                return Err(format!("add/alter attribute format is wrong: {key}"));
            };
            if !seen.insert(name.to_string()) {
                return Err(format!("key duplication: {key}"));
            }
            attributes.insert(name.to_string(), value.to_string());
        } else {
            let Some(name) = item.strip_prefix('-').filter(|k| !k.is_empty()) else {
                return Err(format!("delete attribute format is wrong: {item}"));
            };
            if creating {
                return Err(format!(
                    "only add attribute is supported while creating topic. key: {name}"
                ));
            }
            if !seen.insert(name.to_string()) {
                return Err(format!("key duplication: {item}"));
            }
            if attributes.remove(name).is_none() {
                return Err(format!("attempt to delete a nonexistent key: {name}"));
            }
        }
    }
    Ok(())
}

/// GET_ALL_TOPIC_CONFIG (21): the whole topic table (5.x wrapper, §6.6).
pub fn get_all_topic_config(
    b: &Broker,
    req: &RemotingCommand,
) -> Result<RemotingCommand, FrameError> {
    if b.topics.store().is_empty() {
        return Ok(error(req, rs::SYSTEM_ERROR, "No topic in this broker"));
    }
    Ok(json_body(
        req,
        b.topics.store().to_wire_json(),
        "No topic in this broker",
    ))
}

/// GET_ALL_CONSUMER_OFFSET (43): the committed-offset table (§6.7, bare queue-id keys).
pub fn get_all_consumer_offset(
    b: &Broker,
    req: &RemotingCommand,
) -> Result<RemotingCommand, FrameError> {
    Ok(json_body(
        req,
        b.consumer_offsets.to_wire_json(),
        "No consumer offset in this broker",
    ))
}

/// GET_ALL_DELAY_OFFSET (45): the delay-level progress table (§6.8, bare level keys).
pub fn get_all_delay_offset(
    b: &Broker,
    req: &RemotingCommand,
) -> Result<RemotingCommand, FrameError> {
    Ok(json_body(
        req,
        b.delay_offsets.to_wire_json(),
        "No delay offset in this broker",
    ))
}

/// GET_ALL_SUBSCRIPTIONGROUP_CONFIG (201): the subscription-group table (§6.9).
pub fn get_all_subscription_group_config(
    b: &Broker,
    req: &RemotingCommand,
) -> Result<RemotingCommand, FrameError> {
    Ok(json_body(
        req,
        b.subscription_groups.to_wire_json(),
        "No subscription group in this broker",
    ))
}

/// GET_ROUTEINFO_BY_TOPIC (105): TopicRouteData for this broker group (§6.3), in standard
/// JSON (quoted keys), which every client version reads.
pub fn get_route_info_by_topic(
    b: &Broker,
    req: &RemotingCommand,
) -> Result<RemotingCommand, FrameError> {
    let topic = GetRouteInfoHeader::decode(req)?.topic;
    match b.topics.route_json(topic, &b.cfg) {
        Some(body) => Ok(RemotingCommand::response_to(req, rs::SUCCESS, None).with_body(body)),
        None => Ok(error(
            req,
            rs::TOPIC_NOT_EXIST,
            format!("No topic route info in name server for the topic: {topic}"),
        )),
    }
}

/// GET_BROKER_CLUSTER_INFO (106): ClusterInfo for this broker group (§6.4).
pub fn get_broker_cluster_info(
    b: &Broker,
    req: &RemotingCommand,
) -> Result<RemotingCommand, FrameError> {
    Ok(RemotingCommand::response_to(req, rs::SUCCESS, None)
        .with_body(Topics::cluster_info_json(&b.cfg)))
}

/// Java's (pool, queue-size key stem) pairs of the thread-pool gauges.
const THREAD_POOL_QUEUES: [(&str, &str); 6] = [
    ("sendThreadPool", "sendThreadPool"),
    ("pullThreadPool", "pullThreadPool"),
    ("litePullThreadPool", "litePullThreadPool"),
    ("queryThreadPool", "queryThreadPool"),
    ("ackThreadPool", "ackThreadPool"),
    ("EndTransactionThreadPool", "EndTransaction"),
];

pub(crate) fn runtime_table(b: &Broker) -> BTreeMap<String, String> {
    let log = b.store.commitlog();
    let (min, max) = (log.min_offset(), log.max_offset());
    let durable = log.progress().get(Level::Durable);
    let dispatched = b.store.dispatched_offset();
    let put = b.stats.msgs_put.load(Ordering::Relaxed);
    let got = b.stats.msgs_got.load(Ordering::Relaxed);
    let uptime = b.started.elapsed();
    let boot = now_millis() - uptime.as_millis() as i64;

    let mut t = BTreeMap::new();
    kv(&mut t, "brokerVersion", LOCAL_VERSION.to_string());
    kv(
        &mut t,
        "brokerVersionDesc",
        version_desc(LOCAL_VERSION).to_string(),
    );
    kv(&mut t, "brokerActive", "true".into());
    kv(&mut t, "brokerRole", b.cfg.broker_role.name().into());
    kv(&mut t, "msgPutTotalYesterdayMorning", "0".into());
    kv(&mut t, "msgPutTotalTodayMorning", "0".into());
    kv(&mut t, "msgPutTotalTodayNow", put.to_string());
    kv(&mut t, "msgGetTotalYesterdayMorning", "0".into());
    kv(&mut t, "msgGetTotalTodayMorning", "0".into());
    kv(&mut t, "msgGetTotalTodayNow", got.to_string());
    kv(
        &mut t,
        "putMessageFailedTimes",
        b.stats.put_errors.load(Ordering::Relaxed).to_string(),
    );
    kv(&mut t, "commitLogMinOffset", min.to_string());
    kv(&mut t, "commitLogMaxOffset", max.to_string());
    kv(
        &mut t,
        "dispatchBehindBytes",
        (max - dispatched).max(0).to_string(),
    );
    kv(
        &mut t,
        "remainHowManyDataToFlush",
        (max - durable).max(0).to_string(),
    );
    kv(&mut t, "remainHowManyDataToCommit", "0".into());
    kv(&mut t, "remainTransientStoreBufferNumbs", "0".into());
    kv(&mut t, "pageCacheLockTimeMills", "0".into());
    kv(
        &mut t,
        "earliestMessageTimeStamp",
        earliest_message_time(b).to_string(),
    );
    // Java's `startAcceptSendRequestTimeStamp` config: sends are accepted from the start.
    kv(&mut t, "startAcceptSendRequestTimeStamp", "0".into());
    kv(&mut t, "bootTimestamp", boot.to_string());
    kv(&mut t, "runtime", format_runtime(uptime.as_secs()));
    kv(&mut t, "runtimeSeconds", uptime.as_secs().to_string());
    // Java's thread-pool queue gauges: ringmq serves requests on its network cores.
    for (pool, queue) in THREAD_POOL_QUEUES {
        for suffix in ["QueueSize", "QueueCapacity", "QueueHeadWaitTimeMills"] {
            let key = if suffix == "QueueSize" {
                format!("{queue}QueueSize")
            } else {
                format!("{pool}{suffix}")
            };
            kv(&mut t, &key, "0".into());
        }
    }
    let root = &b.cfg.store_path_root_dir;
    if let Some((total, free)) = disk_space(root) {
        let ratio = if total > 0 {
            (total - free) as f64 / total as f64
        } else {
            0.0
        };
        kv(&mut t, "commitLogDiskRatio", ratio.to_string());
        kv(&mut t, "consumeQueueDiskRatio", ratio.to_string());
        kv(
            &mut t,
            "commitLogDirCapacity",
            format!(
                "Total : {}, Free : {}.",
                human_readable_bytes(total),
                human_readable_bytes(free)
            ),
        );
    }
    t
}

fn kv(t: &mut BTreeMap<String, String>, key: &str, value: String) {
    t.insert(key.to_string(), value);
}

/// `MQVersion.getVersionDesc` for the versions ringmq announces.
fn version_desc(v: i32) -> &'static str {
    match v {
        version::V5_3_3 => "V5_3_3",
        version::V5_3_1 => "V5_3_1",
        version::V4_9_8 => "V4_9_8",
        _ => "HIGHER_VERSION",
    }
}

/// Java's StoreStatsService runtime format.
fn format_runtime(secs: u64) -> String {
    let (days, hours, minutes, seconds) =
        (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    format!("[ {days} days, {hours} hours, {minutes} minutes, {seconds} seconds ]")
}

/// Store time of the oldest message in the CommitLog, or -1 when there is none.
fn earliest_message_time(b: &Broker) -> i64 {
    let log = b.store.commitlog();
    let (min, max) = (log.min_offset(), log.max_offset());
    // The record header up to the store timestamp fits in 128 bytes (IPv6 born host).
    let len = (max - min).clamp(0, 128) as usize;
    if len == 0 {
        return -1;
    }
    log.with_bytes(min, len, ringmq_engine::record::peek_store_timestamp)
        .ok()
        .flatten()
        .unwrap_or(-1)
}

/// (total, available) bytes of the file system holding `path`.
// statvfs field types differ between targets (u32 or u64); the casts are for the others.
#[allow(clippy::unnecessary_cast)]
fn disk_space(path: &Path) -> Option<(u64, u64)> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is a NUL-terminated path and `st` a writable statvfs buffer.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs succeeded, so it filled the buffer.
    let st = unsafe { st.assume_init() };
    let frsize = st.f_frsize as u64;
    Some((st.f_blocks as u64 * frsize, st.f_bavail as u64 * frsize))
}

/// `MixAll.humanReadableByteCount(bytes, false)`: binary units, one decimal.
fn human_readable_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let exp = ((bytes as f64).ln() / 1024f64.ln()) as usize;
    let exp = exp.clamp(1, UNITS.len());
    format!(
        "{:.1} {}",
        bytes as f64 / 1024f64.powi(exp as i32),
        UNITS[exp - 1]
    )
}

#[cfg(test)]
mod tests {

    use ringmq_engine::meta::{
        ConsumerOffsetSerializeWrapper, SubscriptionGroupWrapper, PERM_READ, PERM_WRITE,
    };
    use serde_json::Value;

    use super::*;
    use crate::test_support::{broker_with, request};
    use ringmq_remoting::codes::request_code as rq;
    use serde_json::json;

    fn body_json(resp: &RemotingCommand) -> Value {
        assert_eq!(resp.code, rs::SUCCESS, "{:?}", resp.remark);
        serde_json::from_slice(&resp.body).unwrap()
    }

    fn create(b: &Broker, topic: &str, extra: &[(&str, &str)]) -> RemotingCommand {
        let mut fields = vec![
            ("topic", topic),
            ("defaultTopic", "TBW102"),
            ("readQueueNums", "4"),
            ("writeQueueNums", "4"),
            ("perm", "6"),
            ("topicFilterType", "SINGLE_TAG"),
            ("topicSysFlag", "0"),
            ("order", "false"),
        ];
        for (k, v) in extra {
            fields.retain(|(name, _)| name != k);
            fields.push((k, v));
        }
        update_and_create_topic(b, &request(rq::UPDATE_AND_CREATE_TOPIC, &fields)).unwrap()
    }

    #[test]
    fn create_update_and_list_topics() {
        let (_dir, b) = broker_with(|c| c.auto_create_topic_enable = true);
        let r = create(&b, "Orders", &[]);
        assert_eq!((r.code, r.remark.as_deref()), (rs::SUCCESS, None));
        assert!(r.ext_fields.is_empty() && r.body.is_empty());
        let info = b.topics.get("Orders").unwrap();
        assert_eq!(
            (info.read_queues, info.write_queues, info.perm),
            (4, 4, PERM_READ | PERM_WRITE)
        );
        let version = b.topics.store().data_version();
        assert_eq!(create(&b, "Orders", &[]).code, rs::SUCCESS);
        assert_eq!(
            b.topics.store().data_version(),
            version,
            "an identical request writes nothing"
        );

        // Update: queue counts, order, attributes (5.x syntax).
        let r = create(
            &b,
            "Orders",
            &[
                ("writeQueueNums", "8"),
                ("order", "true"),
                ("attributes", "+message.type=NORMAL"),
            ],
        );
        assert_eq!(r.code, rs::SUCCESS, "{:?}", r.remark);
        let stored = b.topics.store().get("Orders").unwrap();
        assert_eq!(
            (
                stored.read_queue_nums,
                stored.write_queue_nums,
                stored.order
            ),
            (4, 8, true)
        );
        assert_eq!(
            stored.attributes.get("message.type").map(String::as_str),
            Some("NORMAL")
        );
        assert_eq!(
            b.topics.get("Orders").unwrap().write_queues,
            8,
            "cache updated too"
        );
        assert_eq!(
            create(
                &b,
                "Orders",
                &[
                    ("writeQueueNums", "8"),
                    ("order", "true"),
                    ("attributes", "-message.type")
                ]
            )
            .code,
            rs::SUCCESS
        );
        assert!(b
            .topics
            .store()
            .get("Orders")
            .unwrap()
            .attributes
            .is_empty());

        // Refusals.
        for (topic, extra) in [
            ("bad topic", vec![]),
            ("TBW102", vec![]),
            ("SCHEDULE_TOPIC_XXXX", vec![]),
            ("rmq_sys_x", vec![]),
            ("New", vec![("attributes", "-message.type")]),
            ("New", vec![("attributes", "message.type=NORMAL")]),
            ("New", vec![("attributes", "+message.type=MIXED")]),
            ("New", vec![("topicFilterType", "ODD_TAG")]),
            ("New", vec![("readQueueNums", "-1")]),
            ("New", vec![("writeQueueNums", "2147483647")]),
            ("New", vec![("readQueueNums", "1025")]),
            ("New", vec![("readQueueNums", "0"), ("writeQueueNums", "0")]),
        ] {
            let r = create(&b, topic, &extra);
            assert_eq!(r.code, rs::INVALID_PARAMETER, "{topic} {extra:?}");
            assert!(r.remark.is_some());
        }
        assert!(b.topics.get("New").is_none());
        let err = update_and_create_topic(
            &b,
            &request(
                rq::UPDATE_AND_CREATE_TOPIC,
                &[("topic", "X"), ("readQueueNums", "1")],
            ),
        )
        .unwrap_err();
        assert!(err.to_string().contains("writeQueueNums"), "{err}");

        // GET_ALL_TOPIC_CONFIG carries the table.
        let all = body_json(
            &get_all_topic_config(&b, &RemotingCommand::request(rq::GET_ALL_TOPIC_CONFIG)).unwrap(),
        );
        assert_eq!(all["topicConfigTable"]["Orders"]["writeQueueNums"], 8);
        assert_eq!(
            all["topicConfigTable"]["Orders"]["topicFilterType"],
            "SINGLE_TAG"
        );
        assert!(all["topicConfigTable"]["TBW102"].is_object());
        assert!(all["dataVersion"]["counter"].as_i64().unwrap() > 0);
        b.shutdown().unwrap();
    }

    #[test]
    fn route_and_cluster_info() {
        let (_dir, b) = broker_with(|c| c.auto_create_topic_enable = true);
        create(&b, "Orders", &[]);
        let req = request(rq::GET_ROUTEINFO_BY_TOPIC, &[("topic", "Orders")]);
        let route = body_json(&get_route_info_by_topic(&b, &req).unwrap());
        assert_eq!(route["queueDatas"][0]["brokerName"], "broker-a");
        assert_eq!(route["queueDatas"][0]["readQueueNums"], 4);
        assert_eq!(route["queueDatas"][0]["writeQueueNums"], 4);
        assert_eq!(route["queueDatas"][0]["perm"], 6);
        assert_eq!(route["queueDatas"][0]["topicSysFlag"], 0);
        assert_eq!(route["brokerDatas"][0]["cluster"], "DefaultCluster");
        assert_eq!(
            route["brokerDatas"][0]["brokerAddrs"]["0"],
            "127.0.0.1:10911"
        );
        assert_eq!(route["brokerDatas"][0]["enableActingMaster"], false);
        assert_eq!(route["filterServerTable"], json!({}));
        // Unknown topics have no route, as from a name server: clients then take TBW102's.
        let req = request(rq::GET_ROUTEINFO_BY_TOPIC, &[("topic", "NotYet")]);
        assert_eq!(
            get_route_info_by_topic(&b, &req).unwrap().code,
            rs::TOPIC_NOT_EXIST
        );
        let req = request(rq::GET_ROUTEINFO_BY_TOPIC, &[("topic", "TBW102")]);
        assert_eq!(get_route_info_by_topic(&b, &req).unwrap().code, rs::SUCCESS);
        assert!(
            get_route_info_by_topic(&b, &RemotingCommand::request(rq::GET_ROUTEINFO_BY_TOPIC))
                .is_err()
        );

        let cluster = body_json(
            &get_broker_cluster_info(&b, &RemotingCommand::request(rq::GET_BROKER_CLUSTER_INFO))
                .unwrap(),
        );
        assert_eq!(
            cluster["brokerAddrTable"]["broker-a"]["brokerAddrs"]["0"],
            "127.0.0.1:10911"
        );
        assert_eq!(
            cluster["clusterAddrTable"]["DefaultCluster"],
            json!(["broker-a"])
        );
        b.shutdown().unwrap();

        let (_dir, b) = broker_with(|c| c.auto_create_topic_enable = false);
        let req = request(rq::GET_ROUTEINFO_BY_TOPIC, &[("topic", "NotYet")]);
        let r = get_route_info_by_topic(&b, &req).unwrap();
        assert_eq!(r.code, rs::TOPIC_NOT_EXIST);
        assert_eq!(
            r.remark.as_deref(),
            Some("No topic route info in name server for the topic: NotYet")
        );
        assert!(r.body.is_empty());
        b.shutdown().unwrap();
    }

    #[test]
    fn get_all_tables_and_runtime_info() {
        let (_dir, b) = broker_with(|c| c.auto_create_topic_enable = true);
        b.consumer_offsets.commit("G1", "T1", 0, 42);
        b.delay_offsets.set(3, 9);
        b.subscription_groups.get_or_create("G1", true).unwrap();
        b.stats.msgs_put.store(5, Ordering::Relaxed);

        let r = get_all_consumer_offset(&b, &RemotingCommand::request(rq::GET_ALL_CONSUMER_OFFSET))
            .unwrap();
        assert_eq!(r.code, rs::SUCCESS);
        let offsets = ConsumerOffsetSerializeWrapper::from_json(&r.body).unwrap();
        assert_eq!(offsets.offset_table["T1@G1"][&0], 42);
        assert!(
            std::str::from_utf8(&r.body)
                .unwrap()
                .contains(r#""T1@G1":{0:42}"#),
            "Java's bare keys"
        );

        let r =
            get_all_delay_offset(&b, &RemotingCommand::request(rq::GET_ALL_DELAY_OFFSET)).unwrap();
        assert_eq!(r.code, rs::SUCCESS);
        assert!(std::str::from_utf8(&r.body)
            .unwrap()
            .ends_with(r#""offsetTable":{3:9}}"#));

        let r = get_all_subscription_group_config(
            &b,
            &RemotingCommand::request(rq::GET_ALL_SUBSCRIPTIONGROUP_CONFIG),
        )
        .unwrap();
        let groups = SubscriptionGroupWrapper::from_json(&r.body).unwrap();
        assert_eq!(groups.subscription_group_table["G1"].group_name, "G1");

        // The routed handler (admin_ops) builds on runtime_table.
        let r = crate::admin_ops::get_broker_runtime_info(
            &b,
            &RemotingCommand::request(rq::GET_BROKER_RUNTIME_INFO),
        )
        .unwrap();
        let body = body_json(&r);
        let table = body["table"].as_object().unwrap();
        assert!(
            table.values().all(Value::is_string),
            "KVTable values are strings"
        );
        assert_eq!(table["brokerVersionDesc"], "V5_3_3");
        assert_eq!(table["msgPutTotalTodayNow"], "5");
        assert_eq!(table["msgGetTotalTodayNow"], "0");
        assert_eq!(table["brokerRole"], "ASYNC_MASTER");
        assert_eq!(
            table["commitLogMaxOffset"],
            b.store.commitlog().max_offset().to_string()
        );
        assert_eq!(table["commitLogMinOffset"], "0");
        assert_eq!(table["earliestMessageTimeStamp"], "-1");
        for key in [
            "dispatchBehindBytes",
            "startAcceptSendRequestTimeStamp",
            "runtime",
            "bootTimestamp",
            "sendThreadPoolQueueSize",
        ] {
            assert!(table.contains_key(key), "{key}");
        }
        assert!(table["runtime"]
            .as_str()
            .unwrap()
            .starts_with("[ 0 days, 0 hours, "));

        let before = now_millis();
        let msg = ringmq_engine::record::MessageToStore::new("T1", 0, &b"x"[..], &b""[..]);
        assert_eq!(
            b.store.put_blocking(vec![msg]).status,
            ringmq_engine::commitlog::PutStatus::Ok
        );
        let table = runtime_table(&b);
        let earliest: i64 = table["earliestMessageTimeStamp"].parse().unwrap();
        assert!(earliest >= before && earliest <= now_millis(), "{earliest}");
        b.shutdown().unwrap();
    }

    #[test]
    fn helpers() {
        assert_eq!(human_readable_bytes(1000), "1000 B");
        assert_eq!(human_readable_bytes(1536), "1.5 KiB");
        assert_eq!(human_readable_bytes(10 << 30), "10.0 GiB");
        assert_eq!(
            format_runtime(90_061),
            "[ 1 days, 1 hours, 1 minutes, 1 seconds ]"
        );
        assert!(
            is_system_topic("TBW102")
                && is_system_topic("rmq_sys_wheel")
                && !is_system_topic("Orders")
        );
        let mut attrs = BTreeMap::new();
        alter_attributes(&mut attrs, "+a=1,+b=2", true).unwrap();
        assert!(alter_attributes(&mut attrs, "+a=1,+a=2", false).is_err());
        assert!(alter_attributes(&mut attrs, "-zz", false).is_err());
        alter_attributes(&mut attrs, "-a", false).unwrap();
        assert_eq!(attrs, BTreeMap::from([("b".to_string(), "2".to_string())]));
    }
}
