//! ACL (`aclEnable=true`) through the project client and its signer: valid accounts send
//! and pull; a wrong secret, an unknown access key, an unsigned request, a PUB-only
//! account pulling and a non-admin account creating a topic are refused with
//! NO_PERMISSION (16) and a remark without the secret; white lists let unsigned requests
//! through; the accounts file is reloaded when it changes.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use ringmq_client::{
    create_topic, ClientError, ConnectOptions, Connection, Credentials, Message, MessageQueue,
    Producer, ProducerOptions, PullConsumer, PullOptions, PullStatus, SendStatus,
};
use ringmq_remoting::codes::response_code::NO_PERMISSION;
use ringmq_remoting::SerializeType;

const TOPIC: &str = "AclTopic";

const ACCOUNTS: &str = r#"
globalWhiteRemoteAddresses:
accounts:
  - accessKey: producer-ak
    secretKey: producer-secret-1
    defaultTopicPerm: PUB
    defaultGroupPerm: DENY
  - accessKey: consumer-ak
    secretKey: consumer-secret-1
    defaultTopicPerm: SUB
    defaultGroupPerm: SUB
  - accessKey: admin-ak
    secretKey: admin-secret-1
    admin: true
"#;

fn connect(creds: Option<Credentials>) -> ConnectOptions {
    ConnectOptions {
        credentials: creds,
        ..ConnectOptions::default()
    }
}

fn creds(ak: &str, sk: &str) -> Option<Credentials> {
    Some(Credentials::new(ak, sk))
}

fn start(dir: &Path, accounts: &str) -> common::TestBroker {
    let file = dir.join("plain_acl.yml");
    std::fs::write(&file, accounts).unwrap();
    let mut cfg = common::config(&dir.join("store"));
    cfg.acl_enable = true;
    cfg.plain_acl_file = file;
    common::start_with(cfg)
}

fn producer(addr: &str, c: Option<Credentials>) -> Producer {
    let opts = ProducerOptions {
        connect: connect(c),
        ..Default::default()
    };
    Producer::connect_with(addr, "acl-pg", opts).unwrap()
}

fn consumer(addr: &str, c: Option<Credentials>) -> PullConsumer {
    let opts = PullOptions {
        connect: connect(c),
        ..Default::default()
    };
    PullConsumer::connect_with(addr, "acl-cg", opts).unwrap()
}

fn send(addr: &str, c: Option<Credentials>) -> Result<i64, ClientError> {
    let mq = MessageQueue::new(TOPIC, "broker-a", 0);
    let r = producer(addr, c).send_to(&mq, Message::new("hello acl"))?;
    assert_eq!(r.status, SendStatus::SendOk);
    Ok(r.queue_offset)
}

fn pull(
    addr: &str,
    c: Option<Credentials>,
    offset: i64,
) -> Result<ringmq_client::PullResult, ClientError> {
    let mq = MessageQueue::new(TOPIC, "broker-a", 0);
    consumer(addr, c).pull(&mq, offset, 32, None)
}

