//! What one node must do so the Raft groups it runs match the shard map: a pure function of the
//! metadata and the node's local groups, carried out by the server's driver.

use std::collections::{BTreeMap, BTreeSet};

use streamd_proto::ids::ShardId;

use crate::state::MetaState;

/// A shard group running on this node, as the driver sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalGroup {
    pub group: u64,
    pub is_leader: bool,
    /// The group's voters as this replica knows them.
    pub voters: BTreeSet<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeAction {
    /// Start this node's replica of a shard group; `initialize` with `members` when the group
    /// never had a leader (every replica forms it with the same members).
    OpenShard {
        group: u64,
        members: BTreeMap<u64, String>,
        initialize: bool,
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
    /// (Metadata leader only.) Move a replica off a node that is down or draining.
    MoveReplica { group: u64, from: u64, to: u64 },
    /// (Metadata leader only.) A drained node holds no replica: remove it from the cluster.
    RemoveNode { id: u64 },
    /// This node is draining and leads the group: hand leadership to another voter.
    TransferLeader { group: u64, to: u64 },
    /// Tell the metadata group that this shard group has a leader.
    ReportReady { group: u64 },
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

pub fn plan_node(
    state: &MetaState,
    me: u64,
    local: &[LocalGroup],
    meta_leader: bool,
    now_ms: i64,
    down: &BTreeSet<u64>,
) -> Vec<NodeAction> {
    let mut actions = Vec::new();
    if meta_leader {
        let away: BTreeSet<u64> = down.union(&state.draining).copied().collect();
        for (group, from, to) in crate::placement::plan_repairs(state, &away) {
            actions.push(NodeAction::MoveReplica { group, from, to });
        }
        // A drained node that is down cannot say it let go of its groups; the map is all there is.
        for id in state.draining.intersection(down) {
            if !state.all_shards().any(|(_, sh)| sh.replicas.contains(id)) {
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
            });
        }
    }
    // A draining node leaves once no shard lists it and it runs no group any more.
    if state.draining.contains(&me)
        && local.is_empty()
        && !state.all_shards().any(|(_, sh)| sh.replicas.contains(&me))
    {
        actions.push(NodeAction::RemoveNode { id: me });
    }
    for g in local {
        if !wanted.contains(&g.group) {
            // Dropped as soon as the map moves it away: a removed voter is not always told it
            // was removed, so waiting for that could wait forever. The group keeps a majority
            // (the other replicas) while the leader brings the new replica up to date.
            actions.push(NodeAction::DropGroup { group: g.group });
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
            && let Some((_, sh)) = state.shard_by_group(g.group)
        {
            let wanted: BTreeSet<u64> = sh.replicas.iter().copied().collect();
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
        if g.is_leader
            && state
                .shard_by_group(g.group)
                .is_some_and(|(_, sh)| !sh.ready)
        {
            actions.push(NodeAction::ReportReady { group: g.group });
        }
    }
    actions
}

/// The metadata group's voters once removals settle: every node still in the cluster. None when
/// nothing is to change (only removals are made here; nodes join through the metadata group).
pub fn plan_meta_voters(state: &MetaState, voters: &BTreeSet<u64>) -> Option<BTreeSet<u64>> {
    let wanted: BTreeSet<u64> = state.nodes.keys().copied().collect();
    let removals_only = !wanted.is_empty() && wanted.is_subset(voters) && wanted != *voters;
    removals_only.then_some(wanted)
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
        for me in 1..=3 {
            for a in plan_node(&s, me, &[], false, 0, &BTreeSet::new()) {
                if let NodeAction::OpenShard {
                    group,
                    members,
                    initialize,
                } = a
                {
                    assert_eq!(members.len(), 3);
                    if initialize {
                        *inits.entry(group).or_insert(0) += 1;
                    }
                }
            }
        }
        assert_eq!(inits, BTreeMap::from([(1, 3), (2, 3)]));
    }

    #[test]
    fn drops_unknown_groups_and_reports_ready_from_the_leader_only() {
        let s = state();
        let local = [
            LocalGroup {
                group: 1,
                is_leader: true,
                voters: BTreeSet::new(),
            },
            LocalGroup {
                group: 2,
                is_leader: false,
                voters: BTreeSet::new(),
            },
            LocalGroup {
                group: 9,
                is_leader: true,
                voters: BTreeSet::new(),
            },
        ];
        let a = plan_node(&s, 1, &local, false, 0, &BTreeSet::new());
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
            plan_node(s, 1, &[], leader, 5, &BTreeSet::new())
                .into_iter()
                .filter(|a| matches!(a, NodeAction::DriveReshard { .. }))
                .count()
        };
        assert_eq!(drive(&s, true), 0, "the child has no leader yet");
        // The child's replicas are opened like any shard's.
        let opens = plan_node(&s, 1, &[], false, 5, &BTreeSet::new())
            .into_iter()
            .filter(|a| matches!(a, NodeAction::OpenShard { group: 3, .. }))
            .count();
        assert_eq!(opens, 1);
        s.apply(MetaCommand::ShardReady { group_id: 3 }).unwrap();
        assert_eq!(drive(&s, false), 0, "only the metadata leader drives");
        match plan_node(&s, 1, &[], true, 5, &BTreeSet::new())
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
            voters: BTreeSet::from([1, 2, 3]),
        }];
        let none = BTreeSet::new();
        let a = plan_node(&s, 1, &local, true, 0, &none);
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
        for (group, from, to) in moves {
            s.apply(MetaCommand::MoveReplica { group, from, to })
                .unwrap();
        }
        // Its group moved away: it drops it, then leaves.
        let a = plan_node(&s, 1, &local, false, 0, &none);
        assert!(a.contains(&NodeAction::DropGroup { group: 1 }));
        assert!(!a.contains(&NodeAction::RemoveNode { id: 1 }));
        let a = plan_node(&s, 1, &[], false, 0, &none);
        assert!(a.contains(&NodeAction::RemoveNode { id: 1 }));
        assert!(!plan_node(&s, 2, &[], true, 0, &none).contains(&NodeAction::RemoveNode { id: 1 }));
        s.apply(MetaCommand::RemoveNode { id: 1 }).unwrap();
        assert!(!s.nodes.contains_key(&1));
        assert_eq!(
            plan_meta_voters(&s, &BTreeSet::from([1, 2, 3, 4])),
            Some(BTreeSet::from([2, 3, 4]))
        );
        assert_eq!(plan_meta_voters(&s, &BTreeSet::from([2, 3, 4])), None);
        // The last node not draining cannot be drained.
        for id in [2, 3] {
            s.apply(MetaCommand::DrainNode { id }).unwrap();
        }
        assert!(s.apply(MetaCommand::DrainNode { id: 4 }).is_err());
    }
}
