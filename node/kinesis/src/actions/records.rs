//! Data-plane actions: writing and reading records.

use streamd_proto::v1;

use super::streams::stream_name;
use crate::codec::{self, Doc, Input};
use crate::error::KinesisError;
use crate::router::KinesisApi;

fn entry(input: &Input) -> Result<v1::PutRecordsRequestEntry, KinesisError> {
    let data = input.opt_blob("Data")?.ok_or_else(|| {
        KinesisError::validation("1 validation error detected: Value null at 'data' failed to satisfy constraint: Member must not be null")
    })?;
    let partition_key = input.req_str("PartitionKey")?;
    let chars = partition_key.chars().count();
    if chars == 0 {
        return Err(codec::validation(
            &input.member("PartitionKey"),
            &partition_key,
            "Member must have length greater than or equal to 1",
        ));
    }
    if chars > 256 {
        return Err(codec::validation(
            &input.member("PartitionKey"),
            &partition_key,
            "Member must have length less than or equal to 256",
        ));
    }
    Ok(v1::PutRecordsRequestEntry {
        data: data.into(),
        partition_key,
        explicit_hash_key: input.opt_str("ExplicitHashKey")?,
        producer_seq: None,
    })
}

pub(super) async fn put_record(api: &KinesisApi, input: &Input) -> Result<Doc, KinesisError> {
    let stream = stream_name(input)?;
    let e = entry(input)?;
    let resp = api
        .gw
        .put_record(v1::PutRecordRequest {
            stream_name: stream,
            data: e.data,
            partition_key: e.partition_key,
            explicit_hash_key: e.explicit_hash_key,
            sequence_number_for_ordering: input.opt_str("SequenceNumberForOrdering")?,
        })
        .await?;
    Ok(Doc::map([
        ("ShardId", Doc::Str(resp.shard_id)),
        ("SequenceNumber", Doc::Str(resp.sequence_number)),
        ("EncryptionType", Doc::Str("NONE".into())),
    ]))
}

pub(super) async fn put_records(api: &KinesisApi, input: &Input) -> Result<Doc, KinesisError> {
    let stream = stream_name(input)?;
    let records = input.opt_struct_list("Records")?.ok_or_else(|| {
        KinesisError::validation("1 validation error detected: Value null at 'records' failed to satisfy constraint: Member must not be null")
    })?;
    if records.is_empty() || records.len() > 500 {
        return Err(KinesisError::validation(format!(
            "1 validation error detected: Value '{}' at 'records' failed to satisfy constraint: Member must have length less than or equal to 500 and greater than or equal to 1",
            records.len()
        )));
    }
    let entries = records.iter().map(entry).collect::<Result<Vec<_>, _>>()?;
    let resp = api
        .gw
        .put_records(v1::PutRecordsRequest {
            stream_name: stream,
            records: entries,
            producer_id: None,
        })
        .await?;
    let results = resp
        .records
        .into_iter()
        .map(|r| match (r.sequence_number, r.shard_id) {
            (Some(seq), Some(shard)) => Doc::map([
                ("SequenceNumber", Doc::Str(seq)),
                ("ShardId", Doc::Str(shard)),
            ]),
            _ => Doc::map([
                (
                    "ErrorCode",
                    Doc::Str(r.error_code.unwrap_or_else(|| "InternalFailure".into())),
                ),
                (
                    "ErrorMessage",
                    Doc::Str(r.error_message.unwrap_or_default()),
                ),
            ]),
        })
        .collect();
    Ok(Doc::map([
        (
            "FailedRecordCount",
            Doc::Int(i64::from(resp.failed_record_count)),
        ),
        ("Records", Doc::List(results)),
        ("EncryptionType", Doc::Str("NONE".into())),
    ]))
}

