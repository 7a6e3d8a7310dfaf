//! The batching producer: what the Kinesis Producer Library is to Kinesis.
//!
//! Map of the module (each file has one job):
//! - [`config`]: [`ProducerConfig`] and its limits.
//! - `shard_map`: which open shard owns a hash key, which node leads it (pure lookups).
//! - `queue`: one shard's buffer, batch due times and batch taking (pure, no I/O).
//! - `retry`: which failures are retried, whether they may have written the record, backoff.
//! - `driver`: the one background task that owns every queue, sends batches, applies results,
//!   refreshes shard maps and resolves callers. Nothing else mutates producer state.
//! - [`stats`]: counters readable at any time.
//! - [`error`]: [`ProducerError`], what a record's caller hears on failure.
//!
//! Life of a record: [`Producer::send`] checks it, waits for room in the byte budget
//! (backpressure), and hands it to the driver, which numbers it (idempotent mode), routes it by
//! MD5 of its partition key to a shard queue (or packs it into that shard's KPL aggregate),
//! sends the shard's batch to the shard leader's node when its linger expires or the batch is
//! full, and resolves the record's [`PendingRecord`] with the acknowledgement or an error.
//! docs/client.md describes ordering, retries and idempotence for users.

pub mod config;
mod driver;
pub mod error;
mod queue;
mod retry;
mod shard_map;
pub mod stats;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use streamd_proto::ids::HashKey;
use streamd_proto::limits::{MAX_PARTITION_KEY_CHARS, MAX_RECORD_BYTES};
use tokio::sync::{Mutex, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use config::{ConfigError, ProducerConfig};
pub use error::ProducerError;
pub use stats::ProducerStats;

use crate::StreamdClient;
use driver::{Command, Incoming};

/// Where a user record was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub shard_id: String,
    /// The sequence number of the Kinesis record that carries it.
    pub sequence_number: String,
    /// With aggregation, its position inside that Kinesis record (what KCL calls the
    /// sub-sequence number); `None` when it was sent as a record of its own.
    pub sub_sequence: Option<u32>,
    /// Attempts it took, the successful one included.
    pub attempts: u32,
    /// Failed attempts whose outcome was unknown. Above zero (and not idempotent), the record
    /// may be in the stream more than once.
    pub unknown_outcomes: u32,
}

/// A batching, retrying producer. Cheap to clone; clones share the buffers. Dropping every
/// clone without [`Producer::close`] still drains what was accepted, in the background.
#[derive(Debug, Clone)]
pub struct Producer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    tx: mpsc::UnboundedSender<Command>,
    budget: Arc<Semaphore>,
    closed: AtomicBool,
    config: ProducerConfig,
    producer_id: Option<u64>,
    counters: Arc<stats::Counters>,
    driver: Mutex<Option<JoinHandle<()>>>,
}

impl Producer {
    /// Starts a producer over `client`'s endpoints. Must be called inside a Tokio runtime.
    pub fn new(client: StreamdClient, config: ProducerConfig) -> Result<Producer, ConfigError> {
        let config = config.validated()?;
        let producer_id = config.idempotent.then(rand::random::<u64>);
        let (tx, rx) = mpsc::unbounded_channel();
        let counters = Arc::new(stats::Counters::default());
        let driver = driver::Driver::new(client, config.clone(), producer_id, counters.clone());
        let handle = tokio::spawn(driver.run(rx));
        Ok(Producer {
            shared: Arc::new(Shared {
                tx,
                budget: Arc::new(Semaphore::new(config.max_in_flight_bytes)),
                closed: AtomicBool::new(false),
                config,
                producer_id,
                counters,
                driver: Mutex::new(Some(handle)),
            }),
        })
    }

    /// The id an idempotent producer stamps on its requests.
    pub fn producer_id(&self) -> Option<u64> {
        self.shared.producer_id
    }

    pub fn config(&self) -> &ProducerConfig {
        &self.shared.config
    }

    pub fn stats(&self) -> ProducerStats {
        self.shared.counters.snapshot()
    }

    /// Queues a record routed by MD5 of `partition_key`. Waits while the byte budget is used
    /// up; the returned future resolves once the record is acknowledged or has failed.
    pub async fn send(
        &self,
        stream: &str,
        partition_key: &str,
        data: impl Into<Bytes>,
    ) -> PendingRecord {
        self.send_with(stream, partition_key, None, data).await
    }

    /// Like [`Producer::send`], routed by `explicit_hash_key` (decimal, 0 to 2^128-1) when given.
    pub async fn send_with(
        &self,
        stream: &str,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
        data: impl Into<Bytes>,
    ) -> PendingRecord {
        let data = data.into();
        match self
            .accept(stream, partition_key, explicit_hash_key, data)
            .await
        {
            Ok(rx) => PendingRecord(Pending::Waiting(rx)),
            Err(e) => PendingRecord(Pending::Failed(Some(e))),
        }
    }

