//! A minimal Kinesis JSON 1.1 caller for the benchmark: raw HTTP/1.1 POSTs with keep-alive, so
//! the figures measure the server's Kinesis front door rather than an SDK.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use streamd_proto::v1;

#[derive(Debug, thiserror::Error)]
pub enum KinesisCallError {
    #[error("{0}: {1}")]
    Api(String, String),
    #[error("transport: {0}")]
    Transport(String),
}

impl KinesisCallError {
    pub fn name(&self) -> &str {
        match self {
            KinesisCallError::Api(t, _) => t,
            KinesisCallError::Transport(_) => "Transport",
        }
    }
}

#[derive(Clone)]
pub struct KinesisHttp {
    client: Client<HttpConnector, Full<Bytes>>,
    endpoint: String,
}

impl KinesisHttp {
    pub fn new(endpoint: &str) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        KinesisHttp {
            client: Client::builder(TokioExecutor::new()).build(connector),
            endpoint: if endpoint.starts_with("http") {
                endpoint.to_string()
            } else {
                format!("http://{endpoint}")
            },
        }
    }

    pub async fn call(&self, action: &str, body: Value) -> Result<Value, KinesisCallError> {
        let req = http::Request::post(&self.endpoint)
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", format!("Kinesis_20131202.{action}"))
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| KinesisCallError::Transport(e.to_string()))?;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| KinesisCallError::Transport(e.to_string()))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| KinesisCallError::Transport(e.to_string()))?
            .to_bytes();
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| KinesisCallError::Transport(e.to_string()))?;
        if status.is_success() {
            Ok(v)
        } else {
            Err(KinesisCallError::Api(
                v["__type"].as_str().unwrap_or("Unknown").to_string(),
                v["message"].as_str().unwrap_or("").to_string(),
            ))
        }
    }

    /// PutRecords; the answer in the gRPC API's shape, so the benchmark's bookkeeping is shared.
    pub async fn put_records(
        &self,
        stream: &str,
        records: &[v1::PutRecordsRequestEntry],
    ) -> Result<v1::PutRecordsResponse, KinesisCallError> {
        let recs: Vec<Value> = records
            .iter()
            .map(|r| json!({"Data": STANDARD.encode(&r.data), "PartitionKey": r.partition_key}))
            .collect();
        let v = self
            .call("PutRecords", json!({"StreamName": stream, "Records": recs}))
            .await?;
        let results = v["Records"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| v1::PutRecordsResultEntry {
                        sequence_number: r["SequenceNumber"].as_str().map(str::to_string),
                        shard_id: r["ShardId"].as_str().map(str::to_string),
                        error_code: r["ErrorCode"].as_str().map(str::to_string),
                        error_message: r["ErrorMessage"].as_str().map(str::to_string),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(v1::PutRecordsResponse {
            failed_record_count: v["FailedRecordCount"].as_u64().unwrap_or(0) as u32,
            records: results,
            encryption_type: "NONE".into(),
        })
    }

    pub async fn shard_ids(&self, stream: &str) -> Result<Vec<String>, KinesisCallError> {
        let v = self
            .call("ListShards", json!({"StreamName": stream}))
            .await?;
        Ok(v["Shards"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s["ShardId"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    pub async fn trim_horizon(
        &self,
        stream: &str,
        shard: &str,
    ) -> Result<String, KinesisCallError> {
        let v = self
            .call(
                "GetShardIterator",
                json!({"StreamName": stream, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"}),
            )
            .await?;
        Ok(v["ShardIterator"].as_str().unwrap_or_default().to_string())
    }

    /// One GetRecords page: (records, bytes of data, next iterator, at the tip).
    pub async fn get_records(
        &self,
        iterator: &str,
    ) -> Result<(u64, u64, Option<String>, bool), KinesisCallError> {
        let v = self
            .call(
                "GetRecords",
                json!({"ShardIterator": iterator, "Limit": 10000}),
            )
            .await?;
        let records = v["Records"].as_array().cloned().unwrap_or_default();
        let bytes: u64 = records
            .iter()
            .filter_map(|r| r["Data"].as_str())
            .map(|d| STANDARD.decode(d).map(|b| b.len() as u64).unwrap_or(0))
            .sum();
        let at_tip = records.is_empty() && v["MillisBehindLatest"].as_i64().unwrap_or(0) == 0;
        Ok((
            records.len() as u64,
            bytes,
            v["NextShardIterator"].as_str().map(str::to_string),
            at_tip,
        ))
    }
}
