//! Quiet groups stop ticking; nodes heartbeat each other instead.
//!
//! A shard group that takes no writes still costs its leader a heartbeat to every follower each
//! heartbeat interval, and every replica a timer wake-up: with thousands of shards an idle
//! cluster burns its cores on nothing. As TiKV hibernates regions and CockroachDB quiesces
//! ranges, a group whose log has not moved for [`QUIET_AFTER`], and whose followers all hold the
//! leader's whole log, parks openraft's ticker on every replica (no heartbeats, no election
//! timers, no wake-ups). Liveness then comes from one heartbeat per pair of nodes
//! ([`PeerHealth`], sent by the host four times a second), which names the groups the sender leads.
//!
//! - A write wakes a group by itself: the leader replicates the new entry (replication does not
//!   wait for ticks), every replica sees its log move, and the next pass turns ticking back on.
//! - A follower keeps its ticker parked only while the node that leads its group is heard from
//!   and still claims that leadership in the same term. When that node falls silent for
//!   [`SILENT_AFTER`], or stops claiming the group, the follower ticks again; its last contact
//!   with the leader is long past, so its election timer fires on the next tick and the group
//!   elects a new leader within one election timeout.
//! - The metadata group never hibernates: its heartbeats are how the controller judges nodes
//!   down and they cost one group, not thousands.
//!
//! The decision is a pure function ([`should_tick_staggered`]); [`Quiescer`] applies it to
//! every group.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::RwLock;

/// How long a group's log must stand still before it may hibernate.
pub const QUIET_AFTER: Duration = Duration::from_secs(3);
/// A peer not heard from for this long is silent: the groups it leads wake up and elect, and
/// writes are not sent to it while another leader may exist.
pub const SILENT_AFTER: Duration = Duration::from_millis(1000);
/// When a parked group's leader falls silent, its followers wake one after another, this far
/// apart, in the order of their node ids: woken together, each would campaign at once (their
/// last contact with the leader is long past) and split the vote, costing another election
/// timeout. The first one wins with the votes of the others, which answer votes while parked.
pub const WAKE_STAGGER: Duration = Duration::from_millis(1000);
/// How often a node sends its heartbeat to every peer.
pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(250);

struct PeerSeen {
    heard: Instant,
    /// Group id to the term in which the peer leads it.
    leading: HashMap<u64, u64>,
}

/// What this node last heard from each peer (the node-level heartbeat).
#[derive(Default)]
pub struct PeerHealth {
    peers: RwLock<HashMap<u64, PeerSeen>>,
    /// Counts changes of what peers claim to lead (and peers first heard of).
    changes: AtomicU64,
}

impl PeerHealth {
    /// A heartbeat arrived from `node`, naming the groups it leads.
    pub(crate) fn heard(&self, node: u64, leading: impl IntoIterator<Item = (u64, u64)>) {
        let leading: HashMap<u64, u64> = leading.into_iter().collect();
        let mut peers = self.peers.write();
        match peers.get_mut(&node) {
            Some(p) => {
                p.heard = Instant::now();
                if p.leading != leading {
                    p.leading = leading;
                    self.changes.fetch_add(1, Ordering::Release);
                }
            }
            None => {
                peers.insert(
                    node,
                    PeerSeen {
                        heard: Instant::now(),
                        leading,
                    },
                );
                self.changes.fetch_add(1, Ordering::Release);
            }
        }
    }

    /// A count that moves whenever a peer's claimed leaderships change.
    pub(crate) fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    /// The peers silent now ([`Self::is_silent`]), ascending.
    pub(crate) fn silent_nodes(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .peers
            .read()
            .iter()
            .filter(|(_, p)| p.heard.elapsed() >= SILENT_AFTER)
            .map(|(n, _)| *n)
            .collect();
        v.sort_unstable();
        v
    }

    /// Our heartbeat to `node` was answered: it is alive, whatever it leads.
    pub(crate) fn answered(&self, node: u64) {
        let mut peers = self.peers.write();
        match peers.get_mut(&node) {
            Some(p) => p.heard = Instant::now(),
            None => {
                peers.insert(
                    node,
                    PeerSeen {
                        heard: Instant::now(),
                        leading: HashMap::new(),
                    },
                );
            }
        }
    }

