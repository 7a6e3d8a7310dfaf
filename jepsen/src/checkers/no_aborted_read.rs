//! Property 3, no aborted reads: a value whose every attempt failed definitely (a per-record
//! ProvisionedThroughputExceededException or InvalidArgument, or a call refused as a whole before
//! anything was written) is never read.

use std::collections::BTreeMap;

use serde_json::json;

use super::{Anomalies, CheckConfig, Facts, PropertyResult};
use crate::history::Outcome;

pub(crate) const ID: u8 = 3;
pub(crate) const NAME: &str = "no-aborted-read";

pub(crate) fn check(facts: &Facts, _config: &CheckConfig) -> PropertyResult {
    let by_value = facts.attempts_by_value();
    let failed: BTreeMap<&str, _> = by_value
        .into_iter()
        .filter(|(_, attempts)| attempts.iter().all(|a| a.outcome == Outcome::Fail))
        .collect();
    let mut seen_at: BTreeMap<&str, Vec<(String, u64)>> = BTreeMap::new();
    for view in &facts.views {
        for r in &view.records {
            if failed.contains_key(r.value.as_str()) {
                seen_at.entry(r.value.as_str()).or_default().push((
                    format!("{} at {}/{}", view.label(), view.shard, r.seq),
                    r.index,
                ));
            }
        }
    }
    let mut anomalies = Anomalies::new(ID, NAME);
    for (value, seen) in seen_at {
        let attempts = &failed[value];
        let mut ops: Vec<u64> = attempts.iter().flat_map(|a| a.ops()).collect();
        ops.extend(seen.iter().map(|(_, i)| *i));
        ops.sort_unstable();
        ops.dedup();
        let errors: Vec<_> = attempts.iter().map(|a| a.error.clone()).collect();
        anomalies.push(
            "aborted-read",
            format!("{value} failed definitely but was read"),
            ops,
            json!({"value": value, "errors": errors, "seen": seen.iter().map(|(w, _)| w).collect::<Vec<_>>()}),
        );
    }
    anomalies.finish(json!({"definitely_failed_values": failed.len()}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::Verdict;
    use crate::checkers::fixture::H;

    #[test]
    fn failed_values_never_read_are_valid() {
        let mut h = H::default();
        h.append(
            "w0",
            0,
            5,
            &[
                ("a", "s0", Outcome::Fail, None),
                ("b", "s0", Outcome::Ok, Some(1)),
            ],
        );
        h.drain(1, "s0", 9, &[(1, "b")]);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Valid);
        assert_eq!(r.stats["definitely_failed_values"], 1);
    }

    #[test]
    fn a_failed_value_that_shows_up_is_an_aborted_read() {
        let mut h = H::default();
        h.append("w0", 0, 5, &[("a", "s0", Outcome::Fail, None)]);
        h.drain(1, "s0", 9, &[(1, "a")]);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(r.anomalies[0].ops, vec![0, 1, 3]);
    }

    #[test]
    fn a_failed_retry_of_an_unknown_attempt_may_show_up() {
        let mut h = H::default();
        h.append("w0", 0, 5, &[("a", "s0", Outcome::Info, None)]);
        h.append("w0", 6, 9, &[("a", "s0", Outcome::Fail, None)]);
        h.drain(1, "s0", 19, &[(1, "a")]);
        assert_eq!(
            check(&h.facts(), &CheckConfig::default()).verdict,
            Verdict::Valid
        );
    }
}
