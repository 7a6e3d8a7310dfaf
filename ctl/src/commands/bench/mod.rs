//! `streamctl bench produce|consume|e2e`: the benchmark of record.
//!
//! - [`produce`]: `--concurrency` producers, each with one PutRecords call of `--batch-size`
//!   records in flight, for `--duration`; ack latency per call.
//! - [`consume`]: fills the stream with `--records`, then one reader per shard reads it all back
//!   from TRIM_HORIZON; latency per GetRecords call.
//! - [`e2e`]: producers and readers at once; each record carries its send time, so readers
//!   measure put-to-read latency.
//!
//! The stream is created (`bench-<random>`, `--shards`) and deleted afterwards unless `--stream`
//! names one or `--keep` is given. [`workers`] holds the producer and reader loops; [`report`]
//! the result's shape.

mod consume;
mod e2e;
mod produce;
mod report;
mod workers;

use streamd_proto::limits::{MAX_PUT_RECORDS, MAX_RECORD_BYTES};

use super::Ctx;
use crate::cli::{BenchArgs, BenchCmd};
use crate::error::CtlError;
use crate::output::write_json_file;
use report::{Report, report_text};

pub(crate) async fn run(ctx: &Ctx, cmd: BenchCmd) -> Result<(), CtlError> {
    let (args, mode) = match &cmd {
        BenchCmd::Produce(a) => (a.clone(), "produce"),
        BenchCmd::Consume(a) => (a.common.clone(), "consume"),
        BenchCmd::E2e(a) => (a.clone(), "e2e"),
    };
    validate(&args, mode)?;
    let stream = BenchStream::open(ctx, &args).await?;
    let result = match &cmd {
        BenchCmd::Produce(a) => produce::run(ctx, &stream.name, a).await,
        BenchCmd::Consume(a) => consume::run(ctx, &stream.name, a).await,
        BenchCmd::E2e(a) => e2e::run(ctx, &stream.name, a).await,
    };
    // Clean up whatever the outcome, then report the outcome.
    stream.close(ctx).await;
    let report = result?;
    if let Some(path) = &args.json {
        write_json_file(path, &report)?;
    }
    ctx.out.emit(&report, report_text)
}

fn validate(args: &BenchArgs, mode: &str) -> Result<(), CtlError> {
    let usage = |m: String| Err(CtlError::Usage(m));
    if args.concurrency == 0 {
        return usage("--concurrency must be at least 1".into());
    }
    if !(1..=MAX_PUT_RECORDS).contains(&args.batch_size) {
        return usage(format!("--batch-size must be 1 to {MAX_PUT_RECORDS}"));
    }
    let min = if mode == "e2e" {
        workers::STAMP_BYTES
    } else {
        1
    };
    // Partition keys (up to 20 bytes here) count toward the record size limit.
    if !(min..=MAX_RECORD_BYTES - 64).contains(&args.record_size) {
        return usage(format!(
            "--record-size must be {min} to {} bytes",
            MAX_RECORD_BYTES - 64
        ));
    }
    if args.shards == 0 {
        return usage("--shards must be at least 1".into());
    }
    Ok(())
}

/// The stream a bench runs on, and whether the bench owns it.
struct BenchStream {
    name: String,
    delete: bool,
}

impl BenchStream {
    async fn open(ctx: &Ctx, args: &BenchArgs) -> Result<BenchStream, CtlError> {
        if let Some(name) = &args.stream {
            ctx.client
                .wait_stream_active(name, std::time::Duration::from_secs(5))
                .await
                .map_err(|e| CtlError::about_stream(name, e))?;
            return Ok(BenchStream {
                name: name.clone(),
                delete: false,
            });
        }
        let name = format!("bench-{:08x}", rand::random::<u32>());
        let bar = crate::progress::spinner(format!(
            "creating stream {name} with {} shards",
            args.shards
        ));
        let created = async {
            ctx.client
                .create_stream(&name, args.shards)
                .await
                .map_err(CtlError::from_client)?;
            ctx.client
                .wait_stream_active(&name, std::time::Duration::from_secs(120))
                .await
                .map_err(CtlError::from_client)
        }
        .await;
        bar.finish_and_clear();
        created?;
        Ok(BenchStream {
            name,
            delete: !args.keep,
        })
    }

    async fn close(self, ctx: &Ctx) {
        if self.delete
            && let Err(e) = ctx.client.delete_stream(&self.name).await
        {
            eprintln!(
                "warning: failed to delete bench stream '{}': {e}; delete it with `streamctl stream delete {}`",
                self.name, self.name
            );
        }
    }
}

/// The report's fixed part.
fn report(mode: &'static str, stream: &str, args: &BenchArgs, shards: u32) -> Report {
    Report {
        mode,
        stream: stream.to_string(),
        shards,
        concurrency: args.concurrency,
        record_size: args.record_size,
        batch_size: args.batch_size,
        produce: None,
        consume: None,
        end_to_end_latency_ms: None,
        errors: Default::default(),
    }
}
