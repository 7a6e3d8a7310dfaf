//! `streamd-jepsen`: see the crate documentation and jepsen/README.md.

use clap::Parser;
use streamd_jepsen::cli::{Cli, Command};
use streamd_jepsen::run;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("JEPSEN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,fuser=error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Test(args) => {
            // Dropping the run on SIGINT or SIGTERM drops its teardown guard: nodes die,
            // namespaces go.
            tokio::select! {
                code = run::test(args) => code,
                signal = interrupted() => {
                    eprintln!("jepsen: {signal}; cluster and network torn down");
                    130
                }
            }
        }
        Command::Check(args) => run::check(args),
    };
    std::process::exit(code);
}

/// Resolves on SIGINT or SIGTERM (CI runners and `timeout` send the latter).
async fn interrupted() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return "interrupted";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupted",
        _ = term.recv() => "terminated",
    }
}
