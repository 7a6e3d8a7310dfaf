//! `streamd dev --nodes N`: N node processes of this same binary on 127.0.0.1, node i on gRPC
//! 50050+i, Kinesis 4566+i and admin 9089+i, data in <data-dir>/node-i. Ctrl-C stops them all.

use std::path::Path;
use std::process::Stdio;

use tokio::process::{Child, Command};

use crate::config::ShardLimitsFlag;

#[derive(Debug, thiserror::Error)]
pub(crate) enum DevError {
    #[error("failed to find this executable: {0}")]
    Exe(std::io::Error),
    #[error("failed to start node {node}: {source}")]
    Spawn { node: u64, source: std::io::Error },
    #[error("dev clusters have 1 to 9 nodes, got {0}")]
    Size(u64),
}

#[allow(clippy::print_stdout)]
pub(crate) async fn run(
    nodes: u64,
    data_dir: &Path,
    limits: ShardLimitsFlag,
) -> Result<(), DevError> {
    if !(1..=9).contains(&nodes) {
        return Err(DevError::Size(nodes));
    }
    let exe = std::env::current_exe().map_err(DevError::Exe)?;
    let cluster: Vec<String> = (1..=nodes)
        .map(|i| format!("{i}=127.0.0.1:{}", 50050 + i))
        .collect();
    let cluster = cluster.join(",");
    let limits = match limits {
        ShardLimitsFlag::Kinesis => "kinesis",
        ShardLimitsFlag::Off => "off",
    };
    let mut children: Vec<Child> = Vec::new();
    for i in 1..=nodes {
        let child = Command::new(&exe)
            .arg("--node-id")
            .arg(i.to_string())
            .arg("--data-dir")
            .arg(data_dir.join(format!("node-{i}")))
            .arg("--grpc-addr")
            .arg(format!("127.0.0.1:{}", 50050 + i))
            .arg("--kinesis-addr")
            .arg(format!("127.0.0.1:{}", 4566 + i))
            .arg("--admin-addr")
            .arg(format!("127.0.0.1:{}", 9089 + i))
            .arg("--initial-cluster")
            .arg(&cluster)
            .arg("--shard-limits")
            .arg(limits)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| DevError::Spawn { node: i, source })?;
        children.push(child);
    }
    println!("streamd dev cluster: {nodes} nodes");
    for i in 1..=nodes {
        println!(
            "  node {i}: gRPC 127.0.0.1:{}  admin http://127.0.0.1:{}  data {}",
            50050 + i,
            9089 + i,
            data_dir.join(format!("node-{i}")).display()
        );
    }
    println!("press Ctrl-C to stop");
    crate::shutdown_signal().await;
    for c in &mut children {
        let _ = c.kill().await;
    }
    Ok(())
}
