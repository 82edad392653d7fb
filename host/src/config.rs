//! The configuration file (TOML) with environment overrides.
//!
//! Every key can be overridden by an environment variable named `C2D_<SECTION>__<KEY>`
//! in upper case, e.g. `C2D_AMI__SECRET` for `[ami] secret` or `C2D_HTTP__PORT` for
//! `[http] http_port` (`C2D_HTTP__HTTP_PORT` works too). Lists take TOML syntax:
//! `C2D_POLICY__ALLOWED_COUNTRY_CODES='["44","49"]'`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use click2dial_core::template::Template;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Prefix of the override variables.
pub const ENV_PREFIX: &str = "C2D_";

/// The whole configuration.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The REST API.
    pub http: Http,
    /// The Asterisk Manager Interface.
    pub ami: Ami,
    /// Dialplan names and ring timeouts.
    pub dialplan: Dialplan,
    /// Notifications and idempotency in Redis.
    pub redis: Redis,
    /// Recordings written by the PBX.
    pub recordings: Recordings,
    /// The dialling policy (toll-fraud guard).
    pub policy: Policy,
}

/// `[http]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Http {
    /// Address to listen on.
    pub listen: IpAddr,
    /// Port of the REST API (`0`: any free port, printed at start-up).
    pub http_port: u16,
    /// The URL clients reach this service at, for `recording_url`.
    pub public_url: String,
}

impl Default for Http {
    fn default() -> Self {
        Self {
            listen: IpAddr::from([127, 0, 0, 1]),
            http_port: 8080,
            public_url: "http://127.0.0.1:8080".into(),
        }
    }
}

/// `[ami]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Ami {
    /// `host:port` of Asterisk's manager interface.
    pub address: String,
    /// `manager.conf` user.
    pub username: String,
    /// `manager.conf` secret.
    pub secret: String,
    /// Seconds between `Ping`s on an idle connection.
    pub ping_interval_secs: u64,
    /// Longest wait between reconnection attempts (the backoff doubles up to it).
    pub max_backoff_secs: u64,
}

impl Default for Ami {
    fn default() -> Self {
        Self {
            address: "127.0.0.1:5038".into(),
            username: "c2d".into(),
            secret: String::new(),
            ping_interval_secs: 20,
            max_backoff_secs: 30,
        }
    }
}

/// How the dialled digits of the callee are passed to the dialplan.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CalleeDigits {
    /// As the client sent them.
    AsGiven,
    /// E.164 without `+` (`27820001234`).
    E164,
}

/// `[dialplan]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Dialplan {
    /// Channel technology of agents' endpoints (`PJSIP/<agent>`).
    pub agent_tech: String,
    /// Context that dials the callee once the agent answered.
    pub outbound_context: String,
    /// Context for one-leg calls (agent equals callee): dials the callee first, then the
    /// direct destination.
    pub direct_context: String,
    /// Channel that reaches the callee for one-leg calls, `{callee}` replaced; the default
    /// goes through `[c2d-single]` of the integration kit, which sets the caller ID.
    pub direct_channel: String,
    /// How long the agent's (or, one-leg, the callee's) phone rings, in milliseconds.
    pub agent_ring_timeout_ms: u32,
    /// How the callee's digits reach the dialplan.
    pub callee_digits: CalleeDigits,
}

impl Default for Dialplan {
    fn default() -> Self {
        Self {
            agent_tech: "PJSIP".into(),
            outbound_context: "c2d-outbound".into(),
            direct_context: "c2d-direct".into(),
            direct_channel: "Local/{callee}@c2d-single".into(),
            agent_ring_timeout_ms: 20_000,
            callee_digits: CalleeDigits::AsGiven,
        }
    }
}

/// `[redis]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Redis {
    /// `redis://host:port/db`
    pub url: String,
    /// Per-call list, `{contact_ref}` replaced.
    pub call_key_template: String,
    /// The deprecated shared list.
    pub legacy_key: String,
    /// Whether the deprecated list is still written.
    pub legacy_key_enabled: bool,
    /// TTL of the per-call list, in seconds.
    pub ttl_secs: u64,
    /// How long a `contact_ref` is remembered for idempotency, in seconds.
    pub idempotency_ttl_secs: u64,
    /// Key prefix of idempotency records.
    pub idempotency_prefix: String,
    /// Notifications held in memory while Redis is unreachable.
    pub spool_capacity: usize,
}

impl Default for Redis {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            call_key_template: "teleforge:notifications:c2d:{contact_ref}".into(),
            legacy_key: "enigma:notifications:c2d".into(),
            legacy_key_enabled: true,
            ttl_secs: 86_400,
            idempotency_ttl_secs: 86_400,
            idempotency_prefix: "teleforge:c2d:idempotency:".into(),
            spool_capacity: 100_000,
        }
    }
}

