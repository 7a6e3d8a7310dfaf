//! The requests a shard replica answers: writes (on the leader) and reads (on any replica).
//!
//! Hot path: every PutRecords batch for this shard passes through `propose` on the leader. No
//! blocking I/O, no per-record logging, one Raft entry per batch.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use streamd_proto::ids::SequenceNumber;
use streamd_proto::{ApiError, ErrorCode};
use streamd_raft::{GroupHandle, GroupService};

use crate::batcher::{Placement, PutBatcher};
use crate::command::{
    ApplyReply, IdempotentOutcome, QueryReply, RecordResult, ShardCommand, ShardQuery, ShardReply,
    ShardRequest,
};
use crate::limits::{ReadBudget, ShardLimits, WriteBudget};
use crate::metrics::ShardMetrics;
use crate::reader::ShardReader;

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub struct ShardService {
    group: u64,
    reader: ShardReader,
    limits: ShardLimits,
    budget: Mutex<WriteBudget>,
    read_budget: Mutex<ReadBudget>,
    metrics: Arc<ShardMetrics>,
    batcher: PutBatcher,
}

fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, ApiError> {
    bincode::serialize(v).map_err(|e| ApiError::internal(format!("failed to encode: {e}")))
}

fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, ApiError> {
    bincode::deserialize(b).map_err(|e| ApiError::internal(format!("failed to decode: {e}")))
}

impl ShardService {
    pub fn new(group: u64, reader: ShardReader, limits: ShardLimits) -> Self {
        ShardService {
            group,
            reader,
            limits,
            budget: Mutex::new(WriteBudget::new()),
            read_budget: Mutex::new(ReadBudget::new()),
            metrics: Arc::default(),
            batcher: PutBatcher::default(),
        }
    }

    pub fn metrics(&self) -> &ShardMetrics {
        &self.metrics
    }

    pub fn reader(&self) -> &ShardReader {
        &self.reader
    }

    /// Admission: records over the shard's write budget fail individually, as Kinesis does.
    fn admit(&self, records: &[crate::command::RecordIn]) -> Vec<bool> {
        if self.limits == ShardLimits::Off {
            return vec![true; records.len()];
        }
        let mut budget = self.budget.lock();
        records
            .iter()
            .map(|r| budget.take(r.data.len() + r.partition_key.len()))
            .collect()
    }

    async fn put(
        group: u64,
        handle: GroupHandle,
        batcher: PutBatcher,
        records: Vec<crate::command::RecordIn>,
        admitted: Vec<bool>,
        metrics: Arc<ShardMetrics>,
    ) -> Result<Vec<u8>, ApiError> {
        let total = records.len();
        metrics.write_throttled(admitted.iter().filter(|ok| !**ok).count() as u64);
        let accepted: Vec<_> = records
            .into_iter()
            .zip(admitted.iter())
            .filter(|(_, ok)| **ok)
            .map(|(r, _)| r)
            .collect();
        let mut sequence = Vec::new();
        let mut closed = false;
        let accepted_bytes: usize = accepted
            .iter()
            .map(|r| r.data.len() + r.partition_key.len())
            .sum();
        if !accepted.is_empty() {
            match batcher.put(handle, accepted).await? {
                Placement::Written {
                    log_index,
                    first,
                    count,
                } => {
                    sequence = (first..first + count)
                        .map(|p| SequenceNumber::new(group, log_index, p as u16).0)
                        .collect();
                    metrics.written(count as u64, accepted_bytes as u64);
                }
                Placement::Closed => closed = true,
            }
        }
        let mut seqs = sequence.into_iter();
        let mut results = Vec::with_capacity(total);
        for ok in admitted {
            results.push(match (ok, ok.then(|| seqs.next()).flatten()) {
                (true, Some(s)) => RecordResult::Ok { sequence_number: s },
                (true, None) if closed => closed_result(),
                (true, None) => RecordResult::Failed {
                    error: ErrorCode::InternalFailure.name().into(),
                    message: "record was not written".into(),
                },
                (false, _) => RecordResult::Failed {
                    error: ErrorCode::ProvisionedThroughputExceeded.name().into(),
                    message: "Rate exceeded for shard in stream.".into(),
                },
            });
        }
        encode(&ShardReply::Put { results })
    }
}

impl ShardService {
    async fn put_idempotent(
        group: u64,
        handle: GroupHandle,
        producer_id: u64,
        records: Vec<crate::command::RecordIn>,
        seqs: Vec<u64>,
        admitted: Vec<bool>,
    ) -> Result<Vec<u8>, ApiError> {
        let accepted = admitted.iter().filter(|ok| **ok).count();
        let mut records = records;
        records.truncate(accepted);
        let mut outcomes = Vec::new();
        let mut closed = false;
        if accepted > 0 {
            let cmd = encode(&ShardCommand::PutIdempotent {
                arrival_ms: now_ms(),
                records,
                producer_id,
                seqs: seqs[..accepted].to_vec(),
            })?;
            let reply = handle.propose(cmd).await.map_err(ApiError::from)?;
            match decode::<ApplyReply>(&reply)? {
                ApplyReply::PutIdempotent {
                    log_index,
                    outcomes: o,
                } => {
                    outcomes = o
                        .into_iter()
                        .map(|o| match o {
                            IdempotentOutcome::Written { position } => RecordResult::Ok {
                                sequence_number: SequenceNumber::new(group, log_index, position).0,
                            },
                            IdempotentOutcome::Duplicate { sequence_number } => {
                                RecordResult::Ok { sequence_number }
                            }
                            IdempotentOutcome::TooOld { last_seq } => RecordResult::Failed {
                                error: ErrorCode::InvalidArgument.name().into(),
                                message: format!(
                                    "producer {producer_id} already wrote number {last_seq} to this shard and no longer remembers this older one; a retry this late cannot be told from a new record"
                                ),
                            },
                        })
                        .collect();
                }
                ApplyReply::Closed => closed = true,
                _ => return Err(ApiError::internal("unexpected reply to a put")),
            }
        }
        let mut outcomes = outcomes.into_iter();
        let results = admitted
            .into_iter()
            .map(|ok| match (ok, outcomes.next()) {
                (true, Some(r)) => r,
                (true, None) if closed => closed_result(),
                (true, None) => RecordResult::Failed {
                    error: ErrorCode::InternalFailure.name().into(),
                    message: "record was not written".into(),
                },
                (false, _) => RecordResult::Failed {
                    error: ErrorCode::ProvisionedThroughputExceeded.name().into(),
                    message: "Rate exceeded for shard in stream.".into(),
                },
            })
            .collect();
        encode(&ShardReply::Put { results })
    }
}

