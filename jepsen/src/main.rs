//! `streamd-jepsen`: see the crate documentation and jepsen/README.md.

use clap::Parser;
use streamd_jepsen::cli::{Cli, Command};
use streamd_jepsen::run;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("JEPSEN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Test(args) => {
            // Dropping the run on Ctrl-C drops its teardown guard: nodes die, namespaces go.
            tokio::select! {
                code = run::test(args) => code,
                _ = tokio::signal::ctrl_c() => {
                    eprintln!("jepsen: interrupted; cluster and network torn down");
                    130
                }
            }
        }
        Command::Check(args) => run::check(args),
    };
    std::process::exit(code);
}
