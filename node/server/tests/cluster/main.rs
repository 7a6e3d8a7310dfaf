//! Cluster integration tests: real `streamd` processes on loopback, started by
//! `streamd-testkit`, driven through `streamd-client`.
//!
//! - t10: put and get on three nodes: exactly once, in order, routed by MD5, iterator types.
//! - t15: `streamd certs`: a CA, node and client certificates, keys owner-only, no overwrite.
//! - t20: SIGKILL of a shard leader under load: writes resume, replicas converge, nothing lost.
//! - t25: a follower that missed more than the leader's log holds catches up by snapshot.
//! - t30: full-cluster restart: streams, shards and records come back.
//! - t35: a restarted node reports ready only once its replicas applied what was committed
//!   while it was down.
//! - t40: every API limit refused with the right error code, and throughput limits.
//! - t50: a node without `--initial-cluster` forms a one-node cluster.
//! - t52: `/metrics`: every documented metric, shard-level ones only as enhanced monitoring says.
//! - t56: OTLP export: a PutRecords forwarded from a follower to the shard leader is one trace
//!   across the two nodes.
//! - t60: the Rust AWS SDK against the Kinesis API: streams, records, consumers, SubscribeToShard.
//! - t70: split, merge and UpdateShardCount under load, and a split whose controller is killed:
//!   every key's acknowledged records once each, in acknowledgement order, across the lineage.
//! - t80: a node lost for good: its replicas are re-created on the others, all replicas identical;
//!   a drained node hands everything over and leaves; a node joining with `--join` gets its share
//!   of the replicas, then another node drains.
//! - t85: SIGTERM of a shard leader under writes: leaderships move before it exits 0, writes
//!   pause well under an election timeout, nothing acknowledged is lost.
//! - t90: the batching producer, idempotent: 100,000 records into 8 shards through a shard
//!   leader's SIGKILL and restart, all acknowledged, read back exactly once each, in send order
//!   per shard; and KPL-aggregated records deaggregated back to every user record.
//! - t92: an acknowledgement lost after the commit: an idempotent retry is not written twice.
//! - t95: a consumer group of three workers: leases balance, move off a dead worker, keep
//!   parents before children across a reshard, and resume exactly after checkpoints.
//!
//! Every wait is a deadline poll (`streamd_testkit::wait_*`) and every test is bounded; set
//! `STREAMD_TEST_SEED` to replay a run's random choices, `STREAMD_TEST_KEEP=1` to keep the data
//! directories of a failed run.
#![allow(clippy::unwrap_used)]

mod t10_put_get;
mod t15_certs;
mod t20_kill_leader;
mod t25_snapshot_catch_up;
mod t26_state_behind_log;
mod t30_full_restart;
mod t35_ready_after_catch_up;
mod t40_bad_input;
mod t50_single_node;
mod t52_metrics;
mod t56_otlp;
mod t60_kinesis_sdk;
mod t70_reshard;
mod t80_node_loss;
mod t85_graceful_stop;
mod t90_producer;
mod t92_idempotent;
mod t95_consumer_group;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use streamd_client::{ClientError, ErrorCode, StreamdClient, v1};
use streamd_proto::ids::{HashKey, HashKeyRange, SequenceNumber};
use streamd_testkit::Cluster;
use tokio::time::Instant;

pub(crate) const STREAMD: &str = env!("CARGO_BIN_EXE_streamd");

/// Starts `nodes` nodes of the binary under test.
pub(crate) async fn start_cluster(nodes: u64, shard_limits_off: bool) -> Cluster {
    Cluster::builder()
        .nodes(nodes)
        .binary(STREAMD)
        .shard_limits_off(shard_limits_off)
        .start()
        .await
}

/// Creates a stream and waits until it is ACTIVE.
pub(crate) async fn create_active(
    client: &StreamdClient,
    stream: &str,
    shards: u32,
) -> v1::StreamDescription {
    client.create_stream(stream, shards).await.unwrap();
    client
        .wait_stream_active(stream, Duration::from_secs(60))
        .await
        .unwrap()
}

