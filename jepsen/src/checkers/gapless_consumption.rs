//! Property 8, gapless and monotone consumption: along one iterator chain (GetShardIterator, then
//! GetRecords on each returned next iterator) sequence numbers only grow, and no record is
//! skipped: between two consecutive records of a chain, and between the chain's start and its
//! first record, no record exists in the final drain (or in any other view) of that shard.

use std::collections::BTreeMap;
use std::ops::Bound;

use serde_json::json;

use super::{Anomalies, CheckConfig, Facts, PropertyResult, Seen, Seq, ViewKind};

pub(crate) const ID: u8 = 8;
pub(crate) const NAME: &str = "gapless-monotone-consumption";

pub(crate) fn check(facts: &Facts, _config: &CheckConfig) -> PropertyResult {
    let known = facts.positions(|_| true);
    let mut anomalies = Anomalies::new(ID, NAME);
    let mut chains = 0usize;
    let mut steps = 0usize;
    for view in &facts.views {
        let ViewKind::Chain {
            start, start_index, ..
        } = &view.kind
        else {
            continue;
        };
        chains += 1;
        let empty = BTreeMap::new();
        let shard = known.get(view.shard.as_str()).unwrap_or(&empty);
        // The first record known strictly between `lo` and `hi`.
        let skipped = |lo: Bound<&Seq>, hi: &Seq| -> Option<(String, String)> {
            let nonempty = match lo {
                Bound::Unbounded => true,
                Bound::Included(l) => l < hi,
                Bound::Excluded(l) => l < hi,
            };
            if !nonempty {
                return None;
            }
            shard
                .range::<&Seq, _>((lo, Bound::Excluded(hi)))
                .next()
                .map(|(seq, values)| {
                    (
                        seq.to_string(),
                        values
                            .keys()
                            .next()
                            .copied()
                            .unwrap_or_default()
                            .to_string(),
                    )
                })
        };
        let label = view.label();
        if let (Some(first), Some(start)) = (view.records.first(), start) {
            let at = start.seq.as_deref().and_then(Seq::parse);
            let lower = match (start.kind.as_str(), &at) {
                ("TRIM_HORIZON", _) => Some(Bound::Unbounded),
                ("AFTER_SEQUENCE_NUMBER", Some(s)) => Some(Bound::Excluded(s)),
                ("AT_SEQUENCE_NUMBER", Some(s)) => Some(Bound::Included(s)),
                // LATEST and AT_TIMESTAMP start at a point the history cannot place.
                _ => None,
            };
            let mut ops: Vec<u64> = start_index.iter().copied().collect();
            ops.push(first.index);
            let before_start = match lower {
                Some(Bound::Excluded(s)) => first.seq <= *s,
                Some(Bound::Included(s)) => first.seq < *s,
                _ => false,
            };
            if before_start {
                anomalies.push(
                    "went-back",
                    format!(
                        "{label} started at {} {} but first read {}",
                        start.kind,
                        start.seq.as_deref().unwrap_or(""),
                        first.seq
                    ),
                    ops,
                    json!({"shard": view.shard, "first": first.seq.to_string()}),
                );
            } else if let Some(lower) = lower
                && let Some((seq, value)) = skipped(lower, &first.seq)
            {
                anomalies.push(
                    "skipped-at-start",
                    format!(
                        "{label} started at {} {} and first read {}, skipping {seq}={value}",
                        start.kind,
                        start.seq.as_deref().unwrap_or(""),
                        first.seq
                    ),
                    ops,
                    json!({"shard": view.shard, "skipped_seq": seq, "skipped": value}),
                );
            }
        }
        for w in view.records.windows(2) {
            steps += 1;
            let (a, b): (&Seen, &Seen) = (&w[0], &w[1]);
            if b.seq <= a.seq {
                anomalies.push(
                    "went-back",
                    format!("{label} read {}={} after {}={}", b.seq, b.value, a.seq, a.value),
                    vec![a.index, b.index],
                    json!({"shard": view.shard, "from": a.seq.to_string(), "to": b.seq.to_string()}),
                );
            } else if let Some((seq, value)) = skipped(Bound::Excluded(&a.seq), &b.seq) {
                anomalies.push(
                    "skipped",
                    format!(
                        "{label} read {}={} right after {}={}, skipping {seq}={value}",
                        b.seq, b.value, a.seq, a.value
                    ),
                    vec![a.index, b.index],
                    json!({"shard": view.shard, "skipped_seq": seq, "skipped": value}),
                );
            }
        }
    }
    anomalies.finish(json!({"chains": chains, "steps_checked": steps}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::Verdict;
    use crate::checkers::fixture::H;

    fn drained(h: &mut H) {
        h.append_ok(
            "w0",
            0,
            5,
            &[("a", "s0", 1), ("b", "s0", 2), ("c", "s0", 3)],
        );
        h.drain(1, "s0", 90, &[(1, "a"), (2, "b"), (3, "c")]);
    }

    #[test]
    fn a_chain_reading_everything_in_order_is_valid() {
        let mut h = H::default();
        drained(&mut h);
        h.chain("r0", "c0", "s0", 0, "TRIM_HORIZON", None);
        h.read("r0", "c0", "s0", 6, &[(1, "a")]);
        h.read("r0", "c0", "s0", 7, &[(2, "b"), (3, "c")]);
        h.chain("r0", "c1", "s0", 8, "AFTER_SEQUENCE_NUMBER", Some(2));
        h.read("r0", "c1", "s0", 9, &[(3, "c")]);
        h.chain("r1", "c2", "s0", 8, "LATEST", None);
        h.read("r1", "c2", "s0", 9, &[(3, "c")]);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
        assert_eq!(r.stats["chains"], 3);
    }

    #[test]
    fn a_skip_between_reads_is_caught() {
        let mut h = H::default();
        drained(&mut h);
        h.chain("r0", "c0", "s0", 0, "TRIM_HORIZON", None);
        h.read("r0", "c0", "s0", 6, &[(1, "a")]);
        h.read("r0", "c0", "s0", 7, &[(3, "c")]);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(r.anomalies[0].kind, "skipped");
        assert_eq!(r.anomalies[0].detail["skipped"], "b");
    }

    #[test]
    fn a_skip_at_the_start_is_caught() {
        let mut h = H::default();
        drained(&mut h);
        h.chain("r0", "c0", "s0", 0, "AFTER_SEQUENCE_NUMBER", Some(1));
        h.read("r0", "c0", "s0", 6, &[(3, "c")]);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.anomalies[0].kind, "skipped-at-start");
    }

    #[test]
    fn a_first_record_at_or_before_the_start_goes_back() {
        let mut h = H::default();
        drained(&mut h);
        h.chain("r0", "c0", "s0", 0, "AFTER_SEQUENCE_NUMBER", Some(2));
        h.read("r0", "c0", "s0", 6, &[(2, "b"), (3, "c")]);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.anomaly_count, 1);
        assert_eq!(r.anomalies[0].kind, "went-back");
    }

    #[test]
    fn going_back_is_caught() {
        let mut h = H::default();
        drained(&mut h);
        h.chain("r0", "c0", "s0", 0, "TRIM_HORIZON", None);
        h.read("r0", "c0", "s0", 6, &[(1, "a"), (2, "b")]);
        h.read("r0", "c0", "s0", 7, &[(2, "b"), (3, "c")]);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.anomaly_count, 1);
        assert_eq!(r.anomalies[0].kind, "went-back");
    }
}
