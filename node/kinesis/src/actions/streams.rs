//! Stream and shard control-plane actions.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use streamd_proto::v1;

use crate::codec::{Doc, Input};
use crate::error::KinesisError;
use crate::router::KinesisApi;

/// The stream a request names, by `StreamName` or `StreamARN`, checked as AWS's model does.
pub(super) fn stream_name(input: &Input) -> Result<String, KinesisError> {
    let name = match (input.opt_str("StreamName")?, input.opt_str("StreamARN")?) {
        (Some(n), _) => n,
        (None, Some(arn)) => match arn.rsplit_once(":stream/") {
            Some((_, n)) if arn.starts_with("arn:") => n.to_string(),
            _ => {
                return Err(KinesisError::validation(format!(
                    "1 validation error detected: Value '{arn}' at 'streamARN' failed to satisfy constraint: Member must satisfy regular expression pattern: arn:aws.*:kinesis:.*:\\d{{12}}:stream/\\S+"
                )));
            }
        },
        (None, None) => {
            return Err(KinesisError::new(
                "InvalidArgumentException",
                400,
                "Either StreamName or StreamARN should be provided.",
            ));
        }
    };
    check_name(&name)?;
    Ok(name)
}

fn check_name(name: &str) -> Result<(), KinesisError> {
    if name.is_empty() || name.chars().count() > 128 {
        return Err(KinesisError::validation(format!(
            "1 validation error detected: Value '{name}' at 'streamName' failed to satisfy constraint: Member must have length less than or equal to 128"
        )));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(KinesisError::validation(format!(
            "1 validation error detected: Value '{name}' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"
        )));
    }
    Ok(())
}

fn status(s: i32) -> &'static str {
    match v1::StreamStatus::try_from(s) {
        Ok(v1::StreamStatus::Creating) => "CREATING",
        Ok(v1::StreamStatus::Deleting) => "DELETING",
        Ok(v1::StreamStatus::Updating) => "UPDATING",
        _ => "ACTIVE",
    }
}

fn mode(m: i32) -> Doc {
    let mode = if m == v1::StreamMode::OnDemand as i32 {
        "ON_DEMAND"
    } else {
        "PROVISIONED"
    };
    Doc::map([("StreamMode", Doc::Str(mode.into()))])
}

pub(super) fn shard_doc(s: &v1::Shard) -> Doc {
    let mut m = vec![("ShardId".to_string(), Doc::Str(s.shard_id.clone()))];
    if let Some(p) = &s.parent_shard_id {
        m.push(("ParentShardId".into(), Doc::Str(p.clone())));
    }
    if let Some(p) = &s.adjacent_parent_shard_id {
        m.push(("AdjacentParentShardId".into(), Doc::Str(p.clone())));
    }
    if let Some(r) = &s.hash_key_range {
        m.push((
            "HashKeyRange".into(),
            Doc::map([
                ("StartingHashKey", Doc::Str(r.starting_hash_key.clone())),
                ("EndingHashKey", Doc::Str(r.ending_hash_key.clone())),
            ]),
        ));
    }
    if let Some(r) = &s.sequence_number_range {
        let mut sr = vec![(
            "StartingSequenceNumber".to_string(),
            Doc::Str(r.starting_sequence_number.clone()),
        )];
        if let Some(e) = &r.ending_sequence_number {
            sr.push(("EndingSequenceNumber".into(), Doc::Str(e.clone())));
        }
        m.push(("SequenceNumberRange".into(), Doc::Map(sr)));
    }
    Doc::Map(m)
}

/// The stream's enabled shard-level metrics, from the metadata.
fn enhanced_monitoring(api: &KinesisApi, stream: &str) -> Doc {
    let metrics = api
        .gw
        .metadata()
        .streams
        .get(stream)
        .map(|s| {
            s.shard_level_metrics
                .iter()
                .map(|m| Doc::Str(m.clone()))
                .collect()
        })
        .unwrap_or_default();
    Doc::List(vec![Doc::map([("ShardLevelMetrics", Doc::List(metrics))])])
}

/// `{TargetMiBps, CurrentMiBps}` of an on-demand stream with warm throughput set.
fn warm_throughput(api: &KinesisApi, stream: &str) -> Option<Doc> {
    let m = api
        .gw
        .metadata()
        .streams
        .get(stream)
        .and_then(|s| s.warm_throughput_mibps)?;
    Some(Doc::map([
        ("TargetMiBps", Doc::Int(i64::from(m))),
        ("CurrentMiBps", Doc::Int(i64::from(m))),
    ]))
}

