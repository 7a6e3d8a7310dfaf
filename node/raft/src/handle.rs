//! What the rest of the node may do with one Raft group.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use openraft::BasicNode;
use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, RaftError};
use streamd_proto::{ApiError, ErrorCode};

use crate::network::server::GroupService;
use crate::state_machine::StateMachineAdapter;
use crate::type_config::{Command, TypeConfig};

pub(crate) type GroupRaft = openraft::Raft<TypeConfig, StateMachineAdapter>;

/// Longest a write waits for a parked leader to renew its lease (one heartbeat round).
const WAKE_DEADLINE: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    #[error("not the leader of group {group} (leader: {leader:?})")]
    NotLeader { group: u64, leader: Option<u64> },
    /// The entry may or may not have been committed (leader change mid-flight, shutdown).
    #[error("outcome unknown for group {group}: {reason}")]
    Unknown { group: u64, reason: String },
}

impl From<ProposeError> for ApiError {
    fn from(e: ProposeError) -> ApiError {
        match e {
            ProposeError::NotLeader { leader, .. } => ApiError::not_leader(leader),
            ProposeError::Unknown { .. } => ApiError::new(ErrorCode::Unavailable, e.to_string()),
        }
    }
}

/// A point-in-time view of a group replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStatus {
    pub group: u64,
    pub leader: Option<u64>,
    pub is_leader: bool,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub last_applied: Option<u64>,
    pub committed: Option<u64>,
    pub voters: BTreeSet<u64>,
    /// Whether `voters` is the committed membership (no change in flight).
    pub voters_committed: bool,
    pub learners: BTreeSet<u64>,
    /// On the leader: how long ago each other member last acknowledged a heartbeat or
    /// replication (None: not since this node became leader). Empty on followers.
    pub acked_ms_ago: BTreeMap<u64, Option<u64>>,
    /// Entries in the local log (after the purged prefix).
    pub log_entries: u64,
    /// Times this replica saw a new leader since the group was opened here.
    pub leader_changes: u64,
}

/// What a task watching a replica's metrics counts.
#[derive(Debug, Default)]
pub(crate) struct Watched {
    /// Leaders seen come and go.
    pub(crate) leader_changes: AtomicU64,
    /// Changes of the metrics, of any kind.
    pub(crate) updates: AtomicU64,
}

/// Leadership and voters of a replica, as the planner needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipView {
    pub is_leader: bool,
    pub term: u64,
    pub voters: BTreeSet<u64>,
    /// Whether `voters` is the committed membership (no change in flight).
    pub voters_committed: bool,
}

/// How often, and for how long, the replica chosen to lead a new group campaigns while the
/// group has no leader (see [`GroupHandle::initialize_and_campaign`]). Shorter than the election
/// timeout, so it normally wins before another replica's timer fires.
const CAMPAIGN_EVERY: Duration = Duration::from_millis(200);
const CAMPAIGN_FOR: Duration = Duration::from_secs(3);

#[derive(Clone)]
pub struct GroupHandle {
    pub(crate) group: u64,
    pub(crate) raft: GroupRaft,
    pub(crate) service: Option<Arc<dyn GroupService>>,
    pub(crate) watched: Arc<Watched>,
    /// Set while the quiescer has this replica's ticker parked (`quiesce.rs`).
    pub(crate) parked: Arc<AtomicBool>,
}

impl GroupHandle {
    pub fn id(&self) -> u64 {
        self.group
    }

    pub(crate) fn raft(&self) -> &GroupRaft {
        &self.raft
    }

    pub fn service(&self) -> Option<Arc<dyn GroupService>> {
        self.service.clone()
    }

