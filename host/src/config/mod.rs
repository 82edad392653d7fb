//! The configuration file (TOML) with environment overrides.
//!
//! Every key can be overridden by an environment variable named `C2D_<SECTION>__<KEY>`
//! in upper case, e.g. `C2D_AMI__SECRET` for `[ami] secret` or `C2D_HTTP__PORT` for
//! `[http] http_port` (`C2D_HTTP__HTTP_PORT` works too). Lists take TOML syntax:
//! `C2D_POLICY__ALLOWED_COUNTRY_CODES='["44","49"]'`, and tables likewise:
//! `C2D_AUTH__KEYS='[{id="crm",hash="sha256:…"}]'`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use click2dial_core::template::Template;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

pub mod agents;
pub mod keys;
pub mod pbxes;
pub mod webhooks;

pub use agents::AgentRange;
pub use keys::{parse_hash, Scope, DEFAULT_SCOPES};
pub use pbxes::{PbxEntry, PbxSite};
pub use webhooks::{Endpoint, Webhooks};

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
    /// API keys.
    pub auth: Auth,
    /// Rate and capacity limits.
    pub limits: Limits,
    /// What happens on SIGTERM.
    pub shutdown: Shutdown,
    /// The FastAGI service for calls started from an agent's softphone.
    pub fastagi: FastAgi,
    /// Signed webhook deliveries (each key's endpoint is in its `[[auth.keys]]` entry).
    pub webhooks: Webhooks,
    /// Several PBXes, each serving its agents (`[[pbx]]`); empty: `[ami]` is the one PBX.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pbx: Vec<PbxEntry>,
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
    /// Longest time from a request's head to its answer (body read included), in seconds;
    /// past it the answer is `408 request_timeout`.
    pub request_timeout_secs: u64,
    /// Longest time a client may take to send a request's head, in seconds; past it the
    /// connection is closed.
    pub header_timeout_secs: u64,
    /// Connections open at once, all peers together; more are closed at once.
    pub max_connections: usize,
    /// Connections open at once from one peer address; more are closed at once (a load
    /// balancer in front needs a cap as large as its pool).
    pub max_connections_per_peer: usize,
}

impl Default for Http {
    fn default() -> Self {
        Self {
            listen: IpAddr::from([127, 0, 0, 1]),
            http_port: 8080,
            public_url: "http://127.0.0.1:8080".into(),
            request_timeout_secs: 10,
            header_timeout_secs: 10,
            max_connections: 1024,
            max_connections_per_peer: 128,
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
    /// The context with one extension per `tvc_` campaign (`exten => spring,1,Return(…)`):
    /// its extension names are the campaigns the PBX knows, read at every login check.
    pub tvc_context: String,
}

impl Default for Dialplan {
    /// The names of the integration kit, as core defines them.
    fn default() -> Self {
        let names = click2dial_core::originate::Dialplan::DEFAULT;
        Self {
            agent_tech: names.agent_tech.into(),
            outbound_context: names.outbound_context.into(),
            direct_context: names.direct_context.into(),
            direct_channel: names.direct_channel.into(),
            agent_ring_timeout_ms: names.ring_timeout_ms,
            callee_digits: CalleeDigits::AsGiven,
            tvc_context: "c2d-tvc".into(),
        }
    }
}

impl Dialplan {
    /// The names as core's Originate writer takes them.
    pub fn names(&self) -> click2dial_core::originate::Dialplan<'_> {
        click2dial_core::originate::Dialplan {
            agent_tech: &self.agent_tech,
            outbound_context: &self.outbound_context,
            direct_context: &self.direct_context,
            direct_channel: &self.direct_channel,
            ring_timeout_ms: self.agent_ring_timeout_ms,
            callee_digits: match self.callee_digits {
                CalleeDigits::AsGiven => click2dial_core::originate::CalleeDigits::AsGiven,
                CalleeDigits::E164 => click2dial_core::originate::CalleeDigits::E164,
            },
        }
    }
}

/// A context the login check asks the PBX for (see [`Config::pbx_contexts`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PbxContext {
    /// The context.
    pub context: String,
    /// An extension that must be in it.
    pub extension: Option<String>,
    /// Its extensions are the `tvc_` campaigns.
    pub campaigns: bool,
}

