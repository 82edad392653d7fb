//! The one way the host connects to Redis ([`connect`]), and the request path's gate in
//! front of it ([`RedisGate`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::sync::Mutex as StdMutex;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::watch;

/// How long a connection attempt, and then each command, may take on a connection made by
/// [`connect`].
pub const CONNECT_WITHIN: Duration = Duration::from_secs(2);

/// A reconnecting connection to `client`'s server: [`CONNECT_WITHIN`] to connect and per
/// command, one retry. The notifier, the call store and the request path each hold one.
pub async fn connect(client: redis::Client) -> redis::RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_WITHIN))
        .set_response_timeout(Some(CONNECT_WITHIN))
        .set_number_of_retries(1);
    ConnectionManager::new_with_config(client, config).await
}

/// How long a request may wait for Redis, for a connection or one round trip; past it the
/// answer is `503` with `Retry-After`.
pub const REDIS_WITHIN: Duration = Duration::from_secs(1);

/// After a Redis failure, how long requests are answered `503` at once without trying.
pub const REDIS_BACKOFF: Duration = Duration::from_secs(1);

/// The request path's way to Redis: one shared connection, made in the background (never
/// under a lock requests queue on), and a short memory of failures, so that with Redis down
/// or hung every request fails within [`REDIS_WITHIN`] — at once during [`REDIS_BACKOFF`]
/// after a failure — instead of queueing for a timeout. Cheap to clone.
#[derive(Clone)]
pub struct RedisGate(Arc<Gate>);

impl std::fmt::Debug for RedisGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisGate")
    }
}

struct Gate {
    client: Option<redis::Client>,
    connection: watch::Sender<Option<ConnectionManager>>,
    connecting: AtomicBool,
    down_until: StdMutex<Option<tokio::time::Instant>>,
}

impl Gate {
    fn is_down(&self) -> bool {
        self.down_until
            .lock()
            .ok()
            .and_then(|until| *until)
            .is_some_and(|until| tokio::time::Instant::now() < until)
    }

    fn failed(&self) {
        if let Ok(mut until) = self.down_until.lock() {
            *until = Some(tokio::time::Instant::now() + REDIS_BACKOFF);
        }
    }

    /// Starts one connection attempt unless one is under way.
    fn connect(self: &Arc<Self>) {
        let Some(client) = self.client.clone() else {
            return;
        };
        if self.connecting.swap(true, Ordering::SeqCst) {
            return;
        }
        let gate = Arc::clone(self);
        tokio::spawn(async move {
            match connect(client).await {
                Ok(conn) => {
                    gate.connection.send_replace(Some(conn));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Redis unreachable");
                    gate.failed();
                }
            }
            gate.connecting.store(false, Ordering::SeqCst);
        });
    }
}

impl RedisGate {
    /// A gate to `url`; connects on first use (a malformed URL never connects).
    pub fn new(url: &str) -> Self {
        Self(Arc::new(Gate {
            client: redis::Client::open(url).ok(),
            connection: watch::channel(None).0,
            connecting: AtomicBool::new(false),
            down_until: StdMutex::new(None),
        }))
    }

    /// A Redis connection (shared, reconnecting), or `None` while Redis is unreachable: at
    /// once after a recent failure, else within [`REDIS_WITHIN`] (concurrent callers wait
    /// for the same connection attempt side by side, not one after the other).
    pub async fn connection(&self) -> Option<ConnectionManager> {
        if self.0.is_down() {
            return None;
        }
        if let Some(conn) = self.0.connection.borrow().clone() {
            return Some(conn);
        }
        self.0.connect();
        let mut rx = self.0.connection.subscribe();
        let wait = async move { rx.wait_for(|c| c.is_some()).await.ok()?.clone() };
        tokio::time::timeout(REDIS_WITHIN, wait)
            .await
            .ok()
            .flatten()
    }

    /// One Redis round trip within [`REDIS_WITHIN`]; a timeout or an error is remembered
    /// (requests fail at once for [`REDIS_BACKOFF`]) and returned as `None`.
    pub async fn op<T>(
        &self,
        op: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Option<T> {
        match tokio::time::timeout(REDIS_WITHIN, op).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "Redis failed");
                if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() {
                    self.0.failed();
                }
                None
            }
            Err(_) => {
                tracing::warn!("Redis did not answer in time");
                self.0.failed();
                None
            }
        }
    }
}
