//! `fjord`: the Fjord broker binary. With no subcommand it runs one broker;
//! `fjord dev` (module `dev`) runs a local cluster of broker processes.

mod dev;

use clap::Parser;
use fjord_broker::config::BrokerConfig;
use tokio_util::sync::CancellationToken;

/// Fjord: a Kafka-compatible streaming broker.
///
/// Without a subcommand, runs one broker. Every broker flag can also be set as the
/// FJORD_* environment variable shown.
#[derive(Parser)]
#[command(name = "fjord", version, about, long_about = None, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Subcommand>,
    #[command(flatten)]
    broker: BrokerConfig,
}

#[derive(clap::Subcommand)]
enum Subcommand {
    Dev(dev::DevArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FJORD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=off")),
        )
        .with_writer(std::io::stderr)
        // Colour only for people at a terminal, not for log collectors.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    warn_unknown_env();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fjord: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if let Some(Subcommand::Dev(args)) = cli.command {
        return runtime.block_on(dev::run(args));
    }
    let shutdown = CancellationToken::new();
    let result = runtime.block_on(async {
        let signal_token = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown requested");
            signal_token.cancel();
        });
        fjord_broker::server::run(cli.broker, shutdown).await
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fjord: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A misspelled `FJORD_*` variable would otherwise change nothing without a word.
fn warn_unknown_env() {
    use clap::CommandFactory;
    let command = Cli::command();
    let known: Vec<String> = command
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .chain(["FJORD_LOG".to_string()])
        .collect();
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("FJORD_") && !known.iter().any(|k| *k == name) {
            tracing::warn!(variable = %name, "unknown FJORD_* environment variable ignored (see fjord --help)");
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
