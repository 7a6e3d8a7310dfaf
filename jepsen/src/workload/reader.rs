//! One reader tailing every shard, one task per shard, through iterator chains. A chain is a
//! GetShardIterator followed by GetRecords on each returned next iterator; when a call fails, a
//! new chain starts AFTER_SEQUENCE_NUMBER of the last record read (TRIM_HORIZON before any). Each
//! GetRecords that returned records, or failed, is recorded with its invoke time; empty polls are
//! not. A read changes nothing, so a failed one is simply `fail`.
//!
//! The shard map changes under `reshard`: when a shard's task reads past its end (no next
//! iterator), the reader starts tasks on the ChildShards it was given, and it also lists the
//! shards every few seconds (and once more when asked to catch up), so a shard it never heard of
//! through a parent (say, the parent's task was stopping) is still read from TRIM_HORIZON. Each
//! shard gets one task per reader, however many parents lead to it.

use std::collections::HashSet;
use std::time::Duration;

use streamd_client::{StreamdClient, v1};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{Config, value_of};
use crate::history::{F, Op, OpType, Rec, Recorder, StartAt};

/// Records asked for per GetRecords.
const PAGE: u32 = 1_000;
/// How often a reader lists the shards, and the deadline of that call.
const RELIST: Duration = Duration::from_secs(3);
const RELIST_TIMEOUT: Duration = Duration::from_secs(3);
/// Pause after an empty page, and after a failed call.
const POLL: Duration = Duration::from_millis(100);
const BACKOFF: Duration = Duration::from_millis(300);

/// What readers are asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Tail,
    /// Keep reading until an empty page says the reader is at the tip, then stop.
    CatchUp,
    Stop,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct ReaderStats {
    pub chains: u64,
    pub records: u64,
    /// Shards this reader read (each once).
    pub shards: u64,
}

/// Runs reader `reader` over `shards` and every shard that appears later, until `mode` says stop
/// (or, in catch-up, until every shard's task has reached the tip or the end).
pub async fn run_all(
    reader: usize,
    config: Config,
    shards: Vec<String>,
    rec: Recorder,
    mut mode: watch::Receiver<Mode>,
) -> ReaderStats {
    let mut claimed: HashSet<String> = HashSet::new();
    let mut tasks: JoinSet<(ReaderStats, Vec<String>)> = JoinSet::new();
    let mut stats = ReaderStats::default();
    let mut spawned = 0usize;
    let task_mode = mode.clone();
    let mut spawn = |shard: String, tasks: &mut JoinSet<(ReaderStats, Vec<String>)>| {
        // Spread the shards' tasks over the nodes, as before resharding existed.
        let k = reader * 3 + spawned + 1;
        spawned += 1;
        match config.client(k) {
            Ok(client) => {
                tasks.spawn(run(
                    reader,
                    config.stream.clone(),
                    shard,
                    client,
                    rec.clone(),
                    task_mode.clone(),
                ));
            }
            Err(e) => eprintln!("jepsen: reader {reader}: no client for {shard}: {e}"),
        }
    };
    for shard in shards {
        if claimed.insert(shard.clone()) {
            spawn(shard, &mut tasks);
        }
    }
    let lister = config.client(reader);
    let mut ticker = tokio::time::interval(RELIST);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut caught_up_listed = false;
    loop {
        let current = *mode.borrow();
        if current != Mode::Tail && tasks.is_empty() && (caught_up_listed || current == Mode::Stop)
        {
            break;
        }
        let relist = tokio::select! {
            done = tasks.join_next(), if !tasks.is_empty() => {
                if let Some(Ok((s, children))) = done {
                    stats.chains += s.chains;
                    stats.records += s.records;
                    stats.shards += 1;
                    if *mode.borrow() != Mode::Stop {
                        for child in children {
                            if claimed.insert(child.clone()) {
                                spawn(child, &mut tasks);
                            }
                        }
                    }
                }
                false
            }
            _ = ticker.tick() => current == Mode::Tail,
            changed = mode.changed() => {
                if changed.is_err() {
                    break;
                }
                // Catching up covers shards born since the last listing.
                *mode.borrow() == Mode::CatchUp
            }
        };
        let catching_up = *mode.borrow() == Mode::CatchUp;
        if (relist || (catching_up && !caught_up_listed))
            && let Ok(client) = &lister
        {
            if catching_up {
                caught_up_listed = true;
            }
            if let Ok(Ok(all)) =
                tokio::time::timeout(RELIST_TIMEOUT, client.list_shards(&config.stream)).await
            {
                for s in all {
                    if claimed.insert(s.shard_id.clone()) {
                        spawn(s.shard_id, &mut tasks);
                    }
                }
            }
        } else if catching_up && lister.is_err() {
            caught_up_listed = true;
        }
    }
    while let Some(done) = tasks.join_next().await {
        if let Ok((s, _)) = done {
            stats.chains += s.chains;
            stats.records += s.records;
            stats.shards += 1;
        }
    }
    stats
}

