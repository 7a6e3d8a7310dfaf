//! One group's view of the node's shared write-ahead log.
//!
//! Entries are bincode-encoded openraft entries keyed by (group, index). The vote and the last
//! purged log id are per-group meta values in the same log, written durably before returning.
//! `append` returns as soon as the entries are queued and readable; openraft is told they are
//! durable only when the WAL's group commit has fdatasync'ed them.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, Range, RangeBounds};

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use streamd_storage::LogEngine;

use crate::type_config::{Entry, LogId, TypeConfig, Vote};

const META_VOTE: u8 = 1;
const META_PURGED: u8 = 3;

#[derive(Clone)]
pub(crate) struct LogStore {
    group: u64,
    engine: LogEngine,
}

impl LogStore {
    pub(crate) fn new(group: u64, engine: LogEngine) -> Self {
        LogStore { group, engine }
    }

    /// Index of the last purged entry, if the log was ever purged.
    pub(crate) fn last_purged_index(&self) -> io::Result<Option<u64>> {
        Ok(self.meta::<LogId>(META_PURGED)?.map(|l| l.index()))
    }

    fn decode_entry(bytes: &[u8]) -> io::Result<Entry> {
        bincode::deserialize(bytes).map_err(io::Error::other)
    }

    fn meta<T: serde::de::DeserializeOwned>(&self, key: u8) -> io::Result<Option<T>> {
        match self.engine.get_meta(self.group, key) {
            None => Ok(None),
            Some(b) => bincode::deserialize(&b).map(Some).map_err(io::Error::other),
        }
    }
}

fn to_range<RB: RangeBounds<u64>>(range: &RB) -> Range<u64> {
    let start = match range.start_bound() {
        Bound::Included(s) => *s,
        Bound::Excluded(s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(e) => e.saturating_add(1),
        Bound::Excluded(e) => *e,
        Bound::Unbounded => u64::MAX,
    };
    start..end
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let raw = self.engine.entries(self.group, to_range(&range))?;
        raw.iter().map(|(_, b)| Self::decode_entry(b)).collect()
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.meta(META_VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged: Option<LogId> = self.meta(META_PURGED)?;
        let last = match self.engine.bounds(self.group) {
            None => None,
            Some((_, last)) => {
                let raw = self
                    .engine
                    .entries(self.group, last..last.saturating_add(1))?;
                match raw.first() {
                    Some((_, b)) => Some(Self::decode_entry(b)?.log_id()),
                    None => None,
                }
            }
        };
        Ok(LogState {
            last_log_id: last.or(last_purged),
            last_purged_log_id: last_purged,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let bytes = bincode::serialize(vote).map_err(io::Error::other)?;
        self.engine
            .put_meta(self.group, META_VOTE, bytes.into())
            .await?;
        Ok(())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut batch = Vec::new();
        for e in entries {
            let bytes = bincode::serialize(&e).map_err(io::Error::other)?;
            batch.push((e.index(), bytes.into()));
        }
        let queued = std::time::Instant::now();
        self.engine.append(
            self.group,
            batch,
            Box::new(move |r| {
                crate::hops::observe(crate::hops::Hop::LogAppend, queued);
                callback.io_completed(r.map_err(io::Error::from))
            }),
        );
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map(|l| l.index() + 1).unwrap_or(0);
        self.engine.truncate_from(self.group, from).await?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let bytes = bincode::serialize(&log_id).map_err(io::Error::other)?;
        self.engine
            .put_meta(self.group, META_PURGED, bytes.into())
            .await?;
        self.engine.purge_upto(self.group, log_id.index()).await?;
        Ok(())
    }
}
