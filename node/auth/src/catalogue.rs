//! Every operation a policy can name: its IAM action and what its resource is.
//!
//! `docs/authorization.md` prints these tables; a test below keeps the two in step. A new
//! operation is added here, then to the docs.

/// What an operation's request is about, which decides the resource ARN it is authorized on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    /// The stream's ARN (`arn::stream_arn`).
    Stream,
    /// The consumer's ARN (`arn::consumer_arn`).
    Consumer,
    /// Whichever the request names in its ResourceARN: a stream or a consumer.
    StreamOrConsumer,
    /// No resource of its own: authorized on `*`, so only a statement whose Resource is `*`
    /// (or a `NotResource`) covers it.
    Account,
}

/// One operation of either API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    /// The operation's name on the wire: the Kinesis `X-Amz-Target` suffix or the gRPC method.
    pub name: &'static str,
    /// The IAM action a policy names, e.g. `kinesis:PutRecord`.
    pub action: &'static str,
    pub resource: ResourceKind,
}

const fn op(name: &'static str, action: &'static str, resource: ResourceKind) -> Operation {
    Operation {
        name,
        action,
        resource,
    }
}

use ResourceKind::{Account, Consumer, Stream, StreamOrConsumer};

/// The Kinesis Data Streams API, each under its `kinesis:` action.
pub const KINESIS_OPERATIONS: &[Operation] = &[
    op("AddTagsToStream", "kinesis:AddTagsToStream", Stream),
    op("CreateStream", "kinesis:CreateStream", Stream),
    op(
        "DecreaseStreamRetentionPeriod",
        "kinesis:DecreaseStreamRetentionPeriod",
        Stream,
    ),
    op(
        "DeleteResourcePolicy",
        "kinesis:DeleteResourcePolicy",
        StreamOrConsumer,
    ),
    op("DeleteStream", "kinesis:DeleteStream", Stream),
    op(
        "DeregisterStreamConsumer",
        "kinesis:DeregisterStreamConsumer",
        Consumer,
    ),
    op(
        "DescribeAccountSettings",
        "kinesis:DescribeAccountSettings",
        Account,
    ),
    op("DescribeLimits", "kinesis:DescribeLimits", Account),
    op("DescribeStream", "kinesis:DescribeStream", Stream),
    op(
        "DescribeStreamConsumer",
        "kinesis:DescribeStreamConsumer",
        Consumer,
    ),
    op(
        "DescribeStreamSummary",
        "kinesis:DescribeStreamSummary",
        Stream,
    ),
    op(
        "DisableEnhancedMonitoring",
        "kinesis:DisableEnhancedMonitoring",
        Stream,
    ),
    op(
        "EnableEnhancedMonitoring",
        "kinesis:EnableEnhancedMonitoring",
        Stream,
    ),
    op("GetRecords", "kinesis:GetRecords", Stream),
    op(
        "GetResourcePolicy",
        "kinesis:GetResourcePolicy",
        StreamOrConsumer,
    ),
    op("GetShardIterator", "kinesis:GetShardIterator", Stream),
    op(
        "IncreaseStreamRetentionPeriod",
        "kinesis:IncreaseStreamRetentionPeriod",
        Stream,
    ),
    op("ListShards", "kinesis:ListShards", Stream),
    op("ListStreamConsumers", "kinesis:ListStreamConsumers", Stream),
    op("ListStreams", "kinesis:ListStreams", Account),
    op(
        "ListTagsForResource",
        "kinesis:ListTagsForResource",
        StreamOrConsumer,
    ),
    op("ListTagsForStream", "kinesis:ListTagsForStream", Stream),
    op("MergeShards", "kinesis:MergeShards", Stream),
    op("PutRecord", "kinesis:PutRecord", Stream),
    op("PutRecords", "kinesis:PutRecords", Stream),
    op(
        "PutResourcePolicy",
        "kinesis:PutResourcePolicy",
        StreamOrConsumer,
    ),
    op(
        "RegisterStreamConsumer",
        "kinesis:RegisterStreamConsumer",
        Stream,
    ),
    op(
        "RemoveTagsFromStream",
        "kinesis:RemoveTagsFromStream",
        Stream,
    ),
    op("SplitShard", "kinesis:SplitShard", Stream),
    op(
        "StartStreamEncryption",
        "kinesis:StartStreamEncryption",
        Stream,
    ),
    op(
        "StopStreamEncryption",
        "kinesis:StopStreamEncryption",
        Stream,
    ),
    op("SubscribeToShard", "kinesis:SubscribeToShard", Consumer),
    op("TagResource", "kinesis:TagResource", StreamOrConsumer),
    op("UntagResource", "kinesis:UntagResource", StreamOrConsumer),
    op(
        "UpdateAccountSettings",
        "kinesis:UpdateAccountSettings",
        Account,
    ),
    op("UpdateMaxRecordSize", "kinesis:UpdateMaxRecordSize", Stream),
    op("UpdateShardCount", "kinesis:UpdateShardCount", Stream),
    op("UpdateStreamMode", "kinesis:UpdateStreamMode", Stream),
    op(
        "UpdateStreamWarmThroughput",
        "kinesis:UpdateStreamWarmThroughput",
        Stream,
    ),
];

