//! `streamctl node list|drain|remove`.
//!
//! The server has one call for taking a node out, DrainNode: replicas and leaderships move away,
//! then the node leaves the member list. `drain` starts it (and by default waits until the node
//! holds nothing); `remove` always waits until the node is gone.

use std::time::Duration;

use serde::Serialize;
use streamd_client::ErrorCode;

use super::Ctx;
use super::cluster::{nodes_table, status};
use crate::cli::NodeCmd;
use crate::error::CtlError;
use crate::progress::{Poll, wait};

pub(crate) async fn run(ctx: &Ctx, cmd: NodeCmd) -> Result<(), CtlError> {
    match cmd {
        NodeCmd::List => {
            let view = status(ctx).await?;
            ctx.out.emit(&view, |v| nodes_table(&v.nodes))
        }
        NodeCmd::Drain { id, wait } => {
            drain(ctx, id, !wait.no_wait, false, wait.wait_timeout).await
        }
        NodeCmd::Remove { id, wait_timeout } => drain(ctx, id, true, true, wait_timeout).await,
    }
}

#[derive(Debug, Serialize)]
struct DrainView {
    node: u64,
    /// `draining`, `drained` (holds no replicas) or `removed` (no longer a member).
    state: &'static str,
}

async fn drain(
    ctx: &Ctx,
    id: u64,
    wait_for_it: bool,
    until_gone: bool,
    timeout: Duration,
) -> Result<(), CtlError> {
    let before = status(ctx).await?;
    let Some(node) = before.nodes.iter().find(|n| n.id == id) else {
        return Err(CtlError::NodeNotFound { node: id });
    };
    // `remove` after `drain --no-wait` only waits: the drain is already under way.
    if !node.draining {
        ctx.client
            .drain_node(id)
            .await
            .map_err(|e| match e.code() {
                ErrorCode::ResourceNotFound => CtlError::NodeNotFound { node: id },
                _ => CtlError::from_client(e),
            })?;
    }
    let state = if !wait_for_it {
        "draining"
    } else {
        let what = if until_gone {
            format!("node {id} to leave the cluster")
        } else {
            format!("node {id} to hand over its replicas")
        };
        wait(&what, "streamctl cluster status", timeout, || async {
            let view = status(ctx).await?;
            Ok(match view.nodes.iter().find(|n| n.id == id) {
                None => Poll::Done("removed"),
                Some(n) if !until_gone && n.groups == 0 => Poll::Done("drained"),
                Some(n) => Poll::Pending(format!(
                    "{} groups, {} leaderships left",
                    n.groups, n.leaders
                )),
            })
        })
        .await?
    };
    let view = DrainView { node: id, state };
    ctx.out.emit(&view, |v| match v.state {
        "removed" => format!(
            "node {} drained and removed from the cluster; stop its process",
            v.node
        ),
        "drained" => format!(
            "node {} holds no replicas; it leaves the cluster next",
            v.node
        ),
        _ => format!(
            "node {} is draining; follow it with `streamctl cluster status`",
            v.node
        ),
    })
}
