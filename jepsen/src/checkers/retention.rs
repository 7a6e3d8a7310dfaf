//! Property 14, retention: trimmed records never reappear; unexpired ones are never trimmed.
//!
//! Judged on the retention phase (`--retention`, after the final drain; `workload/retention.rs`):
//! set A is appended, every node's wall clock jumps 12 h ahead, set B is appended, the clocks jump
//! to 25 h ahead (A is now past the 24 h retention, B about 13 h old), set C is appended, then
//! every shard is read from TRIM_HORIZON through every node until the trim shows, one node is
//! killed and restarted, and everything is read again. Expired are the values of A and every
//! value of the final drains (the workload's records, older still); unexpired are B and C.
//!
//! Anomalies:
//! - `unexpired-trimmed`: a complete read of a shard, sent after a B or C record was acknowledged
//!   in that shard, does not return it at its sequence number (or the shard is gone);
//! - `trimmed-reappeared`: once a complete read of a shard (through any node) returned no expired
//!   value, or the shard was gone, a read sent later returns one;
//! - `retention-not-enforced`: the last read of a shard through a node, sent at least
//!   [`GRACE_MS`] after the clocks passed retention, still returns expired values.
//!
//! Not checked when the run had no retention phase, or the phase could not move the clocks past
//! retention on every node (and no anomaly was found), or nothing was read after the jump.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Value, json};

use super::{
    Anomalies, CheckConfig, Facts, Malformed, PropertyResult, Seen, Seq, Verdict, ms, quantile,
};
use crate::history::{F, Op, OpType, Outcome};

pub(crate) const ID: u8 = 14;
pub(crate) const NAME: &str = "retention";

/// Kinesis's minimum retention, which the test stream keeps.
pub const RETENTION_S: i64 = 24 * 3600;
/// How far past retention the last jump must put every clock for set A (and the workload) to be
/// expired: an hour, far more than the phase lasts.
pub const EXPIRY_MARGIN_S: i64 = 3600;
/// How long after the clocks passed retention the server has to trim before an expired record
/// still readable is an anomaly: streamd's shard leaders propose a trim every 60 s, plus time to
/// commit it.
pub const GRACE_MS: u64 = 75_000;

/// One record of a retention-phase append.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionAppend {
    /// `A`, `B` or `C`.
    pub set: String,
    pub value: String,
    pub outcome: Outcome,
    pub shard: Option<String>,
    pub seq: Option<Seq>,
    pub invoke_time: u64,
    pub complete_time: Option<u64>,
    pub ops: Vec<u64>,
}

/// One node's clock set ahead.
#[derive(Debug, Clone, PartialEq)]
pub struct Jump {
    pub node: u64,
    pub offset_s: i64,
    pub ok: bool,
    pub error: Option<String>,
    /// When it was confirmed (or failed).
    pub time: u64,
    pub ops: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReadResult {
    /// The shard from TRIM_HORIZON to its end or tip.
    Records(Vec<Seen>),
    /// ResourceNotFound: the shard no longer exists.
    Gone(String),
    /// Any other error: says nothing.
    Failed(String),
}

/// One read of a shard through one node.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionRead {
    pub node: u64,
    pub shard: String,
    /// Taken after the restart.
    pub after_restart: bool,
    pub invoke_time: u64,
    pub time: u64,
    /// The completion line.
    pub index: u64,
    pub result: ReadResult,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Restart {
    pub node: u64,
    pub ok: bool,
    pub error: Option<String>,
    pub kill_time: u64,
    pub ready_time: Option<u64>,
    pub ops: Vec<u64>,
}

/// The retention phase's lines, digested.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetentionFacts {
    /// The line that started the phase.
    pub started: Option<u64>,
    /// Why the phase was not run, and the line that says so.
    pub skipped: Option<(u64, String)>,
    pub appends: Vec<RetentionAppend>,
    pub jumps: Vec<Jump>,
    pub reads: Vec<RetentionRead>,
    pub restarts: Vec<Restart>,
}

