//! [`RaftHost`]: every Raft group this node holds a replica of.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use openraft::{Config, SnapshotPolicy};
use parking_lot::RwLock;
use streamd_storage::{LogEngine, SledStore, group_prefix};

use crate::catch_up::{CatchUpTargets, NotCaughtUp};
use crate::handle::{GroupHandle, GroupRaft};
use crate::log_store::LogStore;
use crate::network::client::{GroupNetwork, PeerClients, never_connected};
use crate::network::server::GroupService;
use crate::quiesce::{HEARTBEAT_EVERY, PeerHealth, Quiescer};
use crate::state_machine::{
    GroupStateMachine, StateMachineAdapter, behind_log, stored_applied_index,
};

/// Groups whose ticker is parked on this node (`quiesce.rs`).
static HIBERNATING: std::sync::LazyLock<prometheus::IntGauge> = std::sync::LazyLock::new(|| {
    let g = prometheus::IntGauge::new(
        "streamd_raft_groups_hibernating",
        "Raft groups on this node whose ticker is parked because they are quiet.",
    )
    .expect("fixed gauge options are valid");
    let _ = prometheus::register(Box::new(g.clone()));
    g
});

/// The groups a node leads with the term of each, as its heartbeat names them.
type Leading = Arc<Vec<(u64, u64)>>;

/// Quiesce passes by outcome: `judged` looked at the groups, `skipped` found nothing changed.
static QUIESCE_PASSES: std::sync::LazyLock<prometheus::IntCounterVec> =
    std::sync::LazyLock::new(|| {
        let c = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "streamd_raft_quiesce_passes_total",
                "Passes of the quiescer over this node's groups, by whether they had to look.",
            ),
            &["outcome"],
        )
        .expect("fixed counter options are valid");
        let _ = prometheus::register(Box::new(c.clone()));
        c
    });

/// What a quiesce pass decides from, besides time: when all are as at the last pass and every
/// group is parked, the pass would change nothing.
#[derive(Debug, PartialEq, Eq)]
struct PassInputs {
    changes: u64,
    health: u64,
    silent: Vec<u64>,
}

/// Timing of every group on the node.
#[derive(Debug, Clone)]
pub struct RaftOptions {
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    /// Build a snapshot (and so allow purging the log) after this many applied entries.
    pub snapshot_every_entries: u64,
}

impl Default for RaftOptions {
    fn default() -> Self {
        // Heartbeats are per group and not yet coalesced per node; at 250 ms they stay cheap for
        // tens of groups per node while a dead leader is replaced within about 3 s.
        RaftOptions {
            heartbeat_ms: 250,
            election_min_ms: 1000,
            election_max_ms: 2000,
            snapshot_every_entries: 20_000,
        }
    }
}

struct HostInner {
    node_id: u64,
    engine: LogEngine,
    db: SledStore,
    peers: PeerClients,
    opts: RaftOptions,
    groups: RwLock<HashMap<u64, GroupHandle>>,
    catch_up: CatchUpTargets,
    health: PeerHealth,
    /// Set once the node has begun a graceful stop: it no longer campaigns nor accepts
    /// leadership.
    stopping: AtomicBool,
    /// Counts changes of the shard groups' metrics, and groups opened or removed.
    changes: Arc<AtomicU64>,
}

#[derive(Clone)]
pub struct RaftHost {
    inner: Arc<HostInner>,
}

impl RaftHost {
    pub fn new(
        node_id: u64,
        engine: LogEngine,
        db: SledStore,
        peers: PeerClients,
        opts: RaftOptions,
    ) -> Self {
        RaftHost {
            inner: Arc::new(HostInner {
                node_id,
                engine,
                db,
                peers,
                opts,
                groups: RwLock::new(HashMap::new()),
                catch_up: CatchUpTargets::default(),
                health: PeerHealth::default(),
                stopping: AtomicBool::new(false),
                changes: Arc::default(),
            }),
        }
    }

    pub fn node_id(&self) -> u64 {
        self.inner.node_id
    }

