//! The request path's gate in front of Redis ([`RedisGate`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::sync::Mutex as StdMutex;
use std::time::Duration;

use tokio::sync::watch;

use crate::store::schema;
use crate::store::target::{lost_master, Answers, Conn, Target};

/// How long a request may wait for Redis, for a connection or one round trip; past it the
/// answer is `503` with `Retry-After`.
pub const REDIS_WITHIN: Duration = Duration::from_secs(1);

/// After a Redis failure, how long requests are answered `503` at once without trying.
pub const REDIS_BACKOFF: Duration = Duration::from_secs(1);

/// The request path's way to Redis: one shared connection, made in the background (never
/// under a lock requests queue on), and a short memory of failures, so that with Redis down
/// or hung every request fails within [`REDIS_WITHIN`] — at once during [`REDIS_BACKOFF`]
/// after a failure — instead of queueing for a timeout. With Sentinel, a failure that lost
/// the master also drops the connection, so the next attempt asks the sentinels again
/// (`crate::store::target`). Cheap to clone.
#[derive(Clone)]
pub struct RedisGate(Arc<Gate>);

impl std::fmt::Debug for RedisGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisGate")
    }
}

struct Gate {
    target: Option<Target>,
    /// Who bounds each command's answer on the connections made.
    answers: Answers,
    connection: watch::Sender<Option<Conn>>,
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
        self.forget();
    }

    /// With Sentinel, drops the connection: the master may have moved.
    fn forget(&self) {
        if self.target.as_ref().is_some_and(Target::follows_failovers) {
            self.connection.send_replace(None);
        }
    }

    /// Starts one connection attempt unless one is under way.
    fn connect(self: &Arc<Self>) {
        let Some(target) = self.target.clone() else {
            return;
        };
        if self.connecting.swap(true, Ordering::SeqCst) {
            return;
        }
        let gate = Arc::clone(self);
        let answers = self.answers;
        tokio::spawn(async move {
            match target.connect_answering(answers).await {
                Ok(mut conn) => {
                    gate.connection.send_replace(Some(conn.clone()));
                    gate.connecting.store(false, Ordering::SeqCst);
                    // After the requests waiting for the connection have it: a log line
                    // need not delay them.
                    warn_if_evicting(&mut conn).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Redis unreachable");
                    gate.failed();
                    gate.connecting.store(false, Ordering::SeqCst);
                }
            }
        });
    }
}

impl RedisGate {
    /// A gate to `target`; connects on first use (`None`, a malformed URL: never). Each
    /// command on its connection is also bounded by redis-rs (`CONNECT_WITHIN`), for a
    /// holder that uses the connection outside [`RedisGate::op`].
    pub fn new(target: Option<Target>) -> Self {
        Self::answering(target, Answers::Timed)
    }

    /// A gate whose connection is used only through [`RedisGate::op`] and
    /// [`RedisGate::health`] (the request path's): [`REDIS_WITHIN`] bounds every command,
    /// without a second timer of redis-rs's per command ([`Answers::ByHolder`]).
    pub fn for_ops(target: Option<Target>) -> Self {
        Self::answering(target, Answers::ByHolder)
    }

    fn answering(target: Option<Target>, answers: Answers) -> Self {
        Self(Arc::new(Gate {
            target,
            answers,
            connection: watch::channel(None).0,
            connecting: AtomicBool::new(false),
            down_until: StdMutex::new(None),
        }))
    }

