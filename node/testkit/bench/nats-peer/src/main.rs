//! Drives one load against a NATS JetStream cluster and prints its figures as one JSON line, so
//! that `compare.py` can put NATS next to `streamctl bench` with a client of the same class (a
//! compiled async client rather than nats-py, which saturates a core long before the servers).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::context::{Context, ContextBuilder, DeleteStreamErrorKind};
use async_nats::jetstream::stream::{Config as StreamConfig, StorageType};
use async_nats::jetstream::{self, ErrorCode};
use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde_json::json;

/// NATS JetStream load generator: runs one load and prints one JSON line on stdout.
#[derive(Parser)]
#[command(name = "nats-peer")]
struct Cli {
    /// NATS server to connect to.
    #[arg(long, default_value = "nats://127.0.0.1:14250", global = true)]
    url: String,
    #[command(subcommand)]
    load: Load,
}

#[derive(Subcommand)]
enum Load {
    /// Publish from concurrent tasks for a fixed time.
    Produce(ProduceArgs),
    /// Publish a fixed number of records, then time reading them all back from the start.
    Consume(ConsumeArgs),
}

#[derive(Args)]
struct StreamArgs {
    /// Stream to (re)create; any existing stream of that name is deleted first.
    #[arg(long, default_value = "BENCH")]
    stream: String,
    /// The one subject the stream takes.
    #[arg(long, default_value = "bench")]
    subject: String,
    /// Payload size of every record, in bytes.
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Replicas of the file-backed stream.
    #[arg(long, default_value_t = 3)]
    replicas: usize,
}

#[derive(Args)]
struct ProduceArgs {
    #[command(flatten)]
    stream: StreamArgs,
    /// Tasks publishing at once.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Publishes each task puts in flight before awaiting their acks; one latency sample.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// How long the tasks keep starting new batches.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
}

#[derive(Args)]
struct ConsumeArgs {
    #[command(flatten)]
    stream: StreamArgs,
    /// Records written, then read back.
    #[arg(long, default_value_t = 200_000)]
    records: usize,
}

/// JetStream API calls can queue behind a busy meta leader during stream churn.
const API_TIMEOUT: Duration = Duration::from_secs(30);
/// A fresh cluster elects its meta leader some seconds after /healthz turns green.
const CREATE_DEADLINE: Duration = Duration::from_secs(60);
/// Publishes in flight while filling the stream for the read load.
const FILL_IN_FLIGHT: usize = 1_000;
/// Largest pull request for the read load; matches what the other clients in the bench use.
const FETCH_MAX: usize = 10_000;
/// How long the read load waits for the stream to yield anything before it gives up.
const READ_STALL: Duration = Duration::from_secs(10);

struct Figures {
    records: u64,
    failed: u64,
    bytes_per_record: usize,
    elapsed: Duration,
    latency_us: Histogram<u64>,
}

impl Figures {
    fn to_json(&self) -> serde_json::Value {
        let secs = self.elapsed.as_secs_f64().max(f64::EPSILON);
        let pct = |q: f64| {
            (!self.latency_us.is_empty())
                .then(|| round(self.latency_us.value_at_quantile(q) as f64 / 1000.0, 3))
        };
        json!({
            "records_per_sec": round(self.records as f64 / secs, 1),
            "mb_per_sec": round(self.records as f64 * self.bytes_per_record as f64 / secs / 1e6, 2),
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "failed": self.failed,
            "records": self.records,
        })
    }
}

fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

