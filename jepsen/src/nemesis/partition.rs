//! `partition`: nodes on different sides stop hearing each other (iptables DROP in both
//! directions, inside each node's network namespace); clients still reach every node. Shapes:
//! random halves (the larger side keeps a majority), or one node isolated from all others.
//! Needs the network namespaces and `iptables`; without them this nemesis does not run.

use rand::Rng;
use rand::seq::SliceRandom;
use serde::Serialize;

use super::{Fault, Target};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    Halves,
    IsolateOne,
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::Halves => "halves",
            Shape::IsolateOne => "isolate-one",
        }
    }
}

/// A partition of nodes 1..=`nodes` of a random shape.
pub(crate) fn draw(rng: &mut impl Rng, nodes: u64) -> Fault {
    let mut all: Vec<u64> = (1..=nodes).collect();
    all.shuffle(rng);
    let shape = if rng.random_bool(0.5) {
        Shape::Halves
    } else {
        Shape::IsolateOne
    };
    let cut = match shape {
        // The smaller side is kept a strict minority, so the other side can still elect.
        Shape::Halves => ((nodes.saturating_sub(1)) / 2).max(1) as usize,
        Shape::IsolateOne => 1,
    };
    let mut small = all[..cut].to_vec();
    let mut large = all[cut..].to_vec();
    small.sort_unstable();
    large.sort_unstable();
    Fault::Partition {
        shape,
        groups: vec![small, large],
    }
}

pub(crate) async fn start(target: &Target, groups: Vec<Vec<u64>>) -> Result<(), String> {
    let net = target
        .net
        .clone()
        .ok_or("no network namespaces to partition")?;
    tokio::task::spawn_blocking(move || net.partition(&groups))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

pub(crate) async fn heal(target: &Target) -> Result<(), String> {
    let net = target.net.clone().ok_or("no network namespaces to heal")?;
    tokio::task::spawn_blocking(move || net.heal())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn sides_cover_every_node_once_and_the_larger_keeps_a_majority() {
        let mut rng = StdRng::seed_from_u64(1);
        for nodes in 3..=7u64 {
            for _ in 0..20 {
                let Fault::Partition { shape, groups } = draw(&mut rng, nodes) else {
                    panic!("not a partition");
                };
                let mut all: Vec<u64> = groups.concat();
                all.sort_unstable();
                assert_eq!(all, (1..=nodes).collect::<Vec<_>>());
                assert!(groups[1].len() as u64 > nodes / 2, "{groups:?}");
                if shape == Shape::IsolateOne {
                    assert_eq!(groups[0].len(), 1);
                }
            }
        }
    }
}