fn max_record_size_kib(api: &KinesisApi, stream: &str) -> Doc {
    let kib = api
        .gw
        .metadata()
        .streams
        .get(stream)
        .map(|s| s.max_record_size_kib)
        .unwrap_or(1024);
    Doc::Int(i64::from(kib))
}

pub(super) async fn create_stream(api: &KinesisApi, input: &Input) -> Result<Doc, KinesisError> {
    let name = input.req_str("StreamName")?;
    check_name(&name)?;
    let on_demand = match input.opt_map("StreamModeDetails")? {
        Some(m) => match m.opt_str("StreamMode")?.as_deref() {
            Some("ON_DEMAND") => true,
            Some("PROVISIONED") | None => false,
            Some(other) => {
                return Err(KinesisError::validation(format!(
                    "1 validation error detected: Value '{other}' at 'streamModeDetails.streamMode' failed to satisfy constraint: Member must satisfy enum value set: [PROVISIONED, ON_DEMAND]"
                )));
            }
        },
        None => false,
    };
    let shard_count = input.opt_u32("ShardCount")?;
    if shard_count == Some(0) {
        return Err(crate::codec::validation(
            "shardCount",
            "0",
            "Member must have value greater than or equal to 1",
        ));
    }
    if shard_count.is_none() && !on_demand {
        return Err(KinesisError::new(
            "InvalidArgumentException",
            400,
            "ShardCount is required for streams in PROVISIONED mode.",
        ));
    }
    let tags = input.opt_string_map("Tags")?.unwrap_or_default();
    if tags.len() > streamd_meta::MAX_TAGS {
        return Err(KinesisError::invalid_argument(format!(
            "A stream may have at most {} tags, got {}.",
            streamd_meta::MAX_TAGS,
            tags.len()
        )));
    }
    let mode = if on_demand {
        v1::StreamMode::OnDemand
    } else {
        v1::StreamMode::Provisioned
    };
    api.gw
        .create_stream(v1::CreateStreamRequest {
            stream_name: name.clone(),
            shard_count,
            stream_mode: mode as i32,
        })
        .await?;
    if !tags.is_empty() {
        api.gw
            .propose_meta(&streamd_meta::MetaCommand::TagStream { name, tags })
            .await?;
    }
    Ok(Doc::Map(Vec::new()))
}

pub(super) async fn delete_stream(api: &KinesisApi, input: &Input) -> Result<Doc, KinesisError> {
    let name = stream_name(input)?;
    let enforce = input.opt_bool("EnforceConsumerDeletion")?.unwrap_or(false);
    api.gw
        .delete_stream(v1::DeleteStreamRequest {
            stream_name: name,
            enforce_consumer_deletion: enforce,
        })
        .await?;
    Ok(Doc::Map(Vec::new()))
}

pub(super) fn describe_stream(api: &KinesisApi, input: &Input) -> Result<Doc, KinesisError> {
    let name = stream_name(input)?;
    let limit = input.opt_u32("Limit")?;
    if let Some(l) = limit
        && !(1..=10_000).contains(&l)
    {
        return Err(KinesisError::validation(format!(
            "1 validation error detected: Value '{l}' at 'limit' failed to satisfy constraint: Member must have value between 1 and 10000"
        )));
    }
    let resp = api.gw.describe_stream(v1::DescribeStreamRequest {
        stream_name: name,
        limit,
        exclusive_start_shard_id: input.opt_str("ExclusiveStartShardId")?,
    })?;
    let d = resp.stream_description.unwrap_or_default();
    let description = common_members(api, &d)
        .with(
            "Shards",
            Doc::List(d.shards.iter().map(shard_doc).collect()),
        )
        .with("HasMoreShards", Doc::Bool(d.has_more_shards));
    Ok(Doc::map([("StreamDescription", description)]))
}

/// The members StreamDescription and StreamDescriptionSummary share.
fn common_members(api: &KinesisApi, d: &v1::StreamDescription) -> Doc {
    Doc::map([
        ("StreamName", Doc::Str(d.stream_name.clone())),
        ("StreamARN", Doc::Str(d.stream_arn.clone())),
        ("StreamStatus", Doc::Str(status(d.stream_status).into())),
        ("StreamModeDetails", mode(d.stream_mode)),
        (
            "RetentionPeriodHours",
            Doc::Int(i64::from(d.retention_period_hours)),
        ),
        (
            "StreamCreationTimestamp",
            Doc::Timestamp(d.stream_creation_timestamp_ms),
        ),
        (
            "EnhancedMonitoring",
            enhanced_monitoring(api, &d.stream_name),
        ),
        ("EncryptionType", Doc::Str("NONE".into())),
    ])
}

