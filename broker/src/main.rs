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
    raise_open_files_limit();
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

/// Raise the soft limit of open files (RLIMIT_NOFILE) to the hard limit. A broker holds
/// a descriptor per connection and per open segment and index file, and the usual soft
/// default of 1024 is far below what a broker with a few hundred partitions needs,
/// while the hard limit is what the operator (systemd, the container runtime) allows.
fn raise_open_files_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open files limit (RLIMIT_NOFILE)");
            return;
        }
    };
    if soft >= hard {
        tracing::info!(
            soft,
            hard,
            "open files limit (RLIMIT_NOFILE) is at its hard limit"
        );
        return;
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => tracing::info!(
            before = soft,
            after = hard,
            "raised the open files limit (RLIMIT_NOFILE) to its hard limit"
        ),
        Err(e) => tracing::warn!(
            soft,
            hard,
            error = %e,
            "cannot raise the open files limit (RLIMIT_NOFILE) to its hard limit"
        ),
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
