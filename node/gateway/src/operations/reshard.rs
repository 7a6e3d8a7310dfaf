//! SplitShard, MergeShards and UpdateShardCount: validated here, planned by the metadata group,
//! carried out by its leader's controller. Each returns once the plan is committed; the stream
//! is UPDATING until the children open.

use streamd_meta::{MetaCommand, ReshardRequest};
use streamd_proto::ids::{HashKey, ShardId};
use streamd_proto::v1;
use streamd_proto::{ApiError, ErrorCode};

use super::stream_name;
use crate::Gateway;

fn shard_id(field: &str, v: &str) -> Result<ShardId, ApiError> {
    v.parse::<ShardId>()
        .map_err(|e| ApiError::invalid(format!("{field}: {e}")))
}

impl Gateway {
    async fn reshard(&self, name: &str, request: ReshardRequest) -> Result<(), ApiError> {
        stream_name(name)?;
        self.stream(name)?;
        self.propose_meta(&MetaCommand::Reshard {
            name: name.to_string(),
            request,
            now_ms: streamd_shard::now_ms(),
        })
        .await?;
        Ok(())
    }

    #[tracing::instrument(name = "gateway.split_shard", skip_all, fields(stream = %req.stream_name, shard = %req.shard_to_split))]
    pub async fn split_shard(
        &self,
        req: v1::SplitShardRequest,
    ) -> Result<v1::SplitShardResponse, ApiError> {
        let shard = shard_id("ShardToSplit", &req.shard_to_split)?;
        let at = req.new_starting_hash_key.parse::<HashKey>().map_err(|_| {
            ApiError::invalid(format!(
                "NewStartingHashKey must be a decimal integer in [0, 2^128-1], got {:?}.",
                req.new_starting_hash_key
            ))
        })?;
        self.reshard(&req.stream_name, ReshardRequest::Split { shard, at })
            .await?;
        Ok(v1::SplitShardResponse {})
    }

    #[tracing::instrument(name = "gateway.merge_shards", skip_all, fields(stream = %req.stream_name))]
    pub async fn merge_shards(
        &self,
        req: v1::MergeShardsRequest,
    ) -> Result<v1::MergeShardsResponse, ApiError> {
        let shard = shard_id("ShardToMerge", &req.shard_to_merge)?;
        let adjacent = shard_id("AdjacentShardToMerge", &req.adjacent_shard_to_merge)?;
        if shard == adjacent {
            return Err(ApiError::invalid(format!(
                "ShardToMerge and AdjacentShardToMerge are both {shard}."
            )));
        }
        self.reshard(&req.stream_name, ReshardRequest::Merge { shard, adjacent })
            .await?;
        Ok(v1::MergeShardsResponse {})
    }

    #[tracing::instrument(name = "gateway.update_shard_count", skip_all, fields(stream = %req.stream_name, target = req.target_shard_count))]
    pub async fn update_shard_count(
        &self,
        req: v1::UpdateShardCountRequest,
    ) -> Result<v1::UpdateShardCountResponse, ApiError> {
        if req.scaling_type != v1::ScalingType::UniformScaling as i32 {
            return Err(ApiError::new(
                ErrorCode::Validation,
                "1 validation error detected: Value at 'scalingType' failed to satisfy constraint: Member must satisfy enum value set: [UNIFORM_SCALING]",
            ));
        }
        let s = self.stream(&req.stream_name)?;
        let current = s.shards.iter().filter(|x| x.is_open()).count() as u32;
        self.reshard(
            &req.stream_name,
            ReshardRequest::Scale {
                target: req.target_shard_count,
            },
        )
        .await?;
        Ok(v1::UpdateShardCountResponse {
            stream_name: s.name.clone(),
            current_shard_count: current,
            target_shard_count: req.target_shard_count,
            stream_arn: s.arn.clone(),
        })
    }
}
