//! The sending side of node-to-node calls.
//!
//! [`PeerClients`] keeps one lazily connected tonic channel per peer node; every group's Raft
//! traffic and every forwarded request to that node share it (HTTP/2 multiplexes them).
//! openraft reaches it through openraft-multi's `GroupNetworkAdapter`, which binds a
//! (target node, group) pair to this shared router.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use openraft::error::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RaftNetworkFactory};
use openraft_multi::{GroupNetworkAdapter, GroupRouter};
use parking_lot::RwLock;
use streamd_proto::internal::internal_client::InternalClient;
use streamd_proto::internal::{
    GroupMessage, NodeHeartbeatRequest, RaftMessage, SnapshotChunk, TransferLeadershipRequest,
};
use streamd_proto::{ApiError, ErrorCode};
use tonic::transport::{Channel, Endpoint};

use super::MAX_MESSAGE_BYTES;
use super::trace_context;
use crate::snapshot_file::SnapshotFile;
use crate::type_config::{Snapshot, TypeConfig, Vote};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct NetError(String);

/// Channels to peer nodes, by node id.
#[derive(Clone, Default)]
pub struct PeerClients {
    peers: Arc<RwLock<HashMap<u64, (String, Channel)>>>,
}

impl PeerClients {
    /// Records (or updates) where a node listens.
    pub fn set_address(&self, node: u64, addr: &str) {
        if let Some((known, _)) = self.peers.read().get(&node)
            && known == addr
        {
            return;
        }
        let uri = if addr.starts_with("http") {
            addr.to_string()
        } else {
            format!("http://{addr}")
        };
        let Ok(endpoint) = Endpoint::from_shared(uri) else {
            tracing::warn!(node, addr, "ignoring unparsable peer address");
            return;
        };
        let channel = endpoint
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            // A peer cut off mid-call is noticed within seconds, not at the OS TCP timeout.
            .http2_keep_alive_interval(Duration::from_secs(2))
            .keep_alive_timeout(Duration::from_secs(2))
            .keep_alive_while_idle(true)
            .connect_lazy();
        self.peers.write().insert(node, (addr.to_string(), channel));
    }

    /// Every node an address is known for.
    pub fn nodes(&self) -> Vec<u64> {
        self.peers.read().keys().copied().collect()
    }

    /// Sends this node's heartbeat (`from`, and the groups it leads with their terms) to `node`.
    pub(crate) async fn node_heartbeat(
        &self,
        node: u64,
        from: u64,
        leading: &[(u64, u64)],
        timeout: Duration,
    ) -> Result<(), ApiError> {
        let mut c = self.client(node).ok_or_else(|| unknown_node(node))?;
        let mut req = tonic::Request::new(NodeHeartbeatRequest {
            from,
            leading: leading.iter().map(|(g, _)| *g).collect(),
            terms: leading.iter().map(|(_, t)| *t).collect(),
        });
        req.set_timeout(timeout);
        c.node_heartbeat(req)
            .await
            .map(|_| ())
            .map_err(|s| ApiError::from_status(&s))
    }

    pub fn address(&self, node: u64) -> Option<String> {
        self.peers.read().get(&node).map(|(a, _)| a.clone())
    }

