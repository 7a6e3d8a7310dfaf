//! Carries out what the planner (`streamd_meta::plan_node`) decides for this node: opens and
//! initializes shard replicas, drops replicas of deleted streams, reports new leaders to the
//! metadata group, drives reshards on the metadata leader (seal the parents, commit the wave),
//! and has shard leaders trim records past their stream's retention. On the metadata leader it
//! also keeps the metadata group's voters equal to the cluster's nodes (joins and removals),
//! and runs leader balancing (`streamd_meta::plan_leader_balance`) at a bounded rate.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use parking_lot::{Mutex, RwLock};
use streamd_meta::{
    LocalGroup, MAX_LEADER_TRANSFERS, MetaCommand, NodeAction, plan_leader_balance, plan_node,
};
use streamd_proto::ids::ShardId;
use streamd_shard::command::ShardRequest;
use streamd_shard::{SHARD_TREE, ShardReader, ShardService, ShardState, ShardStateMachine};
use tokio::sync::watch;

use crate::node::Node;

const TICK: Duration = Duration::from_millis(250);
/// Shortest time between two passes: a burst of metadata changes (thousands of shards created,
/// each reporting ready and its leader) is taken in a few passes, not one pass per change,
/// since every pass reads every local group.
const MIN_PASS_GAP: Duration = Duration::from_millis(50);
/// The gap is at least this many times the CPU a pass spent reading the groups and planning,
/// so that the driver takes a bounded share of a core however many groups the node runs.
const PASS_GAP_PER_PLANNING: u32 = 10;
const MAX_PASS_GAP: Duration = Duration::from_secs(1);
/// While neither the metadata nor any local group changes, a full pass runs only this often:
/// it still notices what time alone decides (nodes down, balancing, retries of failed steps).
const IDLE_PASS_EVERY: Duration = Duration::from_secs(1);
/// Replicas opened at once in one pass: opening one waits for its sled tree and its first
/// log writes, which other opens can overlap.
const OPEN_AT_ONCE: usize = 32;
const RETENTION_EVERY: Duration = Duration::from_secs(60);
/// How long the replicas of a new group leave its first election to the one chosen to lead it
/// before forming the group themselves (`GroupHandle::initialize_after`).
const FIRST_ELECTION_GRACE: Duration = Duration::from_millis(1500);
/// Longest one membership step may take (add a learner, wait for it to catch up, switch the
/// voters). openraft waits for a learner without a deadline; a learner that died meanwhile
/// would hold the step, and with it every later change of the group, forever.
const MEMBERSHIP_STEP_LIMIT: Duration = Duration::from_secs(120);
/// A member the metadata leader has not heard from for this long is not counted on for
/// rebalancing or leader balancing, well before the down timeout declares it lost.
const QUIET_AFTER: Duration = Duration::from_secs(3);
/// Leader balancing starts a round at most this often. Each round moves at most
/// `MAX_LEADER_TRANSFERS` leaderships and only narrows the spread, and the next round plans
/// from the leader hints the transfers reported in the meantime, so leaderships never flap.
const LEADER_BALANCE_EVERY: Duration = Duration::from_secs(2);
/// How long the metadata leader waits for a group leader to start a leadership transfer.
const TRANSFER_CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a replica may stay behind its leader's commit, applying nothing, after this node
/// cut a torn WAL tail, before it asks for a new leader (`unstick_replicas`).
const STUCK_AFTER: Duration = Duration::from_secs(5);

/// What the driver remembers between ticks.
#[derive(Default)]
struct DriverState {
    tasks: Tasks,
    /// Since when this node leads the metadata group: a new leader has heard from nobody yet,
    /// so it judges a node down only after a full timeout of its own.
    leading_since: Mutex<Option<tokio::time::Instant>>,
    /// When the last leader-balancing round started.
    last_balance: Mutex<Option<tokio::time::Instant>>,
    /// Local replicas behind their leader's commit: the applied index and since when.
    behind: Mutex<HashMap<u64, (u64, tokio::time::Instant)>>,
}

