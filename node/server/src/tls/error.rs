//! What can go wrong with certificate material, naming the file and what is wrong with it, so
//! an operator can fix the file without reading code.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    #[error("{} does not exist", path.display())]
    Missing { path: PathBuf },
    #[error("failed to read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} already exists: pass --force to replace it", path.display())]
    Exists { path: PathBuf },
    #[error("{} is not valid PEM: {source}", path.display())]
    Pem {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("no certificate in {}: expected a PEM block BEGIN CERTIFICATE", path.display())]
    NoCertificate { path: PathBuf },
    #[error(
        "no private key in {}: expected a PEM block BEGIN PRIVATE KEY, BEGIN EC PRIVATE KEY or \
         BEGIN RSA PRIVATE KEY",
        path.display()
    )]
    NoKey { path: PathBuf },
    #[error("certificate in {} cannot be used: {reason}", path.display())]
    BadCertificate { path: PathBuf, reason: String },
    #[error("private key {} cannot be used: {reason}", path.display())]
    BadKey { path: PathBuf, reason: String },
    #[error("private key {} does not match the certificate {}", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("certificate {} is not a CA certificate (basicConstraints CA:TRUE missing)", path.display())]
    NotCa { path: PathBuf },
    #[error("certificate {} is not valid under the CA in {}: {reason}", cert.display(), ca.display())]
    Untrusted {
        cert: PathBuf,
        ca: PathBuf,
        reason: String,
    },
    #[error(
        "the certificate would outlive the CA {} ({days_left} days left): pass a smaller \
         --days, or make a new CA",
        ca.display()
    )]
    OutlivesCa { ca: PathBuf, days_left: i64 },
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        what: &'static str,
        value: String,
        reason: String,
    },
    #[error("failed to sign the {what}: {source}")]
    Sign {
        what: &'static str,
        source: rcgen::Error,
    },
}
