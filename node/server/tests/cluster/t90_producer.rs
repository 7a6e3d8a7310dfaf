//! The batching producer through a shard leader's SIGKILL and restart: 100,000 records from
//! several tasks into 8 shards on 3 nodes, every send acknowledged, and reading every shard from
//! TRIM_HORIZON finds every record, in send order per shard and per task.
//!
//! The producer runs in idempotent mode: a batch whose acknowledgement was lost in the kill is
//! sent again with the same producer numbers, and the shard answers the records it already
//! stored with their first sequence numbers, so no record may be in the stream twice. (Without
//! idempotence the same run leaves a few thousand duplicates, each explained by a retry after
//! an attempt of unknown outcome; the check below would allow those, as
//! [`Ack::unknown_outcomes`] counts them.)
//!
//! And KPL aggregation end to end: user records packed by the producer come back from
//! `kpl::deaggregate` once each, at the shard, sequence number and sub-sequence their acks name.

use std::collections::HashMap;
use std::time::Duration;

use streamd_client::kpl;
use streamd_client::producer::{Ack, PendingRecord};
use streamd_client::{ErrorCode, Producer, ProducerConfig, StreamdClient};
use streamd_testkit::{wait_ok, wait_until};
use tokio::time::Instant;

use crate::{bounded, create_active, read_stream, shard_leader, start_cluster, writer_options};

const STREAM: &str = "t90-producer";
const SHARDS: u32 = 8;
const RECORDS: u64 = 100_000;
const TASKS: u64 = 4;
/// The shard whose leader is killed.
const VICTIM: &str = "shardId-000000000003";

fn key(id: u64) -> String {
    format!("k{id}")
}

fn data(id: u64) -> Vec<u8> {
    format!("t90-{id:08}").into_bytes()
}

fn id_of(data: &[u8]) -> u64 {
    std::str::from_utf8(data)
        .ok()
        .and_then(|s| s.strip_prefix("t90-"))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a record the test never sent: {data:?}"))
}

