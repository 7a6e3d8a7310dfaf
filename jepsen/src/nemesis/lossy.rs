//! `lossy`: one node's link drops a share of its packets at random ([`PERCENT`]%, each packet
//! independently, in both directions) with the iptables statistic match inside its namespace,
//! until the fault ends. Peers and clients see retransmissions, slow calls and the odd timeout
//! rather than a clean cut. Needs the network namespaces and `iptables`, like `partition`.

use super::Target;

/// Percentage of the node's packets dropped, each way.
pub const PERCENT: u32 = 20;

pub(crate) async fn start(target: &Target, node: u64, percent: u32) -> Result<(), String> {
    let net = target
        .net
        .clone()
        .ok_or("no network namespaces to make lossy")?;
    tokio::task::spawn_blocking(move || net.lossy(node, percent))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("lossy node {node}: {e}"))
}
