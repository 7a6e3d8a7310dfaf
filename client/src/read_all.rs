//! Draining a shard or an iterator into memory (tests, tools, verification). Not for large
//! shards: everything read is kept.

use std::time::Duration;

use streamd_proto::limits::MAX_GET_RECORDS;
use streamd_proto::{ErrorCode, v1};

use crate::client::StreamdClient;
use crate::error::ClientError;

/// Throttled GetRecords calls one drain waits out before it gives up.
const MAX_THROTTLED_CALLS: u32 = 60;

impl StreamdClient {
    /// Every record of the shard still in retention, from TRIM_HORIZON up to the shard's current
    /// end, in sequence-number order.
    pub async fn read_shard_all(
        &self,
        name: &str,
        shard_id: &str,
    ) -> Result<Vec<v1::Record>, ClientError> {
        let iterator = self
            .get_shard_iterator(
                name,
                shard_id,
                v1::ShardIteratorType::TrimHorizon,
                None,
                None,
            )
            .await?;
        self.read_from_iterator(&iterator).await
    }

    /// Follows `iterator` until a page is empty and 0 ms behind the tip, or the shard ends (no
    /// next iterator). Read-throughput refusals are waited out, a bounded number of times.
    pub async fn read_from_iterator(&self, iterator: &str) -> Result<Vec<v1::Record>, ClientError> {
        let mut records = Vec::new();
        let mut iterator = iterator.to_string();
        let mut throttled = 0u32;
        loop {
            let page = match self.get_records(&iterator, Some(MAX_GET_RECORDS)).await {
                Ok(page) => page,
                Err(e)
                    if e.code() == ErrorCode::ProvisionedThroughputExceeded
                        && throttled < MAX_THROTTLED_CALLS =>
                {
                    throttled += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let at_tip = page.records.is_empty() && page.millis_behind_latest == 0;
            records.extend(page.records);
            match page.next_shard_iterator {
                Some(next) if !at_tip && !next.is_empty() => iterator = next,
                _ => return Ok(records),
            }
        }
    }
}
