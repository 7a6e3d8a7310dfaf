//! Control-plane operations on streams and shards.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use streamd_meta::{MetaCommand, ShardMeta, StreamMeta, StreamStatus};
use streamd_proto::ids::{SequenceNumber, ShardId};
use streamd_proto::limits::MAX_SHARDS_PER_STREAM;
use streamd_proto::v1;
use streamd_proto::{ApiError, ErrorCode};

use super::{not_found, stream_name};
use crate::Gateway;

fn status(s: StreamStatus) -> v1::StreamStatus {
    match s {
        StreamStatus::Creating => v1::StreamStatus::Creating,
        StreamStatus::Active => v1::StreamStatus::Active,
        StreamStatus::Updating => v1::StreamStatus::Updating,
        StreamStatus::Deleting => v1::StreamStatus::Deleting,
    }
}

fn mode(on_demand: bool) -> v1::StreamMode {
    if on_demand {
        v1::StreamMode::OnDemand
    } else {
        v1::StreamMode::Provisioned
    }
}

impl Gateway {
    pub(crate) fn shard_view(&self, sh: &ShardMeta) -> v1::Shard {
        v1::Shard {
            shard_id: sh.shard_id.to_string(),
            parent_shard_id: sh.parent.map(|p| p.to_string()),
            adjacent_parent_shard_id: sh.adjacent_parent.map(|p| p.to_string()),
            hash_key_range: Some(v1::HashKeyRange {
                starting_hash_key: sh.range.start.to_string(),
                ending_hash_key: sh.range.end.to_string(),
            }),
            sequence_number_range: Some(v1::SequenceNumberRange {
                starting_sequence_number: SequenceNumber(sh.starting_seq).to_string(),
                ending_sequence_number: sh.ending_seq.map(|s| SequenceNumber(s).to_string()),
            }),
            group_id: sh.group_id,
            replicas: sh.replicas.clone(),
            leader: self.host.group(sh.group_id).and_then(|g| g.status().leader),
        }
    }

    fn description(
        &self,
        s: &StreamMeta,
        shards: Vec<v1::Shard>,
        has_more: bool,
    ) -> v1::StreamDescription {
        v1::StreamDescription {
            stream_name: s.name.clone(),
            stream_arn: s.arn.clone(),
            stream_status: status(s.status) as i32,
            stream_mode: mode(s.on_demand) as i32,
            shards,
            has_more_shards: has_more,
            retention_period_hours: s.retention_hours,
            stream_creation_timestamp_ms: s.created_ms,
            encryption_type: "NONE".into(),
            open_shard_count: s.shards.iter().filter(|x| x.is_open()).count() as u32,
            consumer_count: s.consumers.len() as u32,
            map_epoch: s.map_epoch,
        }
    }

    #[tracing::instrument(name = "gateway.create_stream", skip_all, fields(stream = %req.stream_name))]
    pub async fn create_stream(
        &self,
        req: v1::CreateStreamRequest,
    ) -> Result<v1::CreateStreamResponse, ApiError> {
        let name = stream_name(&req.stream_name)?;
        let on_demand = req.stream_mode == v1::StreamMode::OnDemand as i32;
        let shard_count = match (req.shard_count, on_demand) {
            (Some(n), _) => n,
            // On-demand streams start with Kinesis's four shards.
            (None, true) => 4,
            (None, false) => {
                return Err(ApiError::invalid(
                    "ShardCount is required for a provisioned stream.",
                ));
            }
        };
        if shard_count == 0 || shard_count > MAX_SHARDS_PER_STREAM {
            return Err(ApiError::invalid(format!(
                "ShardCount must be between 1 and {MAX_SHARDS_PER_STREAM}, got {shard_count}."
            )));
        }
        self.propose_meta(&MetaCommand::CreateStream {
            name: name.to_string(),
            shard_count,
            on_demand,
            now_ms: streamd_shard::now_ms(),
            region: self.region.clone(),
        })
        .await?;
        Ok(v1::CreateStreamResponse {})
    }

    #[tracing::instrument(name = "gateway.delete_stream", skip_all, fields(stream = %req.stream_name))]
    pub async fn delete_stream(
        &self,
        req: v1::DeleteStreamRequest,
    ) -> Result<v1::DeleteStreamResponse, ApiError> {
        stream_name(&req.stream_name)?;
        let consumers = self.stream(&req.stream_name)?.consumers.len();
        if consumers > 0 && !req.enforce_consumer_deletion {
            return Err(ApiError::new(
                ErrorCode::ResourceInUse,
                format!(
                    "Stream {} has {consumers} registered consumers; deregister them or set EnforceConsumerDeletion.",
                    req.stream_name
                ),
            ));
        }
        self.propose_meta(&MetaCommand::DeleteStream {
            name: req.stream_name,
        })
        .await?;
        Ok(v1::DeleteStreamResponse {})
    }

