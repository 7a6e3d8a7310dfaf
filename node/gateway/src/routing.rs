//! Reaching the replica a request needs.
//!
//! Writes go to the group's leader: the local replica when this node leads, otherwise a peer
//! through the shared per-node channel. A NotLeader answer (the write was certainly not
//! proposed) is retried at the hinted leader, or the next replica, with bounded exponential
//! backoff. An answer that leaves the outcome unknown (timeout, connection lost mid-call) is
//! returned to the caller as is: this layer never duplicates a write.

use std::time::Duration;

use streamd_meta::{MetaCommand, MetaReply, MetaResult};
use streamd_proto::{ApiError, ErrorCode};
use streamd_raft::{GroupService, META_GROUP};
use tokio::time::Instant;

use crate::Gateway;

/// How long a request keeps looking for a leader before it gives up.
const LEADER_DEADLINE: Duration = Duration::from_secs(12);
/// A forwarded call that takes longer has lost its leader or its quorum; its outcome is unknown
/// and the caller hears so sooner than its own timeout.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// True when the request certainly did not reach a leader, so sending it again is safe.
fn retry_safe(e: &ApiError) -> bool {
    match e.code {
        ErrorCode::NotLeader => true,
        // A refused connection never carried the request.
        ErrorCode::Unavailable => streamd_raft::never_connected(e),
        _ => false,
    }
}

