//! `bench produce`, and the producer fleet the other modes reuse.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::ProgressBar;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::Ctx;
use super::report::{Report, throughput};
use super::workers::{Budget, ProducerSpec, Stats, producer};
use crate::cli::BenchArgs;
use crate::error::CtlError;
use crate::progress::timed_bar;

pub(super) async fn run(ctx: &Ctx, stream: &str, args: &BenchArgs) -> Result<Report, CtlError> {
    let shards = open_shards(ctx, stream).await?;
    let acked = Arc::new(AtomicU64::new(0));
    let bar = timed_bar(args.duration);
    let budget = Budget::Until(Instant::now() + args.duration);
    let (stats, elapsed) = fleet(ctx, stream, args, budget, false, &acked, &bar).await;
    bar.finish_and_clear();
    let mut report = super::report("produce", stream, args, shards);
    report.produce = Some(throughput(
        stats.records,
        stats.bytes,
        elapsed,
        stats.calls,
        stats.failed_calls,
        stats.failed_records,
        &stats.call_latency,
    ));
    report.errors = stats.errors;
    Ok(report)
}

/// Open shards of the stream (a bench on an existing stream reports its real shard count).
pub(super) async fn open_shards(ctx: &Ctx, stream: &str) -> Result<u32, CtlError> {
    let d = ctx
        .client
        .describe_stream_summary(stream)
        .await
        .map_err(|e| CtlError::about_stream(stream, e))?;
    Ok(d.open_shard_count)
}

/// Runs `--concurrency` producers until `budget` runs out, ticking `bar` (its position in
/// seconds, or in records for a record budget). Returns the merged stats and the wall time.
pub(super) async fn fleet(
    ctx: &Ctx,
    stream: &str,
    args: &BenchArgs,
    budget: Budget,
    stamp: bool,
    acked: &Arc<AtomicU64>,
    bar: &ProgressBar,
) -> (Stats, Duration) {
    let spec = ProducerSpec {
        client: ctx.client.clone(),
        stream: stream.to_string(),
        record_size: args.record_size,
        batch_size: args.batch_size,
        stamp,
        acked: acked.clone(),
    };
    let started = Instant::now();
    let handles: Vec<JoinHandle<Stats>> = (0..args.concurrency)
        .map(|w| tokio::spawn(producer(spec.clone(), w, budget.clone())))
        .collect();
    let by_records = matches!(budget, Budget::Records(_));
    while !handles.iter().all(JoinHandle::is_finished) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let n = acked.load(Ordering::Relaxed);
        let secs = started.elapsed().as_secs_f64().max(1e-3);
        bar.set_position(if by_records {
            n
        } else {
            started.elapsed().as_secs()
        });
        bar.set_message(format!(
            "{n} records acked, {:.0} records/s",
            n as f64 / secs
        ));
    }
    let elapsed = started.elapsed();
    (join(handles).await, elapsed)
}

/// Merges finished workers' stats (a panicked worker contributes nothing).
pub(super) async fn join(handles: Vec<JoinHandle<Stats>>) -> Stats {
    let mut all = Stats::default();
    for h in handles {
        if let Ok(s) = h.await {
            all.merge(&s);
        }
    }
    all
}
