//! The `streamd` node as a library: the binary (`src/main.rs`) is a thin wrapper, and test
//! binaries can run the same node with a [`Build`] that differs from the product.

mod admin;
pub mod certs;
mod config;
mod dev_cluster;
mod driver;
mod join;
mod lifecycle;
mod node;
mod otel;
mod telemetry;
mod tls;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{Cli, Command, LogFormat};

/// Logs to stderr, and exports spans when `tracer` is given. The filter applies to both.
fn init_tracing(format: LogFormat, tracer: Option<opentelemetry_sdk::trace::Tracer>) {
    // openraft warns of every failed heartbeat of every group: with thousands of groups one
    // peer pausing for a second wrote tens of thousands of lines a second. Elections and
    // leader changes still show at warn and info.
    let filter = EnvFilter::try_from_env("STREAMD_LOG").unwrap_or_else(|_| {
        EnvFilter::new("info,openraft=warn,openraft::core::heartbeat=error,sled=warn,h2=warn,tower=warn,hyper=warn")
    });
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Json => fmt.json().boxed(),
        LogFormat::Text => fmt.boxed(),
    };
    tracing_subscriber::registry()
        .with(fmt)
        .with(tracer.map(|t| tracing_opentelemetry::layer().with_tracer(t)))
        .with(filter)
        .init();
}

pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

#[allow(clippy::print_stdout)]
fn print_endpoints(c: &config::NodeConfig) {
    println!("streamd node {} ready to start", c.node_id);
    println!(
        "  gRPC     {}  (streamd.v1.Streamd, reflection on)",
        c.grpc_addr
    );
    println!(
        "  admin    http://{}  (/metrics /healthz /readyz)",
        c.admin_addr
    );
    println!("  data     {}", c.data_dir.display());
}

/// How a build of the node differs from the product. The `streamd` binary runs
/// `Build::default()`; no command-line flag or config key reaches these fields, so only a test
/// binary compiled for the purpose (the jepsen harness's `streamd-planted`) can change them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Build {
    /// The write-ahead log's options (`sync: false` acknowledges writes before they are durable).
    pub wal: streamd_storage::WalOptions,
}

/// The whole `streamd` command line: parses the arguments, runs a node (or `dev`), returns the
/// exit code.
pub async fn main(build: Build) -> std::process::ExitCode {
    if let Some(code) = certs::run_if_requested() {
        return code;
    }
    let cli = Cli::parse();
    if let Some(Command::Dev {
        nodes,
        data_dir,
        shard_limits,
    }) = cli.command
    {
        init_tracing(LogFormat::Text, None);
        return match dev_cluster::run(nodes, &data_dir, shard_limits).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "dev cluster failed");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let config = match cli.node.resolve() {
        Ok(c) => config::NodeConfig {
            wal: build.wal,
            ..c
        },
        Err(e) => {
            eprintln!("streamd: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let (exporter, tracer) = match config.otlp_endpoint.as_deref() {
        Some(endpoint) => match otel::start(endpoint, config.node_id) {
            Ok((exporter, tracer)) => (Some(exporter), Some(tracer)),
            Err(e) => {
                eprintln!("streamd: {e}");
                return std::process::ExitCode::from(2);
            }
        },
        None => (None, None),
    };
    init_tracing(config.log_format, tracer);
    print_endpoints(&config);
    let result = run(config).await;
    if let Some(exporter) = exporter {
        lifecycle::flush_traces(exporter).await;
    }
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "streamd stopped");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(config: config::NodeConfig) -> Result<(), node::NodeError> {
    let node = node::Node::start(config).await?;
    telemetry::register();
    // Turns true when the listeners must stop accepting (step 4 of `lifecycle`).
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    // A node the cluster refuses to admit cannot take part: it stops, with the reason.
    let join_failure: std::sync::Arc<parking_lot::Mutex<Option<join::JoinError>>> =
        Default::default();
    let (refused_tx, mut refused) = tokio::sync::watch::channel(false);
    if node.config.join.is_empty() {
        tokio::spawn({
            let n = node.clone();
            async move { n.form_cluster().await }
        });
    } else {
        tokio::spawn({
            let n = node.clone();
            let failure = join_failure.clone();
            async move {
                if let Err(e) = join::join(&n).await {
                    tracing::error!(error = %e, "failed to join the cluster; stopping");
                    *failure.lock() = Some(e);
                    let _ = refused_tx.send(true);
                }
            }
        });
    }
    tokio::spawn(driver::run(node.clone()));
    tokio::spawn(node.host.clone().run_liveness());
    let admin = tokio::spawn(admin::serve(node.clone(), stopped(stop_rx.clone())));
    let mut kinesis = tokio::spawn({
        let n = node.clone();
        let stop = stopped(stop_rx.clone());
        async move { n.serve_kinesis(stop).await }
    });
    let mut grpc = tokio::spawn({
        let n = node.clone();
        let stop = stopped(stop_rx.clone());
        async move { n.serve_grpc(stop).await }
    });
    let flatten = |r: Result<Result<(), node::NodeError>, tokio::task::JoinError>| {
        r.unwrap_or_else(|e| Err(node::NodeError::Task(e.to_string())))
    };
    let mut result = Ok(());
    let mut grpc_finished = false;
    tokio::select! {
        _ = shutdown_signal() => {
            tracing::info!("stop requested: handing over and draining");
            lifecycle::hand_off(&node).await;
        }
        // Err only once the join task ended without a refusal: the branch is then disabled.
        Ok(_) = refused.wait_for(|r| *r) => {}
        r = &mut grpc => {
            grpc_finished = true;
            result = flatten(r);
        }
    }
    let _ = stop_tx.send(true);
    let drain = async {
        let grpc_result = if grpc_finished {
            Ok(())
        } else {
            flatten((&mut grpc).await)
        };
        match (&mut kinesis).await {
            Ok(Err(e)) => tracing::error!(error = %e, "kinesis api stopped"),
            Err(e) => tracing::error!(error = %e, "kinesis api task failed"),
            Ok(Ok(())) => {}
        }
        grpc_result
    };
    match tokio::time::timeout(lifecycle::DRAIN_DEADLINE, drain).await {
        Ok(r) => result = result.and(r),
        Err(_) => {
            tracing::warn!(
                deadline = ?lifecycle::DRAIN_DEADLINE,
                "requests still in flight at the drain deadline; closing them"
            );
            grpc.abort();
            kinesis.abort();
        }
    }
    node.host.shutdown().await;
    lifecycle::flush_storage(&node).await;
    let _ = admin.await;
    if let Some(e) = join_failure.lock().take() {
        return Err(e.into());
    }
    tracing::info!("stopped");
    result
}