pub(super) fn describe_stream_summary(
    api: &KinesisApi,
    input: &Input,
) -> Result<Doc, KinesisError> {
    let name = stream_name(input)?;
    let resp = api
        .gw
        .describe_stream_summary(v1::DescribeStreamSummaryRequest { stream_name: name })?;
    let d = resp.stream_description_summary.unwrap_or_default();
    let summary = common_members(api, &d)
        .with("OpenShardCount", Doc::Int(i64::from(d.open_shard_count)))
        .with("ConsumerCount", Doc::Int(i64::from(d.consumer_count)))
        .with(
            "MaxRecordSizeInKiB",
            max_record_size_kib(api, &d.stream_name),
        )
        .with_opt("WarmThroughput", warm_throughput(api, &d.stream_name));
    Ok(Doc::map([("StreamDescriptionSummary", summary)]))
}

pub(super) fn list_streams(api: &KinesisApi, input: &Input) -> Result<Doc, KinesisError> {
    let limit = input.opt_u32("Limit")?;
    if let Some(l) = limit
        && !(1..=10_000).contains(&l)
    {
        return Err(KinesisError::validation(format!(
            "1 validation error detected: Value '{l}' at 'limit' failed to satisfy constraint: Member must have value between 1 and 10000"
        )));
    }
    // NextToken carries the last stream name of the previous page.
    let start = match input.opt_str("NextToken")? {
        Some(tok) => Some(
            URL_SAFE_NO_PAD
                .decode(tok.as_bytes())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    KinesisError::new("InvalidArgumentException", 400, "Invalid NextToken.")
                })?,
        ),
        None => input.opt_str("ExclusiveStartStreamName")?,
    };
    let resp = api.gw.list_streams(v1::ListStreamsRequest {
        limit,
        exclusive_start_stream_name: start,
    })?;
    let mut m = vec![
        (
            "StreamNames".to_string(),
            Doc::List(
                resp.stream_names
                    .iter()
                    .map(|n| Doc::Str(n.clone()))
                    .collect(),
            ),
        ),
        ("HasMoreStreams".into(), Doc::Bool(resp.has_more_streams)),
        (
            "StreamSummaries".into(),
            Doc::List(
                resp.stream_summaries
                    .iter()
                    .map(|s| {
                        Doc::map([
                            ("StreamName", Doc::Str(s.stream_name.clone())),
                            ("StreamARN", Doc::Str(s.stream_arn.clone())),
                            ("StreamStatus", Doc::Str(status(s.stream_status).into())),
                            ("StreamModeDetails", mode(s.stream_mode)),
                            (
                                "StreamCreationTimestamp",
                                Doc::Timestamp(s.stream_creation_timestamp_ms),
                            ),
                        ])
                    })
                    .collect(),
            ),
        ),
    ];
    if resp.has_more_streams
        && let Some(last) = resp.stream_names.last()
    {
        m.push(("NextToken".into(), Doc::Str(URL_SAFE_NO_PAD.encode(last))));
    }
    Ok(Doc::Map(m))
}

