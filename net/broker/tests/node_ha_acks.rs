//! SYNC_MASTER acks bounded by truth, through real broker nodes on 127.0.0.1 (issue 13,
//! item 1): a raw client's one fake report of 2^62 releases nothing once the real slave
//! is frozen (FLUSH_SLAVE_TIMEOUT, not SEND_OK); with inSyncReplicas=3 and two slaves a
//! send is answered only once both hold it, and one frozen slave makes it time out.

mod ha_common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ha_common::*;
use ringmq_broker::{BrokerRole, Node};
use ringmq_client::{Message, MessageQueue, Producer, SendStatus};

#[test]
fn a_fake_report_of_2_pow_62_cannot_answer_sends() {
    let dir = tempfile::tempdir().unwrap();
    let master = Node::start(config(&dir.path().join("m"), BrokerRole::SyncMaster, 2)).unwrap();
    let ha = master.ha_addr().unwrap();
    let proxy = Proxy::start(ha);
    let slave = slave_of(&dir.path().join("s"), &master, proxy.addr);
    let table = master.master().unwrap().slaves().clone();
    wait_in_sync(&master, 1);
    let p = Producer::connect(&master.addr().to_string(), "pg").unwrap();
    let mq = MessageQueue::new("Attack", "broker-a", 0);
    let r = p.send_to(&mq, Message::new("before")).unwrap();
    assert_eq!(r.status, SendStatus::SendOk);

    // The attack: one report of 2^62, then gone.
    let mut fake = TcpStream::connect(ha).unwrap();
    fake.write_all(&(1i64 << 62).to_be_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    drop(fake);
    wait_until("fake gone", Duration::from_secs(5), || {
        table.connected_slaves() == 1
    });

    // The real slave freezes: every send must time out.
    proxy.freeze(true);
    for n in 0..3 {
        let started = Instant::now();
        let r = p.send_to(&mq, Message::new(format!("m{n}"))).unwrap();
        assert_eq!(
            r.status,
            SendStatus::FlushSlaveTimeout,
            "send {n} after {:?}",
            started.elapsed()
        );
        assert!(started.elapsed() >= Duration::from_millis(700));
    }
    proxy.freeze(false);
    let r = p.send_to(&mq, Message::new("after")).unwrap();
    assert_eq!(r.status, SendStatus::SendOk);
    slave.shutdown().unwrap();
    master.shutdown().unwrap();
}

#[test]
fn in_sync_replicas_3_waits_for_both_slaves() {
    let dir = tempfile::tempdir().unwrap();
    let master = Node::start(config(&dir.path().join("m"), BrokerRole::SyncMaster, 3)).unwrap();
    let ha = master.ha_addr().unwrap();
    let proxies = [Proxy::start(ha), Proxy::start(ha)];
    let slaves = [
        slave_of(&dir.path().join("s1"), &master, proxies[0].addr),
        slave_of(&dir.path().join("s2"), &master, proxies[1].addr),
    ];
    wait_in_sync(&master, 2);
    let p = Producer::connect(&master.addr().to_string(), "pg").unwrap();
    let mq = MessageQueue::new("Isr3", "broker-a", 0);
    for n in 0..20 {
        let r = p.send_to(&mq, Message::new(format!("m{n}"))).unwrap();
        assert_eq!(r.status, SendStatus::SendOk);
        let end = master.broker().store.commitlog().max_offset();
        for (i, s) in slaves.iter().enumerate() {
            assert!(
                s.broker().store.commitlog().max_offset() >= end,
                "send {n} answered before slave {i} held it"
            );
        }
    }
    // One slave frozen: the other alone is not enough.
    proxies[1].freeze(true);
    let started = Instant::now();
    let r = p.send_to(&mq, Message::new("frozen")).unwrap();
    assert_eq!(r.status, SendStatus::FlushSlaveTimeout);
    assert!(started.elapsed() >= Duration::from_millis(700));
    proxies[1].freeze(false);
    let r = p.send_to(&mq, Message::new("thawed")).unwrap();
    assert_eq!(r.status, SendStatus::SendOk);
    for s in slaves {
        s.shutdown().unwrap();
    }
    master.shutdown().unwrap();
}
