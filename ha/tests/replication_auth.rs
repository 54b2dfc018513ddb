//! The `haAuthToken` handshake end to end on 127.0.0.1: with the same token a slave
//! follows to a byte-identical log; a peer with a wrong token, or a raw client that
//! sends a fake offset report, is closed without ever entering the SlaveTable, releases
//! no ack waiter, and the master logs the refusal (naming the peer, never the token); a
//! token on one side only fails with an error that names the mismatch; a fake master
//! that does not hold the slave's token cannot stream to it nor make it truncate. The classic,
//! token-less protocol is covered by the other replication tests.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use ringmq_ha::auth::{encode_answer, master_proof, ACCEPTED, MAGIC, NONCE_SIZE};
use ringmq_ha::protocol::{encode_report, encode_transfer_header};
use ringmq_ha::{HaConfig, HaMaster, HaSlave, SlaveTable};

const TOKEN: &str = "s3cret-ha-token";
const WRONG: &str = "not-the-token";

static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures every test's log output (one process-wide subscriber).
fn capture_logs() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_writer(|| LogWriter)
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .try_init();
    });
}

/// Whether some log line contains every one of `needles`.
fn logged(needles: &[&str]) -> bool {
    let logs = String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned();
    logs.lines().any(|l| needles.iter().all(|n| l.contains(n)))
}

fn no_secret_logged() {
    let logs = String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned();
    assert!(
        !logs.contains(TOKEN) && !logs.contains(WRONG),
        "a token was logged"
    );
}

fn with_auth(token: Option<&str>, cluster: &str, broker: &str) -> HaConfig {
    HaConfig {
        auth_token: token.map(str::to_owned),
        cluster_name: Some(cluster.into()),
        broker_name: Some(broker.into()),
        ..fast_ha()
    }
}

