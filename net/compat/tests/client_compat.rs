//! Compatibility: the unmodified crates.io client `rocketmq-client-rust = "=1.0.0"` (its
//! own producer and push consumer) against a ringmq broker started here on 127.0.0.1,
//! which it uses as both name server and broker. 10,000 messages with keys, tags and a
//! user property are sent (one test with single sends, SEND_MESSAGE; one with batches,
//! SEND_BATCH_MESSAGE) and a consumer group must receive every one intact.
//!
//! Known client quirk handled here: on 2 CPUs its push consumer's callback lane
//! (`RuntimeConfig.blocking_lane_policies.metadata_io.max_queue_depth`) holds only 16 and,
//! when full, sends messages back to `%RETRY%`; the test raises it to 4096.
//!
//! Flow: the producer sends the first half (auto-creating the topic via TBW102), the push
//! consumer (CONSUME_FROM_FIRST_OFFSET) starts and drains the backlog, the producer sends
//! the rest while the consumer long-polls, and the test waits until every key was seen.
//! Optional env: RINGMQ_COMPAT_MESSAGES (10000), RINGMQ_COMPAT_TIMEOUT_SECS (180).

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use cheetah_string::CheetahString;
use rocketmq_client_rust::ClientRuntime;
use rocketmq_client_rust::ConsumeConcurrentlyContext;
use rocketmq_client_rust::ConsumeConcurrentlyStatus;
use rocketmq_client_rust::DefaultMQProducer;
use rocketmq_client_rust::DefaultMQPushConsumer;
use rocketmq_client_rust::MQPushConsumer;
use rocketmq_client_rust::SendStatus;
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::common::message::MessageTrait;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

const CONSUMER_GROUP: &str = "compat_group";
const PRODUCER_GROUP: &str = "compat_producer_group";
const USER_PROP: &str = "compat_seq";

/// What the listener saw for one key.
#[derive(Clone, Debug)]
struct Seen {
    topic: String,
    body: Vec<u8>,
    tags: Option<String>,
    keys: Option<String>,
    user_prop: Option<String>,
    times: u32,
}

#[derive(Default)]
struct Received {
    by_seq: HashMap<u32, Seen>,
    duplicates: u64,
    unparseable: u64,
}

fn expected_body(seq: u32) -> Vec<u8> {
    format!(
        "ringmq-compat-body-{seq:06}-{}",
        "x".repeat((seq % 64) as usize)
    )
    .into_bytes()
}
fn expected_tag(seq: u32) -> String {
    format!("Tag{}", seq % 3)
}
fn expected_keys(seq: u32) -> String {
    // Two keys; the client joins them with a single space into property KEYS.
    format!("key-{seq} order-{}", seq / 10)
}

fn build_message(topic: &str, seq: u32) -> Result<Message, BoxError> {
    let msg = Message::builder()
        .topic(topic)
        .tags(expected_tag(seq))
        .keys(vec![format!("key-{seq}"), format!("order-{}", seq / 10)])
        .body_slice(&expected_body(seq))
        // user property: any name not reserved by the client (raw_property rejects system keys)
        .raw_property(USER_PROP, seq.to_string())?
        .build()?;
    Ok(msg)
}

#[test]
fn single_sends_reach_a_push_consumer_intact() {
    run_against_ringmq("compat_single", 0);
}

#[test]
fn batch_sends_reach_a_push_consumer_intact() {
    run_against_ringmq("compat_batch", 32);
}

fn run_against_ringmq(topic: &str, batch: u32) {
    let (_dir, server) = common::start_broker();
    let addr = server.local_addr().to_string();
    let total: u32 = common::env_or("RINGMQ_COMPAT_MESSAGES", 10_000);
    let timeout = Duration::from_secs(common::env_or("RINGMQ_COMPAT_TIMEOUT_SECS", 180));
    let topic = topic.to_string();

    let (owner, client_runtime) = common::build_client_runtime("compat-client");

    let result = owner.block_on(run(
        addr,
        topic,
        total,
        batch,
        timeout,
        Arc::clone(&client_runtime),
    ));
    let _ = owner.block_on(client_runtime.shutdown());
    drop(client_runtime);
    owner
        .shutdown_runtime_blocking()
        .expect("runtime shutdown outside async context");
    server.shutdown().expect("broker shuts down cleanly");
    if let Err(e) = result {
        panic!("compat run failed: {e}");
    }
}

