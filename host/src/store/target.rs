//! Where Redis is ([`Target`]): one server (`[redis] url`), or the master that Redis
//! Sentinel names (`[redis] sentinels`, `master_name`); and the one way to connect to it
//! ([`connect`], [`Target::connect`], [`Link`]).
//!
//! redis-rs gives the pieces: [`SentinelClient`] asks the sentinels for the master and checks
//! with `ROLE` that it is one, and [`ConnectionManager`] reconnects. What it does not give is
//! the two together: a `ConnectionManager` is bound to the one address its `Client` was
//! made with, so after a failover it would keep reconnecting to the old master (dead, or
//! back as a read-only replica). So, by hand and only for Sentinel: an error that says the
//! connection no longer reaches a writable master ([`lost_master`]) makes its holder drop
//! it, and the next use asks the sentinels again ([`Target::connect`]). With `url` nothing
//! changes: the `ConnectionManager` reconnects to the one server.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{RedisConnectionInfo, RedisError, RedisResult};
use tokio::sync::Mutex;

use crate::config;

/// How long a connection attempt (with Sentinel: the master's lookup, then the connection),
/// and then each command, may take on a connection made by [`connect`].
pub const CONNECT_WITHIN: Duration = Duration::from_secs(2);

/// A reconnecting connection to `client`'s server: [`CONNECT_WITHIN`] to connect and per
/// command, one retry.
pub async fn connect(client: redis::Client) -> RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_WITHIN))
        .set_response_timeout(Some(CONNECT_WITHIN))
        .set_number_of_retries(1);
    ConnectionManager::new_with_config(client, config).await
}

/// Where the host's Redis is; cheap to clone (clones share the sentinels' connections).
#[derive(Clone)]
pub enum Target {
    /// One server, `[redis] url`.
    Server(redis::Client),
    /// The master the sentinels name, looked up at every (re)connection.
    Sentinel {
        /// Asks the sentinels.
        sentinels: Arc<Mutex<SentinelClient>>,
        /// `[redis] master_name`.
        master_name: String,
    },
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Server(_) => "Target::Server",
            Self::Sentinel { .. } => "Target::Sentinel",
        })
    }
}

impl Target {
    /// The target `[redis]` describes; `None` when a URL does not parse (the configuration
    /// check refuses bad sentinel URLs first).
    pub fn new(redis: &config::Redis) -> Option<Self> {
        if redis.sentinels.is_empty() {
            return redis::Client::open(redis.url.as_str())
                .ok()
                .map(Self::Server);
        }
        let mut master = RedisConnectionInfo::default().set_db(redis.master_db);
        if !redis.master_username.is_empty() {
            master = master.set_username(&redis.master_username);
        }
        if !redis.master_password.is_empty() {
            master = master.set_password(&redis.master_password);
        }
        let client = SentinelClient::build(
            redis.sentinels.clone(),
            redis.master_name.clone(),
            Some(SentinelNodeConnectionInfo::default().set_redis_connection_info(master)),
            SentinelServerType::Master,
        );
        match client {
            Ok(client) => Some(Self::Sentinel {
                sentinels: Arc::new(Mutex::new(client)),
                master_name: redis.master_name.clone(),
            }),
            Err(e) => {
                tracing::error!(error = %e, "redis.sentinels: cannot use them");
                None
            }
        }
    }

    /// Whether the master can move, so a connection that lost it must be made again
    /// ([`lost_master`]).
    pub fn follows_failovers(&self) -> bool {
        matches!(self, Self::Sentinel { .. })
    }

    /// A reconnecting connection ([`connect`]) to the server, or to the master the sentinels
    /// name now (checked with `ROLE`), within [`CONNECT_WITHIN`] for the lookup.
    pub async fn connect(&self) -> RedisResult<ConnectionManager> {
        Ok(self.connect_to_master().await?.0)
    }