impl Gateway {
    /// Sends a write to the leader of `group`, trying `replicas` when no leader is known.
    pub(crate) async fn propose_to_leader(
        &self,
        group: u64,
        replicas: &[u64],
        request: Vec<u8>,
    ) -> Result<Vec<u8>, ApiError> {
        let deadline = Instant::now() + LEADER_DEADLINE;
        let mut backoff = Duration::from_millis(20);
        let mut next_replica = 0usize;
        let mut hint: Option<u64> = None;
        loop {
            let target = hint
                .or_else(|| self.host.group(group).and_then(|g| g.status().leader))
                .or_else(|| {
                    let r = replicas.get(next_replica % replicas.len().max(1)).copied();
                    next_replica += 1;
                    r
                });
            let Some(target) = target else {
                return Err(ApiError::new(
                    ErrorCode::Unavailable,
                    format!("group {group} has no replicas"),
                ));
            };
            if target != self.host.node_id()
                && self.host.health().is_silent(target)
                && Instant::now() < deadline
            {
                // Its node stopped answering the node heartbeat (killed, paused, cut off): a call
                // there would sit out its whole timeout, holding every other shard of the
                // caller's request. The group elects another leader within an election timeout
                // of the silence; look for it instead.
                tracing::debug!(
                    group_id = group,
                    target,
                    "leader's node is silent; waiting for a new leader"
                );
                hint = None;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(250));
                continue;
            }
            let result = if target == self.host.node_id() {
                match (self.host.group(group), self.local_service(group)) {
                    (Some(h), Some(s)) => s.propose(h, request.clone()).await,
                    _ => Err(ApiError::not_leader(None)),
                }
            } else {
                let started = std::time::Instant::now();
                let answer = self
                    .host
                    .peers()
                    .propose(target, group, 0, request.clone(), CALL_TIMEOUT)
                    .await;
                streamd_raft::hops::observe(streamd_raft::hops::Hop::Forward, started);
                answer
            };
            match result {
                Ok(r) => return Ok(r),
                Err(e) if retry_safe(&e) && Instant::now() < deadline => {
                    hint = e.leader_hint.filter(|h| *h != target);
                    tracing::debug!(group_id = group, target, error = %e, "retrying at another replica");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
                Err(e) if e.code == ErrorCode::NotLeader => {
                    return Err(ApiError::new(
                        ErrorCode::Unavailable,
                        format!(
                            "no leader for group {group} within {}s",
                            LEADER_DEADLINE.as_secs()
                        ),
                    ));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Seals shard group `group` for reshard `op_id` on its leader; returns the ending sequence
    /// number (the first seal's, when the shard was sealed before).
    pub async fn seal_shard(
        &self,
        group: u64,
        replicas: &[u64],
        op_id: u64,
    ) -> Result<u128, ApiError> {
        let req = bincode::serialize(&streamd_shard::command::ShardRequest::Seal { op_id })
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let reply = self.propose_to_leader(group, replicas, req).await?;
        match bincode::deserialize(&reply).map_err(|e| ApiError::internal(e.to_string()))? {
            streamd_shard::command::ShardReply::Sealed { ending_seq } => Ok(ending_seq),
            _ => Err(ApiError::internal("unexpected reply to a seal")),
        }
    }

    /// Runs a query on a replica of `group`: the local one when this node has it and it has
    /// caught up with its leader since it was opened (`serves_reads`), else another replica.
    pub(crate) async fn query_replica(
        &self,
        group: u64,
        replicas: &[u64],
        query: Vec<u8>,
    ) -> Result<Vec<u8>, ApiError> {
        let me = self.host.node_id();
        if let Some(s) = self.local_service(group)
            && self.host.serves_reads(group)
        {
            return tokio::task::spawn_blocking(move || {
                streamd_raft::GroupService::query(&*s, &query)
            })
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        }
        let mut last = ApiError::new(
            ErrorCode::Unavailable,
            format!("no replica of group {group} answered"),
        );
        for r in replicas.iter().filter(|r| **r != me) {
            match self
                .host
                .peers()
                .query(*r, group, query.clone(), CALL_TIMEOUT)
                .await
            {
                Ok(b) => return Ok(b),
                // Only an unreachable replica sends the query on to the next; an answer (a
                // throttle, a bad position) is the shard's answer.
                Err(e) if e.code == ErrorCode::Unavailable || e.code == ErrorCode::NotLeader => {
                    last = e
                }
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    fn local_service(&self, group: u64) -> Option<std::sync::Arc<streamd_shard::ShardService>> {
        self.shards.read().get(&group).cloned()
    }

    /// Proposes a metadata command on the metadata group's leader.
    pub async fn propose_meta(&self, cmd: &MetaCommand) -> Result<MetaReply, ApiError> {
        let bytes = bincode::serialize(cmd).map_err(|e| ApiError::internal(e.to_string()))?;
        let voters: Vec<u64> = self
            .host
            .group(META_GROUP)
            .map(|g| g.status().voters.into_iter().collect())
            .unwrap_or_default();
        let deadline = Instant::now() + LEADER_DEADLINE;
        let mut backoff = Duration::from_millis(20);
        let mut next = 0usize;
        let reply = loop {
            let leader = self.host.group(META_GROUP).and_then(|g| g.status().leader);
            let target = leader.or_else(|| {
                let t = voters.get(next % voters.len().max(1)).copied();
                next += 1;
                t
            });
            let r = match target {
                Some(t) if t == self.host.node_id() => match self.host.group(META_GROUP) {
                    Some(h) => match h.service() {
                        Some(s) => s.propose(h, bytes.clone()).await,
                        None => Err(ApiError::not_leader(None)),
                    },
                    None => Err(ApiError::not_leader(None)),
                },
                Some(t) => {
                    self.host
                        .peers()
                        .propose(t, META_GROUP, 0, bytes.clone(), CALL_TIMEOUT)
                        .await
                }
                None => Err(ApiError::not_leader(None)),
            };
            match r {
                Ok(b) => break b,
                Err(e) if retry_safe(&e) && Instant::now() < deadline => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
                Err(e) if e.code == ErrorCode::NotLeader => {
                    return Err(ApiError::new(
                        ErrorCode::Unavailable,
                        "the metadata group has no leader",
                    ));
                }
                Err(e) => return Err(e),
            }
        };
        let result: MetaResult =
            bincode::deserialize(&reply).map_err(|e| ApiError::internal(e.to_string()))?;
        result.map_err(|(code, msg)| {
            ApiError::new(
                ErrorCode::from_name(&code).unwrap_or(ErrorCode::InternalFailure),
                msg,
            )
        })
    }
}
