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
    /// A RocketMQ `broker.conf` (key=value lines).
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
    let mut cfg = BrokerConfig::default();
    let mut warnings = Vec::new();
    if let Some(path) = &args.config {
        let (loaded, w) = BrokerConfig::load(path).map_err(|e| e.to_string())?;
        cfg = loaded;
        warnings.extend(w);
    }
    let mut overrides = BTreeMap::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            overrides.insert(k.to_string(), v);
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
        overrides.insert(k.trim().to_string(), v.trim().to_string());
    }
    warnings.extend(cfg.apply(&overrides).map_err(|e| e.to_string())?);
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
