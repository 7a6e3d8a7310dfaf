//! Resharding under continuous writes: SplitShard, MergeShards and UpdateShardCount 4 -> 8 -> 4
//! -> 3, then a split whose controller (the metadata leader) is killed with SIGKILL right after
//! planning it. After each run, reading every shard (parents end before their children begin,
//! because children's sequence numbers are above their parents') yields for every partition key
//! exactly the acknowledged records, once each, in acknowledgement order.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use streamd_client::{StreamdClient, v1};
use streamd_proto::ids::HashKeyRange;
use streamd_testkit::{wait_ok, wait_until};

use crate::{
    Acked, Outcomes, StreamRecords, bounded, check_exactly_once, create_active, key_range,
    put_and_file, random_entries, read_until_complete, seq, start_cluster, test_rng,
    writer_options,
};

const WRITERS: usize = 4;
const BATCH: usize = 40;
const KEYS: u32 = 300;

pub(crate) struct Load {
    outcomes: Arc<Mutex<Vec<Outcomes>>>,
    stop: Arc<AtomicBool>,
    writers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub(crate) fn start(
        clients: Vec<StreamdClient>,
        stream: &'static str,
        rng: &mut rand::rngs::StdRng,
    ) -> Load {
        let outcomes: Arc<Mutex<Vec<Outcomes>>> = Arc::new(Mutex::new(
            (0..clients.len()).map(|_| Outcomes::default()).collect(),
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let writers = clients
            .into_iter()
            .enumerate()
            .map(|(w, client)| {
                let seed: u64 = rand::Rng::random(rng);
                tokio::spawn(write_until_stopped(
                    client,
                    stream,
                    w,
                    seed,
                    outcomes.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        Load {
            outcomes,
            stop,
            writers,
        }
    }

    fn acked(&self) -> usize {
        self.outcomes
            .lock()
            .unwrap()
            .iter()
            .map(|o| o.acked.len())
            .sum()
    }

    /// Waits for `more` acknowledgements beyond the current count.
    pub(crate) async fn progress(&self, more: usize, what: &str) {
        let from = self.acked();
        wait_until(Duration::from_secs(30), what, || async {
            self.acked() >= from + more
        })
        .await;
    }

    pub(crate) async fn finish(self) -> Outcomes {
        self.stop.store(true, Ordering::SeqCst);
        for w in self.writers {
            w.await.unwrap();
        }
        let mut all = Outcomes::default();
        for o in std::mem::take(&mut *self.outcomes.lock().unwrap()) {
            all.absorb(o);
        }
        all
    }
}

async fn write_until_stopped(
    client: StreamdClient,
    stream: &'static str,
    writer: usize,
    seed: u64,
    outcomes: Arc<Mutex<Vec<Outcomes>>>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    while !stop.load(Ordering::SeqCst) {
        let batch = random_entries(&mut rng, BATCH, KEYS, 16..=64);
        let mut out = Outcomes::default();
        let failed = put_and_file(&client, stream, writer, batch, &mut out)
            .await
            .is_err();
        outcomes.lock().unwrap()[writer].absorb(out);
        if failed {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn open_ranges(d: &v1::StreamDescription) -> Vec<HashKeyRange> {
    let mut r: Vec<HashKeyRange> = d
        .shards
        .iter()
        .filter(|s| {
            s.sequence_number_range
                .as_ref()
                .is_some_and(|r| r.ending_sequence_number.is_none())
        })
        .map(key_range)
        .collect();
    r.sort_by_key(|x| x.start);
    r
}

/// Waits until the stream is ACTIVE with a map epoch above `epoch` and `open` open shards;
/// returns the description.
async fn wait_resharded(
    client: &StreamdClient,
    stream: &str,
    epoch: u64,
    open: usize,
) -> v1::StreamDescription {
    let what = format!("{stream} ACTIVE again with {open} open shards");
    wait_ok(Duration::from_secs(90), &what, || async {
        let d = client
            .describe_stream(stream)
            .await
            .map_err(|e| e.to_string())?;
        let n = open_ranges(&d).len();
        if d.stream_status() == v1::StreamStatus::Active && d.map_epoch > epoch && n == open {
            Ok(d)
        } else {
            Err(format!(
                "status {}, epoch {}, {n} open",
                d.stream_status().as_str_name(),
                d.map_epoch
            ))
        }
    })
    .await
}

/// Per partition key, across the shards that held it over time: every acknowledged record
/// once, and if one was acknowledged before another was sent, it comes first. Sequence numbers
/// order a key's records across its lineage (children's are above their parents').
fn check_key_order(read: &StreamRecords, acked: &[Acked]) -> Result<(), String> {
    let mut position: HashMap<(String, String), ()> = HashMap::new();
    let mut by_key: BTreeMap<&str, Vec<(streamd_proto::ids::SequenceNumber, &str)>> =
        BTreeMap::new();
    for (shard, records) in read {
        for r in records {
            if position
                .insert((shard.clone(), r.sequence_number.clone()), ())
                .is_some()
            {
                return Err(format!("{shard} lists {} twice", r.sequence_number));
            }
            by_key
                .entry(r.partition_key.as_str())
                .or_default()
                .push((seq(&r.sequence_number), shard.as_str()));
        }
    }
    let mut acked_by_key: BTreeMap<&str, Vec<&Acked>> = BTreeMap::new();
    for a in acked {
        acked_by_key.entry(a.key.as_str()).or_default().push(a);
    }
    for (key, mut list) in acked_by_key {
        // Real-time order: sweep acknowledgements in time order; a record sent after another's
        // acknowledgement must have a higher sequence number.
        list.sort_by_key(|a| a.at);
        let mut by_sent: Vec<&Acked> = list.clone();
        by_sent.sort_by_key(|a| a.sent);
        let mut i = 0;
        let mut highest: Option<&Acked> = None;
        for b in by_sent {
            while i < list.len() && list[i].at < b.sent {
                if highest.is_none_or(|h| list[i].seq > h.seq) {
                    highest = Some(list[i]);
                }
                i += 1;
            }
            if let Some(h) = highest
                && h.seq >= b.seq
            {
                return Err(format!(
                    "key {key}: {} ({}) was acknowledged before {} ({}) was sent, yet comes after it",
                    h.seq, h.shard_id, b.seq, b.shard_id
                ));
            }
        }
        if !by_key.contains_key(key) {
            return Err(format!("key {key}: acknowledged records but none read"));
        }
    }
    Ok(())
}

/// Every closed shard ends: reading it to the end returns no next iterator and its children.
async fn check_closed_shards_end(client: &StreamdClient, stream: &str) {
    let d = client.describe_stream(stream).await.unwrap();
    for s in &d.shards {
        let closed = s
            .sequence_number_range
            .as_ref()
            .is_some_and(|r| r.ending_sequence_number.is_some());
        if !closed {
            continue;
        }
        let children: Vec<&str> = d
            .shards
            .iter()
            .filter(|c| {
                c.parent_shard_id.as_deref() == Some(s.shard_id.as_str())
                    || c.adjacent_parent_shard_id.as_deref() == Some(s.shard_id.as_str())
            })
            .map(|c| c.shard_id.as_str())
            .collect();
        assert!(
            !children.is_empty(),
            "{} is closed but has no children",
            s.shard_id
        );
        let mut it = client
            .get_shard_iterator(
                stream,
                &s.shard_id,
                v1::ShardIteratorType::TrimHorizon,
                None,
                None,
            )
            .await
            .unwrap();
        let last = loop {
            let page = client.get_records(&it, Some(10_000)).await.unwrap();
            match page.next_shard_iterator.clone() {
                Some(next) => it = next,
                None => break page,
            }
        };
        let mut named: Vec<&str> = last
            .child_shards
            .iter()
            .map(|c| c.shard_id.as_str())
            .collect();
        named.sort();
        let mut expected = children.clone();
        expected.sort();
        assert_eq!(
            named, expected,
            "children named at the end of {}",
            s.shard_id
        );
    }
}

async fn verify(client: &StreamdClient, stream: &str, all: &Outcomes) {
    eprintln!(
        "{stream}: {} acknowledged, {} of unknown outcome, {} failed calls, errors {:?}",
        all.acked.len(),
        all.unknown.len(),
        all.failed_calls,
        all.errors
    );
    let read = read_until_complete(client, stream, &all.acked, Duration::from_secs(60)).await;
    check_exactly_once(&read, &all.acked, &all.unknown).unwrap();
    check_key_order(&read, &all.acked).unwrap();
    check_closed_shards_end(client, stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn split_merge_and_scale_under_load_keep_every_key_in_order() {
    const STREAM: &str = "t70-reshard";
    bounded(Duration::from_secs(420), "t70 reshard", async {
        let mut rng = test_rng("t70");
        let cluster = start_cluster(3, true).await;
        let client = cluster.client();
        let mut d = create_active(&client, STREAM, 4).await;
        let options = writer_options();
        let load = Load::start(
            (0..WRITERS)
                .map(|_| cluster.client_with(options.clone()))
                .collect(),
            STREAM,
            &mut rng,
        );
        load.progress(400, "writes before resharding").await;

        // Split shard 0 at the middle of its range.
        let r = HashKeyRange::split_even(4)[0];
        let mid = r.start.0 + (r.end.0 - r.start.0) / 2;
        client
            .split_shard(STREAM, "shardId-000000000000", &mid.to_string())
            .await
            .unwrap();
        // A second reshard while UPDATING is refused (unless the split already finished).
        if let Err(e) = client.update_shard_count(STREAM, 8).await {
            assert_eq!(e.code(), streamd_client::ErrorCode::ResourceInUse, "{e}");
        } else {
            panic!("a reshard while UPDATING was accepted");
        }
        d = wait_resharded(&client, STREAM, d.map_epoch, 5).await;
        load.progress(300, "writes after the split").await;

        // Merge the two children back.
        client
            .merge_shards(STREAM, "shardId-000000000004", "shardId-000000000005")
            .await
            .unwrap();
        d = wait_resharded(&client, STREAM, d.map_epoch, 4).await;
        assert_eq!(open_ranges(&d), HashKeyRange::split_even(4));
        load.progress(300, "writes after the merge").await;

        for target in [8u32, 4, 3] {
            let resp = client.update_shard_count(STREAM, target).await.unwrap();
            assert_eq!(resp.target_shard_count, target);
            d = wait_resharded(&client, STREAM, d.map_epoch, target as usize).await;
            assert_eq!(open_ranges(&d), HashKeyRange::split_even(target));
            eprintln!("t70: scaled to {target}, map epoch {}", d.map_epoch);
            load.progress(300, "writes after scaling").await;
        }
        let all = load.finish().await;
        assert!(
            !all.errors.contains_key("ShardClosed"),
            "sealed shards must never surface to writers: {:?}",
            all.errors
        );
        verify(&client, STREAM, &all).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_split_completes_after_its_controller_is_killed() {
    const STREAM: &str = "t70-controller";
    bounded(Duration::from_secs(300), "t70 controller kill", async {
        let mut rng = test_rng("t70-kill");
        let mut cluster = start_cluster(3, true).await;
        let client = cluster.client();
        let d = create_active(&client, STREAM, 2).await;
        let options = writer_options();
        let load = Load::start(
            (0..WRITERS)
                .map(|_| cluster.client_with(options.clone()))
                .collect(),
            STREAM,
            &mut rng,
        );
        load.progress(400, "writes before the split").await;
        let leader = wait_ok(Duration::from_secs(30), "a metadata leader", || async {
            client
                .cluster_status()
                .await
                .map_err(|e| e.to_string())?
                .metadata_leader
                .ok_or_else(|| "none yet".to_string())
        })
        .await;
        // Ask a node other than the leader, so the split's reply does not depend on it.
        let other = cluster
            .node_ids()
            .into_iter()
            .find(|n| *n != leader)
            .unwrap();
        let r = HashKeyRange::split_even(2)[1];
        let at = r.start.0 + (r.end.0 - r.start.0) / 3;
        cluster
            .node_client(other)
            .split_shard(STREAM, "shardId-000000000001", &at.to_string())
            .await
            .unwrap();
        cluster.kill9(leader);
        let status = cluster
            .node_client(other)
            .describe_stream_summary(STREAM)
            .await
            .map(|d| d.stream_status().as_str_name().to_string());
        eprintln!(
            "t70: killed metadata leader {leader} right after the split was planned ({status:?})"
        );
        let d = wait_resharded(&cluster.node_client(other), STREAM, d.map_epoch, 3).await;
        eprintln!(
            "t70: split finished under a new controller, map epoch {}",
            d.map_epoch
        );
        load.progress(300, "writes after the split").await;
        cluster.restart(leader).await;
        load.progress(200, "writes after the restart").await;
        let all = load.finish().await;
        verify(&client, STREAM, &all).await;
    })
    .await;
}
