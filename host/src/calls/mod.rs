//! Calls: the service the create-call route and the FastAGI service share — the rules a
//! call is checked against, the PBXes it is dialled on, the cap on calls in flight, and the
//! Redis state that makes a create idempotent ([`admission`]).

pub mod admission;

use std::sync::Arc;
use std::time::Duration;

use click2dial_core::template::Template;
use click2dial_core::{DialPolicy, Validators};
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::notify::Notifier;
use crate::pbxes::Pbxes;
use crate::store::call_store::CallStore;
use crate::store::gate::{RedisGate, RedisHealth};
use crate::store::target::Conn;

/// The calls service; cheap to clone (one reference count: axum clones a route's state for
/// every request).
#[derive(Clone)]
pub struct Calls(Arc<Shared>);

impl std::fmt::Debug for Calls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Calls")
    }
}

impl std::ops::Deref for Calls {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`Calls`] shares.
pub struct Shared {
    /// The effective configuration.
    pub config: Arc<Config>,
    /// The field validators (loaded once).
    pub validators: Arc<Validators>,
    /// The PBXes and which serves which agent.
    pub pbxes: Pbxes,
    /// One permit per call in flight (`limits.max_calls_in_flight`).
    pub call_slots: Arc<Semaphore>,
    /// `…/click2dial/recordings/{recording_ref}`, leaked once at start-up so rendered
    /// values can borrow it.
    pub recording_url: Template<'static>,
    /// `[redis] call_key_template`, the same way (`None`: it does not parse, and every
    /// create is refused with `500`, as when it was parsed per request).
    pub notifications_key: Option<Template<'static>>,
    /// Call records shared with the other hosts.
    pub call_store: Option<CallStore>,
    /// Where an accepted call's idempotency claim is handed, to be written with its
    /// notifications ([`admission::accepted`]).
    pub notifier: Notifier,
    /// Lists leaked once at start-up for [`DialPolicy`], which borrows.
    policy_lists: (&'static [&'static str], &'static [&'static str]),
    redis: RedisGate,
}

impl Calls {
    /// Builds the service; starts nothing.
    pub fn new(
        config: Arc<Config>,
        validators: Arc<Validators>,
        pbxes: Pbxes,
        call_store: Option<CallStore>,
        notifier: Notifier,
        redis: RedisGate,
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
        let key: &'static str = Box::leak(config.redis.call_key_template.clone().into_boxed_str());
        let notifications_key = Template::new(key).ok();
        let call_slots = Arc::new(Semaphore::new(config.limits.max_calls_in_flight));
        Ok(Self(Arc::new(Shared {
            call_slots,
            config,
            validators,
            pbxes,
            recording_url,
            notifications_key,
            call_store,
            notifier,
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

    /// A Redis connection for a request ([`RedisGate::connection`]): every command on it
    /// goes through [`Self::redis_op`], which bounds its answer (redis-rs does not).
    pub async fn redis(&self) -> Option<Conn> {
        self.redis.connection().await
    }

    /// Whether Redis takes writes, for `/readyz` ([`RedisGate::health`]).
    pub async fn redis_health(&self) -> RedisHealth {
        self.redis.health().await
    }

    /// One Redis round trip for a request ([`RedisGate::op`]).
    pub async fn redis_op<T>(
        &self,
        op: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Option<T> {
        self.redis.op(op).await
    }
}
