//! The listener. axum's server speaks HTTP/1.1 and, through hyper-util's protocol detection,
//! cleartext HTTP/2 with prior knowledge on the same port.

use std::future::Future;

use tokio::net::TcpListener;

use crate::router::KinesisApi;

pub async fn serve(
    listener: TcpListener,
    api: KinesisApi,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new()
        .fallback(crate::router::handle)
        .with_state(api);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
