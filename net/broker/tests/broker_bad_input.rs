//! Bad input gets its defined treatment and hurts no other connection: an unknown code is
//! answered REQUEST_CODE_NOT_SUPPORTED, an oversized frame and garbage bytes close their
//! own connection, a send to a slave is refused with a clear code.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use ringmq_client::{ClientError, Connection, Message, MessageQueue, Producer};
use ringmq_remoting::codes::response_code;
use ringmq_remoting::RemotingCommand;

fn closed_by_peer(mut s: TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 64];
    matches!(s.read(&mut buf), Ok(0) | Err(_))
}

#[test]
fn bad_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start(dir.path());
    let healthy = Producer::connect(&broker.addr, "pg").unwrap();
    let mq = MessageQueue::new("Healthy", "broker-a", 0);
    healthy.send_to(&mq, Message::new("before")).unwrap();

    // Unknown request code: an error response, the connection stays usable.
    let conn = Connection::connect(&broker.addr).unwrap();
    let resp = conn
        .request(RemotingCommand::request(9999), Duration::from_secs(5))
        .unwrap();
    assert_eq!(resp.code, response_code::REQUEST_CODE_NOT_SUPPORTED);
    assert!(resp.remark.unwrap_or_default().contains("9999"));
    let resp = conn
        .request(RemotingCommand::request(9998), Duration::from_secs(5))
        .unwrap();
    assert_eq!(resp.code, response_code::REQUEST_CODE_NOT_SUPPORTED);

    // A frame claiming 1 GiB: closed before anything is allocated.
    let mut s = TcpStream::connect(&broker.addr).unwrap();
    s.write_all(&(1u32 << 30).to_be_bytes()).unwrap();
    s.write_all(&[0u8; 4]).unwrap();
    assert!(closed_by_peer(s), "oversized frame closes the connection");

    // Garbage: a header length beyond the frame.
    let mut s = TcpStream::connect(&broker.addr).unwrap();
    s.write_all(&[0, 0, 0, 12, 0, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4, 5, 6, 7, 8])
        .unwrap();
    assert!(closed_by_peer(s), "garbage closes the connection");

    // A missing required header field: an error naming it.
    let mut req = RemotingCommand::request(ringmq_remoting::codes::request_code::GET_MAX_OFFSET);
    req.set_ext("topic", "Healthy");
    let resp = conn.request(req, Duration::from_secs(5)).unwrap();
    assert_eq!(resp.code, response_code::SYSTEM_ERROR);
    assert!(resp.remark.unwrap_or_default().contains("queueId"));

    // The other connections kept working throughout.
    let r = healthy.send_to(&mq, Message::new("after")).unwrap();
    assert_eq!(r.queue_offset, 1);
}

#[test]
fn a_slave_refuses_sends() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.broker_role = ringmq_broker::BrokerRole::Slave;
    cfg.broker_id = 1;
    let broker = common::start_with(cfg);
    let p = Producer::connect(&broker.addr, "pg").unwrap();
    let err = p
        .send_to(&MessageQueue::new("T", "broker-a", 0), Message::new("x"))
        .unwrap_err();
    match err {
        ClientError::Broker { code, remark } => {
            assert_eq!(code, response_code::SERVICE_NOT_AVAILABLE);
            assert!(remark.contains("SLAVE"), "{remark}");
        }
        other => panic!("unexpected {other}"),
    }
}