    #[tracing::instrument(name = "gateway.describe_stream", skip_all, fields(stream = %req.stream_name))]
    pub fn describe_stream(
        &self,
        req: v1::DescribeStreamRequest,
    ) -> Result<v1::DescribeStreamResponse, ApiError> {
        let s = self.stream(&req.stream_name)?;
        let limit = req.limit.unwrap_or(100);
        if !(1..=10_000).contains(&limit) {
            return Err(ApiError::invalid(format!(
                "Limit must be between 1 and 10000, got {limit}."
            )));
        }
        let start = match &req.exclusive_start_shard_id {
            Some(id) => Some(
                id.parse::<ShardId>()
                    .map_err(|e| ApiError::invalid(e.to_string()))?,
            ),
            None => None,
        };
        let after: Vec<&ShardMeta> = s
            .shards
            .iter()
            .filter(|x| x.is_listed())
            .filter(|x| start.is_none_or(|st| x.shard_id > st))
            .collect();
        let has_more = after.len() > limit as usize;
        let shards = after
            .into_iter()
            .take(limit as usize)
            .map(|x| self.shard_view(x))
            .collect();
        Ok(v1::DescribeStreamResponse {
            stream_description: Some(self.description(&s, shards, has_more)),
        })
    }

    #[tracing::instrument(name = "gateway.describe_stream_summary", skip_all, fields(stream = %req.stream_name))]
    pub fn describe_stream_summary(
        &self,
        req: v1::DescribeStreamSummaryRequest,
    ) -> Result<v1::DescribeStreamSummaryResponse, ApiError> {
        let s = self.stream(&req.stream_name)?;
        Ok(v1::DescribeStreamSummaryResponse {
            stream_description_summary: Some(self.description(&s, Vec::new(), false)),
        })
    }

    #[tracing::instrument(name = "gateway.list_streams", skip_all)]
    pub fn list_streams(
        &self,
        req: v1::ListStreamsRequest,
    ) -> Result<v1::ListStreamsResponse, ApiError> {
        let limit = req.limit.unwrap_or(100);
        if !(1..=10_000).contains(&limit) {
            return Err(ApiError::invalid(format!(
                "Limit must be between 1 and 10000, got {limit}."
            )));
        }
        let meta = self.meta.read();
        let after: Vec<&StreamMeta> = meta
            .streams
            .values()
            .map(|s| &**s)
            .filter(|s| {
                req.exclusive_start_stream_name
                    .as_ref()
                    .is_none_or(|x| s.name.as_str() > x.as_str())
            })
            .collect();
        let has_more = after.len() > limit as usize;
        let page: Vec<&StreamMeta> = after.into_iter().take(limit as usize).collect();
        Ok(v1::ListStreamsResponse {
            stream_names: page.iter().map(|s| s.name.clone()).collect(),
            has_more_streams: has_more,
            stream_summaries: page
                .iter()
                .map(|s| v1::StreamSummary {
                    stream_name: s.name.clone(),
                    stream_arn: s.arn.clone(),
                    stream_status: status(s.status) as i32,
                    stream_mode: mode(s.on_demand) as i32,
                    stream_creation_timestamp_ms: s.created_ms,
                })
                .collect(),
        })
    }

