//! What every request handler shares.

use std::sync::Arc;
use std::time::Duration;

use click2dial_core::template::Template;
use click2dial_core::{DialPolicy, Validators};
use redis::aio::ConnectionManager;
use tokio::sync::{Mutex, Semaphore};

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
    redis: Mutex<Option<ConnectionManager>>,
    redis_client: Option<redis::Client>,
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
        let redis_client = redis::Client::open(config.redis.url.as_str()).ok();
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
            redis: Mutex::new(None),
            redis_client,
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

    /// A Redis connection (shared, reconnecting), or `None` while Redis is unreachable.
    pub async fn redis(&self) -> Option<ConnectionManager> {
        let mut slot = self.redis.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Some(conn.clone());
        }
        let client = self.redis_client.clone()?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1);
        match ConnectionManager::new_with_config(client, config).await {
            Ok(conn) => {
                *slot = Some(conn.clone());
                Some(conn)
            }
            Err(e) => {
                tracing::warn!(error = %e, "Redis unreachable");
                None
            }
        }
    }
}