fn histogram() -> Histogram<u64> {
    // One hour in microseconds bounds any sample, with three significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Incompressible filler, so no layer on the path can make the records cheaper than 1 KiB.
fn payload(size: usize) -> Bytes {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn fresh_stream(
    js: &Context,
    args: &StreamArgs,
) -> Result<jetstream::stream::Stream, BoxError> {
    let deadline = Instant::now() + CREATE_DEADLINE;
    // Deleting rather than purging, so every load starts from an empty Raft group and log.
    loop {
        match js.delete_stream(&args.stream).await {
            Ok(_) => break,
            Err(e) => match e.kind() {
                DeleteStreamErrorKind::JetStream(je)
                    if je.error_code() == ErrorCode::STREAM_NOT_FOUND =>
                {
                    break;
                }
                _ if Instant::now() >= deadline => return Err(e.into()),
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            },
        }
    }
    let config = StreamConfig {
        name: args.stream.clone(),
        subjects: vec![args.subject.clone()],
        num_replicas: args.replicas,
        storage: StorageType::File,
        ..Default::default()
    };
    loop {
        match js.create_stream(config.clone()).await {
            Ok(stream) => return Ok(stream),
            Err(e) if Instant::now() >= deadline => return Err(e.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

async fn produce(js: Context, args: ProduceArgs) -> Result<Figures, BoxError> {
    fresh_stream(&js, &args.stream).await?;
    let body = payload(args.stream.record_size);
    let subject = async_nats::Subject::from(args.stream.subject.as_str());
    let batch = args.batch.max(1);
    let start = Instant::now();
    let end = start + Duration::from_secs(args.duration_secs);

    let tasks: Vec<_> = (0..args.concurrency.max(1))
        .map(|_| {
            let js = js.clone();
            let body = body.clone();
            let subject = subject.clone();
            tokio::spawn(async move {
                let mut hist = histogram();
                let (mut acked, mut failed) = (0u64, 0u64);
                let mut acks = Vec::with_capacity(batch);
                while Instant::now() < end {
                    let t0 = Instant::now();
                    let mut batch_failed = 0u64;
                    for _ in 0..batch {
                        match js.publish(subject.clone(), body.clone()).await {
                            Ok(ack) => acks.push(ack),
                            Err(_) => batch_failed += 1,
                        }
                    }
                    for ack in acks.drain(..) {
                        match ack.await {
                            Ok(_) => acked += 1,
                            Err(_) => batch_failed += 1,
                        }
                    }
                    if batch_failed == 0 {
                        hist.saturating_record(micros(t0.elapsed()));
                    } else {
                        // A failed call's time says nothing about the write path, and an
                        // immediate retry would turn an outage into a busy loop of errors.
                        failed += batch_failed;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                (hist, acked, failed)
            })
        })
        .collect();

    let mut figures = Figures {
        records: 0,
        failed: 0,
        bytes_per_record: args.stream.record_size,
        elapsed: Duration::ZERO,
        latency_us: histogram(),
    };
    for task in tasks {
        let (hist, acked, failed) = task.await?;
        figures.latency_us.add(hist)?;
        figures.records += acked;
        figures.failed += failed;
    }
    // Up to the last ack, since the records of batches still in flight at the deadline count.
    figures.elapsed = start.elapsed();
    Ok(figures)
}

async fn consume(js: Context, args: ConsumeArgs) -> Result<Figures, BoxError> {
    let stream = fresh_stream(&js, &args.stream).await?;
    let body = payload(args.stream.record_size);
    let subject = async_nats::Subject::from(args.stream.subject.as_str());

    let mut written = 0u64;
    let mut failed = 0u64;
    let mut left = args.records;
    let mut acks = Vec::with_capacity(FILL_IN_FLIGHT);
    while left > 0 {
        let n = left.min(FILL_IN_FLIGHT);
        for _ in 0..n {
            match js.publish(subject.clone(), body.clone()).await {
                Ok(ack) => acks.push(ack),
                Err(_) => failed += 1,
            }
        }
        for ack in acks.drain(..) {
            match ack.await {
                Ok(_) => written += 1,
                Err(_) => failed += 1,
            }
        }
        left -= n;
    }

    let consumer = stream
        .create_consumer(pull::Config {
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::None,
            ..Default::default()
        })
        .await?;

    let mut hist = histogram();
    let mut got = 0u64;
    let mut last_progress = Instant::now();
    let start = Instant::now();
    while got < written {
        let t0 = Instant::now();
        let want = usize::try_from(written - got)
            .unwrap_or(usize::MAX)
            .min(FETCH_MAX);
        let mut batch = consumer.fetch().max_messages(want).messages().await?;
        let mut n = 0u64;
        while let Some(msg) = batch.next().await {
            msg?;
            n += 1;
        }
        if n == 0 {
            // Every record was acked as stored, so an empty answer means the replica serving
            // the consumer is still catching up; wait for it, but not forever.
            if last_progress.elapsed() > READ_STALL {
                failed += written - got;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        hist.saturating_record(micros(t0.elapsed()));
        got += n;
        last_progress = Instant::now();
    }
    Ok(Figures {
        records: got,
        failed,
        bytes_per_record: args.stream.record_size,
        elapsed: start.elapsed(),
        latency_us: hist,
    })
}

async fn run(cli: Cli) -> Result<Figures, BoxError> {
    let (concurrency, batch) = match &cli.load {
        Load::Produce(p) => (p.concurrency.max(1), p.batch.max(1)),
        Load::Consume(_) => (1, FILL_IN_FLIGHT),
    };
    let client = async_nats::ConnectOptions::new()
        .request_timeout(Some(API_TIMEOUT))
        // Room for every publish the load can have in flight, so the client's own queue is
        // never what limits it.
        .client_capacity((concurrency * batch).max(2048))
        .connect(cli.url.as_str())
        .await?;
    let js = ContextBuilder::new()
        .timeout(API_TIMEOUT)
        // The default of 5,000 unacked publishes would cap B500x16 (8,000 in flight).
        .max_ack_inflight((concurrency * batch).max(5_000))
        .backpressure_on_inflight(true)
        .build(client.clone());
    let figures = match cli.load {
        Load::Produce(args) => produce(js, args).await?,
        Load::Consume(args) => consume(js, args).await?,
    };
    client.flush().await?;
    Ok(figures)
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(figures) => {
            println!("{}", figures.to_json());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("nats-peer: {e}");
            ExitCode::FAILURE
        }
    }
}
