//! What every request handler shares.

use std::sync::Arc;
use std::time::Duration;

use click2dial_core::template::Template;
use click2dial_core::{DialPolicy, Validators};
use redis::aio::ConnectionManager;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex as StdMutex;
use tokio::sync::{watch, Semaphore};

use crate::auth::Keys;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::pbx::Pbx;
use crate::ratelimit::RateLimits;

/// Shared application state; cheap to clone (one reference count: axum clones the state
/// for every request, several times).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] shares.
pub struct Shared {
    /// The effective configuration.
    pub config: Arc<Config>,
    /// The field validators (loaded once).
    pub validators: Arc<Validators>,
    /// The AMI client.
    pub pbx: Pbx,
    /// The notification pusher.
    pub notifier: Notifier,
    /// The API keys.
    pub keys: Arc<Keys>,
    /// Their rate limiters.
    pub rate_limits: Arc<RateLimits>,
    /// The metrics.
    pub metrics: Metrics,
    /// One permit per call in flight (`limits.max_calls_in_flight`).
    pub call_slots: Arc<Semaphore>,
    /// `…/click2dial/recordings/{recording_ref}`, leaked once at start-up so rendered
    /// values can borrow it.
    pub recording_url: Template<'static>,
    /// Call records shared with the other hosts.
    pub call_store: Option<crate::call_store::CallStore>,
    /// Lists leaked once at start-up for [`DialPolicy`], which borrows.
    policy_lists: (&'static [&'static str], &'static [&'static str]),
    redis: Arc<RedisGate>,
}

/// How long a request may wait for Redis, for a connection or one round trip; past it the
/// answer is `503` with `Retry-After`.
pub const REDIS_WITHIN: Duration = Duration::from_secs(1);

/// After a Redis failure, how long requests are answered `503` at once without trying.
pub const REDIS_BACKOFF: Duration = Duration::from_secs(1);

/// The request path's way to Redis: one shared connection, made in the background (never
/// under a lock requests queue on), and a short memory of failures, so that with Redis down
/// or hung every request fails within [`REDIS_WITHIN`] — at once during [`REDIS_BACKOFF`]
/// after a failure — instead of queueing for a timeout.
struct RedisGate {
    client: Option<redis::Client>,
    connection: watch::Sender<Option<ConnectionManager>>,
    connecting: AtomicBool,
    down_until: StdMutex<Option<tokio::time::Instant>>,
}

impl RedisGate {
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
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(2)))
                .set_response_timeout(Some(Duration::from_secs(2)))
                .set_number_of_retries(1);
            match ConnectionManager::new_with_config(client, config).await {
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

impl AppState {
    /// Builds the state; starts nothing.
    pub fn new(
        config: Config,
        validators: Validators,
        pbx: Pbx,
        notifier: Notifier,
        metrics: Metrics,
        call_store: Option<crate::call_store::CallStore>,
    ) -> Result<Self, String> {
        let leak_list = |list: &[String]| -> &'static [&'static str] {
            let items: Vec<&'static str> = list
                .iter()
                .map(|s| &*Box::leak(s.clone().into_boxed_str()))
                .collect();
            Box::leak(items.into_boxed_slice())
        };
        let policy_lists = (
            leak_list(&config.policy.allowed_country_codes),
            leak_list(&config.policy.denied_prefixes),
        );
        let url: &'static str = Box::leak(config.recording_url_template().into_boxed_str());
        let recording_url = Template::new(url).map_err(|e| e.to_string())?;
        let redis = Arc::new(RedisGate {
            client: redis::Client::open(config.redis.url.as_str()).ok(),
            connection: watch::channel(None).0,
            connecting: AtomicBool::new(false),
            down_until: StdMutex::new(None),
        });
        let keys = Arc::new(Keys::new(&config.auth.keys));
        let rate_limits = Arc::new(RateLimits::new(&config.auth.keys, &config.limits));
        let call_slots = Arc::new(Semaphore::new(config.limits.max_calls_in_flight));
        Ok(Self(Arc::new(Shared {
            keys,
            rate_limits,
            metrics,
            call_slots,
            config: Arc::new(config),
            validators: Arc::new(validators),
            pbx,
            notifier,
            recording_url,
            call_store,
            policy_lists,
            redis,
        })))
    }
}

impl Shared {
    /// Calls originated and not yet finished.
    pub fn calls_in_flight(&self) -> usize {
        self.config
            .limits
            .max_calls_in_flight
            .saturating_sub(self.call_slots.available_permits())
    }

    /// Waits until no call is in flight or `timeout` passes; returns whether none is.
    pub async fn wait_calls_done(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.calls_in_flight() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.calls_in_flight() == 0
    }

    /// The dialling policy from the configuration.
    pub fn policy(&self) -> DialPolicy<'static> {
        DialPolicy {
            allowed_country_codes: self.policy_lists.0,
            refuse_premium_rate: self.config.policy.refuse_premium_rate,
            denied_prefixes: self.policy_lists.1,
        }
    }

    /// A Redis connection (shared, reconnecting), or `None` while Redis is unreachable: at
    /// once after a recent failure, else within [`REDIS_WITHIN`] (concurrent callers wait
    /// for the same connection attempt side by side, not one after the other).
    pub async fn redis(&self) -> Option<ConnectionManager> {
        if self.redis.is_down() {
            return None;
        }
        if let Some(conn) = self.redis.connection.borrow().clone() {
            return Some(conn);
        }
        self.redis.connect();
        let mut rx = self.redis.connection.subscribe();
        let wait = async move { rx.wait_for(|c| c.is_some()).await.ok()?.clone() };
        tokio::time::timeout(REDIS_WITHIN, wait)
            .await
            .ok()
            .flatten()
    }

    /// One Redis round trip within [`REDIS_WITHIN`]; a timeout or an error is remembered
    /// (requests fail at once for [`REDIS_BACKOFF`]) and returned as `None`.
    pub async fn redis_op<T>(
        &self,
        op: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Option<T> {
        match tokio::time::timeout(REDIS_WITHIN, op).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "Redis failed");
                if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() {
                    self.redis.failed();
                }
                None
            }
            Err(_) => {
                tracing::warn!("Redis did not answer in time");
                self.redis.failed();
                None
            }
        }
    }
}
