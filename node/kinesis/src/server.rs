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
use tokio::sync::watch;
use tokio::task::JoinSet;
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

/// Accepts connections until `shutdown` resolves, then asks every open connection to finish
/// its in-flight requests and close (HTTP/1.1 closes after the current response, HTTP/2 sends
/// GOAWAY), and returns once all have closed. Callers bound the wait: dropping the future drops
/// the connections still open.
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
    let (closing_tx, closing) = watch::channel(false);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(connection(stream, app.clone(), acceptor.clone(), closing.clone()));
                }
                Err(e) => tracing::warn!(error = %e, "failed to accept a kinesis connection"),
            },
        }
        // Reap finished connections so the set holds only open ones.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = closing_tx.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Serves one connection until it ends, or until `closing` turns true and its in-flight
/// requests are answered.
async fn serve_until_closing<I>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    service: TowerToHyperService<axum::Router>,
    mut closing: watch::Receiver<bool>,
) -> Result<(), BoxError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let mut conn = std::pin::pin!(builder.serve_connection_with_upgrades(io, service));
    tokio::select! {
        r = conn.as_mut() => return r,
        _ = closing.wait_for(|c| *c) => {}
    }
    conn.as_mut().graceful_shutdown();
    conn.await
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn connection(
    stream: TcpStream,
    app: axum::Router,
    acceptor: Option<TlsAcceptor>,
    closing: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let mut first = [0u8; 1];
    let is_tls = matches!(stream.peek(&mut first).await, Ok(1) if first[0] == TLS_HANDSHAKE);
    let service = TowerToHyperService::new(app);
    let builder = auto::Builder::new(TokioExecutor::new());
    let result = match (is_tls, acceptor) {
        (true, Some(acceptor)) => match acceptor.accept(stream).await {
            Ok(tls) => serve_until_closing(&builder, TokioIo::new(tls), service, closing).await,
            Err(e) => {
                tracing::debug!(error = %e, "tls handshake failed");
                return;
            }
        },
        (true, None) => {
            tracing::debug!("tls connection refused: no certificate is configured");
            return;
        }
        (false, _) => serve_until_closing(&builder, TokioIo::new(stream), service, closing).await,
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "kinesis connection ended with an error");
    }
}
