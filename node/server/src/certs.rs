//! `streamd certs`: a development cluster CA, and the node and client certificates it signs,
//! written as PEM files, private keys readable by their owner only. The certificates
//! themselves are made in `tls/issue.rs`.
//!
//! Nothing is overwritten without `--force`, and every file of a command is checked before
//! any is written, so a refused command leaves no half-replaced pair.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Cli, Command};
use crate::tls::{self, Access, Ca, Issued, NodeIdentity, TlsError};

const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca-key.pem";

/// Longest validity accepted, in days.
const MAX_DAYS: u32 = 36_500;

#[derive(Debug, Subcommand)]
pub(crate) enum CertsCommand {
    /// Create a cluster CA: DIR/ca.pem (give it to every node and client) and DIR/ca-key.pem
    /// (keep it off the nodes: it mints certificates).
    Init {
        /// Directory for the CA's files; created if missing.
        dir: PathBuf,
        /// Days the CA is valid.
        #[arg(long, default_value_t = tls::CA_DAYS, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_DAYS)))]
        days: u32,
        /// Replace an existing CA. Certificates the old one signed are no longer trusted by
        /// nodes given the new one.
        #[arg(long)]
        force: bool,
    },
    /// Issue node N's certificate, signed by the CA: OUT/node-N.pem and OUT/node-N-key.pem. It
    /// serves both ends of node-to-node TLS, and names the node (URI streamd://node/N) as well
    /// as every --name and --ip peers dial it by.
    Issue {
        /// Directory holding ca.pem and ca-key.pem (from `streamd certs init`).
        #[arg(long, value_name = "DIR")]
        ca: PathBuf,
        /// The node's id, as given to it with --node-id.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        node_id: u64,
        /// A DNS name peers reach the node by; repeat for several.
        #[arg(long = "name", value_name = "HOST", required_unless_present = "ips")]
        names: Vec<String>,
        /// An IP address peers reach the node by; repeat for several.
        #[arg(long = "ip", value_name = "IP")]
        ips: Vec<IpAddr>,
        /// Directory for the certificate and key; created if missing.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = tls::LEAF_DAYS, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_DAYS)))]
        days: u32,
        /// Replace an existing certificate and key.
        #[arg(long)]
        force: bool,
    },
    /// Issue a client certificate naming the principal NAME (URI streamd://principal/NAME),
    /// signed by the CA: OUT/NAME.pem and OUT/NAME-key.pem.
    IssueClient {
        /// Directory holding ca.pem and ca-key.pem (from `streamd certs init`).
        #[arg(long, value_name = "DIR")]
        ca: PathBuf,
        /// The principal: letters, digits and . - _ @.
        #[arg(long)]
        name: String,
        /// Directory for the certificate and key; created if missing.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = tls::LEAF_DAYS, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_DAYS)))]
        days: u32,
        /// Replace an existing certificate and key.
        #[arg(long)]
        force: bool,
    },
}

/// Runs `streamd certs ...` when that is the command line, and returns its exit code; None for
/// any other command line, which `crate::main` then handles (and reports if malformed).
pub fn run_if_requested() -> Option<ExitCode> {
    let Ok(Cli {
        command: Some(Command::Certs { command }),
        ..
    }) = Cli::try_parse()
    else {
        return None;
    };
    Some(match run(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("streamd: {e}");
            ExitCode::FAILURE
        }
    })
}

