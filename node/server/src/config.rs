//! Node configuration: command-line flags, optionally on top of a TOML file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;
use streamd_raft::RaftOptions;

#[derive(Debug, Parser)]
#[command(
    name = "streamd",
    version,
    about = "A Raft-replicated stream cluster with a Kinesis-compatible API"
)]
#[command(
    after_help = "Examples:\n  streamd                      one-node cluster on loopback, data in ./streamd-data\n  streamd dev --nodes 3        three nodes on loopback, every shard replicated three times\n  streamd --node-id 2 --data-dir /var/lib/streamd --grpc-addr 10.0.0.2:50051 \\\n          --initial-cluster 1=10.0.0.1:50051,2=10.0.0.2:50051,3=10.0.0.3:50051\n  streamd --node-id 4 --data-dir /var/lib/streamd --grpc-addr 10.0.0.4:50051 \\\n          --join 10.0.0.1:50051,10.0.0.2:50051   add a node to a running cluster"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    #[command(flatten)]
    pub(crate) node: NodeFlags,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a local development cluster of several node processes on 127.0.0.1.
    Dev {
        /// Number of nodes; node i serves gRPC on 50050+i, Kinesis on 4566+i, admin on 9089+i.
        #[arg(long, default_value_t = 3)]
        nodes: u64,
        /// Parent directory of the nodes' data directories (node-i).
        #[arg(long, default_value = "./streamd-data")]
        data_dir: PathBuf,
        #[arg(long, value_enum, default_value_t = ShardLimitsFlag::Kinesis)]
        shard_limits: ShardLimitsFlag,
    },
    /// Make a cluster CA, and the node and client certificates it signs, for TLS between nodes
    /// and with clients.
    Certs {
        #[command(subcommand)]
        command: crate::certs::CertsCommand,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ShardLimitsFlag {
    /// Kinesis's per-shard limits: 1 MiB/s and 1,000 records/s of writes.
    Kinesis,
    /// No per-shard limits (benchmarks).
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args, Default)]
pub(crate) struct NodeFlags {
    /// TOML file with any of the settings below (flags win).
    #[arg(long, env = "STREAMD_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// This node's id (1 or more), unique in the cluster.
    #[arg(long)]
    pub(crate) node_id: Option<u64>,
    /// Where the write-ahead log and state live.
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
    /// gRPC listen address (public API and node-to-node traffic).
    #[arg(long)]
    pub(crate) grpc_addr: Option<SocketAddr>,
    /// Where the other nodes reach this node's gRPC port (host:port), if not --grpc-addr: a DNS
    /// name that outlives the node's IP, such as a StatefulSet pod's stable name. A joining node
    /// registers this address; a node listening on 0.0.0.0 needs it to join.
    #[arg(long, env = "STREAMD_ADVERTISE_ADDR")]
    pub(crate) advertise_addr: Option<String>,
    /// Kinesis API listen address.
    #[arg(long)]
    pub(crate) kinesis_addr: Option<SocketAddr>,
    /// HTTP admin listen address: /metrics, /healthz, /readyz.
    #[arg(long)]
    pub(crate) admin_addr: Option<SocketAddr>,
    /// The cluster's first members as id=host:port,...; omit for a one-node cluster.
    #[arg(long, conflicts_with = "join")]
    pub(crate) initial_cluster: Option<String>,
    /// Join a running cluster through any of these members (host:port,...) instead of forming
    /// one: needs --node-id (new to the cluster) and an address the other nodes can reach
    /// (--advertise-addr, or --grpc-addr).
    /// Kept on restarts: a node already in the cluster just rejoins.
    #[arg(long)]
    pub(crate) join: Option<String>,
    /// Per-shard throughput limits.
    #[arg(long, value_enum)]
    pub(crate) shard_limits: Option<ShardLimitsFlag>,
    /// Region named in stream ARNs.
    #[arg(long)]
    pub(crate) region: Option<String>,
    #[arg(long, value_enum)]
    pub(crate) log_format: Option<LogFormat>,
    /// Verify SigV4 signatures on the Kinesis API against these keys (AKID:SECRET,...);
    /// without it signatures are not checked.
    #[arg(long, env = "STREAMD_KINESIS_AUTH_KEYS", hide_env_values = true)]
    pub(crate) kinesis_auth_keys: Option<String>,
    /// PEM certificate chain for TLS on the Kinesis port (with --kinesis-tls-key); plaintext
    /// HTTP/1.1 and HTTP/2 keep working on the same port.
    #[arg(long)]
    pub(crate) kinesis_tls_cert: Option<PathBuf>,
    /// PEM private key for --kinesis-tls-cert.
    #[arg(long)]
    pub(crate) kinesis_tls_key: Option<PathBuf>,
    /// Snapshot each Raft group (and so allow purging its log) after this many applied entries.
    #[arg(long)]
    pub(crate) snapshot_every_entries: Option<u64>,
    /// Seconds a node may stay unreachable from the metadata leader before its shard replicas
    /// are re-created on other nodes (default 30).
    #[arg(long)]
    pub(crate) node_down_timeout_secs: Option<u64>,
    /// Export traces over OTLP/gRPC to this collector (e.g. http://127.0.0.1:4317); off when
    /// unset.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub(crate) otlp_endpoint: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    node_id: Option<u64>,
    data_dir: Option<PathBuf>,
    grpc_addr: Option<SocketAddr>,
    advertise_addr: Option<String>,
    kinesis_addr: Option<SocketAddr>,
    admin_addr: Option<SocketAddr>,
    initial_cluster: Option<String>,
    join: Option<String>,
    shard_limits: Option<ShardLimitsFlag>,
    region: Option<String>,
    log_format: Option<LogFormat>,
    kinesis_auth_keys: Option<String>,
    kinesis_tls_cert: Option<PathBuf>,
    kinesis_tls_key: Option<PathBuf>,
    snapshot_every_entries: Option<u64>,
    node_down_timeout_secs: Option<u64>,
    otlp_endpoint: Option<String>,
}

