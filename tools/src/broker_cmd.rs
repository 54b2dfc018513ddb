//! `ringmq broker`: reads a RocketMQ-style `broker.conf`, applies command-line overrides,
//! logs the effective configuration, serves until SIGINT/SIGTERM, then shuts down cleanly
//! (in-flight requests answered, everything flushed, checkpoint written).

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use ringmq_broker::BrokerConfig;
use ringmq_broker::Node;

use crate::signals;

#[derive(Args)]
pub struct BrokerArgs {
    /// A RocketMQ `broker.conf` (key=value lines); the flags below override its keys.
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// listenPort.
    #[arg(long)]
    listen_port: Option<u16>,
    /// storePathRootDir.
    #[arg(long)]
    store: Option<PathBuf>,
    /// brokerRole: ASYNC_MASTER, SYNC_MASTER or SLAVE.
    #[arg(long)]
    role: Option<String>,
    /// flushDiskType: ASYNC_FLUSH or SYNC_FLUSH.
    #[arg(long)]
    flush: Option<String>,
    /// brokerName.
    #[arg(long)]
    broker_name: Option<String>,
    /// brokerId (0 = master).
    #[arg(long)]
    broker_id: Option<i64>,
    /// Do not pin threads to cores (for tests and shared machines).
    #[arg(long)]
    no_pin: bool,
    /// Any other broker.conf key, as key=value (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

pub fn run(args: BrokerArgs) -> i32 {
    match start(args) {
        Ok(code) => code,
        Err(msg) => {
            tracing::error!("{msg}");
            eprintln!("ringmq broker: {msg}");
            2
        }
    }
}

fn start(args: BrokerArgs) -> Result<i32, String> {
    signals::block_termination_signals();
    let (cfg, warnings) = effective_config(args)?;
    for w in &warnings {
        tracing::warn!("{w}");
    }
    tracing::info!(
        cluster = %cfg.broker_cluster_name,
        broker = %cfg.broker_name,
        id = cfg.broker_id,
        addr = %cfg.broker_addr(),
        role = cfg.broker_role.name(),
        flush = if cfg.sync_flush { "SYNC_FLUSH" } else { "ASYNC_FLUSH" },
        store = %cfg.store_path_root_dir.display(),
        segment_bytes = cfg.mapped_file_size_commit_log,
        ha_port = cfg.ha_listen_port,
        in_sync_replicas = cfg.in_sync_replicas,
        pin = cfg.pin_threads,
        net_cores = ?cfg.net_cores,
        writer_core = cfg.writer_core,
        "effective broker configuration"
    );
    let node = Node::start(cfg).map_err(|e| e.to_string())?;
    // Machine-readable lines for scripts and tests that start brokers on port 0.
    println!("ringmq broker listening on {}", node.addr());
    if let Some(ha) = node.ha_addr() {
        println!("ringmq broker HA listening on {ha}");
    }
    let sig = signals::wait_for_termination();
    tracing::info!(signal = sig, "shutting down");
    match node.shutdown() {
        Ok(()) => {
            tracing::info!("broker stopped cleanly");
            Ok(0)
        }
        Err(e) => Err(format!("shutdown failed: {e}")),
    }
}

/// The file's keys with the flags over them, read as one set: a flag wins over the file,
/// and a key whose default is derived (haListenPort, inSyncReplicas) is derived only if
/// neither gave it.
fn effective_config(args: BrokerArgs) -> Result<(BrokerConfig, Vec<String>), String> {
    let mut props = match &args.config {
        Some(path) => BrokerConfig::read_properties(path).map_err(|e| e.to_string())?,
        None => BTreeMap::new(),
    };
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            props.insert(k.to_string(), v);
        }
    };
    put("listenPort", args.listen_port.map(|p| p.to_string()));
    put(
        "storePathRootDir",
        args.store.map(|p| p.display().to_string()),
    );
    put("brokerRole", args.role);
    put("flushDiskType", args.flush);
    put("brokerName", args.broker_name);
    put("brokerId", args.broker_id.map(|i| i.to_string()));
    if args.no_pin {
        put("pinThreads", Some("false".into()));
    }
    for kv in &args.set {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("--set {kv:?}: expected KEY=VALUE"))?;
        props.insert(k.trim().to_string(), v.trim().to_string());
    }
    BrokerConfig::from_properties(&props).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        broker: BrokerArgs,
    }

    /// `ringmq broker -c <file with conf> <flags>`'s configuration.
    fn config(conf: &str, flags: &[&str]) -> BrokerConfig {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broker.conf");
        std::fs::write(&path, conf).unwrap();
        let argv = ["broker", "-c", path.to_str().unwrap()];
        let cli = Cli::try_parse_from(argv.iter().chain(flags)).unwrap();
        effective_config(cli.broker).unwrap().0
    }

    #[test]
    fn an_explicit_in_sync_replicas_survives_sync_master() {
        let cfg = config("brokerRole=SYNC_MASTER\ninSyncReplicas=1\n", &[]);
        assert_eq!(cfg.in_sync_replicas, 1);
        let cfg = config("inSyncReplicas=1\n", &["--role", "SYNC_MASTER"]);
        assert_eq!(cfg.in_sync_replicas, 1);
    }

    #[test]
    fn an_explicit_ha_listen_port_survives_a_listen_port_flag() {
        let cfg = config("haListenPort=30912\n", &["--listen-port", "20911"]);
        assert_eq!((cfg.listen_port, cfg.ha_listen_port), (20911, 30912));
    }

    #[test]
    fn a_flag_overrides_the_file() {
        let conf = "listenPort=20911\nbrokerName=from-file\ndefaultTopicQueueNums=4\n";
        let flags = [
            "--listen-port",
            "21911",
            "--broker-name",
            "from-flag",
            "--set",
            "defaultTopicQueueNums=2",
        ];
        let cfg = config(conf, &flags);
        assert_eq!(cfg.listen_port, 21911);
        assert_eq!(cfg.broker_name, "from-flag");
        assert_eq!(cfg.default_topic_queue_nums, 2);
        assert_eq!(
            cfg.ha_listen_port, 21912,
            "derived from the flag's listenPort"
        );
    }

    #[test]
    fn derived_defaults_apply_when_nobody_sets_the_key() {
        let cfg = config("brokerRole=SYNC_MASTER\nlistenPort=20911\n", &[]);
        assert_eq!((cfg.in_sync_replicas, cfg.ha_listen_port), (2, 20912));
        let cfg = config("", &["--role", "SYNC_MASTER", "--listen-port", "22911"]);
        assert_eq!((cfg.in_sync_replicas, cfg.ha_listen_port), (2, 22912));
        let cfg = config("", &[]);
        assert_eq!((cfg.in_sync_replicas, cfg.ha_listen_port), (1, 10912));
    }

    #[test]
    fn a_bad_value_names_its_key_whichever_source_gave_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broker.conf");
        std::fs::write(&path, "brokerRole=BOSS\n").unwrap();
        let cli = Cli::try_parse_from(["broker", "-c", path.to_str().unwrap()]).unwrap();
        let err = effective_config(cli.broker).unwrap_err();
        assert!(err.contains("brokerRole"), "{err}");
        let cli = Cli::try_parse_from(["broker", "--set", "inSyncReplicas=0"]).unwrap();
        let err = effective_config(cli.broker).unwrap_err();
        assert!(err.contains("inSyncReplicas"), "{err}");
    }
}