/// A pull of a message just sent: the dispatcher indexes it a moment after the send's
/// answer, so `NoNewMessage` is retried for up to five seconds.
fn pull_sent(
    addr: &str,
    c: Option<Credentials>,
    offset: i64,
) -> Result<ringmq_client::PullResult, ClientError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let got = pull(addr, c.clone(), offset)?;
        if got.status == PullStatus::Found || std::time::Instant::now() > deadline {
            return Ok(got);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn create(addr: &str, c: Option<Credentials>, topic: &str) -> Result<(), ClientError> {
    let conn = Connection::connect_with(addr, connect(c)).unwrap();
    create_topic(&conn, topic, 2, SerializeType::Json, Duration::from_secs(3))
}

/// The refusal is NO_PERMISSION and its remark does not carry `secret`.
#[track_caller]
fn refused<T: std::fmt::Debug>(r: Result<T, ClientError>, secret: &str) {
    match r {
        Err(ClientError::Broker { code, remark }) => {
            assert_eq!(code, NO_PERMISSION, "remark: {remark}");
            assert!(
                !remark.contains(secret),
                "remark leaks the secret: {remark}"
            );
        }
        other => panic!("expected NO_PERMISSION, got {other:?}"),
    }
}

#[test]
fn signed_accounts_work_and_everything_else_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), ACCOUNTS);
    let addr = broker.addr.as_str();
    let admin = creds("admin-ak", "admin-secret-1");

    // Topic administration: admin only.
    refused(
        create(addr, creds("consumer-ak", "consumer-secret-1"), TOPIC),
        "consumer-secret-1",
    );
    refused(
        create(addr, creds("producer-ak", "producer-secret-1"), TOPIC),
        "producer-secret-1",
    );
    create(addr, admin.clone(), TOPIC).unwrap();

    // A valid producer and consumer.
    let offset = send(addr, creds("producer-ak", "producer-secret-1")).unwrap();
    let got = pull_sent(addr, creds("consumer-ak", "consumer-secret-1"), offset).unwrap();
    assert_eq!(got.status, PullStatus::Found);
    assert_eq!(&got.messages[0].body[..], b"hello acl");

    // Wrong secret, unknown access key, unsigned: sends (batched path) and pulls.
    refused(
        send(addr, creds("producer-ak", "not-the-secret")),
        "producer-secret-1",
    );
    refused(
        send(addr, creds("nobody-ak", "whatever-secret")),
        "whatever-secret",
    );
    refused(send(addr, None), "producer-secret-1");
    refused(
        pull(addr, creds("consumer-ak", "not-the-secret"), 0),
        "consumer-secret-1",
    );
    refused(
        pull(addr, creds("nobody-ak", "whatever-secret"), 0),
        "whatever-secret",
    );
    refused(pull(addr, None, 0), "consumer-secret-1");

    // PUB only: cannot consume, nor query or move offsets. SUB only: cannot send.
    refused(
        pull(addr, creds("producer-ak", "producer-secret-1"), 0),
        "producer-secret-1",
    );
    let pc = consumer(addr, creds("producer-ak", "producer-secret-1"));
    let mq = MessageQueue::new(TOPIC, "broker-a", 0);
    refused(pc.update_offset("acl-cg", &mq, 1), "producer-secret-1");
    refused(pc.query_offset("acl-cg", &mq), "producer-secret-1");
    refused(
        send(addr, creds("consumer-ak", "consumer-secret-1")),
        "consumer-secret-1",
    );
    let cc = consumer(addr, creds("consumer-ak", "consumer-secret-1"));
    cc.update_offset("acl-cg", &mq, 1).unwrap();
    assert_eq!(cc.query_offset("acl-cg", &mq).unwrap(), Some(1));

    // Nothing unsigned was stored: the queue holds the one valid message.
    let all = pull_sent(addr, admin, 0).unwrap();
    assert_eq!(all.messages.len(), 1);
}

#[test]
fn white_lists_let_unsigned_requests_through() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(
        dir.path(),
        r#"
globalWhiteRemoteAddresses: ["127.0.0.*"]
accounts:
  - accessKey: admin-ak
    secretKey: admin-secret-1
    admin: true
"#,
    );
    create(&broker.addr, None, TOPIC).unwrap();
    let offset = send(&broker.addr, None).unwrap();
    assert_eq!(
        pull_sent(&broker.addr, None, offset)
            .unwrap()
            .messages
            .len(),
        1
    );
    drop(broker);

    // An account's white address: its access key, no signature.
    let dir = tempfile::tempdir().unwrap();
    let broker = start(
        dir.path(),
        r#"
accounts:
  - accessKey: local-ak
    secretKey: local-secret-1
    whiteRemoteAddress: 127.0.0.1
    defaultTopicPerm: DENY
"#,
    );
    // A wrong secret does not matter from the white address (RocketMQ's rule).
    let offset = send(&broker.addr, creds("local-ak", "any-secret-at-all")).unwrap();
    assert_eq!(offset, 0);
    refused(send(&broker.addr, None), "local-secret-1");
}

#[test]
fn the_accounts_file_is_reloaded_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), ACCOUNTS);
    let addr = broker.addr.as_str();
    create(addr, creds("admin-ak", "admin-secret-1"), TOPIC).unwrap();
    send(addr, creds("producer-ak", "producer-secret-1")).unwrap();
    refused(
        send(addr, creds("late-ak", "late-secret-1")),
        "late-secret-1",
    );

    // The producer's secret changes and a new account appears.
    let changed = ACCOUNTS.replace("producer-secret-1", "producer-secret-2")
        + "  - accessKey: late-ak\n    secretKey: late-secret-1\n    defaultTopicPerm: PUB\n";
    std::fs::write(dir.path().join("plain_acl.yml"), changed).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while send(addr, creds("late-ak", "late-secret-1")).is_err() {
        assert!(
            Instant::now() < deadline,
            "the accounts file was not reloaded"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    refused(
        send(addr, creds("producer-ak", "producer-secret-1")),
        "producer-secret-1",
    );
    send(addr, creds("producer-ak", "producer-secret-2")).unwrap();

    // A broken file keeps the accounts in force.
    std::fs::write(dir.path().join("plain_acl.yml"), "accounts: [").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    send(addr, creds("late-ak", "late-secret-1")).unwrap();
}

#[test]
fn a_missing_accounts_file_stops_the_broker_from_starting() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(&dir.path().join("store"));
    cfg.acl_enable = true;
    cfg.plain_acl_file = dir.path().join("absent.yml");
    let err = ringmq_broker::Server::open(cfg)
        .err()
        .expect("refused to start");
    assert!(err.to_string().contains("absent.yml"), "{err}");
}
