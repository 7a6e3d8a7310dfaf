//! Every API limit exceeded once, each refused with the catalogue's code; refused puts leave no
//! trace in the stream. With Kinesis's default shard limits, more than 1,000 records/s into one
//! shard is refused record by record with ProvisionedThroughputExceededException.

use std::time::Duration;

use bytes::Bytes;
use streamd_client::client::entry;
use streamd_client::{ClientError, ErrorCode, StreamdClient, v1};
use streamd_proto::limits::{
    MAX_PARTITION_KEY_CHARS, MAX_PUT_RECORDS, MAX_PUT_RECORDS_BYTES, MAX_RECORD_BYTES,
    MAX_STREAM_NAME_CHARS,
};
use streamd_testkit::wait_ok;
use tokio::time::Instant;

use crate::{bounded, read_stream, start_cluster};

const STREAM: &str = "t40-limits";
const THROTTLED: &str = "t40-throttled";

/// Asserts that `result` failed with `code`.
#[track_caller]
fn refused<T: std::fmt::Debug>(what: &str, result: Result<T, ClientError>, code: ErrorCode) {
    match result {
        Ok(v) => panic!("{what}: accepted ({v:?}), expected {code}"),
        Err(e) => assert_eq!(e.code(), code, "{what}: {e}"),
    }
}

