//! Per-stream settings and account settings kept in the cluster's metadata: tags, enhanced
//! monitoring, stream mode, maximum record size, warm throughput, encryption, resource policies
//! and the account's billing commitment.

use std::sync::Arc;

use streamd_meta::{MetaCommand, MetaReply, StreamMeta};

use super::streams::stream_name;
use crate::codec::{Doc, Input};
use crate::error::KinesisError;
use crate::router::KinesisApi;

pub(super) fn stream(api: &KinesisApi, input: &Input) -> Result<Arc<StreamMeta>, KinesisError> {
    let name = stream_name(input)?;
    api.gw
        .metadata()
        .streams
        .get(&name)
        .cloned()
        .ok_or_else(|| {
            KinesisError::resource_not_found(format!(
                "Stream {name} under account 000000000000 not found."
            ))
        })
}

/// The stream a `ResourceARN` names; consumer ARNs are refused where only streams carry the setting.
fn stream_by_resource_arn(api: &KinesisApi, input: &Input) -> Result<StreamMeta, KinesisError> {
    let arn = input.req_str("ResourceARN")?;
    let meta = api.gw.metadata();
    if let Some(s) = meta.stream_by_arn(&arn) {
        return Ok(s.clone());
    }
    if meta.consumer_by_arn(&arn).is_some() {
        return Err(KinesisError::invalid_argument(format!(
            "Tags on consumers are not supported by this streamd version; {arn} was not changed."
        )));
    }
    Err(KinesisError::resource_not_found(format!(
        "Resource {arn} not found."
    )))
}

async fn run(api: &KinesisApi, cmd: MetaCommand) -> Result<MetaReply, KinesisError> {
    Ok(api.gw.propose_meta(&cmd).await?)
}

fn empty() -> Doc {
    Doc::Map(Vec::new())
}

pub(super) async fn add_tags(api: &KinesisApi, input: &Input) -> Result<Doc, KinesisError> {
    let s = stream(api, input)?;
    let tags = input.opt_string_map("Tags")?.unwrap_or_default();
    run(
        api,
        MetaCommand::TagStream {
            name: s.name.clone(),
            tags,
        },
    )
    .await?;
    Ok(empty())
}

pub(super) async fn remove_tags(api: &KinesisApi, input: &Input) -> Result<Doc, KinesisError> {
    let s = stream(api, input)?;
    let keys = input.req_string_list("TagKeys")?;
    run(
        api,
        MetaCommand::UntagStream {
            name: s.name.clone(),
            keys,
        },
    )
    .await?;
    Ok(empty())
}

fn tag_list<'a>(tags: impl Iterator<Item = (&'a String, &'a String)>) -> Doc {
    Doc::List(
        tags.map(|(k, v)| Doc::map([("Key", Doc::Str(k.clone())), ("Value", Doc::Str(v.clone()))]))
            .collect(),
    )
}

pub(super) fn list_tags_for_stream(api: &KinesisApi, input: &Input) -> Result<Doc, KinesisError> {
    let s = stream(api, input)?;
    let limit = input.opt_u32("Limit")?.unwrap_or(50) as usize;
    if !(1..=50).contains(&limit) {
        return Err(KinesisError::invalid_argument(format!(
            "Limit must be between 1 and 50, got {limit}."
        )));
    }
    let start = input.opt_str("ExclusiveStartTagKey")?;
    let after: Vec<_> = s
        .tags
        .iter()
        .filter(|(k, _)| start.as_ref().is_none_or(|st| *k > st))
        .collect();
    let has_more = after.len() > limit;
    Ok(Doc::map([
        ("Tags", tag_list(after.into_iter().take(limit))),
        ("HasMoreTags", Doc::Bool(has_more)),
    ]))
}

pub(super) async fn tag_resource(api: &KinesisApi, input: &Input) -> Result<Doc, KinesisError> {
    let s = stream_by_resource_arn(api, input)?;
    let tags = input.opt_string_map("Tags")?.unwrap_or_default();
    run(api, MetaCommand::TagStream { name: s.name, tags }).await?;
    Ok(empty())
}