    pub fn peers(&self) -> &PeerClients {
        &self.inner.peers
    }

    pub fn db(&self) -> &SledStore {
        &self.inner.db
    }

    pub fn engine(&self) -> &LogEngine {
        &self.inner.engine
    }

    /// A count that moves whenever a shard group on this node changes (its metrics: leader,
    /// term, log, membership), opens or closes. Equal twice, nothing changed in between.
    pub fn changes(&self) -> u64 {
        self.inner.changes.load(Ordering::Acquire)
    }

    /// What this node hears of its peers (the node-level heartbeat).
    pub fn health(&self) -> &PeerHealth {
        &self.inner.health
    }

    /// The groups this node leads, with the term of each leadership.
    pub(crate) fn leading(&self) -> Vec<(u64, u64)> {
        self.groups()
            .iter()
            .filter_map(|g| g.leading_term().map(|t| (g.id(), t)))
            .collect()
    }

    /// Runs until the process ends: sends the node heartbeat to every peer every
    /// [`HEARTBEAT_EVERY`], and on every pass parks the tickers of quiet groups and restarts
    /// those that moved or whose leader fell silent (`quiesce.rs`).
    pub async fn run_liveness(self) {
        let mut quiescer = Quiescer::default();
        let mut pass = tokio::time::interval(HEARTBEAT_EVERY / 2);
        pass.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut beat = false;
        let mut leading: Option<(u64, Leading)> = None;
        let mut judged: Option<PassInputs> = None;
        loop {
            pass.tick().await;
            beat = !beat;
            if beat {
                // What this node leads changes only when some group's metrics do.
                let changes = self.changes();
                let current = match leading.take() {
                    Some((at, l)) if at == changes => l,
                    _ => Arc::new(self.leading()),
                };
                self.send_heartbeats(&current);
                leading = Some((changes, current));
            }
            // Nothing to judge again while no group changed, no peer's health or claims
            // changed, and every group is parked: the last pass's decisions all stand.
            let inputs = PassInputs {
                changes: self.changes(),
                health: self.inner.health.changes(),
                silent: self.inner.health.silent_nodes(),
            };
            let all_parked = quiescer.all_parked();
            if all_parked && judged.as_ref() == Some(&inputs) {
                QUIESCE_PASSES.with_label_values(&["skipped"]).inc();
                continue;
            }
            tracing::trace!(all_parked, ?inputs, was = ?judged, "quiesce pass");
            QUIESCE_PASSES.with_label_values(&["judged"]).inc();
            self.quiesce_pass(&mut quiescer);
            judged = Some(inputs);
        }
    }

    fn send_heartbeats(&self, leading: &Leading) {
        let me = self.inner.node_id;
        for peer in self.inner.peers.nodes() {
            if peer == me {
                continue;
            }
            let host = self.clone();
            let leading = Arc::clone(leading);
            tokio::spawn(async move {
                match host
                    .inner
                    .peers
                    .node_heartbeat(peer, me, &leading, HEARTBEAT_EVERY * 4)
                    .await
                {
                    Ok(()) => host.inner.health.answered(peer),
                    Err(e) if never_connected(&e) => host.inner.health.refused(peer),
                    Err(_) => {}
                }
            });
        }
    }

    fn quiesce_pass(&self, quiescer: &mut Quiescer) {
        let now = std::time::Instant::now();
        let health = &self.inner.health;
        // Under the read lock, without copying the handles: the pass runs eight times a second
        // over every group of the node.
        let groups = self.inner.groups.read();
        for g in groups.values() {
            if g.id() == crate::META_GROUP {
                continue;
            }
            let updates = g.metrics_updates();
            if quiescer
                .parked_unchanged(g.id(), updates)
                .is_some_and(|p| p.may_stay(g.id(), health))
            {
                continue;
            }
            let view = g.quiesce_view();
            if let Some(tick) = quiescer.decide(
                g.id(),
                &view,
                now,
                |leader| health.leads(leader, g.id(), view.term),
                |node| health.is_silent(node),
            ) {
                tracing::debug!(group_id = g.id(), tick, "group ticker switched");
                g.set_ticking(tick);
            }
            quiescer.note_judged(g.id(), updates, &view);
        }
        if quiescer.tracked() != groups.len() - usize::from(groups.contains_key(&crate::META_GROUP))
        {
            quiescer.retain(|id| groups.contains_key(&id));
        }
        HIBERNATING.set(quiescer.hibernating() as i64);
    }

