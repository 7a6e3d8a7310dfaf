//! The retention phase (`--retention`), after the final drain: the one place a run is long
//! enough, in the nodes' eyes, for streamd to trim. streamd trims by arrival time: every shard
//! leader proposes `Trim { cutoff = now - retention }` about once a minute, `now` being its wall
//! clock, and the test stream keeps Kinesis's minimum retention of 24 h. So the phase moves every
//! node's wall clock (libfaketime, [`Clocks`]; the monotonic clock is left alone):
//!
//! 1. set A: 100-300 records with random partition keys, each sent (through any node) until it
//!    is acknowledged or [`APPEND_DEADLINE`] passes;
//! 2. every clock [`JUMP_1_S`] ahead (each node confirmed through its `Date` header), set B; every
//!    clock [`JUMP_2_S`] ahead, set C: A (and the workload) is now past retention, B about 13 h
//!    old, C new;
//! 3. every shard (those the drain knew, open and closed, and any ListShards shows) read from
//!    TRIM_HORIZON through every node, each through a client that knows only that node, in
//!    rounds until no round returns an A record and every read answered, or [`TRIM_DEADLINE`]
//!    after the jump;
//! 4. one node (drawn from the seed) killed with SIGKILL and restarted on its data (its clock
//!    file still says +25 h), awaited ready for up to [`READY_DEADLINE`];
//! 5. every shard read through every node again, at least twice, until a round where every read
//!    answered or [`FINAL_DEADLINE`].
//!
//! Every call is a line in the history (`retention-*` in history.rs); property 14
//! (`checkers/retention.rs`) judges them.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use streamd_client::{ErrorCode, StreamdClient, v1};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{Config, value_of, writer};
use crate::cluster::{self, Cluster};
use crate::history::{F, Op, OpType, Outcome, Put, Rec, Recorder};
use crate::nemesis::clock::Clocks;

/// The first jump: set B is written 12 h after A.
pub const JUMP_1_S: i64 = 12 * 3600;
/// The second jump: A is 25 h old, past the 24 h retention by an hour; B is 13 h old.
pub const JUMP_2_S: i64 = 25 * 3600;
/// Records per set, drawn with the seed.
const SET_SIZE: std::ops::RangeInclusive<usize> = 100..=300;
/// Records per PutRecords call.
const BATCH: usize = 10;
/// How long one set's records are retried until acknowledged.
const APPEND_DEADLINE: Duration = Duration::from_secs(20);
/// How long after the second jump the phase waits for the trim to show: streamd's leaders trim
/// every 60 s, plus time to commit it.
const TRIM_DEADLINE: Duration = Duration::from_secs(75);
const BETWEEN_ROUNDS: Duration = Duration::from_secs(1);
/// How long the restarted node has to answer `/readyz`.
const READY_DEADLINE: Duration = Duration::from_secs(60);
/// How long the reads after the restart go on while some read fails.
const FINAL_DEADLINE: Duration = Duration::from_secs(20);
/// The deadline of one shard's read (many GetRecords calls).
const READ_DEADLINE: Duration = Duration::from_secs(30);

/// What the phase needs from the run.
pub struct Env<'a> {
    pub config: &'a Config,
    pub cluster: Arc<Mutex<Cluster>>,
    pub clocks: &'a Clocks,
    /// Every member: slot (its node id unless membership changed), gRPC endpoint, admin address.
    pub nodes: Vec<(u64, String, SocketAddr)>,
    /// The shards the drain read, open and closed.
    pub shards: Vec<String>,
    pub rec: &'a Recorder,
}

/// What the phase did, for stdout and results.json (the checker reads only the history).
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Records sent and acknowledged per set (A, B, C).
    pub sent: [usize; 3],
    pub acked: [usize; 3],
    /// From the second jump's confirmation to the first round with no A record anywhere.
    pub trimmed_after: Option<Duration>,
    pub poll_rounds: u32,
    pub final_rounds: u32,
    pub reads: usize,
    pub restarted: Option<u64>,
    pub ready_after: Option<Duration>,
    pub notes: Vec<String>,
    pub elapsed: Duration,
}

