//! `ringmq broker -c broker.conf` with flags on top, end to end: explicit file keys
//! survive the flags (a flag never re-derives a key the file set), as seen from outside the
//! process: the HA port it listens on and whether a SYNC_MASTER without a slave acknowledges
//! a send.

mod common_ha;

use std::path::Path;
use std::time::Duration;

use common_ha::*;
use ringmq_client::{Message, Producer, ProducerOptions, SendStatus};

/// A port nobody listens on right now.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Starts `ringmq broker -c <conf> --listen-port 0` in `dir`.
fn broker_with_conf(dir: &Path, name: &str, conf: &str) -> BrokerProc {
    let path = dir.join(format!("{name}.conf"));
    std::fs::write(&path, conf).unwrap();
    let args = [
        "-c".to_string(),
        path.display().to_string(),
        "--listen-port".into(),
        "0".into(),
    ];
    let log = dir.join(format!("{name}.log"));
    BrokerProc::spawn(name, &dir.join(name), &log, &args)
}

fn send_status(addr: &str) -> SendStatus {
    let opts = ProducerOptions {
        timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let p = Producer::connect_with(addr, "broker_conf_pg", opts).unwrap();
    p.send_to(&mq("BrokerConf", 0), Message::new(&b"x"[..]))
        .unwrap()
        .status
}

#[test]
fn file_keys_survive_the_flags() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let ha_port = free_port();

    // The file's inSyncReplicas=1 and haListenPort hold although --listen-port is given.
    let conf = format!("brokerRole=SYNC_MASTER\ninSyncReplicas=1\nhaListenPort={ha_port}\n");
    let explicit = broker_with_conf(tmp.path(), "explicit", &conf);
    let ha = explicit.ha_addr.as_deref().unwrap();
    assert!(ha.ends_with(&format!(":{ha_port}")), "HA listens on {ha}");
    assert_eq!(
        send_status(&explicit.addr),
        SendStatus::SendOk,
        "inSyncReplicas=1: a SYNC_MASTER without a slave acknowledges"
    );
    drop(explicit);

    // Control: without the key, SYNC_MASTER waits for a slave (inSyncReplicas derived to 2).
    let derived = broker_with_conf(tmp.path(), "derived", "brokerRole=SYNC_MASTER\n");
    assert_eq!(send_status(&derived.addr), SendStatus::SlaveNotAvailable);
}
