//! `pause`: SIGSTOP one node, SIGCONT it when the fault ends. The node keeps its sockets open but
//! answers nothing, which looks like a very slow node rather than a dead one: peers and clients
//! see timeouts, not refused connections.

use super::Target;

pub(crate) fn start(target: &Target, node: u64) -> Result<(), String> {
    target
        .with_cluster(|c| c.pause(node))
        .map_err(|e| format!("pause node {node}: {e}"))
}

pub(crate) fn heal(target: &Target, node: u64) -> Result<(), String> {
    target
        .with_cluster(|c| c.resume(node))
        .map_err(|e| format!("resume node {node}: {e}"))
}