pub(crate) async fn run(node: Node) {
    let st = DriverState::default();
    let mut changes = node.meta_changes.clone();
    let mut last_retention = tokio::time::Instant::now();
    let mut meta_changed = true;
    let mut last_pass: Option<(u64, tokio::time::Instant)> = None;
    loop {
        let started = tokio::time::Instant::now();
        // Read before the pass, so that a change during it brings another one.
        let group_changes = node.host.changes();
        let nothing_moved = !meta_changed
            && last_pass
                .is_some_and(|(c, at)| c == group_changes && at.elapsed() < IDLE_PASS_EVERY);
        let planning = if nothing_moved {
            Duration::ZERO
        } else {
            last_pass = Some((group_changes, started));
            reconcile(&node, &st).await
        };
        if last_retention.elapsed() >= RETENTION_EVERY {
            last_retention = tokio::time::Instant::now();
            trim_expired(&node);
        }
        // Wake on a metadata change or at the next tick, whichever comes first.
        meta_changed = tokio::time::timeout(TICK, changes.changed()).await.is_ok();
        let gap = MIN_PASS_GAP
            .max(planning * PASS_GAP_PER_PLANNING)
            .min(MAX_PASS_GAP);
        tokio::time::sleep_until(started + gap).await;
    }
}

/// One pass; returns how long reading the local groups and planning took (the part that grows
/// with the number of groups, without the opens it waits for).
#[tracing::instrument(name = "driver.reconcile", skip_all)]
async fn reconcile(node: &Node, st: &DriverState) -> Duration {
    let planning_started = std::time::Instant::now();
    let tasks = &st.tasks;
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
            let view = node.host.group(*g).map(|h| h.membership_view());
            LocalGroup {
                group: *g,
                is_leader: view.as_ref().is_some_and(|v| v.is_leader),
                term: view.as_ref().map_or(0, |v| v.term),
                voters_committed: view.as_ref().is_some_and(|v| v.voters_committed),
                voters: view.map(|v| v.voters).unwrap_or_default(),
            }
        })
        .collect();
    let meta_status = node
        .host
        .group(streamd_raft::META_GROUP)
        .map(|g| g.status());
    let meta_leader = meta_status.as_ref().is_some_and(|s| s.is_leader);
    let down = {
        let mut lead = st.leading_since.lock();
        match (&meta_status, meta_leader) {
            (Some(status), true) => {
                let since = *lead.get_or_insert_with(tokio::time::Instant::now);
                nodes_down(status, since, node.config.node_down_timeout)
            }
            _ => {
                *lead = None;
                BTreeSet::new()
            }
        }
    };
    // Nodes rebalancing and leader balancing wait for (metadata leader only): members not yet
    // voters of the metadata group (still joining), and members not heard from just now.
    let unsettled: BTreeSet<u64> = match (&meta_status, meta_leader) {
        (Some(status), true) => meta
            .nodes
            .keys()
            .copied()
            .filter(|n| !status.voters.contains(n) || quiet(status, *n))
            .collect(),
        _ => BTreeSet::new(),
    };
    if meta_leader {
        reconcile_meta_voters(node, &meta, meta_status.as_ref(), tasks);
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
    if meta_leader {
        balance_leaders(node, st, &meta, &down, &unsettled);
    }
    unstick_replicas(node, st);
    let now = streamd_shard::now_ms();
    let mut opens = Vec::new();
    let (mut leaders, mut ready) = (Vec::new(), Vec::new());
    let actions = plan_node(&meta, me, &local, meta_leader, now, &down, &unsettled);
    let planning = planning_started.elapsed();
    for action in actions {
        match action {
            NodeAction::OpenShard {
                group,
                members,
                initialize,
                campaign,
            } => opens.push((group, members, initialize, campaign)),
            NodeAction::DropGroup { group } => {
                node.shards.write().remove(&group);
                if let Err(e) = node.host.remove_group(group, SHARD_TREE).await {
                    tracing::error!(group_id = group, error = %e, "failed to drop shard replica");
                }
            }
            NodeAction::ReconcileMembers { group, add, voters } => {
                let Some(h) = node.host.group(group) else {
                    continue;
                };
                tasks.spawn_once(Task::Members(group), async move {
                    tracing::info!(group_id = group, ?add, ?voters, "changing the group's replicas to match the shard map");
                    match tokio::time::timeout(MEMBERSHIP_STEP_LIMIT, h.change_voters(add, voters)).await {
                        Ok(Ok(())) => tracing::info!(group_id = group, "group membership matches the shard map"),
                        Ok(Err(e)) => tracing::info!(group_id = group, error = %e, "group membership not changed yet"),
                        Err(_) => tracing::warn!(group_id = group, limit = ?MEMBERSHIP_STEP_LIMIT, "new replica did not catch up in time; retrying"),
                    }
                });
            }
            NodeAction::TransferLeader { group, to } => {
                let Some(h) = node.host.group(group) else {
                    continue;
                };
                tasks.spawn_once(Task::Transfer(group), async move {
                    tracing::info!(
                        group_id = group,
                        to,
                        "draining or moved away: handing leadership over"
                    );
                    if let Err(e) = h.transfer_leader(to).await {
                        tracing::info!(group_id = group, error = %e, "leadership not handed over");
                    }
                });
            }
            NodeAction::DriveReshard {
                stream,
                op_id,
                parents,
            } => {
                let gw = node.gateway.clone();
                tasks.spawn_once(Task::Reshard(op_id), async move {
                    if let Err(e) = drive_reshard(&gw, &stream, op_id, parents).await {
                        tracing::info!(stream = %stream, op_id, error = %e, "reshard step not done yet; retrying");
                    }
                });
            }
            NodeAction::MoveReplica { group, from, to } => {
                tracing::info!(
                    group_id = group,
                    from,
                    to,
                    "moving a replica (node down or draining, or rebalancing)"
                );
                let cmd = MetaCommand::MoveReplica { group, from, to };
                tasks.propose_once(node, Task::Move(group), cmd, "replica not moved yet");
            }
            NodeAction::RemoveNode { id } => {
                let cmd = MetaCommand::RemoveNode { id };
                tasks.propose_once(node, Task::Remove(id), cmd, "drained node not removed yet");
            }
            NodeAction::ActivateConsumer { arn } => {
                let cmd = MetaCommand::ActivateConsumer { arn };
                tasks.propose_once(node, Task::Consumer, cmd, "consumer not activated yet");
            }
            NodeAction::ExpireShards { stream } => {
                let cmd = MetaCommand::ExpireShards {
                    name: stream.clone(),
                    now_ms: streamd_shard::now_ms(),
                };
                tasks.propose_once(
                    node,
                    Task::Expire(stream),
                    cmd,
                    "closed shards not expired yet",
                );
            }
            NodeAction::ReportLeader { group, term } => leaders.push((group, me, term)),
            NodeAction::ReportMoved { group, to } => {
                tracing::info!(group_id = group, to, "replica move finished");
                let cmd = MetaCommand::MoveDone { group, to };
                tasks.propose_once(
                    node,
                    Task::Moved(group),
                    cmd,
                    "finished move not reported yet",
                );
            }
            NodeAction::ReportReady { group } => ready.push(group),
        }
    }
    // The planner asks again on every pass until the metadata shows them, so a batch still in
    // flight is not joined by another one carrying mostly the same reports.
    if !leaders.is_empty() || !ready.is_empty() {
        let cmd = MetaCommand::ShardReports { leaders, ready };
        tasks.propose_once(node, Task::Reports, cmd, "shard reports not taken yet");
    }
    futures::stream::iter(opens)
        .for_each_concurrent(
            OPEN_AT_ONCE,
            |(group, members, initialize, campaign)| async move {
                if let Err(e) = open_shard(node, group).await {
                    tracing::error!(group_id = group, error = %e, "failed to open shard replica");
                    return;
                }
                let Some(h) = node.host.group(group).filter(|_| initialize) else {
                    return;
                };
                if !campaign {
                    h.initialize_after(members, FIRST_ELECTION_GRACE);
                } else if let Err(e) = h.initialize_and_campaign(&members).await {
                    tracing::warn!(group_id = group, error = %e, "failed to initialize shard group");
                }
            },
        )
        .await;
    planning
}

