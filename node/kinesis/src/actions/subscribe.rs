//! SubscribeToShard: an `application/vnd.amazon.eventstream` response whose first message is
//! the `initial-response` event, then SubscribeToShardEvent messages as records are applied, at
//! least one every 5 s while idle, until the subscription's 5 minutes are up.
//!
//! The subscription reads the shard's own storage from its position, like any reader: no copy of
//! the data is kept per subscriber.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use streamd_meta::ConsumerStatus;
use streamd_proto::v1;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Reply;
use crate::codec::{Doc, Format, Input};
use crate::error::KinesisError;
use crate::event_stream::{INITIAL_RESPONSE, SUBSCRIBE_TO_SHARD_EVENT, event, exception};
use crate::router::KinesisApi;

const SUBSCRIPTION_LIFETIME: Duration = Duration::from_secs(300);
const IDLE_EVENT_EVERY: Duration = Duration::from_secs(5);
const POLL_EVERY: Duration = Duration::from_millis(200);

pub(super) async fn subscribe(api: &KinesisApi, input: &Input) -> Result<Reply, KinesisError> {
    let consumer_arn = input.req_str("ConsumerARN")?;
    let shard_id = input.req_str("ShardId")?;
    let start = input
        .opt_map("StartingPosition")?
        .ok_or_else(|| KinesisError::validation("1 validation error detected: Value null at 'startingPosition' failed to satisfy constraint: Member must not be null"))?;
    let meta = api.gw.metadata();
    let (stream, consumer) = meta.consumer_by_arn(&consumer_arn).ok_or_else(|| {
        KinesisError::resource_not_found(format!("Consumer {consumer_arn} not found."))
    })?;
    if consumer.status != ConsumerStatus::Active {
        return Err(KinesisError::resource_in_use(format!(
            "Consumer {consumer_arn} is not ACTIVE."
        )));
    }
    let kind = super::records::iterator_type(&start.req_str("Type")?, "startingPosition.type")?;
    let iterator = api
        .gw
        .get_shard_iterator(v1::GetShardIteratorRequest {
            stream_name: stream.name.clone(),
            shard_id: shard_id.clone(),
            shard_iterator_type: kind as i32,
            starting_sequence_number: start.opt_str("SequenceNumber")?,
            timestamp_ms: start.opt_timestamp("Timestamp")?,
        })
        .await?
        .shard_iterator;
    let format = input.format();
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(4);
    // The initial response goes out before anything else: boto3 refuses the stream otherwise.
    if tx
        .send(Ok(event(INITIAL_RESPONSE, format, &Doc::Map(Vec::new()))))
        .await
        .is_err()
    {
        return Err(KinesisError::internal("subscriber went away"));
    }
    let group = shard_id
        .parse::<streamd_proto::ids::ShardId>()
        .ok()
        .and_then(|id| stream.shard(id))
        .map(|sh| sh.group_id);
    tokio::spawn(pump(api.clone(), iterator, group, format, tx));
    let body = axum::body::Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok(Reply::EventStream(body))
}

fn records_event(resp: &v1::GetRecordsResponse, continuation: &str) -> Doc {
    let records = resp
        .records
        .iter()
        .map(|r| {
            Doc::map([
                ("SequenceNumber", Doc::Str(r.sequence_number.clone())),
                (
                    "ApproximateArrivalTimestamp",
                    Doc::Timestamp(r.approximate_arrival_timestamp_ms),
                ),
                ("Data", Doc::Blob(r.data.to_vec())),
                ("PartitionKey", Doc::Str(r.partition_key.clone())),
            ])
        })
        .collect();
    let mut m = vec![
        ("Records".to_string(), Doc::List(records)),
        (
            "ContinuationSequenceNumber".to_string(),
            Doc::Str(continuation.to_string()),
        ),
        (
            "MillisBehindLatest".to_string(),
            Doc::Int(resp.millis_behind_latest),
        ),
    ];
    if !resp.child_shards.is_empty() {
        m.push((
            "ChildShards".into(),
            super::records::child_shards_doc(&resp.child_shards),
        ));
    }
    Doc::Map(m)
}

/// Reads the shard from `iterator` on and sends events until the subscription ends or the
/// subscriber goes away (a failed send).
async fn pump(
    api: KinesisApi,
    mut iterator: String,
    group: Option<u64>,
    format: Format,
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
) {
    let end = Instant::now() + SUBSCRIPTION_LIFETIME;
    // Applied records wake the subscription at once when this node holds a replica; a change
    // seen before a read is marked so none between the read and the wait is missed.
    let mut applied = group.and_then(|g| api.gw.record_notifier(g));
    let mut last_event = Instant::now();
    let mut continuation = String::new();
    while Instant::now() < end {
        if let Some(rx) = applied.as_mut() {
            rx.borrow_and_update();
        }
        let resp = match api
            .gw
            .get_records(v1::GetRecordsRequest {
                shard_iterator: iterator.clone(),
                limit: None,
            })
            .await
        {
            Ok(r) => r,
            Err(e) => {
                let _ = tx
                    .send(Ok(exception(&KinesisError::from_api(&e), format)))
                    .await;
                return;
            }
        };
        if let Some(last) = resp.records.last() {
            continuation = last.sequence_number.clone();
        }
        let has_records = !resp.records.is_empty();
        // The last event of a closed shard names its children, records or not.
        let at_end = resp.next_shard_iterator.is_none();
        if has_records || at_end || last_event.elapsed() >= IDLE_EVENT_EVERY {
            let doc = records_event(&resp, &continuation);
            if tx
                .send(Ok(event(SUBSCRIBE_TO_SHARD_EVENT, format, &doc)))
                .await
                .is_err()
            {
                return;
            }
            last_event = Instant::now();
        }
        match resp.next_shard_iterator {
            Some(next) => iterator = next,
            // The shard is closed and read to its end.
            None => return,
        }
        if !has_records {
            match applied.as_mut() {
                Some(rx) => {
                    let _ = tokio::time::timeout(IDLE_EVENT_EVERY, rx.changed()).await;
                }
                None => tokio::time::sleep(POLL_EVERY).await,
            }
        }
    }
}