pub(super) fn list_shards(api: &KinesisApi, input: &Input) -> Result<Doc, KinesisError> {
    let next_token = input.opt_str("NextToken")?;
    let stream = if next_token.is_some() {
        if input.opt_str("StreamName")?.is_some() || input.opt_str("StreamARN")?.is_some() {
            return Err(KinesisError::new(
                "InvalidArgumentException",
                400,
                "NextToken and StreamName cannot be provided together.",
            ));
        }
        None
    } else {
        Some(stream_name(input)?)
    };
    let shard_filter = match input.opt_map("ShardFilter")? {
        Some(filter) => {
            let kind = match filter.req_str("Type")?.as_str() {
                "AFTER_SHARD_ID" => v1::ShardFilterType::AfterShardId,
                "AT_TRIM_HORIZON" => v1::ShardFilterType::AtTrimHorizon,
                "FROM_TRIM_HORIZON" => v1::ShardFilterType::FromTrimHorizon,
                "AT_LATEST" => v1::ShardFilterType::AtLatest,
                "AT_TIMESTAMP" => v1::ShardFilterType::AtTimestamp,
                "FROM_TIMESTAMP" => v1::ShardFilterType::FromTimestamp,
                other => {
                    return Err(KinesisError::validation(format!(
                        "1 validation error detected: Value '{other}' at 'shardFilter.type' failed to satisfy constraint: Member must satisfy enum value set: [AFTER_SHARD_ID, AT_TRIM_HORIZON, FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, FROM_TIMESTAMP]"
                    )));
                }
            };
            Some(v1::ShardFilter {
                r#type: kind as i32,
                shard_id: filter.opt_str("ShardId")?,
                timestamp_ms: filter.opt_timestamp("Timestamp")?,
            })
        }
        None => None,
    };
    let resp = api.gw.list_shards(v1::ListShardsRequest {
        stream_name: stream,
        next_token,
        exclusive_start_shard_id: input.opt_str("ExclusiveStartShardId")?,
        max_results: input.opt_u32("MaxResults")?,
        shard_filter,
    })?;
    let shards: Vec<Doc> = resp.shards.iter().map(shard_doc).collect();
    let mut m = vec![("Shards".to_string(), Doc::List(shards))];
    if let Some(t) = resp.next_token {
        m.push(("NextToken".into(), Doc::Str(t)));
    }
    Ok(Doc::Map(m))
}

pub(super) async fn update_retention(
    api: &KinesisApi,
    input: &Input,
    increase: bool,
) -> Result<Doc, KinesisError> {
    let name = stream_name(input)?;
    let hours = input
        .opt_i64("RetentionPeriodHours")?
        .ok_or_else(|| KinesisError::validation("1 validation error detected: Value null at 'retentionPeriodHours' failed to satisfy constraint: Member must not be null"))?;
    let hours = u32::try_from(hours).unwrap_or(0);
    api.gw
        .update_retention(
            v1::UpdateRetentionRequest {
                stream_name: name,
                retention_period_hours: hours,
            },
            increase,
        )
        .await?;
    Ok(Doc::Map(Vec::new()))
}

pub(super) async fn split_shard(api: &KinesisApi, input: &Input) -> Result<Doc, KinesisError> {
    api.gw
        .split_shard(v1::SplitShardRequest {
            stream_name: stream_name(input)?,
            shard_to_split: input.req_str("ShardToSplit")?,
            new_starting_hash_key: input.req_str("NewStartingHashKey")?,
        })
        .await?;
    Ok(Doc::Map(Vec::new()))
}

pub(super) async fn merge_shards(api: &KinesisApi, input: &Input) -> Result<Doc, KinesisError> {
    api.gw
        .merge_shards(v1::MergeShardsRequest {
            stream_name: stream_name(input)?,
            shard_to_merge: input.req_str("ShardToMerge")?,
            adjacent_shard_to_merge: input.req_str("AdjacentShardToMerge")?,
        })
        .await?;
    Ok(Doc::Map(Vec::new()))
}

pub(super) async fn update_shard_count(
    api: &KinesisApi,
    input: &Input,
) -> Result<Doc, KinesisError> {
    let target = input.req_i64("TargetShardCount")?;
    let target = u32::try_from(target).map_err(|_| {
        KinesisError::validation(format!(
            "1 validation error detected: Value '{target}' at 'targetShardCount' failed to satisfy constraint: Member must have value greater than or equal to 1"
        ))
    })?;
    let scaling = match input.req_str("ScalingType")?.as_str() {
        "UNIFORM_SCALING" => v1::ScalingType::UniformScaling,
        other => {
            return Err(KinesisError::validation(format!(
                "1 validation error detected: Value '{other}' at 'scalingType' failed to satisfy constraint: Member must satisfy enum value set: [UNIFORM_SCALING]"
            )));
        }
    };
    let resp = api
        .gw
        .update_shard_count(v1::UpdateShardCountRequest {
            stream_name: stream_name(input)?,
            target_shard_count: target,
            scaling_type: scaling as i32,
        })
        .await?;
    Ok(Doc::map([
        ("StreamName", Doc::Str(resp.stream_name)),
        (
            "CurrentShardCount",
            Doc::Int(i64::from(resp.current_shard_count)),
        ),
        (
            "TargetShardCount",
            Doc::Int(i64::from(resp.target_shard_count)),
        ),
        ("StreamARN", Doc::Str(resp.stream_arn)),
    ]))
}
