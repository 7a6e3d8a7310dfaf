//! The listener: one port for HTTP/1.1, cleartext HTTP/2 with prior knowledge, and, when a
//! certificate is configured, TLS with ALPN choosing HTTP/2 or HTTP/1.1.
//!
//! Each connection's first byte decides: 0x16 opens a TLS handshake record, anything else is
//! plaintext, where hyper-util's auto builder tells HTTP/2's preface from HTTP/1.1.

use std::future::Future;
use std::io;
use std::path::Path;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;

use crate::router::KinesisApi;

const TLS_HANDSHAKE: u8 = 0x16;

/// Loads a PEM certificate chain and private key for the Kinesis port.
pub fn tls_config(cert: &Path, key: &Path) -> io::Result<Arc<ServerConfig>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| {
            io::Error::other(format!(
                "failed to read certificate {}: {e}",
                cert.display()
            ))
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| {
            io::Error::other(format!(
                "failed to parse certificate {}: {e}",
                cert.display()
            ))
        })?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        io::Error::other(format!("failed to read private key {}: {e}", key.display()))
    })?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(io::Error::other)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

pub async fn serve(
    listener: TcpListener,
    api: KinesisApi,
    tls: Option<Arc<ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let app = axum::Router::new()
        .fallback(crate::router::handle)
        .with_state(api);
    let acceptor = tls.map(TlsAcceptor::from);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(connection(stream, app.clone(), acceptor.clone()));
                }
                Err(e) => tracing::warn!(error = %e, "failed to accept a kinesis connection"),
            },
        }
    }
}

async fn connection(stream: TcpStream, app: axum::Router, acceptor: Option<TlsAcceptor>) {
    let _ = stream.set_nodelay(true);
    let mut first = [0u8; 1];
    let is_tls = matches!(stream.peek(&mut first).await, Ok(1) if first[0] == TLS_HANDSHAKE);
    let service = TowerToHyperService::new(app);
    let builder = auto::Builder::new(TokioExecutor::new());
    let result = match (is_tls, acceptor) {
        (true, Some(acceptor)) => match acceptor.accept(stream).await {
            Ok(tls) => {
                builder
                    .serve_connection_with_upgrades(TokioIo::new(tls), service)
                    .await
            }
            Err(e) => {
                tracing::debug!(error = %e, "tls handshake failed");
                return;
            }
        },
        (true, None) => {
            tracing::debug!("tls connection refused: no certificate is configured");
            return;
        }
        (false, _) => {
            builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "kinesis connection ended with an error");
    }
}
