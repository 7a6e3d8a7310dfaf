//! Property 7, real-time order: when append A was acknowledged before append B was invoked and
//! both records went to the same shard, A's sequence number is below B's.
//!
//! One sweep per shard: acknowledgements in completion order feed a running maximum, which every
//! record must exceed when its append was invoked.

use std::collections::BTreeMap;

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
    anomalies.finish(json!({"ordered_pairs_checked": pairs_ordered}))
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
