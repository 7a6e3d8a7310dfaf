//! Records as `get` and `tail` print them, and the GetRecords call both use (throttling waited
//! out, so a reader backs off instead of failing).

use std::time::Duration;

use base64::Engine;
use serde::Serialize;
use streamd_client::{ClientError, ErrorCode, StreamdClient, v1};
use streamd_proto::ids::ShardId;

use crate::time::format_millis;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct RecordView {
    pub(crate) shard_id: String,
    pub(crate) sequence_number: String,
    pub(crate) partition_key: String,
    pub(crate) arrival: String,
    pub(crate) arrival_ms: i64,
    /// The data as text when it is UTF-8, else null (see `data_base64`).
    pub(crate) data: Option<String>,
    pub(crate) data_base64: String,
}

pub(crate) fn record_view(shard_id: &str, r: &v1::Record) -> RecordView {
    RecordView {
        shard_id: shard_id.to_string(),
        sequence_number: r.sequence_number.clone(),
        partition_key: r.partition_key.clone(),
        arrival: format_millis(r.approximate_arrival_timestamp_ms),
        arrival_ms: r.approximate_arrival_timestamp_ms,
        data: std::str::from_utf8(&r.data).ok().map(str::to_string),
        data_base64: base64::engine::general_purpose::STANDARD.encode(&r.data),
    }
}

/// One line: shard, sequence number, key, data (`base64:...` when not UTF-8). Control
/// characters are escaped so one record stays one line.
pub(crate) fn record_line(v: &RecordView) -> String {
    let data = match &v.data {
        Some(text) => text.escape_debug().to_string(),
        None => format!("base64:{}", v.data_base64),
    };
    format!(
        "{}  {}  {}  {}",
        v.shard_id,
        v.sequence_number,
        v.partition_key.escape_debug(),
        data
    )
}

/// Shards in id order, which puts parents before their children (children get higher ids).
pub(crate) fn sort_by_id(shards: &mut [v1::Shard]) {
    shards.sort_by_key(|s| {
        s.shard_id
            .parse::<ShardId>()
            .map(|id| id.0)
            .unwrap_or(u64::MAX)
    });
}

/// `1` and `shardId-000000000001` name the same shard.
pub(crate) fn normalize_shard_id(id: &str) -> String {
    id.parse::<ShardId>()
        .map(|s| s.to_string())
        .unwrap_or_else(|_| id.to_string())
}

/// GetRecords, waiting out read-throughput refusals (up to `max_throttled` times; 5 calls/s per
/// shard is Kinesis's read limit).
pub(crate) async fn fetch(
    client: &StreamdClient,
    iterator: &str,
    limit: Option<u32>,
    max_throttled: u32,
) -> Result<v1::GetRecordsResponse, ClientError> {
    let mut throttled = 0;
    loop {
        match client.get_records(iterator, limit).await {
            Err(e)
                if e.code() == ErrorCode::ProvisionedThroughputExceeded
                    && throttled < max_throttled =>
            {
                throttled += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_binary_data() {
        let r = v1::Record {
            sequence_number: "1".into(),
            data: bytes::Bytes::from_static(b"a\nb"),
            partition_key: "k".into(),
            approximate_arrival_timestamp_ms: 0,
        };
        let v = record_view("shardId-000000000000", &r);
        assert_eq!(v.data.as_deref(), Some("a\nb"));
        assert_eq!(record_line(&v), "shardId-000000000000  1  k  a\\nb");
        let bin = v1::Record {
            data: bytes::Bytes::from_static(&[0xff, 0]),
            ..r
        };
        let v = record_view("s", &bin);
        assert!(v.data.is_none());
        assert!(record_line(&v).ends_with("base64:/wA="));
    }

    #[test]
    fn parents_sort_first_and_ids_normalize() {
        let s = |id: &str| v1::Shard {
            shard_id: id.into(),
            ..v1::Shard::default()
        };
        let mut shards = vec![s("shardId-000000000010"), s("shardId-000000000002")];
        sort_by_id(&mut shards);
        assert_eq!(shards[0].shard_id, "shardId-000000000002");
        assert_eq!(normalize_shard_id("3"), "shardId-000000000003");
        assert_eq!(normalize_shard_id("nope"), "nope");
    }
}
