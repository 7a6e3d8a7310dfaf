//! Carries out what the planner (`streamd_meta::plan_node`) decides for this node: opens and
//! initializes shard replicas, drops replicas of deleted streams, reports new leaders to the
//! metadata group, drives reshards on the metadata leader (seal the parents, commit the wave),
//! and has shard leaders trim records past their stream's retention.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use streamd_meta::{LocalGroup, MetaCommand, NodeAction, plan_node};
use streamd_proto::ids::ShardId;
use streamd_shard::command::ShardRequest;
use streamd_shard::{SHARD_TREE, ShardReader, ShardService, ShardState, ShardStateMachine};
use tokio::sync::watch;

use crate::node::Node;

const TICK: Duration = Duration::from_millis(250);
const RETENTION_EVERY: Duration = Duration::from_secs(60);

pub(crate) async fn run(node: Node) {
    let in_flight: Arc<Mutex<HashSet<u64>>> = Arc::default();
    // When this node first saw each local group, and whether it has seen a leader since.
    let opened: Mutex<HashMap<u64, (tokio::time::Instant, bool)>> = Mutex::default();
    // Since when this node leads the metadata group: a new leader has heard from nobody yet,
    // so it judges a node down only after a full timeout of its own.
    let leading_since: Mutex<Option<tokio::time::Instant>> = Mutex::default();
    let mut changes = node.meta_changes.clone();
    let mut last_retention = tokio::time::Instant::now();
    loop {
        reconcile(&node, &in_flight, &opened, &leading_since).await;
        if last_retention.elapsed() >= RETENTION_EVERY {
            last_retention = tokio::time::Instant::now();
            trim_expired(&node);
        }
        // Wake on a metadata change or at the next tick, whichever comes first.
        let _ = tokio::time::timeout(TICK, changes.changed()).await;
    }
}

