//! What one node must do so the Raft groups it runs match the shard map: a pure function of the
//! metadata and the node's local groups, carried out by the server's driver.

use std::collections::{BTreeMap, BTreeSet};

use streamd_proto::ids::ShardId;

use crate::state::{MetaState, ShardMeta};

/// A shard group running on this node, as the driver sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalGroup {
    pub group: u64,
    pub is_leader: bool,
    /// The Raft term this replica is in.
    pub term: u64,
    /// The group's voters as this replica knows them.
    pub voters: BTreeSet<u64>,
    /// Whether `voters` is committed (false while a membership change is still in flight).
    pub voters_committed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeAction {
    /// Start this node's replica of a shard group; `initialize` with `members` when the group
    /// never had a leader (every replica forms it with the same members). The one replica
    /// with `campaign` set forms it and campaigns at once; the others form it only if they
    /// have not heard from that one after a grace period.
    OpenShard {
        group: u64,
        members: BTreeMap<u64, String>,
        initialize: bool,
        campaign: bool,
    },
    /// The group is in no stream any more: stop it and delete its data.
    DropGroup { group: u64 },
    /// (Group leader only.) Make the group's voters the shard's replica set: add the one new
    /// replica as a learner, wait for it to catch up, then switch the voters.
    ReconcileMembers {
        group: u64,
        add: Option<(u64, String)>,
        voters: BTreeSet<u64>,
    },
    /// (Metadata leader only.) Move a replica off a node that is down or draining, or from the
    /// most loaded node to the least loaded one (rebalancing).
    MoveReplica { group: u64, from: u64, to: u64 },
    /// (Metadata leader only.) A drained node holds no replica: remove it from the cluster.
    RemoveNode { id: u64 },
    /// This node leads the group but is draining or moved out of it: hand leadership to
    /// another voter.
    TransferLeader { group: u64, to: u64 },
    /// Tell the metadata group that this shard group has a leader.
    ReportReady { group: u64 },
    /// Tell the metadata group that this node leads the group, in `term` (the shard map's
    /// leader hint names another node).
    ReportLeader { group: u64, term: u64 },
    /// (Group leader.) The group's voters match the shard map again: its move to `to` is over.
    ReportMoved { group: u64, to: u64 },
    /// (Metadata leader only.) A registered consumer needs nothing built: subscribers read from
    /// the shards' own storage, so it becomes usable at once.
    ActivateConsumer { arn: String },
    /// (Metadata leader only.) Every child of a planned reshard wave has a leader: seal each
    /// parent through its own log, then commit the wave with the parents' ending sequence numbers.
    DriveReshard {
        stream: String,
        op_id: u64,
        /// (shard, group, replicas) of every parent.
        parents: Vec<(ShardId, u64, Vec<u64>)>,
    },
    /// (Metadata leader only.) A closed shard of the stream is past retention: forget it.
    ExpireShards { stream: String },
}

/// The addresses of `replicas`, as a group's membership.
fn members(state: &MetaState, replicas: &[u64]) -> BTreeMap<u64, String> {
    replicas
        .iter()
        .filter_map(|id| state.nodes.get(id).map(|n| (*id, n.addr.clone())))
        .collect()
}

/// The replica that campaigns as soon as a new group is formed. Left to their election
/// timers, every replica of thousands of new groups campaigns within the same second: votes
/// split, elections repeat, and whichever node is least loaded ends up leading most groups.
/// Spreading first leaderships by group id leaves the leader balancer next to nothing to move.
fn first_leader(sh: &ShardMeta) -> Option<u64> {
    let n = sh.replicas.len();
    (n > 0).then(|| sh.replicas[(sh.group_id % n as u64) as usize])
}

