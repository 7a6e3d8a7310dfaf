//! An in-process gRPC server with scripted answers, to check the client's own behaviour (endpoint
//! rotation, which calls are retried, pagination, when draining stops). It stands in for no part
//! of streamd: cluster behaviour is tested against real nodes in `node/server/tests`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use streamd_proto::v1::streamd_server::{Streamd, StreamdServer};
use streamd_proto::{ApiError, ErrorCode, v1};
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use crate::client::{StreamdClient, entry};
use crate::connect::ClientOptions;
use crate::retry::RetryPolicy;

type Calls = std::sync::Arc<Mutex<HashMap<&'static str, u32>>>;

#[derive(Default)]
struct Stub {
    calls: Calls,
}

impl Stub {
    /// Counts the call and returns how many came before it.
    fn count(&self, op: &'static str) -> u32 {
        let mut calls = self.calls.lock().unwrap();
        let n = calls.entry(op).or_default();
        *n += 1;
        *n - 1
    }
}

fn shard(i: u64) -> v1::Shard {
    v1::Shard {
        shard_id: format!("shardId-{i:012}"),
        ..Default::default()
    }
}

fn record(seq: u64) -> v1::Record {
    v1::Record {
        sequence_number: seq.to_string(),
        ..Default::default()
    }
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl Streamd for Stub {
    async fn create_stream(
        &self,
        _: Request<v1::CreateStreamRequest>,
    ) -> Answer<v1::CreateStreamResponse> {
        self.count("CreateStream");
        Err(ApiError::new(ErrorCode::ResourceInUse, "exists").to_status())
    }
    async fn delete_stream(
        &self,
        _: Request<v1::DeleteStreamRequest>,
    ) -> Answer<v1::DeleteStreamResponse> {
        Err(Status::unimplemented("stub"))
    }
    async fn describe_stream(
        &self,
        req: Request<v1::DescribeStreamRequest>,
    ) -> Answer<v1::DescribeStreamResponse> {
        self.count("DescribeStream");
        let start = req.into_inner().exclusive_start_shard_id;
        let (shards, more) = match start.as_deref() {
            None => (vec![shard(0), shard(1)], true),
            Some("shardId-000000000001") => (vec![shard(2)], false),
            Some(other) => return Err(ApiError::invalid(other.to_string()).to_status()),
        };
        let desc = v1::StreamDescription {
            shards,
            has_more_shards: more,
            ..Default::default()
        };
        Ok(Response::new(v1::DescribeStreamResponse {
            stream_description: Some(desc),
        }))
    }
    async fn describe_stream_summary(
        &self,
        _: Request<v1::DescribeStreamSummaryRequest>,
    ) -> Answer<v1::DescribeStreamSummaryResponse> {
        // Not the leader on the first call, CREATING on the second, ACTIVE from then on.
        let status = match self.count("DescribeStreamSummary") {
            0 => return Err(ApiError::not_leader(Some(2)).to_status()),
            1 => v1::StreamStatus::Creating,
            _ => v1::StreamStatus::Active,
        };
        let desc = v1::StreamDescription {
            stream_status: status as i32,
            ..Default::default()
        };
        Ok(Response::new(v1::DescribeStreamSummaryResponse {
            stream_description_summary: Some(desc),
        }))
    }
    async fn list_streams(
        &self,
        req: Request<v1::ListStreamsRequest>,
    ) -> Answer<v1::ListStreamsResponse> {
        let (names, more) = match req.into_inner().exclusive_start_stream_name.as_deref() {
            None => (vec!["a".to_string(), "b".to_string()], true),
            Some("b") => (vec!["c".to_string()], false),
            Some(other) => return Err(ApiError::invalid(other.to_string()).to_status()),
        };
        Ok(Response::new(v1::ListStreamsResponse {
            stream_names: names,
            has_more_streams: more,
            stream_summaries: vec![],
        }))
    }
    async fn list_shards(
        &self,
        req: Request<v1::ListShardsRequest>,
    ) -> Answer<v1::ListShardsResponse> {
        let req = req.into_inner();
        match (req.stream_name.as_deref(), req.next_token.as_deref()) {
            (Some("s"), None) => Ok(Response::new(v1::ListShardsResponse {
                shards: vec![shard(0)],
                next_token: Some("page-2".into()),
            })),
            (None, Some("page-2")) => Ok(Response::new(v1::ListShardsResponse {
                shards: vec![shard(1)],
                next_token: None,
            })),
            _ => Err(ApiError::invalid("stream name and next token together").to_status()),
        }
    }
    async fn increase_stream_retention_period(
        &self,
        _: Request<v1::UpdateRetentionRequest>,
    ) -> Answer<v1::UpdateRetentionResponse> {
        Err(Status::unimplemented("stub"))
    }
    async fn decrease_stream_retention_period(
        &self,
        _: Request<v1::UpdateRetentionRequest>,
    ) -> Answer<v1::UpdateRetentionResponse> {
        Err(Status::unimplemented("stub"))
    }
    async fn put_record(&self, _: Request<v1::PutRecordRequest>) -> Answer<v1::PutRecordResponse> {
        self.count("PutRecord");
        Ok(Response::new(v1::PutRecordResponse {
            shard_id: shard(0).shard_id,
            sequence_number: "1".into(),
            encryption_type: "NONE".into(),
        }))
    }
    async fn put_records(
        &self,
        _: Request<v1::PutRecordsRequest>,
    ) -> Answer<v1::PutRecordsResponse> {
        self.count("PutRecords");
        Err(ApiError::new(ErrorCode::Unavailable, "no leader in time").to_status())
    }
    async fn get_shard_iterator(
        &self,
        _: Request<v1::GetShardIteratorRequest>,
    ) -> Answer<v1::GetShardIteratorResponse> {
        Ok(Response::new(v1::GetShardIteratorResponse {
            shard_iterator: "it-0".into(),
        }))
    }
    async fn get_records(
        &self,
        req: Request<v1::GetRecordsRequest>,
    ) -> Answer<v1::GetRecordsResponse> {
        self.count("GetRecords");
        let page = |records: Vec<v1::Record>, next: Option<&str>, behind: i64| {
            Ok(Response::new(v1::GetRecordsResponse {
                records,
                next_shard_iterator: next.map(str::to_string),
                millis_behind_latest: behind,
                child_shards: vec![],
            }))
        };
        match req.into_inner().shard_iterator.as_str() {
            "it-0" => page(vec![record(1), record(2)], Some("it-1"), 5),
            // An empty page that is still behind: the drain must go on.
            "it-1" => page(vec![], Some("it-2"), 5),
            "it-2" => page(vec![record(3)], Some("it-3"), 0),
            "it-3" => page(vec![], Some("it-4"), 0),
            // A closed shard's end.
            "closed" => page(vec![record(9)], None, 0),
            other => Err(ApiError::invalid(format!("unexpected iterator {other}")).to_status()),
        }
    }
    async fn cluster_status(
        &self,
        _: Request<v1::ClusterStatusRequest>,
    ) -> Answer<v1::ClusterStatusResponse> {
        Err(Status::unimplemented("stub"))
    }
}

async fn serve() -> (String, Stub) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let stub = Stub::default();
    let service = StreamdServer::new(Stub {
        calls: stub.calls.clone(),
    });
    tokio::spawn(
        Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    (addr, stub)
}

fn dead_endpoint() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    addr
}

