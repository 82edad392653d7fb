//! click2dial-host: the Linux service next to the PBX.
//!
//! Only I/O and operations live here: every rule, the AMI protocol and the call state
//! machine are in `click2dial-core`, shared with the appliance firmware.

pub mod api;
pub mod config;
pub mod idempotency;
pub mod notify;
pub mod pbx;
pub mod state;

use std::time::Duration;

use axum::Router;

pub use state::AppState;

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    api::router().with_state(state)
}

/// Starts the background tasks (notifier, AMI client) and builds the state.
pub fn start(config: config::Config) -> Result<AppState, String> {
    let validators = click2dial_core::Validators::new().map_err(|e| format!("validators: {e}"))?;
    let notifier = notify::Notifier::start(notify::Settings {
        url: config.redis.url.clone(),
        legacy_key: config
            .redis
            .legacy_key_enabled
            .then(|| config.redis.legacy_key.clone()),
        ttl_secs: config.redis.ttl_secs,
        spool_capacity: config.redis.spool_capacity,
        sent_prefix: "teleforge:c2d:sent:".into(),
    });
    let pbx = pbx::Pbx::start(
        pbx::Settings {
            address: config.ami.address.clone(),
            username: config.ami.username.clone(),
            secret: config.ami.secret.clone(),
            ping_interval: Duration::from_secs(config.ami.ping_interval_secs),
            max_backoff: Duration::from_secs(config.ami.max_backoff_secs.max(1)),
        },
        notifier.clone(),
    );
    AppState::new(config, validators, pbx, notifier)
}