    /// Where snapshot files live: `snapshots/` beside the WAL's directory.
    pub(crate) fn snapshot_dir(&self) -> std::path::PathBuf {
        let wal = self.inner.engine.dir();
        wal.parent().unwrap_or(wal).join("snapshots")
    }

    pub fn group(&self, id: u64) -> Option<GroupHandle> {
        self.inner.groups.read().get(&id).cloned()
    }

    pub fn groups(&self) -> Vec<GroupHandle> {
        let mut v: Vec<_> = self.inner.groups.read().values().cloned().collect();
        v.sort_by_key(|g| g.id());
        v
    }

    /// Checks, before any group is opened, that every group with a log here has a state machine
    /// at least as new as the start of its log (`tree_of` names a group's sled tree). sled
    /// recovers a damaged file by dropping what follows the damage, so a state machine can come
    /// back older than it was; older than the purged log, it has lost entries no replay brings
    /// back, and the node must not serve, or vote with, such a copy.
    pub fn check_local_state(&self, tree_of: impl Fn(u64) -> &'static str) -> io::Result<()> {
        for group in self.inner.engine.groups() {
            let tree = self.inner.db.tree(tree_of(group))?;
            let applied = stored_applied_index(&tree, group)?;
            let purged = LogStore::new(group, self.inner.engine.clone()).last_purged_index()?;
            if purged > applied {
                return Err(behind_log(group, applied, purged));
            }
        }
        Ok(())
    }

    /// Whether this node's replica of `group` has caught up with its leader (see `catch_up.rs`).
    pub fn caught_up(&self, group: u64) -> Result<(), NotCaughtUp> {
        let Some(h) = self.group(group) else {
            return Err(NotCaughtUp::NoLeader);
        };
        let s = h.status();
        crate::catch_up::judge(
            s.is_leader,
            s.leader,
            self.inner.catch_up.target(group),
            s.last_applied,
        )
    }

    /// Whether reads may be served from this node's replica of `group`. Not until it has
    /// caught up once since it was opened here: before that it may lack records the group
    /// acknowledged long ago (a replica just added and still copying, a node just restarted),
    /// and a reader would take the shard for shorter than it is. After that, yes, also while it
    /// trails by a few entries or its group elects a leader, as any follower read does.
    pub fn serves_reads(&self, group: u64) -> bool {
        if self.inner.catch_up.latched(group) {
            return true;
        }
        if self.caught_up(group).is_ok() {
            self.inner.catch_up.latch(group);
            return true;
        }
        false
    }

    pub(crate) fn note_append(
        &self,
        group: u64,
        vote: &crate::type_config::Vote,
        commit: Option<u64>,
    ) {
        self.inner.catch_up.note_append(group, vote, commit);
    }

    /// Begins a graceful stop: from now on no local replica campaigns for leadership, and
    /// requests to take leadership over are refused, so leaderships handed away stay away.
    pub fn begin_stop(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        for g in self.groups() {
            g.raft().runtime_config().elect(false);
        }
    }

