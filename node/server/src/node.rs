//! Builds a node: storage, then the Raft host, then the metadata group, then the gateway and
//! its listeners, then the driver that keeps local shard groups in line with the metadata.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use streamd_gateway::{Gateway, LocalShards, StreamdService};
use streamd_meta::{META_TREE, MetaCommand, MetaService, MetaState, MetaStateMachine, NodeInfo};
use streamd_raft::{InternalService, META_GROUP, PeerClients, RaftHost, RaftOptions};
use streamd_shard::SHARD_TREE;
use streamd_storage::{LogEngine, SledStore};
use tokio::sync::watch;

use crate::config::{NodeConfig, ShardLimitsFlag};

/// Calls a client may cancel before the server took them up, beyond which h2 closes the
/// connection (see `serve`). Still bounded, so a flood of resets cannot grow memory unchecked.
const PENDING_RESET_STREAMS: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub(crate) enum NodeError {
    #[error("failed to open storage in {dir}: {source}")]
    Storage {
        dir: String,
        source: streamd_storage::StorageError,
    },
    #[error("failed to create data directory {dir}: {source}")]
    DataDir { dir: String, source: std::io::Error },
    #[error("failed to start the metadata group: {0}")]
    Meta(std::io::Error),
    #[error("refusing to start on the data in {dir}: {source}")]
    LocalState { dir: String, source: std::io::Error },
    #[error("failed to listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("gRPC server failed: {0}")]
    Serve(tonic::transport::Error),
    #[error(transparent)]
    Join(#[from] crate::join::JoinError),
    #[error("a server task failed: {0}")]
    Task(String),
}

/// A running node's parts, shared with the admin endpoints and the driver.
#[derive(Clone)]
pub(crate) struct Node {
    pub(crate) config: NodeConfig,
    pub(crate) host: RaftHost,
    pub(crate) meta: Arc<RwLock<MetaState>>,
    pub(crate) meta_changes: watch::Receiver<u64>,
    pub(crate) shards: LocalShards,
    pub(crate) gateway: Gateway,
    pub(crate) limits: streamd_shard::ShardLimits,
}

impl Node {
    pub(crate) async fn start(config: NodeConfig) -> Result<Node, NodeError> {
        let dir = config.data_dir.clone();
        let storage_err = |source| NodeError::Storage {
            dir: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(|source| NodeError::DataDir {
            dir: dir.display().to_string(),
            source,
        })?;
        let engine = LogEngine::open(&dir.join("wal"), config.wal).map_err(storage_err)?;
        let db = SledStore::open(dir.join("sled")).map_err(storage_err)?;

        let peers = PeerClients::default();
        for (id, addr) in &config.initial_cluster {
            peers.set_address(*id, addr);
        }
        let raft_options = RaftOptions {
            snapshot_every_entries: config.snapshot_every_entries,
            ..RaftOptions::default()
        };
        let host = RaftHost::new(config.node_id, engine, db, peers, raft_options);
        host.check_local_state(|g| {
            if g == META_GROUP {
                META_TREE
            } else {
                SHARD_TREE
            }
        })
        .map_err(|source| NodeError::LocalState {
            dir: dir.display().to_string(),
            source,
        })?;

        let meta = Arc::new(RwLock::new(MetaState::default()));
        let (meta_tx, meta_changes) = watch::channel(0u64);
        let sm = MetaStateMachine::new(meta.clone(), meta_tx);
        let service = Arc::new(MetaService::new(meta.clone()));
        let meta_group = host
            .open_group(META_GROUP, META_TREE, Box::new(sm), Some(service))
            .await
            .map_err(NodeError::Meta)?;
        // Peers learnt from the replicated membership win over the command line.
        for n in meta.read().nodes.values() {
            host.peers().set_address(n.id, &n.addr);
        }
        // Only a node forming its cluster initializes the metadata group (a joining node has no
        // initial cluster: the metadata leader adds it to the group).
        let first = config.initial_cluster.keys().next().copied();
        if first == Some(config.node_id)
            && let Err(e) = meta_group.initialize(&config.initial_cluster).await
        {
            tracing::warn!(error = %e, "metadata group not initialized");
        }

        let shards: LocalShards = Arc::new(RwLock::new(HashMap::new()));
        let gateway = Gateway::new(
            host.clone(),
            meta.clone(),
            shards.clone(),
            config.region.clone(),
        );
        let limits = match config.shard_limits {
            ShardLimitsFlag::Kinesis => streamd_shard::ShardLimits::Kinesis,
            ShardLimitsFlag::Off => streamd_shard::ShardLimits::Off,
        };
        Ok(Node {
            config,
            host,
            meta,
            meta_changes,
            shards,
            gateway,
            limits,
        })
    }

    /// Proposes the cluster's founding entry until the metadata shows the cluster formed.
    pub(crate) async fn form_cluster(&self) {
        loop {
            if !self.meta.read().cluster_secret.is_empty() {
                return;
            }
            let secret: Vec<u8> = (0..32).map(|_| rand::random::<u8>()).collect();
            let nodes = self
                .config
                .initial_cluster
                .iter()
                .map(|(id, addr)| NodeInfo {
                    id: *id,
                    addr: addr.clone(),
                })
                .collect();
            let cmd = MetaCommand::Init {
                secret,
                nodes,
                replication_factor: 3,
            };
            if let Err(e) = self.gateway.propose_meta(&cmd).await {
                tracing::debug!(error = %e, "cluster not formed yet");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Serves the Kinesis API until `shutdown` resolves.
    pub(crate) async fn serve_kinesis(
        &self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), NodeError> {
        let addr = self.config.kinesis_addr;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| NodeError::Listen { addr, source })?;
        let auth = (!self.config.kinesis_auth_keys.is_empty()).then(|| {
            streamd_kinesis::sigv4::SigV4Verifier::new(self.config.kinesis_auth_keys.iter().map(
                |(id, secret)| streamd_kinesis::sigv4::Credentials {
                    access_key_id: id.clone(),
                    secret_access_key: secret.clone(),
                },
            ))
        });
        let tls = match &self.config.kinesis_tls {
            Some((cert, key)) => Some(
                streamd_kinesis::tls_config(cert, key)
                    .map_err(|source| NodeError::Listen { addr, source })?,
            ),
            None => None,
        };
        let api = streamd_kinesis::KinesisApi::new(self.gateway.clone(), auth);
        streamd_kinesis::serve(listener, api, tls, shutdown)
            .await
            .map_err(|source| NodeError::Listen { addr, source })
    }

    /// Serves the public and internal gRPC services until `shutdown` resolves.
    pub(crate) async fn serve_grpc(
        &self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), NodeError> {
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(streamd_proto::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| NodeError::Meta(std::io::Error::other(e.to_string())))?;
        let listener = tokio::net::TcpListener::bind(self.config.grpc_addr)
            .await
            .map_err(|source| NodeError::Listen {
                addr: self.config.grpc_addr,
                source,
            })?;
        // The builder's own `tcp_nodelay` applies only to listeners it binds itself; with our
        // listener, Nagle held a reply's trailing frames until the peer's delayed ACK (40 ms),
        // which was the p99 of a write with one request in flight.
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        tonic::transport::Server::builder()
            // h2 answers more than 20 calls cancelled before the server took them up with a
            // GOAWAY (its guard against rapid-reset floods), failing every call on the
            // connection. A node's peer carries thousands of groups' Raft calls on one
            // connection; when a busy node lets some time out, the GOAWAY failed all the
            // others, which timed out more: one slow second grew into minutes of failed calls.
            .http2_max_pending_accept_reset_streams(Some(PENDING_RESET_STREAMS))
            .http2_max_local_error_reset_streams(Some(PENDING_RESET_STREAMS))
            .layer(crate::telemetry::GrpcMetricsLayer)
            .layer(crate::otel::TraceContextLayer)
            .add_service(StreamdService::new(self.gateway.clone()))
            .add_service(InternalService::new(self.host.clone()))
            .add_service(crate::join::MembershipService::new(self.clone()))
            .add_service(reflection)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .map_err(NodeError::Serve)
    }
}