/// The resolved settings of one node.
#[derive(Debug, Clone)]
pub(crate) struct NodeConfig {
    pub(crate) node_id: u64,
    pub(crate) data_dir: PathBuf,
    pub(crate) grpc_addr: SocketAddr,
    /// The address this node registers when it joins: `--advertise-addr`, else `grpc_addr`.
    pub(crate) advertise_addr: String,
    pub(crate) kinesis_addr: SocketAddr,
    pub(crate) admin_addr: SocketAddr,
    /// Empty when the node joins a running cluster (`join`).
    pub(crate) initial_cluster: BTreeMap<u64, String>,
    /// Members to ask for admission (`--join`); empty when the node forms its cluster.
    pub(crate) join: Vec<String>,
    pub(crate) shard_limits: ShardLimitsFlag,
    pub(crate) region: String,
    pub(crate) log_format: LogFormat,
    /// (access key id, secret) pairs; empty means signatures are not checked.
    pub(crate) kinesis_auth_keys: Vec<(String, String)>,
    /// (certificate, key) PEM files for TLS on the Kinesis port.
    pub(crate) kinesis_tls: Option<(PathBuf, PathBuf)>,
    pub(crate) snapshot_every_entries: u64,
    pub(crate) node_down_timeout: std::time::Duration,
    /// OTLP/gRPC collector traces are exported to; none exports nothing.
    pub(crate) otlp_endpoint: Option<String>,
    /// Not a flag: only [`crate::Build`] changes it, for test builds.
    pub(crate) wal: streamd_storage::WalOptions,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    #[error("failed to read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to parse config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("invalid --initial-cluster entry {0:?}: expected id=host:port")]
    InitialCluster(String),
    #[error("--initial-cluster does not list this node's id {0}")]
    NotInCluster(u64),
    #[error("node id must be 1 or more")]
    NodeId,
    #[error("--join and --initial-cluster exclude each other: a node forms a cluster or joins one")]
    JoinAndInitialCluster,
    #[error("invalid --join entry {0:?}: expected host:port")]
    Join(String),
    #[error("invalid --advertise-addr {0:?}: expected host:port")]
    AdvertiseAddr(String),
    #[error("--join needs an explicit --node-id, unique in the cluster")]
    JoinNodeId,
    #[error(
        "--join needs an address the other nodes can reach: --advertise-addr, or a --grpc-addr \
         other than the unspecified address {0}"
    )]
    JoinAddr(SocketAddr),
    #[error("invalid --kinesis-auth-keys entry: expected ACCESS_KEY_ID:SECRET")]
    AuthKeys,
    #[error("--kinesis-tls-cert and --kinesis-tls-key go together")]
    TlsPair,
}