/// Client options for writers under faults: a call that outlives this has an unknown outcome.
pub(crate) fn writer_options() -> streamd_client::ClientOptions {
    streamd_client::ClientOptions {
        request_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

/// Runs a test body under an overall deadline.
pub(crate) async fn bounded<F: Future>(limit: Duration, what: &str, body: F) -> F::Output {
    match tokio::time::timeout(limit, body).await {
        Ok(v) => v,
        Err(_) => panic!("{what} did not finish within {limit:?}"),
    }
}

/// A seeded RNG; the seed is printed so a failing run can be replayed with `STREAMD_TEST_SEED`.
pub(crate) fn test_rng(test: &str) -> StdRng {
    let seed = std::env::var("STREAMD_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random::<u64>());
    eprintln!("{test}: STREAMD_TEST_SEED={seed}");
    StdRng::seed_from_u64(seed)
}

/// Random bytes, `len` of them.
pub(crate) fn random_data(rng: &mut StdRng, len: usize) -> Bytes {
    let mut data = vec![0u8; len];
    rng.fill_bytes(&mut data);
    Bytes::from(data)
}

/// `n` records over `keys` partition keys, with data of `sizes` bytes.
pub(crate) fn random_entries(
    rng: &mut StdRng,
    n: usize,
    keys: u32,
    sizes: std::ops::RangeInclusive<usize>,
) -> Vec<v1::PutRecordsRequestEntry> {
    (0..n)
        .map(|_| {
            let key = format!("key-{}", rng.random_range(0..keys));
            let len = rng.random_range(sizes.clone());
            streamd_client::client::entry(key, random_data(rng, len))
        })
        .collect()
}

pub(crate) fn seq(s: &str) -> SequenceNumber {
    s.parse()
        .unwrap_or_else(|e| panic!("server returned a bad sequence number {s:?}: {e}"))
}

pub(crate) fn key_range(shard: &v1::Shard) -> HashKeyRange {
    let r = shard
        .hash_key_range
        .as_ref()
        .unwrap_or_else(|| panic!("{shard:?} has no range"));
    HashKeyRange {
        start: r.starting_hash_key.parse().unwrap(),
        end: r.ending_hash_key.parse().unwrap(),
    }
}

/// An acknowledged record: where the server said it put it.
#[derive(Debug, Clone)]
pub(crate) struct Acked {
    /// Which writer put it: ack order is only meaningful within one writer.
    pub(crate) writer: usize,
    pub(crate) shard_id: String,
    pub(crate) seq: SequenceNumber,
    pub(crate) key: String,
    pub(crate) data: Bytes,
    /// When the call that put it was sent, and when its acknowledgement arrived.
    pub(crate) sent: Instant,
    pub(crate) at: Instant,
}

/// What became of the records one writer sent.
#[derive(Debug, Default)]
pub(crate) struct Outcomes {
    pub(crate) acked: Vec<Acked>,
    /// Refused one by one for throughput: definitely not written, safe to send again.
    pub(crate) throttled: Vec<v1::PutRecordsRequestEntry>,
    /// Failed calls and other per-record failures: may or may not have been written.
    pub(crate) unknown: Vec<v1::PutRecordsRequestEntry>,
    pub(crate) failed_calls: u64,
    /// Error name (per record, or of a failed call) to count.
    pub(crate) errors: BTreeMap<String, u64>,
}

impl Outcomes {
    /// Folds another writer's outcomes into these.
    pub(crate) fn absorb(&mut self, mut other: Outcomes) {
        self.acked.append(&mut other.acked);
        self.throttled.append(&mut other.throttled);
        self.unknown.append(&mut other.unknown);
        self.failed_calls += other.failed_calls;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }
}

/// Sends one PutRecords call and files every record under its outcome. A call refused as
/// invalid is a test failure: callers send valid input.
pub(crate) async fn put_and_file(
    client: &StreamdClient,
    stream: &str,
    writer: usize,
    batch: Vec<v1::PutRecordsRequestEntry>,
    out: &mut Outcomes,
) -> Result<(), ClientError> {
    let sent = Instant::now();
    match client.put_records(stream, batch.clone()).await {
        Ok(resp) => {
            let at = Instant::now();
            assert_eq!(resp.records.len(), batch.len(), "one result per record");
            let failed = resp
                .records
                .iter()
                .filter(|r| r.error_code.is_some())
                .count();
            assert_eq!(
                resp.failed_record_count as usize, failed,
                "failed_record_count"
            );
            for (entry, result) in batch.into_iter().zip(resp.records) {
                match (result.sequence_number, result.shard_id, result.error_code) {
                    (Some(s), Some(shard_id), None) => out.acked.push(Acked {
                        writer,
                        shard_id,
                        seq: seq(&s),
                        key: entry.partition_key,
                        data: entry.data,
                        sent,
                        at,
                    }),
                    (None, None, Some(code)) => {
                        let throttled = code == ErrorCode::ProvisionedThroughputExceeded.name();
                        *out.errors.entry(code).or_default() += 1;
                        if throttled {
                            out.throttled.push(entry);
                        } else {
                            out.unknown.push(entry);
                        }
                    }
                    (s, shard, code) => panic!(
                        "a result must hold a sequence number and shard id or an error code, \
                         got {s:?} {shard:?} {code:?}"
                    ),
                }
            }
            Ok(())
        }
        Err(e) => {
            assert!(
                e.retryable() || e.code() == ErrorCode::InternalFailure,
                "valid PutRecords refused: {e}"
            );
            out.failed_calls += 1;
            *out.errors.entry(e.code().name().to_string()).or_default() += 1;
            out.unknown.extend(batch);
            Err(e)
        }
    }
}

/// Every record of every shard of a stream, by shard id.
pub(crate) type StreamRecords = BTreeMap<String, Vec<v1::Record>>;

pub(crate) async fn read_stream(
    client: &StreamdClient,
    stream: &str,
) -> Result<StreamRecords, ClientError> {
    let mut all = StreamRecords::new();
    for shard in client.list_shards(stream).await? {
        let records = client.read_shard_all(stream, &shard.shard_id).await?;
        all.insert(shard.shard_id, records);
    }
    Ok(all)
}

/// Reads the stream until every acknowledged record is visible (replicas apply asynchronously).
pub(crate) async fn read_until_complete(
    client: &StreamdClient,
    stream: &str,
    acked: &[Acked],
    deadline: Duration,
) -> StreamRecords {
    let what = format!("every acknowledged record of {stream} to be readable");
    streamd_testkit::wait_ok(deadline, &what, || async {
        let read = read_stream(client, stream)
            .await
            .map_err(|e| e.to_string())?;
        let missing = missing_acked(&read, acked);
        if missing.is_empty() {
            Ok(read)
        } else {
            Err(format!("{} missing, first {:?}", missing.len(), missing[0]))
        }
    })
    .await
}

/// Acknowledged records (as `(shard, seq)`) the read does not hold with the same key and data.
pub(crate) fn missing_acked(read: &StreamRecords, acked: &[Acked]) -> Vec<(String, String)> {
    let index: HashMap<(&str, SequenceNumber), &v1::Record> = read
        .iter()
        .flat_map(|(shard, records)| {
            records
                .iter()
                .map(move |r| ((shard.as_str(), seq(&r.sequence_number)), r))
        })
        .collect();
    acked
        .iter()
        .filter(|a| match index.get(&(a.shard_id.as_str(), a.seq)) {
            Some(r) => r.data != a.data || r.partition_key != a.key,
            None => true,
        })
        .map(|a| (a.shard_id.clone(), a.seq.to_string()))
        .collect()
}

/// The exactly-once and order checks:
/// - within each shard, sequence numbers strictly increase;
/// - every acknowledged record is there once, under the acknowledged shard and sequence number,
///   with its key and bytes;
/// - for each writer, acknowledgements within a shard came in increasing sequence order;
/// - every other record is one whose put had an unknown outcome, at most once each.
pub(crate) fn check_exactly_once(
    read: &StreamRecords,
    acked: &[Acked],
    unknown: &[v1::PutRecordsRequestEntry],
) -> Result<(), String> {
    for (shard, records) in read {
        for w in records.windows(2) {
            if seq(&w[0].sequence_number) >= seq(&w[1].sequence_number) {
                return Err(format!(
                    "{shard}: sequence numbers not strictly increasing: {} then {}",
                    w[0].sequence_number, w[1].sequence_number
                ));
            }
        }
    }
    let missing = missing_acked(read, acked);
    if !missing.is_empty() {
        return Err(format!(
            "{} acknowledged records missing or altered, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        ));
    }
    let mut last: HashMap<(usize, &str), SequenceNumber> = HashMap::new();
    for a in acked {
        if let Some(prev) = last.insert((a.writer, a.shard_id.as_str()), a.seq)
            && prev >= a.seq
        {
            return Err(format!(
                "writer {} on {}: acknowledged {} after {}",
                a.writer, a.shard_id, a.seq, prev
            ));
        }
    }
    let acked_seqs: HashMap<(&str, SequenceNumber), ()> = acked
        .iter()
        .map(|a| ((a.shard_id.as_str(), a.seq), ()))
        .collect();
    let mut maybe: HashMap<(&str, &[u8]), usize> = HashMap::new();
    for u in unknown {
        *maybe
            .entry((u.partition_key.as_str(), &u.data[..]))
            .or_default() += 1;
    }
    for (shard, records) in read {
        for r in records {
            if acked_seqs.contains_key(&(shard.as_str(), seq(&r.sequence_number))) {
                continue;
            }
            match maybe.get_mut(&(r.partition_key.as_str(), &r.data[..])) {
                Some(n) if *n > 0 => *n -= 1,
                _ => {
                    return Err(format!(
                        "{shard}: record {} (key {:?}, {} bytes) was never acknowledged and no \
                         put of unknown outcome explains it (a duplicate or a stranger)",
                        r.sequence_number,
                        r.partition_key,
                        r.data.len()
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Every record routed where MD5 of its key says: inside its shard's hash key range.
pub(crate) fn check_routing(shards: &[v1::Shard], acked: &[Acked]) -> Result<(), String> {
    let ranges: HashMap<&str, HashKeyRange> = shards
        .iter()
        .map(|s| (s.shard_id.as_str(), key_range(s)))
        .collect();
    for a in acked {
        let range = ranges
            .get(a.shard_id.as_str())
            .ok_or(format!("unknown shard {}", a.shard_id))?;
        let k = HashKey::of_partition_key(&a.key);
        if !range.contains(k) {
            return Err(format!(
                "key {:?} (hash {k}) put in {} {range:?}",
                a.key, a.shard_id
            ));
        }
    }
    Ok(())
}

/// The leader of a shard, as the metadata reports it.
pub(crate) async fn shard_leader(client: &StreamdClient, stream: &str, shard_id: &str) -> u64 {
    let what = format!("a leader for {stream}/{shard_id}");
    streamd_testkit::wait_ok(Duration::from_secs(30), &what, || async {
        let shards = client
            .list_shards(stream)
            .await
            .map_err(|e| e.to_string())?;
        let shard = shards
            .iter()
            .find(|s| s.shard_id == shard_id)
            .ok_or("no such shard")?;
        shard
            .leader
            .ok_or_else(|| "no leader reported yet".to_string())
    })
    .await
}
