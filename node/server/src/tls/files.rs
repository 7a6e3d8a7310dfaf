//! Certificate and key files: reading PEM with errors that name the file, and writing keys
//! readable by their owner only.

use std::io::Write;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;

use super::TlsError;

/// A PEM file's bytes and what they hold.
pub(crate) struct Loaded<T> {
    pub(crate) path: PathBuf,
    pub(crate) pem: Vec<u8>,
    pub(crate) value: T,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => TlsError::Missing {
            path: path.to_path_buf(),
        },
        _ => TlsError::Read {
            path: path.to_path_buf(),
            source,
        },
    })
}

/// Every certificate in a PEM file, in file order (leaf first for a chain); at least one.
pub(crate) fn certificates(path: &Path) -> Result<Loaded<Vec<CertificateDer<'static>>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    for cert in &certs {
        if let Err(e) = x509_parser::parse_x509_certificate(cert) {
            return Err(TlsError::BadCertificate {
                path: path.to_path_buf(),
                reason: e.to_string(),
            });
        }
    }
    Ok(Loaded {
        path: path.to_path_buf(),
        pem,
        value: certs,
    })
}

/// The first private key in a PEM file (PKCS#8, SEC1 or PKCS#1).
pub(crate) fn private_key(path: &Path) -> Result<Loaded<PrivateKeyDer<'static>>, TlsError> {
    let pem = read(path)?;
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|source| match source {
        pem::Error::NoItemsFound => TlsError::NoKey {
            path: path.to_path_buf(),
        },
        source => TlsError::Pem {
            path: path.to_path_buf(),
            source,
        },
    })?;
    Ok(Loaded {
        path: path.to_path_buf(),
        pem,
        value: key,
    })
}

/// Checks that `key` is the private key of the leaf of `certs`: a mismatched pair would only
/// show up as failed handshakes on the other side, far from the file that is wrong.
pub(crate) fn check_key_matches(
    certs: &Loaded<Vec<CertificateDer<'static>>>,
    key: &Loaded<PrivateKeyDer<'static>>,
) -> Result<(), TlsError> {
    let provider = rustls::crypto::ring::default_provider();
    match rustls::sign::CertifiedKey::from_der(
        certs.value.clone(),
        key.value.clone_key(),
        &provider,
    ) {
        Ok(_) => Ok(()),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::KeyMismatch {
                cert: certs.path.clone(),
                key: key.path.clone(),
            })
        }
        Err(rustls::Error::InvalidCertificate(e)) => Err(TlsError::BadCertificate {
            path: certs.path.clone(),
            reason: format!("{e:?}"),
        }),
        Err(e) => Err(TlsError::BadKey {
            path: key.path.clone(),
            reason: e.to_string(),
        }),
    }
}

/// Fails with [`TlsError::Exists`] on the first of `paths` that exists, unless `force`: checked
/// for every file before any is written, so a refusal leaves nothing half-replaced.
pub(crate) fn ensure_absent(paths: &[&Path], force: bool) -> Result<(), TlsError> {
    match paths.iter().find(|p| !force && p.exists()) {
        Some(p) => Err(TlsError::Exists {
            path: p.to_path_buf(),
        }),
        None => Ok(()),
    }
}

/// Who may read a file [`write`] creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Certificates: public by nature.
    Public,
    /// Private keys: the owner only (0600).
    OwnerOnly,
}

/// Writes a new file, replacing an existing one only when `force`.
pub(crate) fn write(
    path: &Path,
    contents: &str,
    access: Access,
    force: bool,
) -> Result<(), TlsError> {
    let failed = |source| TlsError::Write {
        path: path.to_path_buf(),
        source,
    };
    if force {
        // Removed rather than truncated: an existing file keeps its mode when opened, and a
        // key must never inherit a looser one.
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed(e)),
        }
    }
    let mut options = std::fs::OpenOptions::new();
    // create_new: between `ensure_absent` and here another process may have made the file.
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(match access {
            Access::Public => 0o644,
            Access::OwnerOnly => 0o600,
        });
    }
    let mut file = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => TlsError::Exists {
            path: path.to_path_buf(),
        },
        _ => failed(e),
    })?;
    file.write_all(contents.as_bytes()).map_err(failed)?;
    file.sync_all().map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_names_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        assert!(
            matches!(certificates(&missing), Err(TlsError::Missing { path }) if path == missing)
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "just text\n").unwrap();
        let err = certificates(&empty).err().unwrap();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
        assert!(err.to_string().contains("empty.pem"), "{err}");
        assert!(matches!(private_key(&empty), Err(TlsError::NoKey { .. })));
        let broken = dir.path().join("broken.pem");
        std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\n!!!\n").unwrap();
        assert!(matches!(certificates(&broken), Err(TlsError::Pem { .. })));
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(matches!(
            certificates(&garbage),
            Err(TlsError::BadCertificate { .. })
        ));
    }

    #[test]
    fn keys_are_owner_only_and_nothing_is_overwritten_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.pem");
        write(&key, "one", Access::OwnerOnly, false).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(
            write(&key, "two", Access::OwnerOnly, false),
            Err(TlsError::Exists { .. })
        ));
        assert!(matches!(
            ensure_absent(&[&dir.path().join("other"), &key], false),
            Err(TlsError::Exists { path }) if path == key
        ));
        ensure_absent(&[&key], true).unwrap();
        // A key replaced by force does not keep a looser mode the old file had.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        write(&key, "two", Access::OwnerOnly, true).unwrap();
        assert_eq!(std::fs::read_to_string(&key).unwrap(), "two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
