//! Signed, retried webhooks: every notification of a call whose key has a `webhook` is
//! POSTed to that endpoint as a CloudEvents 1.0 event ([`event`]) signed per Standard
//! Webhooks ([`sign`]).
//!
//! Delivery is at least once and in order per call. The notifier queues each event in
//! Redis in the same script that pushes the notification (`PUSH_ONCE_QUEUE` in
//! `crate::store::schema`), so an event is queued exactly once whichever host pushed it,
//! and survives a restart. Every host runs a [`deliver`] worker: it takes a due call's
//! lease in Redis ([`queue`]), POSTs the call's head event, and settles it — delivered on a
//! `2xx` within `[webhooks] timeout_ms`; retried with an exponential backoff on anything
//! else (an error status, a timeout, a refused connection, a redirect, which is never
//! followed); dropped as `failed` once `give_up_after_secs` have passed since its first
//! attempt; and on `410 Gone` the endpoint is disabled. A retry carries the same
//! `webhook-id` and body, with a new `webhook-timestamp` and signature. Targets are held to
//! [`ssrf`].

pub mod deliver;
pub mod event;
pub mod queue;
pub mod route;
pub mod sign;
pub mod ssrf;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Notify;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::gate::RedisGate;
use crate::store::target::Target;
pub use route::{routes, Route, Routes};

/// What the notifier needs to queue a key's events: which keys have an endpoint, the
/// events' `source`, the cap on pending events, and the local worker's wake-up.
#[derive(Clone, Debug)]
pub struct Enqueue {
    /// Key id → endpoint URL.
    pub urls: Arc<HashMap<String, String>>,
    /// The CloudEvents `source`.
    pub source: String,
    /// `[webhooks] max_pending_per_key`.
    pub max_pending: u64,
    /// Wakes this host's worker when an event was queued.
    pub wake: Arc<Notify>,
}

impl Enqueue {
    /// The queue entry of a notification of `owner`'s call, when `owner` has an endpoint:
    /// `(member, entry, url)`.
    pub fn entry(
        &self,
        owner: &str,
        id: &str,
        contact_ref: &str,
        json: &str,
    ) -> Option<(String, String, &str)> {
        let url = self.urls.get(owner)?;
        let channel_id = id.rsplit_once(':').map_or(id, |(c, _)| c);
        let body = event::envelope(id, &self.source, contact_ref, json)?;
        Some((
            crate::store::schema::webhook_member(owner, channel_id),
            format!("{id}\n{body}"),
            url,
        ))
    }
}

/// The webhook service: the worker's handle and what the API reads.
#[derive(Clone, Debug)]
pub struct Webhooks {
    /// Key id → endpoint.
    pub routes: Arc<Routes>,
    /// For the notifier.
    pub enqueue: Enqueue,
    /// Redis, for the state the API reads.
    pub redis: RedisGate,
}

impl Webhooks {
    /// Starts the worker (when a key has an endpoint), on Redis at `target`.
    pub fn start(
        config: &Config,
        target: Option<Target>,
        metrics: Metrics,
    ) -> Result<Self, String> {
        let routes = Arc::new(routes(config)?);
        let wake = Arc::new(Notify::new());
        let enqueue = Enqueue {
            urls: Arc::new(
                routes
                    .iter()
                    .map(|(k, r)| (k.clone(), r.url.clone()))
                    .collect(),
            ),
            source: event::source(&config.http.public_url),
            max_pending: config.webhooks.max_pending_per_key,
            wake: wake.clone(),
        };
        let redis = RedisGate::new(target.clone());
        if !routes.is_empty() {
            let worker = deliver::Worker::new(
                config.webhooks.clone(),
                routes.clone(),
                RedisGate::new(target),
                wake,
                metrics,
            )?;
            tokio::spawn(worker.run());
        }
        Ok(Self {
            routes,
            enqueue,
            redis,
        })
    }
}