fn fast_retries() -> ClientOptions {
    ClientOptions {
        read_retry: RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
        },
        ..ClientOptions::default()
    }
}

#[tokio::test]
async fn reads_rotate_past_a_dead_endpoint_and_retry_not_leader() {
    let (addr, stub) = serve().await;
    let client = StreamdClient::connect_with(&[dead_endpoint(), addr], fast_retries()).unwrap();
    // Attempt 1: dead endpoint (Unavailable, rotate). Attempt 2: NotLeader. Attempt 3: CREATING.
    let desc = client.describe_stream_summary("s").await.unwrap();
    assert_eq!(desc.stream_status(), v1::StreamStatus::Creating);
    let desc = client
        .wait_stream_active("s", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(desc.stream_status(), v1::StreamStatus::Active);
    assert_eq!(stub.calls.lock().unwrap()["DescribeStreamSummary"], 3);
}

#[tokio::test]
async fn writes_are_tried_once() {
    let (addr, stub) = serve().await;
    let client = StreamdClient::connect_with(&[dead_endpoint(), addr], fast_retries()).unwrap();
    // The dead endpoint fails the put, which is not retried, but the next call goes elsewhere.
    let err = client
        .put_record("s", "k", b"v".to_vec())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unavailable);
    assert!(!stub.calls.lock().unwrap().contains_key("PutRecord"));
    client.put_record("s", "k", b"v".to_vec()).await.unwrap();
    let err = client.create_stream("s", 1).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::ResourceInUse);
    // An Unavailable answer from the server itself is not retried either (and moves the client
    // on to the next endpoint, the dead one).
    let err = client
        .put_records("s", vec![entry("k", b"v".to_vec())])
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unavailable);
    let calls = stub.calls.lock().unwrap();
    assert_eq!((calls["PutRecords"], calls["CreateStream"]), (1, 1));
}

#[tokio::test]
async fn listings_follow_their_pages() {
    let (addr, _stub) = serve().await;
    let client = StreamdClient::connect_with(&[addr], fast_retries()).unwrap();
    let shards = client.list_shards("s").await.unwrap();
    let ids: Vec<_> = shards.iter().map(|s| s.shard_id.as_str()).collect();
    assert_eq!(ids, ["shardId-000000000000", "shardId-000000000001"]);
    let desc = client.describe_stream("s").await.unwrap();
    assert_eq!(desc.shards.len(), 3);
    assert!(!desc.has_more_shards);
    assert_eq!(client.list_streams().await.unwrap(), ["a", "b", "c"]);
}

#[tokio::test]
async fn a_drain_stops_at_the_tip_or_the_end_of_a_closed_shard() {
    let (addr, stub) = serve().await;
    let client = StreamdClient::connect_with(&[addr], fast_retries()).unwrap();
    let records = client
        .read_shard_all("s", "shardId-000000000000")
        .await
        .unwrap();
    let seqs: Vec<_> = records.iter().map(|r| r.sequence_number.as_str()).collect();
    assert_eq!(seqs, ["1", "2", "3"]);
    assert_eq!(stub.calls.lock().unwrap()["GetRecords"], 4);
    let records = client.read_from_iterator("closed").await.unwrap();
    assert_eq!(records.len(), 1);
}

#[tokio::test]
async fn a_read_error_that_is_not_retryable_surfaces_at_once() {
    let (addr, stub) = serve().await;
    let client = StreamdClient::connect_with(&[addr], fast_retries()).unwrap();
    let err = client.get_records("garbage", None).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    assert_eq!(stub.calls.lock().unwrap()["GetRecords"], 1);
}
