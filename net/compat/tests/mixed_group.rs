//! Compatibility: one consumer group whose members are a mix of the unmodified crates.io
//! client `rocketmq-client-rust = "=1.0.0"` (`DefaultMQPushConsumer`, clustering, its
//! default allocation strategy AVG) and ringmq's own push consumer
//! (`ringmq_client::push::PushConsumer`, default strategy AVG), all on one ringmq
//! broker on 127.0.0.1 with one topic of 8 queues. Every member computes its share on its
//! own (client-side rebalance); the test proves they agree:
//!
//! - the broker lists every member (GET_CONSUMER_LIST_BY_GROUP);
//! - each member ends up holding exactly `allocate(&Averagely, group, its_cid, queues,
//!   cids)` — ringmq's AVG arithmetic, which is RocketMQ's — so the holdings are disjoint
//!   and cover all 8 queues;
//! - 40 messages sent to each queue (explicitly, with ringmq's producer) are all consumed,
//!   each by the member owning its queue, and the holdings are unchanged afterwards.
//!
//! How holdings are observed: the ringmq member by `PushConsumer::assigned()`; the
//! rocketmq-client-rust member by its public `DefaultMQPushConsumer::consumer_running_info()`
//! (Java's admin snapshot), whose `mq_table` is a copy of its rebalance process-queue table
//! (queues it holds; entries marked `droped` are being released and are ignored). The
//! message check confirms the same holdings independently, from the queue ids each
//! listener saw.
//!
//! Client ids decide the order AVG works in. rocketmq-client-rust builds its id as
//! `<client_ip>@<instance_name>`; the test sets its instance name and gives the ringmq
//! members the same ip with instance names chosen to sort before (`a-`, `b-`) or after
//! (`x-`, `y-`, `z-`) its `m-`, so the rocketmq-client-rust member takes every index: with
//! 2 members 4/4 (first and last), with 3 members 3/3/2 (first, middle, and last — the
//! short share). Start order is varied too (ringmq first in some scenarios, the
//! rocketmq-client-rust member first in others), so both join paths (start-time rebalance
//! and NOTIFY_CONSUMER_IDS_CHANGED) are exercised.
//!
//! Known client quirk handled here (see client_compat.rs): the rocketmq-client-rust
//! runtime's metadata_io lane queue depth is raised to 4096.
//!
//! Optional env: RINGMQ_MIXED_TIMEOUT_SECS (60) bounds each scenario.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringmq_client::allocate::{allocate, Averagely};
use ringmq_client::push::{
    ConsumeFromWhere as RingConsumeFrom, ConsumeStatus, Listener, PushConsumer, PushConsumerOptions,
};
use ringmq_client::{
    create_topic, expect_success, fetch_route, Connection, Message as RingMessage, MessageQueue,
    Producer, ReceivedMessage, SendStatus as RingSendStatus,
};
use ringmq_remoting::codes::{request_code, SerializeType};
use ringmq_remoting::command::RemotingCommand;
use rocketmq_client_rust::ClientConfig;
use rocketmq_client_rust::ClientRuntime;
use rocketmq_client_rust::ConsumeConcurrentlyContext;
use rocketmq_client_rust::ConsumeConcurrentlyStatus;
use rocketmq_client_rust::DefaultMQPushConsumer;
use rocketmq_client_rust::MQPushConsumer;
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::MessageTrait;
use rocketmq_runtime::RuntimeOwner;

const GROUP: &str = "mixed_group";
const PRODUCER_GROUP: &str = "mixed_producer_group";
const QUEUES: i32 = 8;
const PER_QUEUE: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ringmq,
    Rocketmq,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Ringmq => "ringmq",
            Kind::Rocketmq => "rocketmq-client-rust",
        }
    }
}

// ---- scenarios (members in start order; the letter decides the sorted position) ---------

#[test]
fn two_members_ringmq_sorts_first() {
    // rocketmq-client-rust starts first and holds all 8; ringmq joins and takes 0..4.
    run_scenario("mix2_first", &[(Kind::Rocketmq, "m"), (Kind::Ringmq, "a")]);
}

#[test]
fn two_members_ringmq_sorts_last() {
    // ringmq starts first and holds all 8; rocketmq-client-rust joins and takes 0..4.
    run_scenario("mix2_last", &[(Kind::Ringmq, "z"), (Kind::Rocketmq, "m")]);
}

