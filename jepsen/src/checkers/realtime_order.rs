//! Property 7, real-time order: when append A was acknowledged before append B was invoked and
//! both records went to the same shard, A's sequence number is below B's. Across resharding the
//! same holds for two records of the same partition key in a parent and its child (or any
//! ancestor and descendant): sequence numbers are ordered across a lineage, children's above
//! their parents', so a key's acknowledged record is below every later one of that key.
//!
//! One sweep per shard: acknowledgements in completion order feed a running maximum, which every
//! record must exceed when its append was invoked. Then one sweep per key over the records in
//! different shards, with a running maximum per shard, comparing each record only with shards of
//! its own lineage (per the shard map; without one, no resharding happened and a key has one
//! shard). Pairs in one shard are left to the first sweep, so nothing is reported twice.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::{Anomalies, Attempt, CheckConfig, Facts, PropertyResult, Seq, ms};
use crate::history::Outcome;

pub(crate) const ID: u8 = 7;
pub(crate) const NAME: &str = "real-time-order-per-shard";

pub(crate) fn check(facts: &Facts, _config: &CheckConfig) -> PropertyResult {
    let mut by_shard: BTreeMap<&str, Vec<(&Attempt, &Seq, u64)>> = BTreeMap::new();
    for a in &facts.attempts {
        if let (Outcome::Ok, Some(shard), Some(seq), Some(done)) = (
            a.outcome,
            a.shard.as_deref(),
            a.seq.as_ref(),
            a.complete_time,
        ) {
            by_shard.entry(shard).or_default().push((a, seq, done));
        }
    }
    let mut anomalies = Anomalies::new(ID, NAME);
    let mut pairs_ordered = 0usize;
    for (shard, acks) in &by_shard {
        let mut by_completion = acks.clone();
        by_completion.sort_by_key(|(_, _, done)| *done);
        let mut by_invoke = acks.clone();
        by_invoke.sort_by_key(|(a, _, _)| a.invoke_time);
        let mut next = 0usize;
        let mut max: Option<(&Attempt, &Seq)> = None;
        for (b, b_seq, _) in &by_invoke {
            while next < by_completion.len() && by_completion[next].2 < b.invoke_time {
                let (a, a_seq, _) = by_completion[next];
                if max.is_none_or(|(_, m)| a_seq > m) {
                    max = Some((a, a_seq));
                }
                next += 1;
            }
            pairs_ordered += next;
            if let Some((a, a_seq)) = max
                && a_seq >= *b_seq
            {
                let mut ops = a.ops();
                ops.extend(b.ops());
                anomalies.push(
                    "real-time-order-violated",
                    format!(
                        "{shard}: {} was acknowledged at {a_seq} ({:.1} ms) before {} was sent ({:.1} ms), which got {b_seq}",
                        a.value,
                        ms(a.complete_time.unwrap_or_default()),
                        b.value,
                        ms(b.invoke_time)
                    ),
                    ops,
                    json!({"shard": shard, "earlier": a.value, "earlier_seq": a_seq.to_string(), "later": b.value, "later_seq": b_seq.to_string()}),
                );
            }
        }
    }
    let cross = check_keys_across_shards(facts, &mut anomalies);
    anomalies.finish(
        json!({"ordered_pairs_checked": pairs_ordered, "cross_shard_key_pairs_checked": cross}),
    )
}

