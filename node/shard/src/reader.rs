//! Reads from the local replica of a shard: iterator positions and record pages.
//!
//! Everything read here is applied, and so committed; a replica behind its leader returns fewer
//! records, never different ones, and an iterator's position only moves forward.

use std::sync::Arc;

use parking_lot::RwLock;
use streamd_proto::ids::SequenceNumber;
use streamd_proto::{ApiError, ErrorCode};
use streamd_storage::sled;
use tokio::sync::watch;

use crate::apply::ShardState;
use crate::command::{ReadResult, StartAt, StoredEntry, StoredRecord};
use crate::keys;

#[derive(Clone)]
pub struct ShardReader {
    group: u64,
    tree: sled::Tree,
    state: Arc<RwLock<ShardState>>,
    notify: watch::Receiver<Option<u128>>,
}

fn io_err(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("failed to read shard: {e}"))
}

impl ShardReader {
    pub fn new(
        group: u64,
        tree: sled::Tree,
        state: Arc<RwLock<ShardState>>,
        notify: watch::Receiver<Option<u128>>,
    ) -> Self {
        ShardReader {
            group,
            tree,
            state,
            notify,
        }
    }

    pub fn state(&self) -> ShardState {
        self.state.read().clone()
    }

    /// Whether this replica holds a record that arrived before `cutoff_ms`: what a retention
    /// trim would remove. Asked before proposing one, since a trim is a log entry and would wake
    /// every idle group once per retention pass.
    pub fn holds_records_before(&self, cutoff_ms: i64) -> bool {
        let lo = keys::time(self.group, 0, 0);
        let hi = keys::time(self.group, cutoff_ms, 0);
        // An unreadable tree counts as holding some: the trim's own apply then decides.
        self.tree.range(lo..hi).next().is_some()
    }

    /// Sealed by a reshard: no record will ever be added.
    pub fn is_sealed(&self) -> bool {
        self.state.read().sealed.is_some()
    }

    /// Wakes when new records are applied.
    pub fn subscribe(&self) -> watch::Receiver<Option<u128>> {
        self.notify.clone()
    }

    fn first_seq(&self) -> u128 {
        SequenceNumber::first_of_group(self.group).0
    }

    /// The next sequence number an iterator starting at `at` returns.
    pub fn position(&self, at: StartAt) -> Result<u128, ApiError> {
        let st = self.state();
        let latest = st
            .last_seq
            .map(|s| s + 1)
            .unwrap_or(st.trim_seq.max(self.first_seq()));
        Ok(match at {
            StartAt::TrimHorizon => st.trim_seq.max(self.first_seq()),
            StartAt::Latest => latest,
            StartAt::AtSequence(s) | StartAt::AfterSequence(s) => {
                if SequenceNumber(s).group_id() != self.group & 0xffff_ffff {
                    return Err(ApiError::new(
                        ErrorCode::InvalidArgument,
                        format!(
                            "sequence number {} does not belong to this shard",
                            SequenceNumber(s)
                        ),
                    ));
                }
                let p = if matches!(at, StartAt::AfterSequence(_)) {
                    s.saturating_add(1)
                } else {
                    s
                };
                p.max(st.trim_seq)
            }
            StartAt::AtTimestamp(t) => {
                let lo = keys::time(self.group, t, 0);
                let hi = keys::time(self.group, i64::MAX, u128::MAX);
                match self.tree.range(lo..hi).next() {
                    Some(kv) => {
                        let (k, _) = kv.map_err(io_err)?;
                        keys::parse_time_key(&k).map(|(_, s)| s).unwrap_or(latest)
                    }
                    None => latest,
                }
            }
        })
    }

    /// Up to `limit` records and `max_bytes` of data from `from` on.
    ///
    /// Hot path: decodes whole entries (one sled value per Put), skipping the records of the
    /// first entry that lie before `from`.
    pub fn read(
        &self,
        from: u128,
        limit: u32,
        max_bytes: usize,
        now_ms: i64,
    ) -> Result<ReadResult, ApiError> {
        let st = self.state();
        let from = from.max(st.trim_seq);
        let sealed = st.sealed.is_some();
        let Some(last) = st.last_seq else {
            return Ok(ReadResult {
                records: Vec::new(),
                next: from,
                millis_behind_latest: 0,
                at_end: sealed,
            });
        };
        let lo = keys::entry(self.group, 0);
        let hi = keys::entry(self.group, u128::MAX);
        // The entry holding `from` starts at or before it.
        let start = match self
            .tree
            .range(lo..=keys::entry(self.group, from))
            .next_back()
        {
            Some(kv) => kv.map_err(io_err)?.0.to_vec(),
            None => keys::entry(self.group, from),
        };
        let mut records = Vec::new();
        let mut bytes = 0usize;
        let mut next = from;
        'entries: for kv in self.tree.range(start..hi) {
            let (k, v) = kv.map_err(io_err)?;
            let Some(first) = keys::seq_of_entry_key(&k) else {
                continue;
            };
            let entry: StoredEntry = bincode::deserialize(&v).map_err(io_err)?;
            for (pos, r) in entry.records.into_iter().enumerate() {
                let seq = first + pos as u128;
                if seq < from {
                    continue;
                }
                // Entries applied after the published state are not announced yet; stop at it
                // so a reader never runs ahead of `last_seq`.
                if seq > last {
                    break 'entries;
                }
                let size = r.data.len() + r.partition_key.len();
                if !records.is_empty()
                    && (records.len() as u32 >= limit || bytes + size > max_bytes)
                {
                    break 'entries;
                }
                bytes += size;
                next = seq + 1;
                records.push((
                    seq,
                    StoredRecord {
                        arrival_ms: entry.arrival_ms,
                        partition_key: r.partition_key,
                        data: r.data,
                    },
                ));
            }
        }
        let caught_up = next > last;
        let millis_behind_latest = if caught_up {
            0
        } else {
            records
                .last()
                .map(|(_, r)| (now_ms - r.arrival_ms).max(0))
                .unwrap_or(0)
        };
        Ok(ReadResult {
            records,
            next,
            millis_behind_latest,
            // A sealed shard never gets another record: a reader past its last one is done.
            at_end: sealed && caught_up,
        })
    }
}
