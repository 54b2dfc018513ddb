//! The wedge of issue 11 against a `ringmq broker` process, as an operator meets it:
//! UPDATE_AND_CREATE_TOPIC with writeQueueNums=2147483647, then SEND_MESSAGE with
//! queueId=70000. Both are refused naming the field, the broker keeps serving, SIGTERM
//! stops it cleanly within 5 s, and the restarted broker opens its store and serves what
//! was acknowledged. (broker_hostile_wedge.rs checks the same in process, without signals.)

mod common_ha;

use std::time::{Duration, Instant};

use common_ha::*;
use ringmq_client::{Connection, PullConsumer, PullStatus};
use ringmq_remoting::codes::{request_code as rq, response_code as rs};
use ringmq_remoting::RemotingCommand;

const T: Duration = Duration::from_secs(5);

fn create_topic(conn: &Connection, topic: &str, write_queues: &str) -> RemotingCommand {
    let mut req = RemotingCommand::request(rq::UPDATE_AND_CREATE_TOPIC);
    for (k, v) in [
        ("topic", topic),
        ("defaultTopic", "TBW102"),
        ("readQueueNums", "4"),
        ("writeQueueNums", write_queues),
        ("perm", "6"),
        ("topicFilterType", "SINGLE_TAG"),
        ("topicSysFlag", "0"),
        ("order", "false"),
    ] {
        req.set_ext(k, v);
    }
    conn.request(req, T).unwrap()
}

fn send(conn: &Connection, topic: &str, queue_id: i32) -> RemotingCommand {
    let mut req = RemotingCommand::request(rq::SEND_MESSAGE);
    req.set_ext("producerGroup", "PG");
    req.set_ext("topic", topic);
    req.set_ext("defaultTopic", "TBW102");
    req.set_ext("defaultTopicQueueNums", 4);
    req.set_ext("queueId", queue_id);
    req.set_ext("sysFlag", 0);
    req.set_ext("bornTimestamp", 1);
    req.set_ext("flag", 0);
    req.set_ext("reconsumeTimes", 0);
    conn.request(req.with_body(b"kept".to_vec()), T).unwrap()
}

#[test]
fn the_wedge_is_refused_and_sigterm_stops_the_broker_within_5_s() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (dir, log) = (tmp.path().join("broker"), tmp.path().join("broker.log"));
    let mut broker = BrokerProc::master("broker", &dir, &log, "ASYNC_MASTER", (0, 0));
    let conn = Connection::connect(&broker.addr).unwrap();

    let r = create_topic(&conn, "Wedge", "2147483647");
    assert_eq!(r.code, rs::INVALID_PARAMETER);
    assert!(r.remark.unwrap().contains("writeQueueNums"));
    assert_eq!(create_topic(&conn, "Wedge", "4").code, rs::SUCCESS);
    let r = send(&conn, "Wedge", 70_000);
    assert_eq!(r.code, rs::INVALID_PARAMETER);
    assert!(r.remark.unwrap().contains("queueId"));

    // Still serving: the next valid send is acknowledged.
    assert_eq!(send(&conn, "Wedge", 1).code, rs::SUCCESS);
    drop(conn);

    let started = Instant::now();
    let status = broker.term();
    let took = started.elapsed();
    assert!(
        status.success(),
        "exit {status:?}; log:\n{}",
        log_tail(&log, 40)
    );
    assert!(took < T, "SIGTERM to exit took {took:?}");
    eprintln!("SIGTERM to exit: {took:?}");

    // The store reopens with what was acknowledged.
    let broker = BrokerProc::master("broker", &dir, &log, "ASYNC_MASTER", (0, 0));
    let c = PullConsumer::connect(&broker.addr, "cg").unwrap();
    let mq = mq("Wedge", 1);
    let deadline = Instant::now() + T;
    let r = loop {
        let r = c.pull(&mq, 0, 32, None).unwrap();
        if r.status == PullStatus::Found || Instant::now() >= deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(r.status, PullStatus::Found);
    assert_eq!(&r.messages[0].body[..], b"kept");
}
