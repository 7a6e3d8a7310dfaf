//! Runs a parsed command line: resolves the endpoints, builds the client and dispatches to the
//! command group's module.

mod bench;
mod cluster;
mod consumer;
mod get;
mod node;
mod position;
mod put;
mod records;
mod shard;
mod stream;
mod tail;
mod views;

use clap::CommandFactory;
use streamd_client::profile::{Sources, resolve};
use streamd_client::{ClientOptions, StreamdClient};

use crate::cli::{Cli, Command};
use crate::error::{CtlError, with_endpoints};
use crate::output::Printer;

/// What every command gets: a client on the resolved endpoints and the printer.
pub(crate) struct Ctx {
    pub(crate) client: StreamdClient,
    pub(crate) out: Printer,
}

pub(crate) async fn run(cli: Cli) -> Result<(), CtlError> {
    let out = Printer { format: cli.output };
    if let Command::Completions { shell } = cli.command {
        // Needs no cluster: generate from the command tree itself.
        let mut cmd = Cli::command();
        let mut stdout = std::io::stdout();
        clap_complete::generate(shell, &mut cmd, "streamctl", &mut stdout);
        return Ok(());
    }
    let sources = Sources::from_env(
        cli.endpoint.clone(),
        cli.profile.clone(),
        cli.config.clone(),
    )?;
    let endpoints = resolve(&sources)?;
    let options = ClientOptions {
        request_timeout: cli.request_timeout,
        ..ClientOptions::default()
    };
    let client = StreamdClient::connect_with(&endpoints.endpoints, options)
        .map_err(|e| CtlError::Usage(format!("{e}; endpoints look like host:port")))?;
    let ctx = Ctx { client, out };
    let result = match cli.command {
        Command::Stream(cmd) => stream::run(&ctx, cmd).await,
        Command::Put(args) => put::run(&ctx, args).await,
        Command::Get(args) => get::run(&ctx, args).await,
        Command::Tail(args) => tail::run(&ctx, args).await,
        Command::Cluster(cmd) => cluster::run(&ctx, cmd).await,
        Command::Node(cmd) => node::run(&ctx, cmd).await,
        Command::Shard(cmd) => shard::run(&ctx, cmd).await,
        Command::Consumer(cmd) => consumer::run(&ctx, cmd).await,
        Command::Bench(cmd) => bench::run(&ctx, cmd).await,
        Command::Completions { .. } => Ok(()),
    };
    result.map_err(|e| with_endpoints(e, &endpoints.endpoints, &endpoints.source.to_string()))
}
