//! Webhooks in the configuration: the `[webhooks]` section (delivery schedule and limits,
//! for every key) and a key's `webhook` table (its endpoint and signing secrets).
//!
//! ```toml
//! [webhooks]
//! allow_private_targets = false   # loopback, private, link-local targets refused
//!
//! [[auth.keys]]
//! id = "crm"
//! hash = "sha256:…"
//! webhook = { url = "https://crm.example.com/hooks/click2dial", secrets = ["whsec_…"] }
//! ```

use serde::{Deserialize, Serialize};

/// Prefix of a Standard Webhooks secret; the rest is base64.
pub const SECRET_PREFIX: &str = "whsec_";

/// Signing secrets a key may list at once: the newest and the one it replaces.
pub const MAX_SECRETS: usize = 2;

/// Shortest secret, in bytes once decoded (Standard Webhooks: 24 to 64).
pub const MIN_SECRET_BYTES: usize = 24;

/// Longest secret, in bytes once decoded.
pub const MAX_SECRET_BYTES: usize = 64;

/// One key's endpoint (`webhook` in an `[[auth.keys]]` entry).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Endpoint {
    /// `https://…` (or `http://…`) that every notification of the key's calls is POSTed to.
    pub url: String,
    /// `whsec_<base64>` secrets, newest first: each delivery carries one `v1,` signature
    /// per secret, so a receiver that knows either verifies it while secrets rotate.
    pub secrets: Vec<String>,
}

/// `[webhooks]`: how every key's notifications are delivered.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Webhooks {
    /// Allow targets that resolve to loopback, private, link-local or other non-public
    /// addresses (a receiver on the same machine or in the same network). Off: such a
    /// target is refused before any connection is made (SSRF).
    pub allow_private_targets: bool,
    /// Longest time one delivery may take (connect, send, the answer's head), in
    /// milliseconds; past it the attempt failed and is retried.
    pub timeout_ms: u64,
    /// The first retry's delay, in milliseconds; each further retry waits twice as long,
    /// up to `retry_max_delay_ms`.
    pub retry_base_ms: u64,
    /// The longest delay between two attempts, in milliseconds.
    pub retry_max_delay_ms: u64,
    /// How long an event is retried after its first attempt, in seconds; then it is
    /// dropped and counted `failed`, and the call's next event goes.
    pub give_up_after_secs: u64,
    /// Events waiting for one key's endpoint; more are dropped (counted `failed`), so an
    /// endpoint that is down for days cannot fill Redis.
    pub max_pending_per_key: u64,
    /// Deliveries in flight at once on this host.
    pub concurrency: usize,
    /// How often the queue is looked at for due retries and for events queued by other
    /// hosts, in milliseconds (this host's own events go at once).
    pub poll_interval_ms: u64,
}

impl Default for Webhooks {
    fn default() -> Self {
        Self {
            allow_private_targets: false,
            timeout_ms: 10_000,
            retry_base_ms: 5_000,
            retry_max_delay_ms: 3_600_000,
            give_up_after_secs: 3 * 86_400,
            max_pending_per_key: 100_000,
            concurrency: 16,
            poll_interval_ms: 1_000,
        }
    }
}

impl Webhooks {
    /// What is wrong with the section, naming the key.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        let bad = |key, reason: &str| Some((key, reason.to_string()));
        if !(100..=60_000).contains(&self.timeout_ms) {
            return bad("webhooks.timeout_ms", "must be between 100 and 60000");
        }
        if self.retry_base_ms == 0 {
            return bad("webhooks.retry_base_ms", "must be at least 1");
        }
        if self.retry_max_delay_ms < self.retry_base_ms {
            return bad(
                "webhooks.retry_max_delay_ms",
                "must be at least webhooks.retry_base_ms",
            );
        }
        if self.give_up_after_secs == 0 {
            return bad("webhooks.give_up_after_secs", "must be at least 1");
        }
        if self.max_pending_per_key == 0 {
            return bad("webhooks.max_pending_per_key", "must be at least 1");
        }
        if !(1..=1024).contains(&self.concurrency) {
            return bad("webhooks.concurrency", "must be between 1 and 1024");
        }
        if !(10..=60_000).contains(&self.poll_interval_ms) {
            return bad("webhooks.poll_interval_ms", "must be between 10 and 60000");
        }
        None
    }
}

impl Endpoint {
    /// What is wrong with the endpoint, for the check's message.
    pub fn problem(&self) -> Option<String> {
        if let Err(reason) = check_url(&self.url) {
            return Some(format!("webhook.url {:?}: {reason}", self.url));
        }
        if self.secrets.is_empty() || self.secrets.len() > MAX_SECRETS {
            return Some(format!(
                "webhook.secrets: 1 or {MAX_SECRETS} secrets (newest first), each \
                 {SECRET_PREFIX}<base64 of {MIN_SECRET_BYTES}-{MAX_SECRET_BYTES} bytes>"
            ));
        }
        for (i, secret) in self.secrets.iter().enumerate() {
            if let Err(reason) = decode_secret(secret) {
                return Some(format!("webhook.secrets[{i}]: {reason}"));
            }
        }
        None
    }
}

/// An endpoint URL: `http` or `https`, a host, no credentials, no fragment.
pub fn check_url(url: &str) -> Result<url::Url, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("must start with https:// or http://".into());
    }
    if parsed.host().is_none() {
        return Err("has no host".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not hold credentials (the signature authenticates)".into());
    }
    if parsed.fragment().is_some() {
        return Err("must not have a #fragment".into());
    }
    Ok(parsed)
}

/// `whsec_<base64>` → the key bytes.
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    let Some(encoded) = secret.strip_prefix(SECRET_PREFIX) else {
        return Err(format!("must start with {SECRET_PREFIX}"));
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| format!("the part after {SECRET_PREFIX} must be base64"))?;
    if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&bytes.len()) {
        return Err(format!(
            "must hold {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes ({} given)",
            bytes.len()
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_secrets() {
        assert!(check_url("https://crm.example.com/hook").is_ok());
        assert!(check_url("ftp://crm.example.com/").is_err());
        assert!(check_url("https://u:p@crm.example.com/").is_err());
        assert!(check_url("not a url").is_err());
        assert!(decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
        assert!(decode_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(decode_secret("whsec_%%%").is_err());
        assert!(decode_secret("whsec_c2hvcnQ=").is_err());
    }
}
