//! Real handshakes on loopback: a tonic server behind [`PeerTls`] configs, and clients with
//! and without the right certificates.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use streamd_proto::internal::membership_client::MembershipClient;
use streamd_proto::internal::membership_server::{Membership, MembershipServer};
use streamd_proto::internal::{ClusterMember, JoinClusterRequest, JoinClusterResponse};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

use super::issue::tests::ca_in;
use super::*;

/// Answers with who the TLS layer says the caller is: the node id from its certificate (0 for
/// none) and its principal name (empty for none).
struct WhoAmI;

#[tonic::async_trait]
impl Membership for WhoAmI {
    async fn join_cluster(
        &self,
        request: Request<JoinClusterRequest>,
    ) -> Result<Response<JoinClusterResponse>, Status> {
        let certs = request.peer_certs();
        let certs = certs.as_deref().map(Vec::as_slice).unwrap_or_default();
        Ok(Response::new(JoinClusterResponse {
            members: vec![ClusterMember {
                node_id: peer_node_id(certs).unwrap_or(0),
                address: principal_name(certs).unwrap_or_default(),
            }],
        }))
    }
}

/// Two CAs in a temporary directory: the cluster's, with nodes 1 and 2 and the principal
/// "ops", and a stranger's, with its own node 2.
struct Material {
    dir: tempfile::TempDir,
}

impl Material {
    fn new() -> Material {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["cluster", "stranger"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let node = |id| NodeIdentity {
            node_id: id,
            dns_names: vec!["localhost".into()],
            ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        };
        let cluster = ca_in(&dir.path().join("cluster"), CA_DAYS);
        let stranger = ca_in(&dir.path().join("stranger"), CA_DAYS);
        let put = |sub: &str, stem: &str, issued: Issued| {
            let base = dir.path().join(sub);
            std::fs::write(base.join(format!("{stem}.pem")), issued.cert_pem).unwrap();
            std::fs::write(base.join(format!("{stem}-key.pem")), issued.key_pem).unwrap();
        };
        put(
            "cluster",
            "node-1",
            cluster.issue_node(&node(1), 1).unwrap(),
        );
        put(
            "cluster",
            "node-2",
            cluster.issue_node(&node(2), 1).unwrap(),
        );
        put("cluster", "ops", cluster.issue_client("ops", 1).unwrap());
        put(
            "stranger",
            "node-2",
            stranger.issue_node(&node(2), 1).unwrap(),
        );
        Material { dir }
    }

    fn path(&self, sub: &str, file: &str) -> PathBuf {
        self.dir.path().join(sub).join(file)
    }

    /// `PeerTls` for `stem` under the CA of `sub`.
    fn peer(&self, sub: &str, stem: &str) -> PeerTls {
        PeerTls::load(
            &self.path(sub, "ca.pem"),
            &self.path(sub, &format!("{stem}.pem")),
            &self.path(sub, &format!("{stem}-key.pem")),
        )
        .unwrap()
    }

    fn identity(&self, sub: &str, stem: &str) -> Identity {
        let read = |file: String| std::fs::read(self.path(sub, &file)).unwrap();
        Identity::from_pem(read(format!("{stem}.pem")), read(format!("{stem}-key.pem")))
    }

    fn cluster_ca(&self) -> Certificate {
        Certificate::from_pem(std::fs::read(self.path("cluster", "ca.pem")).unwrap())
    }
}

/// Serves [`WhoAmI`] on a free loopback port; returns the port.
async fn serve(config: ServerTlsConfig) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = Server::builder()
        .tls_config(config)
        .unwrap()
        .add_service(MembershipServer::new(WhoAmI))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    tokio::spawn(server);
    port
}

/// One call, or why it failed (at connect or at the call: with TLS 1.3 a client learns only
/// after its side of the handshake that the server refused its certificate).
async fn who_am_i(port: u16, config: ClientTlsConfig) -> Result<ClusterMember, String> {
    let call = async {
        let channel = Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
            .map_err(|e| e.to_string())?
            .tls_config(config)
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| format!("connect: {e:?}"))?;
        let reply = MembershipClient::new(channel)
            .join_cluster(JoinClusterRequest::default())
            .await
            .map_err(|e| format!("call: {e:?}"))?;
        reply
            .into_inner()
            .members
            .pop()
            .ok_or_else(|| "empty reply".to_string())
    };
    match tokio::time::timeout(Duration::from_secs(20), call).await {
        Ok(r) => r,
        Err(_) => panic!("a call to 127.0.0.1:{port} hung"),
    }
}

