//! Unit tests of the admin requests against a real broker on a temporary store.

use std::time::Duration;

use serde_json::Value;

use super::fastjson::parse_object_key_map;
use super::*;
use crate::test_support::{broker_with, request};
use crate::Broker;
use ringmq_engine::commitlog::PutStatus;
use ringmq_engine::meta::{TopicConfig, PERM_READ, PERM_WRITE};
use ringmq_engine::record::MessageToStore;
use ringmq_remoting::codes::{request_code as rq, response_code as rs};

fn put(b: &Broker, topic: &str, qid: i32, n: usize) -> Vec<i64> {
    let msgs = (0..n)
        .map(|i| MessageToStore::new(topic, qid, format!("body-{i}").into_bytes(), &b""[..]))
        .collect();
    let out = b.store.put_blocking(msgs);
    assert_eq!(out.status, PutStatus::Ok);
    assert!(b
        .store
        .wait_dispatched(out.end_offset, Duration::from_secs(5)));
    out.appended.iter().map(|a| a.phys_offset).collect()
}

fn topic(b: &Broker, name: &str, queues: i32) {
    b.topics
        .put(TopicConfig::with_queues(
            name,
            queues,
            queues,
            PERM_READ | PERM_WRITE,
        ))
        .unwrap();
}

fn stats_table(body: &[u8]) -> Vec<(i64, Value)> {
    let (entries, _) = parse_object_key_map(body, "offsetTable").unwrap();
    entries
        .into_iter()
        .map(|(k, v)| (k["queueId"].as_i64().unwrap(), v))
        .collect()
}

#[test]
fn admin_ops_delete_topic_removes_queues_and_offsets() {
    let (_dir, b) = broker_with(|c| c.auto_create_topic_enable = false);
    topic(&b, "Doomed", 2);
    topic(&b, "Kept", 1);
    put(&b, "Doomed", 0, 3);
    put(&b, "Doomed", 1, 2);
    put(&b, "Kept", 0, 1);
    b.consumer_offsets.commit("G", "Doomed", 0, 2);
    b.consumer_offsets.commit("G", "Kept", 0, 1);
    b.store.consume_queues().flush_all().unwrap();
    let cq_dir = b.store.consume_queues().root().join("Doomed");
    assert!(cq_dir.is_dir());

    let r = delete_topic_in_broker(
        &b,
        &request(rq::DELETE_TOPIC_IN_BROKER, &[("topic", "Doomed")]),
    )
    .unwrap();
    assert_eq!(r.code, rs::SUCCESS, "{:?}", r.remark);
    assert!(!cq_dir.exists(), "no files left behind");
    assert!(b.topics.get("Doomed").is_none());
    assert!(b.topics.store().get("Doomed").is_none());
    assert!(b.consumer_offsets.query_all("G", "Doomed").is_empty());
    assert_eq!(b.consumer_offsets.query("G", "Kept", 0), Some(1));
    assert_eq!(b.store.max_offset_in_queue("Kept", 0), 1);
    let persisted = std::fs::read_to_string(b.consumer_offsets.path()).unwrap();
    assert!(!persisted.contains("Doomed@G"), "{persisted}");

    for t in ["TBW102", "SCHEDULE_TOPIC_XXXX", "bad topic"] {
        let r = delete_topic_in_broker(&b, &request(rq::DELETE_TOPIC_IN_BROKER, &[("topic", t)]))
            .unwrap();
        assert_eq!(r.code, rs::INVALID_PARAMETER, "{t}");
    }
    b.shutdown().unwrap();
}

