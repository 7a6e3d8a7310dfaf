//! TLS material: the certificates nodes and clients present, and the tonic configs that check
//! them.
//!
//! - `issue.rs`: a development cluster CA and the node and client certificates it signs
//!   (rcgen, in memory); `crate::certs` (`streamd certs ...`) writes them to files.
//! - `names.rs`: who a certificate names, as URI SANs: `streamd://node/N` and
//!   `streamd://principal/NAME`; written by `issue.rs`, read back from a verified peer's chain.
//! - `peer.rs`: [`PeerTls`], PEM files to tonic's `ServerTlsConfig` (client certificates
//!   required between nodes, optional on the public listener) and `ClientTlsConfig`, trusting
//!   the cluster CA alone.
//! - `files.rs`: reading PEM files and writing keys readable by their owner only.
//! - `error.rs`: [`TlsError`], which names the file and what is wrong with it.
//!
//! Placement: whatever reads, writes or interprets certificates goes here; which listener or
//! channel uses them is the composition root's business (`node.rs`). Nothing here opens a socket.

// Until the node's listeners and peer channels take `PeerTls`, only `streamd certs` and the tests
// use this module; the expectation turns into a warning once they do, so it cannot outstay that.
#![cfg_attr(
    not(test),
    expect(
        dead_code,
        unused_imports,
        reason = "PeerTls and the name checks are not wired into node.rs yet"
    )
)]

mod error;
mod files;
mod issue;
mod names;
mod peer;

#[cfg(test)]
mod peer_tests;

pub(crate) use error::TlsError;
pub(crate) use files::{Access, ensure_absent, write};
pub(crate) use issue::{CA_DAYS, Ca, Issued, LEAF_DAYS, NodeIdentity, new_ca};
pub(crate) use names::{peer_node_id, principal_name};
pub(crate) use peer::PeerTls;