/// A ShardIteratorType (or StartingPosition.Type) by its Kinesis name; `member` names it in the
/// error.
pub(super) fn iterator_type(
    value: &str,
    member: &str,
) -> Result<v1::ShardIteratorType, KinesisError> {
    Ok(match value {
        "AT_SEQUENCE_NUMBER" => v1::ShardIteratorType::AtSequenceNumber,
        "AFTER_SEQUENCE_NUMBER" => v1::ShardIteratorType::AfterSequenceNumber,
        "TRIM_HORIZON" => v1::ShardIteratorType::TrimHorizon,
        "LATEST" => v1::ShardIteratorType::Latest,
        "AT_TIMESTAMP" => v1::ShardIteratorType::AtTimestamp,
        other => {
            return Err(codec::validation(
                member,
                other,
                "Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, AT_SEQUENCE_NUMBER, AT_TIMESTAMP, TRIM_HORIZON, LATEST]",
            ));
        }
    })
}

pub(super) async fn get_shard_iterator(
    api: &KinesisApi,
    input: &Input,
) -> Result<Doc, KinesisError> {
    let stream = stream_name(input)?;
    let shard_id = input.req_str("ShardId")?;
    let kind = iterator_type(&input.req_str("ShardIteratorType")?, "shardIteratorType")?;
    let resp = api
        .gw
        .get_shard_iterator(v1::GetShardIteratorRequest {
            stream_name: stream,
            shard_id,
            shard_iterator_type: kind as i32,
            starting_sequence_number: input.opt_str("StartingSequenceNumber")?,
            timestamp_ms: input.opt_timestamp("Timestamp")?,
        })
        .await?;
    Ok(Doc::map([("ShardIterator", Doc::Str(resp.shard_iterator))]))
}

pub(super) async fn get_records(api: &KinesisApi, input: &Input) -> Result<Doc, KinesisError> {
    let iterator = input.req_str("ShardIterator")?;
    let limit = input.opt_u32("Limit")?;
    if let Some(l) = limit {
        if l < 1 {
            return Err(codec::validation(
                "limit",
                &l.to_string(),
                "Member must have value greater than or equal to 1",
            ));
        }
        if l > 10_000 {
            return Err(codec::validation(
                "limit",
                &l.to_string(),
                "Member must have value less than or equal to 10000",
            ));
        }
    }
    let resp = api
        .gw
        .get_records(v1::GetRecordsRequest {
            shard_iterator: iterator,
            limit,
        })
        .await?;
    let records = resp
        .records
        .into_iter()
        .map(|r| {
            Doc::map([
                ("SequenceNumber", Doc::Str(r.sequence_number)),
                (
                    "ApproximateArrivalTimestamp",
                    Doc::Timestamp(r.approximate_arrival_timestamp_ms),
                ),
                ("Data", Doc::Blob(r.data.to_vec())),
                ("PartitionKey", Doc::Str(r.partition_key)),
            ])
        })
        .collect();
    let mut m = vec![
        ("Records".to_string(), Doc::List(records)),
        (
            "MillisBehindLatest".into(),
            Doc::Int(resp.millis_behind_latest),
        ),
    ];
    if let Some(next) = resp.next_shard_iterator {
        m.push(("NextShardIterator".into(), Doc::Str(next)));
    }
    if !resp.child_shards.is_empty() {
        m.push(("ChildShards".into(), child_shards_doc(&resp.child_shards)));
    }
    Ok(Doc::Map(m))
}

/// GetRecords' and SubscribeToShard's `ChildShards`.
pub(super) fn child_shards_doc(children: &[v1::ChildShard]) -> Doc {
    let range = |c: &v1::ChildShard, start: bool| {
        Doc::Str(
            c.hash_key_range
                .as_ref()
                .map(|r| {
                    if start {
                        r.starting_hash_key.clone()
                    } else {
                        r.ending_hash_key.clone()
                    }
                })
                .unwrap_or_default(),
        )
    };
    Doc::List(
        children
            .iter()
            .map(|c| {
                Doc::map([
                    ("ShardId", Doc::Str(c.shard_id.clone())),
                    (
                        "ParentShards",
                        Doc::List(
                            c.parent_shards
                                .iter()
                                .map(|p| Doc::Str(p.clone()))
                                .collect(),
                        ),
                    ),
                    (
                        "HashKeyRange",
                        Doc::map([
                            ("StartingHashKey", range(c, true)),
                            ("EndingHashKey", range(c, false)),
                        ]),
                    ),
                ])
            })
            .collect(),
    )
}