impl RetentionFacts {
    /// Pairs the phase's invokes with their completions (op ids).
    pub fn from_ops(ops: &[&Op], malformed: &mut Vec<Malformed>) -> RetentionFacts {
        let mut facts = RetentionFacts::default();
        let mut invokes: BTreeMap<u64, &Op> = BTreeMap::new();
        let mut completions: HashMap<u64, &Op> = HashMap::new();
        for op in ops {
            match (op.f, op.ty) {
                (F::Retention, _) => match &op.error {
                    Some(why) => facts.skipped = Some((op.index, why.clone())),
                    None => facts.started = Some(op.index),
                },
                (_, OpType::Invoke) => {
                    if invokes.insert(op.op, op).is_some() {
                        malformed.push(Malformed {
                            index: op.index,
                            message: format!("op id {} is invoked twice", op.op),
                        });
                    }
                }
                _ => {
                    if completions.insert(op.op, op).is_some() {
                        malformed.push(Malformed {
                            index: op.index,
                            message: format!("op id {} completes twice", op.op),
                        });
                    }
                }
            }
        }
        for (id, invoke) in invokes {
            let done = completions.remove(&id);
            let mut lines = vec![invoke.index];
            lines.extend(done.map(|d| d.index));
            match invoke.f {
                F::RetentionAppend => facts.add_append(invoke, done, &lines, malformed),
                F::RetentionClock => facts.jumps.push(Jump {
                    node: invoke.node.unwrap_or(0),
                    offset_s: invoke.offset_s.unwrap_or(0),
                    ok: done.is_some_and(|d| d.ty == OpType::Ok),
                    error: done
                        .and_then(|d| d.error.clone())
                        .or_else(|| done.is_none().then(|| "never completed".to_string())),
                    time: done.map_or(invoke.time, |d| d.time),
                    ops: lines,
                }),
                F::RetentionRead => {
                    let Some(done) = done else { continue };
                    let result = match (done.ty, &done.error) {
                        (OpType::Ok, _) => ReadResult::Records(
                            done.records
                                .iter()
                                .filter_map(|r| {
                                    let seq = Seq::parse(&r.0);
                                    if seq.is_none() {
                                        malformed.push(Malformed {
                                            index: done.index,
                                            message: format!(
                                                "sequence number {:?} read is not a decimal",
                                                r.0
                                            ),
                                        });
                                    }
                                    Some(Seen {
                                        seq: seq?,
                                        value: r.1.clone(),
                                        time: done.time,
                                        index: done.index,
                                    })
                                })
                                .collect(),
                        ),
                        (_, Some(e)) if e.starts_with("ResourceNotFound") => {
                            ReadResult::Gone(e.clone())
                        }
                        (_, e) => ReadResult::Failed(e.clone().unwrap_or_default()),
                    };
                    facts.reads.push(RetentionRead {
                        node: invoke.node.unwrap_or(0),
                        shard: invoke.shard.clone().unwrap_or_default(),
                        after_restart: invoke.process.starts_with("retention-final"),
                        invoke_time: invoke.time,
                        time: done.time,
                        index: done.index,
                        result,
                    });
                }
                F::RetentionRestart => facts.restarts.push(Restart {
                    node: invoke.node.unwrap_or(0),
                    ok: done.is_some_and(|d| d.ty == OpType::Ok),
                    error: done.and_then(|d| d.error.clone()),
                    kill_time: invoke.time,
                    ready_time: done.filter(|d| d.ty == OpType::Ok).map(|d| d.time),
                    ops: lines,
                }),
                _ => {}
            }
        }
        for (id, done) in completions {
            malformed.push(Malformed {
                index: done.index,
                message: format!("op id {id} completes without an invoke"),
            });
        }
        facts.reads.sort_by_key(|r| (r.invoke_time, r.index));
        facts
    }

    fn add_append(
        &mut self,
        invoke: &Op,
        done: Option<&Op>,
        lines: &[u64],
        malformed: &mut Vec<Malformed>,
    ) {
        let set = invoke
            .process
            .strip_prefix("retention-")
            .unwrap_or(&invoke.process)
            .to_string();
        for put in &invoke.values {
            let result = done.and_then(|d| d.results.iter().find(|r| r.value == put.value));
            let outcome = match (done, result) {
                (Some(_), Some(r)) => r.outcome,
                (Some(d), None) if d.ty == OpType::Fail => Outcome::Fail,
                _ => Outcome::Info,
            };
            let seq = result.and_then(|r| r.seq.as_deref()).and_then(Seq::parse);
            let shard = result.and_then(|r| r.shard.clone());
            if outcome == Outcome::Ok && (seq.is_none() || shard.is_none()) {
                malformed.push(Malformed {
                    index: done.map_or(invoke.index, |d| d.index),
                    message: format!("{} is ok without a shard and sequence number", put.value),
                });
            }
            self.appends.push(RetentionAppend {
                set: set.clone(),
                value: put.value.clone(),
                outcome,
                shard,
                seq,
                invoke_time: invoke.time,
                complete_time: done.map(|d| d.time),
                ops: lines.to_vec(),
            });
        }
    }

