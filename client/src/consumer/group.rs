//! A consumer group: workers of one application share a stream's shards through leases kept in
//! the cluster's metadata, as KCL workers do through a DynamoDB table.
//!
//! Each worker runs one coordinator loop and one task per shard it holds. Every
//! `lease_duration / 3` the coordinator:
//! 1. renews its leases; a lease it fails to renew (taken over, or expired) stops its task;
//! 2. works out which shards may be processed: not finished (no `SHARD_END` checkpoint) and
//!    every parent finished, so a key's records in a parent are processed before its records in
//!    the children;
//! 3. aims at an even share (eligible shards / live workers, rounded up): takes free or expired
//!    leases first, then steals one lease a round from the busiest worker above the share.
//!
//! A shard task reads from the lease's checkpoint (or the initial position) with a
//! [`ShardReader`], hands each page to
//! the handler, and checkpoints the page's last sequence number once the handler returns, under
//! the lease's counter: a worker that lost the lease cannot move the checkpoint. Delivery is at
//! least once: records handled after the last checkpoint of a worker that died are handled again
//! by the next owner; a worker stopped with [`ConsumerGroup::shutdown`] checkpoints and releases
//! first, so its successor starts with exactly the records after the checkpoint.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use streamd_proto::v1::update_lease_request::Op;
use streamd_proto::{ErrorCode, v1};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use super::shard_reader::{ShardReader, StartingPosition};
use crate::client::StreamdClient;
use crate::error::ClientError;
use crate::kpl::{UserRecord, deaggregate};

/// The checkpoint of a shard read to its end (the server's `SHARD_END`).
pub const SHARD_END: &str = "SHARD_END";

/// Where a shard without a checkpoint is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialPosition {
    TrimHorizon,
    Latest,
}

#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// Names the lease table: workers with the same application share the stream.
    pub application: String,
    pub stream: String,
    /// Unique among the application's workers.
    pub worker_id: String,
    /// How long a lease lives without renewal: a dead worker's shards move after this.
    pub lease_duration: Duration,
    /// Pause between reads of a shard that returned nothing.
    pub idle_poll: Duration,
    pub max_records: u32,
    pub initial_position: InitialPosition,
    /// Unpack KPL-aggregated records into [`Batch::user_records`].
    pub deaggregate: bool,
}

impl GroupConfig {
    pub fn new(application: &str, stream: &str, worker_id: &str) -> Self {
        GroupConfig {
            application: application.to_string(),
            stream: stream.to_string(),
            worker_id: worker_id.to_string(),
            lease_duration: Duration::from_secs(10),
            idle_poll: Duration::from_millis(200),
            max_records: 1_000,
            initial_position: InitialPosition::TrimHorizon,
            deaggregate: true,
        }
    }
}

/// One page of records of one shard, handed to the handler.
#[derive(Debug, Clone)]
pub struct Batch {
    pub shard_id: String,
    /// The Kinesis records as stored.
    pub records: Vec<v1::Record>,
    /// With [`GroupConfig::deaggregate`], the user records inside them in order: an aggregated
    /// record's, each with its sub-sequence, and every other record as itself.
    pub user_records: Vec<UserRecordAt>,
    pub millis_behind_latest: i64,
}

/// A user record and the sequence number of the Kinesis record that carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecordAt {
    pub sequence_number: String,
    pub record: UserRecord,
}

/// The user records of a page. An aggregated record whose digest matches but whose body does not
/// decode is handed over as it is, as KCL does, rather than stopping the shard.
pub fn user_records(records: &[v1::Record]) -> Vec<UserRecordAt> {
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        let unpacked = deaggregate(&r.partition_key, &r.data).unwrap_or_else(|e| {
            tracing::warn!(sequence_number = %r.sequence_number, error = %e, "undecodable aggregated record handed over as is");
            vec![UserRecord {
                partition_key: r.partition_key.clone(),
                explicit_hash_key: None,
                data: r.data.clone(),
                sub_sequence: None,
            }]
        });
        out.extend(unpacked.into_iter().map(|record| UserRecordAt {
            sequence_number: r.sequence_number.clone(),
            record,
        }));
    }
    out
}