#[test]
fn admin_ops_topic_and_consume_stats() {
    let (_dir, b) = broker_with(|_| {});
    topic(&b, "T", 2);
    let before = ringmq_engine::clock::now_millis();
    put(&b, "T", 0, 5);
    put(&b, "T", 1, 2);
    b.consumer_offsets.commit("G", "T", 0, 3);

    let r =
        get_topic_stats_info(&b, &request(rq::GET_TOPIC_STATS_INFO, &[("topic", "T")])).unwrap();
    assert_eq!(r.code, rs::SUCCESS);
    let t = stats_table(&r.body);
    assert_eq!(t.len(), 2);
    assert_eq!(
        (t[0].1["minOffset"].as_i64(), t[0].1["maxOffset"].as_i64()),
        (Some(0), Some(5))
    );
    assert_eq!(t[1].1["maxOffset"], 2);
    assert!(t[0].1["lastUpdateTimestamp"].as_i64().unwrap() >= before);
    let r =
        get_topic_stats_info(&b, &request(rq::GET_TOPIC_STATS_INFO, &[("topic", "Nope")])).unwrap();
    assert_eq!(r.code, rs::TOPIC_NOT_EXIST);

    for fields in [
        &[("consumerGroup", "G"), ("topic", "T")][..],
        &[("consumerGroup", "G")],
    ] {
        let r = get_consume_stats(&b, &request(rq::GET_CONSUME_STATS, fields)).unwrap();
        assert_eq!(r.code, rs::SUCCESS);
        let t = stats_table(&r.body);
        assert_eq!(t.len(), 2, "{fields:?}");
        assert_eq!(t[0].1["brokerOffset"], 5);
        assert_eq!(t[0].1["consumerOffset"], 3);
        assert!(t[0].1["lastTimestamp"].as_i64().unwrap() >= before);
        assert_eq!(t[1].1["consumerOffset"], 0);
        assert_eq!(t[1].1["lastTimestamp"], 0);
    }
    let r = get_consumer_connection_list(
        &b,
        &request(rq::GET_CONSUMER_CONNECTION_LIST, &[("consumerGroup", "G")]),
    )
    .unwrap();
    assert_eq!(r.code, rs::CONSUMER_NOT_ONLINE);
    b.shutdown().unwrap();
}

