//! Tests of the client registry through its requests: heartbeats, notifications,
//! unregistering, consumer lists and expiry.

use std::time::Duration;

use ringmq_engine::meta::{PERM_READ, PERM_WRITE};
use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use super::*;
use crate::conn::{ConnInfo, Outgoing};
use crate::test_support::{broker, broker_with};
use crate::Broker;
use ringmq_remoting::codes::{request_code as rq, response_code as rs};
use ringmq_remoting::command::RemotingCommand;

fn conn(id: u64) -> (ConnInfo, UnboundedReceiver<Outgoing>) {
    let (tx, rx) = unbounded_channel();
    (
        ConnInfo {
            id,
            peer: "127.0.0.1:5555".parse().unwrap(),
            outbox: tx,
        },
        rx,
    )
}

/// A Java 5.x push consumer's heartbeat (spec §6.2).
fn heartbeat_body(client: &str, group: &str, topics: &[&str]) -> String {
    let subs: Vec<Value> = topics
            .iter()
            .map(|t| {
                json!({"classFilterMode":false,"codeSet":[2598919],"expressionType":"TAG","subString":"TagA",
                       "subVersion":1700000000000i64,"tagsSet":["TagA"],"topic":t})
            })
            .collect();
    json!({"clientID":client,"consumerDataSet":[{"consumeFromWhere":"CONSUME_FROM_LAST_OFFSET",
            "consumeType":"CONSUME_PASSIVELY","groupName":group,"messageModel":"CLUSTERING",
            "subscriptionDataSet":subs,"unitMode":false}],
            "heartbeatFingerprint":0,"producerDataSet":[{"groupName":"CLIENT_INNER_PRODUCER"}],"withoutSub":false})
        .to_string()
}

fn beat(b: &Broker, c: &ConnInfo, body: String) -> RemotingCommand {
    let req = RemotingCommand::request(rq::HEART_BEAT).with_body(body);
    heart_beat(b, c, &req).unwrap()
}

/// The consumer groups NOTIFY_CONSUMER_IDS_CHANGED was sent for, draining the channel.
fn notified(rx: &mut UnboundedReceiver<Outgoing>) -> Vec<String> {
    let mut groups = Vec::new();
    while let Ok(out) = rx.try_recv() {
        let Outgoing::Command(cmd) = out else {
            panic!("unexpected outgoing sends")
        };
        assert_eq!(cmd.code, rq::NOTIFY_CONSUMER_IDS_CHANGED);
        assert!(cmd.is_oneway() && !cmd.is_response());
        groups.push(cmd.ext_str("consumerGroup").unwrap().to_string());
    }
    groups
}

fn consumer_list(b: &Broker, group: &str) -> RemotingCommand {
    let req =
        RemotingCommand::request(rq::GET_CONSUMER_LIST_BY_GROUP).with_ext("consumerGroup", group);
    get_consumer_list_by_group(b, &req).unwrap()
}

fn ids_in(resp: &RemotingCommand) -> Value {
    assert_eq!(resp.code, rs::SUCCESS, "{:?}", resp.remark);
    let body: Value = serde_json::from_slice(&resp.body).unwrap();
    body["consumerIdList"].clone()
}

