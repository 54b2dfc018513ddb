//! Long polling: a pull at the queue's end is held until a message arrives (and then
//! answered at once), or until its suspend time passes.

mod common;

use std::time::{Duration, Instant};

use ringmq_client::{Message, MessageQueue, Producer, PullConsumer, PullStatus};

#[test]
fn held_pull_wakes_on_arrival_and_times_out_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start(dir.path());
    let p = Producer::connect(&broker.addr, "pg").unwrap();
    let mq = MessageQueue::new("Poll", "broker-a", 0);
    p.send_to(&mq, Message::new("first")).unwrap();
    let c = PullConsumer::connect(&broker.addr, "cg").unwrap();
    assert_eq!(
        c.pull(&mq, 0, 32, Some(Duration::from_secs(5)))
            .unwrap()
            .messages
            .len(),
        1
    );

    // Nothing arrives: answered after about the suspend time.
    let started = Instant::now();
    let r = c
        .pull(&mq, 1, 32, Some(Duration::from_millis(600)))
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(r.status, PullStatus::NoNewMessage);
    assert!(
        waited >= Duration::from_millis(550) && waited < Duration::from_secs(3),
        "held {waited:?}"
    );

    // A message arrives while the pull is held: answered right away.
    let addr = broker.addr.clone();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let p = Producer::connect(&addr, "pg2").unwrap();
        p.send_to(
            &MessageQueue::new("Poll", "broker-a", 0),
            Message::new("second"),
        )
        .unwrap();
        Instant::now()
    });
    let started = Instant::now();
    let r = c.pull(&mq, 1, 32, Some(Duration::from_secs(10))).unwrap();
    let answered = Instant::now();
    let sent_at = sender.join().unwrap();
    assert_eq!(r.status, PullStatus::Found);
    assert_eq!(&r.messages[0].body[..], b"second");
    assert!(
        answered.duration_since(started) < Duration::from_secs(5),
        "not held to the timeout"
    );
    assert!(
        answered.saturating_duration_since(sent_at) < Duration::from_millis(500),
        "woken by the arrival"
    );
}