    pub fn client(&self, node: u64) -> Option<InternalClient<Channel>> {
        let ch = self.peers.read().get(&node).map(|(_, c)| c.clone())?;
        Some(
            InternalClient::new(ch)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
    }

    /// Proposes an encoded command on `node`'s replica of `group`.
    pub async fn propose(
        &self,
        node: u64,
        group: u64,
        map_epoch: u64,
        command: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, ApiError> {
        let mut c = self.client(node).ok_or_else(|| unknown_node(node))?;
        let mut req = tonic::Request::new(GroupMessage {
            group_id: group,
            payload: command.into(),
            map_epoch,
        });
        trace_context::inject(&mut req);
        req.set_timeout(timeout);
        match c.propose(req).await {
            Ok(r) => Ok(r.into_inner().payload.to_vec()),
            Err(s) => Err(ApiError::from_status(&s)),
        }
    }

    /// Runs an encoded query on `node`'s replica of `group`.
    pub async fn query(
        &self,
        node: u64,
        group: u64,
        query: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, ApiError> {
        let mut c = self.client(node).ok_or_else(|| unknown_node(node))?;
        let mut req = tonic::Request::new(GroupMessage {
            group_id: group,
            payload: query.into(),
            map_epoch: 0,
        });
        trace_context::inject(&mut req);
        req.set_timeout(timeout);
        match c.query(req).await {
            Ok(r) => Ok(r.into_inner().payload.to_vec()),
            Err(s) => Err(ApiError::from_status(&s)),
        }
    }

    /// Asks `node`, which should lead `group`, to hand leadership to voter `to`.
    pub async fn transfer_leadership(
        &self,
        node: u64,
        group: u64,
        to: u64,
        timeout: Duration,
    ) -> Result<(), ApiError> {
        let mut c = self.client(node).ok_or_else(|| unknown_node(node))?;
        let mut req = tonic::Request::new(TransferLeadershipRequest {
            group_id: group,
            to,
        });
        trace_context::inject(&mut req);
        req.set_timeout(timeout);
        c.transfer_leadership(req)
            .await
            .map(|_| ())
            .map_err(|s| ApiError::from_status(&s))
    }

    async fn raft_call<Req, Resp>(
        &self,
        target: u64,
        group: u64,
        kind: RaftRpc,
        rpc: &Req,
        ttl: Duration,
    ) -> Result<Resp, NetError>
    where
        Req: serde::Serialize,
        Resp: serde::de::DeserializeOwned,
    {
        let mut c = self
            .client(target)
            .ok_or_else(|| NetError(format!("unknown node {target}")))?;
        let payload = bincode::serialize(rpc).map_err(|e| NetError(e.to_string()))?;
        let mut req = tonic::Request::new(RaftMessage {
            group_id: group,
            payload: payload.into(),
        });
        trace_context::inject(&mut req);
        req.set_timeout(ttl);
        let res = match kind {
            RaftRpc::Append => c.raft_append(req).await,
            RaftRpc::Vote => c.raft_vote(req).await,
            RaftRpc::PreVote => c.raft_pre_vote(req).await,
            RaftRpc::TransferLeader => c.raft_transfer_leader(req).await,
        };
        let reply = res.map_err(|s| NetError(format!("{}: {}", s.code(), s.message())))?;
        let decoded: Result<Resp, String> = bincode::deserialize(&reply.into_inner().payload)
            .map_err(|e| NetError(e.to_string()))?;
        decoded.map_err(NetError)
    }
}

/// Whether a failed node-to-node call found nothing listening at the peer's address (the
/// process is gone, or the address is unknown): such a call never carried its request.
pub fn never_connected(e: &ApiError) -> bool {
    let m = e.message.to_ascii_lowercase();
    m.contains("connection refused")
        || m.contains("tcp connect error")
        || m.contains("no address known")
}

/// The least time an AppendEntries carrying entries is given (see `append_entries`).
const APPEND_MIN_TTL: Duration = Duration::from_secs(5);

/// Bytes of snapshot file per chunk.
const SNAPSHOT_CHUNK: usize = 1 << 20;

impl PeerClients {
    /// Streams a snapshot file to `target` in chunks, so its size is bounded by neither memory
    /// nor the message limit. The deadline grows with the file (a second per 8 MiB on top of
    /// openraft's).
    async fn send_snapshot(
        &self,
        target: u64,
        group: u64,
        vote: Vote,
        snapshot: Snapshot,
        ttl: Duration,
    ) -> Result<SnapshotResponse<TypeConfig>, NetError> {
        let mut c = self
            .client(target)
            .ok_or_else(|| NetError(format!("unknown node {target}")))?;
        let header =
            bincode::serialize(&(vote, snapshot.meta)).map_err(|e| NetError(e.to_string()))?;
        let file = Arc::new(snapshot.snapshot);
        let len = file.len();
        let first = SnapshotChunk {
            group_id: group,
            header: header.into(),
            data: Default::default(),
        };
        let chunks = futures::stream::unfold(0u64, move |offset| {
            let file = file.clone();
            async move {
                if offset >= len {
                    return None;
                }
                let read =
                    tokio::task::spawn_blocking(move || file.read_chunk(offset, SNAPSHOT_CHUNK))
                        .await;
                match read {
                    Ok(Ok(data)) if !data.is_empty() => {
                        let next = offset + data.len() as u64;
                        let chunk = SnapshotChunk {
                            group_id: group,
                            header: Default::default(),
                            data: data.into(),
                        };
                        Some((chunk, next))
                    }
                    // The receiver checks the whole file, so a short stream is refused there.
                    other => {
                        tracing::warn!(group_id = group, ?other, "reading snapshot file failed");
                        None
                    }
                }
            }
        });
        let mut req = tonic::Request::new(futures::stream::iter([first]).chain(chunks));
        trace_context::inject(&mut req);
        req.set_timeout(ttl + Duration::from_secs(len >> 23));
        let reply = c
            .raft_snapshot(req)
            .await
            .map_err(|s| NetError(format!("{}: {}", s.code(), s.message())))?;
        let decoded: Result<SnapshotResponse<TypeConfig>, String> =
            bincode::deserialize(&reply.into_inner().payload)
                .map_err(|e| NetError(e.to_string()))?;
        decoded.map_err(NetError)
    }
}

fn unknown_node(node: u64) -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        format!("no address known for node {node}"),
    )
}

#[derive(Clone, Copy)]
enum RaftRpc {
    Append,
    Vote,
    PreVote,
    TransferLeader,
}

fn unreachable(e: NetError) -> RPCError<TypeConfig> {
    RPCError::Unreachable(Unreachable::new(&e))
}

impl GroupRouter<TypeConfig, u64> for PeerClients {
    type SnapshotData = SnapshotFile;