fn pair(rec: &Recorder, invoke: Op, ty: OpType, fill: impl FnOnce(&mut Op)) {
    let mut done = invoke.clone();
    done.ty = ty;
    done.time = rec.now();
    fill(&mut done);
    rec.record(invoke);
    rec.record(done);
}

/// Runs reader `reader` on `shard` until `mode` says stop (or, in catch-up, until it reaches the
/// tip), or the shard ends; returns the child shards it was told of at the end.
pub async fn run(
    reader: usize,
    stream: String,
    shard: String,
    client: StreamdClient,
    rec: Recorder,
    mut mode: watch::Receiver<Mode>,
) -> (ReaderStats, Vec<String>) {
    let process = format!("r{reader}");
    let short = shard
        .rsplit('-')
        .next()
        .unwrap_or(&shard)
        .trim_start_matches('0');
    let mut stats = ReaderStats::default();
    let mut children = Vec::new();
    let mut last: Option<String> = None;
    'chains: loop {
        if *mode.borrow() == Mode::Stop {
            break;
        }
        let chain = format!("r{reader}-s{short}-{}", stats.chains);
        stats.chains += 1;
        let start = StartAt {
            kind: if last.is_some() {
                "AFTER_SEQUENCE_NUMBER".into()
            } else {
                "TRIM_HORIZON".into()
            },
            seq: last.clone(),
        };
        let iterator_type = if last.is_some() {
            v1::ShardIteratorType::AfterSequenceNumber
        } else {
            v1::ShardIteratorType::TrimHorizon
        };
        let mut invoke = Op::new(
            OpType::Invoke,
            F::Iterator,
            &process,
            rec.next_op(),
            rec.now(),
        );
        invoke.shard = Some(shard.clone());
        invoke.chain = Some(chain.clone());
        invoke.start = Some(start);
        let mut iterator = match client
            .get_shard_iterator(&stream, &shard, iterator_type, last.clone(), None)
            .await
        {
            Ok(it) => {
                pair(&rec, invoke, OpType::Ok, |_| {});
                it
            }
            Err(e) => {
                pair(&rec, invoke, OpType::Fail, |d| {
                    d.error = Some(e.to_string())
                });
                pause(&mut mode, BACKOFF).await;
                continue;
            }
        };
        loop {
            let current = *mode.borrow();
            if current == Mode::Stop {
                break 'chains;
            }
            let mut invoke = Op::new(OpType::Invoke, F::Read, &process, rec.next_op(), rec.now());
            invoke.shard = Some(shard.clone());
            invoke.chain = Some(chain.clone());
            match client.get_records(&iterator, Some(PAGE)).await {
                Ok(page) => {
                    let empty = page.records.is_empty();
                    if !empty {
                        let records: Vec<Rec> = page
                            .records
                            .iter()
                            .map(|r| Rec(r.sequence_number.clone(), value_of(&r.data)))
                            .collect();
                        last = records.last().map(|r| r.0.clone());
                        stats.records += records.len() as u64;
                        pair(&rec, invoke, OpType::Ok, |d| d.records = records);
                    }
                    match page.next_shard_iterator {
                        Some(next) if !next.is_empty() => iterator = next,
                        // The shard is closed and read to its end: its children carry on.
                        _ => {
                            children = page.child_shards.into_iter().map(|c| c.shard_id).collect();
                            break 'chains;
                        }
                    }
                    if empty {
                        if current == Mode::CatchUp && page.millis_behind_latest == 0 {
                            break 'chains;
                        }
                        pause(&mut mode, POLL).await;
                    }
                }
                Err(e) => {
                    pair(&rec, invoke, OpType::Fail, |d| {
                        d.error = Some(e.to_string())
                    });
                    pause(&mut mode, BACKOFF).await;
                    continue 'chains;
                }
            }
        }
    }
    (stats, children)
}

/// Sleeps `d`, or less when the mode changes.
async fn pause(mode: &mut watch::Receiver<Mode>, d: Duration) {
    let before = *mode.borrow();
    let _ = tokio::time::timeout(d, mode.wait_for(|m| *m != before)).await;
}
