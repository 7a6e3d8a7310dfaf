//! GetShardIterator and GetRecords, served by any replica up to what it has applied.

use streamd_proto::ids::{SequenceNumber, ShardId};
use streamd_proto::limits::{MAX_GET_RECORDS, MAX_GET_RECORDS_BYTES};
use streamd_proto::v1;
use streamd_proto::{ApiError, ErrorCode};
use streamd_shard::command::{QueryReply, ShardQuery, StartAt};
use streamd_shard::now_ms;

use super::streams::shard_not_found;
use crate::Gateway;
use crate::iterator_token::{IteratorError, IteratorToken};

fn decode_reply(b: &[u8]) -> Result<QueryReply, ApiError> {
    bincode::deserialize(b).map_err(|e| ApiError::internal(e.to_string()))
}

impl Gateway {
    fn secret(&self) -> Vec<u8> {
        self.meta.read().cluster_secret.clone()
    }

    #[tracing::instrument(name = "gateway.get_shard_iterator", skip_all, fields(stream = %req.stream_name, shard = %req.shard_id))]
    pub async fn get_shard_iterator(
        &self,
        req: v1::GetShardIteratorRequest,
    ) -> Result<v1::GetShardIteratorResponse, ApiError> {
        let stream = self.active_stream(&req.stream_name)?;
        let shard_id: ShardId = req
            .shard_id
            .parse()
            .map_err(|e: streamd_proto::ids::IdError| ApiError::invalid(e.to_string()))?;
        let sh = stream
            .shard(shard_id)
            .filter(|s| s.is_listed())
            .ok_or_else(|| shard_not_found(&stream.name, &req.shard_id))?
            .clone();
        let seq = || -> Result<u128, ApiError> {
            let s = req.starting_sequence_number.as_deref().ok_or_else(|| {
                ApiError::invalid("StartingSequenceNumber is required for AT_SEQUENCE_NUMBER and AFTER_SEQUENCE_NUMBER.")
            })?;
            Ok(s.parse::<SequenceNumber>()
                .map_err(|e| ApiError::invalid(e.to_string()))?
                .0)
        };
        let at = match v1::ShardIteratorType::try_from(req.shard_iterator_type) {
            Ok(v1::ShardIteratorType::TrimHorizon) => StartAt::TrimHorizon,
            Ok(v1::ShardIteratorType::Latest) => StartAt::Latest,
            Ok(v1::ShardIteratorType::AtSequenceNumber) => StartAt::AtSequence(seq()?),
            Ok(v1::ShardIteratorType::AfterSequenceNumber) => StartAt::AfterSequence(seq()?),
            Ok(v1::ShardIteratorType::AtTimestamp) => StartAt::AtTimestamp(
                req.timestamp_ms
                    .ok_or_else(|| ApiError::invalid("Timestamp is required for AT_TIMESTAMP."))?,
            ),
            _ => {
                return Err(ApiError::invalid(
                    "ShardIteratorType is missing or unknown.",
                ));
            }
        };
        let q = bincode::serialize(&ShardQuery::Position(at))
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let position = match decode_reply(&self.query_replica(sh.group_id, &sh.replicas, q).await?)?
        {
            QueryReply::Position(p) => p,
            QueryReply::Read(_) => {
                return Err(ApiError::internal("unexpected reply to a position query"));
            }
        };
        let token = IteratorToken {
            stream: stream.name.clone(),
            shard_id: shard_id.0,
            group_id: sh.group_id,
            position,
            issued_ms: now_ms(),
        };
        Ok(v1::GetShardIteratorResponse {
            shard_iterator: token.encode(&self.secret()),
        })
    }

    #[tracing::instrument(name = "gateway.get_records", skip_all)]
    pub async fn get_records(
        &self,
        req: v1::GetRecordsRequest,
    ) -> Result<v1::GetRecordsResponse, ApiError> {
        let limit = req.limit.unwrap_or(MAX_GET_RECORDS);
        if !(1..=MAX_GET_RECORDS).contains(&limit) {
            return Err(ApiError::invalid(format!(
                "Limit must be between 1 and {MAX_GET_RECORDS}, got {limit}."
            )));
        }
        let now = now_ms();
        let token = IteratorToken::decode(&req.shard_iterator, &self.secret(), now).map_err(
            |e| match e {
                IteratorError::Malformed => ApiError::invalid(e.to_string()),
                IteratorError::Expired { .. } => {
                    ApiError::new(ErrorCode::ExpiredIterator, e.to_string())
                }
            },
        )?;
        let stream = self.stream(&token.stream)?;
        let sh = stream
            .shards
            .iter()
            .find(|s| s.group_id == token.group_id)
            .ok_or_else(|| shard_not_found(&stream.name, &ShardId(token.shard_id).to_string()))?
            .clone();
        let q = bincode::serialize(&ShardQuery::Read {
            from: token.position,
            limit,
            max_bytes: MAX_GET_RECORDS_BYTES,
        })
        .map_err(|e| ApiError::internal(e.to_string()))?;
        let reply = self
            .query_replica(sh.group_id, &sh.replicas, q)
            .await
            .map_err(|e| {
                if e.code == ErrorCode::ProvisionedThroughputExceeded {
                    ApiError::new(
                        e.code,
                        format!(
                            "Rate exceeded for shard {} in stream {} under account 000000000000.",
                            sh.shard_id, stream.name
                        ),
                    )
                } else {
                    e
                }
            })?;
        let read = match decode_reply(&reply)? {
            QueryReply::Read(r) => r,
            QueryReply::Position(_) => {
                return Err(ApiError::internal("unexpected reply to a read"));
            }
        };
        let next = IteratorToken {
            position: read.next,
            issued_ms: now,
            ..token
        };
        // The end of a closed shard, as this node's map knows it: the seal alone (map not yet
        // switched here) keeps the iterator going until the map names the children.
        let closed_here = sh.ending_seq.is_some();
        let at_end = read.at_end && closed_here;
        let child_shards = if at_end {
            stream
                .shards
                .iter()
                .filter(|c| c.is_listed())
                .filter(|c| c.parent == Some(sh.shard_id) || c.adjacent_parent == Some(sh.shard_id))
                .map(|c| v1::ChildShard {
                    shard_id: c.shard_id.to_string(),
                    parent_shards: [c.parent, c.adjacent_parent]
                        .into_iter()
                        .flatten()
                        .map(|p| p.to_string())
                        .collect(),
                    hash_key_range: Some(v1::HashKeyRange {
                        starting_hash_key: c.range.start.to_string(),
                        ending_hash_key: c.range.end.to_string(),
                    }),
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(v1::GetRecordsResponse {
            records: read
                .records
                .into_iter()
                .map(|(seq, r)| v1::Record {
                    sequence_number: SequenceNumber(seq).to_string(),
                    approximate_arrival_timestamp_ms: r.arrival_ms,
                    data: r.data.into(),
                    partition_key: r.partition_key,
                })
                .collect(),
            next_shard_iterator: if at_end {
                None
            } else {
                Some(next.encode(&self.secret()))
            },
            millis_behind_latest: read.millis_behind_latest,
            child_shards,
        })
    }
}
