//! The checker: reads a history (nothing else: not the server's code, not its logs) and judges
//! one property per module. [`Facts`] is the history digested once: appends with their
//! per-record attempts, every view of a shard (a reader's iterator chain, or one node's final
//! drain), and the fault windows. Each property module is a pure function of the facts.
//!
//! Placement rule: a new property is a new file here with `pub(crate) fn check(&Facts, &CheckConfig)
//! -> PropertyResult`, listed in [`run_all`], with unit tests on hand-built histories that show
//! it passing and failing.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use serde_json::{Value, json};

use crate::history::{F, Op, OpType, Outcome, Phase, Put, PutResult, Setup, ShardMap, StartAt};
pub use seq::Seq;

pub mod availability;
pub mod corruption;
pub mod freshness;
pub mod gapless_consumption;
pub mod lost_unsynced;
pub mod membership;
pub mod no_aborted_read;
pub mod no_duplicates;
pub mod no_lost_ack;
pub mod no_phantom;
pub mod offset_integrity;
pub mod quiet_node_stall;
pub mod realtime_order;
pub mod resharding;
pub mod retention;
pub mod seq;
pub mod shard_order;

#[cfg(test)]
pub(crate) mod fixture;

/// Anomalies kept per property in the report; the count covers all of them.
const MAX_LISTED_ANOMALIES: usize = 50;

#[derive(Debug, Clone)]
pub struct CheckConfig {
    /// Longest stretch without an acknowledged append that property 15 accepts while a majority
    /// of nodes is connected (every fault this harness injects keeps one).
    pub availability_bound_ms: u64,
    /// Shortest stretch without an acknowledged append that property 15 reports as a window.
    pub unavailability_report_ms: u64,
    /// Longest lag from acknowledgement to first read by a tailing reader that property 9
    /// accepts.
    pub freshness_bound_ms: u64,
    /// Longest stretch without an acknowledged append that property 16 accepts around a fault
    /// silencing one node. `None`: the stalls are reported, never judged.
    pub stall_bound_ms: Option<u64>,
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig {
            availability_bound_ms: 30_000,
            unavailability_report_ms: 1_000,
            freshness_bound_ms: 60_000,
            stall_bound_ms: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Valid,
    Invalid,
    NotChecked,
}

/// One anomaly: what happened and the history lines (`index`) involved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anomaly {
    pub kind: &'static str,
    pub message: String,
    pub ops: Vec<u64>,
    #[serde(skip_serializing_if = "Value::is_null")]
    pub detail: Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct PropertyResult {
    pub id: u8,
    pub name: &'static str,
    pub verdict: Verdict,
    pub anomaly_count: usize,
    pub anomalies: Vec<Anomaly>,
    #[serde(skip_serializing_if = "Value::is_null")]
    pub stats: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl PropertyResult {
    pub fn not_checked(id: u8, name: &'static str, reason: impl Into<String>) -> Self {
        PropertyResult {
            id,
            name,
            verdict: Verdict::NotChecked,
            anomaly_count: 0,
            anomalies: Vec::new(),
            stats: Value::Null,
            reason: Some(reason.into()),
        }
    }
}

/// Gathers a property's anomalies, keeping the first few and counting all.
#[derive(Debug)]
pub(crate) struct Anomalies {
    id: u8,
    name: &'static str,
    count: usize,
    listed: Vec<Anomaly>,
}

impl Anomalies {
    pub(crate) fn new(id: u8, name: &'static str) -> Self {
        Anomalies {
            id,
            name,
            count: 0,
            listed: Vec::new(),
        }
    }

    pub(crate) fn push(
        &mut self,
        kind: &'static str,
        message: String,
        ops: Vec<u64>,
        detail: Value,
    ) {
        self.count += 1;
        if self.listed.len() < MAX_LISTED_ANOMALIES {
            self.listed.push(Anomaly {
                kind,
                message,
                ops,
                detail,
            });
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.count
    }

    pub(crate) fn finish(self, stats: Value) -> PropertyResult {
        PropertyResult {
            id: self.id,
            name: self.name,
            verdict: if self.count == 0 {
                Verdict::Valid
            } else {
                Verdict::Invalid
            },
            anomaly_count: self.count,
            anomalies: self.listed,
            stats,
            reason: None,
        }
    }
}

/// One attempt to write a value: one record of one append.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub value: String,
    /// The partition key it was sent with.
    pub key: String,
    pub process: String,
    pub outcome: Outcome,
    pub shard: Option<String>,
    pub seq: Option<Seq>,
    pub error: Option<String>,
    pub invoke_time: u64,
    /// `None` when the history ends before the append completed (its outcome is then unknown).
    pub complete_time: Option<u64>,
    pub invoke_index: u64,
    pub complete_index: Option<u64>,
}

impl Attempt {
    /// The history lines of this attempt's op.
    pub fn ops(&self) -> Vec<u64> {
        let mut ops = vec![self.invoke_index];
        ops.extend(self.complete_index);
        ops
    }
}

/// One append call (PutRecords), for latency and throughput.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendCall {
    pub process: String,
    pub invoke_time: u64,
    pub complete_time: Option<u64>,
    pub ty: OpType,
    pub records: usize,
    pub acked: usize,
    pub invoke_index: u64,
    pub complete_index: Option<u64>,
}

/// A record as one view saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub seq: Seq,
    pub value: String,
    /// When the read that returned it completed.
    pub time: u64,
    /// The history line of that read.
    pub index: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ViewKind {
    /// A reader's iterator chain: GetShardIterator then GetRecords on successive iterators.
    Chain {
        process: String,
        chain: String,
        start: Option<StartAt>,
        /// The GetShardIterator line, when recorded.
        start_index: Option<u64>,
    },
    /// The final drain of one shard through one node.
    Drain {
        node: u64,
        replica: bool,
        stable: bool,
    },
}

/// Everything one chain or one drain read from one shard, in the order it was read.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub kind: ViewKind,
    pub shard: String,
    pub records: Vec<Seen>,
}

