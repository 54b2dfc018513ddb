//! `ringmq`: the one binary. Subcommands: `broker` (more to come: `bench`, `compare`).

mod broker_cmd;
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
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Broker(args) => broker_cmd::run(args),
    };
    std::process::exit(code);
}
