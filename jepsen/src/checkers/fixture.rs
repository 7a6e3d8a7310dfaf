//! Hand-built histories for the checkers' tests. Times are given in milliseconds.

use crate::history::{
    F, FaultEvent, MapShard, Op, OpType, Outcome, Phase, Put, PutResult, Rec, ShardMap, StartAt,
};

use super::Facts;

const MS: u64 = 1_000_000;

#[derive(Debug, Default)]
pub(crate) struct H {
    pub(crate) ops: Vec<Op>,
    next_op: u64,
}

impl H {
    fn push(&mut self, mut op: Op) {
        op.index = self.ops.len() as u64;
        self.ops.push(op);
    }

    fn id(&mut self) -> u64 {
        self.next_op += 1;
        self.next_op
    }

    /// An append whose records each have their own outcome: (value, shard, outcome, seq).
    pub(crate) fn append(
        &mut self,
        process: &str,
        invoke_ms: u64,
        done_ms: u64,
        records: &[(&str, &str, Outcome, Option<u128>)],
    ) {
        let id = self.id();
        let mut invoke = Op::new(OpType::Invoke, F::Append, process, id, invoke_ms * MS);
        invoke.values = records
            .iter()
            .map(|(v, ..)| Put {
                value: v.to_string(),
                key: format!("k-{v}"),
            })
            .collect();
        self.push(invoke);
        let ty = if records.iter().any(|r| r.2 == Outcome::Info) {
            OpType::Info
        } else if records.iter().all(|r| r.2 == Outcome::Fail) {
            OpType::Fail
        } else {
            OpType::Ok
        };
        let mut done = Op::new(ty, F::Append, process, id, done_ms * MS);
        done.results = records
            .iter()
            .map(|(v, shard, outcome, seq)| PutResult {
                value: v.to_string(),
                outcome: *outcome,
                shard: (*outcome == Outcome::Ok).then(|| shard.to_string()),
                seq: seq.map(|s| s.to_string()),
                error: match outcome {
                    Outcome::Ok => None,
                    Outcome::Fail => Some("ProvisionedThroughputExceededException".into()),
                    Outcome::Info => Some("InternalFailure".into()),
                },
            })
            .collect();
        self.push(done);
    }

    /// An append acknowledged for every record: (value, shard, seq).
    pub(crate) fn append_ok(
        &mut self,
        process: &str,
        invoke_ms: u64,
        done_ms: u64,
        records: &[(&str, &str, u128)],
    ) {
        let records: Vec<_> = records
            .iter()
            .map(|(v, s, q)| (*v, *s, Outcome::Ok, Some(*q)))
            .collect();
        self.append(process, invoke_ms, done_ms, &records);
    }

    /// An append acknowledged for every record, with partition keys: (value, key, shard, seq).
    pub(crate) fn append_keyed(
        &mut self,
        process: &str,
        invoke_ms: u64,
        done_ms: u64,
        records: &[(&str, &str, &str, u128)],
    ) {
        let keys: Vec<String> = records.iter().map(|r| r.1.to_string()).collect();
        let records: Vec<_> = records
            .iter()
            .map(|(v, _, s, q)| (*v, *s, Outcome::Ok, Some(*q)))
            .collect();
        self.append(process, invoke_ms, done_ms, &records);
        let invoke = self.ops.len() - 2;
        for (put, key) in self.ops[invoke].values.iter_mut().zip(keys) {
            put.key = key;
        }
    }

    /// The shard map line: (id, parent, adjacent parent, hash start, hash end, first sequence
    /// number, ending sequence number).
    #[allow(clippy::type_complexity)]
    pub(crate) fn shard_map(
        &mut self,
        status: &str,
        shards: &[(
            &str,
            Option<&str>,
            Option<&str>,
            u128,
            u128,
            u128,
            Option<u128>,
        )],
    ) {
        let mut op = Op::new(OpType::Info, F::ShardMap, "setup", 0, self.last_time());
        op.shard_map = Some(ShardMap {
            status: status.into(),
            shards: shards
                .iter()
                .map(|(id, p, a, hs, he, ss, es)| MapShard {
                    id: id.to_string(),
                    parent: p.map(str::to_string),
                    adjacent_parent: a.map(str::to_string),
                    start_hash: hs.to_string(),
                    end_hash: he.to_string(),
                    start_seq: ss.to_string(),
                    end_seq: es.map(|e| e.to_string()),
                })
                .collect(),
        });
        self.push(op);
    }

