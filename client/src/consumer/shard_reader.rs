//! Reading one shard page by page, as KCL's record fetcher does: the iterator is kept between
//! pages and replaced from the last record read when it expires or a read fails, so a caller
//! never sees a record twice or skips one.

use std::time::Duration;

use streamd_proto::{ErrorCode, v1};

use crate::client::StreamdClient;
use crate::error::ClientError;

/// Where reading starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartingPosition {
    TrimHorizon,
    Latest,
    AtSequenceNumber(String),
    AfterSequenceNumber(String),
    AtTimestampMs(i64),
}

/// One page of a shard.
#[derive(Debug, Clone)]
pub struct Page {
    pub records: Vec<v1::Record>,
    pub millis_behind_latest: i64,
    /// The shard is closed and this page holds its last records.
    pub shard_end: bool,
    /// The shards that continue this one, once it ended.
    pub child_shards: Vec<v1::ChildShard>,
}

pub struct ShardReader {
    client: StreamdClient,
    stream: String,
    shard_id: String,
    start: StartingPosition,
    /// The last record returned: a replacement iterator starts after it.
    last: Option<String>,
    iterator: Option<String>,
    max_records: u32,
    ended: bool,
}

/// Failures a fresh iterator from the last record read gets past.
fn recoverable(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::ExpiredIterator
            | ErrorCode::ProvisionedThroughputExceeded
            | ErrorCode::Unavailable
            | ErrorCode::NotLeader
            | ErrorCode::InternalFailure
    )
}

impl ShardReader {
    pub fn new(
        client: StreamdClient,
        stream: &str,
        shard_id: &str,
        start: StartingPosition,
    ) -> Self {
        ShardReader {
            client,
            stream: stream.to_string(),
            shard_id: shard_id.to_string(),
            start,
            last: None,
            iterator: None,
            max_records: 1_000,
            ended: false,
        }
    }

    pub fn with_max_records(mut self, n: u32) -> Self {
        self.max_records = n;
        self
    }

    pub fn shard_id(&self) -> &str {
        &self.shard_id
    }

    async fn fresh_iterator(&self) -> Result<String, ClientError> {
        use v1::ShardIteratorType as T;
        let (kind, seq, ts) = match (&self.last, &self.start) {
            (Some(s), _) => (T::AfterSequenceNumber, Some(s.clone()), None),
            (None, StartingPosition::TrimHorizon) => (T::TrimHorizon, None, None),
            (None, StartingPosition::Latest) => (T::Latest, None, None),
            (None, StartingPosition::AtSequenceNumber(s)) => {
                (T::AtSequenceNumber, Some(s.clone()), None)
            }
            (None, StartingPosition::AfterSequenceNumber(s)) => {
                (T::AfterSequenceNumber, Some(s.clone()), None)
            }
            (None, StartingPosition::AtTimestampMs(t)) => (T::AtTimestamp, None, Some(*t)),
        };
        self.client
            .get_shard_iterator(&self.stream, &self.shard_id, kind, seq, ts)
            .await
    }

    /// The next page: possibly empty at the tip of an open shard; `None` once the shard ended.
    /// Recoverable failures are retried here with backoff up to `patience`; others return.
    #[tracing::instrument(name = "consumer.read_page", skip_all, fields(shard_id = %self.shard_id))]
    pub async fn next_page(&mut self, patience: Duration) -> Result<Option<Page>, ClientError> {
        if self.ended {
            return Ok(None);
        }
        let deadline = tokio::time::Instant::now() + patience;
        let mut backoff = Duration::from_millis(50);
        loop {
            let attempt = async {
                let it = match self.iterator.take() {
                    Some(it) => it,
                    None => self.fresh_iterator().await?,
                };
                self.client.get_records(&it, Some(self.max_records)).await
            };
            match attempt.await {
                Ok(page) => {
                    self.ended = page.next_shard_iterator.is_none();
                    self.iterator = page.next_shard_iterator;
                    if let Some(r) = page.records.last() {
                        self.last = Some(r.sequence_number.clone());
                    }
                    return Ok(Some(Page {
                        records: page.records,
                        millis_behind_latest: page.millis_behind_latest,
                        shard_end: self.ended,
                        child_shards: page.child_shards,
                    }));
                }
                Err(e) if recoverable(e.code()) && tokio::time::Instant::now() < deadline => {
                    tracing::debug!(error = %e, "read failed; resuming after the last record");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(e),
            }
        }
    }
}
