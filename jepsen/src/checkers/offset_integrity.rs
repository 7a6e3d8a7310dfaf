//! Property 4, offset integrity: one (shard, sequence number) holds one record, across every
//! reader, every drain and every acknowledgement, and it is the record the writer was told.
//! Lines the checker cannot interpret (a sequence number that is not a decimal, an ok without a
//! position) are reported here too.

use std::collections::BTreeMap;

use serde_json::json;

use super::{Anomalies, CheckConfig, Facts, PropertyResult, values_at};
use crate::history::Outcome;

pub(crate) const ID: u8 = 4;
pub(crate) const NAME: &str = "offset-integrity";

pub(crate) fn check(facts: &Facts, _config: &CheckConfig) -> PropertyResult {
    let mut anomalies = Anomalies::new(ID, NAME);
    for m in &facts.malformed {
        anomalies.push("malformed", m.message.clone(), vec![m.index], json!(null));
    }

    let observed = facts.positions(|_| true);
    let mut positions = 0usize;
    for (shard, by_seq) in &observed {
        for (seq, values) in by_seq {
            positions += 1;
            if values.len() > 1 {
                let mut ops: Vec<u64> = values.values().flatten().copied().collect();
                ops.sort_unstable();
                ops.dedup();
                anomalies.push(
                    "two-records-at-one-position",
                    format!(
                        "{shard}/{seq} was read holding {} different records",
                        values.len()
                    ),
                    ops,
                    json!({"shard": shard, "seq": seq.to_string(), "values": values_at(values)}),
                );
            }
        }
    }

    // Acknowledgements: what each writer was told, against what was read and against each other.
    let mut acked_at: BTreeMap<(&str, &super::Seq), Vec<&super::Attempt>> = BTreeMap::new();
    for a in facts.attempts.iter().filter(|a| a.outcome == Outcome::Ok) {
        if let (Some(shard), Some(seq)) = (a.shard.as_deref(), a.seq.as_ref()) {
            acked_at.entry((shard, seq)).or_default().push(a);
        }
    }
    for ((shard, seq), acks) in &acked_at {
        let mut distinct: Vec<&str> = acks.iter().map(|a| a.value.as_str()).collect();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() > 1 {
            anomalies.push(
                "one-position-acknowledged-twice",
                format!(
                    "{shard}/{seq} was acknowledged to {} different records",
                    distinct.len()
                ),
                acks.iter().flat_map(|a| a.ops()).collect(),
                json!({"shard": shard, "seq": seq.to_string(), "values": distinct}),
            );
        }
        let Some(read) = observed.get(shard).and_then(|m| m.get(*seq)) else {
            continue;
        };
        for a in acks {
            if !read.contains_key(a.value.as_str()) {
                let mut ops = a.ops();
                ops.extend(read.values().flatten().copied());
                anomalies.push(
                    "acknowledged-position-holds-another-record",
                    format!("{} was acknowledged at {shard}/{seq}, which was read holding another record", a.value),
                    ops,
                    json!({"value": a.value, "shard": shard, "seq": seq.to_string(), "read": values_at(read)}),
                );
            }
        }
    }
    anomalies.finish(json!({"positions_read": positions, "positions_acknowledged": acked_at.len()}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::Verdict;
    use crate::checkers::fixture::H;

    #[test]
    fn consistent_positions_are_valid() {
        let mut h = H::default();
        h.append_ok("w0", 0, 5, &[("a", "s0", 1), ("b", "s1", 1)]);
        h.chain("r0", "c0", "s0", 0, "TRIM_HORIZON", None);
        h.read("r0", "c0", "s0", 6, &[(1, "a")]);
        h.drain(1, "s0", 9, &[(1, "a")]);
        h.drain(1, "s1", 9, &[(1, "b")]);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
        assert_eq!(r.stats["positions_read"], 2);
    }

    #[test]
    fn two_values_at_one_position_are_caught() {
        let mut h = H::default();
        h.append_ok("w0", 0, 5, &[("a", "s0", 1)]);
        h.append("w1", 0, 5, &[("b", "s0", Outcome::Info, None)]);
        h.drain(1, "s0", 9, &[(1, "a")]);
        h.drain(2, "s0", 9, &[(1, "b")]);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Invalid);
        let kinds: Vec<_> = r.anomalies.iter().map(|a| a.kind).collect();
        assert!(kinds.contains(&"two-records-at-one-position"), "{kinds:?}");
    }

    #[test]
    fn an_ack_naming_a_position_that_holds_another_record_is_caught() {
        let mut h = H::default();
        h.append_ok("w0", 0, 5, &[("a", "s0", 1)]);
        h.append_ok("w1", 0, 5, &[("b", "s0", 2)]);
        h.drain(1, "s0", 9, &[(1, "b"), (2, "a")]);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.anomaly_count, 2);
        assert_eq!(
            r.anomalies[0].kind,
            "acknowledged-position-holds-another-record"
        );
    }

    #[test]
    fn two_acks_for_one_position_and_bad_numbers_are_caught() {
        let mut h = H::default();
        h.append_ok("w0", 0, 5, &[("a", "s0", 1)]);
        h.append_ok("w1", 0, 5, &[("b", "s0", 1)]);
        h.drain(1, "s0", 9, &[(1, "a")]);
        h.ops[5].records[0].0 = "x1".into();
        let r = check(&h.facts(), &CheckConfig::default());
        let kinds: Vec<_> = r.anomalies.iter().map(|a| a.kind).collect();
        assert!(kinds.contains(&"malformed"), "{kinds:?}");
        assert!(
            kinds.contains(&"one-position-acknowledged-twice"),
            "{kinds:?}"
        );
    }
}