impl View {
    pub fn label(&self) -> String {
        match &self.kind {
            ViewKind::Chain { process, chain, .. } => format!("reader {process} chain {chain}"),
            ViewKind::Drain { node, .. } => format!("drain through node {node}"),
        }
    }

    pub fn is_drain(&self) -> bool {
        matches!(self.kind, ViewKind::Drain { .. })
    }
}

/// A fault from its start to its end (or to the end of the history when it never ended).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultWindow {
    pub id: u64,
    pub kind: String,
    pub nodes: Vec<u64>,
    /// What the fault did (its last line's `detail`).
    pub detail: Option<String>,
    /// How a `membership` or `corrupt` fault ended, and its error if it had one.
    pub outcome: Option<String>,
    pub error: Option<String>,
    pub start: u64,
    pub end: Option<u64>,
    pub start_index: u64,
    pub end_index: Option<u64>,
}

/// A line the checker could not interpret (it is reported, and makes the run invalid).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Malformed {
    pub index: u64,
    pub message: String,
}

/// The history digested once for every property.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub setup: Option<Setup>,
    /// The shards after healing (lineage, ranges, ending numbers), when the history has them.
    pub shard_map: Option<ShardMap>,
    pub shard_map_index: Option<u64>,
    /// Every record of every append, in invoke order.
    pub attempts: Vec<Attempt>,
    pub calls: Vec<AppendCall>,
    pub views: Vec<View>,
    pub faults: Vec<FaultWindow>,
    pub malformed: Vec<Malformed>,
    /// The last time in the history, the retention phase left out.
    pub end_time: u64,
    /// Number of invoke/completion pairs by clients (appends, iterators, reads, drains), the
    /// retention phase's left out.
    pub client_ops: usize,
    /// The retention phase (`--retention`), digested apart: no other property looks at it.
    pub retention: retention::RetentionFacts,
}

