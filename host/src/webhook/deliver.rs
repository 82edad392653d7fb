//! The delivery worker, one per host: finds due calls, takes a call's lease, POSTs its
//! head event, settles it, and goes on with the call's next event while it has the lease.
//!
//! Every wait has a deadline: a Redis round trip `crate::store::gate::REDIS_WITHIN`, an
//! attempt `[webhooks] timeout_ms` (connect, send, the answer's head; the answer's body is
//! not read), and a lease `timeout_ms` plus [`LEASE_MARGIN_MS`]; a host that dies holding
//! a lease holds it no longer than that, then another host retries the same event.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};

use crate::config::Webhooks as Settings;
use crate::metrics::Metrics;
use crate::store::gate::RedisGate;
use crate::store::target::Conn;
use crate::webhook::queue::{self, Claimed, Outcome, Scripts};
use crate::webhook::route::{Route, Routes};
use crate::webhook::ssrf::Guard;

/// How much longer than one attempt a lease lasts.
pub const LEASE_MARGIN_MS: u64 = 5_000;

/// Due calls looked at per round.
const BATCH: usize = 64;

/// How often each key's state is read back for `/metrics`, in rounds.
const STATE_EVERY: u32 = 5;

/// The worker and what it shares with its delivery tasks.
pub struct Worker {
    shared: Arc<Shared>,
    wake: Arc<Notify>,
}

struct Shared {
    settings: Settings,
    routes: Arc<Routes>,
    redis: RedisGate,
    client: reqwest::Client,
    guard: Guard,
    scripts: Scripts,
    metrics: Metrics,
    slots: Arc<Semaphore>,
    /// Calls this host is delivering.
    busy: Mutex<HashSet<String>>,
}

