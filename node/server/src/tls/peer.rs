//! A node's TLS identity and the cluster CA, loaded from PEM files into tonic's TLS configs:
//! mutual TLS between nodes, and TLS on the public gRPC listener.
//!
//! Nodes trust the cluster CA and nothing else: no system or webpki root store is compiled in
//! (tonic's `tls-ring` feature alone), so a certificate from a public CA cannot pass for a node.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::{CertificateDer, UnixTime};
use tokio_rustls::rustls;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use super::files::{self, Loaded};
use super::{TlsError, names};

/// Warn at load when the node's certificate has fewer days left than this.
const EXPIRY_WARNING_DAYS: i64 = 30;

/// A node's certificate and key, and the cluster CA that every peer's certificate must chain to.
#[derive(Clone)]
pub(crate) struct PeerTls {
    ca_pem: Vec<u8>,
    identity: Identity,
    node_id: Option<u64>,
}

impl std::fmt::Debug for PeerTls {
    // The identity holds the private key: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerTls")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl PeerTls {
    /// Loads the cluster CA (`ca`), and this node's certificate chain (`cert`, leaf first) and
    /// private key (`key`). Checks here what would otherwise surface as handshake failures on
    /// other nodes: the key is the certificate's, the certificate chains to the CA and is
    /// within its dates, and it may serve TLS.
    pub(crate) fn load(ca: &Path, cert: &Path, key: &Path) -> Result<PeerTls, TlsError> {
        let ca_certs = files::certificates(ca)?;
        let chain = files::certificates(cert)?;
        let key_file = files::private_key(key)?;
        files::check_key_matches(&chain, &key_file)?;
        check_chain(&chain, &ca_certs)?;
        check_serves(&chain)?;
        // tonic builds its rustls configs with the process-wide crypto provider. Only ring is
        // compiled in, so rustls would pick it anyway; installing it says so, and keeps the
        // first handshake from panicking should a dependency ever enable a second provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let node_id = names::peer_node_id(&chain.value);
        tracing::debug!(cert = %cert.display(), ?node_id, "loaded node certificate");
        Ok(PeerTls {
            ca_pem: ca_certs.pem,
            identity: Identity::from_pem(&chain.pem, &key_file.pem),
            node_id,
        })
    }

    /// The node id this node's own certificate names (`streamd://node/N`), if any: a node can
    /// refuse to start under a certificate issued for another node.
    pub(crate) fn node_id(&self) -> Option<u64> {
        self.node_id
    }

    /// For the node-to-node listener: every client must present a certificate that chains to
    /// the cluster CA, and the handshake fails otherwise. The handler then reads the sender's
    /// node id from `request.peer_certs()` with [`names::peer_node_id`].
    pub(crate) fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity.clone())
            .client_ca_root(Certificate::from_pem(&self.ca_pem))
            .client_auth_optional(false)
    }

    /// For the public gRPC listener: the same server identity, and client certificates
    /// optional; one that is presented must still chain to the cluster CA, and names its
    /// principal ([`names::principal_name`]).
    pub(crate) fn public_server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity.clone())
            .client_ca_root(Certificate::from_pem(&self.ca_pem))
            .client_auth_optional(true)
    }

    /// For dialing a peer known by `domain` (a DNS name or IP address from its certificate's
    /// SANs): presents this node's certificate and trusts only the cluster CA.
    pub(crate) fn client_config(&self, domain: &str) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(self.identity.clone())
            .domain_name(domain)
    }
}

/// The chain verifies under the CA as a client certificate would at a peer's handshake, today.
fn check_chain(
    chain: &Loaded<Vec<CertificateDer<'static>>>,
    ca: &Loaded<Vec<CertificateDer<'static>>>,
) -> Result<(), TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in &ca.value {
        roots
            .add(cert.clone())
            .map_err(|e| TlsError::BadCertificate {
                path: ca.path.clone(),
                reason: e.to_string(),
            })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| TlsError::BadCertificate {
                path: ca.path.clone(),
                reason: e.to_string(),
            })?;
    let (leaf, intermediates) = chain.value.split_first().ok_or(TlsError::NoCertificate {
        path: chain.path.clone(),
    })?;
    verifier
        .verify_client_cert(leaf, intermediates, UnixTime::now())
        .map_err(|e| TlsError::Untrusted {
            cert: chain.path.clone(),
            ca: ca.path.clone(),
            reason: e.to_string(),
        })?;
    Ok(())
}

/// The leaf may serve TLS (no extended key usage, or one with serverAuth): a node answers its
/// peers as well as dialing them. Warns when it expires soon.
fn check_serves(chain: &Loaded<Vec<CertificateDer<'static>>>) -> Result<(), TlsError> {
    let bad = |reason: String| TlsError::BadCertificate {
        path: chain.path.clone(),
        reason,
    };
    let leaf = chain.value.first().ok_or(TlsError::NoCertificate {
        path: chain.path.clone(),
    })?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf).map_err(|e| bad(e.to_string()))?;
    match parsed.extended_key_usage() {
        Ok(Some(eku)) if !(eku.value.server_auth || eku.value.any) => {
            return Err(bad(
                "its extended key usage lacks serverAuth, and a node serves TLS to its peers \
                 (`streamd certs issue` makes node certificates)"
                    .into(),
            ));
        }
        Ok(_) => {}
        Err(e) => return Err(bad(e.to_string())),
    }
    if let Some(left) = parsed.validity().time_to_expiration()
        && left.whole_days() < EXPIRY_WARNING_DAYS
    {
        tracing::warn!(
            cert = %chain.path.display(),
            days_left = left.whole_days(),
            "node certificate expires soon"
        );
    }
    Ok(())
}