/// `[redis] url` when none is given.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// `[redis]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Redis {
    /// `redis://host:port/db`: one Redis server. Not with `sentinels`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// Redis Sentinel instead of `url`: the sentinels' URLs (`redis://host:26379`, a
    /// password in it is the sentinels'); the host writes to the master they name
    /// `master_name` and follows its failovers (`crate::store::target`).
    pub sentinels: Vec<String>,
    /// The name the sentinels monitor the master under (`sentinel monitor <name> …`).
    pub master_name: String,
    /// With `sentinels`: the ACL user on the master (empty: the default user).
    pub master_username: String,
    /// With `sentinels`: the master's password (`requirepass`; empty: none).
    pub master_password: String,
    /// With `sentinels`: the database number on the master.
    pub master_db: i64,
    /// Redis Cluster instead of `url`: seed nodes' URLs (`redis://host:7000`; a user and
    /// password in the first one are every node's). Not with `sentinels`. Keys that go
    /// together share a slot (`crate::store::schema`, "Cluster").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cluster: Vec<String>,
    /// Per-call list, `{contact_ref}` replaced.
    pub call_key_template: String,
    /// The deprecated shared list.
    pub legacy_key: String,
    /// Whether the deprecated list is still written.
    pub legacy_key_enabled: bool,
    /// The most entries the deprecated list keeps: past it, each push drops the oldest
    /// (the list has no TTL, and nothing pops it once its consumers are gone).
    pub legacy_max_len: u64,
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
            url: DEFAULT_REDIS_URL.into(),
            sentinels: Vec::new(),
            master_name: String::new(),
            master_username: String::new(),
            master_password: String::new(),
            master_db: 0,
            cluster: Vec::new(),
            call_key_template: "teleforge:notifications:c2d:{contact_ref}".into(),
            legacy_key: "enigma:notifications:c2d".into(),
            legacy_key_enabled: true,
            legacy_max_len: 1_000_000,
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
    /// A WAV whose header still has its sizes unset is being written; once it has not been
    /// modified for this many seconds its writer is taken to be gone and it is served as it is.
    pub abandoned_after_secs: u64,
    /// How long Redis remembers which key owns a recording, in seconds; after it the
    /// recording is `404` for every key.
    pub owner_ttl_secs: u64,
}

impl Default for Recordings {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("/var/spool/asterisk/monitor/click2dial"),
            abandoned_after_secs: 300,
            owner_ttl_secs: 30 * 86_400,
        }
    }
}

/// `[auth]`
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Auth {
    /// The API keys; with none, every route but `/healthz` answers `401`.
    pub keys: Vec<ApiKey>,
}

/// One `[[auth.keys]]` entry.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ApiKey {
    /// A name for logs and metrics (never the key itself).
    pub id: String,
    /// `sha256:<64 hex digits>` of the key (`click2dial-host hash-key`).
    pub hash: String,
    /// Caller IDs this key may present; empty: any.
    pub outbound_ids: Vec<String>,
    /// Agent extensions this key may ring, `"<first>-<last>"` (e.g. `"1000-1999"`); absent:
    /// any. A key with a range cannot place one-leg calls (their agent is a phone number).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agents: Option<String>,
    /// Requests per minute for this key; absent: `limits.rate_per_minute`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_per_minute: Option<u32>,
    /// Requests allowed in a burst; absent: `limits.burst`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// What the key may do: `calls:create`, `calls:read`, `recordings:read`,
    /// `metrics:read`; absent: the first three ([`keys::DEFAULT_SCOPES`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// Where this key's calls' notifications are POSTed, signed (`crate::webhook`); absent:
    /// none are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<Endpoint>,
}

/// `[limits]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Calls originated and not yet finished, over all keys; past it `503`.
    pub max_calls_in_flight: usize,
    /// Requests per minute per key (`0`: unlimited), unless the key says otherwise.
    pub rate_per_minute: u32,
    /// Requests a key may send at once before the rate applies.
    pub burst: u32,
    /// How long a call that is not joined (queued, ringing, dialling the callee) may go
    /// without any event from the PBX before it fails with `pbx_error` and its slot under
    /// `max_calls_in_flight` is returned: e.g. a softphone call decided over FastAGI whose
    /// channel never shows on AMI. Longer than any ring time. Also how long calls in flight
    /// wait for a lost AMI connection to be back and re-synchronise them.
    pub call_silence_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_calls_in_flight: 100,
            rate_per_minute: 120,
            burst: 20,
            call_silence_secs: 120,
        }
    }
}