#[tokio::test]
async fn a_node_with_a_cluster_certificate_is_answered_and_named() {
    let m = Material::new();
    let server = m.peer("cluster", "node-1");
    assert_eq!(server.node_id(), Some(1));
    let port = serve(server.server_config()).await;
    let node_2 = m.peer("cluster", "node-2");
    let me = who_am_i(port, node_2.client_config("localhost"))
        .await
        .unwrap();
    assert_eq!(me.node_id, 2, "the server reads the sender's node id");
    assert_eq!(me.address, "", "a node is no principal");
    // The server's IP SAN serves peers dialed by address too.
    let me = who_am_i(port, node_2.client_config("127.0.0.1"))
        .await
        .unwrap();
    assert_eq!(me.node_id, 2);
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let m = Material::new();
    let port = serve(m.peer("cluster", "node-1").server_config()).await;
    let anonymous = ClientTlsConfig::new()
        .ca_certificate(m.cluster_ca())
        .domain_name("localhost");
    who_am_i(port, anonymous).await.unwrap_err();
    // The server is up and answers a client that does present one.
    let node_2 = m.peer("cluster", "node-2");
    assert_eq!(
        who_am_i(port, node_2.client_config("localhost"))
            .await
            .unwrap()
            .node_id,
        2
    );
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let m = Material::new();
    let port = serve(m.peer("cluster", "node-1").server_config()).await;
    // It trusts the cluster's CA, but its own certificate comes from the stranger's.
    let impostor = ClientTlsConfig::new()
        .ca_certificate(m.cluster_ca())
        .identity(m.identity("stranger", "node-2"))
        .domain_name("localhost");
    who_am_i(port, impostor).await.unwrap_err();
    // The same client with the cluster's certificate gets through: the refusal was the
    // certificate's.
    let genuine = ClientTlsConfig::new()
        .ca_certificate(m.cluster_ca())
        .identity(m.identity("cluster", "node-2"))
        .domain_name("localhost");
    assert_eq!(who_am_i(port, genuine).await.unwrap().node_id, 2);
}

#[tokio::test]
async fn a_node_trusts_only_its_cluster_ca() {
    let m = Material::new();
    let port = serve(m.peer("cluster", "node-1").server_config()).await;
    let err = who_am_i(
        port,
        m.peer("stranger", "node-2").client_config("localhost"),
    )
    .await
    .unwrap_err();
    assert!(
        err.starts_with("connect"),
        "refused while verifying the server: {err}"
    );
    // And a server name its certificate does not carry is refused as well.
    who_am_i(
        port,
        m.peer("cluster", "node-2")
            .client_config("node-1.elsewhere"),
    )
    .await
    .unwrap_err();
}

#[tokio::test]
async fn the_public_listener_names_principals_and_admits_anonymous_clients() {
    let m = Material::new();
    let port = serve(m.peer("cluster", "node-1").public_server_config()).await;
    let ops = ClientTlsConfig::new()
        .ca_certificate(m.cluster_ca())
        .identity(m.identity("cluster", "ops"))
        .domain_name("localhost");
    let me = who_am_i(port, ops).await.unwrap();
    assert_eq!((me.node_id, me.address.as_str()), (0, "ops"));
    let anonymous = ClientTlsConfig::new()
        .ca_certificate(m.cluster_ca())
        .domain_name("localhost");
    let me = who_am_i(port, anonymous).await.unwrap();
    assert_eq!((me.node_id, me.address.as_str()), (0, ""));
    // A certificate that is presented must still be the cluster's.
    let impostor = ClientTlsConfig::new()
        .ca_certificate(m.cluster_ca())
        .identity(m.identity("stranger", "node-2"))
        .domain_name("localhost");
    who_am_i(port, impostor).await.unwrap_err();
}

#[test]
fn loading_refuses_material_that_would_fail_handshakes() {
    let m = Material::new();
    let load = |ca: &Path, cert: &Path, key: &Path| PeerTls::load(ca, cert, key).unwrap_err();
    let ca = m.path("cluster", "ca.pem");
    let cert = m.path("cluster", "node-1.pem");
    let key = m.path("cluster", "node-1-key.pem");

    let err = load(&ca, &m.path("cluster", "node-9.pem"), &key);
    assert!(matches!(err, TlsError::Missing { .. }), "{err}");
    assert!(err.to_string().contains("node-9.pem"), "{err}");

    let err = load(&ca, &cert, &m.path("cluster", "node-2-key.pem"));
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");

    let err = load(
        &ca,
        &m.path("stranger", "node-2.pem"),
        &m.path("stranger", "node-2-key.pem"),
    );
    assert!(matches!(err, TlsError::Untrusted { .. }), "{err}");

    // The key file given where the CA belongs.
    let err = load(&key, &cert, &key);
    assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");

    let err = load(&ca, &cert, &cert);
    assert!(matches!(err, TlsError::NoKey { .. }), "{err}");

    // A client certificate cannot serve a node's peers.
    let err = load(
        &ca,
        &m.path("cluster", "ops.pem"),
        &m.path("cluster", "ops-key.pem"),
    );
    assert!(matches!(err, TlsError::BadCertificate { .. }), "{err}");
    assert!(err.to_string().contains("serverAuth"), "{err}");
}
