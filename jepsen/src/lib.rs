//! streamd's fault-injection harness, in the spirit of Jepsen: real `streamd` processes, real
//! faults (SIGKILL, SIGSTOP, iptables partitions between network namespaces), a recorded
//! history, and a checker that judges the history alone.
//!
//! Map of the crate:
//! - [`cli`]: the command line (`test`, `check`).
//! - [`run`]: one campaign from topology to verdict; tears everything down on every path.
//! - [`net`]: network namespaces, veths and the bridge; partitions as iptables rules.
//! - [`cluster`]: the node processes (spawn, kill, pause, readiness).
//! - [`nemesis`]: the seeded fault schedule and its driver, one file per fault kind.
//! - [`lazyfs`]: the FUSE layer under each node's data that forgets unsynced writes on a power
//!   cut.
//! - [`workload`]: writers, tailing readers, the final drain.
//! - [`history`]: the JSON-lines history, written while running and read back to check.
//! - [`checkers`]: one file per property; pure functions of the history.
//! - [`report`], [`plot`]: results.json, the console summary, the PNG.
//! - [`plant`]: bugs planted in a history to show the checker catches them.
//!
//! Placement rule: nothing under `checkers/` may use the client, the server's crates or anything
//! but the history; anything that talks to a node lives in `workload/`, `cluster.rs` or
//! `nemesis/`. SEMANTICS.md defines ok / fail / info and harness failures.

pub mod checkers;
pub mod cli;
pub mod cluster;
pub mod history;
pub mod lazyfs;
pub mod nemesis;
pub mod net;
pub mod plant;
pub mod plot;
pub mod proxy;
pub mod report;
pub mod run;
pub mod workload;
