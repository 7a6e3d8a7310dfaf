//! PutRecord and PutRecords.
//!
//! Hot path: validate every record before anything is written (a call with one bad record
//! writes nothing), group records by shard, send one request per shard concurrently, and
//! report each record's own outcome in request order.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use streamd_meta::StreamMeta;
use streamd_proto::ids::{HashKey, SequenceNumber};
use streamd_proto::limits::{
    MAX_PARTITION_KEY_CHARS, MAX_PUT_RECORDS, MAX_PUT_RECORDS_BYTES, MAX_RECORD_BYTES,
};
use streamd_proto::v1;
use streamd_proto::{ApiError, ErrorCode};
use streamd_shard::command::{RecordIn, RecordResult, ShardReply, ShardRequest, ShardRequestRef};
use tokio::time::Instant;

use crate::Gateway;

fn validate_key(key: &str) -> Result<(), ApiError> {
    let n = key.chars().count();
    if n == 0 || n > MAX_PARTITION_KEY_CHARS {
        return Err(ApiError::invalid(format!(
            "Partition key must be 1 to {MAX_PARTITION_KEY_CHARS} Unicode characters, got {n}."
        )));
    }
    Ok(())
}

fn hash_key(key: &str, explicit: Option<&str>) -> Result<HashKey, ApiError> {
    match explicit {
        Some(e) => e
            .parse::<HashKey>()
            .map_err(|_| {
                ApiError::invalid(format!(
                    "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was {e}"
                ))
            }),
        None => Ok(HashKey::of_partition_key(key)),
    }
}

/// Validates every record and computes its hash key; nothing is routed yet.
fn prepare(
    stream: &StreamMeta,
    entries: Vec<v1::PutRecordsRequestEntry>,
    idempotent: bool,
) -> Result<Vec<(HashKey, RecordIn, Option<u64>)>, ApiError> {
    let mut total = 0usize;
    let max_record = (stream.max_record_size_kib as usize * 1024).max(MAX_RECORD_BYTES);
    let mut out = Vec::with_capacity(entries.len());
    for (i, e) in entries.into_iter().enumerate() {
        validate_key(&e.partition_key)?;
        match (idempotent, e.producer_seq) {
            (true, None) => {
                return Err(ApiError::invalid(format!(
                    "Record {i} has no ProducerSeq; every record of a request with a ProducerId needs one."
                )));
            }
            (false, Some(_)) => {
                return Err(ApiError::invalid(format!(
                    "Record {i} has a ProducerSeq but the request has no ProducerId."
                )));
            }
            _ => {}
        }
        let size = e.data.len() + e.partition_key.len();
        if size > max_record {
            return Err(ApiError::invalid(format!(
                "Record {i} has {size} bytes of data and partition key, over the limit of {max_record}."
            )));
        }
        total += size;
        let hk = hash_key(&e.partition_key, e.explicit_hash_key.as_deref())?;
        out.push((
            hk,
            RecordIn {
                partition_key: e.partition_key,
                data: e.data.to_vec(),
            },
            e.producer_seq,
        ));
    }
    if total > MAX_PUT_RECORDS_BYTES {
        return Err(ApiError::invalid(format!(
            "The request has {total} bytes of data and partition keys, over the limit of {MAX_PUT_RECORDS_BYTES}."
        )));
    }
    Ok(out)
}

/// How long a write refused by a sealed shard waits for this node to learn the new shard map.
const NEW_MAP_DEADLINE: Duration = Duration::from_secs(12);

/// Records not yet written: (position in the request, hash key, record, producer's number).
type Unwritten = Vec<(usize, HashKey, RecordIn, Option<u64>)>;

impl Gateway {
    #[tracing::instrument(name = "gateway.put_records", skip_all, fields(stream = %req.stream_name, records = req.records.len()))]
    pub async fn put_records(
        &self,
        req: v1::PutRecordsRequest,
    ) -> Result<v1::PutRecordsResponse, ApiError> {
        let started = std::time::Instant::now();
        let answer = self.put_records_timed(req).await;
        streamd_raft::hops::observe(streamd_raft::hops::Hop::Gateway, started);
        answer
    }

