//! Property 13, membership changes under load: every `membership` step finished while the
//! workload ran: a node that joined was admitted and given replicas (`join:joined`), a drained
//! node handed its replicas over and was removed (`drain:drained`). A step the workload's end
//! interrupted (`join:interrupted`, the node is a member but had no replica yet) is counted, not
//! judged; a step that failed (`...:failed`: not admitted, no replica, or not removed within the
//! deadline) is an anomaly. The replacements of nodes that refused corrupt data (property 12)
//! are membership changes too and are counted here.
//!
//! That nothing acknowledged was lost or changed across the changes is properties 1-8 on the
//! same history (the final drains read through the members at the end only).

use std::collections::BTreeMap;

use serde_json::json;

use super::{Anomalies, CheckConfig, Facts, PropertyResult};

pub(crate) const ID: u8 = 13;
pub(crate) const NAME: &str = "membership-changes-under-load";

pub(crate) fn check(facts: &Facts, _config: &CheckConfig) -> PropertyResult {
    let faults: Vec<_> = facts
        .faults
        .iter()
        .filter(|f| f.kind == "membership")
        .collect();
    if faults.is_empty() {
        return PropertyResult::not_checked(
            ID,
            NAME,
            "no membership step in the history (the membership nemesis was not run)",
        );
    }
    let mut anomalies = Anomalies::new(ID, NAME);
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    for f in &faults {
        let outcome = f.outcome.clone().unwrap_or_else(|| "unknown".into());
        *outcomes.entry(outcome.clone()).or_default() += 1;
        let ok = matches!(
            outcome.as_str(),
            "join:joined" | "drain:drained" | "join:interrupted" | "drain:skipped"
        );
        if !ok {
            let ops = [Some(f.start_index), f.end_index]
                .into_iter()
                .flatten()
                .collect();
            let detail = f.detail.clone().unwrap_or_default();
            anomalies.push(
                "membership-change-failed",
                format!(
                    "membership step #{} ended {outcome}: {}",
                    f.id,
                    f.error.as_deref().unwrap_or(&detail)
                ),
                ops,
                json!({"fault": f.id, "outcome": outcome, "detail": detail, "error": f.error}),
            );
        }
    }
    let count = |o: &str| outcomes.get(o).copied().unwrap_or(0);
    let replacements = facts
        .faults
        .iter()
        .filter(|f| {
            (f.kind == "corrupt" || f.kind == "corrupt-sled")
                && f.outcome.as_deref() == Some("detected-replaced")
        })
        .count();
    anomalies.finish(json!({
        "steps": faults.len(),
        "joined": count("join:joined"),
        "drained": count("drain:drained"),
        "interrupted": count("join:interrupted"),
        "replaced_after_corruption": replacements,
        "outcomes": outcomes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::Verdict;
    use crate::checkers::fixture::H;

    #[test]
    fn without_the_nemesis_it_is_not_checked() {
        let r = check(
            &Facts::from_history(&H::default().ops),
            &CheckConfig::default(),
        );
        assert_eq!(r.verdict, Verdict::NotChecked);
    }

    #[test]
    fn finished_steps_pass_and_a_failed_one_is_an_anomaly() {
        let mut h = H::default();
        h.fault_outcome(1, "membership", &[4], 10, 20, "join:joined");
        h.fault_outcome(2, "membership", &[2], 30, 40, "drain:drained");
        h.fault_outcome(3, "membership", &[2], 50, 60, "join:interrupted");
        let r = check(&Facts::from_history(&h.ops), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
        assert_eq!(
            (r.stats["joined"].clone(), r.stats["drained"].clone()),
            (json!(1), json!(1))
        );
        h.fault_outcome(4, "membership", &[1], 70, 80, "drain:failed");
        let r = check(&Facts::from_history(&h.ops), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Invalid);
    }
}