/// Sends ids `range` split over `TASKS` tasks, each in increasing id order, and waits for
/// every acknowledgement.
async fn send_range(producer: &Producer, range: std::ops::Range<u64>) -> Vec<(u64, Ack)> {
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let producer = producer.clone();
        let ids: Vec<u64> = range.clone().filter(|id| id % TASKS == t).collect();
        tasks.push(tokio::spawn(async move {
            let mut pending: Vec<(u64, PendingRecord)> = Vec::with_capacity(ids.len());
            for id in ids {
                pending.push((id, producer.send(STREAM, &key(id), data(id)).await));
            }
            let mut acks = Vec::with_capacity(pending.len());
            for (id, p) in pending {
                match p.await {
                    Ok(ack) => acks.push((id, ack)),
                    Err(e) => panic!("record {id} failed: {e}"),
                }
            }
            acks
        }));
    }
    let mut acks = Vec::new();
    for t in tasks {
        acks.extend(t.await.unwrap());
    }
    acks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn producer_delivers_every_record_through_a_leader_kill() {
    bounded(Duration::from_secs(150), "t90", async {
        let started = Instant::now();
        let mut cluster = start_cluster(3, true).await;
        let client: StreamdClient = cluster.client_with(writer_options());
        create_active(&client, STREAM, SHARDS).await;
        let producer = Producer::new(
            client.clone(),
            ProducerConfig {
                linger: Duration::from_millis(10),
                max_in_flight_per_shard: 1,
                record_deadline: Duration::from_secs(60),
                idempotent: true,
                ..ProducerConfig::default()
            },
        )
        .unwrap();
        assert!(producer.producer_id().is_some());

        // Phase 1 runs while the victim's leader is killed; phase 2 is sent to a cluster with
        // that node down; phase 3 after it is back.
        let (p1, p2) = (RECORDS * 4 / 10, RECORDS * 7 / 10);
        let phase1 = tokio::spawn({
            let producer = producer.clone();
            async move { send_range(&producer, 0..p1).await }
        });
        wait_until(
            Duration::from_secs(30),
            "10,000 records acknowledged",
            || async { producer.stats().records_acked >= 10_000 },
        )
        .await;
        let leader = shard_leader(&client, STREAM, VICTIM).await;
        cluster.kill9(leader);
        eprintln!(
            "t90: killed node {leader}, leader of {VICTIM}, at {} acks",
            producer.stats().records_acked
        );
        let mut acks = phase1.await.unwrap();
        acks.extend(send_range(&producer, p1..p2).await);
        cluster.restart(leader).await;
        eprintln!("t90: restarted node {leader}");
        acks.extend(send_range(&producer, p2..RECORDS).await);
        producer.close().await;
        let stats = producer.stats();
        eprintln!("t90: {stats:?} after {:?}", started.elapsed());
        assert_eq!(stats.records_acked, RECORDS);
        assert_eq!(stats.records_failed, 0);
        assert!(stats.retries > 0, "the kill caused no retry: {stats:?}");
        assert!(
            stats.map_refreshes > 1,
            "no map refresh after the kill: {stats:?}"
        );
        assert!(
            stats.batches < RECORDS / 10,
            "records were barely batched: {stats:?}"
        );
        // Leaders are known except between a failure and the refresh that follows it.
        assert!(
            stats.batches_to_leader * 10 >= stats.batches * 8,
            "most batches should go straight to shard leaders: {stats:?}"
        );

        let acked: HashMap<u64, Ack> = acks.into_iter().collect();
        assert_eq!(acked.len() as u64, RECORDS);
        let read = wait_ok(
            Duration::from_secs(60),
            "every acknowledged record readable",
            || async {
                let read = read_stream(&client, STREAM)
                    .await
                    .map_err(|e| e.to_string())?;
                let n: usize = read.values().map(Vec::len).sum();
                if (n as u64) < RECORDS {
                    return Err(format!("{n} of {RECORDS} records readable"));
                }
                Ok(read)
            },
        )
        .await;

        let mut copies: HashMap<u64, u32> = HashMap::new();
        for (shard, records) in &read {
            // Per shard and sending task, first copies appear in send (id) order.
            let mut last: HashMap<u64, u64> = HashMap::new();
            for r in records {
                let id = id_of(&r.data);
                assert_eq!(r.partition_key, key(id), "record {id} under another key");
                let n = copies.entry(id).or_default();
                *n += 1;
                if *n > 1 {
                    continue;
                }
                if let Some(prev) = last.insert(id % TASKS, id) {
                    assert!(prev < id, "{shard}: record {id} written after {prev}");
                }
            }
        }
        let mut duplicates = 0;
        let idempotent = producer.config().idempotent;
        for id in 0..RECORDS {
            let ack = &acked[&id];
            let n = copies.get(&id).copied().unwrap_or(0);
            assert!(n >= 1, "record {id} acknowledged as {ack:?} but missing");
            let allowed = if idempotent { 0 } else { ack.unknown_outcomes };
            assert!(
                n - 1 <= allowed,
                "record {id} is in the stream {n} times (idempotent: {idempotent}): {ack:?}"
            );
            duplicates += n - 1;
            let shard = &read[&ack.shard_id];
            assert!(
                shard
                    .iter()
                    .any(|r| r.sequence_number == ack.sequence_number && id_of(&r.data) == id),
                "record {id}: the acknowledged position {ack:?} holds another record"
            );
        }
        eprintln!(
            "t90: all {RECORDS} records read back, {duplicates} duplicates, {} records retried \
             after an unknown outcome, in {:?}",
            stats.retries_after_unknown_outcome,
            started.elapsed()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aggregated_records_come_back_from_deaggregation() {
    const AGG_STREAM: &str = "t90-aggregated";
    const N: u64 = 20_000;
    bounded(Duration::from_secs(90), "t90 aggregation", async {
        let cluster = start_cluster(3, true).await;
        let client = cluster.client_with(writer_options());
        create_active(&client, AGG_STREAM, 4).await;
        let producer = Producer::new(
            client.clone(),
            ProducerConfig {
                aggregation_max_bytes: Some(16 * 1024),
                record_deadline: Duration::from_secs(60),
                ..ProducerConfig::default()
            },
        )
        .unwrap();
        let mut pending = Vec::new();
        for id in 0..N {
            pending.push((id, producer.send(AGG_STREAM, &key(id), data(id)).await));
        }
        let mut acks = HashMap::new();
        for (id, p) in pending {
            acks.insert(
                id,
                p.await
                    .unwrap_or_else(|e| panic!("record {id} failed: {e}")),
            );
        }
        // A stream that does not exist fails its records instead of retrying until the deadline.
        let err = producer
            .send("t90-no-such-stream", "k", b"x".to_vec())
            .await
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::ResourceNotFound, "{err}");
        producer.close().await;
        let stats = producer.stats();
        eprintln!("t90 aggregation: {stats:?}");
        assert_eq!((stats.records_acked, stats.records_failed), (N, 1));
        assert!(
            stats.kinesis_records_acked * 20 < N,
            "user records were barely aggregated: {stats:?}"
        );

        let outer = stats.kinesis_records_acked as usize;
        let read = wait_ok(
            Duration::from_secs(60),
            "every aggregated record readable",
            || async {
                let read = read_stream(&client, AGG_STREAM)
                    .await
                    .map_err(|e| e.to_string())?;
                let n: usize = read.values().map(Vec::len).sum();
                if n < outer {
                    return Err(format!("{n} of {outer} Kinesis records readable"));
                }
                Ok(read)
            },
        )
        .await;
        let mut found: HashMap<u64, (String, String, Option<u32>)> = HashMap::new();
        for (shard, records) in &read {
            for r in records {
                assert!(
                    kpl::is_aggregated(&r.data),
                    "{shard}/{}: not aggregated",
                    r.sequence_number
                );
                for user in kpl::deaggregate(&r.partition_key, &r.data).unwrap() {
                    let id = id_of(&user.data);
                    assert_eq!(user.partition_key, key(id));
                    let at = (shard.clone(), r.sequence_number.clone(), user.sub_sequence);
                    assert!(found.insert(id, at).is_none(), "record {id} read twice");
                }
            }
        }
        assert_eq!(found.len() as u64, N);
        for (id, ack) in &acks {
            let want = (
                ack.shard_id.clone(),
                ack.sequence_number.clone(),
                ack.sub_sequence,
            );
            assert_eq!(found[id], want, "record {id}");
        }
    })
    .await;
}