    async fn append_entries(
        &self,
        target: u64,
        group_id: u64,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let started = std::time::Instant::now();
        // openraft gives an AppendEntries one heartbeat interval (250 ms). A message of many
        // large entries to a follower fsyncing under load can take longer; timed out, it is
        // sent again whole and times out again, and the group stops committing for good.
        // Heartbeats keep their own deadline, so a slow follower still counts as alive or not.
        let ttl = if rpc.entries.is_empty() {
            option.hard_ttl()
        } else {
            option.hard_ttl().max(APPEND_MIN_TTL)
        };
        let answer = self
            .raft_call(target, group_id, RaftRpc::Append, &rpc, ttl)
            .await
            .map_err(unreachable);
        // Heartbeats (no entries) would drown the replication round trips.
        if !rpc.entries.is_empty() {
            crate::hops::observe(crate::hops::Hop::Replicate, started);
        }
        answer
    }

    async fn vote(
        &self,
        target: u64,
        group_id: u64,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.raft_call(target, group_id, RaftRpc::Vote, &rpc, option.hard_ttl())
            .await
            .map_err(unreachable)
    }

    async fn pre_vote(
        &self,
        target: u64,
        group_id: u64,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.raft_call(target, group_id, RaftRpc::PreVote, &rpc, option.hard_ttl())
            .await
            .map_err(unreachable)
    }

    async fn full_snapshot(
        &self,
        target: u64,
        group_id: u64,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let call = self.send_snapshot(target, group_id, vote, snapshot, option.hard_ttl());
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            r = call => r.map_err(|e| StreamingError::Unreachable(Unreachable::new(&e))),
        }
    }

    async fn transfer_leader(
        &self,
        target: u64,
        group_id: u64,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.raft_call(
            target,
            group_id,
            RaftRpc::TransferLeader,
            &req,
            option.hard_ttl(),
        )
        .await
        .map_err(unreachable)
    }
}

/// openraft's network factory for one group: learns peer addresses from membership and hands
/// out adapters over the shared [`PeerClients`].
pub(crate) struct GroupNetwork {
    pub(crate) peers: PeerClients,
    pub(crate) group: u64,
}

impl RaftNetworkFactory<TypeConfig> for GroupNetwork {
    type Network = GroupNetworkAdapter<TypeConfig, u64, PeerClients>;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Self::Network {
        self.peers.set_address(target, &node.addr);
        GroupNetworkAdapter::new(self.peers.clone(), target, self.group)
    }
}