fn parse_cluster(s: &str) -> Result<BTreeMap<u64, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .ok_or_else(|| ConfigError::InitialCluster(part.into()))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| ConfigError::InitialCluster(part.into()))?;
        if id == 0 || addr.trim().is_empty() {
            return Err(ConfigError::InitialCluster(part.into()));
        }
        out.insert(id, addr.trim().to_string());
    }
    Ok(out)
}

/// `host:port`, optionally behind `http://` or `https://`, as peers dial it.
fn is_host_port(addr: &str) -> bool {
    let host_port = addr
        .strip_prefix("http://")
        .or_else(|| addr.strip_prefix("https://"))
        .unwrap_or(addr);
    host_port
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

fn parse_seeds(s: &str) -> Result<Vec<String>, ConfigError> {
    let seeds: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect();
    if let Some(bad) = seeds.iter().find(|seed| !is_host_port(seed)) {
        return Err(ConfigError::Join(bad.clone()));
    }
    if seeds.is_empty() {
        return Err(ConfigError::Join(s.to_string()));
    }
    Ok(seeds)
}

fn parse_keys(s: Option<String>) -> Result<Vec<(String, String)>, ConfigError> {
    let Some(s) = s else { return Ok(Vec::new()) };
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once(':') {
            Some((id, secret)) if !id.is_empty() && !secret.is_empty() => {
                Ok((id.to_string(), secret.to_string()))
            }
            _ => Err(ConfigError::AuthKeys),
        })
        .collect()
}