/// What node `me` must do now. `down` and `unsettled` are what the metadata leader knows beyond
/// the metadata (empty elsewhere): members it has not heard from for the down timeout, and
/// members it cannot count on right now (not yet voters of the metadata group, i.e. still
/// joining, or not heard from in the last few seconds). Rebalancing waits for both to be empty.
pub fn plan_node(
    state: &MetaState,
    me: u64,
    local: &[LocalGroup],
    meta_leader: bool,
    now_ms: i64,
    down: &BTreeSet<u64>,
    unsettled: &BTreeSet<u64>,
) -> Vec<NodeAction> {
    let mut actions = Vec::new();
    if meta_leader {
        let away: BTreeSet<u64> = down.union(&state.draining).copied().collect();
        for (group, from, to) in crate::placement::plan_repairs(state, &away) {
            actions.push(NodeAction::MoveReplica { group, from, to });
        }
        let unsettled: BTreeSet<u64> = down.union(unsettled).copied().collect();
        for (group, from, to) in crate::placement::plan_rebalance(
            state,
            &unsettled,
            crate::placement::MAX_CONCURRENT_MOVES,
        ) {
            actions.push(NodeAction::MoveReplica { group, from, to });
        }
        // A drained node that is down cannot say it let go of its groups; the map, and the moves
        // whose groups have not yet dropped it from their voters, are all there is.
        for id in state.draining.intersection(down) {
            if !state.holds_or_leaves_a_group(*id) {
                actions.push(NodeAction::RemoveNode { id: *id });
            }
        }
        for s in state.streams.values() {
            for c in &s.consumers {
                if c.status == crate::state::ConsumerStatus::Creating {
                    actions.push(NodeAction::ActivateConsumer { arn: c.arn.clone() });
                }
            }
            if let Some(op) = &s.reshard {
                let children_ready = op.children().all(|c| s.shard(c).is_some_and(|sh| sh.ready));
                if children_ready {
                    let parents = op
                        .parents()
                        .filter_map(|p| s.shard(p))
                        .map(|sh| (sh.shard_id, sh.group_id, sh.replicas.clone()))
                        .collect();
                    actions.push(NodeAction::DriveReshard {
                        stream: s.name.clone(),
                        op_id: op.id,
                        parents,
                    });
                }
            }
            let retention_ms = i64::from(s.retention_hours) * 3_600_000;
            let expired = s.shards.iter().any(|sh| {
                sh.closed_ms
                    .is_some_and(|c| c.saturating_add(retention_ms) <= now_ms)
            });
            if expired {
                actions.push(NodeAction::ExpireShards {
                    stream: s.name.clone(),
                });
            }
        }
    }
    let local_ids: BTreeSet<u64> = local.iter().map(|g| g.group).collect();
    let by_group = state.shards_by_group();
    let shard_by_group = |g: u64| by_group.get(&g).copied();
    let mut wanted = BTreeSet::new();
    for (_, sh) in state.all_shards() {
        if !sh.replicas.contains(&me) {
            continue;
        }
        wanted.insert(sh.group_id);
        if !local_ids.contains(&sh.group_id) {
            let members = members(state, &sh.replicas);
            actions.push(NodeAction::OpenShard {
                group: sh.group_id,
                members,
                // Every replica of a group that never had a leader forms it, with the same
                // membership (openraft allows this; the vote decides): if only one did and died
                // right after winning the first election, the others would hold a vote but no
                // membership and could never elect. A replica added later (a moved one) joins
                // through the leader, never by initializing.
                initialize: !sh.ready,
                campaign: !sh.ready && first_leader(sh) == Some(me),
            });
        }
    }
    // A draining node leaves once no shard lists it and it runs no group any more.
    if state.draining.contains(&me) && local.is_empty() && !state.holds_or_leaves_a_group(me) {
        actions.push(NodeAction::RemoveNode { id: me });
    }
    for g in local {
        if !wanted.contains(&g.group) {
            // A leader moved out of its group first hands leadership to a replica that stays:
            // dropping at once would leave the group without a leader for an election timeout.
            let stays = shard_by_group(g.group).and_then(|(_, sh)| {
                g.voters.iter().copied().find(|v| {
                    *v != me
                        && sh.replicas.contains(v)
                        && !state.draining.contains(v)
                        && !down.contains(v)
                })
            });
            if g.is_leader
                && let Some(to) = stays
            {
                actions.push(NodeAction::TransferLeader { group: g.group, to });
                continue;
            }
            // The source of a move keeps its replica, and its vote, until the group's leader
            // reports the voters switched (`MoveDone`): another replica may be down, and then
            // this one is part of the only majority the change can commit with. It is not
            // dropped earlier, either, because a replica opened here again later would start
            // empty while the group still counted this node as a voter with its log. The
            // metadata, not this replica, says when: a removed voter is not always told so.
            let leaving = shard_by_group(g.group).is_some()
                && state
                    .moving
                    .get(&g.group)
                    .is_some_and(|(from, _)| *from == me);
            if !leaving {
                actions.push(NodeAction::DropGroup { group: g.group });
            }
            continue;
        }
        if g.is_leader
            && state.draining.contains(&me)
            && let Some(to) = g
                .voters
                .iter()
                .copied()
                .find(|v| *v != me && !state.draining.contains(v) && !down.contains(v))
        {
            actions.push(NodeAction::TransferLeader { group: g.group, to });
        }
        if g.is_leader
            && let Some((_, sh)) = shard_by_group(g.group)
        {
            if sh.leader != Some(me) {
                actions.push(NodeAction::ReportLeader {
                    group: g.group,
                    term: g.term,
                });
            }
            let wanted: BTreeSet<u64> = sh.replicas.iter().copied().collect();
            // Only once committed: until then an election could still bring back the joint
            // configuration, in which the source's vote counts.
            if wanted == g.voters
                && g.voters_committed
                && let Some((_, to)) = state.moving.get(&g.group)
            {
                actions.push(NodeAction::ReportMoved {
                    group: g.group,
                    to: *to,
                });
            }
            if !g.voters.is_empty() && wanted != g.voters {
                let add = wanted
                    .difference(&g.voters)
                    .next()
                    .and_then(|id| state.nodes.get(id).map(|n| (*id, n.addr.clone())));
                actions.push(NodeAction::ReconcileMembers {
                    group: g.group,
                    add,
                    voters: wanted,
                });
            }
        }
        if g.is_leader && shard_by_group(g.group).is_some_and(|(_, sh)| !sh.ready) {
            actions.push(NodeAction::ReportReady { group: g.group });
        }
    }
    actions
}

