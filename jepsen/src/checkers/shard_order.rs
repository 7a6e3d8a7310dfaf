//! Property 6, one order per shard: every reader and every replica sees the same sequence.
//!
//! - Each drain is in strictly increasing sequence-number order.
//! - The drains of one shard through different nodes are identical (after healing, every node
//!   serves the whole committed shard); a drain that is a strict prefix of another is a replica
//!   that stayed behind, anything else is divergence.
//! - Every record a reader read is in the longest drain at the same position, and a reader's
//!   records come in the drain's order.

use std::collections::{BTreeMap, HashMap};

use serde_json::json;

use super::{Anomalies, CheckConfig, Facts, PropertyResult, View, ViewKind};

pub(crate) const ID: u8 = 6;
pub(crate) const NAME: &str = "one-order-per-shard";

pub(crate) fn check(facts: &Facts, _config: &CheckConfig) -> PropertyResult {
    if !facts.has_drains() {
        return PropertyResult::not_checked(ID, NAME, "the history has no final drain");
    }
    let mut anomalies = Anomalies::new(ID, NAME);
    let mut drains: BTreeMap<&str, Vec<&View>> = BTreeMap::new();
    for v in facts.views.iter().filter(|v| v.is_drain()) {
        drains.entry(v.shard.as_str()).or_default().push(v);
    }
    let mut compared = 0usize;
    let mut reference: HashMap<&str, &View> = HashMap::new();
    for (shard, views) in &drains {
        for v in views {
            if let Some(w) = v.records.windows(2).find(|w| w[1].seq <= w[0].seq) {
                anomalies.push(
                    "drain-out-of-order",
                    format!(
                        "{} of {shard} returned {} after {}",
                        v.label(),
                        w[1].seq,
                        w[0].seq
                    ),
                    vec![w[0].index, w[1].index],
                    json!({"shard": shard, "before": [w[0].seq.to_string(), w[0].value], "after": [w[1].seq.to_string(), w[1].value]}),
                );
            }
        }
        let Some(longest) = views.iter().copied().max_by_key(|v| v.records.len()) else {
            continue;
        };
        reference.insert(shard, longest);
        for v in views.iter().filter(|v| !std::ptr::eq(**v, longest)) {
            compared += 1;
            let same = |a: &super::Seen, b: &super::Seen| a.seq == b.seq && a.value == b.value;
            let first_difference = v
                .records
                .iter()
                .zip(&longest.records)
                .position(|(a, b)| !same(a, b));
            match first_difference {
                Some(k) => {
                    let (a, b) = (&v.records[k], &longest.records[k]);
                    anomalies.push(
                        "replicas-diverge",
                        format!(
                            "{shard}: {} has {}={} at position {k} where {} has {}={}",
                            v.label(),
                            a.seq,
                            a.value,
                            longest.label(),
                            b.seq,
                            b.value
                        ),
                        vec![a.index, b.index],
                        json!({"shard": shard, "position": k}),
                    );
                }
                None if v.records.len() < longest.records.len() => {
                    let stable = matches!(v.kind, ViewKind::Drain { stable: true, .. });
                    let missing = longest.records.len() - v.records.len();
                    let first = &longest.records[v.records.len()];
                    anomalies.push(
                        "replica-behind",
                        format!(
                            "{shard}: {} ends {missing} record(s) before {} (first missing {}={}){}",
                            v.label(),
                            longest.label(),
                            first.seq,
                            first.value,
                            if stable { "" } else { " and the drains never stopped growing" }
                        ),
                        vec![first.index],
                        json!({"shard": shard, "missing": missing, "stable": stable}),
                    );
                }
                None => {}
            }
        }
    }

    let mut reads_checked = 0usize;
    for v in facts.views.iter().filter(|v| !v.is_drain()) {
        let Some(reference) = reference.get(v.shard.as_str()) else {
            continue;
        };
        let order: HashMap<&super::Seq, (usize, &str)> = reference
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| (&r.seq, (i, r.value.as_str())))
            .collect();
        let mut last: Option<(usize, &super::Seen)> = None;
        for r in &v.records {
            reads_checked += 1;
            match order.get(&r.seq) {
                None => anomalies.push(
                    "read-missing-from-replicas",
                    format!(
                        "{} read {}={} of {}, which the drains do not hold",
                        v.label(),
                        r.seq,
                        r.value,
                        v.shard
                    ),
                    vec![r.index],
                    json!({"shard": v.shard, "seq": r.seq.to_string(), "value": r.value}),
                ),
                Some((pos, value)) => {
                    if *value != r.value {
                        // Property 4 reports the conflict itself.
                        continue;
                    }
                    if let Some((prev_pos, prev)) = last
                        && *pos <= prev_pos
                    {
                        anomalies.push(
                            "order-differs-from-replicas",
                            format!(
                                "{} read {} after {}, the replicas hold them the other way round",
                                v.label(),
                                r.value,
                                prev.value
                            ),
                            vec![prev.index, r.index],
                            json!({"shard": v.shard}),
                        );
                    }
                    last = Some((*pos, r));
                }
            }
        }
    }
    anomalies.finish(json!({"drains_compared": compared, "records_read_checked": reads_checked}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::Verdict;
    use crate::checkers::fixture::H;

    fn base() -> H {
        let mut h = H::default();
        h.append_ok(
            "w0",
            0,
            5,
            &[("a", "s0", 1), ("b", "s0", 2), ("c", "s0", 3)],
        );
        h
    }

    #[test]
    fn identical_drains_and_ordered_reads_are_valid() {
        let mut h = base();
        h.chain("r0", "c0", "s0", 0, "TRIM_HORIZON", None);
        h.read("r0", "c0", "s0", 6, &[(1, "a"), (2, "b")]);
        h.chain("r1", "c1", "s0", 0, "AFTER_SEQUENCE_NUMBER", Some(1));
        h.read("r1", "c1", "s0", 6, &[(2, "b"), (3, "c")]);
        for n in 1..=3 {
            h.drain(n, "s0", 9, &[(1, "a"), (2, "b"), (3, "c")]);
        }
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
        assert_eq!(r.stats["drains_compared"], 2);
    }

    #[test]
    fn diverging_replicas_are_caught() {
        let mut h = base();
        h.drain(1, "s0", 9, &[(1, "a"), (2, "b"), (3, "c")]);
        h.drain(2, "s0", 9, &[(1, "a"), (2, "c")]);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(r.anomalies[0].kind, "replicas-diverge");
    }

    #[test]
    fn a_replica_that_stays_behind_is_caught() {
        let mut h = base();
        h.drain(1, "s0", 9, &[(1, "a"), (2, "b"), (3, "c")]);
        h.drain(2, "s0", 9, &[(1, "a")]);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.anomalies[0].kind, "replica-behind");
        assert_eq!(r.anomalies[0].detail["missing"], 2);
    }

    #[test]
    fn a_drain_out_of_order_is_caught() {
        let mut h = base();
        h.drain(1, "s0", 9, &[(2, "b"), (1, "a"), (3, "c")]);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.anomalies[0].kind, "drain-out-of-order");
    }

    #[test]
    fn a_reader_disagreeing_with_the_replicas_is_caught() {
        let mut h = base();
        h.chain("r0", "c0", "s0", 0, "TRIM_HORIZON", None);
        h.read("r0", "c0", "s0", 6, &[(2, "b"), (1, "a"), (7, "zz")]);
        h.drain(1, "s0", 9, &[(1, "a"), (2, "b"), (3, "c")]);
        let r = check(&h.facts(), &CheckConfig::default());
        let kinds: Vec<_> = r.anomalies.iter().map(|a| a.kind).collect();
        assert_eq!(
            kinds,
            vec!["order-differs-from-replicas", "read-missing-from-replicas"]
        );
    }
}
