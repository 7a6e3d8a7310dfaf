//! Property 5, no server-made duplicates: a value sits at one position, unless its writer sent it
//! again after an attempt with an unknown outcome. A value may legitimately occupy as many
//! positions as it had attempts that did not fail definitely; those extra copies are counted
//! (`retried_duplicates`), anything beyond is the server's doing.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::{Anomalies, CheckConfig, Facts, PropertyResult};
use crate::history::Outcome;

pub(crate) const ID: u8 = 5;
pub(crate) const NAME: &str = "no-server-made-duplicates";

pub(crate) fn check(facts: &Facts, _config: &CheckConfig) -> PropertyResult {
    let mut positions: BTreeMap<&str, BTreeSet<(&str, &super::Seq)>> = BTreeMap::new();
    let mut lines: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for view in &facts.views {
        for r in &view.records {
            positions
                .entry(r.value.as_str())
                .or_default()
                .insert((view.shard.as_str(), &r.seq));
            lines.entry(r.value.as_str()).or_default().push(r.index);
        }
    }
    let by_value = facts.attempts_by_value();
    let mut anomalies = Anomalies::new(ID, NAME);
    let mut retried_duplicates = 0usize;
    let mut retried_values = 0usize;
    for (value, at) in &positions {
        if at.len() < 2 {
            continue;
        }
        let attempts = by_value.get(value).map(Vec::as_slice).unwrap_or(&[]);
        let allowed = attempts
            .iter()
            .filter(|a| a.outcome != Outcome::Fail)
            .count();
        let retried = attempts.len() > 1 && attempts.iter().any(|a| a.outcome == Outcome::Info);
        if retried && at.len() <= allowed {
            retried_values += 1;
            retried_duplicates += at.len() - 1;
            continue;
        }
        if allowed == 0 {
            // Read although it never could have been written: property 2 or 3 reports it.
            continue;
        }
        let mut ops: Vec<u64> = attempts.iter().flat_map(|a| a.ops()).collect();
        ops.extend(lines.get(value).into_iter().flatten().copied());
        ops.sort_unstable();
        ops.dedup();
        let where_: Vec<String> = at.iter().map(|(s, q)| format!("{s}/{q}")).collect();
        anomalies.push(
            "duplicate",
            format!(
                "{value} sits at {} positions but was sent {} time(s) without a definite failure",
                at.len(),
                allowed
            ),
            ops,
            json!({"value": value, "positions": where_, "attempts": attempts.len(), "retried_after_unknown": retried}),
        );
    }
    let server_made = anomalies.count();
    anomalies.finish(json!({
        "server_made_duplicates": server_made,
        "retried_duplicates": retried_duplicates,
        "values_duplicated_by_retries": retried_values,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::Verdict;
    use crate::checkers::fixture::H;

    #[test]
    fn one_position_per_value_is_valid() {
        let mut h = H::default();
        h.append_ok("w0", 0, 5, &[("a", "s0", 1), ("b", "s0", 2)]);
        h.drain(1, "s0", 9, &[(1, "a"), (2, "b")]);
        h.drain(2, "s0", 9, &[(1, "a"), (2, "b")]);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Valid);
        assert_eq!(r.stats["retried_duplicates"], 0);
    }

    #[test]
    fn a_copy_after_a_retried_unknown_is_counted_not_flagged() {
        let mut h = H::default();
        h.append("w0", 0, 5, &[("a", "s0", Outcome::Info, None)]);
        h.append_ok("w0", 6, 9, &[("a", "s0", 2)]);
        h.drain(1, "s0", 19, &[(1, "a"), (2, "a")]);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Valid);
        assert_eq!(r.stats["retried_duplicates"], 1);
    }

    #[test]
    fn a_second_copy_of_a_value_sent_once_is_a_duplicate() {
        let mut h = H::default();
        h.append_ok("w0", 0, 5, &[("a", "s0", 1)]);
        h.drain(1, "s0", 19, &[(1, "a"), (2, "a")]);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(r.stats["server_made_duplicates"], 1);
        assert_eq!(r.anomalies[0].ops, vec![0, 1, 3]);
    }

    #[test]
    fn more_copies_than_attempts_is_a_duplicate_even_after_retries() {
        let mut h = H::default();
        h.append("w0", 0, 5, &[("a", "s0", Outcome::Info, None)]);
        h.append_ok("w0", 6, 9, &[("a", "s0", 2)]);
        h.drain(1, "s0", 19, &[(1, "a"), (2, "a"), (3, "a")]);
        assert_eq!(
            check(&h.facts(), &CheckConfig::default()).verdict,
            Verdict::Invalid
        );
    }
}
