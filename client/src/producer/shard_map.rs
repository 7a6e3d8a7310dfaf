//! The producer's view of a stream: which open shard owns each hash key, which node leads it,
//! and where that node listens. Built from ListShards and ClusterStatus; pure lookups.

use std::collections::HashMap;

use streamd_proto::ids::HashKey;
use streamd_proto::v1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MappedShard {
    pub(crate) shard_id: String,
    pub(crate) start: u128,
    pub(crate) end: u128,
    pub(crate) leader: Option<u64>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ShardMap {
    /// Open shards, sorted by starting hash key.
    shards: Vec<MappedShard>,
    /// Node id to gRPC address.
    nodes: HashMap<u64, String>,
}

impl ShardMap {
    /// The open shards of `shards` (closed ones have an ending sequence number) and the nodes'
    /// addresses. A shard whose range does not parse is a server bug, reported as such.
    pub(crate) fn new(shards: &[v1::Shard], nodes: &[v1::NodeStatus]) -> Result<ShardMap, String> {
        let mut open = Vec::new();
        for s in shards {
            let closed = s
                .sequence_number_range
                .as_ref()
                .is_some_and(|r| r.ending_sequence_number.is_some());
            if closed {
                continue;
            }
            let range = s
                .hash_key_range
                .as_ref()
                .ok_or_else(|| format!("shard {} has no hash key range", s.shard_id))?;
            let parse = |k: &str| {
                k.parse::<HashKey>()
                    .map(|h| h.0)
                    .map_err(|e| format!("shard {}: {e}", s.shard_id))
            };
            open.push(MappedShard {
                shard_id: s.shard_id.clone(),
                start: parse(&range.starting_hash_key)?,
                end: parse(&range.ending_hash_key)?,
                leader: s.leader,
            });
        }
        open.sort_by_key(|s| s.start);
        Ok(ShardMap {
            shards: open,
            nodes: nodes
                .iter()
                .filter(|n| !n.address.is_empty())
                .map(|n| (n.node_id, n.address.clone()))
                .collect(),
        })
    }

    /// The open shard whose range holds `hash_key`, if the map covers it.
    pub(crate) fn shard_for(&self, hash_key: u128) -> Option<&MappedShard> {
        let i = self.shards.partition_point(|s| s.start <= hash_key);
        let s = self.shards.get(i.checked_sub(1)?)?;
        (hash_key <= s.end).then_some(s)
    }

    pub(crate) fn shard(&self, shard_id: &str) -> Option<&MappedShard> {
        self.shards.iter().find(|s| s.shard_id == shard_id)
    }

    /// The address of the node leading `shard_id`, when both are known.
    pub(crate) fn leader_address(&self, shard_id: &str) -> Option<(u64, &str)> {
        let leader = self.shard(shard_id)?.leader?;
        self.nodes.get(&leader).map(|a| (leader, a.as_str()))
    }

    /// Drops what the map says about `shard_id`'s leader, after that node failed a request.
    pub(crate) fn forget_leader(&mut self, shard_id: &str) {
        if let Some(s) = self.shards.iter_mut().find(|s| s.shard_id == shard_id) {
            s.leader = None;
        }
    }

    /// Whether both maps split the key space into the same shards (leaders aside).
    pub(crate) fn same_shards(&self, other: &ShardMap) -> bool {
        self.shards.len() == other.shards.len()
            && self
                .shards
                .iter()
                .zip(&other.shards)
                .all(|(a, b)| a.shard_id == b.shard_id && a.start == b.start && a.end == b.end)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use streamd_proto::ids::HashKeyRange;

    use super::*;

    fn shard(id: u32, r: HashKeyRange, leader: Option<u64>, closed: bool) -> v1::Shard {
        v1::Shard {
            shard_id: format!("shardId-{id:012}"),
            hash_key_range: Some(v1::HashKeyRange {
                starting_hash_key: r.start.to_string(),
                ending_hash_key: r.end.to_string(),
            }),
            sequence_number_range: Some(v1::SequenceNumberRange {
                starting_sequence_number: "0".into(),
                ending_sequence_number: closed.then(|| "9".into()),
            }),
            leader,
            ..Default::default()
        }
    }

    fn node(id: u64) -> v1::NodeStatus {
        v1::NodeStatus {
            node_id: id,
            address: format!("127.0.0.1:{}", 50050 + id),
            ..Default::default()
        }
    }

    #[test]
    fn every_key_lands_in_the_open_shard_the_server_would_pick() {
        let ranges = HashKeyRange::split_even(8);
        // A closed parent covering everything must be ignored.
        let mut shards = vec![shard(99, HashKeyRange::FULL, Some(1), true)];
        shards.extend(
            ranges
                .iter()
                .enumerate()
                .rev()
                .map(|(i, r)| shard(i as u32, *r, Some(i as u64 % 3 + 1), false)),
        );
        let map = ShardMap::new(&shards, &[node(1), node(2), node(3)]).unwrap();
        for key in (0..2000).map(|i| format!("key-{i}")) {
            let hk = HashKey::of_partition_key(&key);
            let want = ranges.iter().position(|r| r.contains(hk)).unwrap();
            let got = map.shard_for(hk.0).unwrap();
            assert_eq!(got.shard_id, format!("shardId-{want:012}"), "{key}");
        }
        assert_eq!(map.shard_for(0).unwrap().shard_id, "shardId-000000000000");
        assert_eq!(
            map.shard_for(u128::MAX).unwrap().shard_id,
            "shardId-000000000007"
        );
    }

    #[test]
    fn leaders_resolve_to_addresses_and_can_be_forgotten() {
        let shards = vec![shard(0, HashKeyRange::FULL, Some(2), false)];
        let mut map = ShardMap::new(&shards, &[node(1), node(2)]).unwrap();
        assert_eq!(
            map.leader_address("shardId-000000000000"),
            Some((2, "127.0.0.1:50052"))
        );
        map.forget_leader("shardId-000000000000");
        assert_eq!(map.leader_address("shardId-000000000000"), None);
        let unknown_node = ShardMap::new(&shards, &[node(1)]).unwrap();
        assert_eq!(unknown_node.leader_address("shardId-000000000000"), None);
    }

    #[test]
    fn gaps_are_not_covered_and_maps_compare_by_shards() {
        let r = HashKeyRange::split_even(2);
        let one = ShardMap::new(&[shard(0, r[0], None, false)], &[]).unwrap();
        assert!(one.shard_for(r[1].start.0).is_none());
        let both = ShardMap::new(
            &[shard(0, r[0], None, false), shard(1, r[1], Some(1), false)],
            &[],
        )
        .unwrap();
        let both_other_leader = ShardMap::new(
            &[shard(0, r[0], Some(3), false), shard(1, r[1], None, false)],
            &[],
        )
        .unwrap();
        assert!(!one.same_shards(&both));
        assert!(both.same_shards(&both_other_leader));
    }
}
