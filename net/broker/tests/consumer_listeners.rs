//! The push consumer's listeners against a real broker (127.0.0.1):
//! - orderly: per-queue order holds across rebalances (members join and leave while a
//!   producer runs), with no message lost or consumed twice, and a queue that moves
//!   is picked up by its new owner long before the 20 s periodic rebalance;
//! - concurrent with failures: a failing message comes back through `%RETRY%<group>` after
//!   each delay level with a growing reconsume count, then lands in `%DLQ%<group>`;
//! - delayed sends arrive no earlier than their level's delay;
//! - broadcasting: every member gets every message and resumes from its local offsets.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringmq_client::push::{
    ConsumeFromWhere, ConsumeStatus, Listener, MessageModel, OrderlyStatus, PushConsumer,
    PushConsumerOptions,
};
use ringmq_client::{
    fetch_route, Connection, Message, MessageQueue, Producer, PullConsumer, PullStatus,
    ReceivedMessage,
};

fn options(addr: &str, group: &str, id: &str) -> PushConsumerOptions {
    let mut o = PushConsumerOptions::new(addr, group);
    o.client_id = id.into();
    o.consume_from = ConsumeFromWhere::FirstOffset;
    o.suspend = Duration::from_secs(2);
    o
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn orderly_consumption_keeps_queue_order_across_rebalances() {
    const TOPIC: &str = "OrderTopic";
    const GROUP: &str = "orderly_group";
    const QUEUES: i32 = 4;
    const PER_QUEUE: usize = 250;
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start(dir.path());
    let addr = broker.addr.clone();
    common::create_topic(&addr, TOPIC, QUEUES);
    let broker_name = fetch_route(&Connection::connect(&addr).unwrap(), TOPIC)
        .unwrap()
        .broker_datas[0]
        .broker_name
        .clone();

    // Sequence numbers per queue, sent in order, paced so consumption overlaps rebalances.
    let producer = {
        let (addr, broker_name) = (addr.clone(), broker_name.clone());
        std::thread::spawn(move || {
            let p = Producer::connect(&addr, "orderly_producer").unwrap();
            for seq in 0..PER_QUEUE {
                for q in 0..QUEUES {
                    let mq = MessageQueue::new(TOPIC, &broker_name, q);
                    p.send_to(&mq, Message::new(seq.to_string())).unwrap();
                }
                std::thread::sleep(Duration::from_millis(4));
            }
        })
    };

    // (queue, seq, member) in the order the listeners ran.
    let log: Arc<Mutex<Vec<(i32, usize, String)>>> = Arc::default();
    let first_at: Arc<Mutex<BTreeMap<String, Instant>>> = Arc::default();
    let start = |id: &str| {
        let (log, first_at, me) = (log.clone(), first_at.clone(), id.to_owned());
        PushConsumer::new(options(&addr, GROUP, id))
            .subscribe(TOPIC, "*")
            .start(Listener::orderly(move |msgs: &[ReceivedMessage]| {
                first_at
                    .lock()
                    .unwrap()
                    .entry(me.clone())
                    .or_insert_with(Instant::now);
                for m in msgs {
                    let seq = std::str::from_utf8(&m.body).unwrap().parse().unwrap();
                    log.lock().unwrap().push((m.queue_id, seq, me.clone()));
                }
                std::thread::sleep(Duration::from_millis(1));
                OrderlyStatus::Success
            }))
            .unwrap()
    };
    let c1 = start("c1");
    std::thread::sleep(Duration::from_millis(300));
    let c2_joined = Instant::now();
    let c2 = start("c2");
    std::thread::sleep(Duration::from_millis(400));
    let c3 = start("c3");
    std::thread::sleep(Duration::from_millis(400));
    c2.shutdown();
    producer.join().unwrap();
    wait_until("every message consumed", Duration::from_secs(30), || {
        log.lock().unwrap().len() >= PER_QUEUE * QUEUES as usize
    });
    std::thread::sleep(Duration::from_millis(300));
    c1.shutdown();
    c3.shutdown();

    let log = log.lock().unwrap();
    let mut movers = 0;
    for q in 0..QUEUES {
        let seqs: Vec<usize> = log.iter().filter(|e| e.0 == q).map(|e| e.1).collect();
        let owners: Vec<&str> = {
            let mut v: Vec<&str> = Vec::new();
            for e in log.iter().filter(|e| e.0 == q) {
                if v.last() != Some(&e.2.as_str()) {
                    v.push(&e.2);
                }
            }
            v
        };
        println!(
            "queue {q}: {} messages, owners in turn {owners:?}",
            seqs.len()
        );
        movers += usize::from(owners.len() > 1);
        assert_eq!(
            seqs,
            (0..PER_QUEUE).collect::<Vec<_>>(),
            "queue {q}: consumed out of order, twice or not at all"
        );
    }
    assert!(
        movers > 0,
        "no queue changed owner: the test proved nothing"
    );
    let c2_first = first_at.lock().unwrap().get("c2").copied();
    let c2_first = c2_first.expect("c2 consumed something");
    println!(
        "c2 consumed its first message {} ms after joining",
        (c2_first - c2_joined).as_millis()
    );
    assert!(c2_first - c2_joined < Duration::from_secs(3));
}

#[test]
fn failing_messages_retry_with_growing_delay_then_reach_the_dlq() {
    const TOPIC: &str = "RetryTopic";
    const GROUP: &str = "retry_group";
    let dir = tempfile::tempdir().unwrap();
    // Short levels: the retries use levels 3, 4, 5 (3 + reconsume times).
    let cfg = common::config_with_delay_levels(dir.path(), "1s 1s 1s 1s 2s 1s 1s");
    let broker = common::start_with(cfg);
    let addr = broker.addr.clone();
    common::create_topic(&addr, TOPIC, 2);

    // (reconsume times, topic, when) of every attempt at the failing message.
    let attempts: Arc<Mutex<Vec<(i32, String, Instant)>>> = Arc::default();
    let good = Arc::new(AtomicBool::new(false));
    let mut o = options(&addr, GROUP, "retrier");
    o.max_reconsume_times = Some(3);
    let consumer = {
        let (attempts, good) = (attempts.clone(), good.clone());
        PushConsumer::new(o)
            .subscribe(TOPIC, "*")
            .start(Listener::concurrently(move |msgs: &[ReceivedMessage]| {
                let mut status = ConsumeStatus::Success;
                for m in msgs {
                    if m.keys.as_deref() == Some("bad") {
                        attempts.lock().unwrap().push((
                            m.reconsume_times,
                            m.topic.clone(),
                            Instant::now(),
                        ));
                        status = ConsumeStatus::ReconsumeLater;
                    } else {
                        good.store(true, Ordering::Release);
                    }
                }
                status
            }))
            .unwrap()
    };
    let p = Producer::connect(&addr, "retry_producer").unwrap();
    p.send(TOPIC, Message::new("fine").with_keys("good"))
        .unwrap();
    p.send(TOPIC, Message::new("poison").with_keys("bad"))
        .unwrap();
    wait_until("4 attempts", Duration::from_secs(30), || {
        attempts.lock().unwrap().len() >= 4
    });
    assert!(good.load(Ordering::Acquire));

    // The DLQ holds it once the fourth attempt failed.
    let dlq = MessageQueue::new(format!("%DLQ%{GROUP}"), "", 0);
    let puller = PullConsumer::connect(&addr, "dlq_reader").unwrap();
    let mut found = None;
    wait_until("the DLQ copy", Duration::from_secs(10), || {
        if let Ok(r) = puller.pull(&dlq, 0, 32, None) {
            if r.status == PullStatus::Found {
                found = r
                    .messages
                    .into_iter()
                    .find(|m| m.keys.as_deref() == Some("bad"));
            }
        }
        found.is_some()
    });
    consumer.shutdown();

    let attempts = attempts.lock().unwrap().clone();
    let times: Vec<i32> = attempts.iter().map(|a| a.0).collect();
    println!("attempts (reconsume times): {times:?}");
    assert_eq!(times, [0, 1, 2, 3], "one attempt per delivery, counting up");
    assert!(
        attempts.iter().all(|a| a.1 == TOPIC),
        "retries carry the original topic"
    );
    // Levels 3, 4, 5 = 1 s, 1 s, 2 s.
    for (i, want) in [1000u128, 1000, 2000].iter().enumerate() {
        let gap = (attempts[i + 1].2 - attempts[i].2).as_millis();
        println!("retry {} came {gap} ms after attempt {i}", i + 1);
        assert!(
            gap + 50 >= *want,
            "retry {} after {gap} ms, level delay {want} ms",
            i + 1
        );
    }
    let dlq_msg = found.unwrap();
    assert_eq!(&dlq_msg.body[..], b"poison");
    assert_eq!(dlq_msg.property("RETRY_TOPIC"), Some(TOPIC));
    assert_eq!(dlq_msg.reconsume_times, 4);
}

#[test]
fn delayed_sends_arrive_after_their_level() {
    const TOPIC: &str = "DelayTopic";
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start_with(common::config_with_delay_levels(dir.path(), "1s 2s 3s"));
    let addr = broker.addr.clone();
    common::create_topic(&addr, TOPIC, 2);
    let got: Arc<Mutex<Vec<(String, i64, Instant)>>> = Arc::default();
    let consumer = {
        let got = got.clone();
        PushConsumer::new(options(&addr, "delay_group", "d1"))
            .subscribe(TOPIC, "*")
            .start(Listener::concurrently(move |msgs: &[ReceivedMessage]| {
                for m in msgs {
                    let key = m.keys.clone().unwrap_or_default();
                    got.lock().unwrap().push((
                        key,
                        m.store_timestamp - m.born_timestamp,
                        Instant::now(),
                    ));
                }
                ConsumeStatus::Success
            }))
            .unwrap()
    };
    let p = Producer::connect(&addr, "delay_producer").unwrap();
    let sent = Instant::now();
    p.send(
        TOPIC,
        Message::new("later")
            .with_keys("level2")
            .with_delay_level(2),
    )
    .unwrap();
    p.send(TOPIC, Message::new("now").with_keys("plain"))
        .unwrap();
    wait_until("both messages", Duration::from_secs(20), || {
        got.lock().unwrap().len() >= 2
    });
    consumer.shutdown();
    let got = got.lock().unwrap();
    let plain = got.iter().find(|g| g.0 == "plain").unwrap();
    let delayed = got.iter().find(|g| g.0 == "level2").unwrap();
    println!(
        "plain after {} ms, level 2 (2 s) after {} ms; stored {} ms after born",
        (plain.2 - sent).as_millis(),
        (delayed.2 - sent).as_millis(),
        delayed.1
    );
    assert!(
        delayed.1 >= 2000,
        "stored {} ms after it was born",
        delayed.1
    );
    assert!(delayed.2 - sent >= Duration::from_millis(1990));
    assert!(plain.2 < delayed.2);
}

#[test]
fn broadcasting_gives_every_member_everything_and_resumes_locally() {
    const TOPIC: &str = "BroadcastTopic";
    const GROUP: &str = "broadcast_group";
    let dir = tempfile::tempdir().unwrap();
    let offsets_dir = tempfile::tempdir().unwrap();
    let broker = common::start(dir.path());
    let addr = broker.addr.clone();
    common::create_topic(&addr, TOPIC, 4);
    type Seen = Arc<Mutex<Vec<String>>>;
    let start = |id: &str, seen: &Seen| {
        let mut o = options(&addr, GROUP, id);
        o.message_model = MessageModel::Broadcasting;
        o.local_offset_dir = offsets_dir.path().to_path_buf();
        let seen = seen.clone();
        PushConsumer::new(o)
            .subscribe(TOPIC, "*")
            .start(Listener::concurrently(move |msgs: &[ReceivedMessage]| {
                let mut s = seen.lock().unwrap();
                s.extend(msgs.iter().map(|m| m.keys.clone().unwrap_or_default()));
                ConsumeStatus::Success
            }))
            .unwrap()
    };
    let (a_seen, b_seen): (Seen, Seen) = Default::default();
    let a = start("a", &a_seen);
    let b = start("b", &b_seen);
    assert_eq!(
        a.assigned().len(),
        4,
        "a broadcasting member holds every queue"
    );
    assert_eq!(b.assigned().len(), 4);
    let p = Producer::connect(&addr, "broadcast_producer").unwrap();
    let send = |range: std::ops::Range<u32>| {
        for i in range {
            p.send(TOPIC, Message::new("x").with_keys(format!("m{i}")))
                .unwrap();
        }
    };
    send(0..100);
    let all =
        |seen: &Seen, n: usize| seen.lock().unwrap().iter().collect::<HashSet<_>>().len() >= n;
    wait_until("both got the first 100", Duration::from_secs(20), || {
        all(&a_seen, 100) && all(&b_seen, 100)
    });
    // b stops (writing its local offsets), misses nothing while away, and resumes.
    b.shutdown();
    drop(b);
    send(100..150);
    let b_again_seen: Seen = Seen::default();
    let b_again = start("b", &b_again_seen);
    wait_until("b caught up", Duration::from_secs(20), || {
        all(&b_again_seen, 50)
    });
    wait_until("a got all", Duration::from_secs(20), || all(&a_seen, 150));
    std::thread::sleep(Duration::from_millis(300));
    a.shutdown();
    b_again.shutdown();
    let again: HashSet<String> = b_again_seen.lock().unwrap().iter().cloned().collect();
    let want: HashSet<String> = (100..150).map(|i| format!("m{i}")).collect();
    assert_eq!(
        again, want,
        "b resumed from its local offsets: only what it missed"
    );
}