    /// Our heartbeat to `node` found nothing listening (connection refused): the process is
    /// gone, so it counts as silent at once rather than after [`SILENT_AFTER`].
    pub(crate) fn refused(&self, node: u64) {
        let Some(long_ago) = Instant::now().checked_sub(SILENT_AFTER) else {
            return;
        };
        let mut peers = self.peers.write();
        match peers.get_mut(&node) {
            Some(p) => p.heard = p.heard.min(long_ago),
            None => {
                peers.insert(
                    node,
                    PeerSeen {
                        heard: long_ago,
                        leading: HashMap::new(),
                    },
                );
            }
        }
    }

    /// How long ago `node` was last heard from; None if never (since this node started).
    pub fn last_heard(&self, node: u64) -> Option<Duration> {
        self.peers.read().get(&node).map(|p| p.heard.elapsed())
    }

    /// True when `node` was heard from once and not for [`SILENT_AFTER`] since: a leader there
    /// is likely gone (killed, paused or cut off). A node never heard from is not silent.
    pub fn is_silent(&self, node: u64) -> bool {
        self.last_heard(node).is_some_and(|d| d >= SILENT_AFTER)
    }

    /// True when `node` is heard from and claims to lead `group` in `term`.
    pub(crate) fn leads(&self, node: u64, group: u64, term: u64) -> bool {
        self.peers.read().get(&node).is_some_and(|p| {
            p.heard.elapsed() < SILENT_AFTER && p.leading.get(&group) == Some(&term)
        })
    }
}

/// One replica as the quiescer sees it on one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReplicaView {
    pub(crate) me: u64,
    pub(crate) leader: Option<u64>,
    pub(crate) term: u64,
    pub(crate) last_log: Option<u64>,
    pub(crate) committed: Option<u64>,
    pub(crate) applied: Option<u64>,
    /// On the leader: every other member's matched index (None: nothing matched yet).
    pub(crate) matched: Vec<Option<u64>>,
    /// No membership change in flight.
    pub(crate) membership_settled: bool,
    /// The group's voters.
    pub(crate) voters: Vec<u64>,
}

impl ReplicaView {
    /// What must stand still for the group to count as quiet.
    fn progress(&self) -> (u64, Option<u64>, Option<u64>, Option<u64>) {
        (self.term, self.leader, self.last_log, self.applied)
    }
}

/// [`should_tick_staggered`] for a follower that lost its leader long ago.
#[cfg(test)]
fn should_tick(
    view: &ReplicaView,
    quiet_for: Duration,
    leader_heard: impl FnOnce(u64) -> bool,
) -> bool {
    should_tick_staggered(view, quiet_for, leader_heard, Duration::MAX, |_| false)
}

/// Whether a replica's ticker should run. `quiet_for` is how long its [`ReplicaView::progress`]
/// has stood still; `leader_heard` whether the leader's node is heard from and claims the group
/// in this term (only asked of followers); `lost_for` how long a parked follower has known its
/// leader lost, and `silent` which nodes are silent (to rank the followers that wake).
fn should_tick_staggered(
    view: &ReplicaView,
    quiet_for: Duration,
    leader_heard: impl FnOnce(u64) -> bool,
    lost_for: Duration,
    silent: impl Fn(u64) -> bool,
) -> bool {
    if quiet_for < QUIET_AFTER || !view.membership_settled {
        return true;
    }
    let Some(leader) = view.leader else {
        return true;
    };
    let settled =
        view.last_log.is_some() && view.committed == view.last_log && view.applied == view.last_log;
    if !settled {
        return true;
    }
    if leader == view.me {
        // Every follower holds the whole log: nothing is left to replicate, so heartbeats
        // would only say "still here", which the node heartbeat says for all groups at once.
        !view.matched.iter().all(|m| *m == view.last_log)
    } else if leader_heard(leader) {
        false
    } else {
        let rank = view
            .voters
            .iter()
            .filter(|v| **v != leader && (**v == view.me || !silent(**v)))
            .position(|v| *v == view.me)
            .unwrap_or(0);
        lost_for >= WAKE_STAGGER.saturating_mul(rank as u32)
    }
}

