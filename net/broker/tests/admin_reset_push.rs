//! INVOKE_BROKER_TO_RESET_OFFSET with a ringmq push consumer online: the broker commits
//! the new offsets and tells the member (RESET_CONSUMER_CLIENT_OFFSET); the member drops
//! its queues without committing their old offsets and consumes again from the reset
//! point, so a reset to the beginning delivers everything a second time.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringmq_client::push::{
    ConsumeFromWhere, ConsumeStatus, Listener, PushConsumer, PushConsumerOptions,
};
use ringmq_client::{fetch_route, Connection, Message, MessageQueue, Producer, ReceivedMessage};
use ringmq_remoting::codes::request_code as rq;
use ringmq_remoting::command::RemotingCommand;

const TOPIC: &str = "ResetTopic";
const GROUP: &str = "reset_group";
const N: usize = 40;

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn admin_reset_offset_reaches_an_online_push_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start(dir.path());
    let addr = broker.addr.clone();
    common::create_topic(&addr, TOPIC, 2);
    let conn = Connection::connect(&addr).unwrap();
    let broker_name = fetch_route(&conn, TOPIC).unwrap().broker_datas[0]
        .broker_name
        .clone();
    let p = Producer::connect(&addr, "reset_pg").unwrap();
    for i in 0..N {
        let mq = MessageQueue::new(TOPIC, &broker_name, (i % 2) as i32);
        p.send_to(&mq, Message::new(i.to_string())).unwrap();
    }

    let seen = Arc::new(AtomicUsize::new(0));
    let mut o = PushConsumerOptions::new(&addr, GROUP);
    o.client_id = "reset-c1".into();
    o.consume_from = ConsumeFromWhere::FirstOffset;
    o.persist_interval = Duration::from_millis(200);
    let counter = seen.clone();
    let consumer = PushConsumer::new(o)
        .subscribe(TOPIC, "*")
        .start(Listener::concurrently(move |msgs: &[ReceivedMessage]| {
            counter.fetch_add(msgs.len(), Ordering::SeqCst);
            ConsumeStatus::Success
        }))
        .unwrap();
    let b = broker.server.as_ref().unwrap().broker().clone();
    let committed = |q: i32| b.consumer_offsets.query(GROUP, TOPIC, q).unwrap_or(-1);
    wait_until("everything consumed and committed", || {
        seen.load(Ordering::SeqCst) >= N
            && committed(0) == (N / 2) as i64
            && committed(1) == (N / 2) as i64
    });

    let r = conn
        .request(
            RemotingCommand::request(rq::INVOKE_BROKER_TO_RESET_OFFSET)
                .with_ext("topic", TOPIC)
                .with_ext("group", GROUP)
                .with_ext("timestamp", 0)
                .with_ext("isForce", true),
            Duration::from_secs(5),
        )
        .unwrap();
    assert_eq!(r.code, 0, "{:?}", r.remark);
    wait_until("everything consumed a second time", || {
        seen.load(Ordering::SeqCst) >= 2 * N
    });
    // The periodic commit did not put the old offsets back: progress ends where it did.
    wait_until("offsets back at the end", || {
        committed(0) == (N / 2) as i64 && committed(1) == (N / 2) as i64
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        seen.load(Ordering::SeqCst),
        2 * N,
        "no more than one extra round"
    );
    consumer.shutdown();
}
