//! Joining a running cluster at runtime.
//!
//! 1. A node started with `--join SEED,...` (and an empty data directory) calls
//!    `Membership.JoinCluster{node_id, address}` on a seed, retrying with backoff until a deadline.
//! 2. The seed proposes `MetaCommand::AddNode` through the metadata leader (`propose_meta`
//!    forwards it like every metadata proposal) and answers with the members it knows.
//! 3. The metadata leader's driver sees a node the metadata lists but its group lacks: it adds
//!    the node as a learner of the metadata group, waits until it caught up on the log (this is
//!    how the joiner gets the cluster secret, the streams and the shard map), then makes it a
//!    voter (`plan_meta_voters`).
//! 4. From then on the joiner is an ordinary member: new shards rotate over it, and rebalancing
//!    (`plan_rebalance`) moves replicas onto it.
//!
//! Node-to-node gRPC is not authenticated (no mTLS yet): whoever reaches the internal port can
//! join, exactly as whoever reaches it can send Raft messages. The cluster secret (the key of
//! shard-iterator MACs) never crosses this call: it arrives with the replicated metadata.

use std::time::Duration;

use streamd_meta::MetaCommand;
use streamd_proto::internal::membership_client::MembershipClient;
use streamd_proto::internal::membership_server::{Membership, MembershipServer};
use streamd_proto::internal::{ClusterMember, JoinClusterRequest, JoinClusterResponse};
use streamd_proto::{ApiError, ErrorCode};
use tokio::time::Instant;
use tonic::transport::Endpoint;
use tonic::{Request, Response, Status};

use crate::node::Node;

/// How long a joining node keeps asking before it gives up and stops.
const JOIN_DEADLINE: Duration = Duration::from_secs(300);
/// One JoinCluster call: the seed may forward the proposal and wait for a metadata leader.
const JOIN_CALL_TIMEOUT: Duration = Duration::from_secs(15);
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub(crate) enum JoinError {
    #[error("the cluster refused node {node_id} at {address}: {source}")]
    Refused {
        node_id: u64,
        address: String,
        source: ApiError,
    },
    #[error(
        "node {node_id} could not join through {seeds:?} within {waited:?}; last error: {last}"
    )]
    Deadline {
        node_id: u64,
        seeds: Vec<String>,
        waited: Duration,
        last: String,
    },
}

/// Answers `Membership.JoinCluster` on every node.
pub(crate) struct MembershipService {
    node: Node,
}

impl MembershipService {
    pub(crate) fn new(node: Node) -> MembershipServer<MembershipService> {
        MembershipServer::new(MembershipService { node })
    }
}

#[tonic::async_trait]
impl Membership for MembershipService {
    #[tracing::instrument(
        name = "membership.join_cluster",
        skip_all,
        fields(node_id = req.get_ref().node_id, address = %req.get_ref().address)
    )]
    async fn join_cluster(
        &self,
        req: Request<JoinClusterRequest>,
    ) -> Result<Response<JoinClusterResponse>, Status> {
        let JoinClusterRequest { node_id, address } = req.into_inner();
        let cmd = MetaCommand::AddNode {
            id: node_id,
            addr: address.clone(),
        };
        if let Err(e) = self.node.gateway.propose_meta(&cmd).await {
            tracing::info!(error = %e, "node not admitted");
            return Err(e.to_status());
        }
        tracing::info!("node registered in the cluster metadata");
        let mut members: Vec<ClusterMember> = self
            .node
            .meta
            .read()
            .nodes
            .values()
            .map(|n| ClusterMember {
                node_id: n.id,
                address: n.addr.clone(),
            })
            .collect();
        // This replica may not have applied the entry yet; the joiner is a member regardless.
        if !members.iter().any(|m| m.node_id == node_id) {
            members.push(ClusterMember { node_id, address });
        }
        Ok(Response::new(JoinClusterResponse { members }))
    }
}

/// Registers this node with the cluster through its `--join` seeds: asks each seed in turn,
/// backing off between rounds, until one admits it, the cluster refuses it for good (its id or
/// address belongs to another node, or to a removed one), or the deadline passes.
#[tracing::instrument(name = "membership.join", skip_all, fields(node_id = node.config.node_id))]
pub(crate) async fn join(node: &Node) -> Result<(), JoinError> {
    let node_id = node.config.node_id;
    let address = node.config.advertise_addr.clone();
    let seeds = node.config.join.clone();
    if node
        .meta
        .read()
        .nodes
        .get(&node_id)
        .is_some_and(|n| n.addr == address)
    {
        // A restart of a node that joined before: its metadata already lists it.
        tracing::info!(%address, "already a member of the cluster; not joining again");
        return Ok(());
    }
    tracing::info!(%address, ?seeds, "joining the cluster");
    let started = Instant::now();
    let mut backoff = BACKOFF_MIN;
    let mut last = String::from("no seed answered");
    loop {
        for seed in &seeds {
            match ask(seed, node_id, &address).await {
                Ok(members) => {
                    for m in &members {
                        node.host.peers().set_address(m.node_id, &m.address);
                    }
                    tracing::info!(
                        seed,
                        members = members.len(),
                        waited = ?started.elapsed(),
                        "joined the cluster; the metadata leader adds this node to the metadata group once it has caught up"
                    );
                    return Ok(());
                }
                Err(e)
                    if matches!(
                        e.code,
                        ErrorCode::InvalidArgument | ErrorCode::ResourceInUse
                    ) =>
                {
                    return Err(JoinError::Refused {
                        node_id,
                        address,
                        source: e,
                    });
                }
                Err(e) => {
                    tracing::info!(seed, error = %e, "join attempt failed; retrying");
                    last = format!("{seed}: {e}");
                }
            }
        }
        if started.elapsed() >= JOIN_DEADLINE {
            return Err(JoinError::Deadline {
                node_id,
                seeds,
                waited: started.elapsed(),
                last,
            });
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One JoinCluster call on `seed`.
async fn ask(seed: &str, node_id: u64, address: &str) -> Result<Vec<ClusterMember>, ApiError> {
    let uri = if seed.starts_with("http") {
        seed.to_string()
    } else {
        format!("http://{seed}")
    };
    let endpoint = Endpoint::from_shared(uri)
        .map_err(|e| {
            ApiError::new(
                ErrorCode::Unavailable,
                format!("bad seed address {seed}: {e}"),
            )
        })?
        .connect_timeout(Duration::from_secs(2));
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| ApiError::new(ErrorCode::Unavailable, format!("cannot reach {seed}: {e}")))?;
    let mut req = Request::new(JoinClusterRequest {
        node_id,
        address: address.to_string(),
    });
    req.set_timeout(JOIN_CALL_TIMEOUT);
    MembershipClient::new(channel)
        .join_cluster(req)
        .await
        .map(|r| r.into_inner().members)
        .map_err(|s| ApiError::from_status(&s))
}
