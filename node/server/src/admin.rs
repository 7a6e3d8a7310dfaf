//! The HTTP admin endpoint: `/healthz` (the process is alive), `/readyz` (joined the cluster,
//! not stopping, and every local replica, metadata and shards, has heard from its leader and
//! applied what that leader had committed then) and `/metrics` (Prometheus text).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use streamd_raft::META_GROUP;

use crate::node::{Node, NodeError};

pub(crate) async fn serve(
    node: Node,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    let addr = node.config.admin_addr;
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(node);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Listen { addr, source })?;
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| NodeError::Listen { addr, source })
}

/// Why the node is not ready yet, if it is not.
pub(crate) fn not_ready_reason(node: &Node) -> Option<String> {
    if node.host.is_stopping() {
        return Some("shutting down".into());
    }
    if node.meta.read().cluster_secret.is_empty() {
        return Some("the cluster has not formed yet".into());
    }
    if let Err(e) = node.host.caught_up(META_GROUP) {
        return Some(format!("the metadata group is not caught up: {e}"));
    }
    let mut groups: Vec<u64> = node.shards.read().keys().copied().collect();
    groups.sort_unstable();
    for g in groups {
        // A replica that is behind would serve reads of records it has not applied yet as
        // missing; a load balancer should send readers elsewhere until it has caught up.
        if let Err(e) = node.host.caught_up(g) {
            return Some(format!("shard group {g} is not caught up: {e}"));
        }
    }
    None
}

async fn readyz(State(node): State<Node>) -> (StatusCode, String) {
    match not_ready_reason(&node) {
        None => (StatusCode::OK, "ready\n".into()),
        Some(r) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {r}\n")),
    }
}

async fn metrics(State(node): State<Node>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::telemetry::render(&node),
    )
}