impl Facts {
    pub fn from_history(ops: &[Op]) -> Facts {
        let mut facts = Facts::default();
        let mut invokes: HashMap<u64, &Op> = HashMap::new();
        let mut completions: HashMap<u64, &Op> = HashMap::new();
        let mut retention_ops = Vec::new();
        for op in ops {
            if op.f.is_retention() {
                retention_ops.push(op);
                continue;
            }
            facts.end_time = facts.end_time.max(op.time);
            match (op.f, op.ty) {
                (F::Setup, _) => facts.setup = op.setup.clone(),
                (F::ShardMap, _) => {
                    facts.shard_map = op.shard_map.clone();
                    facts.shard_map_index = Some(op.index);
                }
                (F::Fault, _) => {}
                (_, OpType::Invoke) => {
                    if invokes.insert(op.op, op).is_some() {
                        facts.malformed.push(Malformed {
                            index: op.index,
                            message: format!("op id {} is invoked twice", op.op),
                        });
                    }
                }
                (_, _) => {
                    if completions.insert(op.op, op).is_some() {
                        facts.malformed.push(Malformed {
                            index: op.index,
                            message: format!("op id {} completes twice", op.op),
                        });
                    }
                }
            }
        }
        for (id, done) in &completions {
            if !invokes.contains_key(id) {
                facts.malformed.push(Malformed {
                    index: done.index,
                    message: format!("op id {id} completes without an invoke"),
                });
            }
        }
        facts.client_ops = invokes.len();

        let mut invoke_list: Vec<&Op> = invokes.values().copied().collect();
        invoke_list.sort_by_key(|op| (op.time, op.index));
        let mut chains: BTreeMap<String, View> = BTreeMap::new();
        let mut chain_reads: BTreeMap<String, Vec<(&Op, &Op)>> = BTreeMap::new();
        for invoke in invoke_list {
            let done = completions.get(&invoke.op).copied();
            match invoke.f {
                F::Append => facts.add_append(invoke, done),
                F::Iterator => {
                    if let (Some(chain), Some(shard)) = (&invoke.chain, &invoke.shard) {
                        chains.insert(
                            chain.clone(),
                            View {
                                kind: ViewKind::Chain {
                                    process: invoke.process.clone(),
                                    chain: chain.clone(),
                                    start: invoke.start.clone(),
                                    start_index: Some(invoke.index),
                                },
                                shard: shard.clone(),
                                records: Vec::new(),
                            },
                        );
                    }
                }
                F::Read => {
                    if let (Some(done), Some(chain)) = (done, &invoke.chain) {
                        chain_reads
                            .entry(chain.clone())
                            .or_default()
                            .push((invoke, done));
                    }
                }
                F::Drain => {
                    if let Some(done) = done.filter(|d| d.ty == OpType::Ok) {
                        let records = facts.seen(done);
                        facts.views.push(View {
                            kind: ViewKind::Drain {
                                node: done.node.or(invoke.node).unwrap_or(0),
                                replica: done.replica.unwrap_or(false),
                                stable: done.stable.unwrap_or(false),
                            },
                            shard: done
                                .shard
                                .clone()
                                .or(invoke.shard.clone())
                                .unwrap_or_default(),
                            records,
                        });
                    }
                }
                F::Setup
                | F::Fault
                | F::ShardMap
                | F::Retention
                | F::RetentionAppend
                | F::RetentionClock
                | F::RetentionRead
                | F::RetentionRestart => {}
            }
        }
        for (chain, mut reads) in chain_reads {
            reads.sort_by_key(|(invoke, done)| (invoke.time, done.time, invoke.index));
            let shard = reads
                .first()
                .and_then(|(i, d)| d.shard.clone().or(i.shard.clone()))
                .unwrap_or_default();
            let view = chains.entry(chain.clone()).or_insert_with(|| View {
                kind: ViewKind::Chain {
                    process: reads
                        .first()
                        .map(|(i, _)| i.process.clone())
                        .unwrap_or_default(),
                    chain: chain.clone(),
                    start: None,
                    start_index: None,
                },
                shard,
                records: Vec::new(),
            });
            for (_, done) in reads {
                if done.ty == OpType::Ok {
                    let seen = facts.seen(done);
                    view.records.extend(seen);
                }
            }
        }
        facts.views.extend(chains.into_values());
        facts.add_faults(ops);
        facts.retention = retention::RetentionFacts::from_ops(&retention_ops, &mut facts.malformed);
        facts
    }

