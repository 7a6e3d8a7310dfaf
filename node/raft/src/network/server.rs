//! The receiving side of node-to-node calls: Raft RPCs for any local group, and Propose / Query
//! on a local replica (how a node forwards a request to the leader or to a replica it lacks).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use streamd_proto::internal::internal_server::{Internal, InternalServer};
use streamd_proto::internal::{
    GroupMessage, NodeHeartbeatRequest, NodeHeartbeatResponse, RaftMessage, SnapshotChunk,
    TransferLeadershipRequest, TransferLeadershipResponse,
};
use streamd_proto::{ApiError, ErrorCode};
use tonic::{Request, Response, Status, Streaming};

use super::MAX_MESSAGE_BYTES;
use crate::handle::GroupHandle;
use crate::registry::RaftHost;
use crate::snapshot_file::SnapshotReceiver;
use crate::state_machine::receiving_path;
use crate::type_config::{Snapshot, SnapshotMeta, TypeConfig, Vote};

/// The requests a group's owner (shard or metadata) answers on this node, whether they arrive
/// from a local caller or from a peer through [`InternalService`].
pub trait GroupService: Send + Sync + 'static {
    /// Admits an encoded write request (limits, arrival stamps), proposes it through `group`
    /// and returns the encoded reply. Called on the replica the sender believes leads.
    fn propose(
        &self,
        group: GroupHandle,
        request: Vec<u8>,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, ApiError>> + Send + 'static>>;

    /// Answers an encoded read-only query from the local replica.
    fn query(&self, request: &[u8]) -> Result<Vec<u8>, ApiError>;
}

pub struct InternalService {
    host: RaftHost,
}