/// `[shutdown]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Shutdown {
    /// How long requests in flight may take to finish, in seconds.
    pub requests_grace_secs: u64,
    /// How long calls in flight may take to end (and send their last notifications), in
    /// seconds; calls still going on after it get no further notifications from this host.
    pub calls_grace_secs: u64,
    /// How long to wait for the notification spool to reach Redis, in seconds.
    pub flush_timeout_secs: u64,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self {
            requests_grace_secs: 20,
            calls_grace_secs: 10,
            flush_timeout_secs: 10,
        }
    }
}

/// `[fastagi]`: the dialplan's `AGI(agi://<listen>/click2dial)` asks this service whether
/// a softphone's INVITE may be dialled.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FastAgi {
    /// `address:port` to listen on; empty turns the service off.
    pub listen: String,
    /// Addresses the PBX connects from; any other peer is closed without a word.
    pub allowed_peers: Vec<IpAddr>,
    /// Longest time a session may take, in milliseconds. Asterisk has no read timeout on
    /// the service and the caller hears nothing meanwhile, so a session that cannot finish
    /// in time rejects the call instead.
    pub session_timeout_ms: u64,
    /// Sessions served at once; more are rejected.
    pub max_sessions: usize,
    /// The dialplan context of the softphones (checked at login when `listen` is set).
    pub context: String,
    /// The extension in it that runs `AGI(agi://<listen>/click2dial)`.
    pub extension: String,
    /// The `id` of the API key that owns softphone calls (their idempotency records,
    /// event streams and recordings); empty: no key owns them, so none reads them over HTTP.
    pub owner_key: String,
}

