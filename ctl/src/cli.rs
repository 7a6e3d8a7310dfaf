//! The command line: every command, flag and help text, and nothing that runs them.
//!
//! Command shapes that scripts depend on (DESIGN.md section 10) are kept stable here:
//! `stream create NAME --shards N`, `stream list`, `put NAME`, `get NAME --from ...`, `tail NAME`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::time::parse_duration;

/// The exit codes, as `streamctl --help` documents them (error.rs maps errors onto them).
macro_rules! exit_codes {
    () => {
        "Exit codes:
  0  success
  1  the server or the local system failed the command
  2  usage error: a bad flag or argument, or one the server refused as invalid
  3  not found: no such stream, shard or node
  4  the cluster could not be reached, or a wait timed out"
    };
}

const MAIN_AFTER_HELP: &str = concat!(
    "Examples:
  streamctl stream create orders --shards 4
  printf 'a\\nb\\n' | streamctl put orders --key customer-7
  streamctl get orders --from trim-horizon --limit 10 --output json
  streamctl tail orders
  streamctl cluster status
  streamctl --endpoint 10.0.0.1:50051,10.0.0.2:50051 stream list
  streamctl bench produce --shards 8 --record-size 1024 --duration 20s

Endpoint: --endpoint, else $STREAMCTL_ENDPOINT, else the profile named by --profile,
$STREAMCTL_PROFILE or the config file's default_profile, else 127.0.0.1:50051. The config file
is --config, else $STREAMCTL_CONFIG, else ~/.config/streamctl/config.toml:
  default_profile = \"local\"
  [profile.local]
  endpoint = \"127.0.0.1:50051\"

",
    exit_codes!()
);

#[derive(Debug, Parser)]
#[command(
    name = "streamctl",
    version,
    about = "Operate a streamd cluster: streams, records, shards, nodes and benchmarks",
    after_help = MAIN_AFTER_HELP,
    propagate_version = true
)]
pub(crate) struct Cli {
    /// Cluster endpoints, `host:port` separated by commas (seeds; any node answers any call).
    #[arg(
        long,
        global = true,
        value_name = "HOST:PORT[,...]",
        help_heading = "Global options"
    )]
    pub(crate) endpoint: Option<String>,
    /// Profile of the config file to take the endpoint from.
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        help_heading = "Global options"
    )]
    pub(crate) profile: Option<String>,
    /// Config file with `[profile.NAME]` tables.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        help_heading = "Global options"
    )]
    pub(crate) config: Option<PathBuf>,
    /// Output format: human tables, or JSON for scripts.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Text, help_heading = "Global options")]
    pub(crate) output: OutputFormat,
    /// Deadline of one call to the cluster (e.g. 500ms, 10s).
    #[arg(
        long,
        global = true,
        value_name = "DURATION",
        default_value = "10s",
        value_parser = parse_duration,
        help_heading = "Global options"
    )]
    pub(crate) request_timeout: Duration,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create, list, describe, delete and scale streams.
    #[command(subcommand)]
    Stream(StreamCmd),
    /// Write records: one per argument, or one per line of a file or of stdin.
    #[command(after_help = "\
Examples:
  streamctl put orders 'first record' 'second record'
  printf 'a\\nb\\n' | streamctl put orders            # random partition key per record
  streamctl put orders --key customer-7 --file events.txt

Blank lines are skipped. Records refused for throughput or a reshard are sent again; the command
fails when the cluster cannot be reached or a record is still refused after its retries.")]
    Put(PutArgs),
    /// Read records from a stream's shards, oldest first, then stop.
    #[command(after_help = "\
Examples:
  streamctl get orders --from trim-horizon --limit 100
  streamctl get orders --from at-timestamp 2026-11-26T08:00:00Z
  streamctl get orders --from at-timestamp 1764144000000          # epoch milliseconds
  streamctl get orders --from at-sequence 4961... --output json   # finds the shard itself

Without --shard every shard is read (parents before children), each up to its current end.")]
    Get(GetArgs),
    /// Follow a stream: print records as they arrive, across reshards, until Ctrl-C.
    #[command(after_help = "\
Examples:
  streamctl tail orders
  streamctl tail orders --from trim-horizon --limit 1000 --output json   # JSON lines