impl InternalService {
    pub fn new(host: RaftHost) -> InternalServer<InternalService> {
        InternalServer::new(InternalService { host })
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    fn group(&self, id: u64) -> Result<GroupHandle, Status> {
        self.host
            .group(id)
            .ok_or_else(|| Status::not_found(format!("group {id} is not hosted on this node")))
    }
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Status> {
    bincode::deserialize(bytes)
        .map_err(|e| Status::invalid_argument(format!("bad raft message: {e}")))
}

fn reply<T: serde::Serialize, E: std::fmt::Display>(
    group: u64,
    r: Result<T, E>,
) -> Result<Response<RaftMessage>, Status> {
    let r: Result<T, String> = r.map_err(|e| e.to_string());
    let payload = bincode::serialize(&r).map_err(|e| Status::internal(e.to_string()))?;
    Ok(Response::new(RaftMessage {
        group_id: group,
        payload: payload.into(),
    }))
}

#[tonic::async_trait]
impl Internal for InternalService {
    #[tracing::instrument(name = "raft.append", skip_all, fields(group_id = req.get_ref().group_id))]
    async fn raft_append(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let m = req.into_inner();
        let g = self.group(m.group_id)?;
        let rpc: openraft::raft::AppendEntriesRequest<TypeConfig> = decode(&m.payload)?;
        // What the leader had committed when this replica first heard from it: the replica's
        // catch-up target for readiness.
        self.host.note_append(
            m.group_id,
            &rpc.vote,
            rpc.leader_commit.as_ref().map(|l| l.index()),
        );
        reply(m.group_id, g.raft().append_entries(rpc).await)
    }

    #[tracing::instrument(name = "raft.vote", skip_all, fields(group_id = req.get_ref().group_id))]
    async fn raft_vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let m = req.into_inner();
        let g = self.group(m.group_id)?;
        reply(m.group_id, g.raft().vote(decode(&m.payload)?).await)
    }

    #[tracing::instrument(name = "raft.pre_vote", skip_all, fields(group_id = req.get_ref().group_id))]
    async fn raft_pre_vote(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let m = req.into_inner();
        let g = self.group(m.group_id)?;
        reply(m.group_id, g.raft().pre_vote(decode(&m.payload)?).await)
    }

    #[tracing::instrument(name = "raft.snapshot", skip_all, fields(group_id))]
    async fn raft_snapshot(
        &self,
        req: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<RaftMessage>, Status> {
        let mut stream = req.into_inner();
        let first = stream
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
        let group = first.group_id;
        tracing::Span::current().record("group_id", group);
        let g = self.group(group)?;
        let (vote, meta): (Vote, SnapshotMeta) = decode(&first.header)?;
        let path = receiving_path(&self.host.snapshot_dir(), group);
        let io = |e: std::io::Error| Status::internal(format!("receiving snapshot: {e}"));
        let mut rx = SnapshotReceiver::create(&path).map_err(io)?;
        rx.write(&first.data).map_err(io)?;
        while let Some(chunk) = stream.message().await? {
            rx.write(&chunk.data).map_err(io)?;
        }
        let file = tokio::task::spawn_blocking(move || rx.finish())
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| Status::data_loss(format!("received snapshot is damaged: {e}")))?;
        let snapshot: Snapshot = Snapshot {
            meta,
            snapshot: file,
        };
        let r = g.raft().install_full_snapshot(vote, snapshot).await;
        // Installing moves the file away; one still here was refused (a stale vote).
        let _ = std::fs::remove_file(&path);
        reply(group, r)
    }

    #[tracing::instrument(name = "raft.transfer_leader", skip_all, fields(group_id = req.get_ref().group_id))]
    async fn raft_transfer_leader(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let m = req.into_inner();
        let g = self.group(m.group_id)?;
        let r: openraft::raft::TransferLeaderRequest<TypeConfig> = decode(&m.payload)?;
        // A stopping node hands leaderships away; it must not take one over.
        if self.host.is_stopping() && *r.to_node_id() == self.host.node_id() {
            return Err(Status::unavailable("this node is shutting down"));
        }
        reply(m.group_id, g.raft().handle_transfer_leader(r).await)
    }

    #[tracing::instrument(name = "raft.propose", skip_all, fields(group_id = req.get_ref().group_id))]
    async fn propose(&self, req: Request<GroupMessage>) -> Result<Response<GroupMessage>, Status> {
        let m = req.into_inner();
        let Some(g) = self.host.group(m.group_id) else {
            return Err(ApiError::not_leader(None).to_status());
        };
        let Some(service) = g.service() else {
            return Err(
                ApiError::internal(format!("group {} takes no requests", m.group_id)).to_status(),
            );
        };
        match service.propose(g, m.payload.to_vec()).await {
            Ok(r) => Ok(Response::new(GroupMessage {
                group_id: m.group_id,
                payload: r.into(),
                map_epoch: 0,
            })),
            Err(e) => Err(e.to_status()),
        }
    }

    #[tracing::instrument(name = "raft.query", skip_all, fields(group_id = req.get_ref().group_id))]
    async fn query(&self, req: Request<GroupMessage>) -> Result<Response<GroupMessage>, Status> {
        let m = req.into_inner();
        let Some(q) = self.host.group(m.group_id).and_then(|g| g.service()) else {
            return Err(ApiError::not_leader(None).to_status());
        };
        if !self.host.serves_reads(m.group_id) {
            // The caller moves on to another replica.
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                format!(
                    "this replica of group {} has not caught up with its leader yet",
                    m.group_id
                ),
            )
            .to_status());
        }
        let payload = m.payload;
        let out: Arc<dyn GroupService> = q;
        let r = tokio::task::spawn_blocking(move || out.query(&payload))
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        match r {
            Ok(b) => Ok(Response::new(GroupMessage {
                group_id: m.group_id,
                payload: b.into(),
                map_epoch: 0,
            })),
            Err(e) => Err(e.to_status()),
        }
    }

    #[tracing::instrument(name = "raft.transfer_leadership", skip_all, fields(group_id = req.get_ref().group_id, to = req.get_ref().to))]
    async fn transfer_leadership(
        &self,
        req: Request<TransferLeadershipRequest>,
    ) -> Result<Response<TransferLeadershipResponse>, Status> {
        let m = req.into_inner();
        let g = self.group(m.group_id)?;
        let status = g.status();
        if !status.is_leader {
            return Err(ApiError::not_leader(status.leader).to_status());
        }
        if !status.voters.contains(&m.to) {
            return Err(ApiError::invalid(format!(
                "node {} is not a voter of group {}",
                m.to, m.group_id
            ))
            .to_status());
        }
        g.transfer_leader(m.to)
            .await
            .map_err(|e| ApiError::new(streamd_proto::ErrorCode::Unavailable, e).to_status())?;
        Ok(Response::new(TransferLeadershipResponse {}))
    }

    async fn node_heartbeat(
        &self,
        req: Request<NodeHeartbeatRequest>,
    ) -> Result<Response<NodeHeartbeatResponse>, Status> {
        let m = req.into_inner();
        self.host.health().heard(
            m.from,
            m.leading.iter().copied().zip(m.terms.iter().copied()),
        );
        Ok(Response::new(NodeHeartbeatResponse {
            node_id: self.host.node_id(),
        }))
    }
}
