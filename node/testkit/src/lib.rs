//! Real `streamd` processes on real sockets, for integration tests and benchmarks.
//!
//! Map of the crate:
//! - [`cluster`]: [`Cluster::builder`] starts n nodes as child processes (free loopback ports, a
//!   temporary data directory, one log per node) and gives fault handles (`kill9`, `restart`,
//!   `stop_all`/`start_all`, `pause`/`resume`) and clients.
//! - [`wait`]: [`wait_until`] / [`wait_for`], deadline polling. Tests wait on conditions, never on
//!   fixed sleeps.
//! - [`faults`]: signals to node processes; network faults go beside them.
//! - [`probe`], [`ports`], [`logs`]: readiness probes, free ports, log tails.
//! - [`bench`]: the measurement and report of the `streamd-bench` binary.
//!
//! Placement rule: anything that starts, stops or disturbs a node belongs here; assertions about
//! streamd's behaviour belong in the test binaries under `node/server/tests/`.

pub mod bench;
pub mod cluster;
pub mod faults;
pub mod kinesis_http;
pub mod logs;
pub mod ports;
pub mod probe;
pub mod wait;

pub use cluster::{Cluster, ClusterBuilder, default_binary};
pub use wait::{try_wait_for, wait_for, wait_ok, wait_until};
