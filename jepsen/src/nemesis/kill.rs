//! `kill`: SIGKILL one node (no chance to flush or say goodbye), then start it again on its own
//! data directory when the fault ends. It rejoins from whatever it had made durable.

use super::Target;

pub(crate) fn start(target: &Target, node: u64) -> Result<(), String> {
    target
        .with_cluster(|c| c.kill(node))
        .map_err(|e| format!("kill -9 node {node}: {e}"))
}

pub(crate) fn heal(target: &Target, node: u64) -> Result<(), String> {
    target
        .with_cluster(|c| c.spawn(node))
        .map_err(|e| format!("restart node {node}: {e}"))
}