impl NodeFlags {
    pub(crate) fn resolve(self) -> Result<NodeConfig, ConfigError> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: path.clone(),
                    source,
                })?
            }
            None => FileConfig::default(),
        };
        let loopback = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let explicit_id = self.node_id.or(file.node_id);
        let node_id = explicit_id.unwrap_or(1);
        if node_id == 0 {
            return Err(ConfigError::NodeId);
        }
        let grpc_addr = self.grpc_addr.or(file.grpc_addr).unwrap_or(loopback(50051));
        let advertised = match self.advertise_addr.or(file.advertise_addr) {
            Some(a) if is_host_port(a.trim()) => Some(a.trim().to_string()),
            Some(a) => return Err(ConfigError::AdvertiseAddr(a)),
            None => None,
        };
        let initial = self.initial_cluster.or(file.initial_cluster);
        let join = match self.join.or(file.join) {
            Some(_) if initial.is_some() => return Err(ConfigError::JoinAndInitialCluster),
            Some(s) => parse_seeds(&s)?,
            None => Vec::new(),
        };
        let initial_cluster = match initial {
            Some(s) => parse_cluster(&s)?,
            // A joining node learns its cluster from the metadata; it forms nothing itself.
            None if !join.is_empty() => BTreeMap::new(),
            None => BTreeMap::from([(node_id, grpc_addr.to_string())]),
        };
        if join.is_empty() && !initial_cluster.contains_key(&node_id) {
            return Err(ConfigError::NotInCluster(node_id));
        }
        if !join.is_empty() {
            if explicit_id.is_none() {
                return Err(ConfigError::JoinNodeId);
            }
            if advertised.is_none() && grpc_addr.ip().is_unspecified() {
                return Err(ConfigError::JoinAddr(grpc_addr));
            }
        }
        Ok(NodeConfig {
            node_id,
            data_dir: self
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./streamd-data")),
            grpc_addr,
            advertise_addr: advertised.unwrap_or_else(|| grpc_addr.to_string()),
            kinesis_addr: self
                .kinesis_addr
                .or(file.kinesis_addr)
                .unwrap_or(loopback(4567)),
            admin_addr: self
                .admin_addr
                .or(file.admin_addr)
                .unwrap_or(loopback(9090)),
            initial_cluster,
            join,
            shard_limits: self
                .shard_limits
                .or(file.shard_limits)
                .unwrap_or(ShardLimitsFlag::Kinesis),
            region: self
                .region
                .or(file.region)
                .unwrap_or_else(|| "us-east-1".into()),
            log_format: self
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Text),
            kinesis_auth_keys: parse_keys(self.kinesis_auth_keys.or(file.kinesis_auth_keys))?,
            kinesis_tls: match (
                self.kinesis_tls_cert.or(file.kinesis_tls_cert),
                self.kinesis_tls_key.or(file.kinesis_tls_key),
            ) {
                (Some(c), Some(k)) => Some((c, k)),
                (None, None) => None,
                _ => return Err(ConfigError::TlsPair),
            },
            snapshot_every_entries: self
                .snapshot_every_entries
                .or(file.snapshot_every_entries)
                .unwrap_or(RaftOptions::default().snapshot_every_entries)
                .max(1),
            node_down_timeout: std::time::Duration::from_secs(
                self.node_down_timeout_secs
                    .or(file.node_down_timeout_secs)
                    .unwrap_or(30)
                    .max(1),
            ),
            otlp_endpoint: self
                .otlp_endpoint
                .or(file.otlp_endpoint)
                .filter(|e| !e.is_empty()),
            wal: streamd_storage::WalOptions::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_make_a_one_node_cluster() {
        let c = NodeFlags::default().resolve().unwrap();
        assert_eq!(c.node_id, 1);
        assert_eq!(c.grpc_addr.port(), 50051);
        assert_eq!(c.kinesis_addr.port(), 4567);
        assert_eq!(c.admin_addr.port(), 9090);
        assert_eq!(c.initial_cluster.len(), 1);
    }

    #[test]
    fn initial_cluster_is_parsed_and_checked() {
        let m = parse_cluster("1=a:1, 2=b:2,3=c:3").unwrap();
        assert_eq!(m.len(), 3);
        assert!(parse_cluster("x=a").is_err());
        assert!(parse_cluster("0=a:1").is_err());
        let flags = NodeFlags {
            node_id: Some(4),
            initial_cluster: Some("1=a:1".into()),
            ..Default::default()
        };
        assert!(matches!(flags.resolve(), Err(ConfigError::NotInCluster(4))));
    }

    #[test]
    fn join_takes_seeds_an_id_and_a_reachable_address() {
        let join = |id: Option<u64>, addr: &str, seeds: &str| NodeFlags {
            node_id: id,
            grpc_addr: Some(addr.parse().unwrap()),
            join: Some(seeds.into()),
            ..Default::default()
        };
        let c = join(Some(4), "10.0.0.4:50051", "10.0.0.1:50051, 10.0.0.2:50051")
            .resolve()
            .unwrap();
        assert_eq!(c.join, vec!["10.0.0.1:50051", "10.0.0.2:50051"]);
        assert!(c.initial_cluster.is_empty(), "a joiner forms nothing");
        assert!(matches!(
            join(None, "10.0.0.4:1", "a:1").resolve(),
            Err(ConfigError::JoinNodeId)
        ));
        assert!(matches!(
            join(Some(4), "0.0.0.0:1", "a:1").resolve(),
            Err(ConfigError::JoinAddr(_))
        ));
        assert!(matches!(
            join(Some(4), "10.0.0.4:1", "nohost").resolve(),
            Err(ConfigError::Join(_))
        ));
        assert!(matches!(
            join(Some(4), "10.0.0.4:1", " , ").resolve(),
            Err(ConfigError::Join(_))
        ));
        let both = NodeFlags {
            initial_cluster: Some("1=a:1".into()),
            ..join(Some(1), "10.0.0.4:1", "a:1")
        };
        assert!(matches!(
            both.resolve(),
            Err(ConfigError::JoinAndInitialCluster)
        ));
        assert!(NodeFlags::default().resolve().unwrap().join.is_empty());
    }

    #[test]
    fn a_node_listening_everywhere_joins_under_its_advertised_name() {
        let flags = |advertise: Option<&str>| NodeFlags {
            node_id: Some(4),
            grpc_addr: Some("0.0.0.0:50051".parse().unwrap()),
            advertise_addr: advertise.map(String::from),
            join: Some("streamd-0.streamd-headless:50051".into()),
            ..Default::default()
        };
        let c = flags(Some("streamd-3.streamd-headless.ns.svc:50051"))
            .resolve()
            .unwrap();
        assert_eq!(c.advertise_addr, "streamd-3.streamd-headless.ns.svc:50051");
        assert_eq!(c.grpc_addr.port(), 50051, "it still listens on --grpc-addr");
        assert!(matches!(
            flags(None).resolve(),
            Err(ConfigError::JoinAddr(_))
        ));
        assert!(matches!(
            flags(Some("streamd-3")).resolve(),
            Err(ConfigError::AdvertiseAddr(_))
        ));
        // Without the flag a node advertises what it listens on.
        let c = NodeFlags::default().resolve().unwrap();
        assert_eq!(c.advertise_addr, "127.0.0.1:50051");
    }

    /// deploy/examples/ is what operators copy: every file must resolve to a valid node.
    #[test]
    fn the_bare_metal_examples_resolve() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/examples");
        let resolve = |file: &str| {
            NodeFlags {
                config: Some(dir.join(file)),
                ..Default::default()
            }
            .resolve()
            .unwrap_or_else(|e| panic!("{file}: {e}"))
        };
        for id in 1..=3 {
            let c = resolve(&format!("node-{id}.toml"));
            assert_eq!(c.node_id, id);
            assert_eq!(c.initial_cluster.len(), 3);
            assert_eq!(c.initial_cluster[&id], c.advertise_addr);
        }
        let c = resolve("node-4-join.toml");
        assert_eq!((c.node_id, c.join.len()), (4, 3));
    }

    #[test]
    fn a_toml_file_sets_what_flags_leave_open() {
        let path = std::env::temp_dir().join(format!("streamd-config-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "node_id = 2\ngrpc_addr = \"127.0.0.1:7002\"\nshard_limits = \"off\"\n\
             advertise_addr = \"node-2.example:7002\"\n\
             initial_cluster = \"1=127.0.0.1:7001,2=127.0.0.1:7002\"\nregion = \"eu-west-1\"\n",
        )
        .unwrap();
        let flags = NodeFlags {
            config: Some(path.clone()),
            region: Some("ap-south-1".into()),
            ..Default::default()
        };
        let c = flags.resolve().unwrap();
        assert_eq!(c.node_id, 2);
        assert_eq!(c.grpc_addr.port(), 7002);
        assert_eq!(c.shard_limits, ShardLimitsFlag::Off);
        assert_eq!(c.initial_cluster.len(), 2);
        assert_eq!(c.advertise_addr, "node-2.example:7002");
        // Flags win over the file.
        assert_eq!(c.region, "ap-south-1");
        std::fs::write(&path, "no_such_setting = 1\n").unwrap();
        let flags = NodeFlags {
            config: Some(path.clone()),
            ..Default::default()
        };
        assert!(matches!(flags.resolve(), Err(ConfigError::Parse { .. })));
        let _ = std::fs::remove_file(&path);
    }
}
