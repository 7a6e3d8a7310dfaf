//! One reader tailing one shard through iterator chains. A chain is a GetShardIterator followed
//! by GetRecords on each returned next iterator; when a call fails, a new chain starts
//! AFTER_SEQUENCE_NUMBER of the last record read (TRIM_HORIZON before any). Each GetRecords that
//! returned records, or failed, is recorded with its invoke time; empty polls are not. A read
//! changes nothing, so a failed one is simply `fail`.

use std::time::Duration;

use streamd_client::{StreamdClient, v1};
use tokio::sync::watch;

use super::value_of;
use crate::history::{F, Op, OpType, Rec, Recorder, StartAt};

/// Records asked for per GetRecords.
const PAGE: u32 = 1_000;
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
/// tip).
pub async fn run(
    reader: usize,
    stream: String,
    shard: String,
    client: StreamdClient,
    rec: Recorder,
    mut mode: watch::Receiver<Mode>,
) -> ReaderStats {
    let process = format!("r{reader}");
    let short = shard
        .rsplit('-')
        .next()
        .unwrap_or(&shard)
        .trim_start_matches('0');
    let mut stats = ReaderStats::default();
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
                        // The shard is closed and read to its end.
                        _ => break 'chains,
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
    stats
}

/// Sleeps `d`, or less when the mode changes.
async fn pause(mode: &mut watch::Receiver<Mode>, d: Duration) {
    let before = *mode.borrow();
    let _ = tokio::time::timeout(d, mode.wait_for(|m| *m != before)).await;
}
