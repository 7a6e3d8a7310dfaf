//! Kinesis actions: each maps a request's members to a gateway operation and its result back to
//! Kinesis's response shape.

mod account;
mod consumers;
mod records;
mod settings;
mod streams;
mod subscribe;

use crate::codec::{Doc, Input};
use crate::error::KinesisError;
use crate::router::KinesisApi;

/// What an action answers with.
pub(crate) enum Reply {
    Doc(Doc),
    /// A streamed `application/vnd.amazon.eventstream` body (SubscribeToShard).
    EventStream(axum::body::Body),
}

impl From<Doc> for Reply {
    fn from(d: Doc) -> Self {
        Reply::Doc(d)
    }
}

/// Every operation of the Kinesis_20131202 model, so an operation the cluster cannot carry out yet
/// is told apart from one that does not exist.
/// `action` when it is a known action, else "unknown": a bounded label for metrics.
pub(crate) fn metric_label(action: &str) -> &str {
    if KNOWN.contains(&action) {
        action
    } else {
        "unknown"
    }
}

const KNOWN: [&str; 39] = [
    "AddTagsToStream",
    "CreateStream",
    "DecreaseStreamRetentionPeriod",
    "DeleteResourcePolicy",
    "DeleteStream",
    "DeregisterStreamConsumer",
    "DescribeAccountSettings",
    "DescribeLimits",
    "DescribeStream",
    "DescribeStreamConsumer",
    "DescribeStreamSummary",
    "DisableEnhancedMonitoring",
    "EnableEnhancedMonitoring",
    "GetRecords",
    "GetResourcePolicy",
    "GetShardIterator",
    "IncreaseStreamRetentionPeriod",
    "ListShards",
    "ListStreamConsumers",
    "ListStreams",
    "ListTagsForResource",
    "ListTagsForStream",
    "MergeShards",
    "PutRecord",
    "PutRecords",
    "PutResourcePolicy",
    "RegisterStreamConsumer",
    "RemoveTagsFromStream",
    "SplitShard",
    "StartStreamEncryption",
    "StopStreamEncryption",
    "SubscribeToShard",
    "TagResource",
    "UntagResource",
    "UpdateAccountSettings",
    "UpdateMaxRecordSize",
    "UpdateShardCount",
    "UpdateStreamMode",
    "UpdateStreamWarmThroughput",
];

pub(crate) async fn dispatch(
    api: &KinesisApi,
    action: &str,
    input: Input,
) -> Result<Reply, KinesisError> {
    if action == "SubscribeToShard" {
        return subscribe::subscribe(api, &input).await;
    }
    let doc = match action {
        "CreateStream" => streams::create_stream(api, &input).await?,
        "DeleteStream" => streams::delete_stream(api, &input).await?,
        "DescribeStream" => streams::describe_stream(api, &input)?,
        "DescribeStreamSummary" => streams::describe_stream_summary(api, &input)?,
        "ListStreams" => streams::list_streams(api, &input)?,
        "ListShards" => streams::list_shards(api, &input)?,
        "SplitShard" => streams::split_shard(api, &input).await?,
        "MergeShards" => streams::merge_shards(api, &input).await?,
        "UpdateShardCount" => streams::update_shard_count(api, &input).await?,
        "IncreaseStreamRetentionPeriod" => streams::update_retention(api, &input, true).await?,
        "DecreaseStreamRetentionPeriod" => streams::update_retention(api, &input, false).await?,
        "PutRecord" => records::put_record(api, &input).await?,
        "PutRecords" => records::put_records(api, &input).await?,
        "GetShardIterator" => records::get_shard_iterator(api, &input).await?,
        "GetRecords" => records::get_records(api, &input).await?,
        "DescribeLimits" => account::describe_limits(api)?,
        "AddTagsToStream" => settings::add_tags(api, &input).await?,
        "RemoveTagsFromStream" => settings::remove_tags(api, &input).await?,
        "ListTagsForStream" => settings::list_tags_for_stream(api, &input)?,
        "TagResource" => settings::tag_resource(api, &input).await?,
        "UntagResource" => settings::untag_resource(api, &input).await?,
        "ListTagsForResource" => settings::list_tags_for_resource(api, &input)?,
        "EnableEnhancedMonitoring" => settings::enhanced_monitoring(api, &input, true).await?,
        "DisableEnhancedMonitoring" => settings::enhanced_monitoring(api, &input, false).await?,
        "UpdateStreamMode" => settings::update_stream_mode(api, &input).await?,
        "UpdateMaxRecordSize" => settings::update_max_record_size(api, &input).await?,
        "UpdateStreamWarmThroughput" => settings::update_warm_throughput(api, &input).await?,
        "StartStreamEncryption" => settings::start_encryption(api, &input)?,
        "StopStreamEncryption" => settings::stop_encryption(api, &input)?,
        "PutResourcePolicy" => settings::put_resource_policy(api, &input).await?,
        "GetResourcePolicy" => settings::get_resource_policy(api, &input)?,
        "DeleteResourcePolicy" => settings::delete_resource_policy(api, &input).await?,
        "DescribeAccountSettings" => settings::describe_account_settings(api)?,
        "UpdateAccountSettings" => settings::update_account_settings(api, &input).await?,
        "RegisterStreamConsumer" => consumers::register(api, &input).await?,
        "DeregisterStreamConsumer" => consumers::deregister(api, &input).await?,
        "DescribeStreamConsumer" => consumers::describe(api, &input)?,
        "ListStreamConsumers" => consumers::list(api, &input)?,
        other if KNOWN.contains(&other) => {
            return Err(KinesisError::new(
                "InvalidArgumentException",
                400,
                format!(
                    "{other} is not supported by this streamd version yet; nothing was changed."
                ),
            ));
        }
        other => return Err(KinesisError::unknown_operation(other)),
    };
    Ok(Reply::Doc(doc))
}
