//! `delay`: slow links with jitter, through the user-space proxy every node-to-node connection
//! goes through when this nemesis is enabled ([`crate::proxy`]; this kernel has no `tc netem`).
//! Either one node's links (every connection it opens or accepts) or every link is delayed, each
//! chunk by `base + uniform(0..=jitter)` drawn independently per connection, so messages on
//! different connections overtake each other while each connection keeps its byte order.
//! Clients are never proxied: only node-to-node traffic (Raft, forwarding) slows down.

use rand::Rng;

use super::{Fault, Target};
use crate::proxy::Delay;

/// Base delay drawn per fault (milliseconds); the jitter is drawn in `0..=base`.
pub const BASE_MS: std::ops::RangeInclusive<u64> = 20..=250;

/// A `delay` fault: every link (one time in three) or one random node's links.
pub(crate) fn draw(rng: &mut impl Rng, nodes: u64) -> Fault {
    let node = if rng.random_range(0..3) == 0 {
        None
    } else {
        Some(rng.random_range(1..=nodes))
    };
    let base_ms = rng.random_range(BASE_MS);
    let jitter_ms = rng.random_range(0..=base_ms);
    Fault::Delay {
        node,
        delay: Delay { base_ms, jitter_ms },
    }
}

/// Whether the link `from -> to` is one that a delay on `node` (all links for `None`) slows.
pub fn applies(node: Option<u64>, from: u64, to: u64) -> bool {
    node.is_none_or(|n| from == n || to == n)
}

pub(crate) fn start(target: &Target, node: Option<u64>, delay: Delay) -> Result<(), String> {
    let proxy = target
        .proxy
        .as_ref()
        .ok_or("no proxy between the nodes (network namespaces needed)")?;
    match proxy.set_delay(|from, to| applies(node, from, to), Some(delay)) {
        0 => Err(format!("no proxied link matches {node:?}")),
        _ => Ok(()),
    }
}

pub(crate) fn heal(target: &Target) -> Result<(), String> {
    let proxy = target
        .proxy
        .as_ref()
        .ok_or("no proxy between the nodes (network namespaces needed)")?;
    proxy.set_delay(|_, _| true, None);
    Ok(())
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn a_node_delay_covers_its_links_both_ways_and_only_those() {
        assert!(applies(Some(2), 2, 5) && applies(Some(2), 5, 2));
        assert!(!applies(Some(2), 1, 5));
        assert!(applies(None, 1, 5));
    }

    #[test]
    fn drawn_delays_stay_in_range_and_both_scopes_occur() {
        let mut rng = StdRng::seed_from_u64(5);
        let (mut all, mut one) = (0, 0);
        for _ in 0..60 {
            let Fault::Delay { node, delay } = draw(&mut rng, 5) else {
                panic!("not a delay");
            };
            assert!(BASE_MS.contains(&delay.base_ms));
            assert!(delay.jitter_ms <= delay.base_ms);
            match node {
                None => all += 1,
                Some(n) => {
                    assert!((1..=5).contains(&n));
                    one += 1;
                }
            }
        }
        assert!(all > 0 && one > 0);
    }
}
