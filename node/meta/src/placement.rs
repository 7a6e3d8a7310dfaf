//! Where a new shard's replicas go: a pure function, so every metadata replica computes the same
//! answer when it applies the entry that creates the shard.
//!
//! Replica sets rotate over the nodes by group id, so replicas spread evenly; the first replica
//! initializes the group and so usually becomes its first leader, which spreads leaders too.

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
}
