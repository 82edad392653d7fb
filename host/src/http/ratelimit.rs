//! Per-key rate limits (GCRA, `governor`): `429 rate_limited` with `Retry-After`.
//!
//! Keys are known from the configuration, so each has its own limiter; nothing grows with
//! the traffic. A key's quota is `rate_per_minute` with bursts of `burst` requests; every
//! authenticated request counts, whatever its route.

use std::num::NonZeroU32;

use axum::response::{IntoResponse, Response};
use click2dial_core::{Error, ErrorCode};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota};

use crate::auth::Caller;
use crate::config::{ApiKey, Limits};
use crate::http::error::ApiError;
use crate::metrics::Metrics;

const RATE_LIMITED: Error = Error::request(
    ErrorCode::RateLimited,
    "too many requests for this API key; retry after the Retry-After delay",
);

/// One limiter per configured key, in configuration order; `None`: unlimited.
pub struct RateLimits {
    limiters: Vec<Option<DefaultDirectRateLimiter>>,
    clock: DefaultClock,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("keys", &self.limiters.len())
            .finish()
    }
}

impl RateLimits {
    /// The limiters of `keys`, with `limits` as the default quota.
    pub fn new(keys: &[ApiKey], limits: &Limits) -> Self {
        let limiters = keys
            .iter()
            .map(|key| {
                let rate = NonZeroU32::new(key.rate_per_minute.unwrap_or(limits.rate_per_minute))?;
                let burst =
                    NonZeroU32::new(key.burst.unwrap_or(limits.burst)).unwrap_or(NonZeroU32::MIN);
                let quota = Quota::per_minute(rate).allow_burst(burst);
                Some(DefaultDirectRateLimiter::direct(quota))
            })
            .collect();
        Self {
            limiters,
            clock: DefaultClock::default(),
        }
    }

    /// `Ok` when key `index` may send one more request now, else how many seconds to wait.
    pub fn check(&self, index: usize) -> Result<(), u64> {
        let Some(Some(limiter)) = self.limiters.get(index) else {
            return Ok(());
        };
        limiter.check().map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }
}

/// `None` while `caller`'s key is within its rate, else `429` with `Retry-After` (checked
/// by [`crate::http::auth::RequireKey`] once the key is known).
pub fn limit(limits: &RateLimits, metrics: &Metrics, caller: &Caller) -> Option<Response> {
    if let Err(wait) = limits.check(caller.index) {
        tracing::info!(key = %caller.id, retry_after = wait, "rate limited");
        metrics.rate_limited(&caller.id);
        return Some(
            ApiError::new(RATE_LIMITED)
                .retry_after(wait)
                .into_response(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refused_with_a_wait() {
        let keys = [
            ApiKey {
                id: "small".into(),
                rate_per_minute: Some(6),
                burst: Some(2),
                ..Default::default()
            },
            ApiKey {
                id: "unlimited".into(),
                rate_per_minute: Some(0),
                ..Default::default()
            },
        ];
        let limits = RateLimits::new(&keys, &Limits::default());
        assert_eq!(limits.check(0), Ok(()));
        assert_eq!(limits.check(0), Ok(()));
        let wait = limits.check(0).expect_err("over the burst");
        assert!((1..=10).contains(&wait), "{wait}");
        for _ in 0..1000 {
            assert_eq!(limits.check(1), Ok(()));
        }
        assert_eq!(limits.check(7), Ok(()), "unknown index: no limiter");
    }
}
