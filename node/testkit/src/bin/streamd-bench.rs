//! `streamd-bench`: write throughput and ack latency of PutRecords.
//!
//! Starts a local cluster with `--shard-limits off` (or targets `--endpoint`s of a running one),
//! creates a fresh stream, runs `--producers` concurrent producers that each send PutRecords
//! batches of `--batch` random-key records of `--record-size` bytes for `--duration`, then prints
//! records/s, MB/s, ack latency percentiles (one sample per call) and error counts. `--json FILE`
//! writes the same report as JSON; `--verify` reads every shard back and checks the count.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use streamd_client::{ClientError, ClientOptions, StreamdClient, v1};
use streamd_proto::limits::{MAX_GET_RECORDS, MAX_PUT_RECORDS, MAX_RECORD_BYTES};
use streamd_testkit::bench::{BenchConfig, ProducerStats, Report, parse_duration};
use streamd_testkit::{Cluster, default_binary};
use tokio::time::Instant;

/// Bytes of random payload each producer slices its records from.
const PAYLOAD_POOL_BYTES: usize = 64 * 1024;

#[derive(Debug, Parser)]
#[command(
    name = "streamd-bench",
    about = "Measure streamd PutRecords throughput and ack latency",
    long_about = "Starts a local cluster with --shard-limits off (unless --endpoint names a \
                  running one), creates a new stream and runs concurrent producers for --duration."
)]
struct Args {
    /// The streamd binary that starts the local cluster [default: `streamd` next to this binary].
    #[arg(long)]
    streamd: Option<PathBuf>,
    /// A running cluster's gRPC endpoint (host:port); repeat for more. No local cluster is
    /// started. Its shard limits are whatever it was started with.
    #[arg(long)]
    endpoint: Vec<String>,
    /// Nodes of the local cluster.
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Shards of the benchmark stream.
    #[arg(long, default_value_t = 1)]
    shards: u32,
    /// Concurrent producers, each with one PutRecords call in flight.
    #[arg(long, default_value_t = 16)]
    producers: usize,
    /// Data bytes per record.
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Records per PutRecords call (at most 500).
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// How long producers run: 500ms, 20s, 2m.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    duration: Duration,
    /// Stream name [default: bench-<random>]. It must not exist yet.
    #[arg(long)]
    stream: Option<String>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Afterwards, read every shard and check the count equals the acknowledged records.
    #[arg(long)]
    verify: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("streamd-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    if args.batch == 0 || args.batch > MAX_PUT_RECORDS {
        return Err(format!("--batch must be 1..={MAX_PUT_RECORDS}").into());
    }
    if args.record_size > MAX_RECORD_BYTES - 16 {
        return Err("--record-size must leave room for a 16-byte key in 1 MiB".into());
    }
    if args.producers == 0 {
        return Err("--producers must be at least 1".into());
    }

    // Held until the end: dropping it stops the nodes.
    let cluster;
    let endpoints = if args.endpoint.is_empty() {
        let binary = args.streamd.clone().unwrap_or_else(default_binary);
        eprintln!("starting {} node(s) from {}", args.nodes, binary.display());
        let c = Cluster::builder()
            .nodes(args.nodes)
            .binary(binary)
            .shard_limits_off(true)
            .start()
            .await;
        let endpoints = c.grpc_endpoints();
        cluster = Some(c);
        endpoints
    } else {
        cluster = None;
        args.endpoint.clone()
    };
    let options = ClientOptions {
        request_timeout: Duration::from_secs(30),
        ..Default::default()
    };
    let client = StreamdClient::connect_with(&endpoints, options)?;

    let stream = args
        .stream
        .clone()
        .unwrap_or_else(|| format!("bench-{:08x}", rand::rng().random::<u32>()));
    client.create_stream(&stream, args.shards).await?;
    client
        .wait_stream_active(&stream, Duration::from_secs(60))
        .await?;
    eprintln!(
        "stream {stream}: {} shard(s); {} producers x {} records of {} bytes for {:?}",
        args.shards, args.producers, args.batch, args.record_size, args.duration
    );

    let started = Instant::now();
    let deadline = started + args.duration;
    let mut tasks = Vec::with_capacity(args.producers);
    for _ in 0..args.producers {
        let client = client.clone();
        let stream = stream.clone();
        let (batch, size) = (args.batch, args.record_size);
        tasks.push(tokio::spawn(produce(client, stream, batch, size, deadline)));
    }
    let mut stats = ProducerStats::default();
    for task in tasks {
        stats.merge(&task.await?);
    }
    let elapsed = started.elapsed();

    let mut report = Report {
        config: BenchConfig {
            nodes: if cluster.is_some() {
                args.nodes
            } else {
                endpoints.len() as u64
            },
            shards: args.shards,
            producers: args.producers,
            record_size: args.record_size,
            batch: args.batch,
            duration: args.duration,
        },
        elapsed,
        stats,
        verified_records: None,
    };

    let mut ok = report.stats.records_acked > 0;
    if args.verify {
        let read = count_records(&client, &stream).await?;
        report.verified_records = Some(read);
        let acked = report.stats.records_acked;
        let unknown = report.stats.records_unknown;
        // Records of failed calls may or may not have been written.
        let verified = read >= acked && read <= acked + unknown;
        if !verified {
            eprintln!(
                "verify FAILED: read {read} records, acknowledged {acked}, unknown outcome {unknown}"
            );
        }
        ok &= verified;
    }

    print!("{}", report.to_text());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report.to_json())?)?;
    }
    drop(cluster);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn produce(
    client: StreamdClient,
    stream: String,
    batch: usize,
    record_size: usize,
    deadline: Instant,
) -> ProducerStats {
    let mut rng = StdRng::from_rng(&mut rand::rng());
    let mut pool = vec![0u8; PAYLOAD_POOL_BYTES + record_size];
    rng.fill_bytes(&mut pool);
    let pool = Bytes::from(pool);
    let sizes = vec![record_size; batch];
    let mut stats = ProducerStats::default();
    while Instant::now() < deadline {
        let records: Vec<v1::PutRecordsRequestEntry> = (0..batch)
            .map(|_| {
                let offset = rng.random_range(0..PAYLOAD_POOL_BYTES);
                v1::PutRecordsRequestEntry {
                    data: pool.slice(offset..offset + record_size),
                    partition_key: format!("{:016x}", rng.random::<u64>()),
                    explicit_hash_key: None,
                }
            })
            .collect();
        let sent = Instant::now();
        match client.put_records(&stream, records).await {
            Ok(resp) => stats.record_ok(sent.elapsed(), &resp, &sizes),
            Err(e) => {
                stats.record_failed_call(e.code().name(), batch);
                // A refused call must not turn into a busy loop against a failing cluster.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    stats
}

/// Records in every shard of the stream, counted without keeping them.
async fn count_records(client: &StreamdClient, stream: &str) -> Result<u64, ClientError> {
    let mut total = 0u64;
    for shard in client.list_shards(stream).await? {
        let mut iterator = client
            .get_shard_iterator(
                stream,
                &shard.shard_id,
                v1::ShardIteratorType::TrimHorizon,
                None,
                None,
            )
            .await?;
        loop {
            let page = client.get_records(&iterator, Some(MAX_GET_RECORDS)).await?;
            let at_tip = page.records.is_empty() && page.millis_behind_latest == 0;
            total += page.records.len() as u64;
            match page.next_shard_iterator {
                Some(next) if !at_tip && !next.is_empty() => iterator = next,
                _ => break,
            }
        }
    }
    Ok(total)
}
