//! Making certificates with rcgen: a development cluster CA, and the node and client
//! certificates it signs. In memory only; `crate::certs` puts them in files.
//!
//! Every key is ECDSA P-256, which every TLS stack accepts. A node certificate serves both ends
//! of a node-to-node connection (EKU serverAuth and clientAuth); a client certificate only
//! the client end.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::DnsName;
use time::OffsetDateTime;

use super::{TlsError, files, names};

/// Default validity of a CA certificate.
pub(crate) const CA_DAYS: u32 = 3650;
/// Default validity of a node or client certificate.
pub(crate) const LEAF_DAYS: u32 = 365;

/// Backdating of `notBefore`: a certificate used a minute after it was made must not be
/// refused by a peer whose clock is a little behind.
const CLOCK_SKEW: Duration = Duration::from_secs(3600);

/// A certificate and its private key, PEM-encoded.
pub(crate) struct Issued {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

/// What a node certificate names: the node, and every name and address peers dial it by.
#[derive(Debug, Clone)]
pub(crate) struct NodeIdentity {
    pub(crate) node_id: u64,
    pub(crate) dns_names: Vec<String>,
    pub(crate) ips: Vec<IpAddr>,
}

/// Certificate parameters whose subject is `O=streamd, CN=common_name`.
fn named(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "streamd");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params
}