    fn last_time(&self) -> u64 {
        self.ops.iter().map(|o| o.time).max().unwrap_or(0)
    }

    /// An append that never completed.
    pub(crate) fn invoke_only(&mut self, process: &str, invoke_ms: u64, values: &[&str]) {
        let id = self.id();
        let mut invoke = Op::new(OpType::Invoke, F::Append, process, id, invoke_ms * MS);
        invoke.values = values
            .iter()
            .map(|v| Put {
                value: v.to_string(),
                key: "k".into(),
            })
            .collect();
        self.push(invoke);
    }

    pub(crate) fn chain(
        &mut self,
        process: &str,
        chain: &str,
        shard: &str,
        at_ms: u64,
        kind: &str,
        seq: Option<u128>,
    ) {
        let id = self.id();
        let mut invoke = Op::new(OpType::Invoke, F::Iterator, process, id, at_ms * MS);
        invoke.chain = Some(chain.into());
        invoke.shard = Some(shard.into());
        invoke.start = Some(StartAt {
            kind: kind.into(),
            seq: seq.map(|s| s.to_string()),
        });
        let mut done = invoke.clone();
        done.ty = OpType::Ok;
        self.push(invoke);
        self.push(done);
    }

    pub(crate) fn read(
        &mut self,
        process: &str,
        chain: &str,
        shard: &str,
        done_ms: u64,
        records: &[(u128, &str)],
    ) {
        let id = self.id();
        let mut invoke = Op::new(OpType::Invoke, F::Read, process, id, done_ms * MS - MS / 2);
        invoke.chain = Some(chain.into());
        invoke.shard = Some(shard.into());
        let mut done = invoke.clone();
        done.ty = OpType::Ok;
        done.time = done_ms * MS;
        done.records = recs(records);
        self.push(invoke);
        self.push(done);
    }

    pub(crate) fn drain(&mut self, node: u64, shard: &str, done_ms: u64, records: &[(u128, &str)]) {
        let id = self.id();
        let process = format!("drain-n{node}");
        let mut invoke = Op::new(OpType::Invoke, F::Drain, process, id, done_ms * MS - MS);
        invoke.shard = Some(shard.into());
        invoke.node = Some(node);
        let mut done = invoke.clone();
        done.ty = OpType::Ok;
        done.time = done_ms * MS;
        done.replica = Some(true);
        done.stable = Some(true);
        done.records = recs(records);
        self.push(invoke);
        self.push(done);
    }

    pub(crate) fn fault(&mut self, id: u64, kind: &str, nodes: &[u64], start_ms: u64, end_ms: u64) {
        for (phase, t) in [(Phase::Start, start_ms), (Phase::End, end_ms)] {
            let mut op = Op::new(OpType::Info, F::Fault, "nemesis", 0, t * MS);
            op.fault = Some(FaultEvent {
                id,
                kind: kind.into(),
                phase,
                nodes: nodes.to_vec(),
                groups: Vec::new(),
                detail: None,
                outcome: None,
            });
            self.push(op);
        }
    }

    /// A `membership` or `corrupt` fault that ended with `outcome`.
    pub(crate) fn fault_outcome(
        &mut self,
        id: u64,
        kind: &str,
        nodes: &[u64],
        start_ms: u64,
        end_ms: u64,
        outcome: &str,
    ) {
        for (phase, t) in [(Phase::Start, start_ms), (Phase::End, end_ms)] {
            let mut op = Op::new(OpType::Info, F::Fault, "nemesis", 0, t * MS);
            op.fault = Some(FaultEvent {
                id,
                kind: kind.into(),
                phase,
                nodes: nodes.to_vec(),
                groups: Vec::new(),
                detail: Some(format!("{kind} (flip) node {}: {outcome}", nodes[0])),
                outcome: Some(outcome.into()),
            });
            self.push(op);
        }
    }

    /// The retention phase's start line.
    pub(crate) fn retention_start(&mut self, at_ms: u64) {
        self.push(Op::new(
            OpType::Info,
            F::Retention,
            "retention",
            0,
            at_ms * MS,
        ));
    }

    /// The line saying the retention phase was not run, and why.
    pub(crate) fn retention_skipped(&mut self, at_ms: u64, why: &str) {
        let mut op = Op::new(OpType::Info, F::Retention, "retention", 0, at_ms * MS);
        op.error = Some(why.into());
        self.push(op);
    }

