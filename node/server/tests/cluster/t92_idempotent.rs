//! Idempotent writes: an acknowledgement lost after the commit, then the retry.
//!
//! A TCP proxy between the client and a node forwards requests but swallows every reply, so a
//! PutRecords commits on the cluster while its caller times out with an unknown outcome. The
//! retry of the same records goes out directly. With a producer id the shard answers the retry
//! with the first sequence numbers and stores nothing new; without one, the same steps store
//! the records twice (the control, which shows the test can fail).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use streamd_client::{ClientOptions, StreamdClient, v1};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use crate::{bounded, create_active, start_cluster};

/// Forwards client bytes to `upstream`; replies are forwarded only while `replies` is true.
async fn reply_dropping_proxy(upstream: SocketAddr, replies: Arc<AtomicBool>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(upstream).await else {
                continue;
            };
            let replies = replies.clone();
            let (mut client_r, mut client_w) = client.into_split();
            let (mut server_r, mut server_w) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut client_r, &mut server_w).await;
            });
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match server_r.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if replies.load(Ordering::SeqCst)
                        && tokio::io::AsyncWriteExt::write_all(&mut client_w, &buf[..n])
                            .await
                            .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn entries(tag: &str, producer: bool) -> Vec<v1::PutRecordsRequestEntry> {
    (0..5u64)
        .map(|i| v1::PutRecordsRequestEntry {
            data: format!("{tag}-{i}").into_bytes().into(),
            partition_key: format!("key-{i}"),
            explicit_hash_key: None,
            producer_seq: producer.then_some(100 + i),
        })
        .collect()
}

/// Every record of the stream whose data starts with `tag`, as (data, sequence number).
async fn stored(client: &StreamdClient, stream: &str, tag: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for shard in client.list_shards(stream).await.unwrap() {
        for r in client
            .read_shard_all(stream, &shard.shard_id)
            .await
            .unwrap()
        {
            let data = String::from_utf8_lossy(&r.data).to_string();
            if data.starts_with(tag) {
                out.push((data, r.sequence_number));
            }
        }
    }
    out.sort();
    out
}

/// Sends the records through the reply-dropping proxy (the caller sees a timeout), waits until
/// the cluster holds them, then retries directly; returns the retry's answer and what is stored.
async fn lose_ack_then_retry(
    cluster: &streamd_testkit::Cluster,
    stream: &str,
    tag: &str,
    producer_id: Option<u64>,
) -> (v1::PutRecordsResponse, Vec<(String, String)>) {
    let replies = Arc::new(AtomicBool::new(false));
    let node = cluster.node_ids()[0];
    let proxy = reply_dropping_proxy(cluster.grpc_addr(node), replies.clone()).await;
    let through_proxy = StreamdClient::connect_with(
        &[proxy.to_string()],
        ClientOptions {
            request_timeout: Duration::from_secs(2),
            ..Default::default()
        },
    )
    .unwrap();
    let req = v1::PutRecordsRequest {
        stream_name: stream.to_string(),
        records: entries(tag, producer_id.is_some()),
        producer_id,
    };
    let lost = through_proxy.put_records_request(req.clone()).await;
    assert!(
        lost.is_err(),
        "the reply must not reach the caller: {lost:?}"
    );
    let direct = cluster.client();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while stored(&direct, stream, tag).await.len() < 5 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the write behind the lost reply never committed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let retry = direct.put_records_request(req).await.unwrap();
    (retry, stored(&direct, stream, tag).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_after_a_lost_acknowledgement_is_not_written_twice() {
    let cluster = start_cluster(3, true).await;
    bounded(Duration::from_secs(90), "idempotent retry", async {
        let client = cluster.client();
        create_active(&client, "idem", 2).await;

        let (retry, stored) = lose_ack_then_retry(&cluster, "idem", "idem", Some(77)).await;
        assert_eq!(retry.failed_record_count, 0, "{retry:?}");
        assert_eq!(stored.len(), 5, "stored once each: {stored:?}");
        for (i, r) in retry.records.iter().enumerate() {
            let first = stored
                .iter()
                .find(|(d, _)| *d == format!("idem-{i}"))
                .unwrap();
            assert_eq!(
                r.sequence_number.as_deref(),
                Some(first.1.as_str()),
                "the retry of record {i} must get its first sequence number"
            );
        }

        // A new record of the same producer is written as usual.
        let next = client
            .put_records_request(v1::PutRecordsRequest {
                stream_name: "idem".into(),
                records: vec![v1::PutRecordsRequestEntry {
                    data: b"idem-next".to_vec().into(),
                    partition_key: "key-0".into(),
                    explicit_hash_key: None,
                    producer_seq: Some(200),
                }],
                producer_id: Some(77),
            })
            .await
            .unwrap();
        assert_eq!(next.failed_record_count, 0);

        // The control: the same steps without a producer id store every record twice.
        let (retry, stored) = lose_ack_then_retry(&cluster, "idem", "plain", None).await;
        assert_eq!(retry.failed_record_count, 0);
        assert_eq!(stored.len(), 10, "a plain retry duplicates: {stored:?}");

        // Mixed requests are refused as a whole.
        let bad = client
            .put_records_request(v1::PutRecordsRequest {
                stream_name: "idem".into(),
                records: entries("bad", false),
                producer_id: Some(77),
            })
            .await
            .unwrap_err();
        assert_eq!(
            bad.code(),
            streamd_client::ErrorCode::InvalidArgument,
            "{bad}"
        );
    })
    .await;
}
