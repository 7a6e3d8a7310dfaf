//! Account-level actions.

use streamd_proto::v1;

use crate::codec::Doc;
use crate::error::KinesisError;
use crate::router::KinesisApi;

/// Kinesis's default account quotas, which streamd reports as its own limits.
const SHARD_LIMIT: i64 = 500;
const ON_DEMAND_STREAM_LIMIT: i64 = 50;

pub(super) fn describe_limits(api: &KinesisApi) -> Result<Doc, KinesisError> {
    let streams = api.gw.list_streams(v1::ListStreamsRequest {
        limit: Some(10_000),
        exclusive_start_stream_name: None,
    })?;
    let mut open = 0i64;
    let mut on_demand = 0i64;
    for s in &streams.stream_summaries {
        if s.stream_mode == v1::StreamMode::OnDemand as i32 {
            on_demand += 1;
        }
        let d = api
            .gw
            .describe_stream_summary(v1::DescribeStreamSummaryRequest {
                stream_name: s.stream_name.clone(),
            })?;
        open += d
            .stream_description_summary
            .map(|x| i64::from(x.open_shard_count))
            .unwrap_or(0);
    }
    Ok(Doc::map([
        ("ShardLimit", Doc::Int(SHARD_LIMIT)),
        ("OpenShardCount", Doc::Int(open)),
        ("OnDemandStreamCount", Doc::Int(on_demand)),
        ("OnDemandStreamCountLimit", Doc::Int(ON_DEMAND_STREAM_LIMIT)),
    ]))
}