/// One change of the metadata group's voters, made by its leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaVoterChange {
    /// A joined node to add as a learner first (the leader waits until it has caught up on the
    /// metadata log), with its address.
    pub add: Option<(u64, String)>,
    /// The voters once the change is made.
    pub voters: BTreeSet<u64>,
}

/// The next change that makes the metadata group's voters every node in the cluster: departed
/// nodes leave, joined nodes come in one at a time (as learners that catch up first, so a
/// joining node never counts toward a quorum before it holds the log). None when the voters
/// already match.
pub fn plan_meta_voters(state: &MetaState, voters: &BTreeSet<u64>) -> Option<MetaVoterChange> {
    let wanted: BTreeSet<u64> = state.nodes.keys().copied().collect();
    if wanted.is_empty() || voters.is_empty() || wanted == *voters {
        return None;
    }
    let add = wanted
        .difference(voters)
        .next()
        .and_then(|id| state.nodes.get(id))
        .map(|n| (n.id, n.addr.clone()));
    let mut next: BTreeSet<u64> = voters.intersection(&wanted).copied().collect();
    if let Some((id, _)) = &add {
        next.insert(*id);
    }
    if next.is_empty() {
        return None;
    }
    Some(MetaVoterChange { add, voters: next })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::MetaCommand;
    use crate::state::NodeInfo;

    fn state() -> MetaState {
        let mut s = crate::testing::formed(3);
        crate::testing::create(&mut s, "a", 2).unwrap();
        s
    }

    #[test]
    fn every_replica_of_a_new_group_initializes_it_with_the_same_members() {
        let s = state();
        let mut inits = BTreeMap::new();
        let mut campaigners = BTreeMap::new();
        for me in 1..=3 {
            for a in plan_node(&s, me, &[], false, 0, &BTreeSet::new(), &BTreeSet::new()) {
                if let NodeAction::OpenShard {
                    group,
                    members,
                    initialize,
                    campaign,
                } = a
                {
                    assert_eq!(members.len(), 3);
                    if initialize {
                        *inits.entry(group).or_insert(0) += 1;
                    }
                    if campaign {
                        campaigners.entry(group).or_insert_with(Vec::new).push(me);
                    }
                }
            }
        }
        assert_eq!(inits, BTreeMap::from([(1, 3), (2, 3)]));
        // One replica per group campaigns at once, and not the same node for both groups.
        assert_eq!(campaigners.len(), 2);
        assert!(campaigners.values().all(|c| c.len() == 1));
        assert_ne!(campaigners[&1], campaigners[&2]);
    }

    #[test]
    fn drops_unknown_groups_and_reports_ready_from_the_leader_only() {
        let s = state();
        let local = [
            LocalGroup {
                group: 1,
                is_leader: true,
                term: 1,
                voters: BTreeSet::new(),
                voters_committed: true,
            },
            LocalGroup {
                group: 2,
                is_leader: false,
                term: 1,
                voters: BTreeSet::new(),
                voters_committed: true,
            },
            LocalGroup {
                group: 9,
                is_leader: true,
                term: 1,
                voters: BTreeSet::new(),
                voters_committed: true,
            },
        ];
        let a = plan_node(&s, 1, &local, false, 0, &BTreeSet::new(), &BTreeSet::new());
        assert!(a.contains(&NodeAction::ReportReady { group: 1 }));
        assert!(!a.contains(&NodeAction::ReportReady { group: 2 }));
        assert!(a.contains(&NodeAction::DropGroup { group: 9 }));
        assert!(!a.iter().any(|x| matches!(x, NodeAction::OpenShard { .. })));
    }

    #[test]
    fn the_metadata_leader_seals_parents_only_once_every_child_has_a_leader() {
        let mut s = state();
        for g in [1, 2] {
            s.apply(MetaCommand::ShardReady { group_id: g }).unwrap();
        }
        s.apply(MetaCommand::Reshard {
            name: "a".into(),
            request: crate::ReshardRequest::Merge {
                shard: ShardId(0),
                adjacent: ShardId(1),
            },
            now_ms: 5,
        })
        .unwrap();
        let drive = |s: &MetaState, leader: bool| {
            plan_node(s, 1, &[], leader, 5, &BTreeSet::new(), &BTreeSet::new())
                .into_iter()
                .filter(|a| matches!(a, NodeAction::DriveReshard { .. }))
                .count()
        };
        assert_eq!(drive(&s, true), 0, "the child has no leader yet");
        // The child's replicas are opened like any shard's.
        let opens = plan_node(&s, 1, &[], false, 5, &BTreeSet::new(), &BTreeSet::new())
            .into_iter()
            .filter(|a| matches!(a, NodeAction::OpenShard { group: 3, .. }))
            .count();
        assert_eq!(opens, 1);
        s.apply(MetaCommand::ShardReady { group_id: 3 }).unwrap();
        assert_eq!(drive(&s, false), 0, "only the metadata leader drives");
        match plan_node(&s, 1, &[], true, 5, &BTreeSet::new(), &BTreeSet::new())
            .into_iter()
            .find(|a| matches!(a, NodeAction::DriveReshard { .. }))
        {
            Some(NodeAction::DriveReshard { parents, .. }) => {
                let groups: Vec<u64> = parents.iter().map(|p| p.1).collect();
                assert_eq!(groups, vec![1, 2]);
            }
            other => panic!("expected a reshard to drive, got {other:?}"),
        }
    }

    #[test]
    fn a_draining_node_hands_off_leaderships_and_replicas_then_leaves() {
        let mut s = state();
        s.nodes.insert(
            4,
            NodeInfo {
                id: 4,
                addr: "n4".into(),
            },
        );
        s.apply(MetaCommand::DrainNode { id: 1 }).unwrap();
        let local = [LocalGroup {
            group: 1,
            is_leader: true,
            term: 1,
            voters: BTreeSet::from([1, 2, 3]),
            voters_committed: true,
        }];
        let none = BTreeSet::new();
        let a = plan_node(&s, 1, &local, true, 0, &none, &none);
        assert!(a.contains(&NodeAction::TransferLeader { group: 1, to: 2 }));
        let moves: Vec<_> = a
            .iter()
            .filter_map(|x| match x {
                NodeAction::MoveReplica { group, from, to } => Some((*group, *from, *to)),
                _ => None,
            })
            .collect();
        assert_eq!(moves, vec![(1, 1, 4), (2, 1, 4)]);
        assert!(!a.contains(&NodeAction::RemoveNode { id: 1 }));
        for &(group, from, to) in &moves {
            s.apply(MetaCommand::MoveReplica { group, from, to })
                .unwrap();
        }
        // Its group moved away: it hands the leadership to a replica that stays, drops the
        // group once it no longer leads, then leaves.
        let a = plan_node(&s, 1, &local, false, 0, &none, &none);
        assert!(a.contains(&NodeAction::TransferLeader { group: 1, to: 2 }));
        assert!(!a.contains(&NodeAction::DropGroup { group: 1 }));
        let follower = [LocalGroup {
            is_leader: false,
            ..local[0].clone()
        }];
        // As a follower it keeps the replica (and its vote) until the group has switched voters.
        let a = plan_node(&s, 1, &follower, false, 0, &none, &none);
        assert!(!a.contains(&NodeAction::DropGroup { group: 1 }));
        assert!(!a.contains(&NodeAction::RemoveNode { id: 1 }));
        // Not while its groups still count it among their voters.
        let a = plan_node(&s, 1, &[], false, 0, &none, &none);
        assert!(!a.contains(&NodeAction::RemoveNode { id: 1 }));
        for &(group, _, to) in &moves {
            s.apply(MetaCommand::MoveDone { group, to }).unwrap();
        }
        let a = plan_node(&s, 1, &follower, false, 0, &none, &none);
        assert!(a.contains(&NodeAction::DropGroup { group: 1 }));
        let a = plan_node(&s, 1, &[], false, 0, &none, &none);
        assert!(a.contains(&NodeAction::RemoveNode { id: 1 }));
        assert!(
            !plan_node(&s, 2, &[], true, 0, &none, &none)
                .contains(&NodeAction::RemoveNode { id: 1 })
        );
        s.apply(MetaCommand::RemoveNode { id: 1 }).unwrap();
        assert!(!s.nodes.contains_key(&1));
        assert_eq!(
            plan_meta_voters(&s, &BTreeSet::from([1, 2, 3, 4])),
            Some(MetaVoterChange {
                add: None,
                voters: BTreeSet::from([2, 3, 4])
            })
        );
        assert_eq!(plan_meta_voters(&s, &BTreeSet::from([2, 3, 4])), None);
        // The last node not draining cannot be drained.
        for id in [2, 3] {
            s.apply(MetaCommand::DrainNode { id }).unwrap();
        }
        assert!(s.apply(MetaCommand::DrainNode { id: 4 }).is_err());
    }

    #[test]
    fn a_joined_node_becomes_a_metadata_voter_after_catching_up() {
        let mut s = state();
        s.apply(MetaCommand::AddNode {
            id: 4,
            addr: "n4:1".into(),
        })
        .unwrap();
        let voters = BTreeSet::from([1, 2, 3]);
        assert_eq!(
            plan_meta_voters(&s, &voters),
            Some(MetaVoterChange {
                add: Some((4, "n4:1".into())),
                voters: BTreeSet::from([1, 2, 3, 4])
            })
        );
        assert_eq!(plan_meta_voters(&s, &BTreeSet::from([1, 2, 3, 4])), None);
    }

    #[test]
    fn group_leaders_report_leadership_and_finished_moves() {
        let mut s = state();
        s.apply(MetaCommand::AddNode {
            id: 4,
            addr: "n4:1".into(),
        })
        .unwrap();
        s.apply(MetaCommand::MoveReplica {
            group: 1,
            from: 3,
            to: 4,
        })
        .unwrap();
        let (_, sh) = s.shard_by_group(1).unwrap();
        let replicas: BTreeSet<u64> = sh.replicas.iter().copied().collect();
        let me = *replicas.iter().find(|r| **r != 4).unwrap();
        let mut g = LocalGroup {
            group: 1,
            is_leader: true,
            term: 7,
            voters: BTreeSet::from([1, 2, 3]),
            voters_committed: true,
        };
        let none = BTreeSet::new();
        let a = plan_node(&s, me, &[g.clone()], false, 0, &none, &none);
        assert!(a.contains(&NodeAction::ReportLeader { group: 1, term: 7 }));
        assert!(
            a.iter()
                .any(|x| matches!(x, NodeAction::ReconcileMembers { group: 1, .. }))
        );
        assert!(
            !a.iter()
                .any(|x| matches!(x, NodeAction::ReportMoved { .. }))
        );
        // The new voters are in the log but not committed yet: the move is not over.
        g.voters = replicas;
        g.voters_committed = false;
        let a = plan_node(&s, me, &[g.clone()], false, 0, &none, &none);
        assert!(
            !a.iter()
                .any(|x| matches!(x, NodeAction::ReportMoved { .. }))
        );
        g.voters_committed = true;
        let a = plan_node(&s, me, &[g], false, 0, &none, &none);
        assert!(a.contains(&NodeAction::ReportMoved { group: 1, to: 4 }));
        s.apply(MetaCommand::MoveDone { group: 1, to: 4 }).unwrap();
        assert!(s.moving.is_empty());
    }

    /// A rebalancing move starts just as another replica of the group dies: the source keeps
    /// its replica until the move is done, and the dead replica waits for its own repair.
    #[test]
    fn a_moving_group_keeps_its_source_and_takes_one_move_at_a_time() {
        let mut s = state();
        for id in [4, 5] {
            s.apply(MetaCommand::AddNode {
                id,
                addr: format!("n{id}:1"),
            })
            .unwrap();
        }
        s.apply(MetaCommand::ShardReady { group_id: 1 }).unwrap();
        s.apply(MetaCommand::MoveReplica {
            group: 1,
            from: 3,
            to: 4,
        })
        .unwrap();
        let replica = LocalGroup {
            group: 1,
            is_leader: false,
            term: 2,
            voters: BTreeSet::from([1, 2, 3]),
            voters_committed: true,
        };
        let none = BTreeSet::new();
        // Whether node 3, the move's source, drops its replica.
        let drops = |s: &MetaState| {
            plan_node(s, 3, std::slice::from_ref(&replica), false, 0, &none, &none)
                .contains(&NodeAction::DropGroup { group: 1 })
        };
        assert!(!drops(&s));
        // Node 2 goes down: its repair waits for the move in flight.
        let down = BTreeSet::from([2]);
        assert!(
            crate::placement::plan_repairs(&s, &down)
                .iter()
                .all(|(g, _, _)| *g != 1)
        );
        assert!(
            s.apply(MetaCommand::MoveReplica {
                group: 1,
                from: 2,
                to: 5,
            })
            .is_err()
        );
        // The move's own target going away redirects it; the source is still the one leaving.
        let away = BTreeSet::from([4]);
        let redirect = crate::placement::plan_repairs(&s, &away);
        assert_eq!(redirect.iter().find(|(g, _, _)| *g == 1), Some(&(1, 4, 5)));
        s.apply(MetaCommand::MoveReplica {
            group: 1,
            from: 4,
            to: 5,
        })
        .unwrap();
        assert_eq!(s.moving.get(&1), Some(&(3, 5)));
        assert!(!drops(&s));
        s.apply(MetaCommand::MoveDone { group: 1, to: 5 }).unwrap();
        assert!(drops(&s));
        // Now node 2's repair can go ahead.
        assert!(
            crate::placement::plan_repairs(&s, &down)
                .iter()
                .any(|(g, from, _)| *g == 1 && *from == 2)
        );
    }
}