fn with_cluster<T>(cluster: &Mutex<Cluster>, f: impl FnOnce(&mut Cluster) -> T) -> T {
    match cluster.lock() {
        Ok(mut g) => f(&mut g),
        Err(poisoned) => f(&mut poisoned.into_inner()),
    }
}

/// Records the line saying the phase was not run, and why.
pub fn skipped(rec: &Recorder, why: &str) {
    let mut op = Op::new(
        OpType::Info,
        F::Retention,
        "retention",
        rec.next_op(),
        rec.now(),
    );
    op.error = Some(why.to_string());
    rec.record(op);
}

/// Runs the phase. `Err` when a clock could not be moved (the checker then says property 14 was
/// not checked, and why); everything else, failed calls included, is in the report and history.
pub async fn run(env: Env<'_>) -> Result<Report, String> {
    let t0 = Instant::now();
    let rec = env.rec;
    rec.record(Op::new(
        OpType::Info,
        F::Retention,
        "retention",
        rec.next_op(),
        rec.now(),
    ));
    let mut report = Report::default();
    let mut rng = env.config.rng(0x5245_5445_4e54);
    let appender = env.config.client(0).map_err(|e| e.to_string())?;
    let mut clients = Vec::new();
    for (node, endpoint, _) in &env.nodes {
        let c = StreamdClient::connect_with(std::slice::from_ref(endpoint), env.config.options())
            .map_err(|e| format!("node {node}: {e}"))?;
        clients.push((*node, c));
    }

    let sizes: Vec<usize> = (0..3).map(|_| rng.random_range(SET_SIZE)).collect();
    let a_values = append_set(&env, &appender, "A", sizes[0], &mut rng, &mut report, 0).await;
    jump(&env, JUMP_1_S).await?;
    append_set(&env, &appender, "B", sizes[1], &mut rng, &mut report, 1).await;
    jump(&env, JUMP_2_S).await?;
    let jumped = Instant::now();
    append_set(&env, &appender, "C", sizes[2], &mut rng, &mut report, 2).await;
    println!(
        "jepsen: retention: sets A/B/C acknowledged {}/{} {}/{} {}/{}; clocks +{JUMP_2_S}s, waiting for the trim",
        report.acked[0],
        report.sent[0],
        report.acked[1],
        report.sent[1],
        report.acked[2],
        report.sent[2]
    );

    loop {
        let shards = shards_now(&env, &appender).await;
        let round = read_round(&env, &clients, &shards, "retention-poll", &a_values).await;
        report.poll_rounds += 1;
        report.reads += round.reads;
        if round.a_records == 0 && round.failed == 0 {
            report.trimmed_after = Some(jumped.elapsed());
            break;
        }
        if jumped.elapsed() + BETWEEN_ROUNDS >= TRIM_DEADLINE {
            report.notes.push(format!(
                "retention: {} A record(s) still read {:?} after the clocks passed retention ({} read(s) failed in the last round)",
                round.a_records, TRIM_DEADLINE, round.failed
            ));
            break;
        }
        tokio::time::sleep(BETWEEN_ROUNDS).await;
    }
    match report.trimmed_after {
        Some(t) => println!(
            "jepsen: retention: no A record read anywhere {:.1}s after the jump ({} round(s))",
            t.as_secs_f64(),
            report.poll_rounds
        ),
        None => println!("jepsen: retention: the trim never showed"),
    }

    let victim = env.nodes[rng.random_range(0..env.nodes.len())].clone();
    let ready = restart(&env, victim.0, victim.2).await;
    report.restarted = Some(victim.0);
    match ready {
        Ok(d) => report.ready_after = Some(d),
        Err(e) => report.notes.push(format!("retention: {e}")),
    }
    let end = Instant::now() + FINAL_DEADLINE;
    loop {
        let shards = shards_now(&env, &appender).await;
        let round = read_round(&env, &clients, &shards, "retention-final", &a_values).await;
        report.final_rounds += 1;
        report.reads += round.reads;
        if (round.failed == 0 && report.final_rounds >= 2) || Instant::now() >= end {
            if round.failed > 0 {
                report.notes.push(format!(
                    "retention: {} read(s) after the restart still failed after {FINAL_DEADLINE:?}",
                    round.failed
                ));
            }
            break;
        }
        tokio::time::sleep(BETWEEN_ROUNDS).await;
    }
    report.elapsed = t0.elapsed();
    Ok(report)
}

