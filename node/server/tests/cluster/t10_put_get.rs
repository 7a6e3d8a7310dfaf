//! Three nodes, a four-shard stream, 10,000 records: every acknowledged record is read back once,
//! in order, with its bytes, from the shard MD5 of its key routes to; then the iterator types.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;
use streamd_client::{StreamdClient, v1};
use streamd_proto::ids::HashKey;
use streamd_testkit::wait_ok;
use tokio::time::Instant;

use crate::{
    Outcomes, bounded, check_exactly_once, check_routing, key_range, put_and_file, random_entries,
    read_until_complete, seq, start_cluster, test_rng,
};

const STREAM: &str = "t10-orders";
const RECORDS: usize = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn put_get_exactly_once_in_order_and_iterators() {
    bounded(Duration::from_secs(300), "t10", async {
        let mut rng = test_rng("t10");
        let cluster = start_cluster(3, true).await;
        let client = cluster.client();

        let status = wait_ok(Duration::from_secs(30), "a metadata leader", || async {
            let s = client.cluster_status().await.map_err(|e| e.to_string())?;
            if s.metadata_leader.is_some() {
                Ok(s)
            } else {
                Err(format!("{s:?}"))
            }
        })
        .await;
        assert_eq!(status.nodes.len(), 3, "{status:?}");

        client.create_stream(STREAM, 4).await.unwrap();
        client
            .wait_stream_active(STREAM, Duration::from_secs(60))
            .await
            .unwrap();
        let shards = client.list_shards(STREAM).await.unwrap();
        assert_eq!(shards.len(), 4, "{shards:?}");
        let mut ranges: Vec<_> = shards.iter().map(key_range).collect();
        ranges.sort_by_key(|r| r.start);
        assert_eq!(ranges[0].start, HashKey(0));
        assert_eq!(ranges[3].end, HashKey::MAX);
        for w in ranges.windows(2) {
            assert_eq!(
                w[0].end.0 + 1,
                w[1].start.0,
                "ranges must tile the key space"
            );
        }

        // Sequential calls, so ack order within a shard is well defined.
        let started_ms = now_ms();
        let mut pending: VecDeque<_> = random_entries(&mut rng, RECORDS, 2_000, 1..=2_000).into();
        let mut out = Outcomes::default();
        while !pending.is_empty() {
            let n = rng.random_range(1..=500).min(pending.len());
            let batch: Vec<_> = pending.drain(..n).collect();
            if let Err(e) = put_and_file(&client, STREAM, 0, batch, &mut out).await {
                eprintln!("t10: PutRecords failed, outcome unknown: {e}");
            }
            // Throttled records were refused before being written: send them again.
            pending.extend(out.throttled.drain(..));
        }
        eprintln!(
            "t10: {} acknowledged, {} of unknown outcome, {} failed calls",
            out.acked.len(),
            out.unknown.len(),
            out.failed_calls
        );
        assert_eq!(out.acked.len() + out.unknown.len(), RECORDS);
        assert!(
            out.acked.len() >= RECORDS * 9 / 10,
            "a healthy cluster acknowledges (almost) every record: {} of {RECORDS}",
            out.acked.len()
        );
        check_routing(&shards, &out.acked).unwrap();

        let read = read_until_complete(&client, STREAM, &out.acked, Duration::from_secs(60)).await;
        check_exactly_once(&read, &out.acked, &out.unknown).unwrap();
        let total: usize = read.values().map(Vec::len).sum();
        assert!(total >= out.acked.len());
        for records in read.values() {
            for r in records {
                let t = r.approximate_arrival_timestamp_ms;
                assert!(
                    t >= started_ms - 60_000 && t <= now_ms() + 60_000,
                    "arrival timestamp {t} is not near now"
                );
            }
        }

        // The iterator types, on the shard holding the most records.
        let (shard_id, records) = read.iter().max_by_key(|(_, r)| r.len()).unwrap();
        assert!(
            records.len() >= 3,
            "{shard_id} holds {} records",
            records.len()
        );
        check_iterators(&client, shard_id, records).await;
        let shard = shards.iter().find(|s| &s.shard_id == shard_id).unwrap();
        check_latest(&client, shard).await;
    })
    .await;
}

fn now_ms() -> i64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(d.as_millis()).unwrap()
}

/// The first record an iterator yields, or `None` when it is at the tip of the shard.
async fn first_record(client: &StreamdClient, iterator: String) -> Option<v1::Record> {
    let mut iterator = iterator;
    loop {
        let page = client.get_records(&iterator, Some(1)).await.unwrap();
        if let Some(r) = page.records.into_iter().next() {
            return Some(r);
        }
        match page.next_shard_iterator {
            Some(next) if page.millis_behind_latest > 0 => iterator = next,
            _ => return None,
        }
    }
}

async fn iterator(
    client: &StreamdClient,
    shard_id: &str,
    kind: v1::ShardIteratorType,
    seq: Option<&str>,
    ts: Option<i64>,
) -> String {
    client
        .get_shard_iterator(STREAM, shard_id, kind, seq.map(str::to_string), ts)
        .await
        .unwrap_or_else(|e| panic!("GetShardIterator {kind:?} {seq:?} {ts:?}: {e}"))
}