/// Processes one batch; the batch is checkpointed when the returned future completes.
pub type Handler = Arc<dyn Fn(Batch) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A shard being processed by this worker: its lease counter and its task.
struct Held {
    counter: u64,
    task: JoinHandle<()>,
}

/// A running worker of a consumer group.
pub struct ConsumerGroup {
    stop: watch::Sender<bool>,
    coordinator: JoinHandle<()>,
    held: Arc<Mutex<HashMap<String, Held>>>,
    client: StreamdClient,
    config: GroupConfig,
}

impl ConsumerGroup {
    /// Starts a worker; it runs until [`ConsumerGroup::shutdown`] or until dropped (a drop
    /// stops it without releasing its leases, like a crash).
    pub fn start(client: StreamdClient, config: GroupConfig, handler: Handler) -> Self {
        let (stop, stopped) = watch::channel(false);
        let held = Arc::new(Mutex::new(HashMap::new()));
        let worker = Worker {
            client: client.clone(),
            config: config.clone(),
            handler,
            held: held.clone(),
        };
        let coordinator = tokio::spawn(worker.run(stopped));
        ConsumerGroup {
            stop,
            coordinator,
            held,
            client,
            config,
        }
    }

    /// The shards this worker holds a lease on right now.
    pub async fn held_shards(&self) -> Vec<String> {
        let mut v: Vec<String> = self.held.lock().await.keys().cloned().collect();
        v.sort();
        v
    }

    /// Stops processing, waits for in-flight batches to be handled and checkpointed, and
    /// releases every lease so other workers take the shards at once.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let _ = (&mut self.coordinator).await;
        let held: Vec<(String, Held)> = self.held.lock().await.drain().collect();
        for (shard, h) in held {
            // Tasks stop at their next page boundary, after checkpointing the last one.
            let _ = h.task.await;
            let _ = self
                .client
                .update_lease(
                    &self.config.application,
                    &self.config.stream,
                    &shard,
                    &self.config.worker_id,
                    Op::Release(v1::ReleaseLease { counter: h.counter }),
                )
                .await;
        }
    }
}

impl Drop for ConsumerGroup {
    fn drop(&mut self) {
        self.coordinator.abort();
        if let Ok(mut held) = self.held.try_lock() {
            for (_, h) in held.drain() {
                h.task.abort();
            }
        }
    }
}

