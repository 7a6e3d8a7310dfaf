//! The network of a run as root: one network namespace per node, each joined by a veth pair to a
//! bridge in the root namespace, so that partitions are real packet drops (iptables inside the
//! node's namespace) while clients in the root namespace still reach every node.
//!
//! Addresses: bridge `10.<x>.0.1/24`, node i at `10.<x>.0.(10+i)`. `x` is claimed by creating the
//! bridge `sd<x>br` (creation fails when another run holds it), so parallel runs never share a
//! subnet. Names: namespaces `sd-<x>-<i>`, host-side veths `sd<x>h<i>`, node-side `sd<x>n<i>`.
//! Everything is removed by [`Netns::teardown`], which [`Drop`] also calls.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("`{command}` failed: {message}")]
    Command { command: String, message: String },
    #[error("no free 10.x.0.0/24 subnet for a bridge")]
    NoSubnet,
}

#[derive(Debug)]
pub struct Netns {
    x: u8,
    nodes: usize,
    torn_down: AtomicBool,
}

/// Runs a command, returning its stderr on failure.
fn run(program: &str, args: &[&str]) -> Result<(), NetError> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| NetError::Command {
            command: format!("{program} {}", args.join(" ")),
            message: e.to_string(),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetError::Command {
            command: format!("{program} {}", args.join(" ")),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Where an executable is on the `PATH`, if anywhere.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Whether this process runs as root (namespaces and iptables need it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// Second octets some interface already uses in 10.x.0.0/16.
fn subnets_in_use() -> Vec<u8> {
    let Ok(out) = Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("10."))
        .filter_map(|rest| rest.split('.').next()?.parse().ok())
        .collect()
}

impl Netns {
    /// Builds the bridge and `nodes` namespaces. `hint` spreads parallel runs over subnets (the
    /// process id is a good one). On failure everything built so far is removed.
    pub fn create(nodes: usize, hint: u32) -> Result<Netns, NetError> {
        let used = subnets_in_use();
        let first = 20 + (hint % 200) as u16;
        let mut claimed = None;
        for k in 0..200u16 {
            let x = (20 + (first - 20 + k) % 200) as u8;
            if used.contains(&x) {
                continue;
            }
            match run(
                "ip",
                &["link", "add", &format!("sd{x}br"), "type", "bridge"],
            ) {
                Ok(()) => {
                    claimed = Some(x);
                    break;
                }
                Err(NetError::Command { message, .. }) if message.contains("exists") => continue,
                Err(e) => return Err(e),
            }
        }
        let x = claimed.ok_or(NetError::NoSubnet)?;
        let net = Netns {
            x,
            nodes,
            torn_down: AtomicBool::new(false),
        };
        // On error `net` is dropped, which tears down whatever exists.
        net.build()?;
        Ok(net)
    }

    fn build(&self) -> Result<(), NetError> {
        let bridge = self.bridge();
        run(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/24", self.bridge_ip()),
                "dev",
                &bridge,
            ],
        )?;
        run("ip", &["link", "set", &bridge, "up"])?;
        for i in 1..=self.nodes as u64 {
            let ns = self.ns(i);
            // A namespace of that name can only be left over from a dead run that held `x`.
            let _ = run("ip", &["netns", "del", &ns]);
            run("ip", &["netns", "add", &ns])?;
            let (host, inner) = (self.host_veth(i), self.node_veth(i));
            run(
                "ip",
                &["link", "add", &host, "type", "veth", "peer", "name", &inner],
            )?;
            run("ip", &["link", "set", &inner, "netns", &ns])?;
            run("ip", &["link", "set", &host, "master", &bridge])?;
            run("ip", &["link", "set", &host, "up"])?;
            let addr = format!("{}/24", self.ip(i));
            run("ip", &["-n", &ns, "addr", "add", &addr, "dev", &inner])?;
            run("ip", &["-n", &ns, "link", "set", &inner, "up"])?;
            run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    pub fn x(&self) -> u8 {
        self.x
    }

    pub fn bridge(&self) -> String {
        format!("sd{}br", self.x)
    }

    pub fn bridge_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.x, 0, 1)
    }

    pub fn ns(&self, id: u64) -> String {
        format!("sd-{}-{id}", self.x)
    }

    fn host_veth(&self, id: u64) -> String {
        format!("sd{}h{id}", self.x)
    }

    fn node_veth(&self, id: u64) -> String {
        format!("sd{}n{id}", self.x)
    }

    pub fn ip(&self, id: u64) -> Ipv4Addr {
        Ipv4Addr::new(10, self.x, 0, (10 + id) as u8)
    }

    /// Cuts every node off from the nodes outside its group, in both directions, with DROP rules
    /// inside each node's namespace. Clients (on the bridge address) keep reaching every node.
    pub fn partition(&self, groups: &[Vec<u64>]) -> Result<(), NetError> {
        self.cut(&cross_pairs(groups))
    }

    /// Cuts each link `(a, b)` in both directions; every other link keeps working, so any
    /// connectivity graph can be made (rings, bridges, halves). Rules go inside both nodes'
    /// namespaces, see [`cut_rules`].
    pub fn cut(&self, links: &[(u64, u64)]) -> Result<(), NetError> {
        for &(a, b) in links {
            for (node, other) in [(a, b), (b, a)] {
                let ns = self.ns(node);
                for rule in cut_rules(self.ip(other)) {
                    let mut args = vec!["netns", "exec", &ns, "iptables", "-w"];
                    args.extend(rule.iter().map(String::as_str));
                    run("ip", &args)?;
                }
            }
        }
        Ok(())
    }

    /// Sends node `from`'s TCP connections to `to`'s `port` through `via` (a proxy on the
    /// bridge): a DNAT rule in the nat table of `from`'s namespace, so only connections the node
    /// itself opens are rewritten, never the clients' (they arrive from the root namespace).
    /// [`Netns::heal`] flushes only the filter table, so the rule lasts the whole run.
    pub fn redirect(
        &self,
        from: u64,
        to: u64,
        port: u16,
        via: std::net::SocketAddr,
    ) -> Result<(), NetError> {
        let ns = self.ns(from);
        let rule = redirect_rule(self.ip(to), port, via);
        let mut args = vec!["netns", "exec", &ns, "iptables", "-w"];
        args.extend(rule.iter().map(String::as_str));
        run("ip", &args)
    }

    /// Drops `percent`% of the packets on node `id`'s link, in both directions, with the
    /// iptables statistic match inside its namespace (its loopback is left alone). Healed by
    /// [`Netns::heal`].
    pub fn lossy(&self, id: u64, percent: u32) -> Result<(), NetError> {
        let ns = self.ns(id);
        for rule in lossy_rules(&self.node_veth(id), percent) {
            let mut args = vec!["netns", "exec", &ns, "iptables", "-w"];
            args.extend(rule.iter().map(String::as_str));
            run("ip", &args)?;
        }
        Ok(())
    }

    /// Removes every proxy redirect (the nat table of every namespace).
    pub fn unredirect(&self) -> Result<(), NetError> {
        let mut first_error = None;
        for i in 1..=self.nodes as u64 {
            let ns = self.ns(i);
            let args = [
                "netns", "exec", &ns, "iptables", "-w", "-t", "nat", "-F", "OUTPUT",
            ];
            if let Err(e) = run("ip", &args) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Removes every partition and lossy rule (the namespaces are the run's own, so their
    /// filter chains are flushed whole; the nat table's proxy redirects stay).
    pub fn heal(&self) -> Result<(), NetError> {
        let mut first_error = None;
        for i in 1..=self.nodes as u64 {
            let ns = self.ns(i);
            for chain in ["INPUT", "OUTPUT"] {
                if let Err(e) = run("ip", &["netns", "exec", &ns, "iptables", "-w", "-F", chain]) {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Deletes the namespaces (which removes their veth pairs) and the bridge. Idempotent; the
    /// nodes must have been killed first.
    pub fn teardown(&self) {
        if self.torn_down.swap(true, Ordering::SeqCst) {
            return;
        }
        for i in 1..=self.nodes as u64 {
            let _ = run("ip", &["netns", "del", &self.ns(i)]);
            let _ = run("ip", &["link", "del", &self.host_veth(i)]);
        }
        let _ = run("ip", &["link", "del", &self.bridge()]);
    }
}

/// Every pair of nodes on different sides of `groups`, each once, lower id first.
pub fn cross_pairs(groups: &[Vec<u64>]) -> Vec<(u64, u64)> {
    let mut pairs = Vec::new();
    for (g, group) in groups.iter().enumerate() {
        for other in groups.iter().skip(g + 1) {
            for &a in group {
                for &b in other {
                    pairs.push((a.min(b), a.max(b)));
                }
            }
        }
    }
    pairs.sort_unstable();
    pairs.dedup();
    pairs
}

/// The iptables arguments (after `iptables -w`), inside one node's namespace, that cut it off
/// from the node at `peer`. The plain `-s`/`-d` rules cut direct packets; the conntrack rules
/// match the address a connection was first sent to, before the DNAT of [`redirect_rule`], so
/// connections this node opens to `peer` through the delay proxy are cut too (their packets
/// carry the bridge address). A proxied connection `peer` opens to this node is cut on
/// `peer`'s side by the same rules there, as every cut is applied to both ends.
pub fn cut_rules(peer: Ipv4Addr) -> Vec<Vec<String>> {
    let ip = peer.to_string();
    let plain = [("INPUT", "-s"), ("OUTPUT", "-d")].map(|(chain, dir)| {
        ["-A", chain, dir, &ip, "-j", "DROP"]
            .map(String::from)
            .to_vec()
    });
    let tracked = ["INPUT", "OUTPUT"].map(|chain| {
        [
            "-A",
            chain,
            "-m",
            "conntrack",
            "--ctorigdst",
            &ip,
            "-j",
            "DROP",
        ]
        .map(String::from)
        .to_vec()
    });
    plain.into_iter().chain(tracked).collect()
}

/// The nat rule that rewrites TCP connections to `peer:port` to go to `via` instead.
pub fn redirect_rule(peer: Ipv4Addr, port: u16, via: std::net::SocketAddr) -> Vec<String> {
    [
        "-t",
        "nat",
        "-A",
        "OUTPUT",
        "-p",
        "tcp",
        "-d",
        &peer.to_string(),
        "--dport",
        &port.to_string(),
        "-j",
        "DNAT",
        "--to-destination",
        &via.to_string(),
    ]
    .map(String::from)
    .to_vec()
}

/// The iptables arguments (after `iptables -w`) that drop `percent`% of the packets entering
/// and leaving through `iface`, each packet independently.
pub fn lossy_rules(iface: &str, percent: u32) -> Vec<Vec<String>> {
    let probability = format!("{:.2}", f64::from(percent.min(100)) / 100.0);
    [("INPUT", "-i"), ("OUTPUT", "-o")]
        .into_iter()
        .map(|(chain, dir)| {
            [
                "-A",
                chain,
                dir,
                iface,
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                &probability,
                "-j",
                "DROP",
            ]
            .map(String::from)
            .to_vec()
        })
        .collect()
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.teardown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_interface_limits_and_addresses_follow_the_plan() {
        let net = Netns {
            x: 231,
            nodes: 9,
            torn_down: AtomicBool::new(true),
        };
        assert_eq!(net.bridge(), "sd231br");
        assert!(net.host_veth(9).len() <= 15);
        assert_eq!(net.ns(3), "sd-231-3");
        assert_eq!(net.ip(3), Ipv4Addr::new(10, 231, 0, 13));
        assert_eq!(net.bridge_ip(), Ipv4Addr::new(10, 231, 0, 1));
    }

    #[test]
    fn lossy_rules_drop_a_share_of_the_link_both_ways() {
        let rules = lossy_rules("sd40n2", 20);
        assert_eq!(
            rules[0].join(" "),
            "-A INPUT -i sd40n2 -m statistic --mode random --probability 0.20 -j DROP"
        );
        assert_eq!(
            rules[1].join(" "),
            "-A OUTPUT -o sd40n2 -m statistic --mode random --probability 0.20 -j DROP"
        );
        assert_eq!(rules.len(), 2);
        assert!(
            lossy_rules("x", 250)[0]
                .join(" ")
                .contains("--probability 1.00")
        );
    }

    #[test]
    fn halves_cut_exactly_the_links_across() {
        assert_eq!(
            cross_pairs(&[vec![3, 1], vec![2, 4, 5]]),
            vec![(1, 2), (1, 4), (1, 5), (2, 3), (3, 4), (3, 5)]
        );
        assert_eq!(cross_pairs(&[vec![2], vec![1, 3]]), vec![(1, 2), (2, 3)]);
        assert!(cross_pairs(&[vec![1, 2, 3]]).is_empty());
    }

    #[test]
    fn a_cut_also_matches_connections_redirected_through_the_proxy() {
        let rules: Vec<String> = cut_rules(Ipv4Addr::new(10, 40, 0, 12))
            .iter()
            .map(|r| r.join(" "))
            .collect();
        assert_eq!(
            rules,
            vec![
                "-A INPUT -s 10.40.0.12 -j DROP",
                "-A OUTPUT -d 10.40.0.12 -j DROP",
                "-A INPUT -m conntrack --ctorigdst 10.40.0.12 -j DROP",
                "-A OUTPUT -m conntrack --ctorigdst 10.40.0.12 -j DROP",
            ]
        );
        let via = std::net::SocketAddr::from(([10, 40, 0, 1], 41000));
        assert_eq!(
            redirect_rule(Ipv4Addr::new(10, 40, 0, 12), 50051, via).join(" "),
            "-t nat -A OUTPUT -p tcp -d 10.40.0.12 --dport 50051 -j DNAT --to-destination 10.40.0.1:41000"
        );
    }

    #[test]
    fn root_detection_reads_proc() {
        // Whatever the answer, it must not panic and must agree with `id -u` when present.
        let root = is_root();
        if let Ok(out) = Command::new("id").arg("-u").output() {
            let uid = String::from_utf8_lossy(&out.stdout).trim().to_string();
            assert_eq!(root, uid == "0");
        }
    }
}
