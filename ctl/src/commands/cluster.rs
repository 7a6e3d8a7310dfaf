//! `streamctl cluster status`: the members, whether each answers, the Raft groups and
//! leaderships each holds, and the metadata leader.
//!
//! Liveness is this program's own probe (a ClusterStatus call to each node's address): the
//! server's answer lists members, not whether they are up.

use std::time::Duration;

use serde::Serialize;
use streamd_client::{ClientOptions, RetryPolicy, StreamdClient, v1};

use super::Ctx;
use crate::cli::ClusterCmd;
use crate::error::CtlError;
use crate::output::Table;

/// How long a node has to answer the liveness probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) async fn run(ctx: &Ctx, cmd: ClusterCmd) -> Result<(), CtlError> {
    match cmd {
        ClusterCmd::Status => {
            let view = status(ctx).await?;
            ctx.out.emit(&view, status_text)
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct NodeView {
    pub(crate) id: u64,
    pub(crate) address: String,
    /// `voter` or `learner` in the metadata group.
    pub(crate) role: &'static str,
    /// Answered this program's probe.
    pub(crate) live: bool,
    pub(crate) draining: bool,
    /// Raft groups (shard replicas and the metadata group) hosted.
    pub(crate) groups: u32,
    /// Groups this node leads.
    pub(crate) leaders: u32,
    pub(crate) metadata_leader: bool,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct StatusView {
    pub(crate) metadata_leader: Option<u64>,
    pub(crate) nodes_live: usize,
    pub(crate) nodes: Vec<NodeView>,
}

/// The view of a ClusterStatus answer and the probes' results (`live[i]` for `nodes[i]`).
pub(crate) fn status_view(resp: &v1::ClusterStatusResponse, live: &[bool]) -> StatusView {
    let mut nodes: Vec<NodeView> = resp
        .nodes
        .iter()
        .zip(live.iter().copied().chain(std::iter::repeat(false)))
        .map(|(n, live)| NodeView {
            id: n.node_id,
            address: n.address.clone(),
            role: if n.voter { "voter" } else { "learner" },
            live,
            draining: n.draining,
            groups: n.groups,
            leaders: n.leaders,
            metadata_leader: resp.metadata_leader == Some(n.node_id),
        })
        .collect();
    nodes.sort_by_key(|n| n.id);
    StatusView {
        metadata_leader: resp.metadata_leader,
        nodes_live: nodes.iter().filter(|n| n.live).count(),
        nodes,
    }
}

pub(crate) fn nodes_table(nodes: &[NodeView]) -> String {
    let mut t = Table::new([
        "NODE",
        "ADDRESS",
        "ROLE",
        "LIVE",
        "DRAINING",
        "GROUPS",
        "LEADERS",
        "META LEADER",
    ]);
    let yes = |b: bool| if b { "yes" } else { "no" }.to_string();
    for n in nodes {
        t.row(vec![
            n.id.to_string(),
            n.address.clone(),
            n.role.to_string(),
            yes(n.live),
            yes(n.draining),
            n.groups.to_string(),
            n.leaders.to_string(),
            if n.metadata_leader { "*" } else { "" }.to_string(),
        ]);
    }
    t.render()
}

fn status_text(v: &StatusView) -> String {
    let leader = v.metadata_leader.map_or_else(
        || "none (election in progress?)".to_string(),
        |l| format!("node {l}"),
    );
    format!(
        "metadata leader: {leader}\nnodes: {} of {} live\n\n{}",
        v.nodes_live,
        v.nodes.len(),
        nodes_table(&v.nodes)
    )
}

/// ClusterStatus through the configured endpoints, then a probe of every member.
pub(crate) async fn status(ctx: &Ctx) -> Result<StatusView, CtlError> {
    let resp = ctx
        .client
        .cluster_status()
        .await
        .map_err(CtlError::from_client)?;
    let probes: Vec<_> = resp
        .nodes
        .iter()
        .map(|n| tokio::spawn(probe(n.address.clone())))
        .collect();
    let mut live = Vec::with_capacity(probes.len());
    for p in probes {
        live.push(p.await.unwrap_or(false));
    }
    Ok(status_view(&resp, &live))
}

async fn probe(address: String) -> bool {
    let options = ClientOptions {
        request_timeout: PROBE_TIMEOUT,
        connect_timeout: PROBE_TIMEOUT,
        read_retry: RetryPolicy::none(),
    };
    match StreamdClient::connect_with(&[address], options) {
        Ok(c) => c.cluster_status().await.is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_marks_the_metadata_leader_and_dead_nodes() {
        let node = |id, voter| v1::NodeStatus {
            node_id: id,
            address: format!("127.0.0.1:{id}"),
            voter,
            groups: 3,
            leaders: 1,
            draining: false,
        };
        let resp = v1::ClusterStatusResponse {
            metadata_leader: Some(2),
            nodes: vec![node(2, true), node(1, false)],
        };
        let v = status_view(&resp, &[true, false]);
        assert_eq!(v.nodes[0].id, 1);
        assert!(!v.nodes[0].live && v.nodes[0].role == "learner");
        assert!(v.nodes[1].metadata_leader && v.nodes[1].live);
        assert_eq!(v.nodes_live, 1);
        let text = status_text(&v);
        assert!(text.contains("metadata leader: node 2"), "{text}");
        assert!(text.contains("1 of 2 live"), "{text}");
    }
}