/// The per-key sweep across a lineage; returns the number of cross-shard pairs compared.
fn check_keys_across_shards(facts: &Facts, anomalies: &mut Anomalies) -> usize {
    let mut by_key: BTreeMap<&str, Vec<(&Attempt, &str, &Seq, u64)>> = BTreeMap::new();
    for a in &facts.attempts {
        if let (Outcome::Ok, Some(shard), Some(seq), Some(done)) = (
            a.outcome,
            a.shard.as_deref(),
            a.seq.as_ref(),
            a.complete_time,
        ) {
            by_key
                .entry(a.key.as_str())
                .or_default()
                .push((a, shard, seq, done));
        }
    }
    let mut lineage: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut related = |x: &str, y: &str| -> bool {
        if facts.shard_map.is_none() {
            return true;
        }
        let xa = lineage
            .entry(x.to_string())
            .or_insert_with(|| facts.ancestors(x))
            .contains(y);
        xa || lineage
            .entry(y.to_string())
            .or_insert_with(|| facts.ancestors(y))
            .contains(x)
    };
    let mut pairs = 0usize;
    for (key, acks) in &by_key {
        let shards: BTreeSet<&str> = acks.iter().map(|(_, s, _, _)| *s).collect();
        if shards.len() < 2 {
            continue;
        }
        let mut by_completion = acks.clone();
        by_completion.sort_by_key(|(_, _, _, done)| *done);
        let mut by_invoke = acks.clone();
        by_invoke.sort_by_key(|(a, _, _, _)| a.invoke_time);
        let mut next = 0usize;
        // The highest acknowledged number so far in each shard.
        let mut max: BTreeMap<&str, (&Attempt, &Seq)> = BTreeMap::new();
        for (b, b_shard, b_seq, _) in &by_invoke {
            while next < by_completion.len() && by_completion[next].3 < b.invoke_time {
                let (a, a_shard, a_seq, _) = by_completion[next];
                if max.get(a_shard).is_none_or(|(_, m)| a_seq > *m) {
                    max.insert(a_shard, (a, a_seq));
                }
                next += 1;
            }
            for (a_shard, (a, a_seq)) in &max {
                if a_shard == b_shard || !related(a_shard, b_shard) {
                    continue;
                }
                pairs += 1;
                if *a_seq >= *b_seq {
                    let mut ops = a.ops();
                    ops.extend(b.ops());
                    anomalies.push(
                        "real-time-order-violated-across-lineage",
                        format!(
                            "key {key}: {} was acknowledged in {a_shard} at {a_seq} ({:.1} ms) before {} was sent ({:.1} ms), which got {b_seq} in {b_shard}",
                            a.value,
                            ms(a.complete_time.unwrap_or_default()),
                            b.value,
                            ms(b.invoke_time)
                        ),
                        ops,
                        json!({"key": key, "earlier": a.value, "earlier_shard": a_shard, "earlier_seq": a_seq.to_string(),
                               "later": b.value, "later_shard": b_shard, "later_seq": b_seq.to_string()}),
                    );
                }
            }
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::Verdict;
    use crate::checkers::fixture::H;

    #[test]
    fn later_appends_get_higher_numbers() {
        let mut h = H::default();
        h.append_ok("w0", 0, 5, &[("a", "s0", 10)]);
        h.append_ok("w1", 6, 9, &[("b", "s0", 11)]);
        // Concurrent with both: any order is fine.
        h.append_ok("w2", 1, 12, &[("c", "s0", 3)]);
        // Another shard has its own numbers.
        h.append_ok("w3", 20, 22, &[("d", "s1", 1)]);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
    }

    /// s0 split into s1 and s2.
    fn split(h: &mut H) {
        h.shard_map(
            "ACTIVE",
            &[
                ("s0", None, None, 0, u128::MAX, 1, Some(100)),
                ("s1", Some("s0"), None, 0, 5, 200, None),
                ("s2", Some("s0"), None, 6, u128::MAX, 300, None),
            ],
        );
    }

    #[test]
    fn a_key_stays_ordered_from_parent_to_child() {
        let mut h = H::default();
        h.append_keyed("w0", 0, 5, &[("a", "k1", "s0", 90)]);
        h.append_keyed("w1", 6, 9, &[("b", "k1", "s1", 210)]);
        // Siblings are not compared (their numbers are unrelated; property 10 reports a key in
        // two siblings).
        h.append_keyed("w2", 10, 12, &[("c", "k2", "s2", 301)]);
        h.append_keyed("w2", 13, 15, &[("d", "k2", "s1", 220)]);
        split(&mut h);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
        assert_eq!(r.stats["cross_shard_key_pairs_checked"], 1);
    }

    #[test]
    fn a_child_record_below_an_earlier_parent_ack_of_its_key_is_caught() {
        let mut h = H::default();
        // Planted: the parent acknowledged k1 at 150 (after its end, too), then the child gave
        // a later append of k1 a lower number.
        h.append_keyed("w0", 0, 5, &[("a", "k1", "s0", 250)]);
        h.append_keyed("w1", 6, 9, &[("b", "k1", "s1", 210)]);
        split(&mut h);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(
            r.anomalies[0].kind,
            "real-time-order-violated-across-lineage"
        );
        assert_eq!(r.anomalies[0].ops, vec![0, 1, 2, 3]);
    }

    #[test]
    fn an_append_ordered_before_an_earlier_ack_is_caught() {
        let mut h = H::default();
        h.append_ok("w0", 0, 5, &[("a", "s0", 10)]);
        h.append_ok("w1", 6, 9, &[("b", "s0", 7)]);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(r.anomalies[0].ops, vec![0, 1, 2, 3]);
        assert_eq!(r.anomalies[0].detail["later"], "b");
    }
}
