//! The HTTP/1.1 accept loop: hyper with a header read timeout (which `axum::serve` does not
//! set), and graceful shutdown that stops accepting, lets requests in flight finish and
//! closes idle keep-alive connections.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// Connection settings.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Longest time to receive a request's head.
    pub header_timeout: Duration,
    /// How long requests in flight may take to finish once shutdown starts.
    pub shutdown_grace: Duration,
}

/// Most header lines a request may have.
const MAX_HEADERS: usize = 64;

/// Serves `app` on `listener` until `shutdown` completes, then drains. Returns whether every
/// connection finished within the grace period.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> bool {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout)
        .max_headers(MAX_HEADERS);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let service = TowerToHyperService::new(app.clone());
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                let watched = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(e) = watched.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let open = graceful.count();
    if tokio::time::timeout(settings.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = open,
            "requests still in flight after the grace period; closing them"
        );
        return false;
    }
    true
}