async fn check_iterators(client: &StreamdClient, shard_id: &str, records: &[v1::Record]) {
    use v1::ShardIteratorType::{AfterSequenceNumber, AtSequenceNumber, AtTimestamp};
    let same = |a: &v1::Record, b: &v1::Record| a.sequence_number == b.sequence_number;
    let mid = records.len() / 2;
    let last = records.len() - 1;

    let it = iterator(
        client,
        shard_id,
        AtSequenceNumber,
        Some(&records[mid].sequence_number),
        None,
    )
    .await;
    let got = first_record(client, it)
        .await
        .expect("AT_SEQUENCE_NUMBER yields a record");
    assert!(
        same(&got, &records[mid]),
        "AT_SEQUENCE_NUMBER {mid}: got {}",
        got.sequence_number
    );
    assert_eq!(got.data, records[mid].data);

    let it = iterator(
        client,
        shard_id,
        AtSequenceNumber,
        Some(&records[0].sequence_number),
        None,
    )
    .await;
    let all = client.read_from_iterator(&it).await.unwrap();
    let seqs = |rs: &[v1::Record]| {
        rs.iter()
            .map(|r| r.sequence_number.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        seqs(&all),
        seqs(records),
        "AT_SEQUENCE_NUMBER of the first record reads all"
    );

    let it = iterator(
        client,
        shard_id,
        AfterSequenceNumber,
        Some(&records[mid].sequence_number),
        None,
    )
    .await;
    let got = first_record(client, it)
        .await
        .expect("AFTER_SEQUENCE_NUMBER yields a record");
    assert!(
        same(&got, &records[mid + 1]),
        "AFTER_SEQUENCE_NUMBER {mid}: {}",
        got.sequence_number
    );

    let it = iterator(
        client,
        shard_id,
        AfterSequenceNumber,
        Some(&records[last].sequence_number),
        None,
    )
    .await;
    let got = first_record(client, it).await;
    assert!(
        got.is_none(),
        "AFTER_SEQUENCE_NUMBER of the last record yields nothing: {got:?}"
    );

    // AT_TIMESTAMP: the first record that arrived at or after the timestamp.
    let ts = records[mid].approximate_arrival_timestamp_ms;
    let expect = records
        .iter()
        .position(|r| r.approximate_arrival_timestamp_ms >= ts)
        .unwrap();
    let it = iterator(client, shard_id, AtTimestamp, None, Some(ts)).await;
    let got = first_record(client, it)
        .await
        .expect("AT_TIMESTAMP yields a record");
    assert!(
        same(&got, &records[expect]),
        "AT_TIMESTAMP {ts}: got {}",
        got.sequence_number
    );

    let it = iterator(client, shard_id, AtTimestamp, None, Some(0)).await;
    let got = first_record(client, it)
        .await
        .expect("AT_TIMESTAMP 0 yields a record");
    assert!(
        same(&got, &records[0]),
        "AT_TIMESTAMP 0: got {}",
        got.sequence_number
    );

    let future = now_ms() + 3_600_000;
    let it = iterator(client, shard_id, AtTimestamp, None, Some(future)).await;
    let got = first_record(client, it).await;
    assert!(
        got.is_none(),
        "AT_TIMESTAMP in the future yields nothing: {got:?}"
    );
}

/// LATEST starts after the newest record: it skips what was acknowledged before it was taken and
/// yields what is put after.
async fn check_latest(client: &StreamdClient, shard: &v1::Shard) {
    let latest = client
        .get_shard_iterator(
            STREAM,
            &shard.shard_id,
            v1::ShardIteratorType::Latest,
            None,
            None,
        )
        .await
        .unwrap();
    let page = client.get_records(&latest, None).await.unwrap();
    assert!(
        page.records.is_empty(),
        "LATEST yields no old record: {:?}",
        page.records.first()
    );
    let mut iterator = page
        .next_shard_iterator
        .expect("an open shard has a next iterator");

    // Aim the new record at this shard with an explicit hash key.
    let start = key_range(shard).start;
    let req = v1::PutRecordRequest {
        stream_name: STREAM.to_string(),
        data: bytes::Bytes::from_static(b"after-latest"),
        partition_key: "latest".to_string(),
        explicit_hash_key: Some(start.to_string()),
        sequence_number_for_ordering: None,
    };
    let put = client.put_record_with(req).await.unwrap();
    assert_eq!(
        put.shard_id, shard.shard_id,
        "explicit hash key {start} routes to its shard"
    );

    let deadline = Instant::now() + Duration::from_secs(20);
    let got = loop {
        let page = client.get_records(&iterator, None).await.unwrap();
        if let Some(r) = page.records.into_iter().next() {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "the record put after LATEST never showed up"
        );
        iterator = page
            .next_shard_iterator
            .expect("an open shard has a next iterator");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(got.sequence_number, put.sequence_number);
    assert_eq!(&got.data[..], b"after-latest");
    assert_eq!(seq(&got.sequence_number), seq(&put.sequence_number));

    // A LATEST iterator taken after the acknowledgement does not yield it.
    let latest = client
        .get_shard_iterator(
            STREAM,
            &shard.shard_id,
            v1::ShardIteratorType::Latest,
            None,
            None,
        )
        .await
        .unwrap();
    let page = client.get_records(&latest, None).await.unwrap();
    assert!(
        page.records.is_empty(),
        "LATEST after the put yields {:?}",
        page.records.first()
    );
}