/// Background work the driver started, one at a time per key: a slow proposal is not started
/// again by every tick while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Task {
    Reports,
    Consumer,
    Reshard(u64),
    Expire(String),
    Move(u64),
    Members(u64),
    MetaVoters,
    Transfer(u64),
    Remove(u64),
    Moved(u64),
    Balance(u64),
    Unstick(u64),
}

#[derive(Clone, Default)]
struct Tasks(Arc<Mutex<HashSet<Task>>>);

impl Tasks {
    /// Runs `work` in the background unless a task with the same key still runs.
    fn spawn_once(&self, key: Task, work: impl std::future::Future<Output = ()> + Send + 'static) {
        if !self.0.lock().insert(key.clone()) {
            return;
        }
        let running = self.0.clone();
        tokio::spawn(async move {
            work.await;
            running.lock().remove(&key);
        });
    }

    /// Proposes `cmd` to the metadata group in the background, once per key at a time; a
    /// failure is logged and the planner asks again on a later tick.
    fn propose_once(&self, node: &Node, key: Task, cmd: MetaCommand, not_yet: &'static str) {
        let gw = node.gateway.clone();
        self.spawn_once(key, async move {
            if let Err(e) = gw.propose_meta(&cmd).await {
                tracing::debug!(error = %e, "{not_yet}");
            }
        });
    }
}

