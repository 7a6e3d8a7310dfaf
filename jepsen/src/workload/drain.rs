//! The final drain: after every fault is healed and every node is ready, each shard is read from
//! TRIM_HORIZON to its tip through each node separately (a client that knows only that node; the
//! node serves from its own replica when it has one). Rounds repeat until two in a row read the
//! same number of records everywhere, or the deadline passes; the last round goes into the
//! history, each drain marked `stable` or not.

use std::collections::BTreeMap;
use std::time::Duration;

use streamd_client::StreamdClient;
use tokio::time::Instant;

use super::{Config, value_of};
use crate::history::{F, Op, OpType, Rec, Recorder, ShardInfo};

const BETWEEN_ROUNDS: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Default)]
pub struct DrainReport {
    pub rounds: u32,
    pub stable: bool,
    /// Records per node, summed over shards, in the last round.
    pub records: BTreeMap<u64, usize>,
    pub errors: Vec<String>,
}

type Round = BTreeMap<(u64, String), (u64, u64, Result<Vec<Rec>, String>)>;

async fn read_round(
    config: &Config,
    clients: &[(u64, StreamdClient)],
    shards: &[ShardInfo],
    rec: &Recorder,
) -> Round {
    let mut round = Round::new();
    for (node, client) in clients {
        for shard in shards {
            let started = rec.now();
            let result = client
                .read_shard_all(&config.stream, &shard.id)
                .await
                .map(|records| {
                    records
                        .iter()
                        .map(|r| Rec(r.sequence_number.clone(), value_of(&r.data)))
                        .collect()
                })
                .map_err(|e| e.to_string());
            round.insert((*node, shard.id.clone()), (started, rec.now(), result));
        }
    }
    round
}

fn counts(round: &Round) -> Option<Vec<usize>> {
    round
        .values()
        .map(|(_, _, r)| r.as_ref().ok().map(Vec::len))
        .collect()
}

/// Drains every shard through every node in `nodes` (id, gRPC endpoint).
pub async fn run(
    config: &Config,
    nodes: &[(u64, String)],
    shards: &[ShardInfo],
    rec: &Recorder,
    deadline: Duration,
) -> DrainReport {
    let end = Instant::now() + deadline;
    let mut report = DrainReport::default();
    let mut clients = Vec::new();
    for (node, endpoint) in nodes {
        match StreamdClient::connect_with(std::slice::from_ref(endpoint), config.options()) {
            Ok(c) => clients.push((*node, c)),
            Err(e) => report.errors.push(format!("node {node}: {e}")),
        }
    }
    let mut previous: Option<Vec<usize>> = None;
    let last = loop {
        let round = read_round(config, &clients, shards, rec).await;
        report.rounds += 1;
        let now = counts(&round);
        let stable = now.is_some() && now == previous;
        previous = now;
        if stable {
            report.stable = true;
            break round;
        }
        if Instant::now() + BETWEEN_ROUNDS >= end {
            break round;
        }
        tokio::time::sleep(BETWEEN_ROUNDS).await;
    };
    for ((node, shard), (started, finished, result)) in last {
        let replica = shards
            .iter()
            .find(|s| s.id == shard)
            .is_some_and(|s| s.replicas.contains(&node));
        let process = format!("drain-n{node}");
        let mut invoke = Op::new(OpType::Invoke, F::Drain, &process, rec.next_op(), started);
        invoke.shard = Some(shard.clone());
        invoke.node = Some(node);
        let mut done = invoke.clone();
        done.time = finished;
        done.replica = Some(replica);
        done.stable = Some(report.stable);
        match result {
            Ok(records) => {
                *report.records.entry(node).or_default() += records.len();
                done.ty = OpType::Ok;
                done.records = records;
            }
            Err(e) => {
                report.errors.push(format!("node {node} {shard}: {e}"));
                done.ty = OpType::Fail;
                done.error = Some(e);
            }
        }
        rec.record(invoke);
        rec.record(done);
    }
    report
}
