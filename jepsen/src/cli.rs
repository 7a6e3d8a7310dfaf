//! The command line. `test` runs a campaign; `check` judges an existing history again (optionally
//! with a bug planted in it, to show the checker catches it).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::nemesis::Kind;
use crate::plant::Plant;

#[derive(Debug, Parser)]
#[command(
    name = "streamd-jepsen",
    about = "Fault-injection tests for streamd: real nodes, real faults, a recorded history, an independent checker"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a cluster, run the workload under the nemeses, drain, check, report.
    Test(TestArgs),
    /// Check an existing history.jsonl and write results.json (and the plot) beside it.
    Check(CheckArgs),
}

/// A nemesis name on the command line; `none` runs the workload without faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NemesisArg {
    Kill,
    Pause,
    Partition,
    Lossy,
    PartitionLeader,
    Ring,
    Bridge,
    Delay,
    Clock,
    Reshard,
    PowerCut,
    Membership,
    Corrupt,
    CorruptSled,
    None,
}

impl NemesisArg {
    pub fn kind(self) -> Option<Kind> {
        match self {
            NemesisArg::Kill => Some(Kind::Kill),
            NemesisArg::Pause => Some(Kind::Pause),
            NemesisArg::Partition => Some(Kind::Partition),
            NemesisArg::Lossy => Some(Kind::Lossy),
            NemesisArg::PartitionLeader => Some(Kind::PartitionLeader),
            NemesisArg::Ring => Some(Kind::Ring),
            NemesisArg::Bridge => Some(Kind::Bridge),
            NemesisArg::Delay => Some(Kind::Delay),
            NemesisArg::Clock => Some(Kind::Clock),
            NemesisArg::Reshard => Some(Kind::Reshard),
            NemesisArg::PowerCut => Some(Kind::PowerCut),
            NemesisArg::Membership => Some(Kind::Membership),
            NemesisArg::Corrupt => Some(Kind::Corrupt),
            NemesisArg::CorruptSled => Some(Kind::CorruptSled),
            NemesisArg::None => None,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct TestArgs {
    /// Nodes in the cluster (ids 1..=N).
    #[arg(long, default_value_t = 5)]
    pub nodes: u64,
    /// Seconds of workload under faults (setup, healing and the final drain come on top).
    #[arg(long, default_value_t = 60)]
    pub time_limit: u64,
    /// Nemeses to schedule, comma-separated: kill, pause, partition, lossy, partition-leader,
    /// ring, bridge, delay, clock, reshard, power-cut, membership, corrupt (or none).
    #[arg(long, value_delimiter = ',', default_value = "partition,kill,pause")]
    pub nemesis: Vec<NemesisArg>,
    /// Seed of every random choice (fault schedule, batch sizes, keys); printed, and a run is
    /// replayed by passing it again. Random when not given.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where history.jsonl, results.json, the plot and the nodes' data and logs go.
    #[arg(long, default_value = "jepsen-out")]
    pub out: PathBuf,
    /// The streamd binary. Default: $STREAMD_BIN, else `streamd` next to this executable.
    #[arg(long)]
    pub streamd: Option<PathBuf>,
    /// Shards of the test stream.
    #[arg(long, default_value_t = 4)]
    pub shards: u32,
    /// Concurrent writers.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Readers; each tails every shard.
    #[arg(long, default_value_t = 2)]
    pub readers: usize,
    /// PutRecords calls per second, all writers together.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Deadline of one client call, in seconds (past it the outcome is unknown).
    #[arg(long, default_value_t = 10)]
    pub request_timeout: u64,
    /// Distinct partition keys the writers draw from. Default: 128 with `reshard` (so a key's
    /// records span a parent and its children, for property 7), else any of 2^32.
    #[arg(long)]
    pub keys: Option<u32>,
    /// Run on loopback ports even as root (process nemeses only).
    #[arg(long)]
    pub no_netns: bool,
    /// Longest stretch without an acknowledged append that property 15 accepts, in seconds.
    #[arg(long, default_value_t = 30)]
    pub availability_bound: u64,
    /// Longest stretch without an acknowledged append that property 16 accepts around a fault
    /// silencing one node, in milliseconds. Without it the stalls are reported, never judged.
    #[arg(long, value_name = "MS")]
    pub stall_bound_ms: Option<u64>,
    /// How long every node gets to answer `/readyz` after the final heal, in seconds; a node
    /// still not ready is not drained, and the run is a harness failure.
    #[arg(long, default_value_t = 120)]
    pub recovery_timeout: u64,
    /// After the drain, the retention phase (property 14): records appended around jumps of
    /// every node's wall clock 12 h and 25 h ahead (libfaketime), read until the records older
    /// than the 24 h retention are trimmed, and again after a node's restart.
    #[arg(long)]
    pub retention: bool,
}

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// The history to check.
    pub history: PathBuf,
    /// Where to write results.json and the plot. Default: the history's directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Plant a bug in the history before checking (the history file is not changed).
    #[arg(long, value_enum)]
    pub plant: Option<Plant>,
    #[arg(long, default_value_t = 30)]
    pub availability_bound: u64,
    /// As for `test`: property 16's bound, in milliseconds (none: figures only).
    #[arg(long, value_name = "MS")]
    pub stall_bound_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_command_line_parses() {
        let cli = Cli::try_parse_from([
            "streamd-jepsen",
            "test",
            "--nodes",
            "5",
            "--time-limit",
            "60",
            "--nemesis",
            "partition,kill,pause",
            "--seed",
            "7",
            "--out",
            "/tmp/x",
        ])
        .unwrap();
        let Command::Test(t) = cli.command else {
            panic!("not a test command");
        };
        assert_eq!((t.nodes, t.time_limit, t.seed), (5, 60, Some(7)));
        assert_eq!(
            t.nemesis,
            vec![NemesisArg::Partition, NemesisArg::Kill, NemesisArg::Pause]
        );
        assert_eq!((t.shards, t.clients), (4, 8));
    }

    #[test]
    fn the_network_nemeses_parse_by_their_names() {
        let cli = Cli::try_parse_from([
            "streamd-jepsen",
            "test",
            "--nemesis",
            "lossy,partition-leader,kill,power-cut",
        ])
        .unwrap();
        let Command::Test(t) = cli.command else {
            panic!("not a test command");
        };
        let kinds: Vec<_> = t.nemesis.iter().filter_map(|n| n.kind()).collect();
        assert_eq!(
            kinds,
            vec![
                Kind::Lossy,
                Kind::PartitionLeader,
                Kind::Kill,
                Kind::PowerCut
            ]
        );
        assert_eq!(Kind::PartitionLeader.name(), "partition-leader");
        assert_eq!(Kind::PowerCut.name(), "power-cut");
    }

    #[test]
    fn the_graph_delay_and_clock_nemeses_parse_by_their_names() {
        let cli = Cli::try_parse_from([
            "streamd-jepsen",
            "test",
            "--nemesis",
            "ring,bridge,delay,clock",
        ])
        .unwrap();
        let Command::Test(t) = cli.command else {
            panic!("not a test command");
        };
        let kinds: Vec<_> = t.nemesis.iter().filter_map(|n| n.kind()).collect();
        assert_eq!(
            kinds,
            vec![Kind::Ring, Kind::Bridge, Kind::Delay, Kind::Clock]
        );
        let names: Vec<_> = kinds.iter().map(|k| k.name()).collect();
        assert_eq!(names, vec!["ring", "bridge", "delay", "clock"]);
    }

    #[test]
    fn retention_is_off_unless_asked_for() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["streamd-jepsen", "test"];
            argv.extend(extra);
            match Cli::try_parse_from(argv).unwrap().command {
                Command::Test(t) => t.retention,
                Command::Check(_) => panic!("not a test command"),
            }
        };
        assert!(!parse(&[]));
        assert!(parse(&["--retention"]));
    }

    #[test]
    fn the_stall_bound_is_unset_unless_given() {
        let parse = |argv: &[&str]| match Cli::try_parse_from(argv).map(|c| c.command) {
            Ok(Command::Test(t)) => t.stall_bound_ms,
            Ok(Command::Check(c)) => c.stall_bound_ms,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(parse(&["streamd-jepsen", "test"]), None);
        assert_eq!(
            parse(&["streamd-jepsen", "test", "--stall-bound-ms", "1500"]),
            Some(1500)
        );
        assert_eq!(parse(&["streamd-jepsen", "check", "h.jsonl"]), None);
        assert_eq!(
            parse(&[
                "streamd-jepsen",
                "check",
                "h.jsonl",
                "--stall-bound-ms",
                "800"
            ]),
            Some(800)
        );
    }

    #[test]
    fn unknown_nemeses_are_refused() {
        assert!(Cli::try_parse_from(["streamd-jepsen", "test", "--nemesis", "flood"]).is_err());
    }
}
