//! Where a new shard's replicas go: a pure function, so every metadata replica computes the same
//! answer when it applies the entry that creates the shard.
//!
//! Replica sets rotate over the nodes by group id, so replicas spread evenly; the first replica
//! initializes the group and so usually becomes its first leader, which spreads leaders too.

use std::collections::{BTreeMap, BTreeSet};

use crate::state::{MetaState, ShardMeta, StreamStatus};

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
///
/// A group with a move in flight is left to finish it: its source still votes until the group
/// switches voters, so a second change at once could leave the group without a majority. The
/// one exception is the in-flight move's own target going away, which could otherwise never
/// finish: that move is redirected to another node (`MetaCommand::MoveReplica` keeps its source).
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
        let in_flight = state.moving.get(&sh.group_id).map(|(_, to)| *to);
        let Some(from) = sh
            .replicas
            .iter()
            .copied()
            .find(|r| away.contains(r) && in_flight.is_none_or(|to| to == *r))
        else {
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

/// Rebalancing moves that may run at once in the whole cluster. Each move copies a replica
/// (log or snapshot) to its new node; a few at a time keep that traffic from crowding out the
/// writes while a joined node still fills up within minutes.
pub const MAX_CONCURRENT_MOVES: usize = 2;

/// Whether `count` out of `total` over `n` nodes is more than one away from the mean
/// `total / n` (in integers: |count * n - total| > n).
fn off_mean(count: usize, total: usize, n: usize) -> bool {
    (count * n).abs_diff(total) > n
}

/// Replica moves that even out how many replicas each node holds, e.g. after a node joined:
/// `(group, from, to)`, from the most loaded node to the least loaded one, while some node is
/// more than one replica away from the mean.
///
/// Only a settled cluster is rebalanced: nothing when a node is down, joining or draining
/// (`unsettled` and `state.draining`), when a stream is not ACTIVE (a reshard or a create is in
/// flight), or when `max_in_flight` moves already run (`state.moving`). A group moves at most
/// one replica at a time, never onto a node that already holds it, and only once it has a
/// leader to carry the move out. The replica moved is preferably not the group's leader, so
/// leaderships stay where they are.
pub fn plan_rebalance(
    state: &MetaState,
    unsettled: &BTreeSet<u64>,
    max_in_flight: usize,
) -> Vec<(u64, u64, u64)> {
    if !unsettled.is_empty() || !state.draining.is_empty() {
        return Vec::new();
    }
    if state
        .streams
        .values()
        .any(|s| s.status != StreamStatus::Active || s.reshard.is_some())
    {
        return Vec::new();
    }
    let in_flight = state
        .moving
        .keys()
        .filter(|g| state.shard_by_group(**g).is_some())
        .count();
    let budget = max_in_flight.saturating_sub(in_flight);
    let mut load: BTreeMap<u64, usize> = state.nodes.keys().map(|n| (*n, 0)).collect();
    let n = load.len();
    if budget == 0 || n < 2 {
        return Vec::new();
    }
    let mut shards: Vec<&ShardMeta> = state.all_shards().map(|(_, sh)| sh).collect();
    shards.sort_by_key(|sh| sh.group_id);
    for sh in &shards {
        for r in &sh.replicas {
            if let Some(l) = load.get_mut(r) {
                *l += 1;
            }
        }
    }
    let total: usize = load.values().sum();
    let mut planned: BTreeSet<u64> = state.moving.keys().copied().collect();
    let mut moves = Vec::new();
    while moves.len() < budget {
        if !load.values().any(|c| off_mean(*c, total, n)) {
            break;
        }
        // Most loaded first, least loaded last; ties by id so every run plans the same.
        let mut by_load: Vec<(u64, usize)> = load.iter().map(|(id, c)| (*id, *c)).collect();
        by_load.sort_by_key(|(id, c)| (std::cmp::Reverse(*c), *id));
        let found = by_load.iter().find_map(|(from, from_load)| {
            by_load.iter().rev().find_map(|(to, to_load)| {
                if from_load.saturating_sub(*to_load) < 2 {
                    return None;
                }
                let movable = |sh: &&&ShardMeta| {
                    sh.ready
                        && sh.replicas.contains(from)
                        && !sh.replicas.contains(to)
                        && !planned.contains(&sh.group_id)
                };
                let pick = shards
                    .iter()
                    .filter(movable)
                    .find(|sh| sh.leader != Some(*from))
                    .or_else(|| shards.iter().find(movable))?;
                Some((pick.group_id, *from, *to))
            })
        });
        let Some((group, from, to)) = found else {
            break;
        };
        planned.insert(group);
        shift_one(&mut load, from, to);
        moves.push((group, from, to));
    }
    moves
}

/// Leadership transfers a round of leader balancing may start.
pub const MAX_LEADER_TRANSFERS: usize = 16;

/// Leadership transfers that even out how many groups each node leads: `(group, from, to)`
/// with `to` a replica of the group, while some node is more than one away from the mean.
///
/// Reads the leader hints of the shard map (`ShardMeta::leader`), so it plans nothing unless
/// they are complete and the cluster is settled: no node `away` (down or joining), none
/// draining, no replica moving (a new replica may still be a learner), every group's leader
/// known and a member, every stream ACTIVE. Each transfer goes from a node leading at least
/// two more groups than the target, so every round strictly narrows the spread: rounds cannot
/// undo each other.
pub fn plan_leader_balance(
    state: &MetaState,
    away: &BTreeSet<u64>,
    max: usize,
) -> Vec<(u64, u64, u64)> {
    if !away.is_empty() || !state.draining.is_empty() || !state.moving.is_empty() {
        return Vec::new();
    }
    // A reshard seals parents through their leaders: leave leaderships alone meanwhile.
    if state
        .streams
        .values()
        .any(|s| s.status != StreamStatus::Active || s.reshard.is_some())
    {
        return Vec::new();
    }
    let mut count: BTreeMap<u64, usize> = state.nodes.keys().map(|n| (*n, 0)).collect();
    let n = count.len();
    let mut led: Vec<(u64, u64, &[u64])> = Vec::new();
    for (_, sh) in state.all_shards() {
        let Some(l) = sh.leader.filter(|l| sh.replicas.contains(l)) else {
            return Vec::new();
        };
        match count.get_mut(&l) {
            Some(c) => *c += 1,
            None => return Vec::new(),
        }
        led.push((sh.group_id, l, &sh.replicas));
    }
    led.sort_by_key(|(g, _, _)| *g);
    let total = led.len();
    let mut moved = BTreeSet::new();
    let mut transfers = Vec::new();
    while transfers.len() < max && n >= 2 {
        if !count.values().any(|c| off_mean(*c, total, n)) {
            break;
        }
        let mut by_count: Vec<(u64, usize)> = count.iter().map(|(id, c)| (*id, *c)).collect();
        by_count.sort_by_key(|(id, c)| (std::cmp::Reverse(*c), *id));
        let found = by_count.iter().find_map(|(from, from_count)| {
            by_count.iter().rev().find_map(|(to, to_count)| {
                if from_count.saturating_sub(*to_count) < 2 {
                    return None;
                }
                led.iter()
                    .find(|(g, l, replicas)| {
                        l == from && replicas.contains(to) && !moved.contains(g)
                    })
                    .map(|(g, _, _)| (*g, *from, *to))
            })
        });
        let Some((group, from, to)) = found else {
            break;
        };
        moved.insert(group);
        shift_one(&mut count, from, to);
        transfers.push((group, from, to));
    }
    transfers
}

/// Moves one unit of a per-node count from `from` to `to` (a planned replica move or leader
/// transfer), so the next pick sees the counts after it.
fn shift_one(counts: &mut BTreeMap<u64, usize>, from: u64, to: u64) {
    for (node, delta) in [(from, -1isize), (to, 1)] {
        if let Some(c) = counts.get_mut(&node) {
            *c = c.saturating_add_signed(delta);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::MetaCommand;

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

    /// A formed cluster of `n` nodes with `streams` streams of `shards` shards each, every
    /// shard ready and led by its first replica, every stream ACTIVE.
    fn settled(n: u64, streams: usize, shards: u32) -> MetaState {
        let mut s = crate::testing::formed(n);
        for i in 0..streams {
            crate::testing::create(&mut s, &format!("s{i}"), shards).unwrap();
        }
        let groups: Vec<(u64, u64)> = s
            .all_shards()
            .map(|(_, sh)| (sh.group_id, sh.replicas[0]))
            .collect();
        for (g, leader) in groups {
            s.apply(MetaCommand::ShardReady { group_id: g }).unwrap();
            s.apply(MetaCommand::ShardLeader {
                group: g,
                leader,
                term: 1,
            })
            .unwrap();
        }
        s
    }

    fn join(s: &mut MetaState, id: u64) {
        s.apply(MetaCommand::AddNode {
            id,
            addr: format!("127.0.0.1:{}", 50050 + id),
        })
        .unwrap();
    }

    fn replica_counts(s: &MetaState) -> BTreeMap<u64, usize> {
        let mut count: BTreeMap<u64, usize> = s.nodes.keys().map(|n| (*n, 0)).collect();
        for (_, sh) in s.all_shards() {
            for r in &sh.replicas {
                *count.entry(*r).or_insert(0) += 1;
            }
        }
        count
    }

    fn within_one_of_the_mean(count: &BTreeMap<u64, usize>) -> bool {
        let total: usize = count.values().sum();
        !count.values().any(|c| off_mean(*c, total, count.len()))
    }

    /// Runs rebalancing rounds as the cluster would: each round's moves are applied, then
    /// finish. Checks every round's moves; returns the number of rounds.
    fn rebalance_to_the_end(s: &mut MetaState) -> usize {
        let none = BTreeSet::new();
        for round in 0..1000 {
            let moves = plan_rebalance(s, &none, MAX_CONCURRENT_MOVES);
            if moves.is_empty() {
                return round;
            }
            assert!(moves.len() <= MAX_CONCURRENT_MOVES, "{moves:?}");
            let groups: BTreeSet<u64> = moves.iter().map(|m| m.0).collect();
            assert_eq!(groups.len(), moves.len(), "one move per group: {moves:?}");
            for (group, from, to) in &moves {
                let (_, sh) = s.shard_by_group(*group).unwrap();
                assert!(sh.replicas.contains(from), "{group} is not on {from}");
                assert!(!sh.replicas.contains(to), "{group} is already on {to}");
                s.apply(MetaCommand::MoveReplica {
                    group: *group,
                    from: *from,
                    to: *to,
                })
                .unwrap();
            }
            // While the moves run, nothing more starts.
            assert!(plan_rebalance(s, &none, MAX_CONCURRENT_MOVES).is_empty());
            for (group, _, to) in moves {
                s.apply(MetaCommand::MoveDone { group, to }).unwrap();
            }
            for (_, sh) in s.all_shards() {
                let d: BTreeSet<u64> = sh.replicas.iter().copied().collect();
                assert_eq!(d.len(), sh.replicas.len(), "double placement: {sh:?}");
            }
        }
        panic!("rebalancing did not converge");
    }

    #[test]
    fn a_joined_node_fills_up_to_within_one_of_the_mean() {
        let mut s = settled(4, 1, 8);
        assert!(plan_rebalance(&s, &BTreeSet::new(), MAX_CONCURRENT_MOVES).is_empty());
        join(&mut s, 5);
        // 24 replicas over 5 nodes: everyone ends with 4 or 5, in the fewest moves.
        let rounds = rebalance_to_the_end(&mut s);
        let count = replica_counts(&s);
        assert!(within_one_of_the_mean(&count), "{count:?}");
        assert!(count[&5] >= 4, "{count:?}");
        assert!(rounds <= 3, "{rounds} rounds");
        assert!(s.moving.is_empty());
        // Leaders stayed where they were: only followers moved.
        for (_, sh) in s.all_shards() {
            assert!(sh.replicas.contains(&sh.leader.unwrap()), "{sh:?}");
        }
    }

    #[test]
    fn rebalancing_converges_for_many_shapes() {
        for nodes in 3..=7u64 {
            for shards in [1u32, 3, 7, 16] {
                for joined in 1..=2u64 {
                    let mut s = settled(nodes, 2, shards);
                    for k in 1..=joined {
                        join(&mut s, nodes + k);
                    }
                    rebalance_to_the_end(&mut s);
                    let count = replica_counts(&s);
                    assert!(
                        within_one_of_the_mean(&count),
                        "{nodes} nodes + {joined}, {shards} shards: {count:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn rebalancing_waits_for_a_settled_cluster() {
        let mut s = settled(4, 1, 8);
        join(&mut s, 5);
        let max = MAX_CONCURRENT_MOVES;
        assert!(!plan_rebalance(&s, &BTreeSet::new(), max).is_empty());
        // A node down or still joining.
        assert!(plan_rebalance(&s, &BTreeSet::from([5]), max).is_empty());
        // The budget is taken by moves still running (e.g. repairs).
        let mut busy = s.clone();
        busy.moving.insert(1, (9, 9));
        busy.moving.insert(2, (9, 9));
        assert!(plan_rebalance(&busy, &BTreeSet::new(), max).is_empty());
        busy.moving.remove(&2);
        assert_eq!(plan_rebalance(&busy, &BTreeSet::new(), max).len(), 1);
        // A reshard in flight.
        let mut updating = s.clone();
        updating
            .apply(MetaCommand::Reshard {
                name: "s0".into(),
                request: crate::ReshardRequest::Merge {
                    shard: streamd_proto::ids::ShardId(0),
                    adjacent: streamd_proto::ids::ShardId(1),
                },
                now_ms: 5,
            })
            .unwrap();
        assert!(plan_rebalance(&updating, &BTreeSet::new(), max).is_empty());
        // A node draining.
        s.apply(MetaCommand::DrainNode { id: 1 }).unwrap();
        assert!(plan_rebalance(&s, &BTreeSet::new(), max).is_empty());
    }

    fn leader_counts(s: &MetaState) -> BTreeMap<u64, usize> {
        let mut count: BTreeMap<u64, usize> = s.nodes.keys().map(|n| (*n, 0)).collect();
        for (_, sh) in s.all_shards() {
            *count.entry(sh.leader.unwrap()).or_insert(0) += 1;
        }
        count
    }

    #[test]
    fn leaderships_spread_to_within_one_of_the_mean_and_stay() {
        let mut s = settled(5, 2, 10);
        // After failures healed, node 1 leads every group it holds.
        let groups: Vec<(u64, bool)> = s
            .all_shards()
            .map(|(_, sh)| (sh.group_id, sh.replicas.contains(&1)))
            .collect();
        for (g, on_1) in groups {
            if on_1 {
                s.apply(MetaCommand::ShardLeader {
                    group: g,
                    leader: 1,
                    term: 2,
                })
                .unwrap();
            }
        }
        assert!(!within_one_of_the_mean(&leader_counts(&s)));
        let none = BTreeSet::new();
        let mut term = 3;
        let mut rounds = 0;
        loop {
            let transfers = plan_leader_balance(&s, &none, MAX_LEADER_TRANSFERS);
            if transfers.is_empty() {
                break;
            }
            rounds += 1;
            assert!(rounds < 50, "leader balancing did not converge");
            assert!(transfers.len() <= MAX_LEADER_TRANSFERS);
            for (group, from, to) in transfers {
                let (_, sh) = s.shard_by_group(group).unwrap();
                assert_eq!(sh.leader, Some(from));
                assert!(
                    sh.replicas.contains(&to),
                    "{to} holds no replica of {group}"
                );
                s.apply(MetaCommand::ShardLeader {
                    group,
                    leader: to,
                    term,
                })
                .unwrap();
                term += 1;
            }
        }
        let count = leader_counts(&s);
        assert!(within_one_of_the_mean(&count), "{count:?}");
        // Balanced: nothing more to do, so no flapping.
        assert!(plan_leader_balance(&s, &none, MAX_LEADER_TRANSFERS).is_empty());
    }

    #[test]
    fn leader_balancing_waits_for_complete_hints_and_a_settled_cluster() {
        let mut s = settled(4, 1, 8);
        for g in [1, 2, 3, 4, 5, 6, 7, 8] {
            let (_, sh) = s.shard_by_group(g).unwrap();
            if sh.replicas.contains(&2) {
                s.apply(MetaCommand::ShardLeader {
                    group: g,
                    leader: 2,
                    term: 5,
                })
                .unwrap();
            }
        }
        let max = MAX_LEADER_TRANSFERS;
        assert!(!plan_leader_balance(&s, &BTreeSet::new(), max).is_empty());
        assert!(plan_leader_balance(&s, &BTreeSet::from([3]), max).is_empty());
        // An older term's report does not roll the hint back.
        s.apply(MetaCommand::ShardLeader {
            group: 1,
            leader: 1,
            term: 1,
        })
        .unwrap();
        assert_eq!(s.shard_by_group(1).unwrap().1.leader, Some(2));
        let mut moving = s.clone();
        moving.moving.insert(1, (1, 4));
        assert!(plan_leader_balance(&moving, &BTreeSet::new(), max).is_empty());
        let mut unknown = s.clone();
        crate::testing::create(&mut unknown, "new", 1).unwrap();
        assert!(plan_leader_balance(&unknown, &BTreeSet::new(), max).is_empty());
        let mut updating = s.clone();
        updating
            .apply(MetaCommand::Reshard {
                name: "s0".into(),
                request: crate::ReshardRequest::Merge {
                    shard: streamd_proto::ids::ShardId(0),
                    adjacent: streamd_proto::ids::ShardId(1),
                },
                now_ms: 5,
            })
            .unwrap();
        assert!(plan_leader_balance(&updating, &BTreeSet::new(), max).is_empty());
    }

    #[test]
    fn joining_is_idempotent_and_refuses_conflicts() {
        let mut s = settled(3, 1, 2);
        join(&mut s, 4);
        join(&mut s, 4);
        assert_eq!(s.nodes.len(), 4);
        let e = s
            .apply(MetaCommand::AddNode {
                id: 4,
                addr: "10.0.0.9:1".into(),
            })
            .unwrap_err();
        assert_eq!(e.0, "ResourceInUseException");
        let e = s
            .apply(MetaCommand::AddNode {
                id: 9,
                addr: "127.0.0.1:50054".into(),
            })
            .unwrap_err();
        assert_eq!(e.0, "ResourceInUseException");
        // New shards are placed on the joined node too.
        crate::testing::create(&mut s, "after", 4).unwrap();
        assert!(
            s.streams["after"]
                .shards
                .iter()
                .any(|sh| sh.replicas.contains(&4))
        );
        // A removed node's id is never given out again.
        s.apply(MetaCommand::DrainNode { id: 4 }).unwrap();
        crate::testing::create(&mut s, "while-draining", 4).unwrap();
        assert!(
            s.streams["while-draining"]
                .shards
                .iter()
                .all(|sh| !sh.replicas.contains(&4)),
            "no new replica on a draining node"
        );
        let moves = plan_repairs(&s, &BTreeSet::from([4]));
        for &(group, from, to) in &moves {
            s.apply(MetaCommand::MoveReplica { group, from, to })
                .unwrap();
        }
        // The map no longer lists it, but its groups still count it among their voters until
        // their leaders report the moves done: removing it now could cost a group its majority.
        s.apply(MetaCommand::RemoveNode { id: 4 }).unwrap();
        assert!(s.nodes.contains_key(&4), "removed before its groups let go");
        for &(group, _, to) in &moves {
            s.apply(MetaCommand::MoveDone { group, to }).unwrap();
        }
        s.apply(MetaCommand::RemoveNode { id: 4 }).unwrap();
        assert!(!s.nodes.contains_key(&4));
        let e = s
            .apply(MetaCommand::AddNode {
                id: 4,
                addr: "127.0.0.1:50054".into(),
            })
            .unwrap_err();
        assert_eq!(e.0, "InvalidArgumentException");
        // Before the cluster formed, nobody joins.
        let e = MetaState::default()
            .apply(MetaCommand::AddNode {
                id: 2,
                addr: "a:1".into(),
            })
            .unwrap_err();
        assert_eq!(e.0, "ServiceUnavailable");
    }
}
