//! `partition-leader`: isolate the node currently leading a random shard of the test stream, or
//! the metadata group (an even draw), exactly as `partition` isolates one node. Which group, and
//! a fallback node, are drawn with the schedule; the leader is found only when the fault starts,
//! by asking every node (`ListShards` for a shard's `leader`, `ClusterStatus` for
//! `metadata_leader`) and taking the answer most nodes give. When no node knows a leader, the
//! fallback node is isolated instead, and the history says so.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::Rng;
use serde::Serialize;
use streamd_client::{ClientOptions, RetryPolicy, StreamdClient};
use tokio::task::JoinSet;

use super::{Fault, Target};

/// Deadline of one node's answer when looking for the leader.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaderOf {
    Shard,
    Metadata,
}

impl LeaderOf {
    pub fn name(self) -> &'static str {
        match self {
            LeaderOf::Shard => "a shard",
            LeaderOf::Metadata => "the metadata group",
        }
    }
}

/// What a `partition-leader` fault found when it started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Found {
    /// The shard id, or `metadata`.
    pub group: String,
    /// The leader most nodes reported, if any did.
    pub leader: Option<u64>,
    /// The node isolated: the leader, else the fallback.
    pub isolated: u64,
    /// Each node's answer: the leader it sees, or why it gave none.
    pub views: BTreeMap<u64, String>,
    pub groups: Vec<Vec<u64>>,
}

/// A `partition-leader` fault for nodes 1..=`nodes`.
pub(crate) fn draw(rng: &mut impl Rng, nodes: u64) -> Fault {
    let of = if rng.random_bool(0.5) {
        LeaderOf::Shard
    } else {
        LeaderOf::Metadata
    };
    Fault::PartitionLeader {
        of,
        pick: rng.random_range(0..u64::from(u32::MAX)),
        fallback: rng.random_range(1..=nodes),
        found: None,
    }
}

/// The leader most answering nodes report; ties go to the lowest node id. `None` when no node
/// reports one.
pub fn agreed_leader(views: &[Option<u64>]) -> Option<u64> {
    let mut votes: BTreeMap<u64, usize> = BTreeMap::new();
    for leader in views.iter().flatten() {
        *votes.entry(*leader).or_default() += 1;
    }
    // `max_by_key` keeps the last maximum; iterate from the highest id so the lowest wins ties.
    votes
        .into_iter()
        .rev()
        .max_by_key(|(_, n)| *n)
        .map(|(leader, _)| leader)
}

/// The shard a `pick` names among `shards` (sorted by id, so the choice does not depend on the
/// order a node lists them in).
pub fn pick_shard(shards: &[String], pick: u64) -> Option<String> {
    let mut sorted = shards.to_vec();
    sorted.sort();
    sorted.dedup();
    if sorted.is_empty() {
        return None;
    }
    let i = (pick % sorted.len() as u64) as usize;
    sorted.get(i).cloned()
}

/// `node` alone on one side, every other node of `ids` on the other.
pub fn isolate(node: u64, ids: &[u64]) -> Vec<Vec<u64>> {
    let mut rest: Vec<u64> = ids.iter().copied().filter(|&i| i != node).collect();
    rest.sort_unstable();
    vec![vec![node], rest]
}

pub(crate) fn describe(f: &Found) -> String {
    let views: Vec<String> = f.views.iter().map(|(n, v)| format!("n{n}: {v}")).collect();
    match f.leader {
        Some(l) => format!(
            "partition-leader: isolate node {l}, leader of {} {:?} (views: {})",
            f.group,
            f.groups,
            views.join(", ")
        ),
        None => format!(
            "partition-leader: no leader of {} known, isolate random node {} {:?} (views: {})",
            f.group,
            f.isolated,
            f.groups,
            views.join(", ")
        ),
    }
}

fn client(endpoint: &str) -> Result<StreamdClient, String> {
    let options = ClientOptions {
        request_timeout: ASK_TIMEOUT,
        connect_timeout: Duration::from_secs(1),
        read_retry: RetryPolicy::none(),
    };
    StreamdClient::connect_with(&[endpoint.to_string()], options).map_err(|e| e.to_string())
}

/// One node's answers: the shard ids it lists with the leader it sees of each, and the metadata
/// leader it sees.
async fn ask(endpoint: String, stream: String, of: LeaderOf) -> Result<Answer, String> {
    let c = client(&endpoint)?;
    let call = async {
        match of {
            LeaderOf::Shard => c
                .list_shards(&stream)
                .await
                .map(|shards| {
                    Answer::Shards(shards.into_iter().map(|s| (s.shard_id, s.leader)).collect())
                })
                .map_err(|e| e.to_string()),
            LeaderOf::Metadata => c
                .cluster_status()
                .await
                .map(|s| Answer::Metadata(s.metadata_leader))
                .map_err(|e| e.to_string()),
        }
    };
    tokio::time::timeout(ASK_TIMEOUT + Duration::from_secs(1), call)
        .await
        .map_err(|_| "no answer in time".to_string())?
}