pub(super) async fn untag_resource(api: &KinesisApi, input: &Input) -> Result<Doc, KinesisError> {
    let s = stream_by_resource_arn(api, input)?;
    let keys = input.req_string_list("TagKeys")?;
    run(api, MetaCommand::UntagStream { name: s.name, keys }).await?;
    Ok(empty())
}

pub(super) fn list_tags_for_resource(api: &KinesisApi, input: &Input) -> Result<Doc, KinesisError> {
    let s = stream_by_resource_arn(api, input)?;
    Ok(Doc::map([("Tags", tag_list(s.tags.iter()))]))
}

pub(super) async fn enhanced_monitoring(
    api: &KinesisApi,
    input: &Input,
    enable: bool,
) -> Result<Doc, KinesisError> {
    let s = stream(api, input)?;
    let metrics = input.req_string_list("ShardLevelMetrics")?;
    for m in &metrics {
        if m != "ALL" && !streamd_meta::SHARD_LEVEL_METRICS.contains(&m.as_str()) {
            return Err(crate::codec::validation(
                "shardLevelMetrics",
                m,
                "Member must satisfy enum value set: [IncomingBytes, IncomingRecords, OutgoingBytes, OutgoingRecords, WriteProvisionedThroughputExceeded, ReadProvisionedThroughputExceeded, IteratorAgeMilliseconds, ALL]",
            ));
        }
    }
    let reply = run(
        api,
        MetaCommand::SetShardLevelMetrics {
            name: s.name.clone(),
            metrics,
            enable,
        },
    )
    .await?;
    let (before, after) = match reply {
        MetaReply::Metrics { before, after } => (before, after),
        _ => {
            return Err(KinesisError::internal(
                "unexpected reply to a monitoring change",
            ));
        }
    };
    let list = |v: Vec<String>| Doc::List(v.into_iter().map(Doc::Str).collect());
    Ok(Doc::map([
        ("StreamName", Doc::Str(s.name.clone())),
        ("StreamARN", Doc::Str(s.arn.clone())),
        ("CurrentShardLevelMetrics", list(before)),
        ("DesiredShardLevelMetrics", list(after)),
    ]))
}

pub(super) async fn update_stream_mode(
    api: &KinesisApi,
    input: &Input,
) -> Result<Doc, KinesisError> {
    let s = stream(api, input)?;
    let details = input
        .opt_map("StreamModeDetails")?
        .ok_or_else(|| KinesisError::validation("1 validation error detected: Value null at 'streamModeDetails' failed to satisfy constraint: Member must not be null"))?;
    let on_demand = match details.req_str("StreamMode")?.as_str() {
        "ON_DEMAND" => true,
        "PROVISIONED" => false,
        other => {
            return Err(KinesisError::validation(format!(
                "1 validation error detected: Value '{other}' at 'streamModeDetails.streamMode' failed to satisfy constraint: Member must satisfy enum value set: [PROVISIONED, ON_DEMAND]"
            )));
        }
    };
    run(
        api,
        MetaCommand::SetStreamMode {
            name: s.name.clone(),
            on_demand,
        },
    )
    .await?;
    Ok(empty())
}

pub(super) async fn update_max_record_size(
    api: &KinesisApi,
    input: &Input,
) -> Result<Doc, KinesisError> {
    let s = stream(api, input)?;
    let kib = input.req_u32("MaxRecordSizeInKiB")?;
    run(
        api,
        MetaCommand::SetMaxRecordSize {
            name: s.name.clone(),
            kib,
        },
    )
    .await?;
    Ok(empty())
}

pub(super) async fn update_warm_throughput(
    api: &KinesisApi,
    input: &Input,
) -> Result<Doc, KinesisError> {
    let s = stream(api, input)?;
    let mibps = input.req_u32("WarmThroughputMiBps")?;
    run(
        api,
        MetaCommand::SetWarmThroughput {
            name: s.name.clone(),
            mibps,
        },
    )
    .await?;
    Ok(Doc::map([
        ("StreamARN", Doc::Str(s.arn.clone())),
        ("StreamName", Doc::Str(s.name.clone())),
        (
            "WarmThroughput",
            Doc::map([
                ("TargetMiBps", Doc::Int(i64::from(mibps))),
                ("CurrentMiBps", Doc::Int(i64::from(mibps))),
            ]),
        ),
    ]))
}