    /// Proposes a command; returns the state machine's reply once it is committed on a majority
    /// and applied here. Never retried: a retry is the caller's decision.
    #[tracing::instrument(name = "raft.propose", skip_all, fields(group_id = self.group, bytes = command.len()))]
    pub async fn propose(&self, command: Vec<u8>) -> Result<Vec<u8>, ProposeError> {
        let group = self.group;
        let started = Instant::now();
        if self.parked.load(Ordering::Relaxed) {
            self.wake().await;
        }
        let written = self.raft.client_write(Command(command)).await;
        crate::hops::observe(crate::hops::Hop::Propose, started);
        match written {
            Ok(resp) => Ok(resp.data.0),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(ProposeError::NotLeader {
                    group,
                    leader: f.leader_id,
                })
            }
            Err(e) => Err(ProposeError::Unknown {
                group,
                reason: e.to_string(),
            }),
        }
    }

    /// Restarts a parked leader before a write. openraft's leader refuses writes once its lease
    /// (the election timeout) has passed without a quorum acknowledging it, and a parked leader
    /// sends no heartbeats, so its lease is always stale: one heartbeat round renews it. Bounded
    /// by [`WAKE_DEADLINE`]; if it runs out, the write goes on and is refused as any write to a
    /// leader without a quorum is.
    async fn wake(&self) {
        let asked = Instant::now();
        // Ticking again, but still marked parked: writes arriving meanwhile wait for the
        // lease too instead of being refused.
        self.raft.runtime_config().tick(true);
        if self.raft.trigger().heartbeat().await.is_err() {
            return;
        }
        let renewed = self
            .raft
            .wait(Some(WAKE_DEADLINE))
            .metrics(
                |m| {
                    let voters: Vec<u64> = m.membership_config.membership().voter_ids().collect();
                    let since = asked.elapsed();
                    let acked = m.heartbeat.as_ref().map_or(0, |h| {
                        h.iter()
                            .filter(|(id, _)| **id != m.id && voters.contains(id))
                            .filter(|(_, at)| {
                                at.as_ref()
                                    .is_some_and(|t| openraft::Instant::elapsed(&**t) <= since)
                            })
                            .count()
                    });
                    // This replica counts itself.
                    acked + 1 > voters.len() / 2
                },
                "leader lease renewed",
            )
            .await;
        if renewed.is_ok() {
            self.parked.store(false, Ordering::Relaxed);
        }
    }

    /// Makes `members` the first voters of a brand-new group. A group already initialized (here
    /// or by a peer) is left as it is.
    pub async fn initialize(&self, members: &BTreeMap<u64, String>) -> Result<(), String> {
        self.form(members).await.map(|_| ())
    }

    /// Like [`Self::initialize`], then, if this call is what formed the group, campaigns at
    /// once instead of waiting out an election timeout, and again every [`CAMPAIGN_EVERY`]
    /// while no leader is known, for up to [`CAMPAIGN_FOR`]: the other replicas may not be
    /// open yet when the first campaign asks for their votes. Each campaign starts with a
    /// pre-vote, so it cannot unseat a leader another replica already won.
    pub async fn initialize_and_campaign(
        &self,
        members: &BTreeMap<u64, String>,
    ) -> Result<(), String> {
        if !self.form(members).await? {
            return Ok(());
        }
        let raft = self.raft.clone();
        let group = self.group;
        tokio::spawn(async move {
            let until = Instant::now() + CAMPAIGN_FOR;
            // Formed, a replica holds a vote for itself in term 0 and may name itself leader:
            // only a leader of a later term was elected.
            let elected = |raft: &GroupRaft| {
                let m = raft.metrics();
                let m = m.borrow_watched();
                m.current_term > 0 && m.current_leader.is_some()
            };
            while Instant::now() < until && !elected(&raft) {
                if let Err(e) = raft.trigger().elect(true).await {
                    tracing::debug!(group_id = group, error = %e, "first campaign not started");
                    return;
                }
                tokio::time::sleep(CAMPAIGN_EVERY).await;
            }
        });
        Ok(())
    }

    /// [`Self::initialize`] after `delay`, in the background: for the replicas of a new group
    /// other than the one chosen to campaign. Forming a group makes openraft campaign at once,
    /// so the replica that opened first would win nearly every new group. By the time the
    /// delay is over the chosen replica has normally won and replicated the membership here,
    /// and this does nothing; if it died first, the others form the group and elect without it.
    pub fn initialize_after(&self, members: BTreeMap<u64, String>, delay: Duration) {
        let h = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Err(e) = h.form(&members).await {
                tracing::warn!(group_id = h.group, error = %e, "failed to initialize shard group");
            }
        });
    }

    /// Forms the group with `members`; false when it had been formed already.
    async fn form(&self, members: &BTreeMap<u64, String>) -> Result<bool, String> {
        let nodes: BTreeMap<u64, BasicNode> = members
            .iter()
            .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
            .collect();
        match self.raft.initialize(nodes).await {
            Ok(()) => Ok(true),
            Err(RaftError::APIError(_)) => Ok(false),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Adds a learner (blocking until it caught up) then makes `voters` the voter set.
    pub async fn change_voters(
        &self,
        add: Option<(u64, String)>,
        voters: BTreeSet<u64>,
    ) -> Result<(), ProposeError> {
        let group = self.group;
        let map = |e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>| match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => ProposeError::NotLeader {
                group,
                leader: f.leader_id,
            },
            e => ProposeError::Unknown {
                group,
                reason: e.to_string(),
            },
        };
        if let Some((id, addr)) = add {
            self.raft
                .add_learner(id, BasicNode { addr }, true)
                .await
                .map_err(map)?;
        }
        self.raft
            .change_membership(voters, false)
            .await
            .map_err(map)?;
        Ok(())
    }

    pub fn status(&self) -> GroupStatus {
        let m = self.raft.metrics().borrow_watched().clone();
        let mem = m.membership_config.membership();
        GroupStatus {
            group: self.group,
            leader: m.current_leader,
            is_leader: m.current_leader == Some(m.id),
            term: m.current_term,
            last_log_index: m.last_log_index,
            last_applied: m.last_applied.map(|l| l.index()),
            log_entries: m.last_log_index.map_or(0, |last| {
                let first = m.purged.as_ref().map_or(0, |p| p.index() + 1);
                (last + 1).saturating_sub(first)
            }),
            leader_changes: self.watched.leader_changes.load(Ordering::Relaxed),
            committed: m.local_committed.map(|l| l.index()),
            voters: mem.voter_ids().collect(),
            voters_committed: m.membership_config.log_id()
                == m.committed_membership_config.log_id(),
            learners: mem.learner_ids().collect(),
            acked_ms_ago: m
                .heartbeat
                .as_ref()
                .map(|h| {
                    h.iter()
                        .filter(|(id, _)| **id != m.id)
                        .map(|(id, at)| {
                            let ago = at
                                .as_ref()
                                .map(|t| openraft::Instant::elapsed(&**t).as_millis() as u64);
                            (*id, ago)
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The term of this replica's leadership, if it leads.
    pub(crate) fn leading_term(&self) -> Option<u64> {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        (m.current_leader == Some(m.id)).then_some(m.current_term)
    }

    /// What the quiescer needs of this replica, read without copying the metrics.
    pub(crate) fn quiesce_view(&self) -> crate::quiesce::ReplicaView {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        let matched = match (&m.replication, m.current_leader == Some(m.id)) {
            (Some(r), true) => r
                .iter()
                .filter(|(id, _)| **id != m.id)
                .map(|(_, l)| l.as_ref().map(|l| l.index()))
                .collect(),
            _ => Vec::new(),
        };
        crate::quiesce::ReplicaView {
            me: m.id,
            leader: m.current_leader,
            term: m.current_term,
            last_log: m.last_log_index,
            committed: m.local_committed.map(|l| l.index()),
            applied: m.last_applied.map(|l| l.index()),
            matched,
            membership_settled: m.membership_config.log_id()
                == m.committed_membership_config.log_id(),
            voters: m.membership_config.membership().voter_ids().collect(),
        }
    }

    /// Parks (false) or restarts (true) this replica's Raft ticker: its heartbeats and
    /// election timer.
    pub(crate) fn set_ticking(&self, on: bool) {
        self.raft.runtime_config().tick(on);
        self.parked.store(!on, Ordering::Relaxed);
    }

    /// Asks this group's leader (this node) to hand leadership to `to`; returns once asked.
    pub async fn transfer_leader(&self, to: u64) -> Result<(), String> {
        self.raft
            .trigger()
            .transfer_leader(to)
            .await
            .map_err(|e| e.to_string())
    }

    /// (Leader only.) The voter to hand leadership to: the one whose replicated log reaches
    /// furthest, among those that acknowledged the leader within `fresh_ms`. None when this
    /// replica does not lead or no other voter qualifies.
    ///
    /// openraft's transfer waits for the target to hold the leader's whole log before it
    /// campaigns, so the furthest voter is the one that takes over soonest.
    pub fn handoff_target(&self, fresh_ms: u64) -> Option<u64> {
        let m = self.raft.metrics().borrow_watched().clone();
        if m.current_leader != Some(m.id) {
            return None;
        }
        let replication = m.replication.as_ref()?;
        let acked = self.status().acked_ms_ago;
        m.membership_config
            .membership()
            .voter_ids()
            .filter(|v| *v != m.id)
            .filter(|v| {
                acked
                    .get(v)
                    .copied()
                    .flatten()
                    .is_some_and(|ms| ms <= fresh_ms)
            })
            .max_by_key(|v| {
                replication
                    .get(v)
                    .and_then(|l| l.as_ref().map(|l| l.index() + 1))
                    .unwrap_or(0)
            })
    }

    /// Address of a member node, from the group's membership.
    pub fn member_address(&self, node: u64) -> Option<String> {
        let m = self.raft.metrics().borrow_watched().clone();
        m.membership_config
            .membership()
            .get_node(&node)
            .map(|n| n.addr.clone())
    }

    /// How many times this replica's metrics changed since the group was opened here.
    pub(crate) fn metrics_updates(&self) -> u64 {
        self.watched.updates.load(Ordering::Acquire)
    }

    /// Counts the leaders this replica sees come and go, and every change of its metrics,
    /// until the group stops.
    /// `host_changes`, when given, counts every change of every such group on the node: passes
    /// over all groups are skipped while it stands still.
    pub(crate) fn watch_metrics(
        raft: &GroupRaft,
        host_changes: Option<Arc<AtomicU64>>,
    ) -> Arc<Watched> {
        let watched = Arc::new(Watched::default());
        let mut rx = raft.metrics();
        let counts = watched.clone();
        tokio::spawn(async move {
            let mut last = None;
            loop {
                let leader = rx.borrow_watched().current_leader;
                if leader.is_some() && leader != last {
                    counts.leader_changes.fetch_add(1, Ordering::Relaxed);
                    last = leader;
                }
                counts.updates.fetch_add(1, Ordering::Release);
                if let Some(c) = &host_changes {
                    c.fetch_add(1, Ordering::Release);
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        });
        watched
    }

    /// The parts of this replica's state the planner reads, without copying its metrics.
    pub fn membership_view(&self) -> MembershipView {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        MembershipView {
            is_leader: m.current_leader == Some(m.id),
            term: m.current_term,
            voters: m.membership_config.membership().voter_ids().collect(),
            voters_committed: m.membership_config.log_id()
                == m.committed_membership_config.log_id(),
        }
    }

    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(group_id = self.group, error = %e, "raft group did not shut down cleanly");
        }
    }
}
