//! Waiting for a stream to reach a status, by polling under a deadline.

use std::time::Duration;

use streamd_proto::{ErrorCode, v1};
use tokio::time::Instant;

use crate::client::StreamdClient;
use crate::error::ClientError;

impl StreamdClient {
    /// Polls DescribeStreamSummary until the stream is ACTIVE and returns its summary. "Not found"
    /// and retryable errors count as "not yet" (a stream just created may not have reached the
    /// node asked); any other error ends the wait.
    pub async fn wait_stream_active(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<v1::StreamDescription, ClientError> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(50);
        loop {
            let last = match self.describe_stream_summary(name).await {
                Ok(d) if d.stream_status() == v1::StreamStatus::Active => return Ok(d),
                Ok(d) => format!("status {}", d.stream_status().as_str_name()),
                Err(e) if e.retryable() || e.code() == ErrorCode::ResourceNotFound => e.to_string(),
                Err(e) => return Err(e),
            };
            if Instant::now() + pause > deadline {
                return Err(ClientError::Timeout {
                    what: format!("stream {name} to become ACTIVE"),
                    after: timeout,
                    last,
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }
}