pub(super) fn start_encryption(api: &KinesisApi, input: &Input) -> Result<Doc, KinesisError> {
    let s = stream(api, input)?;
    Err(KinesisError::invalid_argument(format!(
        "Server-side encryption with KMS keys is not available in streamd; stream {} was not changed. Encrypt the nodes' data volumes instead.",
        s.name
    )))
}

pub(super) fn stop_encryption(api: &KinesisApi, input: &Input) -> Result<Doc, KinesisError> {
    // Streams are never KMS-encrypted here, so there is nothing to stop: the request already
    // holds, as Kinesis answers for a stream whose encryption is off.
    stream(api, input)?;
    Ok(empty())
}

fn resource_exists(api: &KinesisApi, arn: &str) -> Result<(), KinesisError> {
    let meta = api.gw.metadata();
    if meta.stream_by_arn(arn).is_some() || meta.consumer_by_arn(arn).is_some() {
        Ok(())
    } else {
        Err(KinesisError::resource_not_found(format!(
            "Resource {arn} not found."
        )))
    }
}

pub(super) async fn put_resource_policy(
    api: &KinesisApi,
    input: &Input,
) -> Result<Doc, KinesisError> {
    let arn = input.req_str("ResourceARN")?;
    let policy = input.req_str("Policy")?;
    if serde_json::from_str::<serde_json::Value>(&policy)
        .map(|v| !v.is_object())
        .unwrap_or(true)
    {
        return Err(KinesisError::invalid_argument(
            "Policy must be a JSON object.",
        ));
    }
    resource_exists(api, &arn)?;
    run(api, MetaCommand::PutResourcePolicy { arn, policy }).await?;
    Ok(empty())
}

pub(super) fn get_resource_policy(api: &KinesisApi, input: &Input) -> Result<Doc, KinesisError> {
    let arn = input.req_str("ResourceARN")?;
    resource_exists(api, &arn)?;
    let policy = api
        .gw
        .metadata()
        .resource_policies
        .get(&arn)
        .cloned()
        .unwrap_or_else(|| "{}".into());
    Ok(Doc::map([("Policy", Doc::Str(policy))]))
}

pub(super) async fn delete_resource_policy(
    api: &KinesisApi,
    input: &Input,
) -> Result<Doc, KinesisError> {
    let arn = input.req_str("ResourceARN")?;
    resource_exists(api, &arn)?;
    run(api, MetaCommand::DeleteResourcePolicy { arn }).await?;
    Ok(empty())
}

fn commitment(c: Option<(String, i64)>) -> Doc {
    match c {
        Some((status, since)) if status == "ENABLED" => Doc::map([
            ("Status", Doc::Str(status)),
            ("StartedAt", Doc::Timestamp(since)),
        ]),
        _ => Doc::map([("Status", Doc::Str("DISABLED".into()))]),
    }
}

pub(super) fn describe_account_settings(api: &KinesisApi) -> Result<Doc, KinesisError> {
    Ok(Doc::map([(
        "MinimumThroughputBillingCommitment",
        commitment(api.gw.metadata().billing_commitment),
    )]))
}

pub(super) async fn update_account_settings(
    api: &KinesisApi,
    input: &Input,
) -> Result<Doc, KinesisError> {
    let c = input
        .opt_map("MinimumThroughputBillingCommitment")?
        .ok_or_else(|| KinesisError::validation("1 validation error detected: Value null at 'minimumThroughputBillingCommitment' failed to satisfy constraint: Member must not be null"))?;
    let status = c.req_str("Status")?;
    if status != "ENABLED" && status != "DISABLED" {
        return Err(KinesisError::validation(format!(
            "1 validation error detected: Value '{status}' at 'minimumThroughputBillingCommitment.status' failed to satisfy constraint: Member must satisfy enum value set: [ENABLED, DISABLED]"
        )));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    run(
        api,
        MetaCommand::SetBillingCommitment {
            status,
            now_ms: now,
        },
    )
    .await?;
    describe_account_settings(api)
}
