//! Property 15, availability: while a majority is connected (every fault this harness injects
//! leaves one), appends keep succeeding. Reports each window with no acknowledged append longer
//! than `unavailability_report_ms`, the faults it overlapped, and the recovery time after each
//! heal (from the heal to the completion of the first append sent after it that was
//! acknowledged). A window or a recovery longer than `availability_bound_ms` is an anomaly, and
//! so is a node that exited without being killed (a `crash` event).

use serde_json::{Value, json};

use super::{Anomalies, AppendCall, CheckConfig, Facts, FaultWindow, PropertyResult, ms};

pub(crate) const ID: u8 = 15;
pub(crate) const NAME: &str = "availability";

fn overlapping(faults: &[FaultWindow], start: u64, end: u64, until: u64) -> Vec<Value> {
    faults
        .iter()
        .filter(|f| f.start < end && f.end.unwrap_or(until) > start)
        .map(|f| json!({"id": f.id, "kind": f.kind, "nodes": f.nodes}))
        .collect()
}

pub(crate) fn check(facts: &Facts, config: &CheckConfig) -> PropertyResult {
    let mut anomalies = Anomalies::new(ID, NAME);
    let calls: Vec<&AppendCall> = facts.calls.iter().collect();
    let Some(begin) = calls.iter().map(|c| c.invoke_time).min() else {
        return PropertyResult::not_checked(ID, NAME, "the history has no appends");
    };
    let end = calls
        .iter()
        .map(|c| c.complete_time.unwrap_or(c.invoke_time))
        .max()
        .unwrap_or(begin);
    let mut acked: Vec<(u64, &AppendCall)> = calls
        .iter()
        .filter(|c| c.acked > 0)
        .filter_map(|c| c.complete_time.map(|t| (t, *c)))
        .collect();
    acked.sort_by_key(|(t, _)| *t);

    let report = config.unavailability_report_ms.saturating_mul(1_000_000);
    let bound = config.availability_bound_ms.saturating_mul(1_000_000);
    let mut windows = Vec::new();
    let mut unavailable_ns = 0u64;
    let mut last = (begin, None::<&AppendCall>);
    let ends = acked
        .iter()
        .map(|(t, c)| (*t, Some(*c)))
        .chain(std::iter::once((end, None)));
    for (t, call) in ends {
        let gap = t.saturating_sub(last.0);
        if gap > report {
            unavailable_ns += gap;
            let faults = overlapping(&facts.faults, last.0, t, facts.end_time);
            windows.push(json!({
                "start_ms": ms(last.0), "end_ms": ms(t), "duration_ms": ms(gap), "faults": faults,
            }));
            if gap > bound {
                let mut ops: Vec<u64> = last.1.iter().flat_map(|c| c.complete_index).collect();
                ops.extend(call.iter().flat_map(|c| c.complete_index));
                anomalies.push(
                    "unavailable",
                    format!(
                        "no append was acknowledged for {:.1} s (from {:.1} s to {:.1} s; bound {} s)",
                        gap as f64 / 1e9,
                        last.0 as f64 / 1e9,
                        t as f64 / 1e9,
                        config.availability_bound_ms / 1000
                    ),
                    ops,
                    json!({"faults": faults}),
                );
            }
        }
        last = (t, call);
    }

    for f in facts.faults.iter().filter(|f| f.kind == "crash") {
        anomalies.push(
            "crash",
            format!("node(s) {:?} exited without being killed", f.nodes),
            vec![f.start_index],
            json!({"nodes": f.nodes}),
        );
    }

    let mut recoveries = Vec::new();
    for f in &facts.faults {
        let Some(healed) = f.end else { continue };
        let first = calls
            .iter()
            .filter(|c| c.acked > 0 && c.invoke_time >= healed)
            .filter_map(|c| c.complete_time.map(|t| (t, *c)))
            .min_by_key(|(t, _)| *t);
        let recovery = first.map(|(t, _)| t - healed);
        recoveries.push(json!({
            "fault": f.id, "kind": f.kind, "nodes": f.nodes, "healed_ms": ms(healed),
            "recovery_ms": recovery.map(ms),
        }));
        if let (Some(r), Some((_, c))) = (recovery, first)
            && r > bound
        {
            let mut ops: Vec<u64> = f.end_index.iter().copied().collect();
            ops.extend(c.complete_index);
            anomalies.push(
                "slow-recovery",
                format!(
                    "the first append after healing {} {:?} was acknowledged {:.1} s later",
                    f.kind,
                    f.nodes,
                    r as f64 / 1e9
                ),
                ops,
                json!({"fault": f.id}),
            );
        }
    }
    let mut sorted: Vec<u64> = recoveries
        .iter()
        .filter_map(|r| r["recovery_ms"].as_f64())
        .map(|v| (v * 1e6) as u64)
        .collect();
    sorted.sort_unstable();
    anomalies.finish(json!({
        "workload_ms": ms(end - begin),
        "unavailable_ms": ms(unavailable_ns),
        "windows": windows,
        "recoveries": recoveries,
        "recovery_ms_max": sorted.last().copied().map(ms),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::Verdict;
    use crate::checkers::fixture::H;
    use crate::history::Outcome;

    #[test]
    fn windows_and_recoveries_are_reported() {
        let mut h = H::default();
        h.append_ok("w0", 0, 100, &[("a", "s0", 1)]);
        h.fault(1, "kill", &[2], 200, 3_000);
        h.append("w0", 100, 2_500, &[("b", "s0", Outcome::Info, None)]);
        h.append_ok("w0", 2_500, 2_600, &[("c", "s0", 2)]);
        h.append_ok("w0", 3_100, 3_200, &[("d", "s0", 3)]);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
        let windows = r.stats["windows"].as_array().unwrap();
        assert_eq!(windows.len(), 1);
        assert_eq!(windows[0]["duration_ms"], 2500.0);
        assert_eq!(windows[0]["faults"][0]["kind"], "kill");
        assert_eq!(r.stats["recoveries"][0]["recovery_ms"], 200.0);
    }

    #[test]
    fn a_window_past_the_bound_is_an_anomaly() {
        let mut h = H::default();
        h.append_ok("w0", 0, 100, &[("a", "s0", 1)]);
        h.fault(1, "partition", &[1, 2], 200, 1_000);
        h.append_ok("w0", 1_000, 40_000, &[("b", "s0", 2)]);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Invalid);
        let kinds: Vec<_> = r.anomalies.iter().map(|a| a.kind).collect();
        assert_eq!(kinds, vec!["unavailable", "slow-recovery"]);
        assert_eq!(r.anomalies[0].ops, vec![1, 5]);
    }

    #[test]
    fn a_node_exiting_on_its_own_is_an_anomaly() {
        let mut h = H::default();
        h.append_ok("w0", 0, 100, &[("a", "s0", 1)]);
        h.fault(7, "crash", &[3], 50, 900);
        h.append_ok("w0", 200, 300, &[("b", "s0", 2)]);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(r.anomalies[0].kind, "crash");
        assert_eq!(r.anomalies[0].ops, vec![2]);
    }
}
