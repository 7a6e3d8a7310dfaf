//! Views of streams and shards shared by several command groups, built from the wire types by pure
//! functions (tested without a cluster). Field names are part of the `--output json` contract.

use serde::Serialize;
use streamd_client::v1;

use crate::output::Table;
use crate::time::format_millis;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ShardView {
    pub(crate) shard_id: String,
    /// `open` or `closed` (closed shards have an ending sequence number).
    pub(crate) state: &'static str,
    pub(crate) parent_shard_id: Option<String>,
    pub(crate) adjacent_parent_shard_id: Option<String>,
    pub(crate) starting_hash_key: String,
    pub(crate) ending_hash_key: String,
    pub(crate) starting_sequence_number: String,
    pub(crate) ending_sequence_number: Option<String>,
    pub(crate) group_id: u64,
    pub(crate) replicas: Vec<u64>,
    pub(crate) leader: Option<u64>,
}

pub(crate) fn shard_view(s: &v1::Shard) -> ShardView {
    let range = s.hash_key_range.clone().unwrap_or_default();
    let seq = s.sequence_number_range.clone().unwrap_or_default();
    ShardView {
        shard_id: s.shard_id.clone(),
        state: if seq.ending_sequence_number.is_some() {
            "closed"
        } else {
            "open"
        },
        parent_shard_id: s.parent_shard_id.clone(),
        adjacent_parent_shard_id: s.adjacent_parent_shard_id.clone(),
        starting_hash_key: range.starting_hash_key,
        ending_hash_key: range.ending_hash_key,
        starting_sequence_number: seq.starting_sequence_number,
        ending_sequence_number: seq.ending_sequence_number,
        group_id: s.group_id,
        replicas: s.replicas.clone(),
        leader: s.leader,
    }
}

pub(crate) fn is_open(s: &v1::Shard) -> bool {
    s.sequence_number_range
        .as_ref()
        .is_none_or(|r| r.ending_sequence_number.is_none())
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct StreamView {
    pub(crate) name: String,
    pub(crate) arn: String,
    pub(crate) status: &'static str,
    pub(crate) mode: &'static str,
    pub(crate) retention_hours: u32,
    pub(crate) created: String,
    pub(crate) created_ms: i64,
    pub(crate) open_shards: u32,
    pub(crate) map_epoch: u64,
    pub(crate) shards: Vec<ShardView>,
}

pub(crate) fn status_name(s: v1::StreamStatus) -> &'static str {
    match s {
        v1::StreamStatus::Creating => "CREATING",
        v1::StreamStatus::Deleting => "DELETING",
        v1::StreamStatus::Active => "ACTIVE",
        v1::StreamStatus::Updating => "UPDATING",
        v1::StreamStatus::Unspecified => "UNKNOWN",
    }
}

pub(crate) fn mode_name(m: v1::StreamMode) -> &'static str {
    match m {
        v1::StreamMode::Provisioned => "PROVISIONED",
        v1::StreamMode::OnDemand => "ON_DEMAND",
        v1::StreamMode::Unspecified => "UNKNOWN",
    }
}

pub(crate) fn stream_view(d: &v1::StreamDescription) -> StreamView {
    StreamView {
        name: d.stream_name.clone(),
        arn: d.stream_arn.clone(),
        status: status_name(d.stream_status()),
        mode: mode_name(d.stream_mode()),
        retention_hours: d.retention_period_hours,
        created: format_millis(d.stream_creation_timestamp_ms),
        created_ms: d.stream_creation_timestamp_ms,
        open_shards: d.shards.iter().filter(|s| is_open(s)).count() as u32,
        map_epoch: d.map_epoch,
        shards: d.shards.iter().map(shard_view).collect(),
    }
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".to_string(), T::to_string)
}

fn ids(v: &[u64]) -> String {
    v.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

pub(crate) fn shards_table(shards: &[ShardView]) -> String {
    let mut t = Table::new([
        "SHARD",
        "STATE",
        "PARENTS",
        "HASH KEYS",
        "GROUP",
        "REPLICAS",
        "LEADER",
    ]);
    for s in shards {
        let parents: Vec<&str> = [&s.parent_shard_id, &s.adjacent_parent_shard_id]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        t.row(vec![
            s.shard_id.clone(),
            s.state.to_string(),
            if parents.is_empty() {
                "-".to_string()
            } else {
                parents.join(",")
            },
            format!("{}..{}", s.starting_hash_key, s.ending_hash_key),
            s.group_id.to_string(),
            ids(&s.replicas),
            opt(&s.leader),
        ]);
    }
    t.render()
}

pub(crate) fn stream_text(v: &StreamView) -> String {
    format!(
        "name:        {}\narn:         {}\nstatus:      {}\nmode:        {}\nretention:   {} hours\n\
         created:     {}\nopen shards: {} of {}\nmap epoch:   {}\n\n{}",
        v.name,
        v.arn,
        v.status,
        v.mode,
        v.retention_hours,
        v.created,
        v.open_shards,
        v.shards.len(),
        v.map_epoch,
        shards_table(&v.shards)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, ending: Option<&str>) -> v1::Shard {
        v1::Shard {
            shard_id: id.into(),
            hash_key_range: Some(v1::HashKeyRange {
                starting_hash_key: "0".into(),
                ending_hash_key: "9".into(),
            }),
            sequence_number_range: Some(v1::SequenceNumberRange {
                starting_sequence_number: "1".into(),
                ending_sequence_number: ending.map(str::to_string),
            }),
            group_id: 7,
            replicas: vec![1, 2, 3],
            leader: Some(2),
            ..v1::Shard::default()
        }
    }

    #[test]
    fn open_and_closed_shards() {
        let d = v1::StreamDescription {
            stream_name: "s".into(),
            stream_status: v1::StreamStatus::Active as i32,
            shards: vec![
                shard("shardId-000000000000", Some("5")),
                shard("shardId-000000000001", None),
            ],
            ..v1::StreamDescription::default()
        };
        let v = stream_view(&d);
        assert_eq!(v.status, "ACTIVE");
        assert_eq!(v.open_shards, 1);
        assert_eq!(v.shards[0].state, "closed");
        let text = stream_text(&v);
        assert!(text.contains("open shards: 1 of 2"), "{text}");
        assert!(text.contains("1,2,3"), "{text}");
    }
}
