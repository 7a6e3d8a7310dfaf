//! Property 1, no lost acknowledged record: every record an append acknowledged with a
//! (shard, sequence number) is in the final drain at that position, holding that value.
//!
//! "The final drain" is the union of every node's drain: a record is lost when no node serves it
//! at its position. A node that serves less than the others is property 6's business.

use serde_json::json;

use super::{Anomalies, CheckConfig, Facts, PropertyResult, View, values_at};
use crate::history::Outcome;

pub(crate) const ID: u8 = 1;
pub(crate) const NAME: &str = "no-lost-acknowledged-record";

pub(crate) fn check(facts: &Facts, _config: &CheckConfig) -> PropertyResult {
    if !facts.has_drains() {
        return PropertyResult::not_checked(ID, NAME, "the history has no final drain");
    }
    let drained = facts.positions(View::is_drain);
    let mut anomalies = Anomalies::new(ID, NAME);
    let mut acked = 0usize;
    for a in facts.attempts.iter().filter(|a| a.outcome == Outcome::Ok) {
        let (Some(shard), Some(seq)) = (a.shard.as_deref(), a.seq.as_ref()) else {
            // Malformed acknowledgements are reported by property 4.
            continue;
        };
        acked += 1;
        let at = drained.get(shard).and_then(|m| m.get(seq));
        match at {
            Some(values) if values.contains_key(a.value.as_str()) => {}
            Some(values) => {
                let mut ops = a.ops();
                ops.extend(values.values().flatten().copied());
                anomalies.push(
                    "lost-overwritten",
                    format!(
                        "{} was acknowledged at {shard}/{seq} but the drains hold another record there",
                        a.value
                    ),
                    ops,
                    json!({"value": a.value, "shard": shard, "seq": seq.to_string(), "found": values_at(values)}),
                );
            }
            None => {
                let elsewhere: Vec<String> = drained
                    .iter()
                    .flat_map(|(s, m)| {
                        m.iter()
                            .filter(|(_, vs)| vs.contains_key(a.value.as_str()))
                            .map(move |(q, _)| format!("{s}/{q}"))
                    })
                    .collect();
                anomalies.push(
                    "lost",
                    format!(
                        "{} was acknowledged at {shard}/{seq} and no node's drain has that position",
                        a.value
                    ),
                    a.ops(),
                    json!({"value": a.value, "shard": shard, "seq": seq.to_string(), "process": a.process, "found_elsewhere": elsewhere}),
                );
            }
        }
    }
    let lost = anomalies.count();
    anomalies.finish(json!({"acknowledged": acked, "lost": lost}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::Verdict;
    use crate::checkers::fixture::H;

    #[test]
    fn every_acked_record_drained_is_valid() {
        let mut h = H::default();
        h.append_ok("w0", 0, 5, &[("a", "s0", 10), ("b", "s0", 11)]);
        h.drain(1, "s0", 20, &[(10, "a"), (11, "b")]);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Valid);
        assert_eq!(r.stats["acknowledged"], 2);
    }

    #[test]
    fn a_missing_acked_record_is_lost() {
        let mut h = H::default();
        h.append_ok("w0", 0, 5, &[("a", "s0", 10), ("b", "s0", 11)]);
        h.drain(1, "s0", 20, &[(10, "a")]);
        h.drain(2, "s0", 20, &[(10, "a")]);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(r.anomaly_count, 1);
        assert_eq!(r.anomalies[0].kind, "lost");
        assert_eq!(r.anomalies[0].ops, vec![0, 1]);
        assert_eq!(r.stats["lost"], 1);
    }

    #[test]
    fn another_value_at_the_acked_position_is_lost_too() {
        let mut h = H::default();
        h.append_ok("w0", 0, 5, &[("a", "s0", 10)]);
        h.append_ok("w1", 0, 5, &[("b", "s0", 11)]);
        h.drain(1, "s0", 20, &[(10, "b")]);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.anomaly_count, 2);
        assert_eq!(r.anomalies[0].kind, "lost-overwritten");
    }

    #[test]
    fn one_node_holding_it_is_enough_here() {
        let mut h = H::default();
        h.append_ok("w0", 0, 5, &[("a", "s0", 10)]);
        h.drain(1, "s0", 20, &[]);
        h.drain(2, "s0", 20, &[(10, "a")]);
        assert_eq!(
            check(&h.facts(), &CheckConfig::default()).verdict,
            Verdict::Valid
        );
    }

    #[test]
    fn without_a_drain_nothing_is_claimed() {
        let mut h = H::default();
        h.append_ok("w0", 0, 5, &[("a", "s0", 10)]);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::NotChecked);
    }
}
