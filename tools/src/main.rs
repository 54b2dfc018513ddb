//! `ringmq`: the one binary. Subcommands: `broker`, `namesrv` (a RocketMQ name server),
//! `bench` (the load generator), `compare` (the report of two or more saved runs) and
//! `admin` (mqadmin's commands).

mod admin;
mod bench;
mod broker_cmd;
mod namesrv_cmd;
mod report;
mod signals;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ringmq",
    version,
    about = "A RocketMQ-compatible broker engine on io_uring"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker (standalone ASYNC_MASTER on 127.0.0.1:10911 under ./store by default).
    Broker(broker_cmd::BrokerArgs),
    /// Run a RocketMQ name server (127.0.0.1:9876 by default) for clusters of broker groups.
    Namesrv(namesrv_cmd::NamesrvArgs),
    /// Load generator: produce (and optionally consume) against any RocketMQ-compatible broker.
    Bench(bench::BenchArgs),
    /// Compare two or more saved runs: markdown table and latency chart.
    Compare(report::compare::CompareArgs),
    /// mqadmin's commands: topics, groups, consumer progress, broker status and config.
    Admin(admin::AdminArgs),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Broker(args) => broker_cmd::run(args),
        Command::Namesrv(args) => namesrv_cmd::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Compare(args) => report::compare::run(args),
        Command::Admin(args) => admin::run(args),
    };
    std::process::exit(code);
}
