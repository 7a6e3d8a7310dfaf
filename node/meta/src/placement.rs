//! Where a new shard's replicas go: a pure function, so every metadata replica computes the same
//! answer when it applies the entry that creates the shard.
//!
//! Replica sets rotate over the nodes by group id, so replicas spread evenly; the first replica
//! initializes the group and so usually becomes its first leader, which spreads leaders too.

use std::collections::{BTreeMap, BTreeSet};

use crate::state::MetaState;

/// `rf` distinct nodes out of `nodes` (sorted ascending) for group `group_id`.
pub fn place_replicas(nodes: &[u64], rf: usize, group_id: u64) -> Vec<u64> {
    if nodes.is_empty() {
        return Vec::new();
    }
    let n = nodes.len();
    let rf = rf.clamp(1, n);
    let start = (group_id as usize) % n;
    (0..rf).map(|i| nodes[(start + i) % n]).collect()
}

/// Replicas to move off nodes that are down (or draining): for each shard group holding one,
/// `(group, from, to)` with `to` a live node not already in the group, the least loaded first
/// (ties to the lower id). One move per group at a time, so every membership change is a single
/// step; groups with no live candidate keep their replica.
pub fn plan_repairs(state: &MetaState, away: &BTreeSet<u64>) -> Vec<(u64, u64, u64)> {
    let mut load: BTreeMap<u64, usize> = state
        .nodes
        .keys()
        .filter(|n| !away.contains(n))
        .map(|n| (*n, 0))
        .collect();
    for (_, sh) in state.all_shards() {
        for r in &sh.replicas {
            if let Some(l) = load.get_mut(r) {
                *l += 1;
            }
        }
    }
    let mut shards: Vec<_> = state.all_shards().map(|(_, sh)| sh).collect();
    shards.sort_by_key(|sh| sh.group_id);
    let mut moves = Vec::new();
    for sh in shards {
        let Some(from) = sh.replicas.iter().copied().find(|r| away.contains(r)) else {
            continue;
        };
        let to = load
            .iter()
            .filter(|(n, _)| !sh.replicas.contains(n))
            .min_by_key(|(n, l)| (**l, **n))
            .map(|(n, _)| *n);
        if let Some(to) = to {
            if let Some(l) = load.get_mut(&to) {
                *l += 1;
            }
            moves.push((sh.group_id, from, to));
        }
    }
    moves
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_are_distinct_and_spread() {
        let nodes = [1, 2, 3, 4, 5];
        let mut count = std::collections::BTreeMap::new();
        let mut first = std::collections::BTreeMap::new();
        for g in 1..=100u64 {
            let r = place_replicas(&nodes, 3, g);
            let mut d = r.clone();
            d.sort();
            d.dedup();
            assert_eq!(d.len(), 3);
            for n in &r {
                *count.entry(*n).or_insert(0) += 1;
            }
            *first.entry(r[0]).or_insert(0) += 1;
        }
        // 300 replicas over 5 nodes, 100 first replicas over 5 nodes: within one of the mean.
        assert!(count.values().all(|c| (59..=61).contains(c)), "{count:?}");
        assert!(first.values().all(|c| (19..=21).contains(c)), "{first:?}");
    }

    #[test]
    fn small_clusters_cap_the_factor() {
        assert_eq!(place_replicas(&[7], 3, 4), vec![7]);
        assert_eq!(place_replicas(&[], 3, 4), Vec::<u64>::new());
        assert_eq!(place_replicas(&[1, 2], 3, 1).len(), 2);
    }

    #[test]
    fn replicas_on_a_lost_node_move_to_the_least_loaded_live_nodes() {
        use crate::commands::MetaCommand;
        let mut s = crate::testing::formed(4);
        crate::testing::create(&mut s, "s", 8).unwrap();
        let away = BTreeSet::from([2]);
        let moves = plan_repairs(&s, &away);
        let holding = s
            .all_shards()
            .filter(|(_, sh)| sh.replicas.contains(&2))
            .count();
        assert_eq!(moves.len(), holding);
        for (group, from, to) in &moves {
            assert_eq!(*from, 2);
            assert_ne!(*to, 2);
            s.apply(MetaCommand::MoveReplica {
                group: *group,
                from: *from,
                to: *to,
            })
            .unwrap();
        }
        let mut count = BTreeMap::new();
        for (_, sh) in s.all_shards() {
            let mut d = sh.replicas.clone();
            d.sort();
            d.dedup();
            assert_eq!(d.len(), 3, "distinct replicas");
            assert!(!sh.replicas.contains(&2));
            for r in &sh.replicas {
                *count.entry(*r).or_insert(0) += 1;
            }
        }
        // 24 replicas over the 3 live nodes.
        assert!(count.values().all(|c| *c == 8), "{count:?}");
        assert!(plan_repairs(&s, &away).is_empty());
    }
}
