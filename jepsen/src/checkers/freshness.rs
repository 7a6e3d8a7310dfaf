//! Property 9, freshness: how long after its acknowledgement a record is first returned to a
//! tailing reader, as a distribution. Readers poll, and a partition may leave one on a lagging
//! replica, so only a lag past a generous bound (`freshness_bound_ms`) is an anomaly; property 1
//! is what guarantees the record is readable at all.

use std::collections::HashMap;

use serde_json::json;

use super::{Anomalies, CheckConfig, Facts, PropertyResult, ViewKind, ms, quantile};
use crate::history::Outcome;

pub(crate) const ID: u8 = 9;
pub(crate) const NAME: &str = "freshness";

pub(crate) fn check(facts: &Facts, config: &CheckConfig) -> PropertyResult {
    let bound = config.freshness_bound_ms.saturating_mul(1_000_000);
    let mut anomalies = Anomalies::new(ID, NAME);
    let mut first_seen: HashMap<(&str, &super::Seq, &str), (u64, u64)> = HashMap::new();
    let mut readers = false;
    for view in &facts.views {
        if !matches!(view.kind, ViewKind::Chain { .. }) {
            continue;
        }
        readers = true;
        for r in &view.records {
            let t = first_seen
                .entry((view.shard.as_str(), &r.seq, r.value.as_str()))
                .or_insert((r.time, r.index));
            if r.time < t.0 {
                *t = (r.time, r.index);
            }
        }
    }
    let mut lags = Vec::new();
    let mut acked = 0usize;
    for a in &facts.attempts {
        let (Outcome::Ok, Some(shard), Some(seq), Some(done)) = (
            a.outcome,
            a.shard.as_deref(),
            a.seq.as_ref(),
            a.complete_time,
        ) else {
            continue;
        };
        acked += 1;
        if let Some((seen, index)) = first_seen.get(&(shard, seq, a.value.as_str())) {
            // A reader may see a record before its writer hears back: that is a lag of zero.
            let lag = seen.saturating_sub(done);
            lags.push(lag);
            if lag > bound {
                let mut ops = a.ops();
                ops.push(*index);
                anomalies.push(
                    "stale",
                    format!(
                        "{} was first read {:.0} ms after its acknowledgement (bound {} ms)",
                        a.value,
                        ms(lag),
                        config.freshness_bound_ms
                    ),
                    ops,
                    json!({"value": a.value, "shard": shard, "lag_ms": ms(lag)}),
                );
            }
        }
    }
    lags.sort_unstable();
    let stat = |q: f64| quantile(&lags, q).map(ms);
    let stats = json!({
        "acknowledged": acked,
        "seen_by_tailing_readers": lags.len(),
        "never_seen_by_tailing_readers": acked - lags.len(),
        "lag_ms_p50": stat(0.5),
        "lag_ms_p99": stat(0.99),
        "lag_ms_max": lags.last().copied().map(ms),
    });
    if !readers || (acked > 0 && lags.is_empty()) {
        let mut r =
            PropertyResult::not_checked(ID, NAME, "no tailing reader saw an acknowledged record");
        r.stats = stats;
        return r;
    }
    anomalies.finish(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::Verdict;
    use crate::checkers::fixture::H;

    #[test]
    fn lag_runs_from_ack_to_first_read() {
        let mut h = H::default();
        h.append_ok("w0", 0, 10, &[("a", "s0", 1)]);
        h.append_ok("w0", 20, 30, &[("b", "s0", 2)]);
        h.append_ok("w0", 40, 50, &[("c", "s0", 3)]);
        h.chain("r0", "c0", "s0", 0, "TRIM_HORIZON", None);
        h.read("r0", "c0", "s0", 8, &[(1, "a")]);
        h.read("r0", "c0", "s0", 130, &[(2, "b")]);
        h.chain("r1", "c1", "s0", 0, "TRIM_HORIZON", None);
        h.read("r1", "c1", "s0", 40, &[(1, "a"), (2, "b")]);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Valid);
        assert_eq!(r.stats["seen_by_tailing_readers"], 2);
        assert_eq!(r.stats["never_seen_by_tailing_readers"], 1);
        assert_eq!(r.stats["lag_ms_p50"], 0.0);
        assert_eq!(r.stats["lag_ms_max"], 10.0);

        let strict = CheckConfig {
            freshness_bound_ms: 5,
            ..CheckConfig::default()
        };
        let r = check(&h.facts(), &strict);
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(r.anomalies[0].kind, "stale");
        assert_eq!(r.anomalies[0].detail["value"], "b");
    }

    #[test]
    fn without_reads_it_is_not_checked() {
        let mut h = H::default();
        h.append_ok("w0", 0, 10, &[("a", "s0", 1)]);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::NotChecked);
    }
}
