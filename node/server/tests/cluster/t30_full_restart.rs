//! A full-cluster restart: every node stopped, every node started again. Streams, shards and
//! records come back unchanged, and new records number above the old ones.

use std::collections::BTreeMap;
use std::time::Duration;

use streamd_client::{StreamdClient, v1};
use streamd_testkit::wait_ok;

use crate::{
    Outcomes, StreamRecords, bounded, check_exactly_once, key_range, put_and_file, random_entries,
    read_stream, read_until_complete, seq, start_cluster, test_rng,
};

const STREAMS: [(&str, u32); 2] = [("t30-a", 2), ("t30-b", 3)];
const RECORDS: usize = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streams_shards_and_records_survive_a_full_restart() {
    bounded(Duration::from_secs(300), "t30", async {
        let mut rng = test_rng("t30");
        let mut cluster = start_cluster(3, true).await;
        let client = cluster.client();
        for (name, shards) in STREAMS {
            client.create_stream(name, shards).await.unwrap();
        }
        for (name, _) in STREAMS {
            client
                .wait_stream_active(name, Duration::from_secs(60))
                .await
                .unwrap();
        }

        let mut outcomes: BTreeMap<&str, Outcomes> = BTreeMap::new();
        for (i, batch) in random_entries(&mut rng, RECORDS, 500, 1..=512)
            .chunks(100)
            .enumerate()
        {
            let (name, _) = STREAMS[i % STREAMS.len()];
            let out = outcomes.entry(name).or_default();
            if let Err(e) = put_and_file(&client, name, 0, batch.to_vec(), out).await {
                eprintln!("t30: PutRecords failed, outcome unknown: {e}");
            }
            assert!(
                out.throttled.is_empty(),
                "limits are off, yet records were throttled"
            );
        }

        let mut before = BTreeMap::new();
        for (name, _) in STREAMS {
            let out = &outcomes[name];
            let shards = shard_summary(&client.list_shards(name).await.unwrap());
            let desc = client.describe_stream(name).await.unwrap();
            let read =
                read_until_complete(&client, name, &out.acked, Duration::from_secs(60)).await;
            check_exactly_once(&read, &out.acked, &out.unknown).unwrap();
            before.insert(name, (desc, shards, read));
        }

        cluster.stop_all().await;
        cluster.start_all().await;
        let client = cluster.client();

        let listed = wait_ok(
            Duration::from_secs(60),
            "the streams to be listed",
            || async {
                let names = client.list_streams().await.map_err(|e| e.to_string())?;
                if STREAMS.iter().all(|(n, _)| names.iter().any(|m| m == n)) {
                    Ok(names)
                } else {
                    Err(format!("listed {names:?}"))
                }
            },
        )
        .await;
        eprintln!("t30: streams after restart: {listed:?}");

        for (name, _) in STREAMS {
            let (desc_before, shards_before, read_before) = &before[name];
            let desc = client
                .wait_stream_active(name, Duration::from_secs(60))
                .await
                .unwrap();
            assert_eq!(desc.stream_arn, desc_before.stream_arn);
            assert_eq!(
                desc.retention_period_hours,
                desc_before.retention_period_hours
            );
            assert_eq!(
                desc.stream_creation_timestamp_ms,
                desc_before.stream_creation_timestamp_ms
            );
            let shards = shard_summary(&client.list_shards(name).await.unwrap());
            assert_eq!(&shards, shards_before, "{name}: shards after the restart");
            let described = client.describe_stream(name).await.unwrap();
            assert_eq!(described.shards.len(), shards.len());

            let read = wait_ok(
                Duration::from_secs(90),
                "the records to be back",
                || async {
                    let read = read_stream(&client, name)
                        .await
                        .map_err(|e| e.to_string())?;
                    same_records(read_before, &read).map(|()| read)
                },
            )
            .await;
            let n: usize = read.values().map(Vec::len).sum();
            eprintln!("t30: {name}: {n} records back");

            // The cluster takes writes again, numbered above everything before the restart.
            check_new_writes_number_higher(&client, name, &read).await;
        }
    })
    .await;
}

/// Shard ids and hash key ranges, by shard id.
fn shard_summary(shards: &[v1::Shard]) -> BTreeMap<String, (String, String)> {
    shards
        .iter()
        .map(|s| {
            let r = key_range(s);
            (s.shard_id.clone(), (r.start.to_string(), r.end.to_string()))
        })
        .collect()
}

fn same_records(before: &StreamRecords, after: &StreamRecords) -> Result<(), String> {
    let key = |r: &v1::Record| {
        (
            r.sequence_number.clone(),
            r.partition_key.clone(),
            r.data.clone(),
        )
    };
    for (shard, records) in before {
        let got = after.get(shard).ok_or(format!("{shard} is gone"))?;
        let want: Vec<_> = records.iter().map(key).collect();
        let have: Vec<_> = got.iter().map(key).collect();
        if want != have {
            return Err(format!(
                "{shard}: {} records before, {} now",
                want.len(),
                have.len()
            ));
        }
    }
    Ok(())
}

async fn check_new_writes_number_higher(client: &StreamdClient, name: &str, read: &StreamRecords) {
    let put = wait_ok(
        Duration::from_secs(30),
        "a put to succeed after the restart",
        || async {
            client
                .put_record(name, "after-restart", b"new".to_vec())
                .await
        },
    )
    .await;
    if let Some(newest) = read.get(&put.shard_id).and_then(|r| r.last()) {
        assert!(
            seq(&put.sequence_number) > seq(&newest.sequence_number),
            "{name}/{}: new record {} not above {}",
            put.shard_id,
            put.sequence_number,
            newest.sequence_number
        );
    }
}
