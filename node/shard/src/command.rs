//! The encoded messages of a shard. All are bincode; none is ever logged with its payload.

use serde::{Deserialize, Serialize};

/// One record as a writer sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Close the shard for reshard `op_id`: writes ordered after this entry are refused.
    Seal {
        op_id: u64,
    },
    /// A Put from an idempotent producer: `seqs[i]` is the producer's number for `records[i]`,
    /// increasing along the request.
    PutIdempotent {
        producer_id: u64,
        records: Vec<RecordIn>,
        seqs: Vec<u64>,
    },
}

/// [`ShardRequest::Put`] encoded from borrowed records, so a writer keeps its records for a
/// retry without copying them: the same bytes as the owned form (a unit test holds this).
#[derive(Debug, Serialize)]
pub enum ShardRequestRef<'a> {
    Put { records: &'a [RecordIn] },
}

/// What the leader proposes into the shard's Raft log.
///
/// Layout contract (bincode 1, default options): a Put is the variant index as a 4-byte
/// little-endian integer followed by exactly the encoding of [`StoredEntry`]. `apply` stores
/// the command's bytes after the variant index as the entry's value, with no re-encoding; a
/// unit test holds this in place.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum ShardCommand {
    Put {
        arrival_ms: i64,
        records: Vec<RecordIn>,
    },
    Trim {
        cutoff_ms: i64,
    },
    Seal {
        op_id: u64,
    },
    /// Unlike a Put, stored re-encoded: only the records not written before are kept.
    PutIdempotent {
        arrival_ms: i64,
        records: Vec<RecordIn>,
        producer_id: u64,
        seqs: Vec<u64>,
    },
}

/// A zero-copy view of a [`ShardCommand`], for apply: only the record count is needed there.
#[derive(Debug, Deserialize)]
pub(crate) enum ShardCommandView<'a> {
    Put {
        arrival_ms: i64,
        #[serde(borrow)]
        records: Vec<RecordView<'a>>,
    },
    Trim {
        cutoff_ms: i64,
    },
    Seal {
        op_id: u64,
    },
    /// Only recognised here; apply decodes it again as owned records.
    PutIdempotent {
        #[serde(rename = "arrival_ms")]
        _arrival_ms: i64,
        #[serde(rename = "records", borrow)]
        _records: Vec<RecordView<'a>>,
        #[serde(rename = "producer_id")]
        _producer_id: u64,
        #[serde(rename = "seqs")]
        _seqs: Vec<u64>,
    },
}

/// A record inside a [`ShardCommandView`]; its fields are only skipped over, never copied.
#[derive(Debug, Deserialize)]
pub(crate) struct RecordView<'a> {
    #[serde(rename = "partition_key")]
    _partition_key: &'a str,
    #[serde(rename = "data", borrow, with = "serde_bytes")]
    _data: &'a [u8],
}

/// One applied Put entry as stored: every record of the entry shares its arrival time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredEntry {
    pub(crate) arrival_ms: i64,
    pub(crate) records: Vec<RecordIn>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_borrowed_put_request_encodes_as_the_owned_one() {
        let records = vec![RecordIn {
            partition_key: "k".into(),
            data: vec![9; 5],
        }];
        let borrowed = bincode::serialize(&ShardRequestRef::Put { records: &records }).unwrap();
        let owned = bincode::serialize(&ShardRequest::Put { records }).unwrap();
        assert_eq!(borrowed, owned);
    }

    #[test]
    fn a_put_command_after_its_variant_index_is_a_stored_entry() {
        let records = vec![
            RecordIn {
                partition_key: "k1".into(),
                data: vec![1, 2, 3],
            },
            RecordIn {
                partition_key: "é".into(),
                data: Vec::new(),
            },
        ];
        let cmd = bincode::serialize(&ShardCommand::Put {
            arrival_ms: 42,
            records: records.clone(),
        })
        .unwrap();
        let entry: StoredEntry = bincode::deserialize(&cmd[4..]).unwrap();
        assert_eq!(
            entry,
            StoredEntry {
                arrival_ms: 42,
                records
            }
        );
        match bincode::deserialize::<ShardCommandView<'_>>(&cmd).unwrap() {
            ShardCommandView::Put {
                arrival_ms,
                records,
            } => {
                assert_eq!((arrival_ms, records.len()), (42, 2));
            }
            other => panic!("decoded as {other:?}"),
        }
    }
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
    Put {
        results: Vec<RecordResult>,
    },
    Trimmed,
    /// The shard is sealed; its ending sequence number (that of the Seal entry, above every
    /// record it holds).
    Sealed {
        ending_seq: u128,
    },
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
    /// The shard was already sealed when the Put applied: nothing was written.
    Closed,
    Sealed {
        ending_seq: u128,
    },
    /// One outcome per record of an idempotent Put; written records got
    /// `SequenceNumber::new(group, log_index, position)`.
    PutIdempotent {
        log_index: u64,
        outcomes: Vec<IdempotentOutcome>,
    },
}

/// What became of one record of an idempotent Put.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum IdempotentOutcome {
    /// Written now, at this position of the entry.
    Written { position: u16 },
    /// Stored before under this sequence number; not written again.
    Duplicate { sequence_number: u128 },
    /// Numbered at or below the producer's last stored record, yet not among the recent ones
    /// the shard remembers: a write or retry far out of order.
    TooOld { last_seq: u64 },
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
