//! Property 16, quiet-node stall: how long appends stop being acknowledged when exactly one node
//! goes quiet (`kill`, `pause`, or a `partition` / `partition-leader` that isolates one node).
//! One node of three or more is never a majority, so ideally the cluster barely notices; what it
//! costs is the re-election of the groups that node led, before and after the heal.
//!
//! Per such fault, the window runs from its start to its heal plus [`SETTLE_MS`] (cut at the
//! next fault's start), and the longest stretch in it without an acknowledged append is its
//! stall, the edges of the window included. Time after the workload's last append was sent (once
//! everything sent before has been acknowledged) is left out: nothing could be acknowledged then.
//! With `stall_bound_ms` set, a stall past it is an anomaly; without it the figures are only
//! reported.

use serde_json::{Value, json};

use super::{Anomalies, CheckConfig, Facts, FaultWindow, PropertyResult, ms, quantile};

pub(crate) const ID: u8 = 16;
pub(crate) const NAME: &str = "quiet-node-stall";

/// How long after a heal the window still runs: the node coming back can stall writes again
/// (it rejoins, a group it led may elect again), and that belongs to this fault.
pub(crate) const SETTLE_MS: u64 = 5_000;
const MS: u64 = 1_000_000;

/// Kinds that can silence one node. Others are left out even on one node: `lossy`, `delay` and
/// `clock` leave it talking, while `power-cut`, `corrupt` and `membership` also change what the
/// node holds, so their stalls measure the recovery of its data as well.
const SILENCING: &[&str] = &["kill", "pause", "partition", "partition-leader"];

fn silences_one_node(f: &FaultWindow) -> bool {
    SILENCING.contains(&f.kind.as_str()) && f.nodes.len() == 1
}

/// An acknowledged append's completion: its time and history line.
#[derive(Debug, Clone, Copy)]
struct Ack {
    time: u64,
    index: Option<u64>,
}

/// The longest stretch of `[start, end]` without an ack, with the acks bounding it.
#[derive(Debug, Clone, Copy)]
struct Stall {
    from: u64,
    to: u64,
    after: Option<Ack>,
    before: Option<Ack>,
}

impl Stall {
    fn len(&self) -> u64 {
        self.to.saturating_sub(self.from)
    }
}

/// `acks` sorted by time.
fn longest_stall(acks: &[Ack], start: u64, end: u64) -> Stall {
    let first = acks.partition_point(|a| a.time < start);
    let last = acks.partition_point(|a| a.time <= end);
    let inside = acks.get(first..last).unwrap_or_default();
    let mut best = Stall {
        from: start,
        to: start,
        after: None,
        before: None,
    };
    let mut prev = (start, None);
    let edges = inside
        .iter()
        .map(|a| (a.time, Some(*a)))
        .chain(std::iter::once((end, None)));
    for (t, ack) in edges {
        if t.saturating_sub(prev.0) > best.len() {
            best = Stall {
                from: prev.0,
                to: t,
                after: prev.1,
                before: ack,
            };
        }
        prev = (t, ack);
    }
    best
}