Follows every open shard; when a shard is closed by a split or merge, follows its children once
all their parents are read to the end, so a key's records keep their order.")]
    Tail(TailArgs),
    /// Cluster-wide views.
    #[command(subcommand)]
    Cluster(ClusterCmd),
    /// List, drain and remove nodes.
    #[command(subcommand)]
    Node(NodeCmd),
    /// List, split and merge shards.
    #[command(subcommand)]
    Shard(ShardCmd),
    /// Register, list and deregister a stream's named consumers.
    #[command(subcommand)]
    Consumer(ConsumerCmd),
    /// Measure throughput and latency against the cluster.
    #[command(subcommand)]
    Bench(BenchCmd),
    /// Print a shell completion script.
    #[command(after_help = "\
Examples:
  streamctl completions bash > /etc/bash_completion.d/streamctl
  streamctl completions zsh > \"${fpath[1]}/_streamctl\"
  streamctl completions fish > ~/.config/fish/completions/streamctl.fish")]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum StreamCmd {
    /// Create a stream and wait until it is ACTIVE.
    #[command(after_help = "Example:\n  streamctl stream create orders --shards 4")]
    Create {
        /// The stream's name.
        name: String,
        /// Number of shards.
        #[arg(long, default_value_t = 1)]
        shards: u32,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// List streams with their status.
    List,
    /// Show a stream and its shards.
    Describe { name: String },
    /// Delete a stream and wait until it is gone.
    Delete {
        /// The stream's name.
        name: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Set how long records are kept (24 to 8760 hours).
    #[command(after_help = "Example:\n  streamctl stream retention orders --hours 48")]
    Retention {
        /// The stream's name.
        name: String,
        #[arg(long)]
        hours: u32,
    },
    /// Change the number of open shards (uniform scaling) and wait until the reshard is done.
    #[command(after_help = "Example:\n  streamctl stream scale orders --shards 8")]
    Scale {
        /// The stream's name.
        name: String,
        /// Target number of open shards.
        #[arg(long)]
        shards: u32,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

/// How a command that starts something asynchronous waits for it.
#[derive(Debug, Clone, Args)]
pub(crate) struct WaitArgs {
    /// Return as soon as the cluster accepted the request.
    #[arg(long)]
    pub(crate) no_wait: bool,
    /// How long to wait before giving up (exit code 4).
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = parse_duration)]
    pub(crate) wait_timeout: Duration,
}

#[derive(Debug, Args)]
pub(crate) struct PutArgs {
    /// The stream's name.
    pub(crate) name: String,
    /// Records to write, one per argument. Without them (and without --file), stdin lines.
    pub(crate) records: Vec<String>,
    /// Partition key of every record. Default: a random key per record.
    #[arg(long)]
    pub(crate) key: Option<String>,
    /// Read records from this file, one per line.
    #[arg(long, value_name = "PATH", conflicts_with = "records")]
    pub(crate) file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    /// The stream's name.
    pub(crate) name: String,
    /// Where to start: trim-horizon, latest, at-timestamp T (RFC 3339 or epoch ms),
    /// at-sequence S, after-sequence S.
    #[arg(long, num_args = 1..=2, value_names = ["POSITION", "VALUE"], default_values = ["trim-horizon"])]
    pub(crate) from: Vec<String>,
    /// Read only this shard (`shardId-000000000001` or `1`).
    #[arg(long, value_name = "ID")]
    pub(crate) shard: Option<String>,
    /// Stop after this many records in all.
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<u64>,
}

#[derive(Debug, Args)]
pub(crate) struct TailArgs {
    /// The stream's name.
    pub(crate) name: String,
    /// Where to start in the open shards (as for `get`).
    #[arg(long, num_args = 1..=2, value_names = ["POSITION", "VALUE"], default_values = ["latest"])]
    pub(crate) from: Vec<String>,
    /// Stop after this many records.
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<u64>,
    /// Stop after this long (e.g. 30s). Default: until Ctrl-C or --limit.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) duration: Option<Duration>,
    /// Accepted for `tail -f` habits: tail always follows.
    #[arg(short = 'f', long, hide = true)]
    pub(crate) follow: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ClusterCmd {
    /// Nodes (reachable or not), their Raft groups and leaderships, and the metadata leader.
    Status,
}

#[derive(Debug, Subcommand)]
pub(crate) enum NodeCmd {
    /// List the cluster's nodes.
    List,
    /// Move every replica and leadership off a node; it then leaves the cluster.
    #[command(after_help = "Example:\n  streamctl node drain 3 --no-wait")]
    Drain {
        /// The node's id (see `streamctl node list`).
        id: u64,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Drain a node and wait until it has left the cluster.
    #[command(after_help = "\
Example:
  streamctl node remove 3 && systemctl --host node3 stop streamd

The server removes a node only by draining it, so this is `drain` that always waits until the
node is gone from the member list; stop its process afterwards.")]
    Remove {
        /// The node's id (see `streamctl node list`).
        id: u64,
        /// How long to wait before giving up (exit code 4).
        #[arg(long, value_name = "DURATION", default_value = "300s", value_parser = parse_duration)]
        wait_timeout: Duration,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConsumerCmd {
    /// Register a named consumer of a stream.
    #[command(after_help = "Example:\n  streamctl consumer register orders billing")]
    Register {
        stream: String,
        /// 1 to 128 characters of [a-zA-Z0-9_.-].
        name: String,
    },
    /// List a stream's registered consumers.
    List { stream: String },
    /// Remove a registered consumer.
    Deregister { stream: String, name: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ShardCmd {
    /// List a stream's shards, open and closed.
    List { name: String },
    /// Split a shard in two at a hash key (default: the middle of its range).
    #[command(after_help = "Example:\n  streamctl shard split orders shardId-000000000000")]
    Split {
        /// The stream's name.
        name: String,
        /// The shard (`shardId-000000000001` or `1`).
        shard: String,
        /// Decimal hash key that starts the upper child.
        #[arg(long, value_name = "KEY")]
        at: Option<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Merge two shards with adjacent hash key ranges.
    #[command(
        after_help = "Example:\n  streamctl shard merge orders shardId-000000000001 shardId-000000000002"
    )]
    Merge {
        /// The stream's name.
        name: String,
        /// The shard (`shardId-000000000001` or `1`).
        shard: String,
        /// The shard whose hash key range adjoins the first one's.
        adjacent: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCmd {
    /// Write as fast as the cluster acknowledges; report records/s, MB/s and ack latency.
    #[command(after_help = "\
Example:
  streamctl bench produce --shards 8 --concurrency 16 --record-size 1024 --duration 30s --json out.json

Ack latency is measured per PutRecords call (send to reply), in one histogram for all producers.
MB is 10^6 bytes of record data. Run the cluster with `--shard-limits off` to measure the cluster
rather than Kinesis's per-shard limits.")]
    Produce(BenchArgs),
    /// Fill a stream, then read it back from every shard; report records/s, MB/s and call latency.
    Consume(BenchConsumeArgs),
    /// Produce and consume at once; report end-to-end latency (put sent to record read).
    E2e(BenchArgs),
}

#[derive(Debug, Clone, Args)]
pub(crate) struct BenchArgs {
    /// Use this existing stream instead of creating (and deleting) a `bench-*` stream.
    #[arg(long, value_name = "NAME")]
    pub(crate) stream: Option<String>,
    /// Shards of the stream the bench creates.
    #[arg(long, default_value_t = 1)]
    pub(crate) shards: u32,
    /// Concurrent producers, each with one PutRecords call in flight.
    #[arg(long, default_value_t = 8)]
    pub(crate) concurrency: usize,
    /// Bytes of data per record.
    #[arg(long, default_value_t = 1024)]
    pub(crate) record_size: usize,
    /// Records per PutRecords call (1 to 500).
    #[arg(long, default_value_t = 100)]
    pub(crate) batch_size: usize,
    /// How long to produce.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub(crate) duration: Duration,
    /// Also write the result as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub(crate) json: Option<PathBuf>,
    /// Keep the stream the bench created.
    #[arg(long)]
    pub(crate) keep: bool,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct BenchConsumeArgs {
    #[command(flatten)]
    pub(crate) common: BenchArgs,
    /// Records written before reading (with the produce settings).
    #[arg(long, default_value_t = 100_000)]
    pub(crate) records: u64,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn script_shapes_parse() {
        for line in [
            "streamctl stream create x --shards 4",
            "streamctl stream list",
            "streamctl put x",
            "streamctl get x --from trim-horizon",
            "streamctl get x --from at-timestamp 2026-01-01T00:00:00Z --shard 1 --limit 5",
            "streamctl get x --from at-sequence 123 --limit 5",
            "streamctl tail x",
            "streamctl tail -f x",
            "streamctl --output json cluster status",
            "streamctl node list -o json",
        ] {
            let args = line.split_whitespace();
            if let Err(e) = Cli::try_parse_from(args) {
                panic!("{line}: {e}");
            }
        }
    }

    #[test]
    fn exit_codes_are_in_the_main_help() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("3  not found"), "{help}");
    }
}