    async fn put_records_timed(
        &self,
        req: v1::PutRecordsRequest,
    ) -> Result<v1::PutRecordsResponse, ApiError> {
        let n = req.records.len();
        if n == 0 || n > MAX_PUT_RECORDS {
            return Err(ApiError::invalid(format!(
                "Records must hold 1 to {MAX_PUT_RECORDS} entries, got {n}."
            )));
        }
        let mut stream = self.active_stream(&req.stream_name)?;
        let producer = req.producer_id;
        let mut unwritten: Unwritten = prepare(&stream, req.records, producer.is_some())?
            .into_iter()
            .enumerate()
            .map(|(i, (hk, r, seq))| (i, hk, r, seq))
            .collect();
        let mut results = vec![v1::PutRecordsResultEntry::default(); n];
        let mut failed = 0u32;
        let deadline = Instant::now() + NEW_MAP_DEADLINE;
        // Records a sealed parent refused were certainly not written: once the map that closed
        // the parent arrives, they go to its children.
        while !unwritten.is_empty() {
            let closed = self
                .put_routed(&stream, producer, unwritten, &mut results, &mut failed)
                .await?;
            if closed.is_empty() {
                break;
            }
            match self.newer_map(&stream, deadline).await {
                Some(s) => stream = s,
                None => {
                    for (pos, _, _, _) in &closed {
                        let entry = &mut results[*pos];
                        entry.error_code =
                            Some(ErrorCode::InternalFailure.kinesis_type().to_string());
                        entry.error_message = Some(
                            "the shard was closed by a reshard and the new shard map did not arrive in time; retry"
                                .into(),
                        );
                        failed += 1;
                    }
                    break;
                }
            }
            // Keep request order on the retry, so records of one key stay in the caller's order.
            unwritten = closed;
            unwritten.sort_by_key(|(pos, _, _, _)| *pos);
        }
        Ok(v1::PutRecordsResponse {
            failed_record_count: failed,
            records: results,
            encryption_type: "NONE".into(),
        })
    }

    /// The stream's map once this node has applied a newer one than `seen`, polling the local
    /// metadata until `deadline`.
    async fn newer_map(&self, seen: &StreamMeta, deadline: Instant) -> Option<Arc<StreamMeta>> {
        let mut backoff = Duration::from_millis(5);
        loop {
            match self.active_stream(&seen.name) {
                Ok(s) if s.map_epoch > seen.map_epoch => return Some(s),
                Ok(_) => {}
                Err(_) => return None,
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(100));
        }
    }