pub(crate) fn check(facts: &Facts, config: &CheckConfig) -> PropertyResult {
    let mut anomalies = Anomalies::new(ID, NAME);
    let Some(first_invoke) = facts.calls.iter().map(|c| c.invoke_time).min() else {
        return PropertyResult::not_checked(ID, NAME, "the history has no appends");
    };
    let last_invoke = facts
        .calls
        .iter()
        .map(|c| c.invoke_time)
        .max()
        .unwrap_or(first_invoke);
    let quiet: Vec<&FaultWindow> = facts
        .faults
        .iter()
        .filter(|f| silences_one_node(f))
        .collect();
    if quiet.is_empty() {
        return PropertyResult::not_checked(ID, NAME, "no fault silenced exactly one node");
    }
    let mut acks: Vec<Ack> = facts
        .calls
        .iter()
        .filter(|c| c.acked > 0)
        .filter_map(|c| {
            c.complete_time.map(|time| Ack {
                time,
                index: c.complete_index,
            })
        })
        .collect();
    acks.sort_by_key(|a| a.time);

    let bound = config.stall_bound_ms.map(|b| b.saturating_mul(MS));
    let mut entries = Vec::new();
    let mut stalls = Vec::new();
    for f in quiet {
        let healed = f.end.unwrap_or(facts.end_time).max(f.start);
        // Reshards run alongside the faults on a schedule of their own: cutting at them would
        // take most margins away, so only the next fault that took its turn ends the window.
        let next = facts
            .faults
            .iter()
            .filter(|g| g.id != f.id && g.kind != "reshard" && g.start >= healed)
            .map(|g| g.start)
            .min();
        let mut end = healed.saturating_add(SETTLE_MS * MS);
        if let Some(next) = next {
            end = end.min(next);
        }
        let last_ack = acks
            .iter()
            .rev()
            .map(|a| a.time)
            .find(|t| *t <= end)
            .unwrap_or(0);
        end = end.min(last_invoke.max(last_ack));
        let start = f.start.max(first_invoke);
        let mut entry = json!({
            "id": f.id, "kind": f.kind, "nodes": f.nodes,
            "window_start_ms": ms(f.start), "window_end_ms": ms(end.max(f.start)),
            "longest_stall_ms": Value::Null,
        });
        if f.error.is_some() {
            entry["error"] = json!(f.error);
        }
        if start >= end {
            entry["note"] = json!("no append was sent during the window");
            entries.push(entry);
            continue;
        }
        let stall = longest_stall(&acks, start, end);
        entry["longest_stall_ms"] = json!(ms(stall.len()));
        entry["stall_from_ms"] = json!(ms(stall.from));
        entry["stall_to_ms"] = json!(ms(stall.to));
        stalls.push(stall.len());
        if let Some(b) = bound
            && stall.len() > b
        {
            let mut ops = vec![f.start_index];
            ops.extend(f.end_index);
            ops.extend(stall.after.and_then(|a| a.index));
            ops.extend(stall.before.and_then(|a| a.index));
            ops.sort_unstable();
            ops.dedup();
            anomalies.push(
                "stall",
                format!(
                    "no append was acknowledged for {:.1} s (from {:.1} s to {:.1} s) around {} of node {:?} (fault {}); bound {} ms",
                    stall.len() as f64 / 1e9,
                    stall.from as f64 / 1e9,
                    stall.to as f64 / 1e9,
                    f.kind,
                    f.nodes,
                    f.id,
                    config.stall_bound_ms.unwrap_or_default()
                ),
                ops,
                json!({"fault": f.id, "kind": f.kind, "nodes": f.nodes}),
            );
        }
        entries.push(entry);
    }
    stalls.sort_unstable();
    let stats = json!({
        "bound_ms": config.stall_bound_ms,
        "settle_ms": SETTLE_MS,
        "faults": entries,
        "count": stalls.len(),
        "max_ms": stalls.last().copied().map(ms),
        "median_ms": quantile(&stalls, 0.5).map(ms),
    });
    if stalls.is_empty() {
        let mut result =
            PropertyResult::not_checked(ID, NAME, "no append was sent during any quiet-node fault");
        result.stats = stats;
        return result;
    }
    let mut result = anomalies.finish(stats);
    if config.stall_bound_ms.is_none() {
        result.reason = Some("no bound set, figures only; --stall-bound-ms sets one".into());
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::Verdict;
    use crate::checkers::fixture::H;

    /// One acknowledged append completing every `every` ms in `from..=to`, each sent 10 ms
    /// before.
    fn acks(h: &mut H, from: u64, to: u64, every: u64) {
        for t in (from..=to).step_by(every as usize) {
            let value = format!("v{t}");
            h.append_ok(
                "w0",
                t.saturating_sub(10),
                t,
                &[(&value, "s0", u128::from(t))],
            );
        }
    }

    fn bound(ms: u64) -> CheckConfig {
        CheckConfig {
            stall_bound_ms: Some(ms),
            ..CheckConfig::default()
        }
    }

    /// Acks every 200 ms except from 1 000 to 4 000 ms, while node 2 is killed (1 000-3 500 ms);
    /// and the line of the fault's start.
    fn kill_with_a_three_second_gap() -> (H, u64) {
        let mut h = H::default();
        acks(&mut h, 0, 1_000, 200);
        let fault_start = h.ops.len() as u64;
        h.fault(1, "kill", &[2], 1_000, 3_500);
        acks(&mut h, 4_000, 12_000, 200);
        (h, fault_start)
    }

    #[test]
    fn a_kill_with_a_three_second_gap_fails_a_1500_ms_bound() {
        let (h, fault_start) = kill_with_a_three_second_gap();
        let r = check(&h.facts(), &bound(1_500));
        assert_eq!(r.verdict, Verdict::Invalid, "{r:?}");
        assert_eq!(r.anomaly_count, 1);
        let a = &r.anomalies[0];
        assert_eq!(a.kind, "stall");
        assert_eq!(a.detail["fault"], 1);
        // The fault's lines and the acks either side of the gap.
        assert!(a.ops.contains(&fault_start), "{:?}", a.ops);
        assert_eq!(a.ops.len(), 4, "{:?}", a.ops);
        let f = &r.stats["faults"][0];
        assert_eq!(f["id"], 1);
        assert_eq!(f["kind"], "kill");
        assert_eq!(f["nodes"], json!([2]));
        assert_eq!(f["longest_stall_ms"], 3000.0);
        assert_eq!(f["window_end_ms"], 8500.0);
        assert_eq!(r.stats["count"], 1);
        assert_eq!(r.stats["max_ms"], 3000.0);
        assert_eq!(r.stats["median_ms"], 3000.0);
    }

    #[test]
    fn a_pause_with_only_200_ms_gaps_passes() {
        let mut h = H::default();
        acks(&mut h, 0, 12_000, 200);
        h.fault(1, "pause", &[3], 1_100, 3_100);
        let r = check(&h.facts(), &bound(1_500));
        assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
        assert_eq!(r.reason, None);
        assert_eq!(r.stats["faults"][0]["longest_stall_ms"], 200.0);
        assert_eq!(r.stats["bound_ms"], 1500);
    }

    #[test]
    fn a_two_node_partition_is_ignored() {
        let mut h = H::default();
        acks(&mut h, 0, 1_000, 200);
        h.fault(1, "partition", &[1, 2], 1_000, 3_500);
        acks(&mut h, 4_000, 12_000, 200);
        let r = check(&h.facts(), &bound(1_500));
        assert_eq!(r.verdict, Verdict::NotChecked, "{r:?}");
        assert_eq!(r.anomaly_count, 0);

        // Beside a one-node fault, only that one is measured.
        h.fault(2, "partition", &[3], 6_000, 7_000);
        let r = check(&h.facts(), &bound(1_500));
        assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
        assert_eq!(r.stats["faults"].as_array().map(Vec::len), Some(1));
        assert_eq!(r.stats["faults"][0]["id"], 2);
    }

    #[test]
    fn faults_that_leave_the_node_talking_are_ignored() {
        let mut h = H::default();
        acks(&mut h, 0, 1_000, 200);
        h.fault(1, "lossy", &[1], 1_000, 1_500);
        h.fault(2, "clock", &[1], 1_600, 2_000);
        h.fault(3, "power-cut", &[2], 2_100, 2_500);
        h.fault(4, "delay", &[3], 2_600, 3_000);
        h.fault(5, "crash", &[3], 3_100, 3_200);
        acks(&mut h, 4_000, 12_000, 200);
        let r = check(&h.facts(), &bound(1_500));
        assert_eq!(r.verdict, Verdict::NotChecked, "{r:?}");
    }

    #[test]
    fn no_bound_set_never_fails() {
        let (h, _) = kill_with_a_three_second_gap();
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
        assert_eq!(r.anomaly_count, 0);
        assert!(r.reason.as_deref().unwrap_or("").contains("no bound set"));
        assert_eq!(r.stats["faults"][0]["longest_stall_ms"], 3000.0);
        assert_eq!(r.stats["bound_ms"], Value::Null);
    }

    #[test]
    fn the_gap_from_the_window_start_to_the_first_ack_counts() {
        let mut h = H::default();
        acks(&mut h, 0, 900, 100);
        h.fault(1, "partition-leader", &[1], 1_000, 2_000);
        acks(&mut h, 3_500, 12_000, 100);
        let r = check(&h.facts(), &bound(1_500));
        assert_eq!(r.verdict, Verdict::Invalid, "{r:?}");
        let f = &r.stats["faults"][0];
        assert_eq!(f["longest_stall_ms"], 2500.0);
        assert_eq!(f["stall_from_ms"], 1000.0);
    }

    #[test]
    fn the_margin_stops_at_the_next_fault() {
        let mut h = H::default();
        acks(&mut h, 0, 2_500, 100);
        h.fault(1, "kill", &[1], 1_000, 2_000);
        h.fault(2, "partition", &[1, 2], 3_000, 4_000);
        acks(&mut h, 5_000, 12_000, 100);
        let r = check(&h.facts(), &bound(1_500));
        assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
        let f = &r.stats["faults"][0];
        assert_eq!(f["window_end_ms"], 3000.0);
        assert_eq!(f["longest_stall_ms"], 500.0);
    }

    #[test]
    fn a_reshard_does_not_cut_the_margin() {
        let mut h = H::default();
        acks(&mut h, 0, 2_500, 100);
        h.fault(1, "kill", &[1], 1_000, 2_000);
        h.fault(2, "reshard", &[], 2_200, 3_000);
        acks(&mut h, 5_000, 12_000, 100);
        let r = check(&h.facts(), &bound(1_500));
        assert_eq!(r.verdict, Verdict::Invalid, "{r:?}");
        assert_eq!(r.stats["faults"][0]["longest_stall_ms"], 2500.0);
    }

    #[test]
    fn time_after_the_workload_ended_is_not_a_stall() {
        let mut h = H::default();
        acks(&mut h, 0, 2_300, 100);
        h.fault(1, "pause", &[2], 1_000, 2_000);
        h.drain(1, "s0", 20_000, &[]);
        let r = check(&h.facts(), &bound(1_500));
        assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
        let f = &r.stats["faults"][0];
        assert_eq!(f["window_end_ms"], 2300.0);
        assert_eq!(f["longest_stall_ms"], 100.0);
    }

    #[test]
    fn a_fault_after_the_workload_is_listed_without_a_figure() {
        let mut h = H::default();
        acks(&mut h, 0, 1_000, 100);
        h.fault(1, "kill", &[2], 2_000, 3_000);
        let r = check(&h.facts(), &bound(1_500));
        assert_eq!(r.verdict, Verdict::NotChecked, "{r:?}");
        assert_eq!(r.stats["faults"][0]["longest_stall_ms"], Value::Null);
        assert_eq!(r.stats["count"], 0);
    }
}
