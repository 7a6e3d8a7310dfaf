//! [`StreamdClient`]: one method per call of `streamd.v1.Streamd`.
//!
//! Reads (describe, list, get) go through [`StreamdClient::read`], which retries on the codes
//! [`crate::retry`] names; everything else goes through [`StreamdClient::write`], which tries once.
//! Both move to the next endpoint when the current one is unreachable or not the leader.

use std::future::Future;

use bytes::Bytes;
use streamd_proto::v1;
use streamd_proto::v1::streamd_client::StreamdClient as Grpc;
use tonic::transport::Channel;

use crate::connect::{ClientOptions, MAX_MESSAGE_BYTES, Pool};
use crate::error::ClientError;
use crate::retry::rotates_endpoint_on;

type GrpcClient = Grpc<Channel>;

/// A cheap-to-clone handle on a streamd cluster. Clones share channels and endpoint rotation.
#[derive(Debug, Clone)]
pub struct StreamdClient {
    pool: Pool,
    options: ClientOptions,
}

/// A PutRecords entry routed by the MD5 of its partition key.
pub fn entry(
    partition_key: impl Into<String>,
    data: impl Into<Bytes>,
) -> v1::PutRecordsRequestEntry {
    v1::PutRecordsRequestEntry {
        data: data.into(),
        partition_key: partition_key.into(),
        explicit_hash_key: None,
        producer_seq: None,
    }
}

impl StreamdClient {
    /// A client on `endpoints` (`host:port` or `http://host:port`) with default options. Channels
    /// connect lazily on first use, so this succeeds while the servers are still down. Must be
    /// called inside a Tokio runtime.
    pub fn connect(endpoints: &[String]) -> Result<Self, ClientError> {
        Self::connect_with(endpoints, ClientOptions::default())
    }

    pub fn connect_with(endpoints: &[String], options: ClientOptions) -> Result<Self, ClientError> {
        Ok(StreamdClient {
            pool: Pool::new(endpoints, &options)?,
            options,
        })
    }

    pub fn endpoints(&self) -> &[String] {
        self.pool.endpoints()
    }

    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    fn grpc(channel: Channel) -> GrpcClient {
        Grpc::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// An idempotent call: retried per the read policy.
    pub(crate) async fn read<Req, Resp, F, Fut>(
        &self,
        op: &'static str,
        req: Req,
        call: F,
    ) -> Result<Resp, ClientError>
    where
        Req: Clone,
        F: Fn(GrpcClient, Req) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let policy = &self.options.read_retry;
        let mut attempt = 0;
        loop {
            let (index, channel) = self.pool.current();
            match call(Self::grpc(channel), req.clone()).await {
                Ok(resp) => return Ok(resp.into_inner()),
                Err(status) => {
                    let err = ClientError::api(op, &status);
                    let code = err.code();
                    if rotates_endpoint_on(code) {
                        self.pool.rotate_from(index);
                    }
                    if !policy.retries(code, attempt) {
                        return Err(err);
                    }
                    tracing::debug!(op, attempt, %code, "retrying read");
                    tokio::time::sleep(policy.backoff(attempt)).await;
                    attempt += 1;
                }
            }
        }
    }