/// A new self-signed CA, valid for `days` from now. It signs leaf certificates only
/// (path length 0): a stolen node key cannot mint certificates.
pub(crate) fn new_ca(days: u32) -> Result<Issued, TlsError> {
    let mut params = named("streamd development CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    (params.not_before, params.not_after) = validity(days);
    let key = new_key("CA")?;
    let cert = params.self_signed(&key).map_err(|source| TlsError::Sign {
        what: "CA certificate",
        source,
    })?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A CA that signs: its certificate's names and its private key.
pub(crate) struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_path: PathBuf,
    not_after: OffsetDateTime,
}

impl Ca {
    /// Loads a CA from its certificate and key files; refuses a certificate that is not a CA,
    /// and a key that is not the certificate's.
    pub(crate) fn load(cert: &Path, key: &Path) -> Result<Ca, TlsError> {
        let certs = files::certificates(cert)?;
        let key_file = files::private_key(key)?;
        files::check_key_matches(&certs, &key_file)?;
        let ca_der = &certs.value[0];
        let not_after = match x509_parser::parse_x509_certificate(ca_der) {
            Ok((_, parsed)) if parsed.is_ca() => parsed.validity().not_after.to_datetime(),
            Ok(_) => {
                return Err(TlsError::NotCa {
                    path: cert.to_path_buf(),
                });
            }
            Err(e) => {
                return Err(TlsError::BadCertificate {
                    path: cert.to_path_buf(),
                    reason: e.to_string(),
                });
            }
        };
        let key_pair = KeyPair::try_from(&key_file.value).map_err(|e| TlsError::BadKey {
            path: key.to_path_buf(),
            reason: format!("{e} (a CA key must be PKCS#8, BEGIN PRIVATE KEY)"),
        })?;
        let issuer =
            Issuer::from_ca_cert_der(ca_der, key_pair).map_err(|e| TlsError::BadCertificate {
                path: cert.to_path_buf(),
                reason: e.to_string(),
            })?;
        Ok(Ca {
            issuer,
            cert_path: cert.to_path_buf(),
            not_after,
        })
    }

    /// A node certificate: SANs for each DNS name and IP address, and the URI
    /// `streamd://node/N` that receivers check the sender's claimed node id against.
    pub(crate) fn issue_node(&self, node: &NodeIdentity, days: u32) -> Result<Issued, TlsError> {
        if node.node_id == 0 {
            return Err(TlsError::InvalidName {
                what: "node id",
                value: "0".into(),
                reason: "node ids start at 1".into(),
            });
        }
        if node.dns_names.is_empty() && node.ips.is_empty() {
            return Err(TlsError::InvalidName {
                what: "node address list",
                value: String::new(),
                reason: "give at least one DNS name or IP address peers dial the node by".into(),
            });
        }
        let mut params = self.leaf_params(&format!("streamd node {}", node.node_id), days)?;
        for name in &node.dns_names {
            params.subject_alt_names.push(dns_san(name)?);
        }
        params
            .subject_alt_names
            .extend(node.ips.iter().map(|ip| SanType::IpAddress(*ip)));
        params
            .subject_alt_names
            .push(uri_san(names::node_uri(node.node_id))?);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.sign(&params, "node certificate")
    }

    /// A client certificate naming the principal `name` (URI `streamd://principal/NAME`).
    pub(crate) fn issue_client(&self, name: &str, days: u32) -> Result<Issued, TlsError> {
        names::check_principal(name).map_err(|reason| TlsError::InvalidName {
            what: "principal name",
            value: name.to_string(),
            reason,
        })?;
        let mut params = self.leaf_params(name, days)?;
        params
            .subject_alt_names
            .push(uri_san(names::principal_uri(name))?);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(&params, "client certificate")
    }

    fn leaf_params(&self, common_name: &str, days: u32) -> Result<CertificateParams, TlsError> {
        let mut params = named(common_name);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        (params.not_before, params.not_after) = validity(days);
        // A leaf stops verifying when its CA expires, whatever its own dates say: refuse to
        // print a date that will not hold.
        if params.not_after > self.not_after {
            let days_left = (self.not_after - now()).whole_days();
            return Err(TlsError::OutlivesCa {
                ca: self.cert_path.clone(),
                days_left: days_left.max(0),
            });
        }
        Ok(params)
    }

    fn sign(&self, params: &CertificateParams, what: &'static str) -> Result<Issued, TlsError> {
        let key = new_key(what)?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|source| TlsError::Sign { what, source })?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn new_key(what: &'static str) -> Result<KeyPair, TlsError> {
    KeyPair::generate().map_err(|source| TlsError::Sign { what, source })
}

/// `notBefore` and `notAfter` for a certificate valid `days` from now.
fn validity(days: u32) -> (OffsetDateTime, OffsetDateTime) {
    let start = now();
    (
        start - CLOCK_SKEW,
        start + Duration::from_secs(u64::from(days) * 86_400),
    )
}

/// The current time, as rcgen wants it.
fn now() -> OffsetDateTime {
    // `time` without its std feature cannot read the clock; a clock before 1970 makes
    // certificates that are visibly wrong rather than a panic.
    OffsetDateTime::UNIX_EPOCH
        + SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
}

/// A DNS SAN, checked as TLS clients will check it (a leading `*.` wildcard allowed).
fn dns_san(name: &str) -> Result<SanType, TlsError> {
    let invalid = |reason: &str| TlsError::InvalidName {
        what: "DNS name",
        value: name.to_string(),
        reason: reason.to_string(),
    };
    if name.parse::<IpAddr>().is_ok() {
        return Err(invalid("an IP address: pass it with --ip"));
    }
    let base = name.strip_prefix("*.").unwrap_or(name);
    DnsName::try_from(base).map_err(|_| invalid("not a valid DNS name"))?;
    let ia5 = name
        .try_into()
        .map_err(|_| invalid("not a valid DNS name"))?;
    Ok(SanType::DnsName(ia5))
}

fn uri_san(uri: String) -> Result<SanType, TlsError> {
    match uri.as_str().try_into() {
        Ok(ia5) => Ok(SanType::URI(ia5)),
        Err(_) => Err(TlsError::InvalidName {
            what: "URI",
            value: uri,
            reason: "not ASCII".into(),
        }),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use x509_parser::extensions::GeneralName;

    use super::*;

    /// A CA written to `dir` and loaded back, as `certs issue` loads it.
    pub(crate) fn ca_in(dir: &Path, days: u32) -> Ca {
        let ca = new_ca(days).unwrap();
        let (cert, key) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
        std::fs::write(&cert, &ca.cert_pem).unwrap();
        std::fs::write(&key, &ca.key_pem).unwrap();
        Ca::load(&cert, &key).unwrap()
    }

    fn der(pem: &str) -> Vec<u8> {
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn a_node_certificate_names_the_node_its_addresses_and_both_ends() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca_in(dir.path(), CA_DAYS);
        let node = NodeIdentity {
            node_id: 3,
            dns_names: vec!["streamd-2.streamd-headless".into(), "*.example.org".into()],
            ips: vec![
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ],
        };
        let issued = ca.issue_node(&node, LEAF_DAYS).unwrap();
        let der = der(&issued.cert_pem);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let sans = &cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names;
        assert!(sans.contains(&GeneralName::DNSName("streamd-2.streamd-headless")));
        assert!(sans.contains(&GeneralName::DNSName("*.example.org")));
        assert!(sans.contains(&GeneralName::IPAddress(&[10, 0, 0, 3])));
        assert!(sans.contains(&GeneralName::IPAddress(&Ipv6Addr::LOCALHOST.octets())));
        assert!(sans.contains(&GeneralName::URI("streamd://node/3")));
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        assert!(!cert.is_ca());
        let days = (cert.validity().not_after.to_datetime()
            - cert.validity().not_before.to_datetime())
        .whole_days();
        assert_eq!(
            days,
            i64::from(LEAF_DAYS),
            "one year, plus the hour of skew"
        );
        assert_eq!(
            names::peer_node_id(&[der.clone().into()]),
            Some(3),
            "the name the receiver checks"
        );
    }

    #[test]
    fn a_client_certificate_names_its_principal_and_only_the_client_end() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca_in(dir.path(), CA_DAYS);
        let issued = ca.issue_client("billing", 30).unwrap();
        let der = der(&issued.cert_pem);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        assert_eq!(
            names::principal_name(&[der.clone().into()]),
            Some("billing".into())
        );
        assert_eq!(names::peer_node_id(&[der.into()]), None);
        assert!(matches!(
            ca.issue_client("no spaces", 30),
            Err(TlsError::InvalidName { .. })
        ));
    }

    #[test]
    fn the_ca_signs_leaves_only_and_lasts_ten_years() {
        let ca = new_ca(CA_DAYS).unwrap();
        let der = der(&ca.cert_pem);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let bc = cert.basic_constraints().unwrap().unwrap().value;
        assert!(bc.ca);
        assert_eq!(bc.path_len_constraint, Some(0));
        let days = (cert.validity().not_after.to_datetime()
            - cert.validity().not_before.to_datetime())
        .whole_days();
        assert_eq!(days, i64::from(CA_DAYS));
    }

    #[test]
    fn bad_requests_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca_in(dir.path(), CA_DAYS);
        let node = |id: u64, dns: &[&str], ips: &[IpAddr]| NodeIdentity {
            node_id: id,
            dns_names: dns.iter().map(|s| s.to_string()).collect(),
            ips: ips.to_vec(),
        };
        let loopback = [IpAddr::V4(Ipv4Addr::LOCALHOST)];
        assert!(ca.issue_node(&node(1, &[], &loopback), 1).is_ok());
        for (bad, why) in [
            (node(0, &["a"], &[]), "node ids start at 1"),
            (node(1, &[], &[]), "at least one"),
            (node(1, &["10.0.0.1"], &[]), "--ip"),
            (node(1, &["bad name"], &[]), "not a valid DNS name"),
            (node(1, &["a..b"], &[]), "not a valid DNS name"),
            (node(1, &["ünï"], &[]), "not a valid DNS name"),
        ] {
            let err = ca.issue_node(&bad, 1).err().unwrap().to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        let short = ca_in(dir.path(), 10);
        let err = short.issue_node(&node(1, &["a"], &[]), 365).err().unwrap();
        assert!(
            matches!(
                err,
                TlsError::OutlivesCa {
                    days_left: 9 | 10,
                    ..
                }
            ),
            "{err}"
        );
        assert!(short.issue_node(&node(1, &["a"], &[]), 9).is_ok());
    }

    #[test]
    fn loading_a_ca_checks_it_is_one_and_has_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca_in(dir.path(), CA_DAYS);
        let leaf = ca.issue_client("x", 1).unwrap();
        let (leaf_cert, leaf_key) = (dir.path().join("leaf.pem"), dir.path().join("leaf-key.pem"));
        std::fs::write(&leaf_cert, &leaf.cert_pem).unwrap();
        std::fs::write(&leaf_key, &leaf.key_pem).unwrap();
        assert!(matches!(
            Ca::load(&leaf_cert, &leaf_key),
            Err(TlsError::NotCa { .. })
        ));
        let err = Ca::load(&dir.path().join("ca.pem"), &leaf_key)
            .err()
            .unwrap();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
        assert!(err.to_string().contains("leaf-key.pem"), "{err}");
        assert!(matches!(
            Ca::load(&dir.path().join("missing.pem"), &leaf_key),
            Err(TlsError::Missing { .. })
        ));
    }
}