    /// [`Target::connect`], and the address (`host:port`) connected to.
    pub async fn connect_to_master(&self) -> RedisResult<(ConnectionManager, String)> {
        let client = match self {
            Self::Server(client) => client.clone(),
            Self::Sentinel { sentinels, .. } => {
                let lookup = async { sentinels.lock().await.async_get_client().await };
                tokio::time::timeout(CONNECT_WITHIN, lookup)
                    .await
                    .map_err(|_| {
                        RedisError::from((
                            redis::ErrorKind::Io,
                            "the sentinels did not name a master in time",
                        ))
                    })??
            }
        };
        let address = client.get_connection_info().addr().to_string();
        Ok((connect(client).await?, address))
    }

    /// Whether a write to `address` that no replica acknowledged (`WAIT` answered 0) stands:
    /// always with one server; with Sentinel, when the sentinels (the first that answers)
    /// still name `address` as the master and know no replica of it that is up, so none can
    /// take over without the write. Not so during a switch: the old master, still up and
    /// writable, takes writes its promoted replica will never have, until the sentinels make
    /// it a replica and it drops them. Written by hand: redis-rs's replica lookup checks
    /// `ROLE`, which a replica being promoted no longer answers as one.
    pub async fn unreplicated_write_stands(&self, address: &str) -> bool {
        let Self::Sentinel {
            sentinels,
            master_name,
        } = self
        else {
            return true;
        };
        let ask = async {
            let client = sentinels.lock().await.async_get_sentinel_client().await?;
            let mut conn = client.get_multiplexed_async_connection().await?;
            let (ip, port): (String, u16) = redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(master_name)
                .query_async(&mut conn)
                .await?;
            let replicas: Vec<std::collections::HashMap<String, String>> = redis::cmd("SENTINEL")
                .arg("REPLICAS")
                .arg(master_name)
                .query_async(&mut conn)
                .await?;
            let up = replicas.iter().any(|r| {
                r.get("flags").is_some_and(|f| {
                    !f.contains("s_down") && !f.contains("o_down") && !f.contains("disconnected")
                })
            });
            Ok::<_, RedisError>(format!("{ip}:{port}") == address && !up)
        };
        matches!(
            tokio::time::timeout(CONNECT_WITHIN, ask).await,
            Ok(Ok(true))
        )
    }
}

/// Whether `error` says the connection may no longer reach a writable master: it broke or
/// timed out, or the server answered that it is a replica (`READONLY`) or lost its master
/// (`MASTERDOWN`).
pub fn lost_master(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || matches!(
            error.kind(),
            redis::ErrorKind::Server(
                redis::ServerErrorKind::ReadOnly | redis::ServerErrorKind::MasterDown
            )
        )
}

/// One connection to a [`Target`], made on first use and shared by clones; with Sentinel,
/// dropped after an error that lost the master ([`Link::check`]) and made again, the
/// master looked up again, on the next use.
#[derive(Clone)]
pub struct Link {
    target: Option<Target>,
    connection: Arc<Mutex<Option<ConnectionManager>>>,
}

impl Link {
    /// A link to `target` (`None`: never connects).
    pub fn new(target: Option<Target>) -> Self {
        Self {
            target,
            connection: Arc::new(Mutex::new(None)),
        }
    }

    /// The connection, made now if there is none; `None` when that fails.
    pub async fn get(&self) -> Option<ConnectionManager> {
        let target = self.target.as_ref()?;
        let mut connection = self.connection.lock().await;
        if connection.is_none() {
            *connection = target.connect().await.ok();
        }
        connection.clone()
    }

    /// Passes `result` through; an error that lost a Sentinel master drops the connection.
    pub async fn check<T>(&self, result: RedisResult<T>) -> RedisResult<T> {
        if let (Err(e), Some(target)) = (&result, &self.target) {
            if target.follows_failovers() && lost_master(e) {
                tracing::warn!(error = %e, "Redis master lost; asking the sentinels again");
                *self.connection.lock().await = None;
            }
        }
        result
    }
}