/// A certificate and key as written.
#[derive(Debug)]
pub(crate) struct Written {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

#[allow(clippy::print_stdout)]
fn run(command: CertsCommand) -> Result<(), TlsError> {
    let (written, what) = match command {
        CertsCommand::Init { dir, days, force } => (
            init(&dir, days, force)?,
            format!("cluster CA, valid {days} days; keep its key off the nodes"),
        ),
        CertsCommand::Issue {
            ca,
            node_id,
            names,
            ips,
            out,
            days,
            force,
        } => {
            let node = NodeIdentity {
                node_id,
                dns_names: names,
                ips,
            };
            let written = issue(&ca, &node, days, &out, force)?;
            (written, format!("{}, valid {days} days", describe(&node)))
        }
        CertsCommand::IssueClient {
            ca,
            name,
            out,
            days,
            force,
        } => (
            issue_client(&ca, &name, days, &out, force)?,
            format!("principal {name} (URI streamd://principal/{name}), valid {days} days"),
        ),
    };
    println!("wrote {}: {what}", written.cert.display());
    println!(
        "wrote {} (readable by its owner only)",
        written.key.display()
    );
    Ok(())
}

fn describe(node: &NodeIdentity) -> String {
    let mut sans: Vec<String> = node.dns_names.iter().map(|n| format!("DNS {n}")).collect();
    sans.extend(node.ips.iter().map(|ip| format!("IP {ip}")));
    sans.push(format!("URI streamd://node/{}", node.node_id));
    format!("node {} ({})", node.node_id, sans.join(", "))
}

/// `streamd certs init DIR`: a new CA in `dir`.
pub(crate) fn init(dir: &Path, days: u32, force: bool) -> Result<Written, TlsError> {
    save(&tls::new_ca(days)?, dir, CA_CERT, CA_KEY, force)
}

/// `streamd certs issue`: node `node.node_id`'s certificate in `out`, signed by the CA in
/// `ca_dir`.
pub(crate) fn issue(
    ca_dir: &Path,
    node: &NodeIdentity,
    days: u32,
    out: &Path,
    force: bool,
) -> Result<Written, TlsError> {
    let issued = load_ca(ca_dir)?.issue_node(node, days)?;
    let stem = format!("node-{}", node.node_id);
    save(
        &issued,
        out,
        &format!("{stem}.pem"),
        &format!("{stem}-key.pem"),
        force,
    )
}

/// `streamd certs issue-client`: principal `name`'s certificate in `out`, signed by the CA in
/// `ca_dir`.
pub(crate) fn issue_client(
    ca_dir: &Path,
    name: &str,
    days: u32,
    out: &Path,
    force: bool,
) -> Result<Written, TlsError> {
    let issued = load_ca(ca_dir)?.issue_client(name, days)?;
    save(
        &issued,
        out,
        &format!("{name}.pem"),
        &format!("{name}-key.pem"),
        force,
    )
}

fn load_ca(dir: &Path) -> Result<Ca, TlsError> {
    Ca::load(&dir.join(CA_CERT), &dir.join(CA_KEY))
}

fn save(
    issued: &Issued,
    dir: &Path,
    cert_name: &str,
    key_name: &str,
    force: bool,
) -> Result<Written, TlsError> {
    let (cert, key) = (dir.join(cert_name), dir.join(key_name));
    tls::ensure_absent(&[&cert, &key], force)?;
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    // The key first: a pair cut short leaves a key without a certificate, which nothing loads
    // by mistake, rather than a certificate whose key is missing.
    tls::write(&key, &issued.key_pem, Access::OwnerOnly, force)?;
    tls::write(&cert, &issued.cert_pem, Access::Public, force)?;
    Ok(Written { cert, key })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn node(id: u64) -> NodeIdentity {
        NodeIdentity {
            node_id: id,
            dns_names: vec!["localhost".into()],
            ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        }
    }

    #[test]
    fn init_makes_a_ca_and_refuses_to_replace_it() {
        let dir = tempfile::tempdir().unwrap();
        let ca_dir = dir.path().join("ca");
        let written = init(&ca_dir, tls::CA_DAYS, false).unwrap();
        assert_eq!(written.cert, ca_dir.join("ca.pem"));
        assert_eq!(written.key, ca_dir.join("ca-key.pem"));
        assert_eq!(mode(&written.key), 0o600);
        let before = std::fs::read(&written.key).unwrap();

        let err = init(&ca_dir, tls::CA_DAYS, false).unwrap_err();
        assert!(matches!(err, TlsError::Exists { .. }), "{err}");
        assert!(err.to_string().contains("--force"), "{err}");
        assert_eq!(std::fs::read(&written.key).unwrap(), before, "untouched");

        // Half a CA left behind (the certificate gone) is refused too, not silently completed.
        std::fs::remove_file(&written.cert).unwrap();
        assert!(matches!(
            init(&ca_dir, tls::CA_DAYS, false),
            Err(TlsError::Exists { path }) if path == written.key
        ));

        init(&ca_dir, tls::CA_DAYS, true).unwrap();
        assert_ne!(std::fs::read(&written.key).unwrap(), before, "replaced");
        assert_eq!(mode(&written.key), 0o600);
    }

    #[test]
    fn issue_writes_a_pair_a_node_can_load() {
        let dir = tempfile::tempdir().unwrap();
        let ca_dir = dir.path().join("ca");
        let out = dir.path().join("nodes");
        init(&ca_dir, tls::CA_DAYS, false).unwrap();
        let written = issue(&ca_dir, &node(4), 365, &out, false).unwrap();
        assert_eq!(written.cert, out.join("node-4.pem"));
        assert_eq!(written.key, out.join("node-4-key.pem"));
        assert_eq!(mode(&written.key), 0o600);
        let peer = tls::PeerTls::load(&ca_dir.join("ca.pem"), &written.cert, &written.key).unwrap();
        assert_eq!(peer.node_id(), Some(4));

        assert!(matches!(
            issue(&ca_dir, &node(4), 365, &out, false),
            Err(TlsError::Exists { .. })
        ));
        issue(&ca_dir, &node(4), 365, &out, true).unwrap();

        let client = issue_client(&ca_dir, "ops", 30, &out, false).unwrap();
        assert_eq!(client.cert, out.join("ops.pem"));
        assert_eq!(mode(&client.key), 0o600);
    }

    #[test]
    fn a_refused_request_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let ca_dir = dir.path().join("ca");
        let out = dir.path().join("out");
        // No CA yet.
        let err = issue(&ca_dir, &node(1), 365, &out, false).unwrap_err();
        assert!(matches!(err, TlsError::Missing { .. }), "{err}");
        init(&ca_dir, tls::CA_DAYS, false).unwrap();
        let bad = NodeIdentity {
            dns_names: vec!["not a name".into()],
            ..node(1)
        };
        assert!(matches!(
            issue(&ca_dir, &bad, 365, &out, false),
            Err(TlsError::InvalidName { .. })
        ));
        assert!(matches!(
            issue_client(&ca_dir, "../escape", 30, &out, false),
            Err(TlsError::InvalidName { .. })
        ));
        assert!(!out.exists());
    }

