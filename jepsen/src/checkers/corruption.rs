//! Property 12, corruption is detected and repaired, never served: every `corrupt` fault (a bit
//! flipped in a WAL segment or a snapshot file of a stopped node, or a segment cut inside a
//! record) ended in an outcome the server may have: the node started and served (`started-clean`,
//! or `torn-tail-cut` when the damage looked like a torn write at the very end of the log), or it
//! refused to start with a corruption error and was replaced by a node with a new id, its
//! replicas rebuilt from its peers (`detected-replaced`, or `detected-repairing` when the
//! workload ended before the cluster had removed it). Anything else (`failed`: it exited
//! without naming corruption, never became ready, or could not be replaced) is an anomaly.
//!
//! Whether damaged data was *served* or *propagated* is judged by properties 1-8 on the same
//! history: a record read that nobody wrote is a phantom, a changed one is lost or moved.

use std::collections::BTreeMap;

use serde_json::json;

use super::{Anomalies, CheckConfig, Facts, PropertyResult};

pub(crate) const ID: u8 = 12;
pub(crate) const NAME: &str = "corruption-detected-and-repaired";

/// The outcomes property 12 accepts.
const ACCEPTED: &[&str] = &[
    "started-clean",
    "torn-tail-cut",
    "detected-replaced",
    "detected-repairing",
    "skipped",
];

pub(crate) fn check(facts: &Facts, _config: &CheckConfig) -> PropertyResult {
    let faults: Vec<_> = facts
        .faults
        .iter()
        .filter(|f| f.kind == "corrupt" || f.kind == "corrupt-sled")
        .collect();
    if faults.is_empty() {
        return PropertyResult::not_checked(
            ID,
            NAME,
            "no corrupt fault in the history (neither the corrupt nor the corrupt-sled nemesis was run)",
        );
    }
    let mut anomalies = Anomalies::new(ID, NAME);
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut damage: BTreeMap<String, u64> = BTreeMap::new();
    for f in &faults {
        let outcome = f.outcome.clone().unwrap_or_else(|| "unknown".into());
        *outcomes.entry(outcome.clone()).or_default() += 1;
        let detail = f.detail.clone().unwrap_or_default();
        // "corrupt (flip) node 2: ..." as `Fault::describe` writes it.
        if let Some(kind) = detail
            .strip_prefix("corrupt (")
            .and_then(|r| r.split(')').next())
        {
            *damage.entry(kind.to_string()).or_default() += 1;
        }
        if !ACCEPTED.contains(&outcome.as_str()) {
            let ops = [Some(f.start_index), f.end_index]
                .into_iter()
                .flatten()
                .collect();
            anomalies.push(
                "corruption-not-handled",
                format!(
                    "corrupt fault #{} on slot(s) {:?} ended {outcome}: {}",
                    f.id,
                    f.nodes,
                    f.error.as_deref().unwrap_or(&detail)
                ),
                ops,
                json!({"fault": f.id, "outcome": outcome, "detail": detail, "error": f.error}),
            );
        }
    }
    let injected = faults
        .iter()
        .filter(|f| f.outcome.as_deref() != Some("skipped"))
        .count();
    anomalies.finish(json!({
        "faults": faults.len(),
        "injected": injected,
        "by_damage": damage,
        "outcomes": outcomes,
        "served": "judged by properties 1-8 on the same history",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::Verdict;
    use crate::checkers::fixture::H;

    #[test]
    fn without_the_nemesis_it_is_not_checked() {
        let facts = Facts::from_history(&H::default().ops);
        let r = check(&facts, &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::NotChecked);
    }

    #[test]
    fn accepted_outcomes_pass_and_a_failed_repair_is_an_anomaly() {
        let mut h = H::default();
        h.fault_outcome(1, "corrupt", &[2], 10, 20, "detected-replaced");
        h.fault_outcome(2, "corrupt", &[1], 30, 40, "torn-tail-cut");
        let r = check(&Facts::from_history(&h.ops), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
        assert_eq!(r.stats["injected"], 2);
        h.fault_outcome(3, "corrupt", &[3], 50, 60, "failed");
        let r = check(&Facts::from_history(&h.ops), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(r.anomalies[0].kind, "corruption-not-handled");
    }
}
