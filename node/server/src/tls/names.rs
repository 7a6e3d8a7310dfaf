//! Who a certificate belongs to, as URI SANs: `streamd://node/N` for node N, and
//! `streamd://principal/NAME` for a client. `issue.rs` writes them; the functions here read them
//! back from the leaf of a peer's chain.
//!
//! These functions parse, they do not verify: call them only on the chain a TLS handshake
//! already verified against the cluster CA (`tonic::Request::peer_certs()` on a listener built
//! from `PeerTls`), so that a name is as trustworthy as the CA that signed it.

use tonic::transport::CertificateDer;
use x509_parser::extensions::GeneralName;

const NODE_PREFIX: &str = "streamd://node/";
const PRINCIPAL_PREFIX: &str = "streamd://principal/";

/// Longest principal name: it travels in logs and metric labels, so it stays short.
const PRINCIPAL_MAX_LEN: usize = 128;

/// The URI SAN that names node `id`.
pub(crate) fn node_uri(id: u64) -> String {
    format!("{NODE_PREFIX}{id}")
}

/// The URI SAN that names the principal `name` (checked with [`check_principal`]).
pub(crate) fn principal_uri(name: &str) -> String {
    format!("{PRINCIPAL_PREFIX}{name}")
}

/// Why `name` cannot be a principal name, if it cannot. Letters, digits and `.-_@` only: the
/// name sits unescaped in a URI and in log lines, and one spelling per principal keeps
/// authorization rules from being dodged by an encoding of the same name.
pub(crate) fn check_principal(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > PRINCIPAL_MAX_LEN {
        return Err(format!("must be 1 to {PRINCIPAL_MAX_LEN} characters"));
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@')))
    {
        Some(c) => Err(format!(
            "{c:?} is not allowed: use letters, digits and . - _ @"
        )),
        None => Ok(()),
    }
}

/// The node id a peer's certificate names, from the leaf (the first certificate) of a verified
/// chain. None when the leaf names no node, names two different ones, or cannot be parsed.
pub(crate) fn peer_node_id(certs: &[CertificateDer<'_>]) -> Option<u64> {
    single(leaf_uris(certs)?.iter().filter_map(|uri| {
        let id = uri.strip_prefix(NODE_PREFIX)?;
        // One spelling per node: "07" or "+7" would name node 7 under another name.
        let parsed: u64 = id.parse().ok()?;
        (parsed >= 1 && parsed.to_string() == id).then_some(parsed)
    }))
}

/// The principal a client's certificate names, from the leaf of a verified chain. None when
/// the leaf names no principal, names two different ones, or cannot be parsed.
pub(crate) fn principal_name(certs: &[CertificateDer<'_>]) -> Option<String> {
    single(leaf_uris(certs)?.iter().filter_map(|uri| {
        let name = uri.strip_prefix(PRINCIPAL_PREFIX)?;
        check_principal(name).is_ok().then(|| name.to_string())
    }))
}

/// Every URI SAN of the leaf certificate.
fn leaf_uris(certs: &[CertificateDer<'_>]) -> Option<Vec<String>> {
    let (_, leaf) = x509_parser::parse_x509_certificate(certs.first()?).ok()?;
    let san = leaf.subject_alternative_name().ok()??;
    Some(
        san.value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::URI(uri) => Some(uri.to_string()),
                _ => None,
            })
            .collect(),
    )
}

/// The one distinct value of `values`; None for none, or for two that differ, since a
/// certificate naming two identities names neither.
fn single<T: PartialEq>(mut values: impl Iterator<Item = T>) -> Option<T> {
    let first = values.next()?;
    values.all(|v| v == first).then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A leaf with these URI SANs, self-signed: parsing does not look at the signature.
    fn leaf_with(uris: &[&str]) -> Vec<CertificateDer<'static>> {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        for uri in uris {
            params
                .subject_alt_names
                .push(rcgen::SanType::URI((*uri).try_into().unwrap()));
        }
        let key = rcgen::KeyPair::generate().unwrap();
        vec![params.self_signed(&key).unwrap().der().clone()]
    }

    #[test]
    fn a_node_uri_names_its_node() {
        assert_eq!(peer_node_id(&leaf_with(&[&node_uri(7)])), Some(7));
        assert_eq!(
            peer_node_id(&leaf_with(&["https://example.com", &node_uri(u64::MAX)])),
            Some(u64::MAX)
        );
        // A principal is not a node, and a node is not a principal.
        assert_eq!(peer_node_id(&leaf_with(&[&principal_uri("ops")])), None);
        assert_eq!(principal_name(&leaf_with(&[&node_uri(7)])), None);
    }

    #[test]
    fn malformed_or_ambiguous_node_uris_name_nobody() {
        for bad in [
            "streamd://node/0",
            "streamd://node/07",
            "streamd://node/+7",
            "streamd://node/7/",
            "streamd://node/x",
            "streamd://node/",
            "streamd://node/18446744073709551616",
            "STREAMD://node/7",
        ] {
            assert_eq!(peer_node_id(&leaf_with(&[bad])), None, "{bad}");
        }
        assert_eq!(
            peer_node_id(&leaf_with(&[&node_uri(1), &node_uri(2)])),
            None
        );
        // The same node twice is still one node.
        assert_eq!(
            peer_node_id(&leaf_with(&[&node_uri(3), &node_uri(3)])),
            Some(3)
        );
        assert_eq!(peer_node_id(&leaf_with(&[])), None);
        assert_eq!(peer_node_id(&[]), None);
        assert_eq!(peer_node_id(&[CertificateDer::from(vec![1, 2, 3])]), None);
    }

    #[test]
    fn only_the_leaf_counts() {
        let mut chain = leaf_with(&[]);
        chain.extend(leaf_with(&[&node_uri(1)]));
        assert_eq!(peer_node_id(&chain), None);
    }

    #[test]
    fn principal_names_are_one_spelling() {
        assert_eq!(
            principal_name(&leaf_with(&[&principal_uri("billing-svc@prod")])),
            Some("billing-svc@prod".to_string())
        );
        assert!(check_principal("a.b_c-d@e").is_ok());
        for bad in [
            "",
            "a b",
            "a/b",
            "a%20b",
            "é",
            &"x".repeat(PRINCIPAL_MAX_LEN + 1),
        ] {
            assert!(check_principal(bad).is_err(), "{bad}");
        }
        assert_eq!(
            principal_name(&leaf_with(&["streamd://principal/a%2Fb"])),
            None
        );
        assert_eq!(
            principal_name(&leaf_with(&[&principal_uri("a"), &principal_uri("b")])),
            None
        );
    }
}