#[tracing::instrument(name = "driver.reconcile", skip_all)]
async fn reconcile(
    node: &Node,
    in_flight: &Arc<Mutex<HashSet<u64>>>,
    opened: &Mutex<HashMap<u64, (tokio::time::Instant, bool)>>,
    leading_since: &Mutex<Option<tokio::time::Instant>>,
) {
    let me = node.host.node_id();
    let meta = node.meta.read().clone();
    for n in meta.nodes.values() {
        node.host.peers().set_address(n.id, &n.addr);
    }
    let local: Vec<LocalGroup> = node
        .shards
        .read()
        .keys()
        .map(|g| {
            let status = node.host.group(*g).map(|h| h.status());
            let leader_known = status.as_ref().is_some_and(|s| s.leader.is_some());
            let mut seen = opened.lock();
            let entry = seen
                .entry(*g)
                .or_insert((tokio::time::Instant::now(), false));
            entry.1 |= leader_known;
            LocalGroup {
                group: *g,
                is_leader: status.as_ref().is_some_and(|s| s.is_leader),
                leader_seen: entry.1,
                opened_ms_ago: entry.0.elapsed().as_millis() as u64,
                voters: status.map(|s| s.voters).unwrap_or_default(),
            }
        })
        .collect();
    opened
        .lock()
        .retain(|g, _| local.iter().any(|l| l.group == *g));
    let meta_status = node
        .host
        .group(streamd_raft::META_GROUP)
        .map(|g| g.status());
    let meta_leader = meta_status.as_ref().is_some_and(|s| s.is_leader);
    let down = {
        let mut lead = leading_since.lock();
        match (&meta_status, meta_leader) {
            (Some(st), true) => {
                let since = *lead.get_or_insert_with(tokio::time::Instant::now);
                nodes_down(st, since, node.config.node_down_timeout)
            }
            _ => {
                *lead = None;
                BTreeSet::new()
            }
        }
    };
    if meta_leader {
        reconcile_meta_voters(node, &meta, meta_status.as_ref(), in_flight);
        // A draining metadata leader hands the metadata group over too.
        if meta.draining.contains(&me)
            && let Some(st) = &meta_status
            && let Some(to) = st
                .voters
                .iter()
                .copied()
                .find(|v| *v != me && !meta.draining.contains(v) && !down.contains(v))
            && let Some(h) = node.host.group(streamd_raft::META_GROUP)
            && let Err(e) = h.transfer_leader(to).await
        {
            tracing::info!(error = %e, "metadata leadership not handed over");
        }
    }
    let now = streamd_shard::now_ms();
    for action in plan_node(&meta, me, &local, meta_leader, now, &down) {
        match action {
            NodeAction::OpenShard {
                group,
                members,
                initialize,
            } => {
                if let Err(e) = open_shard(node, group).await {
                    tracing::error!(group_id = group, error = %e, "failed to open shard replica");
                    continue;
                }
                if initialize
                    && let Some(h) = node.host.group(group)
                    && let Err(e) = h.initialize(&members).await
                {
                    tracing::warn!(group_id = group, error = %e, "failed to initialize shard group");
                }
            }
            NodeAction::InitializeGroup { group, members } => {
                if let Some(h) = node.host.group(group) {
                    // Refused harmlessly when the group already formed meanwhile.
                    if let Err(e) = h.initialize(&members).await {
                        tracing::debug!(group_id = group, error = %e, "group not initialized by this replica");
                    } else {
                        tracing::info!(
                            group_id = group,
                            "initializing a group its first replica did not form"
                        );
                    }
                }
            }
            NodeAction::MoveReplica { group, from, to } => {
                let key = group | (1 << 62);
                if !in_flight.lock().insert(key) {
                    continue;
                }
                tracing::info!(
                    group_id = group,
                    from,
                    to,
                    "moving a replica off a node that is down"
                );
                let gw = node.gateway.clone();
                let in_flight = in_flight.clone();
                tokio::spawn(async move {
                    if let Err(e) = gw
                        .propose_meta(&MetaCommand::MoveReplica { group, from, to })
                        .await
                    {
                        tracing::info!(group_id = group, error = %e, "replica not moved yet");
                    }
                    in_flight.lock().remove(&key);
                });
            }
            NodeAction::ReconcileMembers { group, add, voters } => {
                let key = group | (1 << 61);
                if !in_flight.lock().insert(key) {
                    continue;
                }
                let Some(h) = node.host.group(group) else {
                    in_flight.lock().remove(&key);
                    continue;
                };
                let in_flight = in_flight.clone();
                tokio::spawn(async move {
                    tracing::info!(
                        group_id = group,
                        ?add,
                        ?voters,
                        "changing the group's replicas to match the shard map"
                    );
                    match h.change_voters(add, voters).await {
                        Ok(()) => tracing::info!(
                            group_id = group,
                            "group membership matches the shard map"
                        ),
                        Err(e) => {
                            tracing::info!(group_id = group, error = %e, "group membership not changed yet")
                        }
                    }
                    in_flight.lock().remove(&key);
                });
            }
            NodeAction::TransferLeader { group, to } => {
                let key = group | (1 << 60);
                if !in_flight.lock().insert(key) {
                    continue;
                }
                if let Some(h) = node.host.group(group) {
                    tracing::info!(group_id = group, to, "draining: handing leadership over");
                    if let Err(e) = h.transfer_leader(to).await {
                        tracing::info!(group_id = group, error = %e, "leadership not handed over");
                    }
                }
                in_flight.lock().remove(&key);
            }
            NodeAction::RemoveNode { id } => {
                let key = id | (1 << 59);
                if !in_flight.lock().insert(key) {
                    continue;
                }
                let gw = node.gateway.clone();
                let in_flight = in_flight.clone();
                tokio::spawn(async move {
                    match gw.propose_meta(&MetaCommand::RemoveNode { id }).await {
                        Ok(_) => tracing::info!(node = id, "drained node removed from the cluster"),
                        Err(e) => {
                            tracing::info!(node = id, error = %e, "drained node not removed yet")
                        }
                    }
                    in_flight.lock().remove(&key);
                });
            }
            NodeAction::DropGroup { group } => {
                node.shards.write().remove(&group);
                if let Err(e) = node.host.remove_group(group, SHARD_TREE).await {
                    tracing::error!(group_id = group, error = %e, "failed to drop shard replica");
                }
            }
            NodeAction::ActivateConsumer { arn } => {
                let key = u64::MAX;
                if !in_flight.lock().insert(key) {
                    continue;
                }
                let gw = node.gateway.clone();
                let in_flight = in_flight.clone();
                tokio::spawn(async move {
                    if let Err(e) = gw
                        .propose_meta(&MetaCommand::ActivateConsumer { arn })
                        .await
                    {
                        tracing::debug!(error = %e, "consumer not activated yet");
                    }
                    in_flight.lock().remove(&key);
                });
            }
            NodeAction::DriveReshard {
                stream,
                op_id,
                parents,
            } => {
                // Op ids are unique and never collide with group ids in this set: both are
                // tracked, but ops in the upper half of the key space.
                let key = op_id | (1 << 63);
                if !in_flight.lock().insert(key) {
                    continue;
                }
                let gw = node.gateway.clone();
                let in_flight = in_flight.clone();
                tokio::spawn(async move {
                    if let Err(e) = drive_reshard(&gw, &stream, op_id, parents).await {
                        tracing::info!(stream = %stream, op_id, error = %e, "reshard step not done yet; retrying");
                    }
                    in_flight.lock().remove(&key);
                });
            }
            NodeAction::ExpireShards { stream } => {
                let gw = node.gateway.clone();
                tokio::spawn(async move {
                    let cmd = MetaCommand::ExpireShards {
                        name: stream,
                        now_ms: streamd_shard::now_ms(),
                    };
                    if let Err(e) = gw.propose_meta(&cmd).await {
                        tracing::debug!(error = %e, "closed shards not expired yet");
                    }
                });
            }
            NodeAction::ReportReady { group } => {
                if !in_flight.lock().insert(group) {
                    continue;
                }
                let gw = node.gateway.clone();
                let in_flight = in_flight.clone();
                tokio::spawn(async move {
                    if let Err(e) = gw
                        .propose_meta(&MetaCommand::ShardReady { group_id: group })
                        .await
                    {
                        tracing::debug!(group_id = group, error = %e, "shard ready not reported yet");
                    }
                    in_flight.lock().remove(&group);
                });
            }
        }
    }
}