/// `[recordings]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Recordings {
    /// Where the PBX writes `<recording_ref>.wav`.
    pub dir: PathBuf,
}

impl Default for Recordings {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("/var/spool/asterisk/monitor/click2dial"),
        }
    }
}

/// `[policy]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Country codes `00` numbers may be dialled in besides South Africa.
    pub allowed_country_codes: Vec<String>,
    /// Refuse South African premium-rate ranges.
    pub refuse_premium_rate: bool,
    /// Extra refused E.164 prefixes (digits, no `+`).
    pub denied_prefixes: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            allowed_country_codes: Vec::new(),
            refuse_premium_rate: true,
            denied_prefixes: Vec::new(),
        }
    }
}

/// A configuration that cannot be used; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unreadable file, bad TOML, wrong type or unknown key.
    #[error("{0}")]
    Load(#[from] Box<figment::Error>),
    /// A value with the right type but an unusable value.
    #[error("invalid value for `{key}`: {reason}")]
    Invalid {
        /// Dotted key, e.g. `redis.call_key_template`.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl Config {
    /// Defaults, then `path` (when given), then `C2D_*` variables.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = path {
            if !path.exists() {
                return Err(ConfigError::Invalid {
                    key: "--config",
                    reason: format!("{} does not exist", path.display()),
                });
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        // Only `C2D_<SECTION>__<KEY>`: other `C2D_*` variables (scripts' own) are not keys.
        // `C2D_HTTP__PORT` is the documented short name of `C2D_HTTP__HTTP_PORT`.
        figment = figment.merge(
            Env::prefixed(ENV_PREFIX)
                .filter(|key| key.as_str().contains("__"))
                .map(|key| {
                    if key.as_str().eq_ignore_ascii_case("http__port") {
                        "http__http_port".into()
                    } else {
                        key.into()
                    }
                })
                .split("__"),
        );
        let config: Config = figment.extract().map_err(Box::new)?;
        config.check()?;
        Ok(config)
    }

    /// Checks values the types cannot.
    pub fn check(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| ConfigError::Invalid {
            key,
            reason: reason.to_string(),
        };
        let template = Template::new(&self.redis.call_key_template)
            .map_err(|e| invalid("redis.call_key_template", &e.to_string()))?;
        if !template.uses_contact_ref() {
            return Err(invalid(
                "redis.call_key_template",
                "must contain {contact_ref}: one list per call",
            ));
        }
        if self.ami.address.is_empty() {
            return Err(invalid("ami.address", "must be host:port"));
        }
        if self.ami.ping_interval_secs == 0 {
            return Err(invalid("ami.ping_interval_secs", "must be at least 1"));
        }
        if self.redis.spool_capacity == 0 {
            return Err(invalid("redis.spool_capacity", "must be at least 1"));
        }
        if !self.http.public_url.starts_with("http://")
            && !self.http.public_url.starts_with("https://")
        {
            return Err(invalid(
                "http.public_url",
                "must start with http:// or https://",
            ));
        }
        let digits = |list: &[String], key| {
            list.iter()
                .all(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .then_some(())
                .ok_or_else(|| invalid(key, "every entry must be digits only"))
        };
        digits(
            &self.policy.allowed_country_codes,
            "policy.allowed_country_codes",
        )?;
        digits(&self.policy.denied_prefixes, "policy.denied_prefixes")?;
        for (key, value) in [
            ("dialplan.agent_tech", &self.dialplan.agent_tech),
            ("dialplan.outbound_context", &self.dialplan.outbound_context),
            ("dialplan.direct_context", &self.dialplan.direct_context),
            ("dialplan.direct_channel", &self.dialplan.direct_channel),
        ] {
            if value.is_empty() || value.bytes().any(|b| b.is_ascii_control()) {
                return Err(invalid(
                    key,
                    "must be non-empty, without control characters",
                ));
            }
        }
        Ok(())
    }

    /// The configuration as TOML with secrets masked, for `check-config`.
    pub fn to_masked_toml(&self) -> String {
        let mut masked = self.clone();
        if !masked.ami.secret.is_empty() {
            masked.ami.secret = "********".into();
        }
        masked.redis.url = mask_url_password(&masked.redis.url);
        toml_string(&masked)
    }

    /// The recording URL template: `<public_url>/click2dial/recordings/{recording_ref}`.
    pub fn recording_url_template(&self) -> String {
        format!(
            "{}/click2dial/recordings/{{recording_ref}}",
            self.http.public_url.trim_end_matches('/')
        )
    }
}

fn toml_string(config: &Config) -> String {
    toml::to_string_pretty(config).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
}

/// `redis://user:secret@host` → `redis://user:********@host`.
fn mask_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_string();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:********@{host}"),
        None => format!("{scheme}://********@{host}"),
    }
}