enum Answer {
    Shards(Vec<(String, Option<u64>)>),
    Metadata(Option<u64>),
}

/// Finds the node a `partition-leader` fault isolates and fills in its `found`; other faults are
/// left alone. Returns a note when it had to fall back to a random node.
pub(crate) async fn resolve(target: &Target, fault: &mut Fault) -> Option<String> {
    let Fault::PartitionLeader {
        of,
        pick,
        fallback,
        found,
    } = fault
    else {
        return None;
    };
    let mut asks = JoinSet::new();
    for (id, endpoint) in &target.endpoints {
        let (id, endpoint, stream, of) = (*id, endpoint.clone(), target.stream.clone(), *of);
        asks.spawn(async move { (id, ask(endpoint, stream, of).await) });
    }
    let mut answers = BTreeMap::new();
    while let Some(done) = asks.join_next().await {
        if let Ok((id, answer)) = done {
            answers.insert(id, answer);
        }
    }
    let group = match of {
        LeaderOf::Metadata => Some("metadata".to_string()),
        LeaderOf::Shard => {
            let ids: Vec<String> = answers
                .values()
                .filter_map(|a| match a {
                    Ok(Answer::Shards(s)) => Some(s.iter().map(|(id, _)| id.clone())),
                    _ => None,
                })
                .flatten()
                .collect();
            pick_shard(&ids, *pick)
        }
    };
    let mut views = BTreeMap::new();
    let mut leaders = Vec::new();
    for (id, answer) in &answers {
        let leader = match (answer, &group) {
            (Err(e), _) => Err(e.clone()),
            (Ok(Answer::Metadata(l)), _) => Ok(*l),
            (Ok(Answer::Shards(s)), Some(g)) => {
                Ok(s.iter().find(|(i, _)| i == g).and_then(|x| x.1))
            }
            (Ok(Answer::Shards(_)), None) => Ok(None),
        };
        let view = match &leader {
            Ok(Some(l)) => format!("leader {l}"),
            Ok(None) => "no leader known".to_string(),
            Err(e) => format!("error: {e}"),
        };
        views.insert(*id, view);
        leaders.push(leader.ok().flatten());
    }
    let ids: Vec<u64> = target.endpoints.iter().map(|(id, _)| *id).collect();
    // A leader that is not a node of this run (a stale or garbled answer) is not isolated.
    // Leaders are node ids; what is isolated is the slot holding that node.
    let leader = agreed_leader(&leaders)
        .and_then(|l| target.slot_of(l))
        .filter(|l| ids.contains(l));
    let isolated = leader.unwrap_or(*fallback);
    let group = group.unwrap_or_else(|| "an unknown shard".to_string());
    let note = leader
        .is_none()
        .then(|| format!("no leader of {group} known; isolating random node {isolated} instead"));
    *found = Some(Found {
        group,
        leader,
        isolated,
        views,
        groups: isolate(isolated, &ids),
    });
    note
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn the_leader_most_nodes_report_wins_and_ties_go_to_the_lowest_id() {
        assert_eq!(agreed_leader(&[Some(2), Some(2), Some(3)]), Some(2));
        assert_eq!(agreed_leader(&[None, Some(3), None]), Some(3));
        assert_eq!(agreed_leader(&[Some(3), Some(1)]), Some(1));
        assert_eq!(agreed_leader(&[Some(3), Some(1), Some(3)]), Some(3));
        assert_eq!(agreed_leader(&[None, None]), None);
        assert_eq!(agreed_leader(&[]), None);
    }

    #[test]
    fn a_pick_names_the_same_shard_whatever_the_listing_order() {
        let a: Vec<String> = ["s-2", "s-0", "s-1", "s-0"].map(String::from).to_vec();
        let b: Vec<String> = ["s-0", "s-1", "s-2"].map(String::from).to_vec();
        for pick in 0..10 {
            assert_eq!(pick_shard(&a, pick), pick_shard(&b, pick));
        }
        assert_eq!(pick_shard(&b, 4).as_deref(), Some("s-1"));
        assert_eq!(pick_shard(&[], 4), None);
    }

    #[test]
    fn isolating_puts_one_node_alone_and_the_rest_together() {
        assert_eq!(
            isolate(2, &[3, 1, 2, 5, 4]),
            vec![vec![2], vec![1, 3, 4, 5]]
        );
    }

    #[test]
    fn both_groups_are_drawn_and_the_fallback_is_a_node() {
        let mut rng = StdRng::seed_from_u64(9);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..100 {
            let Fault::PartitionLeader {
                of,
                fallback,
                found,
                ..
            } = draw(&mut rng, 3)
            else {
                panic!("not a partition-leader");
            };
            assert!((1..=3).contains(&fallback));
            assert!(found.is_none());
            seen.insert(of.name());
        }
        assert_eq!(seen.len(), 2);
    }
}