impl Default for FastAgi {
    fn default() -> Self {
        Self {
            listen: String::new(),
            allowed_peers: vec![
                IpAddr::from([127, 0, 0, 1]),
                IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
            ],
            session_timeout_ms: 3000,
            max_sessions: 64,
            context: "c2d-agent-webrtc".into(),
            extension: "c2d".into(),
            owner_key: String::new(),
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

/// Core's default policy ([`click2dial_core::DialPolicy::SOUTH_AFRICA`]), as configuration.
impl Default for Policy {
    fn default() -> Self {
        let default = click2dial_core::DialPolicy::SOUTH_AFRICA;
        let owned = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
        Self {
            allowed_country_codes: owned(default.allowed_country_codes),
            refuse_premium_rate: default.refuse_premium_rate,
            denied_prefixes: owned(default.denied_prefixes),
        }
    }
}

/// A configuration that cannot be used; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unreadable file, bad TOML, wrong type or unknown key.
    #[error("{0}")]
    Load(#[from] Box<figment::Error>),
    /// A `[dialplan]` or `[policy]` value core's check refuses (as the appliance's build does).
    #[error(transparent)]
    Check(#[from] click2dial_core::config::ConfigError),
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
        // The file and the environment, apart from the defaults: which keys they give.
        let mut sources = Figment::new();
        if let Some(path) = path {
            if !path.exists() {
                return Err(ConfigError::Invalid {
                    key: "--config",
                    reason: format!("{} does not exist", path.display()),
                });
            }
            sources = sources.merge(Toml::file_exact(path));
        }
        // Only `C2D_<SECTION>__<KEY>`: other `C2D_*` variables (scripts' own) are not keys.
        // `C2D_HTTP__PORT` is the documented short name of `C2D_HTTP__HTTP_PORT`.
        sources = sources.merge(
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
        let figment = Figment::from(Serialized::defaults(Config::default())).merge(&sources);
        let config: Config = figment.extract().map_err(Box::new)?;
        if !config.redis.sentinels.is_empty() && sources.contains("redis.url") {
            return Err(ConfigError::Invalid {
                key: "redis.url",
                reason: "not with redis.sentinels: the sentinels name the master".into(),
            });
        }
        if !config.redis.cluster.is_empty() && sources.contains("redis.url") {
            return Err(ConfigError::Invalid {
                key: "redis.url",
                reason: "not with redis.cluster: the cluster's nodes are its seeds".into(),
            });
        }
        config.check()?;
        Ok(config)
    }

    /// The dialplan contexts the host sends calls to, each once, as the login check asks
    /// the PBX for them: the two-leg and one-leg contexts, the one in `direct_channel`
    /// (`Local/{callee}@c2d-single`), the campaigns' and, with FastAGI on, the softphones'
    /// with its extension.
    pub fn pbx_contexts(&self) -> Vec<PbxContext> {
        let dialplan = &self.dialplan;
        let local = dialplan
            .direct_channel
            .split_once('/')
            .filter(|(tech, _)| tech.eq_ignore_ascii_case("Local"))
            .and_then(|(_, resource)| resource.rsplit_once('@'))
            .map(|(_, context)| context.to_string())
            .filter(|c| !c.is_empty() && !c.contains('{'));
        let mut contexts: Vec<PbxContext> = Vec::new();
        let mut add = |context: &str, extension: Option<&str>, campaigns: bool| {
            let new = PbxContext {
                context: context.to_string(),
                extension: extension.map(str::to_string),
                campaigns,
            };
            match contexts
                .iter_mut()
                .find(|c| c.context == new.context && c.extension == new.extension)
            {
                Some(known) => known.campaigns |= campaigns,
                None => contexts.push(new),
            }
        };
        add(&dialplan.outbound_context, None, false);
        add(&dialplan.direct_context, None, false);
        if let Some(local) = &local {
            add(local, None, false);
        }
        add(&dialplan.tvc_context, None, true);
        if !self.fastagi.listen.is_empty() {
            add(&self.fastagi.context, Some(&self.fastagi.extension), false);
        }
        contexts
    }

    /// What is allowed but probably wrong, in words for the log and `check-config`: a
    /// `limits.call_silence_secs` shorter than the longest a phone may ring. A ringing call
    /// hears nothing from the PBX until it is answered, so it would fail with `pbx_error`
    /// while it still rings. (The tests' short silences are on purpose.)
    pub fn warnings(&self) -> Vec<String> {
        let longest_ring_ms = u64::from(self.dialplan.agent_ring_timeout_ms)
            .max(u64::from(click2dial_core::dial::RING_TIMEOUT_SECS.max).saturating_mul(1000));
        let silence_ms = self.limits.call_silence_secs.saturating_mul(1000);
        if silence_ms >= longest_ring_ms {
            return Vec::new();
        }
        vec![format!(
            "limits.call_silence_secs ({} s) is shorter than the longest a phone may ring \
             ({} s: dialplan.agent_ring_timeout_ms, or a call's own agent_ring_timeout_secs or \
             callee_ring_timeout_secs): a call still ringing then fails with pbx_error",
            self.limits.call_silence_secs,
            longest_ring_ms / 1000
        )]
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
        // Zero would not mean "off" for any of these: a TTL of 0 deletes at once, a burst
        // of 0 or a timeout of 0 refuses everything.
        for (key, value) in [
            ("ami.ping_interval_secs", self.ami.ping_interval_secs),
            ("ami.max_backoff_secs", self.ami.max_backoff_secs),
            ("redis.ttl_secs", self.redis.ttl_secs),
            ("recordings.owner_ttl_secs", self.recordings.owner_ttl_secs),
            (
                "recordings.abandoned_after_secs",
                self.recordings.abandoned_after_secs,
            ),
            ("limits.burst", self.limits.burst.into()),
            ("limits.call_silence_secs", self.limits.call_silence_secs),
            ("http.request_timeout_secs", self.http.request_timeout_secs),
            ("http.header_timeout_secs", self.http.header_timeout_secs),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if self.redis.idempotency_prefix.is_empty() {
            return Err(invalid(
                "redis.idempotency_prefix",
                "must not be empty: the claims would share Redis's top level with every other key",
            ));
        }
        if self.redis.legacy_key_enabled && self.redis.legacy_key.is_empty() {
            return Err(invalid(
                "redis.legacy_key",
                "must not be empty while legacy_key_enabled (to stop writing the list: \
                 legacy_key_enabled = false)",
            ));
        }
        if self.redis.idempotency_ttl_secs < self.redis.ttl_secs {
            return Err(invalid(
                "redis.idempotency_ttl_secs",
                "must be at least redis.ttl_secs: a contact_ref must be remembered as long as \
                 its call's notifications and record are, or a repeat would dial it again while \
                 its first call is still known",
            ));
        }
        if let Some((key, reason)) = self.redis.sentinel_problem() {
            return Err(invalid(key, &reason));
        }
        if let Some(reason) = self.redis.url_problem() {
            return Err(invalid("redis.url", &reason));
        }
        if self.redis.legacy_max_len == 0 {
            return Err(invalid(
                "redis.legacy_max_len",
                "must be at least 1 (to stop writing the list: legacy_key_enabled = false)",
            ));
        }
        // Redis's Lua reads numbers as doubles: exact up to 2^53.
        if self.redis.legacy_max_len > 1 << 53 {
            return Err(invalid("redis.legacy_max_len", "must be at most 2^53"));
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
        self.check_dialplan_and_policy()?;
        self.check_auth()?;
        self.pbx_sites()?;
        if let Some((key, reason)) = self.webhooks.problem() {
            return Err(ConfigError::Invalid { key, reason });
        }
        if !(1..=1_000_000).contains(&self.limits.max_calls_in_flight) {
            return Err(invalid(
                "limits.max_calls_in_flight",
                "must be between 1 and 1000000",
            ));
        }
        if self.http.max_connections == 0 || self.http.max_connections_per_peer == 0 {
            return Err(invalid(
                "http",
                "max_connections and max_connections_per_peer must be at least 1",
            ));
        }
        if !self.fastagi.listen.is_empty()
            && self.fastagi.listen.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(invalid(
                "fastagi.listen",
                "must be address:port (e.g. 127.0.0.1:4573), or empty to turn FastAGI off",
            ));
        }
        if self.fastagi.session_timeout_ms == 0 || self.fastagi.max_sessions == 0 {
            return Err(invalid(
                "fastagi",
                "session_timeout_ms and max_sessions must be at least 1",
            ));
        }
        Ok(())
    }

    /// `[dialplan]` and `[policy]`: core's check, the one the appliance's build runs, so
    /// both refuse the same values with the same message; the host's own names (the
    /// campaigns' context, the softphones' context and extension) are held to the same rule.
    fn check_dialplan_and_policy(&self) -> Result<(), ConfigError> {
        let policy = &self.policy;
        click2dial_core::config::check(
            &self.dialplan.names(),
            &policy.allowed_country_codes,
            &policy.denied_prefixes,
        )?;
        for (key, value) in [
            ("dialplan.tvc_context", &self.dialplan.tvc_context),
            ("fastagi.context", &self.fastagi.context),
            ("fastagi.extension", &self.fastagi.extension),
        ] {
            click2dial_core::config::check_name(key, value)?;
        }
        Ok(())
    }

    fn check_auth(&self) -> Result<(), ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            key: "auth.keys",
            reason,
        };
        let mut ids = std::collections::HashSet::new();
        let mut hashes = std::collections::HashSet::new();
        for key in &self.auth.keys {
            if key.id.is_empty()
                || key.id.len() > 64
                || !key
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            {
                return Err(invalid(format!(
                    "id {:?}: 1-64 of letters, digits, `.`, `_`, `-`",
                    key.id
                )));
            }
            if !ids.insert(key.id.as_str()) {
                return Err(invalid(format!("id {:?} is used twice", key.id)));
            }
            if keys::parse_hash(&key.hash).is_none() {
                return Err(invalid(format!(
                    "key {:?}: hash must be sha256:<64 hex digits> (click2dial-host hash-key)",
                    key.id
                )));
            }
            if !hashes.insert(key.hash.to_ascii_lowercase()) {
                return Err(invalid(format!("key {:?}: the same hash twice", key.id)));
            }
            if let Some(range) = &key.agents {
                if AgentRange::parse(range).is_none() {
                    return Err(invalid(format!(
                        "key {:?}: agents must be \"<first>-<last>\", 3-4 digit extensions",
                        key.id
                    )));
                }
            }
            if key.burst == Some(0) {
                return Err(invalid(format!(
                    "key {:?}: burst must be at least 1",
                    key.id
                )));
            }
            if key.outbound_ids.iter().any(|o| o.is_empty()) {
                return Err(invalid(format!("key {:?}: empty outbound_id", key.id)));
            }
            if let Some(problem) = key.webhook.as_ref().and_then(Endpoint::problem) {
                return Err(invalid(format!("key {:?}: {problem}", key.id)));
            }
            for scope in key.scopes.iter().flatten() {
                if keys::Scope::parse(scope).is_none() {
                    return Err(invalid(format!(
                        "key {:?}: unknown scope {scope:?} (calls:create, calls:read, \
                         recordings:read, metrics:read)",
                        key.id
                    )));
                }
            }
        }
        let owner = &self.fastagi.owner_key;
        if !owner.is_empty() && !self.auth.keys.iter().any(|k| &k.id == owner) {
            return Err(ConfigError::Invalid {
                key: "fastagi.owner_key",
                reason: format!("{owner:?} is not the id of a key in [[auth.keys]]"),
            });
        }
        Ok(())
    }

    /// The PBXes the host connects to: the `[[pbx]]` entries, or `[ami]` alone
    /// ([`pbxes::sites`]).
    pub fn pbx_sites(&self) -> Result<Vec<PbxSite>, ConfigError> {
        if !self.pbx.is_empty() && self.ami.address != Ami::default().address {
            return Err(ConfigError::Invalid {
                key: "ami.address",
                reason: "is not used with [[pbx]]: give each [[pbx]] entry its address".into(),
            });
        }
        let ami = pbxes::Login {
            address: &self.ami.address,
            username: &self.ami.username,
            secret: &self.ami.secret,
        };
        let fastagi = (!self.fastagi.listen.is_empty()).then_some(&*self.fastagi.allowed_peers);
        pbxes::sites(&self.pbx, &ami, fastagi)
            .map_err(|(key, reason)| ConfigError::Invalid { key, reason })
    }

    /// The configuration as TOML with secrets masked, for `check-config`.
    pub fn to_masked_toml(&self) -> String {
        let mut masked = self.clone();
        if !masked.ami.secret.is_empty() {
            masked.ami.secret = "********".into();
        }
        for entry in masked.pbx.iter_mut().filter(|e| !e.secret.is_empty()) {
            entry.secret = "********".into();
        }
        masked.redis.url = mask_url_password(&masked.redis.url);
        if !masked.redis.sentinels.is_empty() || !masked.redis.cluster.is_empty() {
            // Not used, and the output must load again.
            masked.redis.url.clear();
        }
        for node in &mut masked.redis.cluster {
            *node = mask_url_password(node);
        }
        for sentinel in &mut masked.redis.sentinels {
            *sentinel = mask_url_password(sentinel);
        }
        if !masked.redis.master_password.is_empty() {
            masked.redis.master_password = "********".into();
        }
        for key in &mut masked.auth.keys {
            // The hash is not a secret, but a shortened one is enough to tell keys apart.
            if let Some(short) = key.hash.get(..19) {
                key.hash = format!("{short}…");
            }
            for secret in key.webhook.iter_mut().flat_map(|w| w.secrets.iter_mut()) {
                *secret = format!("{}********", webhooks::SECRET_PREFIX);
            }
        }
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

impl Redis {
    /// What is wrong with the Sentinel keys, if anything: which key, and why.
    fn sentinel_problem(&self) -> Option<(&'static str, String)> {
        if !self.cluster.is_empty() {
            return self.cluster_problem();
        }
        if self.sentinels.is_empty() {
            let master_keys_set = !self.master_name.is_empty()
                || !self.master_username.is_empty()
                || !self.master_password.is_empty()
                || self.master_db != 0;
            return master_keys_set.then(|| {
                (
                    "redis.master_name",
                    "master_name, master_username, master_password and master_db are only for \
                     redis.sentinels (with redis.url, put them in the URL)"
                        .into(),
                )
            });
        }
        if self.master_name.is_empty() {
            return Some((
                "redis.master_name",
                "must be set with redis.sentinels: the name they monitor the master under".into(),
            ));
        }
        if let Some(bad) = self
            .sentinels
            .iter()
            .find(|s| redis::IntoConnectionInfo::into_connection_info(s.as_str()).is_err())
        {
            return Some((
                "redis.sentinels",
                format!(
                    "{:?} is not a sentinel URL (redis://host:port)",
                    mask_url_password(bad)
                ),
            ));
        }
        None
    }
}

impl Redis {
    /// What is wrong with `url`, if anything, when it is the one Redis used (no sentinels,
    /// no cluster): a URL the client cannot use would leave the host running without Redis.
    fn url_problem(&self) -> Option<String> {
        if !self.sentinels.is_empty() || !self.cluster.is_empty() {
            return None;
        }
        let error = redis::IntoConnectionInfo::into_connection_info(self.url.as_str()).err()?;
        Some(format!(
            "{:?} is not a Redis URL the host can use (redis://[user:password@]host:port[/db], \
             or a Unix socket: unix:///path/to/redis.sock[?db=N]): {error}",
            mask_url_password(&self.url)
        ))
    }

    /// What is wrong with `cluster` and the keys next to it, if anything.
    fn cluster_problem(&self) -> Option<(&'static str, String)> {
        if !self.sentinels.is_empty() {
            return Some((
                "redis.cluster",
                "not with redis.sentinels: give either a Redis Cluster's nodes (redis.cluster) \
                 or Sentinel's (redis.sentinels and redis.master_name)"
                    .into(),
            ));
        }
        if !self.master_name.is_empty()
            || !self.master_username.is_empty()
            || !self.master_password.is_empty()
            || self.master_db != 0
        {
            return Some((
                "redis.master_name",
                "master_name, master_username, master_password and master_db are only for \
                 redis.sentinels (with redis.cluster, put a user and password in the URLs)"
                    .into(),
            ));
        }
        if let Some(bad) = self.cluster.iter().find(|s| {
            redis::IntoConnectionInfo::into_connection_info(s.as_str())
                .map_or(true, |info| info.redis_settings().db() != 0)
        }) {
            return Some((
                "redis.cluster",
                format!(
                    "{:?} is not a cluster node's URL (redis://host:port, database 0)",
                    mask_url_password(bad)
                ),
            ));
        }
        if self.call_key_template.contains("{recording_ref}") {
            return Some((
                "redis.call_key_template",
                "with redis.cluster it may not contain {recording_ref}: a call's keys are \
                 tagged with its list's name, which a lookup by contact_ref must know"
                    .into(),
            ));
        }
        None
    }
}

fn toml_string(config: &Config) -> String {
    toml::to_string_pretty(config).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
}

/// `redis://user:secret@host` → `redis://user:********@host`; a Unix socket's
/// `unix:///path?pass=secret` → `unix:///path?pass=********`.
fn mask_url_password(url: &str) -> String {
    let unix = url
        .split_once("://")
        .is_some_and(|(scheme, _)| scheme.ends_with("unix"));
    if let Some((path, query)) = url.split_once('?').filter(|_| unix) {
        let masked: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some(("pass", _)) => "pass=********".to_string(),
                _ => pair.to_string(),
            })
            .collect();
        return format!("{path}?{}", masked.join("&"));
    }
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

#[cfg(test)]
mod tests {
    use super::mask_url_password;

    #[test]
    fn passwords_in_redis_urls_are_masked() {
        for (url, masked) in [
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("redis://u:s3cret@h:1/2", "redis://u:********@h:1/2"),
            ("redis://:s3cret@h:1", "redis://:********@h:1"),
            ("redis://u:pa?ss@h:1", "redis://u:********@h:1"),
            ("unix:///run/redis.sock", "unix:///run/redis.sock"),
            (
                "unix:///run/redis.sock?db=2&pass=s3cret",
                "unix:///run/redis.sock?db=2&pass=********",
            ),
            (
                "redis+unix:///r.sock?user=u&pass=s3cret",
                "redis+unix:///r.sock?user=u&pass=********",
            ),
        ] {
            assert_eq!(mask_url_password(url), masked, "{url}");
        }
    }
}
