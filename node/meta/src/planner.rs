//! What one node must do so the Raft groups it runs match the shard map: a pure function of the
//! metadata and the node's local groups, carried out by the server's driver.

use std::collections::{BTreeMap, BTreeSet};

use crate::state::MetaState;

/// A shard group running on this node, as the driver sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalGroup {
    pub group: u64,
    pub is_leader: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeAction {
    /// Start this node's replica of a shard group; `initialize` with `members` when this node is
    /// the group's first replica (exactly one replica forms the group).
    OpenShard {
        group: u64,
        members: BTreeMap<u64, String>,
        initialize: bool,
    },
    /// The group is in no stream any more: stop it and delete its data.
    DropGroup { group: u64 },
    /// Tell the metadata group that this shard group has a leader.
    ReportReady { group: u64 },
    /// (Metadata leader only.) A registered consumer needs nothing built: subscribers read from
    /// the shards' own storage, so it becomes usable at once.
    ActivateConsumer { arn: String },
}

pub fn plan_node(
    state: &MetaState,
    me: u64,
    local: &[LocalGroup],
    meta_leader: bool,
) -> Vec<NodeAction> {
    let mut actions = Vec::new();
    if meta_leader {
        for s in state.streams.values() {
            for c in &s.consumers {
                if c.status == crate::state::ConsumerStatus::Creating {
                    actions.push(NodeAction::ActivateConsumer { arn: c.arn.clone() });
                }
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
            let members = sh
                .replicas
                .iter()
                .filter_map(|id| state.nodes.get(id).map(|n| (*id, n.addr.clone())))
                .collect();
            actions.push(NodeAction::OpenShard {
                group: sh.group_id,
                members,
                initialize: sh.replicas.first() == Some(&me),
            });
        }
    }
    for g in local {
        if !wanted.contains(&g.group) {
            actions.push(NodeAction::DropGroup { group: g.group });
        } else if g.is_leader
            && state
                .shard_by_group(g.group)
                .is_some_and(|(_, sh)| !sh.ready)
        {
            actions.push(NodeAction::ReportReady { group: g.group });
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::MetaCommand;
    use crate::state::NodeInfo;

    fn state() -> MetaState {
        let mut s = MetaState::default();
        let nodes = (1..=3)
            .map(|id| NodeInfo {
                id,
                addr: format!("n{id}"),
            })
            .collect();
        s.apply(MetaCommand::Init {
            secret: vec![1],
            nodes,
            replication_factor: 3,
        })
        .unwrap();
        s.apply(MetaCommand::CreateStream {
            name: "a".into(),
            shard_count: 2,
            on_demand: false,
            now_ms: 0,
            region: "r".into(),
        })
        .unwrap();
        s
    }

    #[test]
    fn opens_missing_groups_and_exactly_one_replica_initializes() {
        let s = state();
        let mut inits = BTreeMap::new();
        for me in 1..=3 {
            for a in plan_node(&s, me, &[], false) {
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
        assert_eq!(inits, BTreeMap::from([(1, 1), (2, 1)]));
    }

    #[test]
    fn drops_unknown_groups_and_reports_ready_from_the_leader_only() {
        let s = state();
        let local = [
            LocalGroup {
                group: 1,
                is_leader: true,
            },
            LocalGroup {
                group: 2,
                is_leader: false,
            },
            LocalGroup {
                group: 9,
                is_leader: true,
            },
        ];
        let a = plan_node(&s, 1, &local, false);
        assert!(a.contains(&NodeAction::ReportReady { group: 1 }));
        assert!(!a.contains(&NodeAction::ReportReady { group: 2 }));
        assert!(a.contains(&NodeAction::DropGroup { group: 9 }));
        assert!(!a.iter().any(|x| matches!(x, NodeAction::OpenShard { .. })));
    }
}