/// Makes the metadata group's voters the nodes the metadata lists: removes departed nodes, and
/// adds joined ones as learners that catch up on the metadata log before they vote.
fn reconcile_meta_voters(
    node: &Node,
    meta: &streamd_meta::MetaState,
    status: Option<&streamd_raft::GroupStatus>,
    tasks: &Tasks,
) {
    let Some(change) = status.and_then(|st| streamd_meta::plan_meta_voters(meta, &st.voters))
    else {
        return;
    };
    let Some(h) = node.host.group(streamd_raft::META_GROUP) else {
        return;
    };
    tasks.spawn_once(Task::MetaVoters, async move {
        let streamd_meta::MetaVoterChange { add, voters } = change;
        match &add {
            Some((id, addr)) => tracing::info!(
                node = id,
                %addr,
                ?voters,
                "adding a joined node to the metadata group: learner until caught up, then voter"
            ),
            None => tracing::info!(?voters, "removing departed nodes from the metadata group"),
        }
        match tokio::time::timeout(MEMBERSHIP_STEP_LIMIT, h.change_voters(add, voters)).await {
            Ok(Ok(())) => tracing::info!("metadata group voters match the cluster's nodes"),
            Ok(Err(e)) => tracing::info!(error = %e, "metadata group voters not changed yet"),
            Err(_) => tracing::warn!(
                limit = ?MEMBERSHIP_STEP_LIMIT,
                "joined node did not catch up on the metadata log in time; retrying"
            ),
        }
    });
}

/// Whether the metadata leader has not heard from member `node` just now.
fn quiet(status: &streamd_raft::GroupStatus, node: u64) -> bool {
    let limit = QUIET_AFTER.as_millis() as u64;
    match status.acked_ms_ago.get(&node) {
        Some(ago) => ago.is_none_or(|ms| ms >= limit),
        // The leader itself.
        None => false,
    }
}

