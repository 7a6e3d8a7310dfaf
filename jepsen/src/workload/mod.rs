//! The workload: writers appending unique values, readers tailing every shard, and the final
//! drain. Everything they do goes into the history as it happens.
//!
//! - `writer.rs`: closed-loop PutRecords of 1-10 fresh values with random partition keys, paced
//!   to a total rate; a value whose outcome was unknown is sent once more, as a real producer
//!   would, so the checker sees legitimate retried duplicates.
//! - `reader.rs`: per reader and shard, iterator chains from TRIM_HORIZON, restarted after the
//!   last record read when a call fails.
//! - `drain.rs`: after healing, every shard from TRIM_HORIZON through every node separately,
//!   repeated until the drains stop growing.
//! - `retention.rs`: with `--retention`, after the drain: records appended around jumps of every
//!   node's wall clock past the retention period, then read until the trim shows, and again
//!   after a node's restart.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use streamd_client::{ClientError, ClientOptions, StreamdClient};

pub mod drain;
pub mod reader;
pub mod retention;
pub mod writer;

/// What every workload task needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    pub stream: String,
    /// Every node's gRPC endpoint, node 1 first.
    pub endpoints: Vec<String>,
    pub seed: u64,
    /// PutRecords calls per second, all writers together.
    pub rate: f64,
    pub request_timeout: Duration,
    /// Partition keys are drawn from this many (`None`: any 32-bit key).
    pub keys: Option<u32>,
}

impl Config {
    /// A client on every node, starting at a different node for each `k` so load spreads.
    pub fn client(&self, k: usize) -> Result<StreamdClient, ClientError> {
        let n = self.endpoints.len().max(1);
        let mut endpoints = self.endpoints.clone();
        endpoints.rotate_left(k % n);
        StreamdClient::connect_with(&endpoints, self.options())
    }

    pub fn options(&self) -> ClientOptions {
        ClientOptions {
            request_timeout: self.request_timeout,
            connect_timeout: Duration::from_secs(1),
            ..ClientOptions::default()
        }
    }

    /// An independent, reproducible random stream for one task.
    pub fn rng(&self, stream: u64) -> StdRng {
        let mut base = StdRng::seed_from_u64(self.seed);
        let salt = base.next_u64();
        StdRng::seed_from_u64(salt ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }
}

impl Config {
    /// The partition key for a random draw: the draw itself, or reduced to the key space, so the
    /// random stream (and so batches and values) is the same whatever the key space.
    pub fn key(&self, draw: u32) -> String {
        let k = match self.keys {
            Some(n) if n > 0 => draw % n,
            _ => draw,
        };
        format!("k{k:08x}")
    }
}

/// A record's data as the value the history names: the UTF-8 text a writer sent, or a marked
/// hex dump (which can only be a phantom).
pub fn value_of(data: &[u8]) -> String {
    match std::str::from_utf8(data) {
        Ok(s) => s.to_string(),
        Err(_) => {
            let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
            format!("<bytes {hex}>")
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;

    fn config() -> Config {
        Config {
            stream: "s".into(),
            endpoints: vec!["a:1".into(), "b:1".into(), "c:1".into()],
            seed: 7,
            rate: 10.0,
            request_timeout: Duration::from_secs(1),
            keys: None,
        }
    }

    #[test]
    fn task_streams_are_reproducible_and_distinct() {
        let c = config();
        let a: u64 = c.rng(1).random();
        assert_eq!(a, c.rng(1).random::<u64>());
        assert_ne!(a, c.rng(2).random::<u64>());
    }

    #[tokio::test]
    async fn clients_start_on_different_nodes() {
        let c = config();
        assert_eq!(c.client(1).unwrap().endpoints()[0], "b:1");
        assert_eq!(c.client(3).unwrap().endpoints()[0], "a:1");
    }

    #[test]
    fn values_are_the_text_sent() {
        assert_eq!(value_of(b"w1-000002"), "w1-000002");
        assert_eq!(value_of(&[0xff, 0x00]), "<bytes ff00>");
    }
}