struct Worker {
    client: StreamdClient,
    config: GroupConfig,
    handler: Handler,
    held: Arc<Mutex<HashMap<String, Held>>>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Worker {
    async fn run(self, mut stopped: watch::Receiver<bool>) {
        let tick = self.config.lease_duration / 3;
        loop {
            if let Err(e) = self.round(&stopped).await {
                tracing::debug!(worker = %self.config.worker_id, error = %e, "consumer group round failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = stopped.changed() => {}
            }
            if *stopped.borrow() {
                return;
            }
        }
    }

    fn lease_ms(&self) -> u64 {
        self.config.lease_duration.as_millis() as u64
    }

    async fn update(&self, shard: &str, op: Op) -> Result<v1::Lease, ClientError> {
        self.client
            .update_lease(
                &self.config.application,
                &self.config.stream,
                shard,
                &self.config.worker_id,
                op,
            )
            .await
    }

    #[tracing::instrument(name = "consumer.round", skip_all, fields(worker = %self.config.worker_id))]
    async fn round(&self, stopped: &watch::Receiver<bool>) -> Result<(), ClientError> {
        self.renew().await;
        let shards = self.client.list_shards(&self.config.stream).await?;
        let table = self
            .client
            .list_leases(&self.config.application, &self.config.stream)
            .await?;
        let leases: BTreeMap<String, v1::Lease> = table
            .leases
            .into_iter()
            .map(|l| (l.shard_id.clone(), l))
            .collect();
        let finished =
            |id: &str| leases.get(id).and_then(|l| l.checkpoint.as_deref()) == Some(SHARD_END);
        let known: Vec<&str> = shards.iter().map(|s| s.shard_id.as_str()).collect();
        // A parent no longer listed has left retention: nothing of it is left to process first.
        let parent_done = |p: &Option<String>| {
            p.as_deref()
                .is_none_or(|p| !known.contains(&p) || finished(p))
        };
        let eligible: Vec<&v1::Shard> = shards
            .iter()
            .filter(|s| !finished(&s.shard_id))
            .filter(|s| parent_done(&s.parent_shard_id) && parent_done(&s.adjacent_parent_shard_id))
            .collect();
        let now = now_ms().max(table.clock_ms);
        let live = |l: &v1::Lease| l.owner.is_some() && l.expires_ms > now;
        let mut per_owner: BTreeMap<&str, usize> = BTreeMap::new();
        per_owner.insert(&self.config.worker_id, 0);
        for s in &eligible {
            if let Some(l) = leases.get(&s.shard_id).filter(|l| live(l))
                && let Some(o) = l.owner.as_deref()
            {
                *per_owner.entry(o).or_default() += 1;
            }
        }
        let target = eligible.len().div_ceil(per_owner.len());
        let mut mine = self.held.lock().await.len();
        // Free or expired leases first.
        for s in &eligible {
            if mine >= target || *stopped.borrow() {
                return Ok(());
            }
            let free = leases.get(&s.shard_id).is_none_or(|l| !live(l));
            if free && self.take(&s.shard_id, false, None, stopped).await {
                mine += 1;
            }
        }
        // Then one lease from the busiest worker above the share.
        if mine < target
            && let Some((busiest, n)) = per_owner
                .iter()
                .filter(|(o, _)| **o != self.config.worker_id)
                .max_by_key(|(_, n)| **n)
            && *n > target
            && let Some(l) = eligible
                .iter()
                .filter_map(|s| leases.get(&s.shard_id))
                .find(|l| live(l) && l.owner.as_deref() == Some(busiest))
        {
            self.take(&l.shard_id, true, Some(l.counter), stopped).await;
        }
        Ok(())
    }

    /// Renews every held lease; stops the task of any lease that is gone.
    async fn renew(&self) {
        let mut held = self.held.lock().await;
        let mut lost = Vec::new();
        for (shard, h) in held.iter() {
            if h.task.is_finished() {
                // Read to its end (or gone): hand the lease back so it does not linger.
                let _ = self
                    .update(shard, Op::Release(v1::ReleaseLease { counter: h.counter }))
                    .await;
                lost.push(shard.clone());
                continue;
            }
            let op = Op::Renew(v1::RenewLease {
                counter: h.counter,
                lease_ms: self.lease_ms(),
            });
            match self.update(shard, op).await {
                Ok(_) => {}
                Err(e) if e.code() == ErrorCode::LeaseConflict => {
                    tracing::info!(shard_id = %shard, "lease lost to another worker");
                    lost.push(shard.clone());
                }
                // Unknown outcome: the next round tries again, and the task's checkpoints are
                // fenced anyway.
                Err(e) => tracing::debug!(shard_id = %shard, error = %e, "lease renewal failed"),
            }
        }
        for shard in lost {
            if let Some(h) = held.remove(&shard) {
                h.task.abort();
            }
        }
    }

    /// Takes the lease on `shard` and starts processing it; whether it did.
    async fn take(
        &self,
        shard: &str,
        steal: bool,
        expect_counter: Option<u64>,
        stopped: &watch::Receiver<bool>,
    ) -> bool {
        let op = Op::Take(v1::TakeLease {
            steal,
            expect_counter,
            lease_ms: self.lease_ms(),
        });
        let lease = match self.update(shard, op).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(shard_id = %shard, error = %e, "lease not taken");
                return false;
            }
        };
        if lease.checkpoint.as_deref() == Some(SHARD_END) {
            let _ = self
                .update(
                    shard,
                    Op::Release(v1::ReleaseLease {
                        counter: lease.counter,
                    }),
                )
                .await;
            return false;
        }
        tracing::info!(shard_id = %shard, counter = lease.counter, steal, "lease taken");
        let processor = ShardProcessor {
            client: self.client.clone(),
            config: self.config.clone(),
            handler: self.handler.clone(),
            shard_id: shard.to_string(),
            counter: lease.counter,
            stopped: stopped.clone(),
        };
        let task = tokio::spawn(processor.run(lease.checkpoint));
        self.held.lock().await.insert(
            shard.to_string(),
            Held {
                counter: lease.counter,
                task,
            },
        );
        true
    }
}

