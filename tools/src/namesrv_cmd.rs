//! `ringmq namesrv`: reads a RocketMQ-style `namesrv.conf`, applies command-line
//! overrides, serves the name server protocol until SIGINT/SIGTERM, then stops.

use std::path::PathBuf;

use clap::Args;
use ringmq_namesrv::{Namesrv, NamesrvConfig};

use crate::signals;

#[derive(Args)]
pub struct NamesrvArgs {
    /// A RocketMQ `namesrv.conf` (key=value lines: listenPort, kvConfigPath, ...).
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// listenPort (default 9876; 0 picks a free port).
    #[arg(short = 'p', long)]
    listen_port: Option<u16>,
    /// bindAddress (default 127.0.0.1).
    #[arg(long)]
    bind: Option<String>,
    /// kvConfigPath (default $HOME/namesrv/kvConfig.json).
    #[arg(long)]
    kv_config_path: Option<PathBuf>,
    /// Any other namesrv.conf key, as key=value (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

pub fn run(args: NamesrvArgs) -> i32 {
    match start(args) {
        Ok(code) => code,
        Err(msg) => {
            tracing::error!("{msg}");
            eprintln!("ringmq namesrv: {msg}");
            2
        }
    }
}

fn start(args: NamesrvArgs) -> Result<i32, String> {
    signals::block_termination_signals();
    let mut cfg = NamesrvConfig::default();
    let mut warnings = Vec::new();
    if let Some(path) = &args.config {
        let (loaded, w) = NamesrvConfig::load(path).map_err(|e| e.to_string())?;
        cfg = loaded;
        warnings.extend(w);
    }
    let mut overrides = String::new();
    if let Some(p) = args.listen_port {
        overrides.push_str(&format!("listenPort={p}\n"));
    }
    if let Some(b) = args.bind {
        overrides.push_str(&format!("bindAddress={b}\n"));
    }
    if let Some(p) = args.kv_config_path {
        overrides.push_str(&format!("kvConfigPath={}\n", p.display()));
    }
    for kv in &args.set {
        if !kv.contains('=') {
            return Err(format!("--set {kv:?}: expected KEY=VALUE"));
        }
        overrides.push_str(kv);
        overrides.push('\n');
    }
    warnings.extend(cfg.apply(&overrides).map_err(|e| e.to_string())?);
    for w in &warnings {
        tracing::warn!("{w}");
    }
    tracing::info!(
        addr = %cfg.listen_addr(),
        kv_config = %cfg.kv_config_path.display(),
        expiry_ms = cfg.broker_channel_expired_time.as_millis() as u64,
        scan_ms = cfg.scan_not_active_broker_interval.as_millis() as u64,
        "effective name server configuration"
    );
    let ns = Namesrv::start(cfg).map_err(|e| format!("cannot start: {e}"))?;
    // Machine-readable line for scripts and tests that start name servers on port 0.
    println!("ringmq namesrv listening on {}", ns.local_addr());
    let sig = signals::wait_for_termination();
    tracing::info!(signal = sig, "shutting down");
    ns.stop();
    tracing::info!("name server stopped");
    Ok(0)
}
