//! `ring` and `bridge`: partitions that are not two sides but a connectivity graph, where who
//! hears whom is not transitive. Both are carried out as cut links ([`Netns::cut`]: iptables DROP
//! in both nodes' namespaces); clients still reach every node.
//!
//! - `ring`: the nodes in a random ring order, each connected only to the nodes within `k` steps
//!   of it, `k` the least that gives every node a majority counting itself. Every node then sees
//!   a majority, and no two nodes see the same set, so there is no majority of nodes that all
//!   hear each other (for 5 nodes: each sees its two neighbours, 3 of 5). With 3 nodes a ring of
//!   `k` = 1 cuts nothing, and a symmetric graph in which every node sees exactly 2 of 3 cannot
//!   exist (the degrees would sum to 3), so the ring of 3 cuts one link instead: the two ends of
//!   it each see themselves and the third node, which sees everyone. That is the `bridge` of 3
//!   nodes, and still gives three different majorities.
//! - `bridge`: the other nodes split into two halves that hear each other only through one bridge
//!   node, which hears everyone. With an odd node count the halves are equal and each, with the
//!   bridge, is a majority; with an even count the larger half is.
//!
//! [`Netns::cut`]: crate::net::Netns::cut

use std::collections::BTreeSet;

use rand::Rng;
use rand::seq::SliceRandom;

use super::{Fault, Target};

/// Which nodes hear each other: an undirected graph over nodes, kept as its cut links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    nodes: Vec<u64>,
    cut: BTreeSet<(u64, u64)>,
}

impl Graph {
    /// Every node connected to every other.
    pub fn full(nodes: &[u64]) -> Graph {
        let mut nodes = nodes.to_vec();
        nodes.sort_unstable();
        nodes.dedup();
        Graph {
            nodes,
            cut: BTreeSet::new(),
        }
    }

    pub fn cut_link(&mut self, a: u64, b: u64) {
        if a != b {
            self.cut.insert((a.min(b), a.max(b)));
        }
    }

    pub fn connected(&self, a: u64, b: u64) -> bool {
        a == b || !self.cut.contains(&(a.min(b), a.max(b)))
    }

    /// The nodes `node` hears, itself included.
    pub fn sees(&self, node: u64) -> BTreeSet<u64> {
        self.nodes
            .iter()
            .copied()
            .filter(|&n| self.connected(node, n))
            .collect()
    }

    /// The cut links, lower id first, sorted.
    pub fn cut_links(&self) -> Vec<(u64, u64)> {
        self.cut.iter().copied().collect()
    }

    /// Each node's view, in node order (for the history's `groups`).
    pub fn views(&self) -> Vec<Vec<u64>> {
        self.nodes
            .iter()
            .map(|&n| self.sees(n).into_iter().collect())
            .collect()
    }
}

/// Nodes in a majority of `n`.
pub fn majority(n: usize) -> usize {
    n / 2 + 1
}

/// The ring over `order` (see the module documentation; 3 nodes cut one link).
pub fn ring(order: &[u64]) -> Graph {
    let mut g = Graph::full(order);
    let n = order.len();
    if n < 3 {
        return g;
    }
    if n == 3 {
        g.cut_link(order[0], order[1]);
        return g;
    }
    // Itself and k on each side: 2k + 1 >= majority.
    let k = (majority(n) - 1).div_ceil(2);
    for (i, &a) in order.iter().enumerate() {
        for (j, &b) in order.iter().enumerate() {
            let d = i.abs_diff(j);
            if d.min(n - d) > k {
                g.cut_link(a, b);
            }
        }
    }
    g
}

/// `bridge` connected to everyone, `left` and `right` cut from each other.
pub fn bridge(bridge: u64, left: &[u64], right: &[u64]) -> Graph {
    let all: Vec<u64> = left.iter().chain(right).copied().chain([bridge]).collect();
    let mut g = Graph::full(&all);
    for &a in left {
        for &b in right {
            g.cut_link(a, b);
        }
    }
    g
}

/// A `ring` fault over nodes 1..=`nodes`, in a random order.
pub(crate) fn draw_ring(rng: &mut impl Rng, nodes: u64) -> Fault {
    let mut order: Vec<u64> = (1..=nodes).collect();
    order.shuffle(rng);
    let cut = ring(&order).cut_links();
    Fault::Ring { order, cut }
}