#[test]
fn heartbeat_registers_and_membership_changes_notify() {
    let (_dir, b) = broker();
    let (c1, mut rx1) = conn(1);
    let (c2, mut rx2) = conn(2);

    let r = beat(
        &b,
        &c1,
        heartbeat_body("10.0.0.5@1", "G1", &["T1", "%RETRY%G1"]),
    );
    assert_eq!(r.code, rs::SUCCESS);
    assert_eq!(r.ext("IS_SUPPORT_HEART_BEAT_V2"), Some("true"));
    assert_eq!(r.ext("IS_SUB_CHANGE"), Some("true"));
    assert!(r.body.is_empty());
    // Group and retry topic auto-created.
    assert!(b.subscription_groups.get("G1").is_some());
    let retry = b.topics.get("%RETRY%G1").expect("retry topic");
    assert_eq!(
        (retry.read_queues, retry.write_queues, retry.perm),
        (1, 1, PERM_READ | PERM_WRITE)
    );
    assert!(
        b.topics.store().get("%RETRY%G1").is_some(),
        "persisted through Topics::put"
    );
    assert_eq!(notified(&mut rx1), ["G1"], "a new member is announced");
    let sub = b.clients.subscription("G1", "T1").unwrap();
    assert_eq!(
        (sub.sub_string.as_str(), sub.expression_type.as_str()),
        ("TagA", "TAG")
    );
    assert_eq!(
        (sub.tags_set.clone(), sub.code_set.clone(), sub.sub_version),
        (vec!["TagA".to_string()], vec![2598919], 1700000000000)
    );
    assert!(b.clients.subscription("G1", "T2").is_none());
    assert!(b.clients.subscription("G2", "T1").is_none());
    assert_eq!(
        b.clients.producer_ids("CLIENT_INNER_PRODUCER"),
        ["10.0.0.5@1"]
    );
    let members = b.clients.consumer_members("G1");
    assert_eq!(members.len(), 1);
    assert_eq!(
        (
            members[0].language.as_str(),
            members[0].message_model.as_str()
        ),
        ("JAVA", "CLUSTERING")
    );
    assert_eq!(members[0].consume_from_where, "CONSUME_FROM_LAST_OFFSET");
    assert_eq!(ids_in(&consumer_list(&b, "G1")), json!(["10.0.0.5@1"]));

    // The same heartbeat again changes nothing: no notification.
    beat(
        &b,
        &c1,
        heartbeat_body("10.0.0.5@1", "G1", &["T1", "%RETRY%G1"]),
    );
    assert!(notified(&mut rx1).is_empty());

    // A second member: everybody is told, the list is sorted.
    beat(
        &b,
        &c2,
        heartbeat_body("10.0.0.4@2", "G1", &["T1", "%RETRY%G1"]),
    );
    assert_eq!(notified(&mut rx1), ["G1"]);
    assert_eq!(notified(&mut rx2), ["G1"]);
    assert_eq!(
        ids_in(&consumer_list(&b, "G1")),
        json!(["10.0.0.4@2", "10.0.0.5@1"])
    );
    assert_eq!(b.clients.consumer_ids("G1"), ["10.0.0.4@2", "10.0.0.5@1"]);

    // A member's subscribed topics change: notify.
    beat(
        &b,
        &c2,
        heartbeat_body("10.0.0.4@2", "G1", &["T1", "T2", "%RETRY%G1"]),
    );
    assert_eq!(notified(&mut rx1), ["G1"]);
    assert_eq!(notified(&mut rx2), ["G1"]);

    // Unregister the second member: the first is told.
    let req = RemotingCommand::request(rq::UNREGISTER_CLIENT)
        .with_ext("clientID", "10.0.0.4@2")
        .with_ext("consumerGroup", "G1")
        .with_ext("producerGroup", "CLIENT_INNER_PRODUCER");
    let r = unregister_client(&b, &c2, &req).unwrap();
    assert_eq!(r.code, rs::SUCCESS);
    assert!(r.ext_fields.is_empty() && r.body.is_empty());
    assert_eq!(notified(&mut rx1), ["G1"]);
    assert!(notified(&mut rx2).is_empty());
    assert_eq!(ids_in(&consumer_list(&b, "G1")), json!(["10.0.0.5@1"]));
    assert_eq!(
        b.clients.producer_ids("CLIENT_INNER_PRODUCER"),
        ["10.0.0.5@1"]
    );
    let missing = RemotingCommand::request(rq::UNREGISTER_CLIENT).with_ext("consumerGroup", "G1");
    assert!(unregister_client(&b, &c2, &missing)
        .unwrap_err()
        .to_string()
        .contains("clientID"));

    // The second rejoins, then the first's connection closes: the second is told.
    beat(&b, &c2, heartbeat_body("10.0.0.4@2", "G1", &["T1"]));
    notified(&mut rx1);
    notified(&mut rx2);
    b.clients.connection_closed(1);
    assert_eq!(notified(&mut rx2), ["G1"]);
    assert_eq!(b.clients.consumer_ids("G1"), ["10.0.0.4@2"]);
    assert_eq!(
        b.clients.producer_ids("CLIENT_INNER_PRODUCER"),
        ["10.0.0.4@2"]
    );

    // Idle members expire; the last one leaving empties the group.
    b.clients.expire_idle();
    assert_eq!(
        b.clients.consumer_ids("G1"),
        ["10.0.0.4@2"],
        "fresh members stay"
    );
    std::thread::sleep(Duration::from_millis(5));
    b.clients.expire_older_than(Duration::from_millis(1));
    assert!(b.clients.consumer_ids("G1").is_empty());
    let r = consumer_list(&b, "G1");
    assert_eq!(
        (r.code, r.remark.as_deref()),
        (rs::SYSTEM_ERROR, Some("no consumer for this group, G1"))
    );
    assert!(r.body.is_empty());
    assert!(get_consumer_list_by_group(
        &b,
        &RemotingCommand::request(rq::GET_CONSUMER_LIST_BY_GROUP)
    )
    .is_err());
    b.shutdown().unwrap();
}

