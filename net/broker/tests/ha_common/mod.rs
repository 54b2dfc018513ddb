//! Helpers of the node HA tests: broker configs for a master and its slaves on 127.0.0.1,
//! and a TCP proxy between a slave and its master that can be frozen (the slave then
//! neither receives nor acks: a frozen slave process, as with SIGSTOP).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringmq_broker::{BrokerConfig, BrokerRole, Node};
use ringmq_client::{Message, MessageQueue, Producer, SendStatus};

pub fn config(dir: &Path, role: BrokerRole, in_sync_replicas: u32) -> BrokerConfig {
    BrokerConfig {
        store_path_root_dir: dir.to_path_buf(),
        listen_port: 0,
        ha_listen_port: 0,
        pin_threads: false,
        broker_role: role,
        broker_id: if role == BrokerRole::Slave { 1 } else { 0 },
        in_sync_replicas,
        sync_flush_timeout: Duration::from_millis(800),
        mapped_file_size_commit_log: 16 << 20,
        tail_ring_bytes: 32 << 20,
        ..Default::default()
    }
}

/// The config of a slave of `master` that reaches its HA port at `ha_addr`.
pub fn slave_config(dir: &Path, master: &Node, ha_addr: SocketAddr) -> BrokerConfig {
    let mut cfg = config(dir, BrokerRole::Slave, 1);
    cfg.ha_master_address = Some(ha_addr.to_string());
    cfg.master_remoting_address = Some(master.addr().to_string());
    // Metadata sync soon and often, so tests need not wait a minute for it.
    cfg.slave_sync_initial_delay = Duration::from_millis(100);
    cfg.slave_sync_interval = Duration::from_millis(300);
    cfg
}

pub fn slave_of(dir: &Path, master: &Node, ha_addr: SocketAddr) -> Node {
    Node::start(slave_config(dir, master, ha_addr)).expect("slave starts")
}

/// A producer on `master` whose first send to `mq` (topic, route, first segment) was
/// answered SEND_OK.
pub fn warm_producer(master: &Node, mq: &MessageQueue) -> Producer {
    let p = Producer::connect(&master.addr().to_string(), "pg").unwrap();
    assert_eq!(
        p.send_to(mq, Message::new("warm")).unwrap().status,
        SendStatus::SendOk
    );
    p
}

pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the master counts `slaves` slaves in sync: each has connected and its
/// first offset report has reached the master. A slave publishes its own acked offset
/// before its report is on the wire, so the slave side alone says too little: a send in
/// that window is answered SLAVE_NOT_AVAILABLE.
pub fn wait_in_sync(master: &Node, slaves: usize) {
    let table = master.master().expect("a master").slaves().clone();
    wait_until("slaves in sync", Duration::from_secs(10), || {
        table.in_sync_slaves() >= slaves
    });
}

/// A TCP proxy that forwards both ways until frozen (bytes read meanwhile are held).
pub struct Proxy {
    pub addr: SocketAddr,
    pub frozen: Arc<AtomicBool>,
}

impl Proxy {
    pub fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let frozen = Arc::new(AtomicBool::new(false));
        let f = frozen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let frozen = f.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n @ 1..) = from.read(&mut buf) {
                            while frozen.load(Ordering::Acquire) {
                                std::thread::sleep(Duration::from_millis(5));
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Proxy { addr, frozen }
    }

    pub fn freeze(&self, frozen: bool) {
        self.frozen.store(frozen, Ordering::Release);
    }
}