/// Retryable: the shard was sealed by a reshard and the record was not written; the caller
/// re-routes it with the new shard map.
fn closed_result() -> RecordResult {
    RecordResult::Failed {
        error: ErrorCode::ShardClosed.name().into(),
        message: "the shard is closed by a reshard; route the record with the new shard map".into(),
    }
}

impl GroupService for ShardService {
    fn propose(
        &self,
        handle: GroupHandle,
        request: Vec<u8>,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, ApiError>> + Send + 'static>> {
        let group = self.group;
        let req = match decode::<ShardRequest>(&request) {
            Ok(r) => r,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        // Fail fast on followers so the caller re-routes before spending the leader's budget.
        let status = handle.status();
        if !status.is_leader {
            return Box::pin(async move { Err(ApiError::not_leader(status.leader)) });
        }
        match req {
            ShardRequest::Put { records } => {
                // A sealed shard refuses at once rather than growing its log with entries that
                // apply as refusals.
                if self.reader.is_sealed() {
                    let results = records.iter().map(|_| closed_result()).collect();
                    return Box::pin(async move { encode(&ShardReply::Put { results }) });
                }
                let admitted = self.admit(&records);
                Box::pin(Self::put(
                    group,
                    handle,
                    self.batcher.clone(),
                    records,
                    admitted,
                    self.metrics.clone(),
                ))
            }
            ShardRequest::PutIdempotent {
                producer_id,
                records,
                seqs,
            } => {
                if records.len() != seqs.len() || seqs.windows(2).any(|w| w[0] >= w[1]) {
                    return Box::pin(async move {
                        Err(ApiError::invalid(
                            "an idempotent put needs one producer sequence number per record, increasing along the request",
                        ))
                    });
                }
                if self.reader.is_sealed() {
                    let results = records.iter().map(|_| closed_result()).collect();
                    return Box::pin(async move { encode(&ShardReply::Put { results }) });
                }
                // Only a prefix may pass: a refused record must not be overtaken by a later one
                // of its producer, or its retry would look like an old duplicate.
                let mut admitted = self.admit(&records);
                if let Some(first_refused) = admitted.iter().position(|ok| !ok) {
                    admitted[first_refused..].fill(false);
                }
                Box::pin(Self::put_idempotent(
                    group,
                    handle,
                    producer_id,
                    records,
                    seqs,
                    admitted,
                ))
            }
            ShardRequest::Seal { op_id } => Box::pin(async move {
                let cmd = encode(&ShardCommand::Seal { op_id })?;
                let reply = handle.propose(cmd).await.map_err(ApiError::from)?;
                match decode::<ApplyReply>(&reply)? {
                    ApplyReply::Sealed { ending_seq } => encode(&ShardReply::Sealed { ending_seq }),
                    _ => Err(ApiError::internal("unexpected reply to a seal")),
                }
            }),
            ShardRequest::Trim { cutoff_ms } => Box::pin(async move {
                let cmd = encode(&ShardCommand::Trim { cutoff_ms })?;
                handle.propose(cmd).await.map_err(ApiError::from)?;
                encode(&ShardReply::Trimmed)
            }),
        }
    }

    fn query(&self, request: &[u8]) -> Result<Vec<u8>, ApiError> {
        match decode::<ShardQuery>(request)? {
            ShardQuery::Position(at) => encode(&QueryReply::Position(self.reader.position(at)?)),
            ShardQuery::Read {
                from,
                limit,
                max_bytes,
            } => {
                let limited = self.limits == ShardLimits::Kinesis;
                if limited && !self.read_budget.lock().admit_call() {
                    self.metrics.read_throttled();
                    return Err(ApiError::new(
                        ErrorCode::ProvisionedThroughputExceeded,
                        "Rate exceeded for shard: over 5 GetRecords calls or 2 MiB per second.",
                    ));
                }
                let now = now_ms();
                let read = self.reader.read(from, limit, max_bytes, now)?;
                self.metrics.read(&read, now);
                if limited {
                    let bytes = read
                        .records
                        .iter()
                        .map(|(_, r)| r.data.len() + r.partition_key.len())
                        .sum();
                    self.read_budget.lock().charge(bytes);
                }
                encode(&QueryReply::Read(read))
            }
        }
    }
}

/// Shared handle type for the node's registry of local shard services.
pub type SharedShardService = Arc<ShardService>;