#[test]
fn expiry_notifies_the_remaining_members() {
    let (_dir, b) = broker();
    let (c1, mut rx1) = conn(1);
    let (c2, _rx2) = conn(2);
    beat(&b, &c2, heartbeat_body("old", "G1", &["T1"]));
    std::thread::sleep(Duration::from_millis(30));
    beat(&b, &c1, heartbeat_body("fresh", "G1", &["T1"]));
    notified(&mut rx1);
    b.clients.expire_older_than(Duration::from_millis(15));
    assert_eq!(b.clients.consumer_ids("G1"), ["fresh"]);
    assert_eq!(notified(&mut rx1), ["G1"]);
    b.shutdown().unwrap();
}

#[test]
fn heartbeat_v2_fingerprints_and_without_sub() {
    let (_dir, b) = broker();
    let (c1, _rx1) = conn(1);
    let body = |fp: i64, without_sub: bool, subs: Value| {
        json!({"clientID":"c1","heartbeatFingerprint":fp,"withoutSub":without_sub,
                   "consumerDataSet":[{"groupName":"G1","messageModel":"CLUSTERING","subscriptionDataSet":subs}]})
            .to_string()
    };
    let sub = json!([{"topic":"T1","subString":"a || b","subVersion":1}]);
    // Unknown fingerprint, subscriptions withheld: the client must send them.
    assert_eq!(
        beat(&b, &c1, body(42, true, json!(null))).ext("IS_SUB_CHANGE"),
        Some("true")
    );
    assert!(b.clients.subscription("G1", "T1").is_none());
    assert_eq!(
        beat(&b, &c1, body(42, false, sub.clone())).ext("IS_SUB_CHANGE"),
        Some("true")
    );
    assert_eq!(
        b.clients.subscription("G1", "T1").unwrap().sub_string,
        "a || b"
    );
    // Same fingerprint without subscriptions: nothing changed, subscriptions kept.
    let r = beat(&b, &c1, body(42, true, json!([])));
    assert_eq!(
        (r.ext("IS_SUPPORT_HEART_BEAT_V2"), r.ext("IS_SUB_CHANGE")),
        (Some("true"), Some("false"))
    );
    assert_eq!(
        b.clients.subscription("G1", "T1").unwrap().sub_string,
        "a || b"
    );
    // A new fingerprint: changed.
    assert_eq!(
        beat(&b, &c1, body(43, true, json!([]))).ext("IS_SUB_CHANGE"),
        Some("true")
    );
    b.shutdown().unwrap();
}