#[test]
fn three_members_rocketmq_sorts_first() {
    // 3/3/2: rocketmq-client-rust gets the first long share.
    run_scenario(
        "mix3_first",
        &[
            (Kind::Rocketmq, "m"),
            (Kind::Ringmq, "x"),
            (Kind::Ringmq, "y"),
        ],
    );
}

#[test]
fn three_members_rocketmq_sorts_middle() {
    // 3/3/2: rocketmq-client-rust gets the second long share (index 1 < 8 % 3).
    run_scenario(
        "mix3_middle",
        &[
            (Kind::Ringmq, "a"),
            (Kind::Rocketmq, "m"),
            (Kind::Ringmq, "z"),
        ],
    );
}

#[test]
fn three_members_rocketmq_sorts_last() {
    // 3/3/2: rocketmq-client-rust gets the short share (index 2 >= 8 % 3: start = 2*2 + 2).
    run_scenario(
        "mix3_last",
        &[
            (Kind::Ringmq, "b"),
            (Kind::Ringmq, "a"),
            (Kind::Rocketmq, "m"),
        ],
    );
}

// ---- helpers ----------------------------------------------------------------------------

/// GET_CONSUMER_LIST_BY_GROUP; the body is `{"consumerIdList":["id",...]}` (ids chosen
/// here contain no quotes, commas or escapes, so a tiny parser suffices).
fn consumer_list(conn: &Connection, group: &str) -> Result<BTreeSet<String>, String> {
    let cmd = RemotingCommand::request(request_code::GET_CONSUMER_LIST_BY_GROUP)
        .with_ext("consumerGroup", group);
    let resp = conn
        .request(cmd, Duration::from_secs(3))
        .map_err(|e| format!("GET_CONSUMER_LIST_BY_GROUP: {e}"))?;
    let resp = expect_success(resp).map_err(|e| format!("GET_CONSUMER_LIST_BY_GROUP: {e}"))?;
    let body = String::from_utf8_lossy(&resp.body).into_owned();
    let (Some(open), Some(close)) = (body.find('['), body.rfind(']')) else {
        return Err(format!("consumer list body without a list: {body}"));
    };
    Ok(body[open + 1..close]
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_owned())
        .filter(|s| !s.is_empty())
        .collect())
}

fn ids(set: &BTreeSet<i32>) -> String {
    let v: Vec<String> = set.iter().map(|q| q.to_string()).collect();
    format!("[{}]", v.join(","))
}

/// One delivery a listener saw: (member index, queue id, key).
type Deliveries = Arc<Mutex<Vec<(usize, i32, String)>>>;

enum Handle {
    Ringmq(PushConsumer),
    Rocketmq(Box<DefaultMQPushConsumer>),
}

struct Member {
    kind: Kind,
    cid: String,
    handle: Handle,
}

impl Member {
    /// Queue ids of `topic` this member holds now.
    fn holding(&self, owner: &RuntimeOwner, topic: &str) -> Result<BTreeSet<i32>, String> {
        match &self.handle {
            Handle::Ringmq(c) => Ok(c
                .assigned()
                .iter()
                .filter(|q| q.topic == topic)
                .map(|q| q.queue_id)
                .collect()),
            Handle::Rocketmq(c) => {
                let info = owner
                    .block_on(c.consumer_running_info())
                    .map_err(|e| format!("consumer_running_info: {e}"))?;
                Ok(info
                    .mq_table
                    .iter()
                    .filter(|(mq, pq)| mq.topic_str() == topic && !pq.droped)
                    .map(|(mq, _)| mq.queue_id())
                    .collect())
            }
        }
    }
}

fn start_ringmq_member(
    addr: &str,
    topic: &str,
    cid: &str,
    index: usize,
    deliveries: Deliveries,
) -> Result<PushConsumer, String> {
    let mut o = PushConsumerOptions::new(addr, GROUP);
    o.client_id = cid.to_owned();
    o.consume_from = RingConsumeFrom::FirstOffset;
    o.persist_interval = Duration::from_millis(500);
    // Short long-polls so that shutdown does not wait out a 15 s hold.
    o.suspend = Duration::from_secs(2);
    let topic_in_listener = topic.to_owned();
    PushConsumer::new(o)
        .subscribe(topic, "*")
        .start(Listener::concurrently(move |msgs: &[ReceivedMessage]| {
            let mut d = deliveries.lock().unwrap();
            for m in msgs.iter().filter(|m| m.topic == topic_in_listener) {
                d.push((index, m.queue_id, m.keys.clone().unwrap_or_default()));
            }
            ConsumeStatus::Success
        }))
        .map_err(|e| format!("ringmq consumer {cid} start: {e}"))
}