    #[tracing::instrument(name = "gateway.list_shards", skip_all)]
    pub fn list_shards(
        &self,
        req: v1::ListShardsRequest,
    ) -> Result<v1::ListShardsResponse, ApiError> {
        let max = req.max_results.unwrap_or(1000);
        if !(1..=10_000).contains(&max) {
            return Err(ApiError::invalid(format!(
                "MaxResults must be between 1 and 10000, got {max}."
            )));
        }
        let (name, start, filter) = match (&req.next_token, &req.stream_name) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "NextToken and StreamName cannot be provided together.",
                ));
            }
            (Some(tok), None) => {
                let raw = URL_SAFE_NO_PAD
                    .decode(tok.as_bytes())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| ApiError::invalid("Invalid NextToken."))?;
                let mut parts = raw.splitn(3, '|');
                let (Some(n), Some(id)) = (parts.next(), parts.next()) else {
                    return Err(ApiError::invalid("Invalid NextToken."));
                };
                let id: ShardId = id
                    .parse()
                    .map_err(|_| ApiError::invalid("Invalid NextToken."))?;
                let filter = match parts.next() {
                    Some(f) => Some(
                        ShardListFilter::decode(f)
                            .ok_or_else(|| ApiError::invalid("Invalid NextToken."))?,
                    ),
                    None => None,
                };
                (n.to_string(), Some(id), filter)
            }
            (None, Some(n)) => {
                let mut start = match &req.exclusive_start_shard_id {
                    Some(id) => Some(
                        id.parse::<ShardId>()
                            .map_err(|e| ApiError::invalid(e.to_string()))?,
                    ),
                    None => None,
                };
                let filter = match &req.shard_filter {
                    Some(f) => Some(ShardListFilter::from_request(f)?),
                    None => None,
                };
                if let Some(ShardListFilter::AfterShardId(id)) = filter {
                    start = Some(id);
                }
                (n.clone(), start, filter)
            }
            (None, None) => {
                return Err(ApiError::invalid(
                    "Either NextToken or StreamName should be provided.",
                ));
            }
        };
        let s = self.stream(&name)?;
        let after: Vec<&ShardMeta> = s
            .shards
            .iter()
            .filter(|x| x.is_listed())
            .filter(|x| start.is_none_or(|st| x.shard_id > st))
            .filter(|x| filter.is_none_or(|f| f.admits(&s, x)))
            .collect();
        let has_more = after.len() > max as usize;
        let page: Vec<&ShardMeta> = after.into_iter().take(max as usize).collect();
        let next_token = match (has_more, page.last()) {
            (true, Some(last)) => {
                let f = filter
                    .map(|f| format!("|{}", f.encode()))
                    .unwrap_or_default();
                Some(URL_SAFE_NO_PAD.encode(format!("{}|{}{f}", s.name, last.shard_id)))
            }
            _ => None,
        };
        Ok(v1::ListShardsResponse {
            shards: page.into_iter().map(|x| self.shard_view(x)).collect(),
            next_token,
        })
    }

    #[tracing::instrument(name = "gateway.update_retention", skip_all, fields(stream = %req.stream_name))]
    pub async fn update_retention(
        &self,
        req: v1::UpdateRetentionRequest,
        increase: bool,
    ) -> Result<v1::UpdateRetentionResponse, ApiError> {
        stream_name(&req.stream_name)?;
        if !self.meta.read().streams.contains_key(&req.stream_name) {
            return Err(not_found(&req.stream_name));
        }
        self.propose_meta(&MetaCommand::SetRetention {
            name: req.stream_name,
            hours: req.retention_period_hours,
            increase,
        })
        .await?;
        Ok(v1::UpdateRetentionResponse {})
    }

    #[tracing::instrument(name = "gateway.cluster_status", skip_all)]
    pub fn cluster_status(&self) -> Result<v1::ClusterStatusResponse, ApiError> {
        let meta = self.meta.read();
        let meta_status = self
            .host
            .group(streamd_raft::META_GROUP)
            .map(|g| g.status());
        let voters = meta_status
            .as_ref()
            .map(|s| s.voters.clone())
            .unwrap_or_default();
        let nodes: Vec<v1::NodeStatus> = meta
            .nodes
            .values()
            .map(|n| v1::NodeStatus {
                node_id: n.id,
                address: n.addr.clone(),
                voter: voters.contains(&n.id),
                groups: meta
                    .all_shards()
                    .filter(|(_, sh)| sh.replicas.contains(&n.id))
                    .count() as u32,
                // From the shard map's leader hints: every group's leader reports itself
                // there, while this node only sees the leaders of the groups it hosts.
                leaders: meta
                    .all_shards()
                    .filter(|(_, sh)| sh.leader == Some(n.id))
                    .count() as u32,
                draining: meta.draining.contains(&n.id),
            })
            .collect();
        Ok(v1::ClusterStatusResponse {
            metadata_leader: meta_status.and_then(|s| s.leader),
            nodes,
        })
    }
}

impl Gateway {
    #[tracing::instrument(name = "gateway.drain_node", skip_all, fields(node = req.node_id))]
    pub async fn drain_node(
        &self,
        req: v1::DrainNodeRequest,
    ) -> Result<v1::DrainNodeResponse, ApiError> {
        self.propose_meta(&MetaCommand::DrainNode { id: req.node_id })
            .await?;
        Ok(v1::DrainNodeResponse {})
    }
}