    /// A call that is not safe to repeat blindly: tried once.
    pub(crate) async fn write<Req, Resp, F, Fut>(
        &self,
        op: &'static str,
        req: Req,
        call: F,
    ) -> Result<Resp, ClientError>
    where
        F: FnOnce(GrpcClient, Req) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let (index, channel) = self.pool.current();
        match call(Self::grpc(channel), req).await {
            Ok(resp) => Ok(resp.into_inner()),
            Err(status) => {
                let err = ClientError::api(op, &status);
                if rotates_endpoint_on(err.code()) {
                    self.pool.rotate_from(index);
                }
                Err(err)
            }
        }
    }

    pub async fn create_stream(&self, name: &str, shards: u32) -> Result<(), ClientError> {
        let req = v1::CreateStreamRequest {
            stream_name: name.to_string(),
            shard_count: Some(shards),
            stream_mode: v1::StreamMode::Provisioned as i32,
        };
        self.write("CreateStream", req, |mut c, r| async move {
            c.create_stream(r).await
        })
        .await
        .map(|_| ())
    }

    pub async fn delete_stream(&self, name: &str) -> Result<(), ClientError> {
        let req = v1::DeleteStreamRequest {
            stream_name: name.to_string(),
            enforce_consumer_deletion: false,
        };
        self.write("DeleteStream", req, |mut c, r| async move {
            c.delete_stream(r).await
        })
        .await
        .map(|_| ())
    }

    /// The stream's description with every shard (pages are followed).
    pub async fn describe_stream(&self, name: &str) -> Result<v1::StreamDescription, ClientError> {
        let mut req = v1::DescribeStreamRequest {
            stream_name: name.to_string(),
            limit: None,
            exclusive_start_shard_id: None,
        };
        let mut all: Option<v1::StreamDescription> = None;
        loop {
            let resp = self
                .read("DescribeStream", req.clone(), |mut c, r| async move {
                    c.describe_stream(r).await
                })
                .await?;
            let page = resp.stream_description.ok_or(ClientError::MissingField {
                op: "DescribeStream",
                field: "stream_description",
            })?;
            let more = page.has_more_shards && !page.shards.is_empty();
            let last = page.shards.last().map(|s| s.shard_id.clone());
            match all.as_mut() {
                None => all = Some(page),
                Some(acc) => acc.shards.extend(page.shards),
            }
            if !more {
                break;
            }
            req.exclusive_start_shard_id = last;
        }
        let mut desc = all.ok_or(ClientError::MissingField {
            op: "DescribeStream",
            field: "stream_description",
        })?;
        desc.has_more_shards = false;
        Ok(desc)
    }

    pub async fn describe_stream_summary(
        &self,
        name: &str,
    ) -> Result<v1::StreamDescription, ClientError> {
        let req = v1::DescribeStreamSummaryRequest {
            stream_name: name.to_string(),
        };
        let resp = self
            .read("DescribeStreamSummary", req, |mut c, r| async move {
                c.describe_stream_summary(r).await
            })
            .await?;
        resp.stream_description_summary
            .ok_or(ClientError::MissingField {
                op: "DescribeStreamSummary",
                field: "stream_description_summary",
            })
    }

    /// Every stream's name (pages are followed).
    pub async fn list_streams(&self) -> Result<Vec<String>, ClientError> {
        let mut req = v1::ListStreamsRequest {
            limit: None,
            exclusive_start_stream_name: None,
        };
        let mut names = Vec::new();
        loop {
            let resp = self
                .read("ListStreams", req.clone(), |mut c, r| async move {
                    c.list_streams(r).await
                })
                .await?;
            let more = resp.has_more_streams && !resp.stream_names.is_empty();
            req.exclusive_start_stream_name = resp.stream_names.last().cloned();
            names.extend(resp.stream_names);
            if !more {
                return Ok(names);
            }
        }
    }

    /// Every stream's summary: name, ARN, status, mode, creation time (pages are followed).
    pub async fn list_stream_summaries(&self) -> Result<Vec<v1::StreamSummary>, ClientError> {
        let mut req = v1::ListStreamsRequest {
            limit: None,
            exclusive_start_stream_name: None,
        };
        let mut summaries = Vec::new();
        loop {
            let resp = self
                .read("ListStreams", req.clone(), |mut c, r| async move {
                    c.list_streams(r).await
                })
                .await?;
            let more = resp.has_more_streams && !resp.stream_names.is_empty();
            req.exclusive_start_stream_name = resp.stream_names.last().cloned();
            summaries.extend(resp.stream_summaries);
            if !more {
                return Ok(summaries);
            }
        }
    }

    /// Every shard of the stream, open and closed (follows `next_token`).
    pub async fn list_shards(&self, name: &str) -> Result<Vec<v1::Shard>, ClientError> {
        let mut req = v1::ListShardsRequest {
            stream_name: Some(name.to_string()),
            next_token: None,
            exclusive_start_shard_id: None,
            max_results: None,
            shard_filter: None,
        };
        let mut shards = Vec::new();
        loop {
            let resp = self
                .read("ListShards", req.clone(), |mut c, r| async move {
                    c.list_shards(r).await
                })
                .await?;
            shards.extend(resp.shards);
            match resp.next_token {
                Some(token) if !token.is_empty() => {
                    // Kinesis refuses a stream name alongside a next token.
                    req.stream_name = None;
                    req.next_token = Some(token);
                }
                _ => return Ok(shards),
            }
        }
    }

    /// Starts splitting `shard_id` at `new_starting_hash_key` (decimal); the stream is UPDATING
    /// until the children open.
    pub async fn split_shard(
        &self,
        name: &str,
        shard_id: &str,
        new_starting_hash_key: &str,
    ) -> Result<(), ClientError> {
        let req = v1::SplitShardRequest {
            stream_name: name.to_string(),
            shard_to_split: shard_id.to_string(),
            new_starting_hash_key: new_starting_hash_key.to_string(),
        };
        self.write("SplitShard", req, |mut c, r| async move {
            c.split_shard(r).await
        })
        .await
        .map(|_| ())
    }

    /// Starts merging two adjacent shards.
    pub async fn merge_shards(
        &self,
        name: &str,
        shard_id: &str,
        adjacent_shard_id: &str,
    ) -> Result<(), ClientError> {
        let req = v1::MergeShardsRequest {
            stream_name: name.to_string(),
            shard_to_merge: shard_id.to_string(),
            adjacent_shard_to_merge: adjacent_shard_id.to_string(),
        };
        self.write("MergeShards", req, |mut c, r| async move {
            c.merge_shards(r).await
        })
        .await
        .map(|_| ())
    }

    /// Starts uniform scaling to `target` open shards.
    pub async fn update_shard_count(
        &self,
        name: &str,
        target: u32,
    ) -> Result<v1::UpdateShardCountResponse, ClientError> {
        let req = v1::UpdateShardCountRequest {
            stream_name: name.to_string(),
            target_shard_count: target,
            scaling_type: v1::ScalingType::UniformScaling as i32,
        };
        self.write("UpdateShardCount", req, |mut c, r| async move {
            c.update_shard_count(r).await
        })
        .await
    }

    /// Starts draining node `node_id`: its replicas and leaderships move away, then it leaves.
    pub async fn drain_node(&self, node_id: u64) -> Result<(), ClientError> {
        let req = v1::DrainNodeRequest { node_id };
        self.write(
            "DrainNode",
            req,
            |mut c, r| async move { c.drain_node(r).await },
        )
        .await
        .map(|_| ())
    }

    pub async fn increase_retention(&self, name: &str, hours: u32) -> Result<(), ClientError> {
        let req = v1::UpdateRetentionRequest {
            stream_name: name.to_string(),
            retention_period_hours: hours,
        };
        self.write(
            "IncreaseStreamRetentionPeriod",
            req,
            |mut c, r| async move { c.increase_stream_retention_period(r).await },
        )
        .await
        .map(|_| ())
    }

    pub async fn decrease_retention(&self, name: &str, hours: u32) -> Result<(), ClientError> {
        let req = v1::UpdateRetentionRequest {
            stream_name: name.to_string(),
            retention_period_hours: hours,
        };
        self.write(
            "DecreaseStreamRetentionPeriod",
            req,
            |mut c, r| async move { c.decrease_stream_retention_period(r).await },
        )
        .await
        .map(|_| ())
    }

    /// Never retried: on `Unavailable` the record may or may not have been written.
    pub async fn put_record(
        &self,
        name: &str,
        partition_key: &str,
        data: impl Into<Bytes>,
    ) -> Result<v1::PutRecordResponse, ClientError> {
        self.put_record_with(v1::PutRecordRequest {
            stream_name: name.to_string(),
            data: data.into(),
            partition_key: partition_key.to_string(),
            explicit_hash_key: None,
            sequence_number_for_ordering: None,
        })
        .await
    }

    /// PutRecord with every field under the caller's control (explicit hash key, ordering).
    pub async fn put_record_with(
        &self,
        req: v1::PutRecordRequest,
    ) -> Result<v1::PutRecordResponse, ClientError> {
        self.write(
            "PutRecord",
            req,
            |mut c, r| async move { c.put_record(r).await },
        )
        .await
    }

    /// Never retried. Records may fail one by one: check each result's `error_code`.
    pub async fn put_records(
        &self,
        name: &str,
        records: Vec<v1::PutRecordsRequestEntry>,
    ) -> Result<v1::PutRecordsResponse, ClientError> {
        let req = v1::PutRecordsRequest {
            stream_name: name.to_string(),
            records,
            producer_id: None,
        };
        self.write("PutRecords", req, |mut c, r| async move {
            c.put_records(r).await
        })
        .await
    }

    /// A PutRecords call as built by the caller (an idempotent producer sets `producer_id` and
    /// each entry's `producer_seq`). Never retried.
    pub async fn put_records_request(
        &self,
        req: v1::PutRecordsRequest,
    ) -> Result<v1::PutRecordsResponse, ClientError> {
        self.write("PutRecords", req, |mut c, r| async move {
            c.put_records(r).await
        })
        .await
    }

    /// `starting_sequence_number` is for AT/AFTER_SEQUENCE_NUMBER, `timestamp_ms` for AT_TIMESTAMP.
    pub async fn get_shard_iterator(
        &self,
        name: &str,
        shard_id: &str,
        iterator_type: v1::ShardIteratorType,
        starting_sequence_number: Option<String>,
        timestamp_ms: Option<i64>,
    ) -> Result<String, ClientError> {
        let req = v1::GetShardIteratorRequest {
            stream_name: name.to_string(),
            shard_id: shard_id.to_string(),
            shard_iterator_type: iterator_type as i32,
            starting_sequence_number,
            timestamp_ms,
        };
        let resp = self
            .read("GetShardIterator", req, |mut c, r| async move {
                c.get_shard_iterator(r).await
            })
            .await?;
        Ok(resp.shard_iterator)
    }

    /// `limit` of `None` lets the server choose (up to 10,000 records).
    pub async fn get_records(
        &self,
        shard_iterator: &str,
        limit: Option<u32>,
    ) -> Result<v1::GetRecordsResponse, ClientError> {
        let req = v1::GetRecordsRequest {
            shard_iterator: shard_iterator.to_string(),
            limit,
        };
        self.read("GetRecords", req, |mut c, r| async move {
            c.get_records(r).await
        })
        .await
    }

    pub async fn cluster_status(&self) -> Result<v1::ClusterStatusResponse, ClientError> {
        self.read(
            "ClusterStatus",
            v1::ClusterStatusRequest {},
            |mut c, r| async move { c.cluster_status(r).await },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use streamd_proto::ErrorCode;

    use super::*;
    use crate::retry::RetryPolicy;

    /// A port nothing listens on: bound, then released.
    fn dead_endpoint() -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        addr.to_string()
    }

    #[tokio::test]
    async fn unreachable_server_is_unavailable_and_reads_retry_then_give_up() {
        let options = ClientOptions {
            read_retry: RetryPolicy {
                max_attempts: 3,
                initial_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(2),
            },
            ..ClientOptions::default()
        };
        let client =
            StreamdClient::connect_with(&[dead_endpoint(), dead_endpoint()], options).unwrap();
        let started = Instant::now();
        let err = client.describe_stream_summary("s").await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::Unavailable, "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let err = client
            .put_record("s", "k", b"x".to_vec())
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::Unavailable, "{err}");
    }

    #[test]
    fn entry_routes_by_key() {
        let e = entry("k", b"v".to_vec());
        assert_eq!(e.partition_key, "k");
        assert_eq!(&e.data[..], b"v");
        assert!(e.explicit_hash_key.is_none());
    }
}
