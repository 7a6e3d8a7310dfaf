//! The replicated metadata.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use streamd_proto::ids::{HashKey, HashKeyRange, ShardId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: u64,
    /// gRPC address peers and clients reach the node at.
    pub addr: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamStatus {
    Creating,
    Active,
    Updating,
    Deleting,
}

impl StreamStatus {
    /// As Kinesis spells it.
    pub fn name(self) -> &'static str {
        match self {
            StreamStatus::Creating => "CREATING",
            StreamStatus::Active => "ACTIVE",
            StreamStatus::Updating => "UPDATING",
            StreamStatus::Deleting => "DELETING",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMeta {
    pub shard_id: ShardId,
    pub group_id: u64,
    pub range: HashKeyRange,
    pub parent: Option<ShardId>,
    pub adjacent_parent: Option<ShardId>,
    pub replicas: Vec<u64>,
    pub starting_seq: u128,
    /// Set once the shard is closed.
    pub ending_seq: Option<u128>,
    /// The shard's group elected a leader at least once.
    pub ready: bool,
    /// A child of a reshard still in progress: its group exists but takes no writes, and no
    /// listing shows it, until the reshard commits.
    pub pending: bool,
    pub created_ms: i64,
    /// When the reshard that closed the shard committed.
    pub closed_ms: Option<i64>,
    /// The node that last reported leading the shard's group, and in which Raft term: a hint
    /// (it lags a leader change by one metadata entry) that leader balancing and ClusterStatus
    /// read, since no single node sees every group's leader.
    pub leader: Option<u64>,
    pub leader_term: u64,
}

impl ShardMeta {
    /// Takes writes: committed and not closed.
    pub fn is_open(&self) -> bool {
        self.ending_seq.is_none() && !self.pending
    }

    /// Shown by DescribeStream and ListShards: everything but pending children.
    pub fn is_listed(&self) -> bool {
        !self.pending
    }
}

/// A reshard in progress: one wave of splits and merges whose parents are sealed and whose
/// children open together, in one metadata entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReshardOp {
    /// Unique in the cluster; the Seal entries in the parents' logs carry it.
    pub id: u64,
    /// UpdateShardCount's target: once this wave commits, the next wave toward it is planned.
    pub target: Option<u32>,
    pub steps: Vec<ReshardStep>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReshardStep {
    pub parents: Vec<ShardId>,
    pub children: Vec<ShardId>,
}

impl ReshardOp {
    pub fn parents(&self) -> impl Iterator<Item = ShardId> + '_ {
        self.steps.iter().flat_map(|s| s.parents.iter().copied())
    }

    pub fn children(&self) -> impl Iterator<Item = ShardId> + '_ {
        self.steps.iter().flat_map(|s| s.children.iter().copied())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMeta {
    pub name: String,
    pub arn: String,
    pub status: StreamStatus,
    pub on_demand: bool,
    pub retention_hours: u32,
    pub created_ms: i64,
    pub shards: Vec<ShardMeta>,
    pub next_shard_id: u64,
    /// Grows whenever the shard map of this stream changes; never reused.
    pub map_epoch: u64,
    pub tags: BTreeMap<String, String>,
    /// Shard-level metrics enabled for export (Kinesis's enhanced monitoring).
    pub shard_level_metrics: BTreeSet<String>,
    /// Largest record (data plus partition key) a put may carry, in KiB.
    pub max_record_size_kib: u32,
    /// Warm throughput of an on-demand stream, in MiB/s.
    pub warm_throughput_mibps: Option<u32>,
    pub consumers: Vec<ConsumerMeta>,
    /// The reshard in progress, if any (the stream is UPDATING meanwhile).
    pub reshard: Option<ReshardOp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConsumerStatus {
    Creating,
    Active,
    Deleting,
}

/// An enhanced fan-out consumer registered with a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerMeta {
    pub name: String,
    /// `<stream ARN>/consumer/<name>:<creation epoch seconds>`.
    pub arn: String,
    pub status: ConsumerStatus,
    pub created_ms: i64,
}

impl StreamMeta {
    /// The open shard whose hash key range holds `key`.
    pub fn shard_for(&self, key: HashKey) -> Option<&ShardMeta> {
        self.shards
            .iter()
            .find(|s| s.is_open() && s.range.contains(key))
    }

    pub fn shard(&self, id: ShardId) -> Option<&ShardMeta> {
        self.shards.iter().find(|s| s.shard_id == id)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaState {
    /// Key for shard-iterator MACs, chosen once when the cluster forms.
    pub cluster_secret: Vec<u8>,
    pub nodes: BTreeMap<u64, NodeInfo>,
    /// Shared, not owned: publishing the applied state after each batch and the driver's copy
    /// of it on every pass clone one pointer per stream, and a command clones only the stream
    /// it changes (`stream_mut`), so neither grows with the number of shards.
    pub streams: BTreeMap<String, Arc<StreamMeta>>,
    /// Next Raft group id for a shard; group 0 is this metadata group.
    pub next_group_id: u64,
    /// Replication factor for new shards (capped by the node count).
    pub replication_factor: usize,
    /// Resource policies (JSON documents) by stream or consumer ARN.
    pub resource_policies: BTreeMap<String, String>,
    /// The account's minimum throughput billing commitment: (status, since epoch ms).
    pub billing_commitment: Option<(String, i64)>,
    /// Next reshard operation id.
    pub next_op_id: u64,
    /// Nodes being drained: their replicas and leaderships move away, then they are removed.
    pub draining: BTreeSet<u64>,
    /// Ids of nodes removed from the cluster: never given to a joining node again, so a stale
    /// node coming back with an old id cannot pass for a new one.
    pub removed: BTreeSet<u64>,
    /// Replica moves whose group has not yet switched its voters: group -> (from, to). Bounds
    /// how many rebalancing moves run at once and keeps a group to one move at a time.
    pub moving: BTreeMap<u64, (u64, u64)>,
    /// Consumer-group leases by (application, stream).
    pub leases: BTreeMap<(String, String), crate::leases::LeaseTable>,
}

impl MetaState {
    /// Every shard of every stream, with its stream name.
    pub fn all_shards(&self) -> impl Iterator<Item = (&StreamMeta, &ShardMeta)> {
        self.streams
            .values()
            .map(|s| &**s)
            .flat_map(|s| s.shards.iter().map(move |sh| (s, sh)))
    }

    /// The stream named `name`, for a change: copied first if a published state still
    /// shares it.
    pub fn stream_mut(&mut self, name: &str) -> Option<&mut StreamMeta> {
        self.streams.get_mut(name).map(Arc::make_mut)
    }

    /// The stream holding group `group`'s shard, for a change.
    pub fn stream_of_group_mut(&mut self, group: u64) -> Option<&mut StreamMeta> {
        let name = self.shard_by_group(group).map(|(s, _)| s.name.clone())?;
        self.stream_mut(&name)
    }

    /// The stream a consumer ARN belongs to, for a change.
    pub fn stream_of_consumer_mut(&mut self, arn: &str) -> Option<&mut StreamMeta> {
        let name = self.consumer_by_arn(arn).map(|(s, _)| s.name.clone())?;
        self.stream_mut(&name)
    }

    pub fn stream_by_arn(&self, arn: &str) -> Option<&StreamMeta> {
        self.streams.values().map(|s| &**s).find(|s| s.arn == arn)
    }

    /// The stream and consumer a consumer ARN names.
    pub fn consumer_by_arn(&self, arn: &str) -> Option<(&StreamMeta, &ConsumerMeta)> {
        self.streams
            .values()
            .map(|s| &**s)
            .find_map(|s| s.consumers.iter().find(|c| c.arn == arn).map(|c| (s, c)))
    }

    /// Whether node `id` is a replica of some shard in the map, or is being moved out of a
    /// group whose voters still include it.
    pub fn holds_or_leaves_a_group(&self, id: u64) -> bool {
        self.all_shards().any(|(_, sh)| sh.replicas.contains(&id))
            || self.moving.values().any(|(from, _)| *from == id)
    }

    pub fn shard_by_group(&self, group: u64) -> Option<(&StreamMeta, &ShardMeta)> {
        self.all_shards().find(|(_, sh)| sh.group_id == group)
    }

    /// Every shard by its group id, for a pass that looks up many groups: one scan, where
    /// [`Self::shard_by_group`] per group would cost a scan each (quadratic in the shards).
    pub fn shards_by_group(&self) -> HashMap<u64, (&StreamMeta, &ShardMeta)> {
        self.all_shards()
            .map(|(s, sh)| (sh.group_id, (s, sh)))
            .collect()
    }

    /// Nodes new replicas may be placed on: every member not draining, ascending.
    pub fn placement_nodes(&self) -> Vec<u64> {
        self.nodes
            .keys()
            .copied()
            .filter(|n| !self.draining.contains(n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::MetaCommand;

    #[test]
    fn partition_keys_route_by_md5_into_the_owning_shard() {
        let mut s = MetaState::default();
        let nodes = vec![NodeInfo {
            id: 1,
            addr: "a".into(),
        }];
        s.apply(MetaCommand::Init {
            secret: vec![1],
            nodes,
            replication_factor: 1,
        })
        .unwrap();
        s.apply(MetaCommand::CreateStream {
            name: "r".into(),
            shard_count: 4,
            on_demand: false,
            now_ms: 0,
            region: "us-east-1".into(),
        })
        .unwrap();
        let stream = &s.streams["r"];
        // MD5("a") = 0x0cc1..., in the first quarter of the key space; MD5("b") = 0x92eb..., in
        // the third.
        let a = stream.shard_for(HashKey::of_partition_key("a")).unwrap();
        let b = stream.shard_for(HashKey::of_partition_key("b")).unwrap();
        assert_eq!(a.shard_id, ShardId(0));
        assert_eq!(b.shard_id, ShardId(2));
        for k in [HashKey(0), HashKey(u128::MAX / 2), HashKey::MAX] {
            let owners = stream
                .shards
                .iter()
                .filter(|sh| sh.range.contains(k))
                .count();
            assert_eq!(owners, 1, "{k} must have exactly one owner");
        }
    }
}