    #[test]
    fn the_command_line_parses_as_documented() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("streamd").chain(args.iter().copied()))
                .map(|cli| cli.command)
        };
        match parse(&[
            "certs",
            "issue",
            "--ca",
            "c",
            "--node-id",
            "2",
            "--name",
            "a",
            "--name",
            "b",
            "--ip",
            "10.0.0.2",
            "--out",
            "o",
        ]) {
            Ok(Some(Command::Certs {
                command:
                    CertsCommand::Issue {
                        node_id,
                        names,
                        ips,
                        days,
                        force,
                        ..
                    },
            })) => {
                assert_eq!((node_id, days, force), (2, tls::LEAF_DAYS, false));
                assert_eq!(names, ["a", "b"]);
                assert_eq!(ips, [IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))]);
            }
            other => panic!("{other:?}"),
        }
        match parse(&["certs", "init", "d"]) {
            Ok(Some(Command::Certs {
                command: CertsCommand::Init { days, force, .. },
            })) => assert_eq!((days, force), (tls::CA_DAYS, false)),
            other => panic!("{other:?}"),
        }
        // A node needs some name or address; ids start at 1; validity is at least a day.
        assert!(
            parse(&[
                "certs",
                "issue",
                "--ca",
                "c",
                "--node-id",
                "2",
                "--out",
                "o"
            ])
            .is_err()
        );
        assert!(
            parse(&[
                "certs",
                "issue",
                "--ca",
                "c",
                "--node-id",
                "0",
                "--ip",
                "::1",
                "--out",
                "o"
            ])
            .is_err()
        );
        assert!(
            parse(&[
                "certs",
                "issue",
                "--ca",
                "c",
                "--node-id",
                "1",
                "--ip",
                "::1",
                "--out",
                "o"
            ])
            .is_ok()
        );
        assert!(parse(&["certs", "init", "d", "--days", "0"]).is_err());
        assert!(
            parse(&[
                "certs",
                "issue-client",
                "--ca",
                "c",
                "--name",
                "ops",
                "--out",
                "o"
            ])
            .is_ok()
        );
    }
}