/// Removes from the metadata group's voters the nodes the metadata no longer lists.
fn reconcile_meta_voters(
    node: &Node,
    meta: &streamd_meta::MetaState,
    status: Option<&streamd_raft::GroupStatus>,
    in_flight: &Arc<Mutex<HashSet<u64>>>,
) {
    let Some(st) = status else {
        return;
    };
    let Some(voters) = streamd_meta::plan_meta_voters(meta, &st.voters) else {
        return;
    };
    let key = streamd_raft::META_GROUP | (1 << 61);
    if !in_flight.lock().insert(key) {
        return;
    }
    let Some(h) = node.host.group(streamd_raft::META_GROUP) else {
        in_flight.lock().remove(&key);
        return;
    };
    let in_flight = in_flight.clone();
    tokio::spawn(async move {
        tracing::info!(?voters, "removing departed nodes from the metadata group");
        if let Err(e) = h.change_voters(None, voters).await {
            tracing::info!(error = %e, "metadata group voters not changed yet");
        }
        in_flight.lock().remove(&key);
    });
}

/// The metadata group's members its leader has not heard from for `timeout` (members it never
/// heard from count from when it became leader).
fn nodes_down(
    meta: &streamd_raft::GroupStatus,
    leading_since: tokio::time::Instant,
    timeout: Duration,
) -> BTreeSet<u64> {
    let timeout_ms = timeout.as_millis() as u64;
    let led_ms = leading_since.elapsed().as_millis() as u64;
    meta.acked_ms_ago
        .iter()
        .filter(|(_, ago)| ago.unwrap_or(led_ms) >= timeout_ms && led_ms >= timeout_ms)
        .map(|(id, _)| *id)
        .collect()
}

/// Seals every parent of reshard `op_id` through its own log (idempotent: a parent sealed
/// before answers its first seal), then commits the wave with their ending sequence numbers.
#[tracing::instrument(name = "driver.reshard", skip(gw, parents))]
async fn drive_reshard(
    gw: &streamd_gateway::Gateway,
    stream: &str,
    op_id: u64,
    parents: Vec<(ShardId, u64, Vec<u64>)>,
) -> Result<(), streamd_proto::ApiError> {
    let seals = parents
        .into_iter()
        .map(|(shard, group, replicas)| async move {
            let ending = gw.seal_shard(group, &replicas, op_id).await?;
            Ok::<_, streamd_proto::ApiError>((shard, ending))
        });
    let endings = futures::future::try_join_all(seals).await?;
    tracing::info!(
        stream,
        op_id,
        parents = endings.len(),
        "parents sealed; committing the reshard"
    );
    gw.propose_meta(&MetaCommand::CompleteReshard {
        name: stream.to_string(),
        op_id,
        endings,
        now_ms: streamd_shard::now_ms(),
    })
    .await?;
    Ok(())
}

async fn open_shard(node: &Node, group: u64) -> std::io::Result<()> {
    let state = Arc::new(RwLock::new(ShardState::default()));
    let (tx, rx) = watch::channel(None);
    let sm = ShardStateMachine::new(group, state.clone(), tx);
    let tree = node
        .host
        .db()
        .tree(SHARD_TREE)
        .map_err(std::io::Error::from)?;
    let reader = ShardReader::new(group, tree, state, rx);
    let service = Arc::new(ShardService::new(group, reader, node.limits));
    node.host
        .open_group(group, SHARD_TREE, Box::new(sm), Some(service.clone()))
        .await?;
    node.shards.write().insert(group, service);
    Ok(())
}

/// Shard leaders propose a trim of everything older than the stream's retention.
fn trim_expired(node: &Node) {
    let now = streamd_shard::now_ms();
    let meta = node.meta.read().clone();
    for (stream, sh) in meta.all_shards() {
        let Some(h) = node.host.group(sh.group_id) else {
            continue;
        };
        if !h.status().is_leader {
            continue;
        }
        let Some(service) = node.shards.read().get(&sh.group_id).cloned() else {
            continue;
        };
        let cutoff_ms = now - i64::from(stream.retention_hours) * 3_600_000;
        let Ok(req) = bincode::serialize(&ShardRequest::Trim { cutoff_ms }) else {
            continue;
        };
        let group = sh.group_id;
        tokio::spawn(async move {
            if let Err(e) = streamd_raft::GroupService::propose(&*service, h, req).await {
                tracing::debug!(group_id = group, error = %e, "retention trim not applied");
            }
        });
    }
}