struct Tracked {
    progress: (u64, Option<u64>, Option<u64>, Option<u64>),
    since: Instant,
    ticking: bool,
    /// When this parked follower first found its leader not heard from.
    lost_since: Option<Instant>,
    /// What the group looked like when last judged, while parked.
    parked: Option<Parked>,
}

/// A parked replica as last judged: how many metrics updates it had seen, and who led it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parked {
    pub(crate) updates: u64,
    pub(crate) me: u64,
    pub(crate) leader: Option<u64>,
    pub(crate) term: u64,
}

impl Parked {
    /// Whether the replica may stay parked without being looked at again: it leads the group
    /// itself (only a write, which moves its log, wakes it), or its leader is heard from and
    /// still claims the group in the same term.
    pub(crate) fn may_stay(&self, group: u64, health: &PeerHealth) -> bool {
        match self.leader {
            Some(l) if l == self.me => true,
            Some(l) => health.leads(l, group, self.term),
            None => false,
        }
    }
}

/// Per-group memory of the quiescer: when each group's progress last moved, and whether its
/// ticker is running.
#[derive(Default)]
pub(crate) struct Quiescer {
    groups: HashMap<u64, Tracked>,
}

impl Quiescer {
    /// Decides one group; returns Some(tick) when its ticker must be switched.
    pub(crate) fn decide(
        &mut self,
        group: u64,
        view: &ReplicaView,
        now: Instant,
        leader_heard: impl FnOnce(u64) -> bool,
        silent: impl Fn(u64) -> bool,
    ) -> Option<bool> {
        let progress = view.progress();
        let t = self.groups.entry(group).or_insert(Tracked {
            progress,
            since: now,
            ticking: true,
            lost_since: None,
            parked: None,
        });
        if t.progress != progress {
            t.progress = progress;
            t.since = now;
        }
        let heard = match view.leader {
            Some(l) if l != view.me => leader_heard(l),
            _ => true,
        };
        if heard || t.ticking {
            t.lost_since = None;
        } else {
            t.lost_since.get_or_insert(now);
        }
        // A ticking follower whose leader is not heard keeps ticking: its election timer is
        // what replaces a dead leader. Parked after a quiet spell instead, it would be woken
        // again by the next pass and parked again before its timer ever fired.
        if t.ticking && !heard {
            return None;
        }
        let lost_for = t
            .lost_since
            .map_or(Duration::MAX, |at| now.saturating_duration_since(at));
        let tick = should_tick_staggered(
            view,
            now.saturating_duration_since(t.since),
            |_| heard,
            lost_for,
            silent,
        );
        (tick != t.ticking).then(|| {
            t.ticking = tick;
            tick
        })
    }

    /// A parked group whose metrics did not change since it was last judged (`updates` counts
    /// them): with thousands of parked groups a pass must not read every group's metrics only
    /// to find nothing moved. Its last judgement stands unless its leader's health changed.
    pub(crate) fn parked_unchanged(&self, group: u64, updates: u64) -> Option<Parked> {
        self.groups
            .get(&group)
            .and_then(|t| t.parked)
            .filter(|p| p.updates == updates)
    }

    /// Records what a group looked like when judged (`updates` read before `view`).
    pub(crate) fn note_judged(&mut self, group: u64, updates: u64, view: &ReplicaView) {
        if let Some(t) = self.groups.get_mut(&group) {
            t.parked = (!t.ticking).then_some(Parked {
                updates,
                me: view.me,
                leader: view.leader,
                term: view.term,
            });
        }
    }

    /// Forgets groups no longer open here.
    pub(crate) fn retain(&mut self, open: impl Fn(u64) -> bool) {
        self.groups.retain(|g, _| open(*g));
    }

