//! Offsets and messages persist across a clean broker restart.

mod common;

use ringmq_client::{Message, MessageQueue, Producer, PullConsumer, PullStatus};

#[test]
fn offsets_and_messages_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mq = MessageQueue::new("Durable", "broker-a", 0);
    {
        let mut broker = common::start(dir.path());
        let p = Producer::connect(&broker.addr, "pg").unwrap();
        for n in 0..30 {
            p.send_to(&mq, Message::new(format!("d{n}"))).unwrap();
        }
        let c = PullConsumer::connect(&broker.addr, "cg").unwrap();
        // A consumer group exists once it heartbeats or pulls (RocketMQ's rule).
        c.pull(&mq, 0, 1, None).unwrap();
        c.update_offset("cg", &mq, 12).unwrap();
        broker.stop();
    }
    let broker = common::start(dir.path());
    let c = PullConsumer::connect(&broker.addr, "cg").unwrap();
    assert_eq!(c.query_offset("cg", &mq).unwrap(), Some(12));
    assert_eq!(c.max_offset(&mq).unwrap(), 30);
    let r = c.pull(&mq, 12, 32, None).unwrap();
    assert_eq!(r.status, PullStatus::Found);
    assert_eq!(&r.messages[0].body[..], b"d12");
    // New sends continue the queue.
    let p = Producer::connect(&broker.addr, "pg").unwrap();
    assert_eq!(
        p.send_to(&mq, Message::new("d30")).unwrap().queue_offset,
        30
    );
}