/// A `bridge` fault over nodes 1..=`nodes`: a random bridge, the rest shuffled into halves.
pub(crate) fn draw_bridge(rng: &mut impl Rng, nodes: u64) -> Fault {
    let mut all: Vec<u64> = (1..=nodes).collect();
    all.shuffle(rng);
    let (b, rest) = all.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
    let mid = rest.len().div_ceil(2);
    let mut left = rest[..mid].to_vec();
    let mut right = rest[mid..].to_vec();
    left.sort_unstable();
    right.sort_unstable();
    let cut = bridge(b, &left, &right).cut_links();
    Fault::Bridge {
        bridge: b,
        halves: vec![left, right],
        cut,
    }
}

pub(crate) async fn start(target: &Target, cut: Vec<(u64, u64)>) -> Result<(), String> {
    let net = target
        .net
        .clone()
        .ok_or("no network namespaces to cut links in")?;
    tokio::task::spawn_blocking(move || net.cut(&cut))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn nodes(n: u64) -> Vec<u64> {
        (1..=n).collect()
    }

    #[test]
    fn in_a_ring_every_node_sees_a_majority_and_no_two_see_the_same() {
        for n in 3..=9u64 {
            let mut order = nodes(n);
            order.shuffle(&mut StdRng::seed_from_u64(n));
            let g = ring(&order);
            let views: BTreeSet<BTreeSet<u64>> = order.iter().map(|&i| g.sees(i)).collect();
            assert_eq!(views.len(), n as usize, "n={n}: {:?}", g.views());
            for &i in &order {
                let seen = g.sees(i);
                assert!(
                    seen.len() >= majority(n as usize),
                    "n={n} node {i}: {seen:?}"
                );
                assert!(
                    seen.len() < n as usize || n == 3,
                    "n={n}: node {i} sees all"
                );
            }
            assert!(!g.cut_links().is_empty());
        }
    }

    #[test]
    fn a_ring_of_five_connects_each_node_to_its_two_neighbours() {
        let g = ring(&[3, 1, 4, 5, 2]);
        assert_eq!(g.sees(3), BTreeSet::from([2, 3, 1]));
        assert_eq!(g.sees(1), BTreeSet::from([3, 1, 4]));
        assert_eq!(g.sees(5), BTreeSet::from([4, 5, 2]));
        assert_eq!(g.cut_links(), vec![(1, 2), (1, 5), (2, 4), (3, 4), (3, 5)]);
    }

    #[test]
    fn a_ring_of_three_cuts_one_link_and_the_third_node_hears_both() {
        let g = ring(&[2, 3, 1]);
        assert_eq!(g.cut_links(), vec![(2, 3)]);
        assert_eq!(g.sees(1), BTreeSet::from([1, 2, 3]));
        assert_eq!(g.sees(2), BTreeSet::from([1, 2]));
        assert_eq!(g, bridge(1, &[2], &[3]));
    }

    #[test]
    fn a_bridge_joins_two_halves_that_never_hear_each_other() {
        let g = bridge(4, &[1, 5], &[2, 3]);
        assert_eq!(g.sees(4), BTreeSet::from([1, 2, 3, 4, 5]));
        assert_eq!(g.sees(1), BTreeSet::from([1, 4, 5]));
        assert_eq!(g.sees(3), BTreeSet::from([2, 3, 4]));
        assert_eq!(g.cut_links(), vec![(1, 2), (1, 3), (2, 5), (3, 5)]);
    }

    #[test]
    fn drawn_bridges_cover_every_node_and_each_side_with_the_bridge_is_a_majority_when_odd() {
        let mut rng = StdRng::seed_from_u64(3);
        for n in 3..=8u64 {
            for _ in 0..20 {
                let Fault::Bridge {
                    bridge: b,
                    halves,
                    cut,
                } = draw_bridge(&mut rng, n)
                else {
                    panic!("not a bridge");
                };
                let mut all: Vec<u64> = halves.concat();
                all.push(b);
                all.sort_unstable();
                assert_eq!(all, nodes(n));
                let g = super::bridge(b, &halves[0], &halves[1]);
                assert_eq!(g.cut_links(), cut);
                assert!(g.sees(b).len() == n as usize);
                let larger = halves.iter().map(Vec::len).max().unwrap_or(0);
                assert!(larger + 1 >= majority(n as usize), "n={n} {halves:?}");
                if n % 2 == 1 {
                    assert_eq!(halves[0].len(), halves[1].len());
                }
                for &a in &halves[0] {
                    for &c in &halves[1] {
                        assert!(!g.connected(a, c));
                    }
                }
            }
        }
    }

    #[test]
    fn drawn_rings_carry_the_cut_of_their_order() {
        let mut rng = StdRng::seed_from_u64(4);
        let Fault::Ring { order, cut } = draw_ring(&mut rng, 5) else {
            panic!("not a ring");
        };
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, nodes(5));
        assert_eq!(ring(&order).cut_links(), cut);
    }
}