    /// Whether every group judged so far is parked and none is waiting out its turn to wake
    /// (true when there are none): only then can a pass with the same inputs change nothing.
    pub(crate) fn all_parked(&self) -> bool {
        self.groups
            .values()
            .all(|t| !t.ticking && t.lost_since.is_none())
    }

    /// How many groups are tracked.
    pub(crate) fn tracked(&self) -> usize {
        self.groups.len()
    }

    /// Groups whose ticker is parked.
    pub(crate) fn hibernating(&self) -> usize {
        self.groups.values().filter(|t| !t.ticking).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader_view() -> ReplicaView {
        ReplicaView {
            me: 1,
            leader: Some(1),
            term: 3,
            last_log: Some(10),
            committed: Some(10),
            applied: Some(10),
            matched: vec![Some(10), Some(10)],
            membership_settled: true,
            voters: vec![1, 2, 3],
        }
    }

    fn follower_view() -> ReplicaView {
        ReplicaView {
            me: 2,
            matched: vec![],
            ..leader_view()
        }
    }

    const LONG: Duration = Duration::from_secs(60);

    #[test]
    fn a_busy_group_keeps_ticking() {
        assert!(should_tick(
            &leader_view(),
            Duration::from_millis(100),
            |_| true
        ));
        assert!(should_tick(
            &follower_view(),
            Duration::from_millis(100),
            |_| true
        ));
    }

    #[test]
    fn a_quiet_group_parks_only_when_every_follower_holds_the_log() {
        assert!(!should_tick(&leader_view(), LONG, |_| true));
        let lagging = ReplicaView {
            matched: vec![Some(10), Some(9)],
            ..leader_view()
        };
        assert!(should_tick(&lagging, LONG, |_| true));
        let unapplied = ReplicaView {
            applied: Some(9),
            ..leader_view()
        };
        assert!(should_tick(&unapplied, LONG, |_| true));
        let changing = ReplicaView {
            membership_settled: false,
            ..leader_view()
        };
        assert!(should_tick(&changing, LONG, |_| true));
    }

    #[test]
    fn a_follower_parks_only_while_its_leader_is_heard_leading() {
        assert!(!should_tick(&follower_view(), LONG, |l| l == 1));
        assert!(should_tick(&follower_view(), LONG, |_| false));
        let leaderless = ReplicaView {
            leader: None,
            ..follower_view()
        };
        assert!(should_tick(&leaderless, LONG, |_| true));
    }

    #[test]
    fn progress_wakes_a_parked_group_and_quiet_parks_it_again() {
        let mut q = Quiescer::default();
        let t0 = Instant::now();
        let v = leader_view();
        assert_eq!(q.decide(7, &v, t0, |_| true, |_| false), None);
        assert_eq!(
            q.decide(7, &v, t0 + QUIET_AFTER, |_| true, |_| false),
            Some(false)
        );
        assert_eq!(q.hibernating(), 1);
        let moved = ReplicaView {
            last_log: Some(11),
            committed: Some(11),
            applied: Some(11),
            matched: vec![Some(11), Some(11)],
            ..v
        };
        assert_eq!(
            q.decide(7, &moved, t0 + QUIET_AFTER * 2, |_| true, |_| false),
            Some(true)
        );
        assert_eq!(
            q.decide(7, &moved, t0 + QUIET_AFTER * 3, |_| true, |_| false),
            Some(false)
        );
    }

    #[test]
    fn followers_of_a_lost_leader_wake_one_after_another() {
        let mut q = Quiescer::default();
        let t0 = Instant::now();
        // Node 2 and node 3 follow leader 1; both parked.
        let f2 = follower_view();
        let f3 = ReplicaView {
            me: 3,
            ..follower_view()
        };
        let mut q3 = Quiescer::default();
        assert_eq!(q.decide(7, &f2, t0, |_| true, |_| false), None);
        assert_eq!(
            q.decide(7, &f2, t0 + QUIET_AFTER, |_| true, |_| false),
            Some(false)
        );
        assert_eq!(q3.decide(7, &f3, t0, |_| true, |_| false), None);
        assert_eq!(
            q3.decide(7, &f3, t0 + QUIET_AFTER, |_| true, |_| false),
            Some(false)
        );
        // The leader falls silent: node 2 (first of the others) wakes at once, node 3 only a
        // stagger later.
        let lost = t0 + QUIET_AFTER * 2;
        let silent = |n: u64| n == 1;
        assert_eq!(q.decide(7, &f2, lost, |_| false, silent), Some(true));
        assert_eq!(q3.decide(7, &f3, lost, |_| false, silent), None);
        assert_eq!(
            q3.decide(7, &f3, lost + WAKE_STAGGER, |_| false, silent),
            Some(true)
        );
        // With node 2 silent too, node 3 is first in line.
        let mut q3b = Quiescer::default();
        assert_eq!(q3b.decide(7, &f3, t0, |_| true, |_| false), None);
        assert_eq!(
            q3b.decide(7, &f3, t0 + QUIET_AFTER, |_| true, |_| false),
            Some(false)
        );
        assert_eq!(q3b.decide(7, &f3, lost, |_| false, |n| n <= 2), Some(true));
    }

    #[test]
    fn passes_may_be_skipped_only_while_every_group_is_parked_and_none_waits_to_wake() {
        let mut q = Quiescer::default();
        assert!(q.all_parked());
        let t0 = Instant::now();
        // Node 3 is second in line to wake when leader 1 falls silent.
        let f3 = ReplicaView {
            me: 3,
            ..follower_view()
        };
        q.decide(7, &f3, t0, |_| true, |_| false);
        assert!(!q.all_parked(), "a ticking group is judged on every pass");
        q.decide(7, &f3, t0 + QUIET_AFTER, |_| true, |_| false);
        assert!(q.all_parked());
        // Leader lost: node 3 stays parked for a stagger, and passes must keep running to
        // wake it when its turn comes.
        assert_eq!(
            q.decide(7, &f3, t0 + QUIET_AFTER * 2, |_| false, |_| false),
            None
        );
        assert!(!q.all_parked());
    }

    #[test]
    fn a_ticking_follower_of_a_silent_leader_is_never_parked() {
        // Its election timer must get to fire: parking it after a quiet spell would leave the
        // group leaderless.
        let mut q = Quiescer::default();
        let t0 = Instant::now();
        let f2 = follower_view();
        assert_eq!(q.decide(7, &f2, t0, |_| false, |n| n == 1), None);
        assert_eq!(
            q.decide(7, &f2, t0 + QUIET_AFTER * 10, |_| false, |n| n == 1),
            None
        );
        assert_eq!(q.hibernating(), 0);
        // Heard again, it parks as usual.
        assert_eq!(
            q.decide(7, &f2, t0 + QUIET_AFTER * 11, |_| true, |_| false),
            Some(false)
        );
    }

    #[test]
    fn peer_health_counts_changes_of_claims_only() {
        let h = PeerHealth::default();
        h.heard(5, [(7, 3)]);
        let first = h.changes();
        h.heard(5, [(7, 3)]);
        assert_eq!(h.changes(), first, "the same claims again change nothing");
        h.heard(5, [(7, 4)]);
        assert_ne!(h.changes(), first);
        assert!(h.silent_nodes().is_empty());
        h.refused(5);
        assert_eq!(h.silent_nodes(), vec![5]);
    }

    #[test]
    fn a_refused_peer_is_silent_at_once() {
        let h = PeerHealth::default();
        h.heard(5, [(7, 3)]);
        h.refused(5);
        assert!(h.is_silent(5));
        assert!(!h.leads(5, 7, 3));
    }

    #[test]
    fn a_silent_peer_stops_counting_as_leader() {
        let h = PeerHealth::default();
        assert!(!h.is_silent(5));
        h.heard(5, [(7, 3)]);
        assert!(h.leads(5, 7, 3));
        assert!(!h.leads(5, 7, 4));
        assert!(!h.leads(5, 8, 3));
        assert!(!h.is_silent(5));
    }
}