    fn add_append(&mut self, invoke: &Op, done: Option<&Op>) {
        let results: HashMap<&str, &PutResult> = done
            .map(|d| d.results.iter().map(|r| (r.value.as_str(), r)).collect())
            .unwrap_or_default();
        let mut acked = 0;
        for Put { value, key } in &invoke.values {
            let result = results.get(value.as_str());
            let outcome = match (done, result) {
                (Some(_), Some(r)) => r.outcome,
                // A completion that does not mention a record says nothing about it.
                (Some(d), None) if d.ty == OpType::Fail => Outcome::Fail,
                _ => Outcome::Info,
            };
            let mut seq = None;
            if let Some(s) = result.and_then(|r| r.seq.as_deref()) {
                match Seq::parse(s) {
                    Some(n) => seq = Some(n),
                    None => self.malformed.push(Malformed {
                        index: done.map_or(invoke.index, |d| d.index),
                        message: format!("sequence number {s:?} of {value} is not a decimal"),
                    }),
                }
            }
            if outcome == Outcome::Ok {
                acked += 1;
                if seq.is_none() || result.and_then(|r| r.shard.as_ref()).is_none() {
                    self.malformed.push(Malformed {
                        index: done.map_or(invoke.index, |d| d.index),
                        message: format!("{value} is ok without a shard and sequence number"),
                    });
                }
            }
            self.attempts.push(Attempt {
                value: value.clone(),
                key: key.clone(),
                process: invoke.process.clone(),
                outcome,
                shard: result.and_then(|r| r.shard.clone()),
                seq,
                error: result
                    .and_then(|r| r.error.clone())
                    .or_else(|| done.and_then(|d| d.error.clone())),
                invoke_time: invoke.time,
                complete_time: done.map(|d| d.time),
                invoke_index: invoke.index,
                complete_index: done.map(|d| d.index),
            });
        }
        self.calls.push(AppendCall {
            process: invoke.process.clone(),
            invoke_time: invoke.time,
            complete_time: done.map(|d| d.time),
            ty: done.map_or(OpType::Info, |d| d.ty),
            records: invoke.values.len(),
            acked,
            invoke_index: invoke.index,
            complete_index: done.map(|d| d.index),
        });
    }

    fn seen(&mut self, done: &Op) -> Vec<Seen> {
        let mut out = Vec::with_capacity(done.records.len());
        for r in &done.records {
            match Seq::parse(&r.0) {
                Some(seq) => out.push(Seen {
                    seq,
                    value: r.1.clone(),
                    time: done.time,
                    index: done.index,
                }),
                None => self.malformed.push(Malformed {
                    index: done.index,
                    message: format!("sequence number {:?} read is not a decimal", r.0),
                }),
            }
        }
        out
    }

    fn add_faults(&mut self, ops: &[Op]) {
        let mut open: BTreeMap<u64, usize> = BTreeMap::new();
        for op in ops.iter().filter(|o| o.f == F::Fault) {
            let Some(ev) = &op.fault else { continue };
            match ev.phase {
                Phase::Start => {
                    open.insert(ev.id, self.faults.len());
                    self.faults.push(FaultWindow {
                        id: ev.id,
                        kind: ev.kind.clone(),
                        nodes: ev.nodes.clone(),
                        detail: ev.detail.clone(),
                        outcome: ev.outcome.clone(),
                        error: op.error.clone(),
                        start: op.time,
                        end: None,
                        start_index: op.index,
                        end_index: None,
                    });
                }
                Phase::End => {
                    if let Some(i) = open.remove(&ev.id) {
                        let f = &mut self.faults[i];
                        f.end = Some(op.time);
                        f.end_index = Some(op.index);
                        if ev.detail.is_some() {
                            f.detail = ev.detail.clone();
                        }
                        if ev.outcome.is_some() {
                            f.outcome = ev.outcome.clone();
                        }
                        if op.error.is_some() {
                            f.error = op.error.clone();
                        }
                    }
                }
            }
        }
        self.faults.sort_by_key(|f| f.start);
    }

    /// Every value's attempts.
    pub fn attempts_by_value(&self) -> BTreeMap<&str, Vec<&Attempt>> {
        let mut m: BTreeMap<&str, Vec<&Attempt>> = BTreeMap::new();
        for a in &self.attempts {
            m.entry(a.value.as_str()).or_default().push(a);
        }
        m
    }