/// Appends `n` fresh values of set `set` (`rA-000000`, ...), retrying each until it is
/// acknowledged or [`APPEND_DEADLINE`] passes. Returns every value sent.
async fn append_set(
    env: &Env<'_>,
    client: &StreamdClient,
    set: &str,
    n: usize,
    rng: &mut impl Rng,
    report: &mut Report,
    k: usize,
) -> HashSet<String> {
    let rec = env.rec;
    let process = format!("retention-{set}");
    let mut pending: VecDeque<Put> = (0..n)
        .map(|i| Put {
            value: format!("r{set}-{i:06}"),
            key: format!("r{:016x}", rng.random::<u64>()),
        })
        .collect();
    let values: HashSet<String> = pending.iter().map(|p| p.value.clone()).collect();
    report.sent[k] = n;
    let end = Instant::now() + APPEND_DEADLINE;
    let hard_deadline = env.config.request_timeout + Duration::from_secs(5);
    while !pending.is_empty() && Instant::now() < end {
        let puts: Vec<Put> = (0..BATCH).map_while(|_| pending.pop_front()).collect();
        let op = rec.next_op();
        let mut invoke = Op::new(OpType::Invoke, F::RetentionAppend, &process, op, rec.now());
        invoke.values = puts.clone();
        rec.record(invoke);
        let entries: Vec<v1::PutRecordsRequestEntry> = puts
            .iter()
            .map(|p| streamd_client::client::entry(p.key.clone(), p.value.clone().into_bytes()))
            .collect();
        let answer = match tokio::time::timeout(
            hard_deadline,
            client.put_records(&env.config.stream, entries),
        )
        .await
        {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err((e.code(), e.to_string())),
            Err(_) => Err((
                ErrorCode::Unavailable,
                format!("no answer within {hard_deadline:?}"),
            )),
        };
        let (ty, results, error) = writer::complete(&puts, &answer);
        let mut again = false;
        for (put, r) in puts.iter().zip(&results) {
            if r.outcome == Outcome::Ok {
                report.acked[k] += 1;
            } else {
                pending.push_back(put.clone());
                again = true;
            }
        }
        let mut done = Op::new(ty, F::RetentionAppend, &process, op, rec.now());
        done.results = results;
        done.error = error;
        rec.record(done);
        if again {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    values
}

/// Sets every node's clock `offset_s` ahead, each confirmed (libfaketime loaded, the node's
/// `Date` caught up), all at once.
async fn jump(env: &Env<'_>, offset_s: i64) -> Result<(), String> {
    let mut tasks = JoinSet::new();
    for (node, _, _) in &env.nodes {
        let (node, rec, clocks, cluster) = (
            *node,
            env.rec.clone(),
            env.clocks.clone(),
            env.cluster.clone(),
        );
        tasks.spawn(async move {
            let op = rec.next_op();
            let mut invoke = Op::new(
                OpType::Invoke,
                F::RetentionClock,
                "retention-clock",
                op,
                rec.now(),
            );
            invoke.node = Some(node);
            invoke.offset_s = Some(offset_s);
            let mut done = invoke.clone();
            rec.record(invoke);
            let pid = with_cluster(&cluster, |c| c.pid(node));
            let result = match pid {
                Some(pid) => clocks
                    .set(node, offset_s, Some(pid))
                    .await
                    .map_err(|e| e.to_string()),
                None => Err(format!("node {node} is not running")),
            };
            done.time = rec.now();
            match &result {
                Ok(()) => done.ty = OpType::Ok,
                Err(e) => {
                    done.ty = OpType::Fail;
                    done.error = Some(e.clone());
                }
            }
            rec.record(done);
            result
        });
    }
    let mut errors = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(e),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        println!("jepsen: retention: every node's clock is {offset_s:+}s ahead");
        Ok(())
    } else {
        Err(format!(
            "the clocks could not be set {offset_s:+}s ahead: {}",
            errors.join("; ")
        ))
    }
}

/// The shards the drain knew and any ListShards shows now (one try: a shard that appears late
/// is read in the next round).
async fn shards_now(env: &Env<'_>, client: &StreamdClient) -> Vec<String> {
    let mut shards: BTreeSet<String> = env.shards.iter().cloned().collect();
    if let Ok(Ok(listed)) = tokio::time::timeout(
        Duration::from_secs(5),
        client.list_shards(&env.config.stream),
    )
    .await
    {
        shards.extend(listed.into_iter().map(|s| s.shard_id));
    }
    shards.into_iter().collect()
}

#[derive(Debug, Default)]
struct Round {
    reads: usize,
    failed: usize,
    a_records: usize,
}

/// Reads every shard through every node once, each read a pair of lines; `ResourceNotFound` (a
/// shard past retention the stream forgot) is an answer, any other error a failure.
async fn read_round(
    env: &Env<'_>,
    clients: &[(u64, StreamdClient)],
    shards: &[String],
    prefix: &str,
    a_values: &HashSet<String>,
) -> Round {
    let rec = env.rec;
    let mut round = Round::default();
    for (node, client) in clients {
        let process = format!("{prefix}-n{node}");
        for shard in shards {
            let op = rec.next_op();
            let mut invoke = Op::new(OpType::Invoke, F::RetentionRead, &process, op, rec.now());
            invoke.shard = Some(shard.clone());
            invoke.node = Some(*node);
            let mut done = invoke.clone();
            rec.record(invoke);
            let result = tokio::time::timeout(
                READ_DEADLINE,
                client.read_shard_all(&env.config.stream, shard),
            )
            .await;
            done.time = rec.now();
            round.reads += 1;
            match result {
                Ok(Ok(records)) => {
                    done.ty = OpType::Ok;
                    done.records = records
                        .iter()
                        .map(|r| Rec(r.sequence_number.clone(), value_of(&r.data)))
                        .collect();
                    round.a_records += done
                        .records
                        .iter()
                        .filter(|r| a_values.contains(&r.1))
                        .count();
                }
                Ok(Err(e)) => {
                    done.ty = OpType::Fail;
                    done.error = Some(format!("{}: {e}", e.code().name()));
                    if e.code() != ErrorCode::ResourceNotFound {
                        round.failed += 1;
                    }
                }
                Err(_) => {
                    done.ty = OpType::Fail;
                    done.error = Some(format!("no answer within {READ_DEADLINE:?}"));
                    round.failed += 1;
                }
            }
            rec.record(done);
        }
    }
    round
}

/// SIGKILLs node `id`, starts it again on its data, waits until it is ready.
async fn restart(env: &Env<'_>, id: u64, admin: SocketAddr) -> Result<Duration, String> {
    let rec = env.rec;
    let op = rec.next_op();
    let mut invoke = Op::new(
        OpType::Invoke,
        F::RetentionRestart,
        "retention-restart",
        op,
        rec.now(),
    );
    invoke.node = Some(id);
    let mut done = invoke.clone();
    rec.record(invoke);
    let t = Instant::now();
    let result = with_cluster(&env.cluster, |c| {
        c.kill(id)
            .map_err(|e| format!("cannot kill node {id}: {e}"))?;
        c.spawn(id)
            .map_err(|e| format!("cannot restart node {id}: {e}"))
    });
    let result = match result {
        Ok(()) => cluster::wait_ready(&[(id, admin)], READY_DEADLINE)
            .await
            .map(|()| t.elapsed())
            .map_err(|_| format!("node {id} was not ready {READY_DEADLINE:?} after its restart")),
        Err(e) => Err(e),
    };
    done.time = rec.now();
    match &result {
        Ok(d) => {
            done.ty = OpType::Ok;
            println!(
                "jepsen: retention: node {id} killed and restarted, ready after {:.1}s",
                d.as_secs_f64()
            );
        }
        Err(e) => {
            done.ty = OpType::Fail;
            done.error = Some(e.clone());
        }
    }
    rec.record(done);
    result
}
