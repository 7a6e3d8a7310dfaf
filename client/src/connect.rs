//! Endpoints and channels: one lazy tonic channel per endpoint, a shared "current endpoint"
//! index, and rotation to the next endpoint when the current one fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::error::ClientError;
use crate::retry::RetryPolicy;

/// Largest message the client sends or accepts: GetRecords answers up to 10 MiB of data plus
/// framing, and PutRecords requests up to 5 MiB.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Deadline of one call (a call past it fails as `Unavailable`, its outcome unknown).
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// How idempotent reads are retried.
    pub read_retry: RetryPolicy,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            read_retry: RetryPolicy::default(),
        }
    }
}

/// `host:port` or a full `http://` / `https://` URI, as a URI.
pub fn endpoint_uri(endpoint: &str) -> String {
    let e = endpoint.trim();
    if e.starts_with("http://") || e.starts_with("https://") {
        e.to_string()
    } else {
        format!("http://{e}")
    }
}

/// The channels of a client. Cloning shares the channels and the current index.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    endpoints: Arc<[String]>,
    channels: Arc<[Channel]>,
    current: Arc<AtomicUsize>,
}

impl Pool {
    /// Builds one lazy channel per endpoint; nothing connects until the first call. Must run
    /// inside a Tokio runtime (each channel spawns its worker task).
    pub(crate) fn new(endpoints: &[String], options: &ClientOptions) -> Result<Pool, ClientError> {
        if endpoints.is_empty() {
            return Err(ClientError::NoEndpoints);
        }
        let mut channels = Vec::with_capacity(endpoints.len());
        for e in endpoints {
            let endpoint = Endpoint::from_shared(endpoint_uri(e))
                .map_err(|source| ClientError::InvalidEndpoint {
                    endpoint: e.clone(),
                    source,
                })?
                .connect_timeout(options.connect_timeout)
                .timeout(options.request_timeout)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(10))
                .keep_alive_timeout(Duration::from_secs(5));
            channels.push(endpoint.connect_lazy());
        }
        Ok(Pool {
            endpoints: endpoints.to_vec().into(),
            channels: channels.into(),
            current: Arc::new(AtomicUsize::new(0)),
        })
    }

    pub(crate) fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// The index and channel calls go to now.
    pub(crate) fn current(&self) -> (usize, Channel) {
        let i = self.current.load(Ordering::Relaxed) % self.channels.len();
        (i, self.channels[i].clone())
    }

    /// Moves to the endpoint after `failed`, unless another caller already moved on.
    pub(crate) fn rotate_from(&self, failed: usize) {
        let next = (failed + 1) % self.channels.len();
        let _ = self
            .current
            .compare_exchange(failed, next, Ordering::Relaxed, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_host_port_gets_a_scheme() {
        assert_eq!(endpoint_uri("127.0.0.1:50051"), "http://127.0.0.1:50051");
        assert_eq!(endpoint_uri("http://a:1"), "http://a:1");
        assert_eq!(endpoint_uri("https://a:1"), "https://a:1");
    }

    #[tokio::test]
    async fn rotation_wraps_and_ignores_stale_failures() {
        let eps = vec!["127.0.0.1:1".to_string(), "127.0.0.1:2".to_string()];
        let pool = Pool::new(&eps, &ClientOptions::default()).unwrap();
        assert_eq!(pool.current().0, 0);
        pool.rotate_from(0);
        assert_eq!(pool.current().0, 1);
        // A second caller that also saw endpoint 0 fail must not skip endpoint 1.
        pool.rotate_from(0);
        assert_eq!(pool.current().0, 1);
        pool.rotate_from(1);
        assert_eq!(pool.current().0, 0);
    }

    #[tokio::test]
    async fn empty_and_bad_endpoints_are_refused() {
        assert!(matches!(
            Pool::new(&[], &ClientOptions::default()),
            Err(ClientError::NoEndpoints)
        ));
        let bad = vec!["http://exa mple:1".to_string()];
        assert!(matches!(
            Pool::new(&bad, &ClientOptions::default()),
            Err(ClientError::InvalidEndpoint { .. })
        ));
    }
}