/// Reads one leased shard, hands its pages to the handler and checkpoints them.
struct ShardProcessor {
    client: StreamdClient,
    config: GroupConfig,
    handler: Handler,
    shard_id: String,
    counter: u64,
    stopped: watch::Receiver<bool>,
}

impl ShardProcessor {
    async fn checkpoint(&self, value: &str) -> Result<(), ClientError> {
        let op = Op::Checkpoint(v1::CheckpointLease {
            counter: self.counter,
            checkpoint: value.to_string(),
        });
        self.client
            .update_lease(
                &self.config.application,
                &self.config.stream,
                &self.shard_id,
                &self.config.worker_id,
                op,
            )
            .await
            .map(|_| ())
    }

    #[tracing::instrument(name = "consumer.shard", skip_all, fields(shard_id = %self.shard_id, counter = self.counter))]
    async fn run(mut self, checkpoint: Option<String>) {
        let start = match (checkpoint, self.config.initial_position) {
            (Some(s), _) => StartingPosition::AfterSequenceNumber(s),
            (None, InitialPosition::TrimHorizon) => StartingPosition::TrimHorizon,
            (None, InitialPosition::Latest) => StartingPosition::Latest,
        };
        let mut reader = ShardReader::new(
            self.client.clone(),
            &self.config.stream,
            &self.shard_id,
            start,
        )
        .with_max_records(self.config.max_records);
        loop {
            // Stops only between pages: the last handled page is already checkpointed.
            if *self.stopped.borrow() {
                return;
            }
            let page = match reader.next_page(self.config.lease_duration).await {
                Ok(Some(page)) => page,
                Ok(None) => return,
                // Gone from retention, or the stream was deleted.
                Err(e) if e.code() == ErrorCode::ResourceNotFound => return,
                Err(e) => {
                    tracing::debug!(error = %e, "reading the shard failed");
                    self.idle().await;
                    continue;
                }
            };
            let empty = page.records.is_empty();
            if let Some(r) = page.records.last() {
                let seq = r.sequence_number.clone();
                let unpacked = if self.config.deaggregate {
                    user_records(&page.records)
                } else {
                    Vec::new()
                };
                (self.handler)(Batch {
                    shard_id: self.shard_id.clone(),
                    user_records: unpacked,
                    records: page.records,
                    millis_behind_latest: page.millis_behind_latest,
                })
                .await;
                if let Err(e) = self.checkpoint(&seq).await {
                    // Fenced: another worker owns the shard now.
                    tracing::info!(error = %e, "checkpoint refused; stopping");
                    return;
                }
            }
            if page.shard_end {
                if let Err(e) = self.checkpoint(SHARD_END).await {
                    tracing::info!(error = %e, "end checkpoint refused");
                }
                return;
            }
            if empty {
                self.idle().await;
            }
        }
    }

    async fn idle(&mut self) {
        tokio::select! {
            _ = tokio::time::sleep(self.config.idle_poll) => {}
            _ = self.stopped.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn record(seq: &str, key: &str, data: Bytes) -> v1::Record {
        v1::Record {
            sequence_number: seq.into(),
            approximate_arrival_timestamp_ms: 0,
            data,
            partition_key: key.into(),
        }
    }

    #[test]
    fn aggregated_records_unpack_in_order_and_plain_ones_pass_through() {
        let mut agg = crate::kpl::Aggregator::new();
        agg.push("k1", None, Bytes::from_static(b"one"));
        agg.push("k2", None, Bytes::from_static(b"two"));
        let (outer_key, _, packed) = agg.finish().unwrap();
        let page = [
            record("10", "plain", Bytes::from_static(b"zero")),
            record("11", &outer_key, packed),
        ];
        let got: Vec<(String, String, Option<u32>, Bytes)> = user_records(&page)
            .into_iter()
            .map(|u| {
                (
                    u.sequence_number,
                    u.record.partition_key,
                    u.record.sub_sequence,
                    u.record.data,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "10".into(),
                    "plain".into(),
                    None,
                    Bytes::from_static(b"zero")
                ),
                (
                    "11".into(),
                    "k1".into(),
                    Some(0),
                    Bytes::from_static(b"one")
                ),
                (
                    "11".into(),
                    "k2".into(),
                    Some(1),
                    Bytes::from_static(b"two")
                ),
            ]
        );
    }
}
