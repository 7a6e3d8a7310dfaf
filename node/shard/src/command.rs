//! The encoded messages of a shard. All are bincode; none is ever logged with its payload.

use serde::{Deserialize, Serialize};

/// One record as a writer sent it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordIn {
    pub partition_key: String,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// A write request sent to a shard's leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ShardRequest {
    Put {
        records: Vec<RecordIn>,
    },
    /// Drop records that arrived before `cutoff_ms` (retention).
    Trim {
        cutoff_ms: i64,
    },
}

/// What the leader proposes into the shard's Raft log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum ShardCommand {
    Put {
        arrival_ms: i64,
        records: Vec<RecordIn>,
    },
    Trim {
        cutoff_ms: i64,
    },
}

/// The outcome of one record of a Put.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordResult {
    Ok {
        sequence_number: u128,
    },
    /// A catalogue error name (`streamd_proto::ErrorCode::name`) and a message.
    Failed {
        error: String,
        message: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ShardReply {
    Put { results: Vec<RecordResult> },
    Trimmed,
}

/// What the state machine replies to a committed command.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum ApplyReply {
    /// Records got `SequenceNumber::new(group, log_index, 0..count)`.
    Put {
        log_index: u64,
        count: u32,
    },
    Trimmed,
}

/// Where an iterator starts.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum StartAt {
    TrimHorizon,
    Latest,
    AtSequence(u128),
    AfterSequence(u128),
    AtTimestamp(i64),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ShardQuery {
    /// The position (next sequence number to return) an iterator starting at `StartAt` has.
    Position(StartAt),
    Read {
        from: u128,
        limit: u32,
        max_bytes: usize,
    },
}

/// One stored record, as read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRecord {
    pub arrival_ms: i64,
    pub partition_key: String,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadResult {
    pub records: Vec<(u128, StoredRecord)>,
    /// Where the next read starts.
    pub next: u128,
    pub millis_behind_latest: i64,
    /// Set when the shard is sealed and `next` is past its last record.
    pub at_end: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum QueryReply {
    Position(u128),
    Read(ReadResult),
}
