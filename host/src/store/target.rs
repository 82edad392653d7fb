//! Where Redis is ([`Target`]): one server (`[redis] url`), the master that Redis
//! Sentinel names (`[redis] sentinels`, `master_name`), or a Redis Cluster (`[redis]
//! cluster`, its seed nodes); and the one way to connect to it ([`connect`],
//! [`Target::connect`], [`Link`]), a [`Conn`] either way.
//!
//! With Cluster, redis-rs's cluster connection learns the slots from the seeds, routes each
//! command by its first key's slot, follows `MOVED` (and refreshes the slots) and `ASK`,
//! retries `TRYAGAIN` and `CLUSTERDOWN` after a short wait ([`CLUSTER_RETRIES`]), and
//! reconnects to nodes itself; a pipeline must stay in one slot. Every key a multi-key
//! command or script names shares one slot (`crate::store::schema`, "Cluster").
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

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{Cmd, Pipeline, RedisConnectionInfo, RedisError, RedisFuture, RedisResult, Value};
use tokio::sync::Mutex;

use crate::config;

/// How long a connection attempt (with Sentinel: the master's lookup, then the connection),
/// and then each command, may take on a connection made by [`connect`].
pub const CONNECT_WITHIN: Duration = Duration::from_secs(2);

/// A reconnecting connection to `client`'s server: [`CONNECT_WITHIN`] to connect and per
/// command, one retry.
pub async fn connect(client: redis::Client) -> RedisResult<ConnectionManager> {
    connect_answering(client, Answers::Timed).await
}

/// Who bounds the wait for each command's answer on a connection to one server or to the
/// Sentinel master (a Redis Cluster connection is always [`Answers::Timed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answers {
    /// redis-rs: each command within [`CONNECT_WITHIN`].
    Timed,
    /// The holder: it puts every command under a shorter deadline of its own (the request
    /// path's gate, [`crate::store::gate::REDIS_WITHIN`]), which drops the command before
    /// redis-rs's [`CONNECT_WITHIN`] could ever end it. redis-rs's deadline would only add
    /// a timer per command, and each timer set while tokio's driver sleeps longer than it
    /// wakes the driver with a system call.
    ByHolder,
}

/// [`connect`], with the commands' answers bounded by `answers`.
async fn connect_answering(
    client: redis::Client,
    answers: Answers,
) -> RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_WITHIN))
        .set_response_timeout(match answers {
            Answers::Timed => Some(CONNECT_WITHIN),
            Answers::ByHolder => None,
        })
        .set_number_of_retries(1);
    ConnectionManager::new_with_config(client, config).await
}

/// With Cluster, how often a command that met `TRYAGAIN`, `CLUSTERDOWN` or a broken node
/// is tried again (waits of 20 ms growing to 250 ms; `MOVED` and `ASK` are followed at
/// once): about 1 s in all, the request path's deadline.
pub const CLUSTER_RETRIES: u32 = 8;

/// A connection to the host's Redis: one server's or the Sentinel master's reconnecting
/// connection, or a Redis Cluster connection (routed by slot). Cheap to clone (clones share
/// the connection); the rest of the host uses it through [`ConnectionLike`].
#[derive(Clone)]
pub enum Conn {
    /// `[redis] url` or `sentinels`.
    Server(ConnectionManager),
    /// `[redis] cluster`.
    Cluster(ClusterConnection),
}

impl Conn {
    /// Whether this is a Redis Cluster connection: keys of one command or script must
    /// share a slot, and a pipeline must stay in one.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Server(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Server(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Server(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// Where the host's Redis is; cheap to clone (clones share the sentinels' connections).
#[derive(Clone)]
pub enum Target {
    /// One server, `[redis] url`.
    Server(redis::Client),
    /// A Redis Cluster, `[redis] cluster` (its seed nodes).
    Cluster(Box<ClusterClient>),
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
            Self::Cluster(_) => "Target::Cluster",
        })
    }
}

impl Target {
    /// The target `[redis]` describes; `None` when a URL does not parse (the configuration
    /// check refuses bad sentinel URLs first).
    pub fn new(redis: &config::Redis) -> Option<Self> {
        if !redis.cluster.is_empty() {
            let client = ClusterClient::builder(redis.cluster.iter().map(String::as_str))
                .connection_timeout(CONNECT_WITHIN)
                .response_timeout(CONNECT_WITHIN)
                .retries(CLUSTER_RETRIES)
                .min_retry_wait(20)
                .max_retry_wait(250)
                .retry_wait_formula(10, 2)
                .build();
            return match client {
                Ok(client) => Some(Self::Cluster(Box::new(client))),
                Err(e) => {
                    tracing::error!(error = %e, "redis.cluster: cannot use it");
                    None
                }
            };
        }
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

    /// Whether this is a Redis Cluster (`crate::store::schema`'s cluster key names).
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// A reconnecting connection ([`connect`]) to the server, or to the master the sentinels
    /// name now (checked with `ROLE`), within [`CONNECT_WITHIN`] for the lookup; or a
    /// cluster connection (the slots asked of the seeds).
    pub async fn connect(&self) -> RedisResult<Conn> {
        self.connect_answering(Answers::Timed).await
    }

    /// [`Target::connect`], with the commands' answers bounded by `answers`.
    pub async fn connect_answering(&self, answers: Answers) -> RedisResult<Conn> {
        Ok(self.connect_to_master_answering(answers).await?.0)
    }

    /// [`Target::connect`], and the address (`host:port`) connected to (with Cluster:
    /// `cluster`).
    pub async fn connect_to_master(&self) -> RedisResult<(Conn, String)> {
        self.connect_to_master_answering(Answers::Timed).await
    }

    /// [`Target::connect_to_master`], with the commands' answers bounded by `answers`.
    async fn connect_to_master_answering(&self, answers: Answers) -> RedisResult<(Conn, String)> {
        let client = match self {
            Self::Cluster(client) => {
                let conn = tokio::time::timeout(CONNECT_WITHIN, client.get_async_connection())
                    .await
                    .map_err(|_| {
                        RedisError::from((
                            redis::ErrorKind::Io,
                            "the cluster's seed nodes did not answer in time",
                        ))
                    })??;
                return Ok((Conn::Cluster(conn), "cluster".into()));
            }
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
        Ok((
            Conn::Server(connect_answering(client, answers).await?),
            address,
        ))
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
    connection: Arc<Mutex<Option<Conn>>>,
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
    pub async fn get(&self) -> Option<Conn> {
        let target = self.target.as_ref()?;
        let mut connection = self.connection.lock().await;
        if connection.is_none() {
            *connection = target.connect().await.ok();
        }
        connection.clone()
    }

    /// Whether the target is a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.target.as_ref().is_some_and(Target::is_cluster)
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