fn start_rocketmq_member(
    owner: &RuntimeOwner,
    client_runtime: &Arc<ClientRuntime>,
    addr: &str,
    topic: &str,
    client_config: ClientConfig,
    index: usize,
    deliveries: Deliveries,
) -> Result<DefaultMQPushConsumer, String> {
    let mut consumer = DefaultMQPushConsumer::builder(Arc::clone(client_runtime))
        .client_config(client_config)
        .name_server_addr(addr.to_owned())
        .consumer_group(GROUP)
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .build();
    // AVG must be its default: the test relies on it, it does not set it.
    let strategy = consumer
        .allocate_message_queue_strategy()
        .map(|s| s.get_name().to_owned());
    if strategy.as_deref() != Some("AVG") {
        return Err(format!(
            "rocketmq-client-rust default allocation strategy is {strategy:?}, not AVG"
        ));
    }
    let topic_in_listener = topic.to_owned();
    owner
        .block_on(consumer.subscribe(topic, "*"))
        .map_err(|e| format!("rocketmq-client-rust subscribe: {e}"))?;
    consumer.register_message_listener_concurrently(
        move |msgs: &[&MessageExt], _ctx: &ConsumeConcurrentlyContext| {
            let mut d = deliveries.lock().unwrap();
            for m in msgs
                .iter()
                .filter(|m| m.topic().as_str() == topic_in_listener)
            {
                let key = m.get_keys().map(|k| k.to_string()).unwrap_or_default();
                d.push((index, m.queue_id(), key));
            }
            Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
        },
    );
    owner
        .block_on(consumer.start())
        .map_err(|e| format!("rocketmq-client-rust start: {e}"))?;
    Ok(consumer)
}

// ---- the scenario -----------------------------------------------------------------------

fn run_scenario(name: &str, specs: &[(Kind, &str)]) {
    let started = Instant::now();
    let timeout = Duration::from_secs(common::env_or("RINGMQ_MIXED_TIMEOUT_SECS", 60));
    let deadline = started + timeout;
    let (dir, server) = common::start_broker();
    let addr = server.local_addr().to_string();
    let (owner, client_runtime) = common::build_client_runtime("mixed-group");
    let mut members: Vec<Member> = Vec::new();

    let result = scenario_body(
        name,
        specs,
        &addr,
        &owner,
        &client_runtime,
        &mut members,
        started,
        deadline,
    );

    // ---- cleanup, whatever happened ------------------------------------------------------
    let cleanup_started = Instant::now();
    for m in members.drain(..) {
        match m.handle {
            Handle::Ringmq(c) => c.shutdown(),
            Handle::Rocketmq(mut c) => owner.block_on(c.shutdown()),
        }
    }
    let _ = owner.block_on(client_runtime.shutdown());
    drop(client_runtime);
    owner
        .shutdown_runtime_blocking()
        .expect("runtime shutdown outside async context");
    server.shutdown().expect("broker shuts down cleanly");
    let store = dir.path().to_path_buf();
    dir.close().expect("temp store removed");
    assert!(
        !store.exists(),
        "temp store {} still exists",
        store.display()
    );
    eprintln!(
        "[{name}] cleanup took {:?}; total {:?}",
        cleanup_started.elapsed(),
        started.elapsed()
    );
    if let Err(e) = result {
        panic!("[{name}] mixed group failed: {e}");
    }
}