    /// When every node's clock was confirmed past retention (by [`EXPIRY_MARGIN_S`]) for good:
    /// the latest confirmation of the largest offset, if every node in `nodes` has one.
    pub fn expired_from(&self, nodes: &[u64]) -> Result<u64, String> {
        let Some(top) = self.jumps.iter().map(|j| j.offset_s).max() else {
            return Err("no clock jump is in the history".into());
        };
        if top < RETENTION_S + EXPIRY_MARGIN_S {
            return Err(format!(
                "the clocks went only {top:+} s ahead, not past retention ({RETENTION_S} s) by {EXPIRY_MARGIN_S} s"
            ));
        }
        let mut latest = 0;
        for node in nodes {
            let jump = self
                .jumps
                .iter()
                .find(|j| j.node == *node && j.offset_s == top);
            match jump {
                Some(j) if j.ok => latest = latest.max(j.time),
                Some(j) => {
                    return Err(format!(
                        "node {node}'s clock did not jump {top:+} s: {}",
                        j.error.as_deref().unwrap_or("unknown")
                    ));
                }
                None => return Err(format!("node {node}'s clock never jumped {top:+} s")),
            }
        }
        Ok(latest)
    }
}

pub(crate) fn check(facts: &Facts, _config: &CheckConfig) -> PropertyResult {
    let r = &facts.retention;
    if let Some((_, why)) = &r.skipped {
        return PropertyResult::not_checked(
            ID,
            NAME,
            format!("the retention phase was not run: {why}"),
        );
    }
    if r.started.is_none() {
        return PropertyResult::not_checked(
            ID,
            NAME,
            "no retention phase (--retention): runs are far shorter than the minimum retention \
             (24 h), so nothing is trimmed without moving the clocks",
        );
    }
    let mut anomalies = Anomalies::new(ID, NAME);

    // Expired values: set A whatever its outcome, and everything the final drains read (the
    // workload's records, written before A). Unexpired: B and C acknowledged.
    let mut expired: HashMap<&str, &'static str> = HashMap::new();
    for v in facts.views.iter().filter(|v| v.is_drain()) {
        for s in &v.records {
            expired.insert(s.value.as_str(), "workload");
        }
    }
    for a in r.appends.iter().filter(|a| a.set == "A") {
        expired.insert(a.value.as_str(), "A");
    }
    // Shards said to hold expired records: where A was acknowledged, or drained from.
    let mut holds_expired: BTreeMap<&str, usize> = BTreeMap::new();
    for a in r.appends.iter().filter(|a| a.set == "A") {
        if let (Outcome::Ok, Some(s)) = (a.outcome, &a.shard) {
            *holds_expired.entry(s.as_str()).or_default() += 1;
        }
    }
    for v in facts
        .views
        .iter()
        .filter(|v| v.is_drain() && !v.records.is_empty())
    {
        let n = holds_expired.entry(v.shard.as_str()).or_default();
        *n = (*n).max(v.records.len());
    }
    let unexpired: Vec<&RetentionAppend> = r
        .appends
        .iter()
        .filter(|a| a.set != "A" && a.outcome == Outcome::Ok)
        .filter(|a| a.shard.is_some() && a.seq.is_some())
        .collect();
    let mut unexpired_by_shard: BTreeMap<&str, Vec<&RetentionAppend>> = BTreeMap::new();
    for a in &unexpired {
        if let Some(s) = &a.shard {
            unexpired_by_shard.entry(s.as_str()).or_default().push(a);
        }
    }

    // (a) unexpired-trimmed.
    for read in &r.reads {
        let owed: Vec<&&RetentionAppend> = unexpired_by_shard
            .get(read.shard.as_str())
            .into_iter()
            .flatten()
            .filter(|a| a.complete_time.is_some_and(|t| t < read.invoke_time))
            .collect();
        if owed.is_empty() {
            continue;
        }
        let missing: Vec<&&RetentionAppend> = match &read.result {
            ReadResult::Failed(_) => continue,
            ReadResult::Gone(_) => owed,
            ReadResult::Records(records) => {
                let have: BTreeSet<(&Seq, &str)> =
                    records.iter().map(|s| (&s.seq, s.value.as_str())).collect();
                owed.into_iter()
                    .filter(|a| {
                        a.seq
                            .as_ref()
                            .is_some_and(|q| !have.contains(&(q, a.value.as_str())))
                    })
                    .collect()
            }
        };
        if missing.is_empty() {
            continue;
        }
        let mut ops = vec![read.index];
        for a in missing.iter().take(5) {
            ops.extend(a.ops.iter().copied());
        }
        let how = match &read.result {
            ReadResult::Gone(e) => format!("the shard is gone ({e})"),
            _ => "the read does not return them".to_string(),
        };
        anomalies.push(
            "unexpired-trimmed",
            format!(
                "{} acknowledged unexpired record(s) of {} missing from a complete read through node {}: {how}",
                missing.len(),
                read.shard,
                read.node
            ),
            ops,
            json!({
                "shard": read.shard, "node": read.node,
                "missing": missing.iter().take(10).map(|a| json!({
                    "value": a.value, "set": a.set,
                    "seq": a.seq.as_ref().map(ToString::to_string),
                })).collect::<Vec<_>>(),
            }),
        );
    }

    // (b) trimmed-reappeared, and when each shard was first seen trimmed.
    let expired_in = |read: &RetentionRead| -> Vec<(String, &'static str)> {
        match &read.result {
            ReadResult::Records(records) => records
                .iter()
                .filter_map(|s| {
                    expired
                        .get(s.value.as_str())
                        .map(|src| (s.value.clone(), *src))
                })
                .collect(),
            _ => Vec::new(),
        }
    };
    let mut by_shard: BTreeMap<&str, Vec<&RetentionRead>> = BTreeMap::new();
    for read in &r.reads {
        by_shard.entry(read.shard.as_str()).or_default().push(read);
    }
    let mut trimmed_at: BTreeMap<&str, &RetentionRead> = BTreeMap::new();
    for (shard, reads) in &by_shard {
        let first_trimmed = reads
            .iter()
            .filter(|read| match read.result {
                ReadResult::Records(_) => expired_in(read).is_empty(),
                ReadResult::Gone(_) => true,
                ReadResult::Failed(_) => false,
            })
            .min_by_key(|read| read.time);
        let Some(first) = first_trimmed else { continue };
        trimmed_at.insert(shard, first);
        for later in reads.iter().filter(|read| read.invoke_time > first.time) {
            let back = expired_in(later);
            if back.is_empty() {
                continue;
            }
            anomalies.push(
                "trimmed-reappeared",
                format!(
                    "{} expired record(s) of {shard} read through node {} after a read through node {} showed them trimmed{}",
                    back.len(),
                    later.node,
                    first.node,
                    if later.after_restart { " (after the restart)" } else { "" }
                ),
                vec![first.index, later.index],
                json!({
                    "shard": shard, "node": later.node, "trimmed_by_node": first.node,
                    "after_restart": later.after_restart,
                    "values": back.iter().take(10).map(|(v, src)| json!({"value": v, "from": src})).collect::<Vec<_>>(),
                }),
            );
        }
    }

    // (c) retention-not-enforced, on the last read of each shard through each node.
    let nodes: Vec<u64> = match &facts.setup {
        Some(s) => s.nodes.clone(),
        None => r
            .jumps
            .iter()
            .map(|j| j.node)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
    };
    let expired_from = r.expired_from(&nodes);
    let mut unjudged: Vec<String> = Vec::new();
    let mut last: BTreeMap<(u64, &str), &RetentionRead> = BTreeMap::new();
    for read in &r.reads {
        if !matches!(read.result, ReadResult::Failed(_)) {
            last.insert((read.node, read.shard.as_str()), read);
        }
    }
    match &expired_from {
        Ok(from) => {
            for ((node, shard), read) in &last {
                let left = expired_in(read);
                if left.is_empty() {
                    continue;
                }
                if read.invoke_time < from + GRACE_MS * 1_000_000 {
                    unjudged.push(format!(
                        "{shard} through node {node}: last read {:.1} s after the clocks passed retention, within the {} s grace",
                        (read.invoke_time.saturating_sub(*from)) as f64 / 1e9,
                        GRACE_MS / 1000
                    ));
                    continue;
                }
                anomalies.push(
                    "retention-not-enforced",
                    format!(
                        "{} expired record(s) of {shard} still readable through node {node} {:.1} s after every clock passed retention",
                        left.len(),
                        (read.invoke_time - from) as f64 / 1e9
                    ),
                    vec![read.index],
                    json!({
                        "shard": shard, "node": node,
                        "values": left.iter().take(10).map(|(v, src)| json!({"value": v, "from": src})).collect::<Vec<_>>(),
                    }),
                );
            }
        }
        Err(why) => unjudged.push(format!("not judged whether trimming happened: {why}")),
    }

    // Stats.
    let mut sets: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for a in &r.appends {
        let e = sets.entry(a.set.as_str()).or_default();
        e.0 += 1;
        if a.outcome == Outcome::Ok {
            e.1 += 1;
        }
    }
    let mut shards = BTreeMap::new();
    let mut trimmed_after = Vec::new();
    let mut never_trimmed = Vec::new();
    for (shard, n) in &holds_expired {
        let t = trimmed_at.get(shard);
        let after = match (t, &expired_from) {
            (Some(read), Ok(from)) => Some(read.time.saturating_sub(*from)),
            _ => None,
        };
        match (t, after) {
            (Some(_), Some(a)) => trimmed_after.push(a),
            (None, _) => never_trimmed.push(*shard),
            _ => {}
        }
        shards.insert(
            *shard,
            json!({
                "expired_records": n,
                "unexpired_acked": unexpired_by_shard.get(shard).map_or(0, Vec::len),
                "trimmed_seen_through_node": t.map(|r| r.node),
                "gone": t.is_some_and(|r| matches!(r.result, ReadResult::Gone(_))),
                "trimmed_after_ms": after.map(ms),
            }),
        );
    }
    trimmed_after.sort_unstable();
    let reads_ok = r
        .reads
        .iter()
        .filter(|x| matches!(x.result, ReadResult::Records(_)))
        .count();
    let reads_gone = r
        .reads
        .iter()
        .filter(|x| matches!(x.result, ReadResult::Gone(_)))
        .count();
    let mut by_source: BTreeMap<&str, usize> = BTreeMap::new();
    for src in expired.values() {
        *by_source.entry(src).or_default() += 1;
    }
    let mut jumps: BTreeMap<i64, Vec<Value>> = BTreeMap::new();
    for j in &r.jumps {
        jumps.entry(j.offset_s).or_default().push(json!({
            "node": j.node, "ok": j.ok, "at_ms": ms(j.time), "error": j.error,
        }));
    }
    let stats = json!({
        "sets": sets.iter().map(|(k, (sent, acked))| (k.to_string(), json!({"sent": sent, "acked": acked}))).collect::<serde_json::Map<_, _>>(),
        "expired_values": by_source,
        "jumps": jumps.iter().map(|(k, v)| (format!("{k:+}"), json!(v))).collect::<serde_json::Map<_, _>>(),
        "expired_from_ms": expired_from.as_ref().ok().map(|t| ms(*t)),
        "reads": {
            "total": r.reads.len(),
            "after_restart": r.reads.iter().filter(|x| x.after_restart).count(),
            "complete": reads_ok,
            "shard_gone": reads_gone,
            "failed": r.reads.len() - reads_ok - reads_gone,
        },
        "trimmed_after_ms": {
            "max": (never_trimmed.is_empty()).then(|| trimmed_after.last().copied().map(ms)).flatten(),
            "p50": quantile(&trimmed_after, 0.5).map(ms),
            "never": never_trimmed,
        },
        "restarts": r.restarts.iter().map(|x| json!({
            "node": x.node, "ok": x.ok, "error": x.error,
            "ready_after_ms": x.ready_time.map(|t| ms(t.saturating_sub(x.kill_time))),
        })).collect::<Vec<_>>(),
        "shards": shards,
        "unjudged": unjudged,
    });
    if anomalies.count() > 0 {
        return anomalies.finish(stats);
    }
    let reason = match &expired_from {
        Err(why) => Some(format!(
            "the retention phase could not move the clocks past retention: {why}"
        )),
        Ok(from) if !r.reads.iter().any(|x| x.invoke_time > *from) => {
            Some("nothing was read after the clocks passed retention".to_string())
        }
        Ok(_) if reads_ok == 0 => Some("every read of the retention phase failed".to_string()),
        Ok(_) if !unjudged.is_empty() => Some(format!(
            "whether expired records were trimmed could not be judged for {} shard and node pair(s), e.g. {}",
            unjudged.len(),
            unjudged[0]
        )),
        Ok(_) => None,
    };
    let mut result = anomalies.finish(stats);
    if let Some(why) = reason {
        result.verdict = Verdict::NotChecked;
        result.reason = Some(why);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::fixture::H;

    const H12: i64 = 12 * 3600;
    const H25: i64 = 25 * 3600;

    /// A drained workload record, then A, the first jump, B, the second jump, C on two shards:
    /// a0 (s0/10), a1 (s1/10), b0 (s0/20), c0 (s1/30). Reads come after 1 000 ms.
    fn phase() -> H {
        let mut h = H::default();
        h.append_ok("w0", 0, 5, &[("w0-0", "s0", 1)]);
        h.drain(1, "s0", 10, &[(1, "w0-0")]);
        h.drain(2, "s0", 10, &[(1, "w0-0")]);
        h.drain(1, "s1", 10, &[]);
        h.drain(2, "s1", 10, &[]);
        h.retention_start(20);
        h.retention_append("A", 30, 40, &[("rA-0", "s0", 10), ("rA-1", "s1", 10)]);
        h.retention_jump(&[1, 2], H12, 50, 60);
        h.retention_append("B", 70, 80, &[("rB-0", "s0", 20)]);
        h.retention_jump(&[1, 2], H25, 90, 100);
        h.retention_append("C", 110, 120, &[("rC-0", "s1", 30)]);
        h
    }

    fn kinds(r: &PropertyResult) -> Vec<&'static str> {
        r.anomalies.iter().map(|a| a.kind).collect()
    }

    /// Every node and shard read at `at_ms`: s0 with `s0`, s1 with `s1`.
    fn round(h: &mut H, at_ms: u64, after_restart: bool, s0: &[(u128, &str)], s1: &[(u128, &str)]) {
        for node in [1, 2] {
            h.retention_read(node, "s0", at_ms, after_restart, Ok(s0));
            h.retention_read(node, "s1", at_ms + 1, after_restart, Ok(s1));
        }
    }

    const S0_ALL: &[(u128, &str)] = &[(1, "w0-0"), (10, "rA-0"), (20, "rB-0")];
    const S1_ALL: &[(u128, &str)] = &[(10, "rA-1"), (30, "rC-0")];
    const S0_TRIMMED: &[(u128, &str)] = &[(20, "rB-0")];
    const S1_TRIMMED: &[(u128, &str)] = &[(30, "rC-0")];

    #[test]
    fn a_healthy_phase_is_valid_and_reports_when_the_trim_showed() {
        let mut h = phase();
        round(&mut h, 1_000, false, S0_ALL, S1_ALL);
        round(&mut h, 30_000, false, S0_TRIMMED, S1_TRIMMED);
        h.retention_restart(2, 31_000, 34_000, true);
        round(&mut h, 90_000, true, S0_TRIMMED, S1_TRIMMED);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
        assert_eq!(r.stats["sets"]["A"]["acked"], 2);
        assert_eq!(r.stats["sets"]["C"]["sent"], 1);
        assert_eq!(r.stats["expired_values"]["workload"], 1);
        // The second jump was confirmed at 100 ms, the trim seen at 30 001 ms.
        assert_eq!(r.stats["trimmed_after_ms"]["max"], 29_901.0);
        assert_eq!(r.stats["reads"]["after_restart"], 4);
        assert_eq!(r.stats["restarts"][0]["ready_after_ms"], 3_000.0);
    }

    #[test]
    fn a_vanished_shard_counts_as_trimmed_not_lost() {
        let mut h = phase();
        h.drain(1, "s9", 10, &[(5, "w0-9")]);
        round(&mut h, 30_000, false, S0_TRIMMED, S1_TRIMMED);
        h.retention_read(1, "s9", 30_100, false, Err("ResourceNotFound: no shard s9"));
        h.retention_read(2, "s9", 90_100, true, Err("ResourceNotFound: no shard s9"));
        round(&mut h, 90_000, true, S0_TRIMMED, S1_TRIMMED);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
        assert_eq!(r.stats["shards"]["s9"]["gone"], true);
    }

    #[test]
    fn an_unexpired_record_missing_from_a_complete_read_is_reported() {
        let mut h = phase();
        round(&mut h, 30_000, false, S0_TRIMMED, S1_TRIMMED);
        // Node 2 trimmed C along with A.
        h.retention_read(2, "s1", 31_000, false, Ok(&[]));
        round(&mut h, 90_000, true, S0_TRIMMED, S1_TRIMMED);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(kinds(&r), vec!["unexpired-trimmed"]);
        assert_eq!(r.anomalies[0].detail["missing"][0]["value"], "rC-0");
    }

    #[test]
    fn an_open_shard_gone_with_unexpired_records_is_reported() {
        let mut h = phase();
        round(&mut h, 30_000, false, S0_TRIMMED, S1_TRIMMED);
        h.retention_read(1, "s0", 31_000, false, Err("ResourceNotFound: gone"));
        round(&mut h, 90_000, true, S0_TRIMMED, S1_TRIMMED);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(kinds(&r), vec!["unexpired-trimmed"]);
    }

    #[test]
    fn a_trimmed_record_coming_back_after_the_restart_is_reported() {
        let mut h = phase();
        round(&mut h, 30_000, false, S0_TRIMMED, S1_TRIMMED);
        h.retention_restart(2, 31_000, 34_000, true);
        // Node 2 replays its log and serves A again; node 1 does not.
        h.retention_read(1, "s0", 90_000, true, Ok(S0_TRIMMED));
        h.retention_read(1, "s1", 90_001, true, Ok(S1_TRIMMED));
        h.retention_read(2, "s0", 90_002, true, Ok(S0_TRIMMED));
        h.retention_read(2, "s1", 90_003, true, Ok(S1_ALL));
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(
            kinds(&r),
            vec!["trimmed-reappeared", "retention-not-enforced"]
        );
        assert_eq!(r.anomalies[0].detail["values"][0]["value"], "rA-1");
        assert_eq!(r.anomalies[0].detail["after_restart"], true);
    }

    #[test]
    fn a_workload_record_coming_back_is_reported_too() {
        let mut h = phase();
        round(&mut h, 30_000, false, S0_TRIMMED, S1_TRIMMED);
        h.retention_read(1, "s0", 40_000, false, Ok(&[(1, "w0-0"), (20, "rB-0")]));
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(kinds(&r), vec!["trimmed-reappeared"]);
        assert_eq!(r.anomalies[0].detail["values"][0]["from"], "workload");
    }

    #[test]
    fn expired_records_never_trimmed_are_reported_after_the_grace() {
        let mut h = phase();
        round(&mut h, 30_000, false, S0_ALL, S1_ALL);
        round(&mut h, 90_000, true, S0_ALL, S1_ALL);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(r.anomaly_count, 4, "{:?}", kinds(&r));
        assert!(kinds(&r).iter().all(|k| *k == "retention-not-enforced"));
        assert_eq!(r.stats["trimmed_after_ms"]["never"][0], "s0");

        // Read only within the grace: not judged, and not valid either.
        let mut h = phase();
        round(&mut h, 30_000, false, S0_ALL, S1_ALL);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::NotChecked);
        assert_eq!(r.stats["unjudged"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn without_the_phase_or_the_jump_it_is_not_checked() {
        let mut h = H::default();
        h.append_ok("w0", 0, 5, &[("a", "s0", 1)]);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::NotChecked);
        assert!(r.reason.unwrap().contains("--retention"));

        h.retention_skipped(10, "libfaketime is not installed");
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::NotChecked);
        assert!(r.reason.unwrap().contains("libfaketime"));

        let mut h = H::default();
        h.retention_start(20);
        h.retention_append("A", 30, 40, &[("rA-0", "s0", 10)]);
        h.retention_jump(&[1, 2], H12, 50, 60);
        h.retention_jump(&[1], H25, 70, 80);
        h.retention_jump_failed(2, H25, 70, "no answer in time");
        h.retention_read(1, "s0", 100_000, false, Ok(&[(10, "rA-0")]));
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::NotChecked, "{r:?}");
        assert!(r.reason.unwrap().contains("node 2"));
    }

    #[test]
    fn the_other_properties_ignore_the_phase() {
        let mut h = phase();
        round(&mut h, 30_000, false, S0_TRIMMED, S1_TRIMMED);
        let facts = h.facts();
        assert_eq!(facts.attempts.len(), 1);
        assert_eq!(facts.views.len(), 4);
        assert_eq!(facts.client_ops, 5);
        assert_eq!(facts.end_time, 10_000_000);
        for p in crate::checkers::run_all(&facts, &CheckConfig::default()) {
            assert_ne!(p.verdict, Verdict::Invalid, "{p:?}");
        }
    }
}
