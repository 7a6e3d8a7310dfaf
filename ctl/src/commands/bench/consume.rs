//! `bench consume`: fill the stream, then read every shard back from TRIM_HORIZON at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::ProgressBar;
use streamd_client::v1::ShardIteratorType;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::Ctx;
use super::produce::{fleet, join, open_shards};
use super::report::{Report, throughput};
use super::workers::{Budget, ReadUntil, Stats, reader};
use crate::cli::BenchConsumeArgs;
use crate::error::CtlError;
use crate::progress::spinner;

pub(super) async fn run(
    ctx: &Ctx,
    stream: &str,
    args: &BenchConsumeArgs,
) -> Result<Report, CtlError> {
    let common = &args.common;
    let shards = open_shards(ctx, stream).await?;
    let mut report = super::report("consume", stream, common, shards);
    if args.records > 0 {
        let acked = Arc::new(AtomicU64::new(0));
        let bar = ProgressBar::new(args.records);
        bar.set_message("filling the stream");
        let budget = Budget::Records(Arc::new(AtomicU64::new(args.records)));
        let (fill, elapsed) = fleet(ctx, stream, common, budget, false, &acked, &bar).await;
        bar.finish_and_clear();
        report.produce = Some(throughput(
            fill.records,
            fill.bytes,
            elapsed,
            fill.calls,
            fill.failed_calls,
            fill.failed_records,
            &fill.call_latency,
        ));
        report.errors = fill.errors;
    }
    let mut iterators = Vec::new();
    for shard in ctx
        .client
        .list_shards(stream)
        .await
        .map_err(|e| CtlError::about_stream(stream, e))?
    {
        let it = ctx
            .client
            .get_shard_iterator(
                stream,
                &shard.shard_id,
                ShardIteratorType::TrimHorizon,
                None,
                None,
            )
            .await
            .map_err(|e| CtlError::about_stream(stream, e))?;
        iterators.push(it);
    }
    let read = Arc::new(AtomicU64::new(0));
    let bar = spinner("reading every shard from TRIM_HORIZON");
    let started = Instant::now();
    let handles: Vec<JoinHandle<Stats>> = iterators
        .into_iter()
        .map(|it| {
            tokio::spawn(reader(
                ctx.client.clone(),
                it,
                ReadUntil::CaughtUp,
                false,
                read.clone(),
            ))
        })
        .collect();
    while !handles.iter().all(JoinHandle::is_finished) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        bar.set_message(format!("{} records read", read.load(Ordering::Relaxed)));
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let stats = join(handles).await;
    report.consume = Some(throughput(
        stats.records,
        stats.bytes,
        elapsed,
        stats.calls,
        stats.failed_calls,
        0,
        &stats.call_latency,
    ));
    for (k, v) in stats.errors {
        *report.errors.entry(k).or_default() += v;
    }
    Ok(report)
}