#[allow(clippy::too_many_arguments)]
fn scenario_body(
    name: &str,
    specs: &[(Kind, &str)],
    addr: &str,
    owner: &RuntimeOwner,
    client_runtime: &Arc<ClientRuntime>,
    members: &mut Vec<Member>,
    started: Instant,
    deadline: Instant,
) -> Result<(), String> {
    let topic = format!("MixedTopic_{name}");
    let admin = Connection::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    create_topic(
        &admin,
        &topic,
        QUEUES,
        SerializeType::Json,
        Duration::from_secs(3),
    )
    .map_err(|e| format!("UPDATE_AND_CREATE_TOPIC: {e}"))?;
    let route = fetch_route(&admin, &topic).map_err(|e| format!("route of {topic}: {e}"))?;
    let all_queues = route.read_queues();
    if all_queues.len() != QUEUES as usize {
        return Err(format!(
            "route lists {} read queues: {all_queues:?}",
            all_queues.len()
        ));
    }
    let broker_name = all_queues[0].broker_name.clone();

    // rocketmq-client-rust's id is `<client_ip>@<instance_name>`; the ringmq members use the
    // same ip so that only the instance names decide the order.
    let ip = ClientConfig::default()
        .client_ip
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    let deliveries: Deliveries = Arc::new(Mutex::new(Vec::new()));

    // ---- members, in start order ---------------------------------------------------------
    for (index, &(kind, letter)) in specs.iter().enumerate() {
        let instance = format!("{letter}-{}-{name}", kind.name());
        match kind {
            Kind::Ringmq => {
                let cid = format!("{ip}@{instance}");
                let c = start_ringmq_member(addr, &topic, &cid, index, deliveries.clone())?;
                members.push(Member {
                    kind,
                    cid,
                    handle: Handle::Ringmq(c),
                });
            }
            Kind::Rocketmq => {
                let mut cfg = ClientConfig::default();
                cfg.set_instance_name(instance.as_str().into());
                let cid = cfg.build_mq_client_id();
                let c = start_rocketmq_member(
                    owner,
                    client_runtime,
                    addr,
                    &topic,
                    cfg,
                    index,
                    deliveries.clone(),
                )?;
                members.push(Member {
                    kind,
                    cid,
                    handle: Handle::Rocketmq(Box::new(c)),
                });
            }
        }
        eprintln!(
            "[{name}] started {} member {} at {:?}",
            kind.name(),
            members[index].cid,
            started.elapsed()
        );
    }
    let cids: Vec<String> = members.iter().map(|m| m.cid.clone()).collect();
    let want_list: BTreeSet<String> = cids.iter().cloned().collect();
    if want_list.len() != cids.len() {
        return Err(format!("client ids are not distinct: {cids:?}"));
    }

    // ---- the broker lists every member ---------------------------------------------------
    let listed_at = loop {
        let listed = consumer_list(&admin, GROUP)?;
        if listed == want_list {
            break started.elapsed();
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "GET_CONSUMER_LIST_BY_GROUP lists {listed:?}, want {want_list:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut sorted = cids.clone();
    sorted.sort();
    eprintln!(
        "[{name}] broker lists all {} members at {listed_at:?}; sorted ids:",
        cids.len()
    );
    for (i, cid) in sorted.iter().enumerate() {
        let m = members.iter().find(|m| &m.cid == cid).unwrap();
        eprintln!("[{name}]   #{i} {cid} ({})", m.kind.name());
    }

    // ---- what AVG gives each member ------------------------------------------------------
    let expected: Vec<BTreeSet<i32>> = members
        .iter()
        .map(|m| {
            allocate(&Averagely, GROUP, &m.cid, &all_queues, &cids)
                .iter()
                .map(|q| q.queue_id)
                .collect()
        })
        .collect();
    // Sanity of the expectation itself: a partition of the 8 queues.
    let mut union = BTreeSet::new();
    for e in &expected {
        if !union.is_disjoint(e) {
            return Err(format!("AVG shares overlap: {expected:?}"));
        }
        union.extend(e.iter().copied());
    }
    if union != (0..QUEUES).collect::<BTreeSet<_>>() {
        return Err(format!("AVG shares do not cover the queues: {expected:?}"));
    }

    // ---- wait until every member holds exactly its AVG share -----------------------------
    // When each member last started to hold exactly its share.
    let mut since: Vec<Option<Duration>> = vec![None; members.len()];
    let converged_at = loop {
        let mut held = Vec::new();
        for (i, m) in members.iter().enumerate() {
            let h = m.holding(owner, &topic)?;
            if h != expected[i] {
                since[i] = None;
            } else if since[i].is_none() {
                since[i] = Some(started.elapsed());
            }
            held.push(h);
        }
        if held == expected {
            break started.elapsed();
        }
        if Instant::now() >= deadline {
            let mut report = String::from("members did not converge on AVG:");
            for ((m, h), e) in members.iter().zip(&held).zip(&expected) {
                report.push_str(&format!(
                    "\n  {} {}: holds {} want {}",
                    m.kind.name(),
                    m.cid,
                    ids(h),
                    ids(e)
                ));
            }
            return Err(report);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!("[{name}] converged at {converged_at:?}:");
    for ((m, e), at) in members.iter().zip(&expected).zip(&since) {
        eprintln!(
            "[{name}]   {:<22} {:<40} holds {} (= allocate(AVG)) since {:?}",
            m.kind.name(),
            m.cid,
            ids(e),
            at.unwrap_or_default()
        );
    }

    // ---- produce PER_QUEUE messages to each queue ----------------------------------------
    let producer =
        Producer::connect(addr, PRODUCER_GROUP).map_err(|e| format!("producer connect: {e}"))?;
    let mut sent: BTreeMap<String, i32> = BTreeMap::new();
    for qid in 0..QUEUES {
        let mq = MessageQueue::new(&topic, &broker_name, qid);
        for i in 0..PER_QUEUE {
            let key = format!("{name}-q{qid}-{i:03}");
            let msg = RingMessage::new(format!("mixed body {key}"))
                .with_tags("mixed")
                .with_keys(key.clone());
            let r = producer
                .send_to(&mq, msg)
                .map_err(|e| format!("send {key}: {e}"))?;
            if r.status != RingSendStatus::SendOk || r.queue_id != qid {
                return Err(format!("send {key}: {r:?}"));
            }
            sent.insert(key, qid);
        }
    }
    let produced_at = started.elapsed();
    eprintln!(
        "[{name}] produced {} messages ({PER_QUEUE} per queue) at {produced_at:?}",
        sent.len()
    );

    // ---- wait until every message was consumed -------------------------------------------
    let consumed_at = loop {
        let seen: BTreeSet<String> = deliveries
            .lock()
            .unwrap()
            .iter()
            .map(|(_, _, k)| k.clone())
            .collect();
        if sent.keys().all(|k| seen.contains(k)) {
            break started.elapsed();
        }
        if Instant::now() >= deadline {
            let missing = sent.keys().filter(|k| !seen.contains(*k)).count();
            return Err(format!(
                "{missing} of {} messages never consumed by {:?}",
                sent.len(),
                Instant::now() - started
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Late deliveries (by a wrong member, or duplicates) would show up now.
    std::thread::sleep(Duration::from_millis(500));

    // ---- verify --------------------------------------------------------------------------
    let mut errors = Vec::new();
    // Holdings unchanged across the whole production and consumption.
    for (m, e) in members.iter().zip(&expected) {
        let h = m.holding(owner, &topic)?;
        if &h != e {
            errors.push(format!(
                "{} {} changed its holding to {} (AVG: {})",
                m.kind.name(),
                m.cid,
                ids(&h),
                ids(e)
            ));
        }
    }
    let deliveries = deliveries.lock().unwrap().clone();
    let mut per_member: Vec<BTreeSet<i32>> = vec![BTreeSet::new(); members.len()];
    let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
    let mut wrong_member = 0u32;
    for (index, qid, key) in &deliveries {
        let Some(&sent_qid) = sent.get(key) else {
            errors.push(format!("unexpected message key {key:?} on queue {qid}"));
            continue;
        };
        if *qid != sent_qid {
            errors.push(format!(
                "{key} sent to queue {sent_qid}, delivered from {qid}"
            ));
        }
        per_member[*index].insert(*qid);
        *counts.entry(key.as_str()).or_default() += 1;
        if !expected[*index].contains(qid) {
            wrong_member += 1;
            if wrong_member <= 10 {
                errors.push(format!(
                    "{key} (queue {qid}) consumed by {} {}, which does not own it",
                    members[*index].kind.name(),
                    members[*index].cid
                ));
            }
        }
    }
    let duplicates: u32 = counts.values().map(|c| c - 1).sum();
    let missing = sent
        .keys()
        .filter(|k| !counts.contains_key(k.as_str()))
        .count();
    if missing > 0 {
        errors.push(format!("{missing} messages lost"));
    }
    if wrong_member > 0 {
        errors.push(format!(
            "{wrong_member} deliveries to a member not owning the queue"
        ));
    }
    for ((m, e), saw) in members.iter().zip(&expected).zip(&per_member) {
        eprintln!(
            "[{name}]   {:<22} {:<40} consumed from queues {}",
            m.kind.name(),
            m.cid,
            ids(saw)
        );
        if saw != e {
            errors.push(format!(
                "{} {} consumed from queues {}, owns {}",
                m.kind.name(),
                m.cid,
                ids(saw),
                ids(e)
            ));
        }
    }
    eprintln!(
        "[{name}] consumed {} deliveries ({} distinct of {} sent, duplicates {duplicates}, \
         wrong member {wrong_member}); list {listed_at:?}, converged {converged_at:?}, \
         produced {produced_at:?}, all consumed {consumed_at:?}",
        deliveries.len(),
        counts.len(),
        sent.len()
    );
    if errors.is_empty() {
        Ok(())
    } else {
        errors.truncate(30);
        Err(errors.join("\n"))
    }
}