    /// Sends each record to the open shard owning its hash key in `stream`, one call per shard,
    /// and fills `results`; returns the records a sealed shard refused.
    async fn put_routed(
        &self,
        stream: &StreamMeta,
        producer: Option<u64>,
        unwritten: Unwritten,
        results: &mut [v1::PutRecordsResultEntry],
        failed: &mut u32,
    ) -> Result<Unwritten, ApiError> {
        let mut by_shard: BTreeMap<usize, Unwritten> = BTreeMap::new();
        for rec in unwritten {
            let shard = stream
                .shards
                .iter()
                .position(|s| s.is_open() && s.range.contains(rec.1))
                .ok_or_else(|| ApiError::internal("no open shard covers the hash key"))?;
            by_shard.entry(shard).or_default().push(rec);
        }
        let calls = by_shard.into_iter().map(|(shard, recs)| {
            let sh = &stream.shards[shard];
            async move {
                let mut positions = Vec::with_capacity(recs.len());
                let mut records = Vec::with_capacity(recs.len());
                for (pos, hk, r, seq) in recs {
                    positions.push((pos, hk, seq));
                    records.push(r);
                }
                let encoded = match producer {
                    None => bincode::serialize(&ShardRequestRef::Put { records: &records }),
                    // Idempotent puts are the rarer kind: the records are copied into the request.
                    Some(producer_id) => bincode::serialize(&ShardRequest::PutIdempotent {
                        producer_id,
                        records: records.clone(),
                        seqs: positions.iter().filter_map(|(_, _, s)| *s).collect(),
                    }),
                };
                let result = match encoded {
                    Ok(req) => self.propose_to_leader(sh.group_id, &sh.replicas, req).await,
                    Err(e) => Err(ApiError::internal(e.to_string())),
                };
                (sh.shard_id, positions, records, result)
            }
        });
        let outcomes = futures::future::join_all(calls).await;

        let mut closed = Vec::new();
        for (shard_id, positions, records, result) in outcomes {
            let per_record: Vec<RecordResult> = match result.and_then(|b| {
                bincode::deserialize::<ShardReply>(&b)
                    .map_err(|e| ApiError::internal(e.to_string()))
            }) {
                Ok(ShardReply::Put { results }) => results,
                Ok(_) => vec![],
                Err(e) => {
                    tracing::warn!(shard_id = %shard_id, error = %e, "put to shard failed");
                    positions
                        .iter()
                        .map(|_| RecordResult::Failed {
                            error: e.code.name().into(),
                            message: e.message.clone(),
                        })
                        .collect()
                }
            };
            for (k, ((pos, hk, seq), record)) in positions.into_iter().zip(records).enumerate() {
                let entry = &mut results[pos];
                match per_record.get(k) {
                    Some(RecordResult::Ok { sequence_number }) => {
                        entry.sequence_number = Some(SequenceNumber(*sequence_number).to_string());
                        entry.shard_id = Some(shard_id.to_string());
                    }
                    Some(RecordResult::Failed { error, .. })
                        if ErrorCode::from_name(error) == Some(ErrorCode::ShardClosed) =>
                    {
                        closed.push((pos, hk, record, seq));
                    }
                    Some(RecordResult::Failed { error, message }) => {
                        let code =
                            ErrorCode::from_name(error).unwrap_or(ErrorCode::InternalFailure);
                        entry.error_code = Some(code.kinesis_type().to_string());
                        entry.error_message = Some(
                            if code == ErrorCode::ProvisionedThroughputExceeded {
                                format!(
                                    "Rate exceeded for shard {shard_id} in stream {} under account 000000000000.",
                                    stream.name
                                )
                            } else {
                                message.clone()
                            },
                        );
                        *failed += 1;
                    }
                    None => {
                        entry.error_code =
                            Some(ErrorCode::InternalFailure.kinesis_type().to_string());
                        entry.error_message = Some("record was not written".into());
                        *failed += 1;
                    }
                }
            }
        }
        Ok(closed)
    }
    #[tracing::instrument(name = "gateway.put_record", skip_all, fields(stream = %req.stream_name))]
    pub async fn put_record(
        &self,
        req: v1::PutRecordRequest,
    ) -> Result<v1::PutRecordResponse, ApiError> {
        if let Some(s) = &req.sequence_number_for_ordering {
            s.parse::<SequenceNumber>()
                .map_err(|e| ApiError::invalid(e.to_string()))?;
        }
        let resp = self
            .put_records(v1::PutRecordsRequest {
                stream_name: req.stream_name,
                records: vec![v1::PutRecordsRequestEntry {
                    data: req.data,
                    partition_key: req.partition_key,
                    explicit_hash_key: req.explicit_hash_key,
                    producer_seq: None,
                }],
                producer_id: None,
            })
            .await?;
        let r = resp.records.into_iter().next().unwrap_or_default();
        match (r.sequence_number, r.shard_id) {
            (Some(sequence_number), Some(shard_id)) => Ok(v1::PutRecordResponse {
                shard_id,
                sequence_number,
                encryption_type: "NONE".into(),
            }),
            _ => {
                let name = r.error_code.unwrap_or_default();
                let code = crate::operations::put::code_from_kinesis(&name);
                Err(ApiError::new(code, r.error_message.unwrap_or_default()))
            }
        }
    }
}

pub(crate) fn code_from_kinesis(name: &str) -> ErrorCode {
    match name {
        "ProvisionedThroughputExceededException" => ErrorCode::ProvisionedThroughputExceeded,
        _ => ErrorCode::InternalFailure,
    }
}