/// Watches the table until dropped; `seen()` says whether any slave was ever registered.
struct Watch {
    stop: Arc<AtomicBool>,
    seen: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watch {
    fn new(table: Arc<SlaveTable>) -> Watch {
        let (stop, seen) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let thread = {
            let (stop, seen) = (stop.clone(), seen.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    if !table.slaves().is_empty() {
                        seen.store(true, Ordering::Release);
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        };
        Watch {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn seen(&mut self) -> bool {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.seen.load(Ordering::Acquire)
    }
}

/// Reads until EOF (or a reset); None if the peer keeps the connection past `within`.
fn read_to_close(s: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Some(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(got),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None
            }
            Err(e) => panic!("read: {e}"),
        }
    }
}

fn start_master(
    dir: &std::path::Path,
    cfg: HaConfig,
) -> (Arc<ringmq_engine::MessageStore>, HaMaster) {
    let master = open(&dir.join("master"));
    let ha = HaMaster::start(master.clone(), "127.0.0.1:0".parse().unwrap(), cfg).unwrap();
    (master, ha)
}

#[test]
fn a_slave_with_the_token_follows_to_an_identical_log() {
    capture_logs();
    let dir = tempdir();
    let (master, ha) = start_master(dir.path(), with_auth(Some(TOKEN), "C1", "broker-a"));
    produce(&master, 0..200);
    let slave_store = open(&dir.path().join("slave"));
    let slave = HaSlave::start(
        slave_store.clone(),
        ha.local_addr(),
        with_auth(Some(TOKEN), "C1", "broker-a"),
    );
    let end = produce(&master, 200..600);
    assert!(
        ha.slaves().wait_acked(end, Duration::from_secs(60)),
        "slave acked {} of {end}",
        ha.slaves().replicated_end()
    );
    assert!(wait_until(Duration::from_secs(5), || slave.acked_offset() == end));
    assert!(slave.is_connected());
    assert_eq!(ha.slaves().connected_slaves(), 1);
    assert_same_log(&master, &slave_store, end);
    assert!(logged(&["HA peer authenticated", "C1", "broker-a"]));
    no_secret_logged();

    slave.stop();
    ha.shutdown();
    slave_store.shutdown().unwrap();
    master.shutdown().unwrap();
}

#[test]
fn a_peer_with_a_wrong_token_is_refused_and_releases_no_waiter() {
    capture_logs();
    let dir = tempdir();
    let (master, ha) = start_master(dir.path(), with_auth(Some(TOKEN), "C1", "broker-a"));
    produce(&master, 0..50);
    let table = ha.slaves().clone();
    let mut watch = Watch::new(table.clone());
    let waiter = {
        let t = table.clone();
        std::thread::spawn(move || t.wait_acked(1, Duration::from_secs(3)))
    };

    // A hand-driven peer: answers the challenge under a wrong token, then reports a fake
    // offset far past the master's end.
    let mut fake = TcpStream::connect(ha.local_addr()).unwrap();
    let fake_addr = fake.local_addr().unwrap().to_string();
    fake.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut hello = [0u8; MAGIC.len() + NONCE_SIZE];
    fake.read_exact(&mut hello).unwrap();
    assert_eq!(hello[..MAGIC.len()], MAGIC);
    let nonce: [u8; NONCE_SIZE] = hello[MAGIC.len()..].try_into().unwrap();
    let mut answer = encode_answer(WRONG, &nonce, &[7u8; NONCE_SIZE], "C1", "broker-a").unwrap();
    answer.extend_from_slice(&encode_report(1 << 30));
    let _ = fake.write_all(&answer);
    assert_eq!(
        read_to_close(&mut fake, Duration::from_secs(10)),
        Some(Vec::new()),
        "refused without a verdict"
    );

    // A real slave with a wrong token.
    let slave_store = open(&dir.path().join("slave"));
    let slave = HaSlave::start(
        slave_store.clone(),
        ha.local_addr(),
        with_auth(Some(WRONG), "C1", "broker-a"),
    );
    let master_addr = ha.local_addr().to_string();
    assert!(wait_until(Duration::from_secs(10), || logged(&[
        "refused the HA auth handshake",
        &master_addr
    ])));

    assert!(!waiter.join().unwrap(), "a fake report released a waiter");
    assert_eq!(table.replicated_end(), -1);
    assert!(!slave.is_connected());
    assert_eq!(slave_store.commitlog().max_offset(), 0);
    assert!(!watch.seen(), "a refused peer was registered");
    assert!(logged(&[
        "HA peer refused",
        &fake_addr,
        "does not hold this master's haAuthToken"
    ]));
    no_secret_logged();

    slave.stop();
    ha.shutdown();
    slave_store.shutdown().unwrap();
    master.shutdown().unwrap();
}

#[test]
fn a_raw_fake_report_is_dropped_unregistered() {
    capture_logs();
    let dir = tempdir();
    let (master, ha) = start_master(dir.path(), with_auth(Some(TOKEN), "C1", "broker-a"));
    produce(&master, 0..20);
    let table = ha.slaves().clone();
    let mut watch = Watch::new(table.clone());
    // Two classic "slaves": their 8-byte reports are not a handshake answer. One reads as
    // two empty names and a partial MAC (dropped at the handshake timeout), the other
    // announces an oversized name (dropped at once).
    let mut clients: Vec<(TcpStream, String)> = [1i64 << 20, 1 << 40]
        .into_iter()
        .map(|fake| {
            let mut s = TcpStream::connect(ha.local_addr()).unwrap();
            s.write_all(&encode_report(fake)).unwrap();
            let addr = s.local_addr().unwrap().to_string();
            (s, addr)
        })
        .collect();
    assert!(!table.wait_acked(1, Duration::from_millis(1500)));
    for (s, addr) in &mut clients {
        let got = read_to_close(s, Duration::from_secs(10)).expect("the master drops it");
        assert_eq!(&got[..MAGIC.len()], &MAGIC, "the challenge came first");
        assert_eq!(
            got.len(),
            MAGIC.len() + NONCE_SIZE,
            "nothing past the challenge"
        );
        let addr: &str = addr;
        assert!(wait_until(Duration::from_secs(2), || logged(&[
            "HA peer refused",
            addr
        ])));
    }
    assert!(!watch.seen(), "a raw client was registered");
    assert_eq!(table.replicated_end(), -1);
    assert!(logged(&["HA peer refused", "no complete HA auth answer"]));
    ha.shutdown();
    master.shutdown().unwrap();
}

#[test]
fn a_token_on_one_side_only_names_the_mismatch() {
    capture_logs();
    let dir = tempdir();
    // Master with a token, slave without.
    let (master, ha) = start_master(dir.path(), with_auth(Some(TOKEN), "C1", "broker-a"));
    produce(&master, 0..20);
    let mut watch = Watch::new(ha.slaves().clone());
    let store_a = open(&dir.path().join("slave-a"));
    let plain = HaSlave::start(
        store_a.clone(),
        ha.local_addr(),
        with_auth(None, "C1", "broker-a"),
    );
    let with_token_addr = ha.local_addr().to_string();
    assert!(wait_until(Duration::from_secs(10), || logged(&[
        "requires haAuthToken, which this slave does not have",
        &with_token_addr
    ])));

    // Master without a token, slave with one.
    let (master_b, ha_b) = {
        let d = dir.path().join("b");
        start_master(&d, with_auth(None, "C1", "broker-a"))
    };
    produce(&master_b, 0..20);
    let store_b = open(&dir.path().join("slave-b"));
    let tokened = HaSlave::start(
        store_b.clone(),
        ha_b.local_addr(),
        with_auth(Some(TOKEN), "C1", "broker-a"),
    );
    let plain_addr = ha_b.local_addr().to_string();
    assert!(wait_until(Duration::from_secs(15), || logged(&[
        "but the master apparently has none (token mismatch)",
        &plain_addr
    ])));

    assert!(!plain.is_connected() && !tokened.is_connected());
    assert_eq!(store_a.commitlog().max_offset(), 0);
    assert_eq!(store_b.commitlog().max_offset(), 0);
    assert!(!watch.seen(), "a slave without the token was registered");
    no_secret_logged();

    plain.stop();
    tokened.stop();
    ha.shutdown();
    ha_b.shutdown();
    for s in [store_a, store_b, master, master_b] {
        s.shutdown().unwrap();
    }
}

#[test]
fn a_slave_of_another_broker_group_is_refused() {
    capture_logs();
    let dir = tempdir();
    let (master, ha) = start_master(dir.path(), with_auth(Some(TOKEN), "C1", "broker-a"));
    let mut watch = Watch::new(ha.slaves().clone());
    let store = open(&dir.path().join("slave"));
    let slave = HaSlave::start(
        store.clone(),
        ha.local_addr(),
        with_auth(Some(TOKEN), "C1", "broker-b"),
    );
    assert!(wait_until(Duration::from_secs(10), || logged(&[
        "HA peer refused",
        "broker-b",
        "this master expects cluster C1 broker broker-a"
    ])));
    assert!(!slave.is_connected());
    assert!(!watch.seen());
    slave.stop();
    ha.shutdown();
    store.shutdown().unwrap();
    master.shutdown().unwrap();
}

#[test]
fn a_fake_master_with_a_wrong_token_cannot_make_a_slave_truncate() {
    capture_logs();
    let dir = tempdir();
    let slave_store = open(&dir.path().join("slave"));
    let end = produce(&slave_store, 0..50);
    assert!(end > 0);
    // A hand-driven master: it accepts any answer, proves a wrong token, then sends the
    // frame that makes a slave cut its log (a heartbeat at 0, below the slave's end).
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let fake_addr = l.local_addr().unwrap();
    let fake = std::thread::spawn(move || {
        let mut rounds = 0;
        for s in l.incoming().take(2) {
            let mut s = s.unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let nonce_m = [9u8; NONCE_SIZE];
            s.write_all(&MAGIC).unwrap();
            s.write_all(&nonce_m).unwrap();
            let mut fields = Vec::new();
            for _ in 0..2 {
                let mut len = [0u8; 2];
                s.read_exact(&mut len).unwrap();
                let mut name = vec![0u8; u16::from_be_bytes(len) as usize];
                s.read_exact(&mut name).unwrap();
                fields.extend_from_slice(&len);
                fields.extend_from_slice(&name);
            }
            let mut nonce_s = [0u8; NONCE_SIZE];
            s.read_exact(&mut nonce_s).unwrap();
            let mut mac = [0u8; 32];
            s.read_exact(&mut mac).unwrap();
            let mut verdict = vec![ACCEPTED];
            verdict.extend_from_slice(&master_proof(WRONG, &nonce_m, &nonce_s, &fields));
            verdict.extend_from_slice(&encode_transfer_header(0, 0));
            let _ = s.write_all(&verdict);
            // Whatever the slave sends now (a report would mean it accepted us).
            let got = read_to_close(&mut s, Duration::from_secs(5));
            assert_eq!(got, Some(Vec::new()), "the slave reported to a fake master");
            rounds += 1;
        }
        rounds
    });
    let slave = HaSlave::start(
        slave_store.clone(),
        fake_addr,
        with_auth(Some(TOKEN), "C1", "broker-a"),
    );
    assert!(wait_until(Duration::from_secs(10), || logged(&[
        "HA auth handshake with the master failed",
        "does not hold this slave's haAuthToken"
    ])));
    assert_eq!(
        fake.join().unwrap(),
        2,
        "the slave retried, refusing each time"
    );
    assert!(!slave.is_connected());
    assert_eq!(slave.acked_offset(), -1, "no report to a fake master");
    assert_eq!(slave_store.commitlog().max_offset(), end, "no truncation");
    no_secret_logged();
    slave.stop();
    slave_store.shutdown().unwrap();
}