    pub fn is_stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::SeqCst)
    }

    /// Starts this node's replica of `group` (recovering it from the WAL and sled if it existed).
    /// The state lives in sled tree `tree`. Opening a group that is already open returns it.
    #[tracing::instrument(name = "raft.open_group", skip_all, fields(group_id = group))]
    pub async fn open_group(
        &self,
        group: u64,
        tree: &str,
        sm: Box<dyn GroupStateMachine>,
        service: Option<Arc<dyn GroupService>>,
    ) -> io::Result<GroupHandle> {
        if let Some(g) = self.group(group) {
            return Ok(g);
        }
        let o = &self.inner.opts;
        let config = Config {
            cluster_name: format!("streamd-group-{group}"),
            heartbeat_interval: o.heartbeat_ms,
            election_timeout_min: o.election_min_ms,
            election_timeout_max: o.election_max_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(o.snapshot_every_entries),
            // Followers further behind than this catch up by snapshot.
            max_in_snapshot_log_to_keep: (o.snapshot_every_entries / 2).min(1000),
            // Entries can be 10 MiB PutRecords batches: keep an AppendEntries under the message limit.
            max_payload_entries: 16,
            install_snapshot_timeout: 60_000,
            // A node cut off from its group must not inflate the term while alone and then force a
            // new election when it returns.
            enable_pre_vote: Some(true),
            // A leader sends entries to its followers while its own fdatasync is still running,
            // so a power cut can make it forget an entry (index i, term t) that a follower
            // already holds. Restored as leader of term t, it would write a different entry at
            // (i, t); the follower treats the two as the same entry and the replicas diverge for
            // good. A restarted node therefore always wins a new election (a new term) first.
            enable_leader_restore: Some(false),
            ..Default::default()
        }
        .validate()
        .map_err(io::Error::other)?;
        let tree = self.inner.db.tree(tree)?;
        let adapter = StateMachineAdapter::open(
            group,
            self.inner.db.clone(),
            tree,
            sm,
            &self.snapshot_dir(),
        )?;
        let log = LogStore::new(group, self.inner.engine.clone());
        let purged = log.last_purged_index()?;
        if purged > adapter.applied_index() {
            // Applying the log's first entry onto this older state would skip the entries
            // between on this replica only; refuse rather than serve a diverged copy.
            return Err(behind_log(group, adapter.applied_index(), purged));
        }
        let network = GroupNetwork {
            peers: self.inner.peers.clone(),
            group,
        };
        let raft: GroupRaft =
            openraft::Raft::new(self.inner.node_id, Arc::new(config), network, log, adapter)
                .await
                .map_err(io::Error::other)?;
        // The metadata group changes with every heartbeat and is never parked; counting it
        // would keep every pass over the shard groups from ever being skipped.
        let host_changes = (group != crate::META_GROUP).then(|| self.inner.changes.clone());
        let watched = GroupHandle::watch_metrics(&raft, host_changes);
        let handle = GroupHandle {
            group,
            raft,
            service,
            watched,
            parked: Arc::default(),
        };
        if self.is_stopping() {
            handle.raft().runtime_config().elect(false);
        }
        self.inner.catch_up.forget(group);
        let mut groups = self.inner.groups.write();
        // Two callers may race to open the same group; the first one wins.
        let h = groups.entry(group).or_insert(handle).clone();
        self.inner.changes.fetch_add(1, Ordering::Release);
        Ok(h)
    }

    /// Stops this node's replica of `group` and deletes its log and state.
    #[tracing::instrument(name = "raft.remove_group", skip_all, fields(group_id = group))]
    pub async fn remove_group(&self, group: u64, tree: &str) -> io::Result<()> {
        let handle = self.inner.groups.write().remove(&group);
        self.inner.changes.fetch_add(1, Ordering::Release);
        self.inner.catch_up.forget(group);
        if let Some(h) = handle {
            h.shutdown().await;
        }
        // State first, log second: a power cut in between leaves a log without state, which
        // replays, never a stale state machine without the log that explains it.
        let t = self.inner.db.tree(tree)?;
        for kv in t.scan_prefix(group_prefix(group)) {
            let (k, _) = kv.map_err(io::Error::other)?;
            t.remove(k).map_err(io::Error::other)?;
        }
        self.inner.db.flush_durable().map_err(io::Error::from)?;
        self.inner.engine.remove_group(group).await?;
        Ok(())
    }

    pub async fn shutdown(&self) {
        let groups: Vec<_> = self.inner.groups.write().drain().map(|(_, g)| g).collect();
        for g in groups {
            g.shutdown().await;
        }
    }
}
