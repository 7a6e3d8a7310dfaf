//! Property 2, no phantom records: every value any reader or drain saw was sent by some append
//! (whatever that append's outcome).

use std::collections::{BTreeMap, HashSet};

use serde_json::json;

use super::{Anomalies, CheckConfig, Facts, PropertyResult};

pub(crate) const ID: u8 = 2;
pub(crate) const NAME: &str = "no-phantom-record";

pub(crate) fn check(facts: &Facts, _config: &CheckConfig) -> PropertyResult {
    let attempted: HashSet<&str> = facts.attempts.iter().map(|a| a.value.as_str()).collect();
    // One anomaly per phantom value, naming every read that returned it.
    let mut phantoms: BTreeMap<&str, (Vec<u64>, Vec<String>)> = BTreeMap::new();
    let mut seen = 0usize;
    for view in &facts.views {
        for r in &view.records {
            seen += 1;
            if !attempted.contains(r.value.as_str()) {
                let e = phantoms.entry(r.value.as_str()).or_default();
                e.0.push(r.index);
                e.1.push(format!("{} at {}/{}", view.label(), view.shard, r.seq));
            }
        }
    }
    let mut anomalies = Anomalies::new(ID, NAME);
    for (value, (mut ops, wheres)) in phantoms {
        ops.sort_unstable();
        ops.dedup();
        anomalies.push(
            "phantom",
            format!("{value:?} was read but no client ever sent it"),
            ops,
            json!({"value": value, "seen": wheres}),
        );
    }
    anomalies.finish(json!({"records_read": seen}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::Verdict;
    use crate::checkers::fixture::H;
    use crate::history::Outcome;

    #[test]
    fn reads_of_sent_values_are_valid_whatever_the_outcome() {
        let mut h = H::default();
        h.append_ok("w0", 0, 5, &[("a", "s0", 1)]);
        h.append("w1", 0, 5, &[("b", "s0", Outcome::Info, None)]);
        h.drain(1, "s0", 9, &[(1, "a"), (2, "b")]);
        assert_eq!(
            check(&h.facts(), &CheckConfig::default()).verdict,
            Verdict::Valid
        );
    }

    #[test]
    fn a_value_nobody_sent_is_a_phantom() {
        let mut h = H::default();
        h.append_ok("w0", 0, 5, &[("a", "s0", 1)]);
        h.chain("r0", "c0", "s0", 0, "TRIM_HORIZON", None);
        h.read("r0", "c0", "s0", 6, &[(1, "a"), (2, "ghost")]);
        h.drain(1, "s0", 9, &[(1, "a"), (2, "ghost")]);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(r.anomaly_count, 1, "one anomaly per value");
        assert_eq!(r.anomalies[0].ops.len(), 2);
        assert_eq!(r.anomalies[0].detail["value"], "ghost");
    }
}
