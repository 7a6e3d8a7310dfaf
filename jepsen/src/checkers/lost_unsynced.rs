//! Property 11, durability under lost unsynced writes: a record acknowledged before a power cut
//! (the `power-cut` nemesis: nodes killed and every write they had not fsynced forgotten) is
//! still in the final drain at its position, with its value. This is property 1 narrowed to the
//! acknowledgements a power cut could have taken away, and each anomaly names the first cut
//! after the acknowledgement: a record acknowledged only in memory is lost by the cut of every
//! node (or of every replica that had it), where `kill -9` would have kept it in the page cache.

use serde_json::json;

use super::{Anomalies, CheckConfig, Facts, PropertyResult, View};
use crate::history::Outcome;

pub(crate) const ID: u8 = 11;
pub(crate) const NAME: &str = "durability-under-lost-unsynced-writes";
pub(crate) const KIND: &str = "power-cut";

pub(crate) fn check(facts: &Facts, _config: &CheckConfig) -> PropertyResult {
    let mut cuts: Vec<_> = facts.faults.iter().filter(|f| f.kind == KIND).collect();
    if cuts.is_empty() {
        return PropertyResult::not_checked(
            ID,
            NAME,
            "no power cut in this run (--nemesis power-cut; needs root and /dev/fuse)",
        );
    }
    if !facts.has_drains() {
        return PropertyResult::not_checked(ID, NAME, "the history has no final drain");
    }
    cuts.sort_by_key(|f| f.start);
    let drained = facts.positions(View::is_drain);
    let mut anomalies = Anomalies::new(ID, NAME);
    let mut exposed = 0usize;
    for a in facts.attempts.iter().filter(|a| a.outcome == Outcome::Ok) {
        let (Some(shard), Some(seq), Some(acked_at)) =
            (a.shard.as_deref(), a.seq.as_ref(), a.complete_time)
        else {
            continue;
        };
        let Some(cut) = cuts.iter().find(|c| c.start >= acked_at) else {
            continue;
        };
        exposed += 1;
        let kept = drained
            .get(shard)
            .and_then(|m| m.get(seq))
            .is_some_and(|values| values.contains_key(a.value.as_str()));
        if !kept {
            let mut ops = a.ops();
            ops.push(cut.start_index);
            anomalies.push(
                "lost-in-power-cut",
                format!(
                    "{} was acknowledged at {shard}/{seq} before power cut #{} of nodes {:?} and no drain has it there",
                    a.value, cut.id, cut.nodes
                ),
                ops,
                json!({"value": a.value, "shard": shard, "seq": seq.to_string(), "cut": cut.id, "cut_nodes": cut.nodes}),
            );
        }
    }
    let lost = anomalies.count();
    anomalies.finish(json!({
        "power_cuts": cuts.len(),
        "cut_nodes": cuts.iter().map(|c| c.nodes.clone()).collect::<Vec<_>>(),
        "acknowledged_before_a_cut": exposed,
        "lost": lost,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::Verdict;
    use crate::checkers::fixture::H;

    #[test]
    fn without_a_power_cut_nothing_is_claimed() {
        let mut h = H::default();
        h.append_ok("w0", 0, 5, &[("a", "s0", 10)]);
        h.fault(1, "kill", &[1], 10, 20);
        h.drain(1, "s0", 30, &[(10, "a")]);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::NotChecked);
    }

    #[test]
    fn records_acked_before_a_cut_must_survive_it() {
        let mut h = H::default();
        h.append_ok("w0", 0, 5, &[("a", "s0", 10), ("b", "s0", 11)]);
        h.fault(1, KIND, &[1, 2, 3], 10, 20);
        // Acknowledged after the cut: property 1's business, not this one's.
        h.append_ok("w0", 25, 30, &[("c", "s0", 12)]);
        h.drain(1, "s0", 40, &[(10, "a")]);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(r.anomaly_count, 1);
        assert_eq!(r.anomalies[0].kind, "lost-in-power-cut");
        assert_eq!(r.stats["acknowledged_before_a_cut"], 2);
        assert!(r.anomalies[0].message.contains("b was acknowledged"));
    }

    #[test]
    fn surviving_records_are_valid() {
        let mut h = H::default();
        h.append_ok("w0", 0, 5, &[("a", "s0", 10)]);
        h.fault(1, KIND, &[2], 10, 20);
        h.drain(1, "s0", 40, &[(10, "a")]);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
        assert_eq!(r.stats["power_cuts"], 1);
    }
}
