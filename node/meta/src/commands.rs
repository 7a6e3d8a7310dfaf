//! Every change to the metadata, and how it is applied. `apply` is deterministic: it reads only
//! the state and the command (times come inside the command, stamped by the proposer).

use serde::{Deserialize, Serialize};
use streamd_proto::ErrorCode;
use streamd_proto::ids::{HashKeyRange, SequenceNumber, ShardId};
use streamd_proto::limits::{MAX_RETENTION_HOURS, MIN_RETENTION_HOURS};

use crate::placement::place_replicas;
use crate::state::{MetaState, NodeInfo, ShardMeta, StreamMeta, StreamStatus};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MetaCommand {
    /// Forms the cluster: its secret and first nodes. Ignored once the cluster has formed.
    Init {
        secret: Vec<u8>,
        nodes: Vec<NodeInfo>,
        replication_factor: usize,
    },
    CreateStream {
        name: String,
        shard_count: u32,
        on_demand: bool,
        now_ms: i64,
        region: String,
    },
    DeleteStream {
        name: String,
    },
    /// A shard group elected a leader: the stream turns ACTIVE when all its shards have.
    ShardReady {
        group_id: u64,
    },
    SetRetention {
        name: String,
        hours: u32,
        increase: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaReply {
    Done,
}

/// The applied outcome: a reply, or a catalogue error name and message.
pub type MetaResult = Result<MetaReply, (String, String)>;

fn err(code: ErrorCode, msg: impl Into<String>) -> MetaResult {
    Err((code.name().to_string(), msg.into()))
}

fn not_found(name: &str) -> MetaResult {
    err(
        ErrorCode::ResourceNotFound,
        format!("Stream {name} under account 000000000000 not found."),
    )
}

impl MetaState {
    pub fn apply(&mut self, cmd: MetaCommand) -> MetaResult {
        match cmd {
            MetaCommand::Init {
                secret,
                nodes,
                replication_factor,
            } => {
                if self.cluster_secret.is_empty() {
                    self.cluster_secret = secret;
                    self.replication_factor = replication_factor.max(1);
                    self.next_group_id = self.next_group_id.max(1);
                    for n in nodes {
                        self.nodes.insert(n.id, n);
                    }
                }
                Ok(MetaReply::Done)
            }
            MetaCommand::CreateStream {
                name,
                shard_count,
                on_demand,
                now_ms,
                region,
            } => {
                if self.streams.contains_key(&name) {
                    return err(
                        ErrorCode::ResourceInUse,
                        format!("Stream {name} under account 000000000000 already exists."),
                    );
                }
                let nodes: Vec<u64> = self.nodes.keys().copied().collect();
                let mut shards = Vec::new();
                for (i, range) in HashKeyRange::split_even(shard_count)
                    .into_iter()
                    .enumerate()
                {
                    let group_id = self.next_group_id.max(1);
                    self.next_group_id = group_id + 1;
                    shards.push(ShardMeta {
                        shard_id: ShardId(i as u64),
                        group_id,
                        range,
                        parent: None,
                        adjacent_parent: None,
                        replicas: place_replicas(&nodes, self.replication_factor, group_id),
                        starting_seq: SequenceNumber::first_of_group(group_id).0,
                        ending_seq: None,
                        ready: false,
                    });
                }
                let arn = format!("arn:aws:kinesis:{region}:000000000000:stream/{name}");
                self.streams.insert(
                    name.clone(),
                    StreamMeta {
                        name,
                        arn,
                        status: StreamStatus::Creating,
                        on_demand,
                        retention_hours: streamd_proto::limits::DEFAULT_RETENTION_HOURS,
                        created_ms: now_ms,
                        next_shard_id: u64::from(shard_count),
                        shards,
                        map_epoch: 1,
                    },
                );
                Ok(MetaReply::Done)
            }
            MetaCommand::DeleteStream { name } => {
                if self.streams.remove(&name).is_none() {
                    return not_found(&name);
                }
                Ok(MetaReply::Done)
            }
            MetaCommand::ShardReady { group_id } => {
                for s in self.streams.values_mut() {
                    if let Some(sh) = s.shards.iter_mut().find(|sh| sh.group_id == group_id) {
                        sh.ready = true;
                        if s.status == StreamStatus::Creating && s.shards.iter().all(|x| x.ready) {
                            s.status = StreamStatus::Active;
                        }
                    }
                }
                Ok(MetaReply::Done)
            }
            MetaCommand::SetRetention {
                name,
                hours,
                increase,
            } => {
                let Some(s) = self.streams.get_mut(&name) else {
                    return not_found(&name);
                };
                if !(MIN_RETENTION_HOURS..=MAX_RETENTION_HOURS).contains(&hours) {
                    return err(
                        ErrorCode::InvalidArgument,
                        format!(
                            "Retention period must be between {MIN_RETENTION_HOURS} and {MAX_RETENTION_HOURS} hours, got {hours}."
                        ),
                    );
                }
                if increase && hours < s.retention_hours {
                    return err(
                        ErrorCode::InvalidArgument,
                        format!(
                            "Requested retention period ({hours} hours) for stream {name} can not be shorter than existing retention period ({} hours). Use DecreaseRetentionPeriod API.",
                            s.retention_hours
                        ),
                    );
                }
                if !increase && hours > s.retention_hours {
                    return err(
                        ErrorCode::InvalidArgument,
                        format!(
                            "Requested retention period ({hours} hours) for stream {name} can not be longer than existing retention period ({} hours). Use IncreaseRetentionPeriod API.",
                            s.retention_hours
                        ),
                    );
                }
                s.retention_hours = hours;
                Ok(MetaReply::Done)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn formed(n: u64) -> MetaState {
        let mut s = MetaState::default();
        let nodes = (1..=n)
            .map(|id| NodeInfo {
                id,
                addr: format!("127.0.0.1:{}", 50050 + id),
            })
            .collect();
        s.apply(MetaCommand::Init {
            secret: vec![1; 32],
            nodes,
            replication_factor: 3,
        })
        .unwrap();
        s
    }

    fn create(s: &mut MetaState, name: &str, shards: u32) -> MetaResult {
        s.apply(MetaCommand::CreateStream {
            name: name.into(),
            shard_count: shards,
            on_demand: false,
            now_ms: 1,
            region: "us-east-1".into(),
        })
    }

    #[test]
    fn create_places_shards_and_turns_active_when_all_ready() {
        let mut s = formed(3);
        create(&mut s, "a", 4).unwrap();
        let st = &s.streams["a"];
        assert_eq!(st.shards.len(), 4);
        assert_eq!(st.status, StreamStatus::Creating);
        let groups: Vec<u64> = st.shards.iter().map(|x| x.group_id).collect();
        assert_eq!(groups, vec![1, 2, 3, 4]);
        assert!(st.shards.iter().all(|x| x.replicas.len() == 3));
        for g in 1..=3 {
            s.apply(MetaCommand::ShardReady { group_id: g }).unwrap();
        }
        assert_eq!(s.streams["a"].status, StreamStatus::Creating);
        s.apply(MetaCommand::ShardReady { group_id: 4 }).unwrap();
        assert_eq!(s.streams["a"].status, StreamStatus::Active);
        // Group ids are never reused, even after a delete.
        s.apply(MetaCommand::DeleteStream { name: "a".into() })
            .unwrap();
        create(&mut s, "b", 1).unwrap();
        assert_eq!(s.streams["b"].shards[0].group_id, 5);
    }

    #[test]
    fn errors_carry_kinesis_names() {
        let mut s = formed(1);
        create(&mut s, "a", 1).unwrap();
        assert_eq!(
            create(&mut s, "a", 1).unwrap_err().0,
            "ResourceInUseException"
        );
        let e = s
            .apply(MetaCommand::DeleteStream { name: "zz".into() })
            .unwrap_err();
        assert_eq!(e.0, "ResourceNotFoundException");
        let e = s.apply(MetaCommand::SetRetention {
            name: "a".into(),
            hours: 23,
            increase: false,
        });
        assert_eq!(e.unwrap_err().0, "InvalidArgumentException");
        let e = s.apply(MetaCommand::SetRetention {
            name: "a".into(),
            hours: 12_000,
            increase: true,
        });
        assert_eq!(e.unwrap_err().0, "InvalidArgumentException");
        s.apply(MetaCommand::SetRetention {
            name: "a".into(),
            hours: 48,
            increase: true,
        })
        .unwrap();
        let e = s.apply(MetaCommand::SetRetention {
            name: "a".into(),
            hours: 72,
            increase: false,
        });
        assert_eq!(e.unwrap_err().0, "InvalidArgumentException");
    }
}