    async fn accept(
        &self,
        stream: &str,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
        data: Bytes,
    ) -> Result<oneshot::Receiver<Result<Ack, ProducerError>>, ProducerError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(ProducerError::Closed);
        }
        let chars = partition_key.chars().count();
        if chars == 0 || chars > MAX_PARTITION_KEY_CHARS {
            return Err(ProducerError::InvalidRecord(format!(
                "partition key must be 1 to {MAX_PARTITION_KEY_CHARS} characters, got {chars}"
            )));
        }
        let size = data.len() + partition_key.len();
        if size > MAX_RECORD_BYTES {
            return Err(ProducerError::InvalidRecord(format!(
                "record has {size} bytes of data and partition key, over the limit of {MAX_RECORD_BYTES}"
            )));
        }
        let hash_key = match explicit_hash_key {
            Some(e) => e
                .parse::<HashKey>()
                .map_err(|err| ProducerError::InvalidRecord(err.to_string()))?,
            None => HashKey::of_partition_key(partition_key),
        };
        // At least one permit, so empty records are bounded too; at most the whole budget.
        let permits = size.clamp(1, self.shared.config.max_in_flight_bytes) as u32;
        let permit = self
            .shared
            .budget
            .clone()
            .acquire_many_owned(permits)
            .await
            .map_err(|_| ProducerError::Closed)?;
        let (tx, rx) = oneshot::channel();
        let now = Instant::now();
        let incoming = Incoming {
            stream: stream.into(),
            partition_key: partition_key.to_string(),
            explicit_hash_key: explicit_hash_key.map(str::to_string),
            hash_key: hash_key.0,
            data,
            accepted: now,
            deadline: now + self.shared.config.record_deadline,
            tx,
            permit,
        };
        self.shared
            .tx
            .send(Command::Record(incoming))
            .map_err(|_| ProducerError::Closed)?;
        Ok(rx)
    }

    /// Sends everything accepted before this call without waiting for linger, and returns once
    /// each of those records is acknowledged or failed.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.shared.tx.send(Command::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Stops accepting records (waiting and later `send`s fail with [`ProducerError::Closed`]),
    /// drains everything accepted, and stops the background task.
    pub async fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.budget.close();
        self.flush().await;
        let _ = self.shared.tx.send(Command::Stop);
        if let Some(handle) = self.shared.driver.lock().await.take() {
            let _ = handle.await;
        }
    }
}

/// The outcome of one [`Producer::send`].
#[derive(Debug)]
pub struct PendingRecord(Pending);

#[derive(Debug)]
enum Pending {
    Waiting(oneshot::Receiver<Result<Ack, ProducerError>>),
    Failed(Option<ProducerError>),
}

impl Future for PendingRecord {
    type Output = Result<Ack, ProducerError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            Pending::Waiting(rx) => Pin::new(rx)
                .poll(cx)
                .map(|r| r.unwrap_or(Err(ProducerError::Closed))),
            Pending::Failed(e) => Poll::Ready(Err(e.take().unwrap_or(ProducerError::Closed))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use streamd_proto::ErrorCode;

    use super::*;
    use crate::ClientOptions;

    /// A port nothing listens on: bound, then released.
    fn dead_endpoint() -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        addr.to_string()
    }

    fn producer(config: ProducerConfig) -> Producer {
        let options = ClientOptions {
            read_retry: crate::RetryPolicy::none(),
            ..ClientOptions::default()
        };
        let client = StreamdClient::connect_with(&[dead_endpoint()], options).unwrap();
        Producer::new(client, config).unwrap()
    }

    #[tokio::test]
    async fn records_that_can_never_be_written_are_refused_at_once() {
        let p = producer(ProducerConfig::default());
        let too_long_key = "k".repeat(MAX_PARTITION_KEY_CHARS + 1);
        for pending in [
            p.send("s", "", b"x".to_vec()).await,
            p.send("s", &too_long_key, b"x".to_vec()).await,
            p.send("s", "k", vec![0u8; MAX_RECORD_BYTES]).await,
            p.send_with("s", "k", Some("-1"), b"x".to_vec()).await,
            p.send_with(
                "s",
                "k",
                Some("340282366920938463463374607431768211456"),
                b"x".to_vec(),
            )
            .await,
        ] {
            let err = pending.await.unwrap_err();
            assert!(matches!(err, ProducerError::InvalidRecord(_)), "{err}");
            assert_eq!(err.code(), ErrorCode::InvalidArgument);
        }
        p.close().await;
    }

    #[tokio::test]
    async fn an_unreachable_cluster_fails_records_at_their_deadline_and_close_drains() {
        let p = producer(ProducerConfig {
            record_deadline: Duration::from_millis(400),
            ..ProducerConfig::default()
        });
        let started = Instant::now();
        let pending = p.send("s", "k", b"x".to_vec()).await;
        p.flush().await;
        let err = pending.await.unwrap_err();
        assert!(
            matches!(err, ProducerError::DeadlineExceeded { .. }),
            "{err}"
        );
        assert_eq!(err.code(), ErrorCode::Unavailable);
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(p.stats().records_failed, 1);
        p.close().await;
        let err = p.send("s", "k", b"x".to_vec()).await.await.unwrap_err();
        assert_eq!(err, ProducerError::Closed);
    }

    #[tokio::test]
    async fn a_refused_connection_certainly_did_not_write() {
        let client = StreamdClient::connect(&[dead_endpoint()]).unwrap();
        let err = client
            .put_records("s", vec![crate::client::entry("k", b"x".to_vec())])
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::Unavailable);
        assert_eq!(
            retry::classify_call(&err),
            retry::Failure::NotWritten,
            "{err}"
        );
    }

    #[tokio::test]
    async fn idempotent_producers_pick_an_id() {
        let p = producer(ProducerConfig {
            idempotent: true,
            ..ProducerConfig::default()
        });
        assert!(p.producer_id().is_some());
        assert_eq!(p.config().max_in_flight_per_shard, 1);
        assert!(producer(ProducerConfig::default()).producer_id().is_none());
    }
}