    /// A retention-phase append of set `set`, every record acknowledged: (value, shard, seq).
    pub(crate) fn retention_append(
        &mut self,
        set: &str,
        invoke_ms: u64,
        done_ms: u64,
        records: &[(&str, &str, u128)],
    ) {
        self.append(&format!("retention-{set}"), invoke_ms, done_ms, &[]);
        let n = self.ops.len();
        for op in &mut self.ops[n - 2..] {
            op.f = F::RetentionAppend;
            op.ty = if op.ty == OpType::Invoke {
                OpType::Invoke
            } else {
                OpType::Ok
            };
        }
        self.ops[n - 2].values = records
            .iter()
            .map(|(v, ..)| Put {
                value: v.to_string(),
                key: format!("k-{v}"),
            })
            .collect();
        self.ops[n - 1].results = records
            .iter()
            .map(|(v, shard, seq)| PutResult {
                value: v.to_string(),
                outcome: Outcome::Ok,
                shard: Some(shard.to_string()),
                seq: Some(seq.to_string()),
                error: None,
            })
            .collect();
    }

    /// Each of `nodes`' clocks set `offset_s` ahead, confirmed at `done_ms`.
    pub(crate) fn retention_jump(
        &mut self,
        nodes: &[u64],
        offset_s: i64,
        at_ms: u64,
        done_ms: u64,
    ) {
        for &node in nodes {
            let id = self.id();
            let mut invoke = Op::new(
                OpType::Invoke,
                F::RetentionClock,
                "retention-clock",
                id,
                at_ms * MS,
            );
            invoke.node = Some(node);
            invoke.offset_s = Some(offset_s);
            let mut done = invoke.clone();
            done.ty = OpType::Ok;
            done.time = done_ms * MS;
            self.push(invoke);
            self.push(done);
        }
    }

    pub(crate) fn retention_jump_failed(
        &mut self,
        node: u64,
        offset_s: i64,
        at_ms: u64,
        error: &str,
    ) {
        let id = self.id();
        let mut invoke = Op::new(
            OpType::Invoke,
            F::RetentionClock,
            "retention-clock",
            id,
            at_ms * MS,
        );
        invoke.node = Some(node);
        invoke.offset_s = Some(offset_s);
        let mut done = invoke.clone();
        done.ty = OpType::Fail;
        done.time = (at_ms + 1) * MS;
        done.error = Some(error.into());
        self.push(invoke);
        self.push(done);
    }

    /// A retention-phase read of `shard` through `node`, complete at `done_ms` (sent 1 ms
    /// before): the records, or the error.
    pub(crate) fn retention_read(
        &mut self,
        node: u64,
        shard: &str,
        done_ms: u64,
        after_restart: bool,
        result: Result<&[(u128, &str)], &str>,
    ) {
        let id = self.id();
        let round = if after_restart { "final" } else { "poll" };
        let process = format!("retention-{round}-n{node}");
        let mut invoke = Op::new(
            OpType::Invoke,
            F::RetentionRead,
            process,
            id,
            done_ms * MS - MS,
        );
        invoke.shard = Some(shard.into());
        invoke.node = Some(node);
        let mut done = invoke.clone();
        done.time = done_ms * MS;
        match result {
            Ok(records) => {
                done.ty = OpType::Ok;
                done.records = recs(records);
            }
            Err(e) => {
                done.ty = OpType::Fail;
                done.error = Some(e.into());
            }
        }
        self.push(invoke);
        self.push(done);
    }

    /// The retention phase's kill of `node` at `kill_ms` and its restart, ready (or not) at
    /// `done_ms`.
    pub(crate) fn retention_restart(&mut self, node: u64, kill_ms: u64, done_ms: u64, ok: bool) {
        let id = self.id();
        let mut invoke = Op::new(
            OpType::Invoke,
            F::RetentionRestart,
            "retention-restart",
            id,
            kill_ms * MS,
        );
        invoke.node = Some(node);
        let mut done = invoke.clone();
        done.ty = if ok { OpType::Ok } else { OpType::Fail };
        done.time = done_ms * MS;
        if !ok {
            done.error = Some("not ready".into());
        }
        self.push(invoke);
        self.push(done);
    }

    pub(crate) fn facts(&self) -> Facts {
        Facts::from_history(&self.ops)
    }
}

fn recs(records: &[(u128, &str)]) -> Vec<Rec> {
    records
        .iter()
        .map(|(s, v)| Rec(s.to_string(), v.to_string()))
        .collect()
}
