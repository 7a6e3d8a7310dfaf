//! Concurrent puts to one shard become one Raft entry per flush, on the leader.
//!
//! Hot path. Every PutRecords call used to be its own Raft entry: its own WAL record, its own
//! share of a replication message, its own apply batch and reply. 256 single-record calls in
//! flight were 256 entries. Here a call joins the shard's queue; at most [`MAX_IN_FLIGHT`]
//! entries of the shard are being proposed at once, and each one takes everything queued when
//! it starts (up to [`MAX_ENTRY_BYTES`] and [`MAX_ENTRY_RECORDS`]). An idle shard proposes a
//! call at once, with no timer; a busy one batches whatever arrived while its entries were in
//! flight, so the batch grows with the load instead of with a linger setting.
//!
//! The entry is an ordinary `ShardCommand::Put`: a call's records stay together and in order in
//! it, so they get consecutive positions of one log index, exactly the sequence numbers they
//! would have had alone. Nothing about the log format or apply changes.
//!
//! Idempotent puts do not come here: a producer's numbers must reach the log in its own order,
//! and two of its calls in different entries could be reordered between concurrent flushes.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use streamd_proto::{ApiError, ErrorCode};
use streamd_raft::GroupHandle;
use streamd_raft::hops::{self, Hop};
use tokio::sync::oneshot;

use crate::command::{ApplyReply, RecordIn, ShardCommand};
use crate::service::now_ms;

/// Entries of one shard being proposed at once. Enough to keep replication pipelined (the
/// next entry is on its way while the previous one's acknowledgements come back), few enough
/// that entries stay large under load.
const MAX_IN_FLIGHT: usize = 4;
/// A flush stops adding calls beyond this many bytes of records (one call always goes, even a
/// 5 MiB one). openraft sends up to 16 entries per AppendEntries: 1 MiB entries keep one
/// replication message near 16 MiB, which a follower writes and fsyncs in well under a second.
/// Larger entries save little (the per-entry cost is already shared by hundreds of records).
const MAX_ENTRY_BYTES: usize = 1 << 20;
/// Positions inside an entry are 16 bits; far below that keeps apply and reads of one entry
/// cheap.
const MAX_ENTRY_RECORDS: usize = 10_000;

/// Where a call's records went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Records `first..first + count` of the entry at `log_index`.
    Written {
        log_index: u64,
        first: u32,
        count: u32,
    },
    /// The shard was sealed by a reshard before the entry applied: nothing was written.
    Closed,
}

struct Pending {
    records: Vec<RecordIn>,
    bytes: usize,
    queued: Instant,
    reply: oneshot::Sender<Result<Placement, ApiError>>,
}

#[derive(Default)]
struct Queue {
    pending: VecDeque<Pending>,
    in_flight: usize,
}

/// One shard's put queue (kept by its [`crate::ShardService`]).
#[derive(Default, Clone)]
pub(crate) struct PutBatcher {
    queue: Arc<Mutex<Queue>>,
}

impl PutBatcher {
    /// Queues `records` (already admitted) and waits for the entry that carries them.
    pub(crate) async fn put(
        &self,
        handle: GroupHandle,
        records: Vec<RecordIn>,
    ) -> Result<Placement, ApiError> {
        let (tx, rx) = oneshot::channel();
        let bytes = records
            .iter()
            .map(|r| r.data.len() + r.partition_key.len())
            .sum();
        let start = {
            let mut q = self.queue.lock();
            q.pending.push_back(Pending {
                records,
                bytes,
                queued: Instant::now(),
                reply: tx,
            });
            if q.in_flight < MAX_IN_FLIGHT {
                q.in_flight += 1;
                Some(take_batch(&mut q))
            } else {
                None
            }
        };
        if let Some(batch) = start {
            // A task of its own, not this call's future: a caller that gives up (its client
            // disconnected) must not strand the other calls of the batch.
            tokio::spawn(flush_loop(self.queue.clone(), handle, batch));
        }
        rx.await.map_err(|_| {
            ApiError::new(
                ErrorCode::Unavailable,
                "the shard's proposer stopped before answering; the outcome is unknown",
            )
        })?
    }
}

/// Takes calls from the front of the queue up to the entry's limits (at least one).
fn take_batch(q: &mut Queue) -> Vec<Pending> {
    let mut batch = Vec::new();
    let (mut bytes, mut records) = (0usize, 0usize);
    while let Some(p) = q.pending.front() {
        let fits =
            bytes + p.bytes <= MAX_ENTRY_BYTES && records + p.records.len() <= MAX_ENTRY_RECORDS;
        if !batch.is_empty() && !fits {
            break;
        }
        bytes += p.bytes;
        records += p.records.len();
        batch.extend(q.pending.pop_front());
    }
    batch
}

/// Proposes `batch`, then whatever queued meanwhile, until the queue is empty.
async fn flush_loop(queue: Arc<Mutex<Queue>>, handle: GroupHandle, mut batch: Vec<Pending>) {
    loop {
        propose(&handle, batch).await;
        let mut q = queue.lock();
        if q.pending.is_empty() {
            q.in_flight -= 1;
            return;
        }
        batch = take_batch(&mut q);
    }
}

#[tracing::instrument(name = "shard.flush", skip_all, fields(group_id = handle.id(), calls = batch.len()))]
async fn propose(handle: &GroupHandle, batch: Vec<Pending>) {
    let mut records = Vec::with_capacity(batch.iter().map(|p| p.records.len()).sum());
    let mut replies = Vec::with_capacity(batch.len());
    for p in batch {
        hops::observe(Hop::Queue, p.queued);
        let first = records.len() as u32;
        let count = p.records.len() as u32;
        records.extend(p.records);
        replies.push((first, count, p.reply));
    }
    let total = records.len() as u32;
    let outcome = propose_entry(handle, records).await;
    for (first, count, reply) in replies {
        let answer = match &outcome {
            Ok(Placement::Written {
                log_index,
                count: written,
                ..
            }) if first + count <= *written || count == 0 => Ok(Placement::Written {
                log_index: *log_index,
                first,
                count,
            }),
            Ok(Placement::Written { .. }) => Err(ApiError::internal(format!(
                "the entry stored fewer records than the {total} proposed"
            ))),
            Ok(Placement::Closed) => Ok(Placement::Closed),
            Err(e) => Err(e.clone()),
        };
        // The caller may have gone; its records are written all the same.
        let _ = reply.send(answer);
    }
}

async fn propose_entry(
    handle: &GroupHandle,
    records: Vec<RecordIn>,
) -> Result<Placement, ApiError> {
    let cmd = bincode::serialize(&ShardCommand::Put {
        arrival_ms: now_ms(),
        records,
    })
    .map_err(|e| ApiError::internal(format!("failed to encode: {e}")))?;
    let reply = handle.propose(cmd).await.map_err(ApiError::from)?;
    match bincode::deserialize::<ApplyReply>(&reply)
        .map_err(|e| ApiError::internal(format!("failed to decode: {e}")))?
    {
        ApplyReply::Put { log_index, count } => Ok(Placement::Written {
            log_index,
            first: 0,
            count,
        }),
        ApplyReply::Closed => Ok(Placement::Closed),
        ApplyReply::Trimmed | ApplyReply::Sealed { .. } | ApplyReply::PutIdempotent { .. } => {
            Err(ApiError::internal("unexpected reply to a put"))
        }
    }
}
