//! `bench e2e`: producers and per-shard readers at once. Readers start at LATEST before the
//! first put, so they see every record; each record carries its send time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use streamd_client::v1::ShardIteratorType;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::Ctx;
use super::produce::{fleet, join, open_shards};
use super::report::{Report, latency, throughput};
use super::workers::{Budget, ReadUntil, Stats, reader};
use crate::cli::BenchArgs;
use crate::error::CtlError;
use crate::progress::timed_bar;

pub(super) async fn run(ctx: &Ctx, stream: &str, args: &BenchArgs) -> Result<Report, CtlError> {
    let shards = open_shards(ctx, stream).await?;
    let mut iterators = Vec::new();
    for shard in ctx
        .client
        .list_shards(stream)
        .await
        .map_err(|e| CtlError::about_stream(stream, e))?
        .into_iter()
        .filter(super::super::views::is_open)
    {
        let it = ctx
            .client
            .get_shard_iterator(
                stream,
                &shard.shard_id,
                ShardIteratorType::Latest,
                None,
                None,
            )
            .await
            .map_err(|e| CtlError::about_stream(stream, e))?;
        iterators.push(it);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let read = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let readers: Vec<JoinHandle<Stats>> = iterators
        .into_iter()
        .map(|it| {
            tokio::spawn(reader(
                ctx.client.clone(),
                it,
                ReadUntil::Stopped(stop.clone()),
                true,
                read.clone(),
            ))
        })
        .collect();
    let acked = Arc::new(AtomicU64::new(0));
    let bar = timed_bar(args.duration);
    let budget = Budget::Until(Instant::now() + args.duration);
    let (produced, produce_elapsed) = fleet(ctx, stream, args, budget, true, &acked, &bar).await;
    bar.finish_and_clear();
    // Readers finish what was acknowledged, then stop at the tip.
    stop.store(true, Ordering::Relaxed);
    let consumed = join(readers).await;
    let consume_elapsed = started.elapsed();
    let mut report = super::report("e2e", stream, args, shards);
    report.produce = Some(throughput(
        produced.records,
        produced.bytes,
        produce_elapsed,
        produced.calls,
        produced.failed_calls,
        produced.failed_records,
        &produced.call_latency,
    ));
    report.consume = Some(throughput(
        consumed.records,
        consumed.bytes,
        consume_elapsed,
        consumed.calls,
        consumed.failed_calls,
        0,
        &consumed.call_latency,
    ));
    report.end_to_end_latency_ms = Some(latency(&consumed.e2e_latency));
    report.errors = produced.errors;
    for (k, v) in consumed.errors {
        *report.errors.entry(k).or_default() += v;
    }
    Ok(report)
}
