//! `streamd-bench`: write throughput and ack latency of PutRecords.
//!
//! Starts a local cluster with `--shard-limits off` (or targets `--endpoint`s of a running one),
//! creates a fresh stream, runs `--producers` concurrent producers that each send PutRecords
//! batches of `--batch` random-key records of `--record-size` bytes for `--duration`, then prints
//! records/s, MB/s, ack latency percentiles (one sample per call) and error counts. `--json FILE`
//! writes the same report as JSON; `--verify` reads every shard back and checks the count.
//! `--api producer` sends single records through streamd-client's batching `Producer` instead
//! (latency is then per record, send to ack), optionally exactly `--records` of them.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use streamd_client::{ClientError, ClientOptions, Producer, ProducerConfig, StreamdClient, v1};
use streamd_proto::limits::{MAX_GET_RECORDS, MAX_PUT_RECORDS, MAX_RECORD_BYTES};
use streamd_testkit::bench::{BenchConfig, ProducerStats, Report, parse_duration};
use streamd_testkit::kinesis_http::KinesisHttp;
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
    /// A running cluster's Kinesis endpoint (host:port), for `--api kinesis`; repeat for more.
    #[arg(long)]
    kinesis_endpoint: Vec<String>,
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
    /// Which front door producers and readers use: the gRPC API or the Kinesis API (AWS JSON 1.1
    /// over HTTP/1.1, to each node's Kinesis port in turn).
    #[arg(long, value_enum, default_value_t = Api::Grpc)]
    api: Api,
    /// Afterwards, read the whole stream back with GetRecords, one reader per shard, and report
    /// read throughput and per-call latency.
    #[arg(long)]
    read: bool,
    /// With `--api producer`: send exactly this many records in all (split over the producers)
    /// instead of running for --duration.
    #[arg(long)]
    records: Option<u64>,
    /// With `--api producer`: MiB accepted and not yet acknowledged before `send` waits.
    #[arg(long, default_value_t = 64)]
    buffer_mib: usize,
    /// With `--api producer`: PutRecords requests in flight per shard (1 keeps send order).
    #[arg(long, default_value_t = 1)]
    in_flight_per_shard: usize,
    /// With `--api producer`: number records so shards drop retried duplicates.
    #[arg(long)]
    idempotent: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Api {
    Grpc,
    Kinesis,
    /// streamd-client's batching producer over gRPC: one `send` per record; --batch is unused.
    Producer,
}

/// The front door a producer or reader uses: a gRPC client, or a Kinesis JSON caller.
#[derive(Clone)]
enum Front {
    Grpc(StreamdClient),
    Kinesis(Box<KinesisHttp>),
}

impl Front {
    async fn put_records(
        &self,
        stream: &str,
        records: Vec<v1::PutRecordsRequestEntry>,
    ) -> Result<v1::PutRecordsResponse, String> {
        match self {
            Front::Grpc(c) => c
                .put_records(stream, records)
                .await
                .map_err(|e| e.code().name().to_string()),
            Front::Kinesis(k) => k
                .put_records(stream, &records)
                .await
                .map_err(|e| e.name().to_string()),
        }
    }
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
    if args.records.is_some() && args.api != Api::Producer {
        return Err("--records needs --api producer".into());
    }