#[test]
fn admin_ops_groups_reset_and_view() {
    let (_dir, b) = broker_with(|_| {});
    let body = r#"{"groupName":"G2","retryMaxTimes":3,"consumeBroadcastEnable":false}"#;
    let r = update_and_create_subscription_group(
        &b,
        &RemotingCommand::request(rq::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP).with_body(body),
    )
    .unwrap();
    assert_eq!(r.code, rs::SUCCESS, "{:?}", r.remark);
    let g = b.subscription_groups.get("G2").unwrap();
    assert_eq!((g.retry_max_times, g.consume_broadcast_enable), (3, false));
    let bad = RemotingCommand::request(rq::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP)
        .with_body(r#"{"groupName":"a b"}"#);
    assert_eq!(
        update_and_create_subscription_group(&b, &bad).unwrap().code,
        rs::INVALID_PARAMETER
    );

    topic(&b, "T", 1);
    let phys = put(&b, "T", 0, 4);
    b.consumer_offsets.commit("G2", "T", 0, 1);
    let reset = |ts: &str, force: &str| {
        invoke_broker_to_reset_offset(
            &b,
            &request(
                rq::INVOKE_BROKER_TO_RESET_OFFSET,
                &[
                    ("topic", "T"),
                    ("group", "G2"),
                    ("timestamp", ts),
                    ("isForce", force),
                ],
            ),
        )
        .unwrap()
    };
    // Not forced: only moves back, so a move to the end keeps 1.
    let r = reset("-1", "false");
    assert_eq!(r.code, rs::SUCCESS, "{:?}", r.remark);
    assert_eq!(b.consumer_offsets.query("G2", "T", 0), Some(1));
    let r = reset("-1", "true");
    assert_eq!(stats_table(&r.body)[0].1, 4);
    assert_eq!(b.consumer_offsets.query("G2", "T", 0), Some(4));
    reset("0", "true");
    assert_eq!(b.consumer_offsets.query("G2", "T", 0), Some(0));
    let r = invoke_broker_to_reset_offset(
        &b,
        &request(
            rq::INVOKE_BROKER_TO_RESET_OFFSET,
            &[("topic", "T"), ("group", "Nobody"), ("timestamp", "0")],
        ),
    )
    .unwrap();
    assert_eq!(r.code, rs::SYSTEM_ERROR);

    let r = delete_subscription_group(
        &b,
        &request(
            rq::DELETE_SUBSCRIPTIONGROUP,
            &[("groupName", "G2"), ("cleanOffset", "true")],
        ),
    )
    .unwrap();
    assert_eq!(r.code, rs::SUCCESS);
    assert!(b.subscription_groups.get("G2").is_none());
    assert_eq!(b.consumer_offsets.query("G2", "T", 0), None);

    let r = view_message_by_id(
        &b,
        &request(rq::VIEW_MESSAGE_BY_ID, &[("offset", &phys[2].to_string())]),
    )
    .unwrap();
    assert_eq!(r.code, rs::SUCCESS);
    match ringmq_engine::record::parse(&r.body, phys[2], true).unwrap() {
        ringmq_engine::record::Parsed::Record(v) => assert_eq!(v.body(), b"body-2"),
        _ => panic!("not a record"),
    }
    let r = view_message_by_id(
        &b,
        &request(
            rq::VIEW_MESSAGE_BY_ID,
            &[("offset", &(phys[2] + 1).to_string())],
        ),
    )
    .unwrap();
    assert_eq!(r.code, rs::SYSTEM_ERROR);
    b.shutdown().unwrap();
}

#[test]
fn admin_ops_broker_config_and_runtime_info() {
    let (_dir, b) = broker_with(|_| {});
    let r = get_broker_config(&b, &RemotingCommand::request(rq::GET_BROKER_CONFIG)).unwrap();
    assert_eq!(r.code, rs::SUCCESS);
    let text = String::from_utf8(r.body.to_vec()).unwrap();
    let props = crate::BrokerConfig::parse_properties(&text).unwrap();
    assert_eq!(props["brokerName"], "broker-a");
    assert_eq!(
        props["messageDelayLevel"],
        ringmq_engine::delay_levels::DEFAULT_LEVELS
    );
    // What GET_BROKER_CONFIG shows reads back as the same configuration.
    let mut shown = props.clone();
    shown.remove("haAuthToken");
    shown.remove("rebalanceLockMaxLiveTime");
    let (again, warnings) = crate::BrokerConfig::from_properties(&shown).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(config_properties(&again), config_properties(&b.cfg));

    let update = |body: &str| {
        update_broker_config(
            &b,
            &RemotingCommand::request(rq::UPDATE_BROKER_CONFIG).with_body(body.to_string()),
        )
        .unwrap()
    };
    let r = update("rebalanceLockMaxLiveTime=30000\n");
    assert_eq!(r.code, rs::SUCCESS, "{:?}", r.remark);
    assert_eq!(b.locks.max_live(), Duration::from_secs(30));
    assert_eq!(update("listenPort=1\n").code, rs::NO_PERMISSION);
    assert_eq!(update("noSuchKey=1\n").code, rs::INVALID_PARAMETER);
    assert_eq!(
        update("rebalanceLockMaxLiveTime=0\n").code,
        rs::INVALID_PARAMETER
    );
    let r = get_broker_config(&b, &RemotingCommand::request(rq::GET_BROKER_CONFIG)).unwrap();
    assert!(String::from_utf8_lossy(&r.body).contains("rebalanceLockMaxLiveTime=30000\n"));

    topic(&b, "T", 1);
    put(&b, "T", 0, 2);
    let r = get_broker_runtime_info(&b, &RemotingCommand::request(rq::GET_BROKER_RUNTIME_INFO))
        .unwrap();
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    let t = &v["table"];
    for key in [
        "putTps",
        "getTransferedTps",
        "getTransferredTps",
        "commitLogDiskRatio",
    ] {
        assert_eq!(
            t[key].as_str().map(|s| !s.is_empty()),
            Some(true),
            "{key}: {t}"
        );
    }
    assert_eq!(t["putTps"].as_str().unwrap().split(' ').count(), 3);
    b.shutdown().unwrap();
}
