//! The AWS SDK for Rust (`aws-sdk-kinesis`) as a real client of the Kinesis port, over plain
//! `http://` (HTTP/1.1): stream lifecycle, PutRecord(s), GetRecords, ListShards, an enhanced
//! fan-out consumer reading with SubscribeToShard, and a modelled error.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::config::timeout::TimeoutConfig;
use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_kinesis::operation::describe_stream_summary::DescribeStreamSummaryError;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{
    ConsumerStatus, PutRecordsRequestEntry, Record, ShardIteratorType, StartingPosition,
    StreamStatus, SubscribeToShardEventStream,
};
use bytes::Bytes;
use streamd_testkit::wait_ok;
use tokio::time::Instant;

use crate::{bounded, random_data, start_cluster, test_rng};

const STREAM: &str = "t60-sdk";
const CONSUMER: &str = "t60-consumer";

/// A record as the server acknowledged it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Put {
    seq: String,
    key: String,
    data: Bytes,
}

/// Records by shard id, in acknowledgement order.
type ByShard = BTreeMap<String, Vec<Put>>;

/// Panics with the SDK error and its whole chain of sources.
trait OrPanic<T> {
    fn or_panic(self, what: &str) -> T;
}

impl<T, E: std::error::Error> OrPanic<T> for Result<T, E> {
    fn or_panic(self, what: &str) -> T {
        self.unwrap_or_else(|e| panic!("{what}: {}", DisplayErrorContext(&e)))
    }
}

/// An SDK client for one node's Kinesis port: plain HTTP, static credentials (SigV4 is not
/// checked by default), no retries so every error surfaces. `build_http` gives the SDK's own
/// hyper client without a TLS provider, so no TLS stack is built for the test.
fn sdk_client(addr: SocketAddr) -> Client {
    let http = aws_smithy_http_client::Builder::new().build_http();
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(format!("http://{addr}"))
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDTEST",
            "secret123",
            None,
            None,
            "streamd-tests",
        ))
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .build(),
        )
        .http_client(http)
        .build();
    Client::from_conf(config)
}