impl Worker {
    /// A worker for `routes`; its HTTP client follows no redirect and resolves through the
    /// SSRF [`Guard`].
    pub fn new(
        settings: Settings,
        routes: Arc<Routes>,
        redis: RedisGate,
        wake: Arc<Notify>,
        metrics: Metrics,
    ) -> Result<Self, String> {
        let guard = Guard {
            allow_private: settings.allow_private_targets,
        };
        let timeout = Duration::from_millis(settings.timeout_ms);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(guard.clone().shared())
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_max_idle_per_host(4)
            .user_agent(concat!("click2dial-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("webhook HTTP client: {e}"))?;
        let slots = Arc::new(Semaphore::new(settings.concurrency));
        Ok(Self {
            shared: Arc::new(Shared {
                settings,
                routes,
                redis,
                client,
                guard,
                scripts: Scripts::default(),
                metrics,
                slots,
                busy: Mutex::default(),
            }),
            wake,
        })
    }

    /// Runs until the process ends.
    pub async fn run(self) {
        let poll = Duration::from_millis(self.shared.settings.poll_interval_ms);
        let mut round: u32 = 0;
        loop {
            let mut pause = poll;
            if let Some(mut conn) = self.shared.redis.connection().await {
                if round.is_multiple_of(STATE_EVERY) {
                    self.shared.publish_state(&mut conn).await;
                }
                round = round.wrapping_add(1);
                let due = self
                    .shared
                    .redis
                    .op(self.shared.scripts.due(&mut conn, BATCH))
                    .await;
                if let Some((members, next)) = due {
                    let full = members.len() == BATCH;
                    for member in members {
                        self.spawn(member, conn.clone());
                    }
                    if let Some(next) = next {
                        pause = pause.min(Duration::from_millis(next.max(1)));
                    }
                    if full {
                        pause = Duration::from_millis(10);
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = self.wake.notified() => {}
            }
        }
    }

    /// Delivers `member`'s events in a task, unless this host is at it already or has no
    /// slot free (the call stays due: a later round takes it).
    fn spawn(&self, member: String, conn: Conn) {
        let Ok(permit) = self.shared.slots.clone().try_acquire_owned() else {
            return;
        };
        let Ok(mut busy) = self.shared.busy.lock() else {
            return;
        };
        if !busy.insert(member.clone()) {
            return;
        }
        drop(busy);
        let shared = self.shared.clone();
        tokio::spawn(async move {
            shared.deliver_call(&member, conn).await;
            if let Ok(mut busy) = shared.busy.lock() {
                busy.remove(&member);
            }
            drop(permit);
        });
    }
}

impl Shared {
    /// Delivers the call's events in order while they succeed and the call stays due.
    async fn deliver_call(&self, member: &str, mut conn: Conn) {
        let lease_ms = self.settings.timeout_ms + LEASE_MARGIN_MS;
        loop {
            let token = new_token();
            let claimed = self
                .redis
                .op(self.scripts.claim(&mut conn, member, lease_ms, &token))
                .await;
            let Some(Some(claimed)) = claimed else {
                return;
            };
            let owner = member.split_once(':').map_or(member, |(o, _)| o);
            let route = self.routes.get(owner);
            let (outcome, error) = match route {
                // Another host's configuration may have it (a rolling change): retried,
                // and given up like any failure if no host ever has it again.
                None => self.retry(
                    &claimed,
                    "this host's configuration has no webhook for the key".into(),
                ),
                Some(route) if route.url == claimed.disabled_url => (
                    Outcome::Failed,
                    "endpoint disabled (it answered 410 Gone); change its URL to enable it"
                        .to_string(),
                ),
                Some(route) => self.attempt(route, &claimed).await,
            };
            self.metrics.webhook_attempt(owner, outcome.as_str());
            if !matches!(outcome, Outcome::Delivered) {
                tracing::warn!(key = owner, id = %claimed.id, attempt = claimed.attempts,
                    outcome = outcome.as_str(), %error, "webhook not delivered");
            }
            let url = route.map_or("", |r| r.url.as_str());
            let settled = self
                .redis
                .op(self.scripts.settle(
                    &mut conn,
                    member,
                    &token,
                    &claimed.id,
                    outcome,
                    &error,
                    url,
                ))
                .await;
            if settled != Some(true) || matches!(outcome, Outcome::Retry(_)) {
                return;
            }
        }
    }

    /// One POST of `claimed` to `route`: its outcome and, unless delivered, why.
    async fn attempt(&self, route: &Route, claimed: &Claimed) -> (Outcome, String) {
        let result = match self.guard.check_literal(&route.parsed) {
            Err(refused) => Err(refused),
            Ok(()) => self.post(route, claimed).await,
        };
        match result {
            Ok(status) if (200..300).contains(&status) => (Outcome::Delivered, String::new()),
            Ok(410) => (Outcome::Gone, "410 Gone: endpoint disabled".into()),
            Ok(status) => self.retry(claimed, format!("HTTP {status}")),
            Err(error) => self.retry(claimed, error),
        }
    }

    async fn post(&self, route: &Route, claimed: &Claimed) -> Result<u16, String> {
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let signature = route
            .signer
            .sign(&claimed.id, timestamp, claimed.body.as_bytes());
        let response = self
            .client
            .post(route.parsed.clone())
            .header("content-type", "application/cloudevents+json")
            .header("webhook-id", &claimed.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(claimed.body.clone())
            .send()
            .await
            .map_err(|e| describe(&e))?;
        Ok(response.status().as_u16())
    }

    /// A failed attempt: retried after the backoff, or given up past
    /// `give_up_after_secs` since the first attempt.
    fn retry(&self, claimed: &Claimed, error: String) -> (Outcome, String) {
        let age_ms = claimed.now_ms.saturating_sub(claimed.first_ms);
        if age_ms >= self.settings.give_up_after_secs.saturating_mul(1000) {
            let error = format!("{error}; gave up after {} attempts", claimed.attempts);
            return (Outcome::Failed, error);
        }
        (
            Outcome::Retry(backoff(&self.settings, claimed.attempts)),
            error,
        )
    }

    /// Reads every key's state into the metrics.
    async fn publish_state(&self, conn: &mut Conn) {
        for (owner, route) in self.routes.iter() {
            let status = self
                .redis
                .op(queue::status(conn, owner, Some(&route.url)))
                .await;
            if let Some(status) = status {
                self.metrics.webhook_state(
                    owner,
                    status.pending,
                    status.failed,
                    status.state == "disabled",
                );
            }
        }
    }
}

/// The delay after failed attempt `attempts` (from 1): `retry_base_ms` doubled per attempt,
/// at most `retry_max_delay_ms`.
pub fn backoff(settings: &Settings, attempts: u32) -> u64 {
    let doublings = attempts.saturating_sub(1).min(40);
    settings
        .retry_base_ms
        .saturating_mul(1u64 << doublings)
        .min(settings.retry_max_delay_ms)
}

/// The error and its causes, one line (the SSRF guard's refusal is among the causes).
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_string()
    } else if error.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn new_token() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // A token only needs to differ from other hosts' at the same moment.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        return format!("{nanos:x}-{}", std::process::id());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_schedule_backs_off_exponentially_over_more_than_a_day() {
        let settings = Settings::default();
        let delays: Vec<u64> = (1..=5).map(|a| backoff(&settings, a)).collect();
        assert_eq!(delays, [5_000, 10_000, 20_000, 40_000, 80_000]);
        assert_eq!(backoff(&settings, 30), settings.retry_max_delay_ms);
        assert_eq!(backoff(&settings, u32::MAX), settings.retry_max_delay_ms);
        assert!(settings.give_up_after_secs >= 86_400);
    }
}
