//! The service handles, made once from the configuration: each starts its own background
//! task (the notifier's push, the AMI client) and is handed to what uses it — the routes
//! (`crate::http`), the FastAGI service, the shutdown sequence in `main.rs`.

use std::sync::Arc;

use crate::auth::Keys;
use crate::call::Outbox;
use crate::calls::Calls;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::notify::{self, Notifier};
use crate::pbxes::Pbxes;
use crate::store::call_store::CallStore;
use crate::store::gate::RedisGate;
use crate::store::schema;
use crate::store::target::Target;
use crate::webhook::Webhooks;

/// Every service of a running host; cheap to clone.
#[derive(Clone, Debug)]
pub struct Services {
    /// The effective configuration.
    pub config: Arc<Config>,
    /// Calls: the rules, admission, the PBX client.
    pub calls: Calls,
    /// Notifications: the Redis push and the event streams' hub.
    pub notifier: Notifier,
    /// The API keys.
    pub keys: Arc<Keys>,
    /// The metrics registry.
    pub metrics: Metrics,
    /// Webhook deliveries.
    pub webhooks: Webhooks,
}

/// Starts the background tasks (notifier, AMI client) and builds the services.
pub fn start(config: Config) -> Result<Services, String> {
    let validators = click2dial_core::Validators::new().map_err(|e| format!("validators: {e}"))?;
    let metrics = Metrics::new();
    let target = Target::new(&config.redis);
    let webhooks = Webhooks::start(&config, target.clone(), metrics.clone())?;
    let notifier = Notifier::start(
        notify::Settings {
            target: target.clone(),
            legacy_key: config
                .redis
                .legacy_key_enabled
                .then(|| config.redis.legacy_key.clone()),
            legacy_max_len: config.redis.legacy_max_len,
            ttl_secs: config.redis.ttl_secs,
            spool_capacity: config.redis.spool_capacity,
            sent_prefix: schema::SENT_PREFIX.into(),
            history_ttl_secs: config.redis.idempotency_ttl_secs,
            webhooks: (!webhooks.routes.is_empty()).then(|| webhooks.enqueue.clone()),
            claim_prefix: Some(config.redis.idempotency_prefix.clone()),
        },
        metrics.clone(),
    );
    let call_store = CallStore::new(target.clone(), config.redis.ttl_secs);
    let outbox: Arc<dyn Outbox> = Arc::new(notifier.clone());
    let pbxes = Pbxes::start(&config, &outbox, &metrics, &call_store)?;
    if config.auth.keys.is_empty() {
        tracing::warn!(
            "no API keys configured ([[auth.keys]]): every request but /healthz is refused"
        );
    }
    let keys = Arc::new(Keys::new(&config.auth.keys));
    // Every command of the calls' connection goes through `redis_op` (`RedisGate::op`).
    let redis = RedisGate::for_ops(target);
    let config = Arc::new(config);
    let calls = Calls::new(
        config.clone(),
        Arc::new(validators),
        pbxes,
        call_store,
        notifier.clone(),
        redis,
    )?;
    Ok(Services {
        config,
        calls,
        notifier,
        keys,
        metrics,
        webhooks,
    })
}
