//! The HTTP/1.1 accept loop: hyper with a header read timeout (which `axum::serve` does not
//! set), a small read buffer, a cap on open connections in all and per peer address, and
//! graceful shutdown that stops accepting, lets requests in flight finish and closes idle
//! keep-alive connections.
//!
//! The caps are counted here, at `accept`, because nothing in tower or hyper-util limits
//! connections (tower's concurrency limits count requests, and a half-open connection has
//! not made one yet). A connection over either cap is closed at once, before a byte is
//! read: it costs a file descriptor for the moment of the `accept` and nothing else.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Connection settings.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Longest time to receive a request's head.
    pub header_timeout: Duration,
    /// How long requests in flight may take to finish once shutdown starts.
    pub shutdown_grace: Duration,
    /// Connections open at once, all peers together.
    pub max_connections: usize,
    /// Connections open at once from one peer address.
    pub max_connections_per_peer: usize,
}

/// Most header lines hyper parses; past it hyper answers a bare `431`. The application
/// refuses more than [`crate::http::head::MAX_HEADER_LINES`] with the JSON body, so only a flood past
/// this hard cap gets hyper's answer.
const HARD_MAX_HEADERS: usize = 2 * crate::http::head::MAX_HEADER_LINES;

/// Largest read buffer of a connection, hence the largest request head hyper reads (a bare
/// `431` beyond it; the application refuses heads over [`crate::http::head::MAX_HEAD_BYTES`] with the
/// JSON body); hyper's default is about 400 KiB per connection.
pub const MAX_BUF_SIZE: usize = 2 * crate::http::head::MAX_HEAD_BYTES;

/// Open connections per peer address; a held slot is given back when its connection ends.
#[derive(Clone, Default)]
struct PerPeer(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One peer's connection slot.
struct PeerSlot {
    peers: PerPeer,
    ip: IpAddr,
}

impl PerPeer {
    fn take(&self, ip: IpAddr, max: usize) -> Option<PeerSlot> {
        let mut map = self.0.lock().ok()?;
        let open = map.entry(ip).or_insert(0);
        if *open >= max {
            return None;
        }
        *open += 1;
        Some(PeerSlot {
            peers: self.clone(),
            ip,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        if let Ok(mut map) = self.peers.0.lock() {
            if let Some(open) = map.get_mut(&self.ip) {
                *open -= 1;
                if *open == 0 {
                    map.remove(&self.ip);
                }
            }
        }
    }
}

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
        .max_buf_size(MAX_BUF_SIZE)
        .max_headers(HARD_MAX_HEADERS);
    let open = Arc::new(Semaphore::new(settings.max_connections));
    let peers = PerPeer::default();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = open.clone().try_acquire_owned() else {
                    tracing::debug!(%peer, "connection refused: http.max_connections open");
                    continue;
                };
                let Some(slot) = peers.take(peer.ip().to_canonical(), settings.max_connections_per_peer) else {
                    tracing::debug!(%peer, "connection refused: http.max_connections_per_peer open");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let service = TowerToHyperService::new(app.clone());
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                let watched = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(e) = watched.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    drop((permit, slot));
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