    /// A Redis connection (shared, reconnecting), or `None` while Redis is unreachable: at
    /// once after a recent failure, else within [`REDIS_WITHIN`] (concurrent callers wait
    /// for the same connection attempt side by side, not one after the other).
    pub async fn connection(&self) -> Option<Conn> {
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
                } else if lost_master(&e) {
                    self.0.forget();
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

    /// Whether Redis takes writes within [`REDIS_WITHIN`] (for `/readyz`): it answers a
    /// `SET` of [`schema::READY_PROBE_KEY`] (a replica, a full `maxmemory` or a failing RDB
    /// save answer `PING` but refuse writes, and so every create). A Redis Cluster: whether
    /// a node answers `CLUSTER INFO` with `cluster_state:ok` (every slot is served) and
    /// every master answers `PING`. A failure is not remembered for requests, but with
    /// Sentinel one that lost the master drops the connection, so that the next check asks
    /// the sentinels for the master again.
    pub async fn health(&self) -> RedisHealth {
        let probe = async {
            let Some(mut conn) = self.connection().await else {
                return RedisHealth::Down;
            };
            if conn.is_cluster() {
                let info = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async::<String>(&mut conn)
                    .await;
                // Sent to every master by redis-rs: fails when one does not answer.
                let pong = redis::cmd("PING").query_async::<String>(&mut conn).await;
                return match (info, pong) {
                    (Ok(info), Ok(_)) if info.lines().any(|l| l.trim() == "cluster_state:ok") => {
                        RedisHealth::Ok
                    }
                    _ => RedisHealth::Down,
                };
            }
            let written = redis::cmd("SET")
                .arg(schema::READY_PROBE_KEY)
                .arg(1)
                .arg("PX")
                .arg(schema::READY_PROBE_TTL_MS)
                .query_async::<()>(&mut conn)
                .await;
            match written {
                Ok(()) => RedisHealth::Ok,
                Err(e) if is_refusal(&e) => {
                    // `READONLY`, `MASTERDOWN`: with Sentinel, ask for the master again.
                    if lost_master(&e) {
                        self.0.forget();
                    }
                    RedisHealth::RefusesWrites(server_said(&e))
                }
                Err(_) => RedisHealth::Down,
            }
        };
        let health = tokio::time::timeout(REDIS_WITHIN, probe)
            .await
            .unwrap_or(RedisHealth::Down);
        if health == RedisHealth::Down {
            self.0.forget();
        }
        health
    }
}

/// Logs a warning when Redis may evict the host's keys under memory pressure (a
/// `maxmemory-policy` other than `noeviction`): an evicted idempotency claim or
/// exactly-once mark means a call dialled twice or a notification pushed twice. Checked on
/// every new connection (after a Sentinel failover the master is another server); nothing
/// is said of a Redis that refuses `INFO` (an ACL, a managed service).
async fn warn_if_evicting(conn: &mut Conn) {
    let mut command = redis::cmd("INFO");
    command.arg("memory");
    let info = command.query_async::<String>(conn);
    let Ok(Ok(info)) = tokio::time::timeout(REDIS_WITHIN, info).await else {
        return;
    };
    if let Some((policy, maxmemory)) = eviction(&info) {
        tracing::warn!(
            maxmemory_policy = policy,
            maxmemory,
            "Redis evicts keys when full: idempotency claims and exactly-once marks can be \
             lost, and a call dialled or notified twice; set maxmemory-policy noeviction"
        );
    }
}

/// From `INFO memory`'s text: the `maxmemory_policy` and `maxmemory` when the policy evicts
/// keys (every policy but `noeviction`).
fn eviction(info: &str) -> Option<(&str, &str)> {
    let field = |name: &str| {
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    let policy = field("maxmemory_policy")?;
    (policy != "noeviction").then(|| (policy, field("maxmemory").unwrap_or("?")))
}

/// What `/readyz` says of Redis ([`RedisGate::health`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisHealth {
    /// It takes writes.
    Ok,
    /// No answer within [`REDIS_WITHIN`], or no connection.
    Down,
    /// It answers, refusing writes: the server's error (`READONLY …`, `OOM …`, `MISCONF …`).
    RefusesWrites(String),
}

/// A server's error as it sent it (`READONLY You can't write against a read only
/// replica.`), else redis-rs's words for it.
fn server_said(error: &redis::RedisError) -> String {
    match (error.code(), error.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        _ => error.to_string(),
    }
}

/// Whether Redis answered `error` itself (a refusal), not a broken or silent connection.
fn is_refusal(error: &redis::RedisError) -> bool {
    !(error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal())
}

#[cfg(test)]
mod tests {
    use super::eviction;

    #[test]
    fn an_evicting_policy_is_found_in_info_memory() {
        let info = "# Memory\r\nused_memory:1030456\r\nmaxmemory:104857600\r\n\
                    maxmemory_human:100.00M\r\nmaxmemory_policy:allkeys-lru\r\n";
        assert_eq!(eviction(info), Some(("allkeys-lru", "104857600")));
        let safe = "# Memory\r\nmaxmemory:0\r\nmaxmemory_policy:noeviction\r\n";
        assert_eq!(eviction(safe), None);
        // `maxmemory_human` is not `maxmemory`; no policy line: nothing to say.
        assert_eq!(eviction("maxmemory_human:0B\r\n"), None);
        let volatile = "maxmemory_human:1M\r\nmaxmemory_policy:volatile-ttl\r\nmaxmemory:1048576";
        assert_eq!(eviction(volatile), Some(("volatile-ttl", "1048576")));
    }
}