async fn run(
    addr: String,
    topic: String,
    total: u32,
    batch: u32,
    timeout: Duration,
    client_runtime: Arc<ClientRuntime>,
) -> Result<(), BoxError> {
    let started = Instant::now();

    // ---- producer ------------------------------------------------------------------------
    let mut producer = DefaultMQProducer::builder(Arc::clone(&client_runtime))
        .producer_group(PRODUCER_GROUP)
        .name_server_addr(addr.clone())
        .send_msg_timeout(5_000)
        .build();
    producer.start().await?;

    let first_half = total / 2;
    send_range(&producer, &topic, 0..first_half, batch).await?;
    eprintln!("sent {first_half} messages in {:?}", started.elapsed());

    // ---- push consumer -------------------------------------------------------------------
    let received = Arc::new(Mutex::new(Received::default()));
    let received_in_listener = Arc::clone(&received);
    let notify = Arc::new(tokio::sync::Notify::new());
    let notify_in_listener = Arc::clone(&notify);

    let mut consumer = DefaultMQPushConsumer::builder(Arc::clone(&client_runtime))
        .consumer_group(CONSUMER_GROUP)
        .name_server_addr(addr.clone())
        // default is ConsumeFromLastOffset: on QUERY_CONSUMER_OFFSET -> QUERY_NOT_FOUND (22) it
        // would start at GET_MAX_OFFSET and skip the backlog sent above.
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .build();
    consumer.subscribe(topic.as_str(), "*").await?;
    consumer.register_message_listener_concurrently(
        move |msgs: &[&MessageExt], _ctx: &ConsumeConcurrentlyContext| {
            let mut guard = received_in_listener.lock().expect("listener mutex");
            for msg in msgs {
                let user_prop = msg
                    .property(&CheetahString::from_static_str(USER_PROP))
                    .map(|v| v.to_string());
                let Some(seq) = user_prop.as_deref().and_then(|v| v.parse::<u32>().ok()) else {
                    guard.unparseable += 1;
                    continue;
                };
                let seen = Seen {
                    topic: msg.topic().to_string(),
                    body: msg.body().map(|b| b.to_vec()).unwrap_or_default(),
                    tags: msg.get_tags().map(|t| t.to_string()),
                    keys: msg.get_keys().map(|k| k.to_string()),
                    user_prop,
                    times: 1,
                };
                match guard.by_seq.get_mut(&seq) {
                    Some(prev) => {
                        prev.times += 1;
                        guard.duplicates += 1;
                    }
                    None => {
                        guard.by_seq.insert(seq, seen);
                    }
                }
            }
            drop(guard);
            notify_in_listener.notify_one();
            Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
        },
    );
    consumer.start().await?;
    eprintln!("consumer started at {:?}", started.elapsed());

    send_range(&producer, &topic, first_half..total, batch).await?;
    eprintln!("sent all {total} messages at {:?}", started.elapsed());

    // ---- wait ----------------------------------------------------------------------------
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let got = received.lock().expect("mutex").by_seq.len() as u32;
        if got >= total {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        let _ = tokio::time::timeout(Duration::from_millis(500), notify.notified()).await;
    }
    // let late duplicates / offset persistence settle briefly
    tokio::time::sleep(Duration::from_millis(500)).await;

    consumer.shutdown().await;
    producer.shutdown().await;

    // ---- verify --------------------------------------------------------------------------
    let received = received.lock().expect("mutex");
    let mut errors = Vec::new();
    let mut missing = 0u32;
    for seq in 0..total {
        let Some(seen) = received.by_seq.get(&seq) else {
            missing += 1;
            continue;
        };
        if seen.topic != topic {
            errors.push(format!("seq {seq}: topic {:?} != {topic:?}", seen.topic));
        }
        if seen.body != expected_body(seq) {
            errors.push(format!(
                "seq {seq}: body mismatch ({} bytes)",
                seen.body.len()
            ));
        }
        if seen.tags.as_deref() != Some(expected_tag(seq).as_str()) {
            errors.push(format!("seq {seq}: tags {:?}", seen.tags));
        }
        if seen.keys.as_deref() != Some(expected_keys(seq).as_str()) {
            errors.push(format!("seq {seq}: keys {:?}", seen.keys));
        }
        if seen.user_prop.as_deref() != Some(seq.to_string().as_str()) {
            errors.push(format!("seq {seq}: user property {:?}", seen.user_prop));
        }
        let _ = seen.times;
    }
    eprintln!(
        "received {} distinct / {total}, duplicates {}, unparseable {}, missing {missing}, elapsed {:?}",
        received.by_seq.len(),
        received.duplicates,
        received.unparseable,
        started.elapsed()
    );
    if missing > 0 {
        errors.insert(0, format!("{missing} of {total} messages never arrived"));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        errors.truncate(20);
        Err(errors.join("\n").into())
    }
}

async fn send_range(
    producer: &DefaultMQProducer,
    topic: &str,
    range: std::ops::Range<u32>,
    batch: u32,
) -> Result<(), BoxError> {
    // batch > 1 sends with SEND_BATCH_MESSAGE (320) in chunks of `batch`; otherwise every
    // message alone with SEND_MESSAGE (10), synchronously.
    if batch > 1 {
        let seqs: Vec<u32> = range.collect();
        for chunk in seqs.chunks(batch as usize) {
            let msgs = chunk
                .iter()
                .map(|&seq| build_message(topic, seq))
                .collect::<Result<Vec<_>, _>>()?;
            let first = chunk[0];
            let result = producer
                .send_batch_with_timeout(msgs, 5_000)
                .await
                .map_err(|e| format!("batch send from seq {first} failed: {e}"))?;
            if result.send_status != SendStatus::SendOk {
                return Err(
                    format!("batch from seq {first}: status {:?}", result.send_status).into(),
                );
            }
        }
        return Ok(());
    }
    for seq in range {
        let msg = build_message(topic, seq)?;
        let result = producer
            .send_with_timeout(msg, 5_000)
            .await
            .map_err(|e| format!("send seq {seq} failed: {e}"))?
            .ok_or_else(|| format!("send seq {seq}: sync send returned no SendResult"))?;
        if result.send_status != SendStatus::SendOk {
            return Err(format!("send seq {seq}: status {:?}", result.send_status).into());
        }
    }
    Ok(())
}
