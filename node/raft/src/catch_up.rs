//! Whether a local replica has caught up with its group, for the node's readiness.
//!
//! A follower learns how far its group has committed from the leader's AppendEntries
//! (`leader_commit`). The first such message of each leader's term sets the replica's target:
//! what was committed when this node learned of that leader. The replica has caught up once it
//! has applied up to that target. The target does not move with later messages, so a replica
//! that keeps up under continuous writes is ready even though it always trails by a few entries.
//!
//! A node that has not heard from a leader since it started is not caught up, even when its
//! restored vote names a leader: that leader may have committed much more while the node was down.

use std::collections::{HashMap, HashSet};

use parking_lot::Mutex;

use crate::type_config::Vote;

/// Why a replica is not caught up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotCaughtUp {
    #[error("no leader known")]
    NoLeader,
    #[error("not heard from leader {leader} since start")]
    NotHeardFromLeader { leader: u64 },
    #[error("applied up to {applied} of {target} committed when it learned of the leader")]
    Behind { applied: u64, target: u64 },
}

/// The catch-up target of every local group, and which ones have caught up since opened.
#[derive(Default)]
pub(crate) struct CatchUpTargets {
    targets: Mutex<HashMap<u64, (Vote, u64)>>,
    caught_up_once: Mutex<HashSet<u64>>,
}

impl CatchUpTargets {
    /// Notes an AppendEntries from `vote`'s leader carrying `leader_commit`; only the first one
    /// of each leader's term sets the target.
    pub(crate) fn note_append(&self, group: u64, vote: &Vote, leader_commit: Option<u64>) {
        let mut targets = self.targets.lock();
        match targets.get(&group) {
            Some((v, _)) if v == vote => {}
            _ => {
                targets.insert(group, (*vote, leader_commit.unwrap_or(0)));
            }
        }
    }

    pub(crate) fn forget(&self, group: u64) {
        self.targets.lock().remove(&group);
        self.caught_up_once.lock().remove(&group);
    }

    /// Remembers that the replica of `group` has caught up once since it was opened.
    pub(crate) fn latch(&self, group: u64) {
        self.caught_up_once.lock().insert(group);
    }

    pub(crate) fn latched(&self, group: u64) -> bool {
        self.caught_up_once.lock().contains(&group)
    }

    pub(crate) fn target(&self, group: u64) -> Option<u64> {
        self.targets.lock().get(&group).map(|(_, t)| *t)
    }
}

/// Decides from a replica's view: a leader replica is caught up (it won an election, so its log
/// holds everything committed, and it applies what it commits); a follower must have heard from
/// its leader since start and applied up to the target.
pub(crate) fn judge(
    is_leader: bool,
    leader: Option<u64>,
    target: Option<u64>,
    applied: Option<u64>,
) -> Result<(), NotCaughtUp> {
    if is_leader {
        return Ok(());
    }
    let leader = leader.ok_or(NotCaughtUp::NoLeader)?;
    let target = target.ok_or(NotCaughtUp::NotHeardFromLeader { leader })?;
    let applied = applied.unwrap_or(0);
    if applied >= target {
        Ok(())
    } else {
        Err(NotCaughtUp::Behind { applied, target })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_is_caught_up() {
        assert_eq!(judge(true, Some(1), None, None), Ok(()));
    }

    #[test]
    fn a_follower_needs_a_leader_a_target_and_to_reach_it() {
        assert_eq!(
            judge(false, None, Some(5), Some(9)),
            Err(NotCaughtUp::NoLeader)
        );
        assert_eq!(
            judge(false, Some(2), None, Some(9)),
            Err(NotCaughtUp::NotHeardFromLeader { leader: 2 })
        );
        assert_eq!(
            judge(false, Some(2), Some(10), Some(9)),
            Err(NotCaughtUp::Behind {
                applied: 9,
                target: 10
            })
        );
        assert_eq!(judge(false, Some(2), Some(10), Some(10)), Ok(()));
        assert_eq!(judge(false, Some(2), Some(0), None), Ok(()));
    }

    #[test]
    fn the_latch_holds_until_the_replica_is_forgotten() {
        let t = CatchUpTargets::default();
        assert!(!t.latched(3));
        t.latch(3);
        assert!(t.latched(3));
        assert!(!t.latched(4));
        t.forget(3);
        assert!(!t.latched(3), "a replica opened again must catch up again");
    }

    #[test]
    fn the_target_is_set_once_per_leader_term() {
        let t = CatchUpTargets::default();
        let v1 = Vote::new_committed(3, 1);
        t.note_append(7, &v1, Some(100));
        t.note_append(7, &v1, Some(150));
        assert_eq!(t.target(7), Some(100));
        let v2 = Vote::new_committed(4, 2);
        t.note_append(7, &v2, Some(160));
        assert_eq!(t.target(7), Some(160));
        t.forget(7);
        assert_eq!(t.target(7), None);
    }
}