fn record_of(r: &Record) -> Put {
    Put {
        seq: r.sequence_number.clone(),
        key: r.partition_key.clone().unwrap_or_default(),
        data: Bytes::copy_from_slice(r.data.as_ref()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aws_sdk_for_rust_drives_the_kinesis_port() {
    bounded(Duration::from_secs(180), "t60", async {
        let mut rng = test_rng("t60");
        let cluster = start_cluster(1, false).await;
        let grpc = cluster.client();
        wait_ok(Duration::from_secs(30), "a metadata leader", || async {
            let s = grpc.cluster_status().await.map_err(|e| e.to_string())?;
            s.metadata_leader.ok_or(format!("{s:?}"))
        })
        .await;
        let kinesis = sdk_client(cluster.kinesis_addr(1));

        // A modelled error comes back as its modelled variant.
        let err = kinesis
            .describe_stream_summary()
            .stream_name("t60-no-such-stream")
            .send()
            .await
            .expect_err("an unknown stream");
        assert_eq!(
            err.code(),
            Some("ResourceNotFoundException"),
            "{}",
            DisplayErrorContext(&err)
        );
        let service_err = err.into_service_error();
        assert!(
            matches!(
                service_err,
                DescribeStreamSummaryError::ResourceNotFoundException(_)
            ),
            "{service_err:?}"
        );

        // CreateStream, then ACTIVE.
        kinesis
            .create_stream()
            .stream_name(STREAM)
            .shard_count(2)
            .send()
            .await
            .or_panic("create_stream");
        let summary = wait_ok(
            Duration::from_secs(30),
            "the stream to be ACTIVE",
            || async {
                let out = kinesis
                    .describe_stream_summary()
                    .stream_name(STREAM)
                    .send()
                    .await
                    .map_err(|e| DisplayErrorContext(e).to_string())?;
                let summary = out
                    .stream_description_summary
                    .ok_or("no StreamDescriptionSummary")?;
                if summary.stream_status == StreamStatus::Active {
                    Ok(summary)
                } else {
                    Err(format!("status {:?}", summary.stream_status))
                }
            },
        )
        .await;
        assert_eq!(summary.stream_name, STREAM);
        assert_eq!(summary.open_shard_count, 2);
        let stream_arn = summary.stream_arn;
        assert!(
            stream_arn.starts_with("arn:aws:kinesis:us-east-1:") && stream_arn.ends_with(STREAM),
            "{stream_arn}"
        );

        // ListShards: two shards.
        let shards = kinesis
            .list_shards()
            .stream_name(STREAM)
            .send()
            .await
            .or_panic("list_shards");
        let shard_ids: Vec<String> = shards.shards().iter().map(|s| s.shard_id.clone()).collect();
        assert_eq!(shard_ids.len(), 2, "{shards:?}");

        // PutRecord, then PutRecords with ten records (random bytes, so not valid UTF-8).
        let mut puts = ByShard::new();
        let data = random_data(&mut rng, 100);
        let out = kinesis
            .put_record()
            .stream_name(STREAM)
            .partition_key("single")
            .data(Blob::new(data.to_vec()))
            .send()
            .await
            .or_panic("put_record");
        assert!(shard_ids.contains(&out.shard_id), "{out:?}");
        puts.entry(out.shard_id).or_default().push(Put {
            seq: out.sequence_number,
            key: "single".into(),
            data,
        });

        let batch: Vec<(String, Bytes)> = (0..10)
            .map(|i| (format!("key-{i}"), random_data(&mut rng, 1 + i * 37)))
            .collect();
        let entries = batch
            .iter()
            .map(|(key, data)| {
                PutRecordsRequestEntry::builder()
                    .partition_key(key)
                    .data(Blob::new(data.to_vec()))
                    .build()
                    .or_panic("a PutRecords entry")
            })
            .collect();
        let out = kinesis
            .put_records()
            .stream_name(STREAM)
            .set_records(Some(entries))
            .send()
            .await
            .or_panic("put_records");
        assert_eq!(out.failed_record_count, Some(0), "{out:?}");
        assert_eq!(out.records.len(), batch.len(), "one result per record");
        for ((key, data), result) in batch.into_iter().zip(out.records) {
            let (Some(shard), Some(seq), None) = (
                result.shard_id.clone(),
                result.sequence_number.clone(),
                &result.error_code,
            ) else {
                panic!("PutRecords result without a shard and sequence number: {result:?}");
            };
            assert!(shard_ids.contains(&shard), "{shard}");
            puts.entry(shard).or_default().push(Put { seq, key, data });
        }
        assert_eq!(puts.values().map(Vec::len).sum::<usize>(), 11);
        // The keys are fixed, so so is their routing: both shards hold records, and every read
        // below has something to check.
        assert_eq!(puts.len(), 2, "records on both shards: {puts:?}");

        // GetShardIterator TRIM_HORIZON + GetRecords: each shard gives back its records in put
        // order, with their sequence numbers, keys and bytes.
        for shard in &shard_ids {
            let want = puts.get(shard).cloned().unwrap_or_default();
            let got = read_shard(&kinesis, shard, want.len()).await;
            assert_eq!(got, want, "GetRecords on {shard}");
        }

        // An enhanced fan-out consumer: RegisterStreamConsumer, then ACTIVE.
        let out = kinesis
            .register_stream_consumer()
            .stream_arn(&stream_arn)
            .consumer_name(CONSUMER)
            .send()
            .await
            .or_panic("register_stream_consumer");
        let consumer = out.consumer.expect("a Consumer in the response");
        assert_eq!(consumer.consumer_name, CONSUMER);
        let consumer_arn = consumer.consumer_arn;
        wait_ok(
            Duration::from_secs(30),
            "the consumer to be ACTIVE",
            || async {
                let out = kinesis
                    .describe_stream_consumer()
                    .consumer_arn(&consumer_arn)
                    .send()
                    .await
                    .map_err(|e| DisplayErrorContext(e).to_string())?;
                let d = out.consumer_description.ok_or("no ConsumerDescription")?;
                if d.consumer_status == ConsumerStatus::Active {
                    Ok(())
                } else {
                    Err(format!("status {:?}", d.consumer_status))
                }
            },
        )
        .await;

        // SubscribeToShard from TRIM_HORIZON on each shard: events until the records put above
        // have all been delivered.
        for shard in &shard_ids {
            let want = puts.get(shard).cloned().unwrap_or_default();
            let got = subscribe(&kinesis, &consumer_arn, shard, want.len()).await;
            assert_eq!(got, want, "SubscribeToShard on {shard}");
        }

        // DeleteStream with its consumer, then gone.
        kinesis
            .delete_stream()
            .stream_name(STREAM)
            .enforce_consumer_deletion(true)
            .send()
            .await
            .or_panic("delete_stream");
        wait_ok(
            Duration::from_secs(30),
            "the stream to be deleted",
            || async {
                match kinesis
                    .describe_stream_summary()
                    .stream_name(STREAM)
                    .send()
                    .await
                {
                    Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(()),
                    Err(e) => Err(DisplayErrorContext(e).to_string()),
                    Ok(out) => Err(format!("still there: {out:?}")),
                }
            },
        )
        .await;
    })
    .await;
}

/// Reads a shard from TRIM_HORIZON with GetRecords until `n` records have come back.
async fn read_shard(kinesis: &Client, shard: &str, n: usize) -> Vec<Put> {
    let out = kinesis
        .get_shard_iterator()
        .stream_name(STREAM)
        .shard_id(shard)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .or_panic("get_shard_iterator");
    let mut iterator = out.shard_iterator.expect("a shard iterator");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < n {
        assert!(
            Instant::now() < deadline,
            "GetRecords on {shard}: {} of {n} records after 20s: {got:?}",
            got.len()
        );
        let out = kinesis
            .get_records()
            .shard_iterator(&iterator)
            .limit(100)
            .send()
            .await
            .or_panic("get_records");
        got.extend(out.records.iter().map(record_of));
        iterator = out
            .next_shard_iterator
            .expect("an open shard has a next iterator");
        if out.records.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    got
}

/// Subscribes to a shard from TRIM_HORIZON and collects event records until `n` have arrived.
async fn subscribe(kinesis: &Client, consumer_arn: &str, shard: &str, n: usize) -> Vec<Put> {
    let position = StartingPosition::builder()
        .r#type(ShardIteratorType::TrimHorizon)
        .build()
        .or_panic("a StartingPosition");
    let mut out = kinesis
        .subscribe_to_shard()
        .consumer_arn(consumer_arn)
        .shard_id(shard)
        .starting_position(position)
        .send()
        .await
        .or_panic("subscribe_to_shard");
    let mut got = Vec::new();
    let mut events = 0usize;
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < n {
        let Ok(event) = tokio::time::timeout_at(deadline, out.event_stream.recv()).await else {
            panic!(
                "SubscribeToShard on {shard}: {} of {n} records after {events} events and 30s: \
                 {got:?}",
                got.len()
            )
        };
        let event = event.or_panic("SubscribeToShard event stream");
        match event {
            Some(SubscribeToShardEventStream::SubscribeToShardEvent(e)) => {
                events += 1;
                assert!(
                    !e.continuation_sequence_number.is_empty(),
                    "an event without a continuation sequence number: {e:?}"
                );
                got.extend(e.records.iter().map(record_of));
            }
            Some(other) => panic!("SubscribeToShard on {shard}: unexpected event {other:?}"),
            None => panic!(
                "SubscribeToShard on {shard}: stream ended after {events} events with {} of {n} \
                 records: {got:?}",
                got.len()
            ),
        }
    }
    eprintln!("t60: SubscribeToShard on {shard}: {n} records in {events} events");
    got
}