    /// Per shard, per sequence number: the values seen there and the lines that saw them, over
    /// the views `include` keeps.
    pub fn positions(
        &self,
        include: impl Fn(&View) -> bool,
    ) -> BTreeMap<&str, BTreeMap<&Seq, BTreeMap<&str, Vec<u64>>>> {
        let mut m: BTreeMap<&str, BTreeMap<&Seq, BTreeMap<&str, Vec<u64>>>> = BTreeMap::new();
        for view in self.views.iter().filter(|v| include(v)) {
            for r in &view.records {
                m.entry(view.shard.as_str())
                    .or_default()
                    .entry(&r.seq)
                    .or_default()
                    .entry(r.value.as_str())
                    .or_default()
                    .push(r.index);
            }
        }
        m
    }

    /// Every ancestor of `shard` in the shard map (parents, their parents, ...).
    pub fn ancestors(&self, shard: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let Some(map) = &self.shard_map else {
            return seen;
        };
        let parents: HashMap<&str, Vec<&String>> = map
            .shards
            .iter()
            .map(|s| {
                (
                    s.id.as_str(),
                    s.parent.iter().chain(s.adjacent_parent.iter()).collect(),
                )
            })
            .collect();
        let mut todo = vec![shard.to_string()];
        while let Some(s) = todo.pop() {
            for p in parents.get(s.as_str()).into_iter().flatten() {
                if seen.insert((*p).clone()) {
                    todo.push((*p).clone());
                }
            }
        }
        seen
    }

    pub fn has_drains(&self) -> bool {
        self.views.iter().any(View::is_drain)
    }
}

/// Runs every property, in the order.
pub fn run_all(facts: &Facts, config: &CheckConfig) -> Vec<PropertyResult> {
    let mut results = vec![
        no_lost_ack::check(facts, config),
        no_phantom::check(facts, config),
        no_aborted_read::check(facts, config),
        offset_integrity::check(facts, config),
        no_duplicates::check(facts, config),
        shard_order::check(facts, config),
        realtime_order::check(facts, config),
        gapless_consumption::check(facts, config),
        freshness::check(facts, config),
        resharding::check(facts, config),
        lost_unsynced::check(facts, config),
    ];
    results.push(corruption::check(facts, config));
    results.push(membership::check(facts, config));
    results.push(retention::check(facts, config));
    results.push(availability::check(facts, config));
    results.push(quiet_node_stall::check(facts, config));
    results
}

/// Milliseconds from nanoseconds, for reports.
pub(crate) fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// The `q`-quantile of sorted values (nearest rank).
pub(crate) fn quantile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// A JSON summary of the values seen at one position, for anomaly details.
pub(crate) fn values_at(values: &BTreeMap<&str, Vec<u64>>) -> Value {
    json!(values.keys().collect::<BTreeSet<_>>())
}

#[cfg(test)]
mod tests {
    use super::fixture::H;
    use super::*;

    #[test]
    fn quantiles_use_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), Some(50));
        assert_eq!(quantile(&v, 0.99), Some(99));
        assert_eq!(quantile(&v, 1.0), Some(100));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn an_unfinished_append_is_unknown_and_a_bare_completion_is_malformed() {
        let mut h = H::default();
        h.invoke_only("w0", 1, &["a"]);
        let mut facts = h.facts();
        assert_eq!(facts.attempts[0].outcome, Outcome::Info);
        assert!(facts.malformed.is_empty());

        let mut op = Op::new(OpType::Ok, F::Append, "w0", 99, 5);
        op.index = 7;
        facts = Facts::from_history(&[op]);
        assert_eq!(facts.malformed.len(), 1);
    }

    #[test]
    fn healthy_history_passes_every_property() {
        let mut h = H::default();
        h.append_ok("w0", 0, 10, &[("a", "s0", 1), ("b", "s1", 1)]);
        h.append_ok("w1", 20, 30, &[("c", "s0", 2)]);
        h.chain("r0", "c0", "s0", 1, "TRIM_HORIZON", None);
        h.read("r0", "c0", "s0", 15, &[(1, "a")]);
        h.read("r0", "c0", "s0", 35, &[(2, "c")]);
        h.drain(1, "s0", 50, &[(1, "a"), (2, "c")]);
        h.drain(1, "s1", 50, &[(1, "b")]);
        h.drain(2, "s0", 50, &[(1, "a"), (2, "c")]);
        h.drain(2, "s1", 50, &[(1, "b")]);
        let facts = h.facts();
        for r in run_all(&facts, &CheckConfig::default()) {
            assert_ne!(r.verdict, Verdict::Invalid, "{r:?}");
        }
    }
}