/// streamd's own operations, under the `streamd:` prefix so that `kinesis:*` never grants them.
pub const STREAMD_OPERATIONS: &[Operation] = &[
    op("ClusterStatus", "streamd:ClusterStatus", Account),
    op("DrainNode", "streamd:DrainNode", Account),
    op("RemoveNode", "streamd:RemoveNode", Account),
    op("CreateAccessKey", "streamd:CreateAccessKey", Account),
    op("ListAccessKeys", "streamd:ListAccessKeys", Account),
    op("DeleteAccessKey", "streamd:DeleteAccessKey", Account),
    // Consumer-group leases belong to a stream, so a policy can scope them to one.
    op("UpdateLease", "streamd:UpdateLease", Stream),
    op("ListLeases", "streamd:ListLeases", Stream),
];

/// Every operation, Kinesis first.
pub fn operations() -> impl Iterator<Item = &'static Operation> {
    KINESIS_OPERATIONS.iter().chain(STREAMD_OPERATIONS)
}

/// The operation with this wire name (`PutRecord`, `DrainNode`), if there is one.
pub fn operation(name: &str) -> Option<&'static Operation> {
    operations().find(|op| op.name == name)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_action_is_its_prefix_and_its_name() {
        for op in KINESIS_OPERATIONS {
            assert_eq!(op.action, format!("kinesis:{}", op.name));
        }
        for op in STREAMD_OPERATIONS {
            assert_eq!(op.action, format!("streamd:{}", op.name));
        }
    }

    #[test]
    fn names_are_unique_and_kinesis_is_complete() {
        let names: HashSet<_> = operations().map(|op| op.name).collect();
        assert_eq!(names.len(), operations().count());
        assert_eq!(KINESIS_OPERATIONS.len(), 39);
        let mut sorted: Vec<_> = KINESIS_OPERATIONS.iter().map(|op| op.name).collect();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            KINESIS_OPERATIONS
                .iter()
                .map(|op| op.name)
                .collect::<Vec<_>>(),
            "kept in alphabetical order"
        );
    }

    #[test]
    fn lookup_by_name() {
        assert_eq!(
            operation("PutRecords").map(|op| op.action),
            Some("kinesis:PutRecords")
        );
        assert_eq!(
            operation("ListStreams").map(|op| op.resource),
            Some(Account)
        );
        assert_eq!(
            operation("SubscribeToShard").map(|op| op.resource),
            Some(Consumer)
        );
        assert_eq!(
            operation("DrainNode").map(|op| op.action),
            Some("streamd:DrainNode")
        );
        assert_eq!(operation("putrecords"), None);
        assert_eq!(operation("Nope"), None);
    }

    /// The docs table lists every operation with its action and resource, and nothing else.
    #[test]
    fn docs_table_matches_the_catalogue() {
        let doc = include_str!("../../../docs/authorization.md");
        let rows: Vec<&str> = doc
            .lines()
            .filter(|l| l.starts_with("| `kinesis:") || l.starts_with("| `streamd:"))
            .collect();
        let expected: Vec<String> = operations()
            .map(|op| {
                let resource = match op.resource {
                    Stream => "stream",
                    Consumer => "consumer",
                    StreamOrConsumer => "stream or consumer",
                    Account => "`*`",
                };
                format!("| `{}` | {} | {resource} |", op.action, op.name)
            })
            .collect();
        assert_eq!(rows, expected);
    }
}