#[test]
fn tolerant_parsing_and_bad_bodies() {
    let (_dir, b) = broker();
    let (c1, mut rx1) = conn(1);
    // Nulls, unknown properties, numbers as strings, missing fields, 5.x extras.
    let body = r#"{"clientID":"c1","futureField":{"x":1},"producerDataSet":null,
            "consumerDataSet":[{"groupName":"G1","consumeType":null,"messageModel":"CLUSTERING","unitMode":"false",
              "subscriptionDataSet":[{"topic":"T1","subString":"*","tagsSet":null,"codeSet":[],"subVersion":"12",
                "expressionType":null,"filterClassSource":null}]},
              {"groupName":""},{"subscriptionDataSet":[]}],
            "heartbeatFingerprint":null}"#;
    let r = beat(&b, &c1, body.to_string());
    assert_eq!(r.code, rs::SUCCESS, "{:?}", r.remark);
    let sub = b.clients.subscription("G1", "T1").unwrap();
    assert_eq!(
        (sub.sub_string.as_str(), sub.sub_version, sub.tags_set.len()),
        ("*", 12, 0)
    );
    assert_eq!(b.clients.consumer_ids("G1"), ["c1"]);
    assert_eq!(notified(&mut rx1), ["G1"]);

    // An empty body registers nothing; a body that is not JSON is a SYSTEM_ERROR.
    assert_eq!(beat(&b, &c1, String::new()).code, rs::SUCCESS);
    let r = beat(&b, &c1, "{not json".into());
    assert_eq!(r.code, rs::SYSTEM_ERROR);
    assert!(r.remark.unwrap().contains("HeartbeatData"));
    b.shutdown().unwrap();
}

#[test]
fn broadcasting_groups_and_unknown_groups_are_not_notified() {
    let (_dir, b) = broker_with(|c| c.auto_create_subscription_group = false);
    let (c1, mut rx1) = conn(1);
    // No auto-creation: the consumer of an unknown group is ignored, no retry topic.
    assert_eq!(
        beat(&b, &c1, heartbeat_body("c1", "G1", &["T1"])).code,
        rs::SUCCESS
    );
    assert!(b.clients.consumer_ids("G1").is_empty());
    assert!(b.topics.get("%RETRY%G1").is_none());
    assert!(notified(&mut rx1).is_empty());

    b.subscription_groups.get_or_create("GB", true).unwrap();
    let body = heartbeat_body("c1", "GB", &["T1"]).replace("CLUSTERING", "BROADCASTING");
    beat(&b, &c1, body);
    assert_eq!(b.clients.consumer_ids("GB"), ["c1"]);
    assert!(
        notified(&mut rx1).is_empty(),
        "BROADCASTING groups are never notified"
    );
    b.clients.notify_group_changed("GB");
    b.clients.notify_group_changed("nobody");
    assert!(notified(&mut rx1).is_empty());
    b.shutdown().unwrap();
}

#[test]
fn heartbeats_with_illegal_or_oversized_content_are_refused_whole() {
    let (_dir, b) = broker();
    let (c, _rx) = conn(1);
    let too_many: Vec<String> = (0..=MAX_SUBSCRIPTIONS_PER_CONSUMER)
        .map(|i| format!("T{i}"))
        .collect();
    let too_many: Vec<&str> = too_many.iter().map(String::as_str).collect();
    for (body, says) in [
        (heartbeat_body("c1", "bad group", &["T1"]), "group"),
        (heartbeat_body("c1", "G1", &["a/b"]), "subscription topic"),
        (heartbeat_body("c1", "G1", &too_many), "at most"),
    ] {
        let r = beat(&b, &c, body);
        assert_eq!(r.code, rs::INVALID_PARAMETER);
        assert!(r.remark.unwrap().contains(says), "{says}");
    }
    assert!(
        b.subscription_groups.get("G1").is_none(),
        "nothing registered"
    );
    assert_eq!(
        beat(&b, &c, heartbeat_body("c1", "G1", &["T1"])).code,
        rs::SUCCESS
    );
}