    // Held until the end: dropping it stops the nodes.
    let cluster;
    let kinesis_endpoints: Vec<String>;
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
        kinesis_endpoints = c
            .node_ids()
            .into_iter()
            .map(|i| c.kinesis_addr(i).to_string())
            .collect();
        cluster = Some(c);
        endpoints
    } else {
        cluster = None;
        kinesis_endpoints = args.kinesis_endpoint.clone();
        args.endpoint.clone()
    };
    if args.api == Api::Kinesis && kinesis_endpoints.is_empty() {
        return Err("--api kinesis with --endpoint needs --kinesis-endpoint".into());
    }
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
    let mut stats = ProducerStats::default();
    if args.api == Api::Producer {
        let config = ProducerConfig {
            max_in_flight_bytes: args.buffer_mib * 1024 * 1024,
            max_in_flight_per_shard: args.in_flight_per_shard,
            idempotent: args.idempotent,
            ..ProducerConfig::default()
        };
        let producer = Producer::new(client.clone(), config)?;
        let mut tasks = Vec::with_capacity(args.producers);
        for p in 0..args.producers as u64 {
            let count = args
                .records
                .map(|n| n / args.producers as u64 + u64::from(p < n % args.producers as u64));
            tasks.push(tokio::spawn(produce_singly(
                producer.clone(),
                stream.clone(),
                args.record_size,
                count,
                deadline,
            )));
        }
        for task in tasks {
            stats.merge(&task.await?);
        }
        producer.close().await;
        eprintln!("producer: {:?}", producer.stats());
    } else {
        let mut tasks = Vec::with_capacity(args.producers);
        for p in 0..args.producers {
            let client = match args.api {
                Api::Kinesis => Front::Kinesis(Box::new(KinesisHttp::new(
                    &kinesis_endpoints[p % kinesis_endpoints.len()],
                ))),
                Api::Grpc | Api::Producer => Front::Grpc(client.clone()),
            };
            let stream = stream.clone();
            let (batch, size) = (args.batch, args.record_size);
            tasks.push(tokio::spawn(produce(client, stream, batch, size, deadline)));
        }
        for task in tasks {
            stats.merge(&task.await?);
        }
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
            latency_of: if args.api == Api::Producer {
                "record, send to ack"
            } else {
                "PutRecords"
            },
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
    if args.read {
        let readers: Vec<Front> = match args.api {
            Api::Grpc | Api::Producer => vec![Front::Grpc(client.clone())],
            Api::Kinesis => kinesis_endpoints
                .iter()
                .map(|e| Front::Kinesis(Box::new(KinesisHttp::new(e))))
                .collect(),
        };
        let r = read_back(&client, &readers, &stream).await?;
        println!(
            "read ({:?}): {} records, {:.2} MB in {:.1}s: {:.0} records/s, {:.2} MB/s; GetRecords latency ms p50 {:.2} p99 {:.2}",
            args.api,
            r.records,
            r.bytes as f64 / 1e6,
            r.elapsed.as_secs_f64(),
            r.records as f64 / r.elapsed.as_secs_f64(),
            r.bytes as f64 / 1e6 / r.elapsed.as_secs_f64(),
            r.latency.value_at_quantile(0.5) as f64 / 1000.0,
            r.latency.value_at_quantile(0.99) as f64 / 1000.0,
        );
    }
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
    client: Front,
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
                    producer_seq: None,
                }
            })
            .collect();
        let sent = Instant::now();
        match client.put_records(&stream, records).await {
            Ok(resp) => stats.record_ok(sent.elapsed(), &resp, &sizes),
            Err(e) => {
                stats.record_failed_call(&e, batch);
                // A refused call must not turn into a busy loop against a failing cluster.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    stats
}

/// One producer task over the shared batching producer: a `send` per record, until `count`
/// records are sent or, without a count, until `deadline`. Each record's latency runs from its
/// `send` to its acknowledgement.
async fn produce_singly(
    producer: Producer,
    stream: String,
    record_size: usize,
    count: Option<u64>,
    deadline: Instant,
) -> ProducerStats {
    let mut rng = StdRng::from_rng(&mut rand::rng());
    let mut pool = vec![0u8; PAYLOAD_POOL_BYTES + record_size];
    rng.fill_bytes(&mut pool);
    let pool = Bytes::from(pool);
    let mut stats = ProducerStats::default();
    let mut acks = tokio::task::JoinSet::new();
    let mut sent = 0u64;
    while count.map_or(Instant::now() < deadline, |n| sent < n) {
        let offset = rng.random_range(0..PAYLOAD_POOL_BYTES);
        let key = format!("{:016x}", rng.random::<u64>());
        let started = Instant::now();
        let pending = producer
            .send(&stream, &key, pool.slice(offset..offset + record_size))
            .await;
        acks.spawn(async move { (pending.await, started.elapsed()) });
        sent += 1;
        while let Some(done) = acks.try_join_next() {
            stats.record_single(done, record_size);
        }
    }
    while let Some(done) = acks.join_next().await {
        stats.record_single(done, record_size);
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

struct ReadReport {
    records: u64,
    bytes: u64,
    elapsed: Duration,
    /// Per GetRecords call, in microseconds.
    latency: hdrhistogram::Histogram<u64>,
}

/// Reads every shard from TRIM_HORIZON to its tip, one concurrent reader per shard.
async fn read_back(
    client: &StreamdClient,
    readers: &[Front],
    stream: &str,
) -> Result<ReadReport, Box<dyn std::error::Error>> {
    let shards = client.list_shards(stream).await?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, shard) in shards.into_iter().enumerate() {
        let reader = readers[i % readers.len()].clone();
        let stream = stream.to_string();
        tasks.push(tokio::spawn(async move {
            read_shard(reader, stream, shard.shard_id).await
        }));
    }
    let mut report = ReadReport {
        records: 0,
        bytes: 0,
        elapsed: Duration::ZERO,
        latency: hdrhistogram::Histogram::new(3)?,
    };
    for t in tasks {
        let (records, bytes, latency) = t.await??;
        report.records += records;
        report.bytes += bytes;
        report.latency.add(&latency)?;
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

async fn read_shard(
    reader: Front,
    stream: String,
    shard: String,
) -> Result<(u64, u64, hdrhistogram::Histogram<u64>), String> {
    let mut latency = hdrhistogram::Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut iterator = match &reader {
        Front::Grpc(c) => c
            .get_shard_iterator(
                &stream,
                &shard,
                v1::ShardIteratorType::TrimHorizon,
                None,
                None,
            )
            .await
            .map_err(|e| e.to_string())?,
        Front::Kinesis(k) => k
            .trim_horizon(&stream, &shard)
            .await
            .map_err(|e| e.to_string())?,
    };
    loop {
        let sent = Instant::now();
        let (n, b, next, at_tip) = match &reader {
            Front::Grpc(c) => {
                let page = c
                    .get_records(&iterator, Some(MAX_GET_RECORDS))
                    .await
                    .map_err(|e| e.to_string())?;
                let at_tip = page.records.is_empty() && page.millis_behind_latest == 0;
                let b = page.records.iter().map(|r| r.data.len() as u64).sum();
                (
                    page.records.len() as u64,
                    b,
                    page.next_shard_iterator,
                    at_tip,
                )
            }
            Front::Kinesis(k) => k.get_records(&iterator).await.map_err(|e| e.to_string())?,
        };
        let _ = latency.record(sent.elapsed().as_micros() as u64);
        records += n;
        bytes += b;
        match next {
            Some(next) if !at_tip && !next.is_empty() => iterator = next,
            _ => return Ok((records, bytes, latency)),
        }
    }
}