/// (Metadata leader.) Starts a round of leader balancing when the last one is old enough.
///
/// The metadata leader decides for every group rather than each node for its own: only the
/// shard map's leader hints show every node's count, and one decider planning from one version
/// of them cannot have two nodes pile leaderships onto the same target at once. The group's
/// current leader carries the transfer out when asked (`TransferLeadership`).
fn balance_leaders(
    node: &Node,
    st: &DriverState,
    meta: &streamd_meta::MetaState,
    down: &BTreeSet<u64>,
    unsettled: &BTreeSet<u64>,
) {
    {
        let mut last = st.last_balance.lock();
        if last.is_some_and(|t| t.elapsed() < LEADER_BALANCE_EVERY) {
            return;
        }
        *last = Some(tokio::time::Instant::now());
    }
    let away: BTreeSet<u64> = down.union(unsettled).copied().collect();
    let transfers = plan_leader_balance(meta, &away, MAX_LEADER_TRANSFERS);
    if transfers.is_empty() {
        return;
    }
    tracing::info!(?transfers, "balancing leaderships: (group, from, to)");
    let me = node.host.node_id();
    for (group, from, to) in transfers {
        let host = node.host.clone();
        st.tasks.spawn_once(Task::Balance(group), async move {
            let r = if from == me {
                match host.group(group) {
                    Some(h) => h.transfer_leader(to).await,
                    None => Err(format!("group {group} is not hosted here")),
                }
            } else {
                host.peers()
                    .transfer_leadership(from, group, to, TRANSFER_CALL_TIMEOUT)
                    .await
                    .map_err(|e| e.to_string())
            };
            if let Err(e) = r {
                tracing::info!(group_id = group, from, to, error = %e, "leadership not moved");
            }
        });
    }
}

/// After this node cut a torn tail off its WAL, a local replica may have lost entries it had
/// acknowledged (a damaged last record reads the same as a torn one). Its leader keeps
/// believing the replica holds them and never sends them again: openraft moves a follower's
/// matching index back only with `allow_log_reversion`, and that reset path panicked in
/// openraft 0.10.0-alpha.37 when every node lost unsynced writes. The replica would stay
/// behind, and the node unready, until the group's next leader change. So a replica behind its
/// leader's commit that applies nothing for `STUCK_AFTER` asks that leader to hand leadership
/// to another voter: a new leader probes every follower's real end.
fn unstick_replicas(node: &Node, st: &DriverState) {
    if !node.host.engine().cut_torn_tail_at_open() {
        return;
    }
    let me = node.host.node_id();
    let mut groups: Vec<u64> = node.shards.read().keys().copied().collect();
    groups.push(streamd_raft::META_GROUP);
    let now = tokio::time::Instant::now();
    let mut behind = st.behind.lock();
    behind.retain(|g, _| groups.contains(g));
    for group in groups {
        let Err(streamd_raft::NotCaughtUp::Behind { applied, .. }) = node.host.caught_up(group)
        else {
            behind.remove(&group);
            continue;
        };
        let since = match behind.get(&group) {
            Some((a, t)) if *a == applied => *t,
            _ => {
                behind.insert(group, (applied, now));
                continue;
            }
        };
        if since.elapsed() < STUCK_AFTER {
            continue;
        }
        let Some(status) = node.host.group(group).map(|h| h.status()) else {
            continue;
        };
        let Some(leader) = status.leader.filter(|l| *l != me) else {
            continue;
        };
        let Some(to) = status
            .voters
            .iter()
            .copied()
            .find(|v| *v != me && *v != leader)
        else {
            continue;
        };
        // Asked again only after another full wait.
        behind.insert(group, (applied, now));
        let host = node.host.clone();
        st.tasks.spawn_once(Task::Unstick(group), async move {
            tracing::warn!(
                group_id = group,
                leader,
                to,
                applied,
                "replica stays behind its leader after a torn wal tail was cut; asking for a new leader"
            );
            if let Err(e) = host
                .peers()
                .transfer_leadership(leader, group, to, TRANSFER_CALL_TIMEOUT)
                .await
            {
                tracing::info!(group_id = group, error = %e, "leadership not moved");
            }
        });
    }
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
        if !h.membership_view().is_leader {
            continue;
        }
        let Some(service) = node.shards.read().get(&sh.group_id).cloned() else {
            continue;
        };
        let cutoff_ms = now - i64::from(stream.retention_hours) * 3_600_000;
        if !service.reader().holds_records_before(cutoff_ms) {
            continue;
        }
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