fn bad(data: &[u8]) -> Bytes {
    let mut v = b"BAD:".to_vec();
    v.extend_from_slice(data);
    Bytes::from(v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limits_are_refused_with_their_codes() {
    bounded(Duration::from_secs(240), "t40", async {
        // Default shard limits: Kinesis's.
        let cluster = start_cluster(3, false).await;
        let c = cluster.client();
        use ErrorCode::{InvalidArgument, ResourceInUse, ResourceNotFound};

        // Stream names and shard counts.
        let long = "a".repeat(MAX_STREAM_NAME_CHARS + 1);
        refused(
            "129-character name",
            c.create_stream(&long, 1).await,
            InvalidArgument,
        );
        refused(
            "name with a space",
            c.create_stream("bad name", 1).await,
            InvalidArgument,
        );
        refused(
            "name with a slash",
            c.create_stream("bad/name", 1).await,
            InvalidArgument,
        );
        refused("empty name", c.create_stream("", 1).await, InvalidArgument);
        refused(
            "zero shards",
            c.create_stream("t40-zero", 0).await,
            InvalidArgument,
        );

        c.create_stream(STREAM, 2).await.unwrap();
        c.wait_stream_active(STREAM, Duration::from_secs(60))
            .await
            .unwrap();
        refused(
            "existing stream",
            c.create_stream(STREAM, 2).await,
            ResourceInUse,
        );
        refused(
            "unknown stream",
            c.describe_stream("t40-nope").await,
            ResourceNotFound,
        );
        refused(
            "unknown stream",
            c.describe_stream_summary("t40-nope").await,
            ResourceNotFound,
        );
        refused(
            "unknown stream",
            c.list_shards("t40-nope").await,
            ResourceNotFound,
        );
        refused(
            "put to unknown",
            c.put_record("t40-nope", "k", bad(b"x")).await,
            ResourceNotFound,
        );
        refused(
            "put records to unknown",
            c.put_records("t40-nope", vec![entry("k", bad(b"x"))]).await,
            ResourceNotFound,
        );
        refused(
            "iterator on unknown stream",
            c.get_shard_iterator("t40-nope", "shardId-000000000000", trim(), None, None)
                .await,
            ResourceNotFound,
        );
        refused(
            "iterator on unknown shard",
            c.get_shard_iterator(STREAM, "shardId-000000000099", trim(), None, None)
                .await,
            ResourceNotFound,
        );

        // PutRecords sizes.
        let many: Vec<_> = (0..=MAX_PUT_RECORDS)
            .map(|i| entry(format!("k{i}"), bad(b"many")))
            .collect();
        refused(
            "501 records",
            c.put_records(STREAM, many).await,
            InvalidArgument,
        );
        refused(
            "no records",
            c.put_records(STREAM, vec![]).await,
            InvalidArgument,
        );
        let huge = bad(&vec![7u8; MAX_RECORD_BYTES]);
        refused(
            "record over 1 MiB",
            c.put_record(STREAM, "k", huge.clone()).await,
            InvalidArgument,
        );
        refused(
            "record over 1 MiB in PutRecords",
            c.put_records(STREAM, vec![entry("k", huge)]).await,
            InvalidArgument,
        );
        // Six records of just under 1 MiB each: every record fits, the call does not.
        let big = bad(&vec![9u8; MAX_RECORD_BYTES - 1024]);
        let count = MAX_PUT_RECORDS_BYTES / big.len() + 1;
        let total: Vec<_> = (0..count)
            .map(|i| entry(format!("k{i}"), big.clone()))
            .collect();
        refused(
            "call over 5 MiB",
            c.put_records(STREAM, total).await,
            InvalidArgument,
        );

        // Partition keys: 1..=256 Unicode characters.
        let long_key = "k".repeat(MAX_PARTITION_KEY_CHARS + 1);
        refused(
            "257-character key",
            c.put_record(STREAM, &long_key, bad(b"k")).await,
            InvalidArgument,
        );
        refused(
            "257-character key in PutRecords",
            c.put_records(STREAM, vec![entry(long_key.clone(), bad(b"k"))])
                .await,
            InvalidArgument,
        );
        refused(
            "empty key",
            c.put_record(STREAM, "", bad(b"k")).await,
            InvalidArgument,
        );
        refused(
            "empty key in PutRecords",
            c.put_records(STREAM, vec![entry("", bad(b"k"))]).await,
            InvalidArgument,
        );

        // Explicit hash keys: decimal, 0..2^128-1.
        for ehk in ["340282366920938463463374607431768211456", "-1", "12ab"] {
            let req = v1::PutRecordRequest {
                stream_name: STREAM.to_string(),
                data: bad(b"ehk"),
                partition_key: "k".to_string(),
                explicit_hash_key: Some(ehk.to_string()),
                sequence_number_for_ordering: None,
            };
            refused(
                &format!("explicit hash key {ehk}"),
                c.put_record_with(req).await,
                InvalidArgument,
            );
            let mut e = entry("k", bad(b"ehk"));
            e.explicit_hash_key = Some(ehk.to_string());
            refused(
                &format!("explicit hash key {ehk} in PutRecords"),
                c.put_records(STREAM, vec![e]).await,
                InvalidArgument,
            );
        }

        // What is accepted next to those limits.
        let unicode_key = "é".repeat(MAX_PARTITION_KEY_CHARS);
        let good_a = c
            .put_record(STREAM, &unicode_key, Bytes::from_static(b"good-a"))
            .await;
        let good_a = good_a.expect("a key of 256 two-byte characters is within the limit");
        let good_b = c
            .put_record(STREAM, "plain", Bytes::from_static(b"good-b"))
            .await
            .unwrap();

        // Iterators.
        let shard = good_b.shard_id.clone();
        let iterator = c
            .get_shard_iterator(STREAM, &shard, trim(), None, None)
            .await
            .unwrap();
        refused(
            "limit 10001",
            c.get_records(&iterator, Some(10_001)).await,
            InvalidArgument,
        );
        refused(
            "garbage iterator",
            c.get_records("garbage", None).await,
            InvalidArgument,
        );
        refused(
            "empty iterator",
            c.get_records("", None).await,
            InvalidArgument,
        );
        let tampered = tamper(&iterator);
        refused(
            "tampered iterator",
            c.get_records(&tampered, None).await,
            InvalidArgument,
        );
        refused(
            "AT_SEQUENCE_NUMBER with a bad number",
            c.get_shard_iterator(STREAM, &shard, at_seq(), Some("12x".into()), None)
                .await,
            InvalidArgument,
        );
        refused(
            "AT_SEQUENCE_NUMBER without a number",
            c.get_shard_iterator(STREAM, &shard, at_seq(), None, None)
                .await,
            InvalidArgument,
        );
        refused(
            "AFTER_SEQUENCE_NUMBER with a bad number",
            c.get_shard_iterator(
                STREAM,
                &shard,
                v1::ShardIteratorType::AfterSequenceNumber,
                Some("not-a-number".into()),
                None,
            )
            .await,
            InvalidArgument,
        );
        refused(
            "AT_TIMESTAMP without a timestamp",
            c.get_shard_iterator(
                STREAM,
                &shard,
                v1::ShardIteratorType::AtTimestamp,
                None,
                None,
            )
            .await,
            InvalidArgument,
        );

        // Retention: 24..=8760 hours; increase only up, decrease only down.
        refused(
            "retention 23",
            c.increase_retention(STREAM, 23).await,
            InvalidArgument,
        );
        refused(
            "retention 8761",
            c.increase_retention(STREAM, 8761).await,
            InvalidArgument,
        );
        refused(
            "decrease to 23",
            c.decrease_retention(STREAM, 23).await,
            InvalidArgument,
        );
        refused(
            "decrease above current",
            c.decrease_retention(STREAM, 48).await,
            InvalidArgument,
        );
        c.increase_retention(STREAM, 48).await.unwrap();
        let hours = wait_ok(Duration::from_secs(10), "retention 48 h", || async {
            let d = c
                .describe_stream_summary(STREAM)
                .await
                .map_err(|e| e.to_string())?;
            if d.retention_period_hours == 48 {
                Ok(48)
            } else {
                Err(format!("{d:?}"))
            }
        })
        .await;
        assert_eq!(hours, 48);
        refused(
            "increase below current",
            c.increase_retention(STREAM, 24).await,
            InvalidArgument,
        );
        refused(
            "decrease above current",
            c.decrease_retention(STREAM, 72).await,
            InvalidArgument,
        );
        c.decrease_retention(STREAM, 24).await.unwrap();

        // None of the refused puts left data: exactly the two good records are there.
        let read = wait_ok(
            Duration::from_secs(20),
            "the good records to be readable",
            || async {
                let read = read_stream(&c, STREAM).await.map_err(|e| e.to_string())?;
                let n: usize = read.values().map(Vec::len).sum();
                if n >= 2 {
                    Ok(read)
                } else {
                    Err(format!("{n} records"))
                }
            },
        )
        .await;
        let mut seen: Vec<(String, String)> = read
            .values()
            .flatten()
            .map(|r| {
                (
                    r.sequence_number.clone(),
                    String::from_utf8_lossy(&r.data).into_owned(),
                )
            })
            .collect();
        seen.sort();
        let mut want = vec![
            (good_a.sequence_number.clone(), "good-a".to_string()),
            (good_b.sequence_number.clone(), "good-b".to_string()),
        ];
        want.sort();
        assert_eq!(
            seen.len(),
            2,
            "refused puts left records behind: {} records",
            seen.len()
        );
        assert_eq!(seen, want);

        check_write_throttling(&c).await;
    })
    .await;
}

fn trim() -> v1::ShardIteratorType {
    v1::ShardIteratorType::TrimHorizon
}

fn at_seq() -> v1::ShardIteratorType {
    v1::ShardIteratorType::AtSequenceNumber
}

/// The iterator with one character in its middle changed to another of the same class, so it
/// keeps its shape and only its authentication can tell.
fn tamper(iterator: &str) -> String {
    let mut chars: Vec<char> = iterator.chars().collect();
    assert!(!chars.is_empty(), "empty iterator");
    let i = chars.len() / 2;
    chars[i] = match chars[i] {
        'A' => 'B',
        c if c.is_ascii_uppercase() => 'A',
        'a' => 'b',
        c if c.is_ascii_lowercase() => 'a',
        '0' => '1',
        c if c.is_ascii_digit() => '0',
        _ => 'x',
    };
    chars.into_iter().collect()
}

/// More than 1,000 records/s into one shard: some records come back refused with
/// ProvisionedThroughputExceededException; every result is one or the other.
async fn check_write_throttling(c: &StreamdClient) {
    c.create_stream(THROTTLED, 1).await.unwrap();
    c.wait_stream_active(THROTTLED, Duration::from_secs(60))
        .await
        .unwrap();
    let name = ErrorCode::ProvisionedThroughputExceeded.name();
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut sent, mut throttled) = (0usize, 0usize);
    while throttled == 0 {
        assert!(
            Instant::now() < deadline,
            "{sent} records sent to one shard without a {name} refusal"
        );
        let batch: Vec<_> = (0..MAX_PUT_RECORDS)
            .map(|i| entry(format!("k{i}"), Bytes::from_static(b"t")))
            .collect();
        let resp = c.put_records(THROTTLED, batch).await.unwrap();
        sent += MAX_PUT_RECORDS;
        for r in &resp.records {
            match (&r.sequence_number, &r.error_code) {
                (Some(_), None) => {}
                (None, Some(code)) if code == name => throttled += 1,
                other => panic!("unexpected PutRecords result {other:?}"),
            }
        }
    }
    eprintln!("t40: {throttled} of {sent} records refused for throughput");
}