/// Errors a stream-level call can return for an unknown shard.
pub(crate) fn shard_not_found(stream: &str, shard: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ResourceNotFound,
        format!("Shard {shard} in stream {stream} under account 000000000000 does not exist"),
    )
}

/// ListShards' ShardFilter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ShardListFilter {
    AfterShardId(ShardId),
    /// The shards holding the oldest records: those whose parents are gone.
    AtTrimHorizon,
    /// Every shard still kept.
    FromTrimHorizon,
    /// The open shards.
    AtLatest,
    /// The shards open at the time.
    AtTimestamp(i64),
    /// The shards open at the time or opened since.
    FromTimestamp(i64),
}

impl ShardListFilter {
    fn from_request(f: &v1::ShardFilter) -> Result<ShardListFilter, ApiError> {
        let ts = || {
            f.timestamp_ms.ok_or_else(|| {
                ApiError::invalid("ShardFilter Timestamp is required for this type.")
            })
        };
        Ok(match v1::ShardFilterType::try_from(f.r#type) {
            Ok(v1::ShardFilterType::AfterShardId) => {
                let id = f.shard_id.as_deref().ok_or_else(|| {
                    ApiError::invalid("ShardFilter ShardId is required for AFTER_SHARD_ID.")
                })?;
                ShardListFilter::AfterShardId(
                    id.parse().map_err(|e: streamd_proto::ids::IdError| {
                        ApiError::invalid(e.to_string())
                    })?,
                )
            }
            Ok(v1::ShardFilterType::AtTrimHorizon) => ShardListFilter::AtTrimHorizon,
            Ok(v1::ShardFilterType::FromTrimHorizon) => ShardListFilter::FromTrimHorizon,
            Ok(v1::ShardFilterType::AtLatest) => ShardListFilter::AtLatest,
            Ok(v1::ShardFilterType::AtTimestamp) => ShardListFilter::AtTimestamp(ts()?),
            Ok(v1::ShardFilterType::FromTimestamp) => ShardListFilter::FromTimestamp(ts()?),
            _ => {
                return Err(ApiError::new(
                    ErrorCode::Validation,
                    "ShardFilter Type must be one of AFTER_SHARD_ID, AT_TRIM_HORIZON, FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, FROM_TIMESTAMP.",
                ));
            }
        })
    }

    fn admits(self, stream: &StreamMeta, sh: &ShardMeta) -> bool {
        let parent_kept = || {
            [sh.parent, sh.adjacent_parent]
                .into_iter()
                .flatten()
                .any(|p| stream.shard(p).is_some())
        };
        let open_at = |t: i64| sh.closed_ms.is_none_or(|c| c > t);
        match self {
            ShardListFilter::AfterShardId(id) => sh.shard_id > id,
            ShardListFilter::AtTrimHorizon => !parent_kept(),
            ShardListFilter::FromTrimHorizon => true,
            ShardListFilter::AtLatest => sh.is_open(),
            // Before the stream's first shards existed, they are the ones "open" at the time.
            ShardListFilter::AtTimestamp(t) => open_at(t) && (sh.created_ms <= t || !parent_kept()),
            ShardListFilter::FromTimestamp(t) => open_at(t),
        }
    }

    /// For a NextToken, so the next page applies the same filter.
    fn encode(self) -> String {
        match self {
            ShardListFilter::AfterShardId(id) => format!("after:{}", id.0),
            ShardListFilter::AtTrimHorizon => "ath".into(),
            ShardListFilter::FromTrimHorizon => "fth".into(),
            ShardListFilter::AtLatest => "latest".into(),
            ShardListFilter::AtTimestamp(t) => format!("at:{t}"),
            ShardListFilter::FromTimestamp(t) => format!("from:{t}"),
        }
    }

    fn decode(s: &str) -> Option<ShardListFilter> {
        Some(match s.split_once(':') {
            Some(("after", v)) => ShardListFilter::AfterShardId(ShardId(v.parse().ok()?)),
            Some(("at", v)) => ShardListFilter::AtTimestamp(v.parse().ok()?),
            Some(("from", v)) => ShardListFilter::FromTimestamp(v.parse().ok()?),
            None if s == "ath" => ShardListFilter::AtTrimHorizon,
            None if s == "fth" => ShardListFilter::FromTrimHorizon,
            None if s == "latest" => ShardListFilter::AtLatest,
            _ => return None,
        })
    }
}
