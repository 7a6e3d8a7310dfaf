//! `streamctl`: the command line for operating a streamd cluster.
//!
//! Map of the crate:
//! - [`cli`]: every command and flag (clap derive), with help texts and examples; nothing runs here.
//! - [`commands`]: one module per command group (`stream`, `put`, `get`, `tail`, `cluster`,
//!   `node`, `shard`, `bench`); each builds a view struct and hands it to [`output`].
//! - [`output`]: text tables or JSON on stdout; the only writer of stdout.
//! - [`error`]: [`error::CtlError`], which says what to do next, and its exit codes.
//! - [`progress`], [`time`]: spinners and waits on long operations; durations and timestamps.
//!
//! Placement rule: a new command goes into the module of its group, with its view built by a
//! pure function; calls the cluster lacks go into `streamd-client`, not here.

mod cli;
mod commands;
mod error;
mod output;
mod progress;
mod time;

use std::process::ExitCode;

use clap::Parser;

use crate::error::{CtlError, Exit};

fn main() -> ExitCode {
    // clap exits with 2 on usage errors and 0 for --help/--version, as documented.
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::from(Exit::Failed as u8);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::from(Exit::Ok as u8),
        Err(e) => report(&e),
    }
}

fn report(e: &CtlError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(e.exit() as u8)
}
