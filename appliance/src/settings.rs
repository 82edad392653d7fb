//! The operator's configuration: what `PUT /admin/config` takes and flash keeps, read as
//! changes to the compiled-in (factory) [`Config`].
//!
//! The body is JSON with the TOML file's sections and keys:
//!
//! ```json
//! {"ami": {"address": "10.0.2.2:5038", "username": "c2d", "secret": "s3cret",
//!          "ping_interval_secs": 20, "max_backoff_secs": 30},
//!  "dialplan": {"agent_tech": "PJSIP", "outbound_context": "c2d-outbound",
//!               "direct_context": "c2d-direct", "direct_channel": "Local/{callee}@c2d-single",
//!               "agent_ring_timeout_ms": 20000, "callee_digits": "as_given"},
//!  "policy": {"allowed_country_codes": ["44"], "refuse_premium_rate": true,
//!             "denied_prefixes": []},
//!  "idempotency": {"ttl_secs": 86400},
//!  "auth": {"api_key_hash": "sha256:<64 hex digits>",
//!           "admin_key_hash": "sha256:<64 hex digits>"}}
//! ```
//!
//! Every key is optional: an absent key (or `null`) keeps the factory value. That holds for
//! `auth.admin_key_hash` too (the admin key is rotated from the next boot; a `PUT` without
//! it, or a factory reset, brings the provisioned key back): `GET /admin/config` shows it,
//! so a configuration read, changed and put back keeps it. `[network]` and
//! `[http]` are not changed this way (a wrong address would cut the device off the network
//! that could fix it). Values are checked as the host's `check-config` checks them
//! (`click2dial_core::config`): the same keys are refused with the same messages.
//!
//! Why core's small scanner (`click2dial_core::scan`, the create-call request's too) rather
//! than serde-json-core: the values are borrowed from the body (and, after a reboot, from the
//! copy read out of flash), so nothing is copied or allocated, and it costs a fraction of
//! serde's derive code in an image with a hard flash budget. As for the request, escapes are
//! not decoded: a string is taken as written between its
//! quotes, and every key's check refuses `\`, so an escape can never pass a check.

use click2dial_core::config::{check, check_name, ConfigError};
use click2dial_core::originate::{CalleeDigits, Dialplan};
use click2dial_core::scan::{is_whitespace, Scanner};
use click2dial_core::text::split_once;

use crate::config::Config;

/// The longest configuration body (and stored configuration), in bytes.
pub const MAX_SETTINGS_LEN: usize = 1024;
/// The most entries of a policy list.
pub const MAX_LIST_LEN: usize = 8;

/// A list of strings borrowed from the body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct List<'a> {
    items: [&'a str; MAX_LIST_LEN],
    len: usize,
}

impl<'a> List<'a> {
    /// The entries.
    pub fn as_slice(&self) -> &[&'a str] {
        self.items.get(..self.len).unwrap_or_default()
    }
}

/// The operator's values; `None` keeps the factory value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings<'a> {
    ami_address: Option<([u8; 4], u16)>,
    ami_username: Option<&'a str>,
    ami_secret: Option<&'a str>,
    ping_interval_secs: Option<u32>,
    max_backoff_secs: Option<u32>,
    agent_tech: Option<&'a str>,
    outbound_context: Option<&'a str>,
    direct_context: Option<&'a str>,
    direct_channel: Option<&'a str>,
    agent_ring_timeout_ms: Option<u32>,
    callee_digits: Option<CalleeDigits>,
    allowed_country_codes: Option<List<'a>>,
    refuse_premium_rate: Option<bool>,
    denied_prefixes: Option<List<'a>>,
    ttl_secs: Option<u32>,
    api_key_hash: Option<[u8; 32]>,
    admin_key_hash: Option<[u8; 32]>,
}

/// Why a configuration body is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not a well-formed JSON object: `400 malformed_json`.
    Json,
    /// A value that cannot be used: `422 invalid_config`, naming the key.
    Config(ConfigError),
}

impl From<ConfigError> for Refusal {
    fn from(e: ConfigError) -> Self {
        Self::Config(e)
    }
}

impl<'a> Settings<'a> {
    /// Reads and checks a configuration body against the factory configuration `base`.
    pub fn parse_checked(body: &'a [u8], base: &Config) -> Result<Self, Refusal> {
        let settings = Self::parse(body)?;
        settings.check(base)?;
        Ok(settings)
    }

    /// Reads a configuration body; each value is checked for its type and bounds.
    #[inline(never)]
    fn parse(body: &'a [u8]) -> Result<Self, Refusal> {
        let mut s = Self::default();
        let mut json = Scanner::new(body);
        json.eat(b'{').ok_or(Refusal::Json)?;
        let mut first = true;
        while let Some(section) = json.next_key(&mut first).ok_or(Refusal::Json)? {
            json.eat(b':').ok_or(Refusal::Json)?;
            let section = match section {
                "ami" => Section::Ami,
                "dialplan" => Section::Dialplan,
                "policy" => Section::Policy,
                "idempotency" => Section::Idempotency,
                "auth" => Section::Auth,
                _ => {
                    return Err(Refusal::Config(ConfigError::Form {
                        key: "(section)",
                        expected: "one of ami, dialplan, policy, idempotency, auth",
                    }))
                }
            };
            if json.peek() != Some(b'{') {
                return Err(value(&mut json).map_or(Refusal::Json, |_| {
                    Refusal::Config(ConfigError::Form {
                        key: section.name(),
                        expected: "an object",
                    })
                }));
            }
            json.eat(b'{').ok_or(Refusal::Json)?;
            let mut inner_first = true;
            while let Some(key) = json.next_key(&mut inner_first).ok_or(Refusal::Json)? {
                json.eat(b':').ok_or(Refusal::Json)?;
                let value = value(&mut json).ok_or(Refusal::Json)?;
                s.set(section, key, value)?;
            }
            json.eat(b'}').ok_or(Refusal::Json)?;
        }
        json.eat(b'}').ok_or(Refusal::Json)?;
        match json.peek() {
            None => Ok(s),
            Some(_) => Err(Refusal::Json),
        }
    }

    /// Not inlined: inside `parse` its sixteen arms cost 608 B more flash (measured).
    #[inline(never)]
    fn set(&mut self, section: Section, key: &str, value: Value<'a>) -> Result<(), ConfigError> {
        if value == Value::Null {
            return Ok(());
        }
        match (section, key) {
            (Section::Ami, "address") => {
                self.ami_address = Some(address(string("ami.address", value)?)?);
            }
            (Section::Ami, "username") => {
                self.ami_username = Some(string("ami.username", value)?);
            }
            (Section::Ami, "secret") => self.ami_secret = Some(string("ami.secret", value)?),
            (Section::Ami, "ping_interval_secs") => {
                self.ping_interval_secs = Some(number("ami.ping_interval_secs", value, 1)?);
            }
            (Section::Ami, "max_backoff_secs") => {
                self.max_backoff_secs = Some(number("ami.max_backoff_secs", value, 1)?);
            }
            (Section::Dialplan, "agent_tech") => {
                self.agent_tech = Some(string("dialplan.agent_tech", value)?);
            }
            (Section::Dialplan, "outbound_context") => {
                self.outbound_context = Some(string("dialplan.outbound_context", value)?);
            }
            (Section::Dialplan, "direct_context") => {
                self.direct_context = Some(string("dialplan.direct_context", value)?);
            }
            (Section::Dialplan, "direct_channel") => {
                self.direct_channel = Some(string("dialplan.direct_channel", value)?);
            }
            (Section::Dialplan, "agent_ring_timeout_ms") => {
                // The range is core's check's, in `check`.
                self.agent_ring_timeout_ms =
                    Some(number("dialplan.agent_ring_timeout_ms", value, 0)?);
            }
            (Section::Dialplan, "callee_digits") => {
                let name = string("dialplan.callee_digits", value)?;
                self.callee_digits = Some(CalleeDigits::from_config(name)?);
            }
            (Section::Policy, "allowed_country_codes") => {
                self.allowed_country_codes = Some(list("policy.allowed_country_codes", value)?);
            }
            (Section::Policy, "refuse_premium_rate") => match value {
                Value::Bool(b) => self.refuse_premium_rate = Some(b),
                _ => {
                    return Err(ConfigError::Form {
                        key: "policy.refuse_premium_rate",
                        expected: "true or false",
                    })
                }
            },
            (Section::Policy, "denied_prefixes") => {
                self.denied_prefixes = Some(list("policy.denied_prefixes", value)?);
            }
            (Section::Idempotency, "ttl_secs") => {
                self.ttl_secs = Some(number("idempotency.ttl_secs", value, 1)?);
            }
            (Section::Auth, "api_key_hash") => {
                self.api_key_hash = Some(hash("auth.api_key_hash", value)?);
            }
            (Section::Auth, "admin_key_hash") => {
                self.admin_key_hash = Some(hash("auth.admin_key_hash", value)?);
            }
            (section, _) => {
                return Err(ConfigError::Form {
                    key: section.name(),
                    expected: section.keys(),
                })
            }
        }
        Ok(())
    }

    /// The dialplan these settings make of `d`.
    fn dialplan<'s>(&'s self, d: &Dialplan<'s>) -> Dialplan<'s> {
        Dialplan {
            agent_tech: self.agent_tech.unwrap_or(d.agent_tech),
            outbound_context: self.outbound_context.unwrap_or(d.outbound_context),
            direct_context: self.direct_context.unwrap_or(d.direct_context),
            direct_channel: self.direct_channel.unwrap_or(d.direct_channel),
            ring_timeout_ms: self.agent_ring_timeout_ms.unwrap_or(d.ring_timeout_ms),
            callee_digits: self.callee_digits.unwrap_or(d.callee_digits),
        }
    }

    /// The check of the whole result, as the host's `check-config` and the build script run
    /// it: the AMI credentials by core's name rule, then core's `[dialplan]` and `[policy]`
    /// check.
    fn check(&self, base: &Config) -> Result<(), ConfigError> {
        // The keys the device would run with must differ: the call API's key would open
        // the admin API.
        let admin = self.admin_key_hash.or(base.auth.admin_key_hash);
        let api = self.api_key_hash.or(base.auth.api_key_hash);
        if self.admin_key_hash.is_some() && admin == api {
            return Err(ConfigError::Form {
                key: "auth.admin_key_hash",
                expected: "the hash of a key other than the API key",
            });
        }
        if self.api_key_hash.is_some() && api == admin {
            return Err(ConfigError::Form {
                key: "auth.api_key_hash",
                expected: "the hash of a key other than the admin key",
            });
        }
        check_name(
            "ami.username",
            self.ami_username.unwrap_or(base.ami.username),
        )?;
        check_name("ami.secret", self.ami_secret.unwrap_or(base.ami.secret))?;
        let codes = self.allowed_country_codes.as_ref();
        let prefixes = self.denied_prefixes.as_ref();
        check(
            &self.dialplan(&base.dialplan),
            codes.map_or(base.policy.allowed_country_codes, List::as_slice),
            prefixes.map_or(base.policy.denied_prefixes, List::as_slice),
        )
    }
}

impl Settings<'static> {
    /// `base` with these (checked) settings applied.
    pub fn apply(&'static self, base: Config) -> Config {
        let mut c = base;
        if let Some((address, port)) = self.ami_address {
            c.ami.address = address;
            c.ami.port = port;
        }
        let a = &mut c.ami;
        a.username = self.ami_username.unwrap_or(a.username);
        a.secret = self.ami_secret.unwrap_or(a.secret);
        a.ping_interval_secs = self.ping_interval_secs.unwrap_or(a.ping_interval_secs);
        a.max_backoff_secs = self.max_backoff_secs.unwrap_or(a.max_backoff_secs);
        c.dialplan = self.dialplan(&base.dialplan);
        let p = &mut c.policy;
        if let Some(list) = &self.allowed_country_codes {
            p.allowed_country_codes = list.as_slice();
        }
        p.refuse_premium_rate = self.refuse_premium_rate.unwrap_or(p.refuse_premium_rate);
        if let Some(list) = &self.denied_prefixes {
            p.denied_prefixes = list.as_slice();
        }
        c.idempotency.ttl_secs = self.ttl_secs.unwrap_or(c.idempotency.ttl_secs);
        if self.api_key_hash.is_some() {
            c.auth.api_key_hash = self.api_key_hash;
        }
        if self.admin_key_hash.is_some() {
            c.auth.admin_key_hash = self.admin_key_hash;
        }
        c
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    Ami,
    Dialplan,
    Policy,
    Idempotency,
    Auth,
}

impl Section {
    fn name(self) -> &'static str {
        match self {
            Self::Ami => "ami",
            Self::Dialplan => "dialplan",
            Self::Policy => "policy",
            Self::Idempotency => "idempotency",
            Self::Auth => "auth",
        }
    }

    /// What an unknown key in the section is told.
    fn keys(self) -> &'static str {
        match self {
            Self::Ami => {
                "an object of address, username, secret, ping_interval_secs, max_backoff_secs"
            }
            Self::Dialplan => {
                "an object of agent_tech, outbound_context, direct_context, direct_channel, \
                 agent_ring_timeout_ms, callee_digits"
            }
            Self::Policy => {
                "an object of allowed_country_codes, refuse_premium_rate, denied_prefixes"
            }
            Self::Idempotency => "an object of ttl_secs",
            Self::Auth => "an object of api_key_hash, admin_key_hash",
        }
    }
}

/// The hash of a key, `key`'s value.
fn hash(key: &'static str, value: Value<'_>) -> Result<[u8; 32], ConfigError> {
    parse_hash(string(key, value)?).ok_or(ConfigError::Form {
        key,
        expected: "sha256:<64 hex digits>",
    })
}

/// `sha256:<64 hex digits>` (either case) → the 32 bytes, as the host reads a key's hash.
pub fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let hex = text.strip_prefix("sha256:")?.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let digit = |b: u8| char::from(b).to_digit(16);
        let (hi, lo) = (digit(*pair.first()?)?, digit(*pair.get(1)?)?);
        *byte = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

fn string<'a>(key: &'static str, value: Value<'a>) -> Result<&'a str, ConfigError> {
    match value {
        Value::Str(s) => Ok(s),
        _ => Err(ConfigError::Form {
            key,
            expected: "a string",
        }),
    }
}

/// A whole number from `min` to `u32::MAX`.
fn number(key: &'static str, value: Value<'_>, min: u32) -> Result<u32, ConfigError> {
    let Value::Number(token) = value else {
        return Err(ConfigError::Form {
            key,
            expected: "a whole number",
        });
    };
    if !token.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ConfigError::Form {
            key,
            expected: "a whole number",
        });
    }
    digits_u32(token)
        .filter(|&n| n >= min)
        .ok_or(ConfigError::OutOfRange {
            key,
            min,
            max: u32::MAX,
        })
}

fn list<'a>(key: &'static str, value: Value<'a>) -> Result<List<'a>, ConfigError> {
    match value {
        Value::List(list) => Ok(list),
        _ => Err(ConfigError::Form {
            key,
            expected: "a list of at most 8 strings",
        }),
    }
}

/// `a.b.c.d:port`, as the build script reads `ami.address`.
fn address(text: &str) -> Result<([u8; 4], u16), ConfigError> {
    let bad = ConfigError::Form {
        key: "ami.address",
        expected: "an IPv4 address and port such as \"10.0.2.2:5038\"",
    };
    let (mut ip, port) = split_once(text, b':').ok_or(bad)?;
    let mut octets = [0u8; 4];
    for (i, octet) in octets.iter_mut().enumerate() {
        // The last octet is the rest: a fifth part leaves a '.' in it, which `decimal` refuses.
        let part = match split_once(ip, b'.') {
            Some((part, rest)) if i < 3 => {
                ip = rest;
                part
            }
            _ if i == 3 => ip,
            _ => return Err(bad),
        };
        *octet = decimal(part).ok_or(bad)?;
    }
    let port: u16 = decimal(port).ok_or(bad)?;
    if port == 0 {
        return Err(bad);
    }
    Ok((octets, port))
}

/// 1 to 5 decimal digits, without a leading zero (as `Ipv4Addr` reads an octet).
fn decimal<T: TryFrom<u32>>(text: &str) -> Option<T> {
    let ok = !text.is_empty()
        && text.len() <= 5
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text.len() == 1 || !text.starts_with('0'));
    ok.then(|| digits_u32(text))
        .flatten()
        .and_then(|n| T::try_from(n).ok())
}

/// The value of a run of ASCII digits; `None` when it is empty, has anything but digits or
/// is over `u32::MAX` (what `str::parse::<u32>` says of digits, without its code).
fn digits_u32(text: &str) -> Option<u32> {
    if text.is_empty() {
        return None;
    }
    text.bytes().try_fold(0u32, |n, b| {
        let digit = b.checked_sub(b'0').filter(|d| *d < 10)?;
        n.checked_mul(10)?.checked_add(digit.into())
    })
}

/// A member's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Value<'a> {
    Str(&'a str),
    /// A JSON number's token.
    Number(&'a str),
    Bool(bool),
    Null,
    /// An array of strings (at most [`MAX_LIST_LEN`]).
    List(List<'a>),
    /// Anything else (an object, a longer array, an array of non-strings).
    Other,
}

/// A value: strings, numbers, booleans and `null`; an array of strings; an object or any
/// other array is skipped as [`Value::Other`] (one level of nesting at most).
fn value<'a>(s: &mut Scanner<'a>) -> Option<Value<'a>> {
    match s.peek()? {
        b'"' => s.string().map(Value::Str),
        b'[' => array(s),
        b'{' => {
            s.advance();
            let mut first = true;
            while s.next_key(&mut first)?.is_some() {
                s.eat(b':')?;
                scalar_or_string(s)?;
            }
            s.eat(b'}').map(|()| Value::Other)
        }
        _ => scalar(s),
    }
}

fn array<'a>(s: &mut Scanner<'a>) -> Option<Value<'a>> {
    s.eat(b'[')?;
    let mut list = List::default();
    let mut strings = true;
    let mut first = true;
    loop {
        match s.peek()? {
            b']' => break,
            b',' if !first => s.advance(),
            _ if first => {}
            _ => return None,
        }
        first = false;
        match scalar_or_string(s)? {
            Value::Str(text) if strings => match list.items.get_mut(list.len) {
                Some(slot) => {
                    *slot = text;
                    list.len = list.len.saturating_add(1);
                }
                None => strings = false,
            },
            _ => strings = false,
        }
    }
    s.eat(b']')?;
    Some(if strings {
        Value::List(list)
    } else {
        Value::Other
    })
}

fn scalar_or_string<'a>(s: &mut Scanner<'a>) -> Option<Value<'a>> {
    match s.peek()? {
        b'"' => s.string().map(Value::Str),
        _ => scalar(s),
    }
}

/// `true`, `false`, `null` or a number, up to the `,` `}` `]` or blank after it.
fn scalar<'a>(s: &mut Scanner<'a>) -> Option<Value<'a>> {
    let token = s.token(|b| matches!(b, b',' | b'}' | b']') || is_whitespace(b))?;
    let token = core::str::from_utf8(token).ok()?;
    match token {
        "true" => Some(Value::Bool(true)),
        "false" => Some(Value::Bool(false)),
        "null" => Some(Value::Null),
        _ if token
            .as_bytes()
            .first()
            .is_some_and(|&b| b == b'-' || b.is_ascii_digit()) =>
        {
            Some(Value::Number(token))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BUILD;
    use std::format;
    use std::string::ToString;

    fn refusal(body: &str) -> Refusal {
        Settings::parse_checked(body.as_bytes(), &BUILD).unwrap_err()
    }

    fn config_error(body: &str) -> std::string::String {
        match refusal(body) {
            Refusal::Config(e) => e.to_string(),
            Refusal::Json => panic!("{body}: malformed"),
        }
    }

    #[test]
    fn a_full_body_changes_every_value() {
        let body = br#" {"ami": {"address": "192.168.7.9:5039", "username": "ops", "secret": "n3w",
            "ping_interval_secs": 7, "max_backoff_secs": 9},
          "dialplan": {"agent_tech": "SIP", "outbound_context": "out", "direct_context": "dir",
            "direct_channel": "PJSIP/{callee}@trunk", "agent_ring_timeout_ms": 15000,
            "callee_digits": "e164"},
          "policy": {"allowed_country_codes": ["44", "1"], "refuse_premium_rate": false,
            "denied_prefixes": ["2787"]},
          "idempotency": {"ttl_secs": 60},
          "auth": {"api_key_hash": "sha256:00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF"}} "#;
        let settings: &'static Settings<'static> = std::boxed::Box::leak(std::boxed::Box::new(
            Settings::parse_checked(body, &BUILD).unwrap(),
        ));
        let c = settings.apply(BUILD);
        assert_eq!((c.ami.address, c.ami.port), ([192, 168, 7, 9], 5039));
        assert_eq!((c.ami.username, c.ami.secret), ("ops", "n3w"));
        assert_eq!((c.ami.ping_interval_secs, c.ami.max_backoff_secs), (7, 9));
        assert_eq!(c.dialplan.agent_tech, "SIP");
        assert_eq!(c.dialplan.direct_channel, "PJSIP/{callee}@trunk");
        assert_eq!(c.dialplan.ring_timeout_ms, 15000);
        assert_eq!(c.dialplan.callee_digits, CalleeDigits::E164);
        assert_eq!(c.policy.allowed_country_codes, &["44", "1"]);
        assert!(!c.policy.refuse_premium_rate);
        assert_eq!(c.policy.denied_prefixes, &["2787"]);
        assert_eq!(c.idempotency.ttl_secs, 60);
        let hash = c.auth.api_key_hash.unwrap();
        assert_eq!((hash[0], hash[1], hash[31]), (0x00, 0x11, 0xff));
    }

    const HASH_A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const HASH_B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    /// `BUILD` with an admin key provisioned (hash A) and no API key.
    fn provisioned() -> Config {
        let mut c = BUILD;
        c.auth.admin_key_hash = parse_hash(HASH_A);
        c
    }

    #[test]
    fn the_admin_key_is_rotated_and_never_equals_the_api_key() {
        let base = provisioned();
        let body = format!(r#"{{"auth":{{"admin_key_hash":"{HASH_B}"}}}}"#);
        let settings: &'static Settings<'static> = std::boxed::Box::leak(std::boxed::Box::new(
            Settings::parse_checked(
                std::boxed::Box::leak(body.into_bytes().into_boxed_slice()),
                &base,
            )
            .unwrap(),
        ));
        let c = settings.apply(base);
        assert_eq!(c.auth.admin_key_hash, parse_hash(HASH_B));
        assert_eq!(c.auth.api_key_hash, None);
        // Absent: the provisioned key stays.
        let kept = Settings::parse_checked(br#"{"auth":{}}"#, &base).unwrap();
        assert_eq!(kept, Settings::default());
        let refused =
            |body: std::string::String| match Settings::parse_checked(body.as_bytes(), &base) {
                Err(Refusal::Config(e)) => e.to_string(),
                other => panic!("{body}: {other:?}"),
            };
        // One key for both, whichever way it would come about.
        assert_eq!(
            refused(format!(r#"{{"auth":{{"api_key_hash":"{HASH_A}"}}}}"#)),
            "invalid value for `auth.api_key_hash`: must be the hash of a key other than the admin key"
        );
        assert_eq!(
            refused(format!(r#"{{"auth":{{"api_key_hash":"{HASH_B}","admin_key_hash":"{HASH_B}"}}}}"#)),
            "invalid value for `auth.admin_key_hash`: must be the hash of a key other than the API key"
        );
        let mut with_api = base;
        with_api.auth.api_key_hash = parse_hash(HASH_B);
        assert!(matches!(
            Settings::parse_checked(
                format!(r#"{{"auth":{{"admin_key_hash":"{HASH_B}"}}}}"#).as_bytes(),
                &with_api
            ),
            Err(Refusal::Config(ConfigError::Form {
                key: "auth.admin_key_hash",
                ..
            }))
        ));
        // Swapping the two keys in one body is fine.
        assert!(Settings::parse_checked(
            format!(r#"{{"auth":{{"api_key_hash":"{HASH_A}","admin_key_hash":"{HASH_B}"}}}}"#)
                .as_bytes(),
            &base
        )
        .is_ok());
        assert_eq!(
            refused(r#"{"auth":{"admin_key_hash":"sha256:xyz"}}"#.into()),
            "invalid value for `auth.admin_key_hash`: must be sha256:<64 hex digits>"
        );
        assert_eq!(
            refused(r#"{"auth":{"root_key_hash":"x"}}"#.into()),
            "invalid value for `auth`: must be an object of api_key_hash, admin_key_hash"
        );
    }

    #[test]
    fn absent_and_null_keep_the_factory_values() {
        for body in [
            "{}",
            r#"{"ami":{}}"#,
            r#"{"ami":{"secret":null},"policy":{"denied_prefixes":null}}"#,
        ] {
            let s = Settings::parse_checked(body.as_bytes(), &BUILD).unwrap();
            assert_eq!(s, Settings::default(), "{body}");
        }
    }

    /// The same mistakes the host's `check-config` refuses, with its messages (core's).
    #[test]
    fn bad_values_are_refused_with_the_hosts_message() {
        for (body, message) in [
            (
                r#"{"dialplan":{"direct_channel":"Local/c2d-single"}}"#,
                "invalid value for `dialplan.direct_channel`: must be <tech>/<resource> with {callee} in the resource, e.g. Local/{callee}@c2d-single",
            ),
            (
                r#"{"dialplan":{"agent_ring_timeout_ms":999}}"#,
                "invalid value for `dialplan.agent_ring_timeout_ms`: must be 1000-3600000",
            ),
            (
                r#"{"dialplan":{"outbound_context":"c2d outbound"}}"#,
                "invalid value for `dialplan.outbound_context`: only printable ASCII without blanks, and none of , \" \\",
            ),
            (
                r#"{"dialplan":{"agent_tech":"PJ\"SIP"}}"#,
                "invalid value for `dialplan.agent_tech`: only printable ASCII without blanks, and none of , \" \\",
            ),
            (
                r#"{"policy":{"allowed_country_codes":["44","+1"]}}"#,
                "invalid value for `policy.allowed_country_codes[1]`: must be 1-3 digits",
            ),
            (
                r#"{"policy":{"denied_prefixes":[""]}}"#,
                "invalid value for `policy.denied_prefixes[0]`: must be 1-15 digits",
            ),
            (
                r#"{"dialplan":{"callee_digits":"E164"}}"#,
                "invalid value for `dialplan.callee_digits`: must be \"as_given\" or \"e164\"",
            ),
            (
                r#"{"ami":{"secret":""}}"#,
                "invalid value for `ami.secret`: must not be empty",
            ),
            (
                r#"{"ami":{"address":"10.0.2.2"}}"#,
                "invalid value for `ami.address`: must be an IPv4 address and port such as \"10.0.2.2:5038\"",
            ),
            (
                r#"{"ami":{"ping_interval_secs":0}}"#,
                "invalid value for `ami.ping_interval_secs`: must be 1-4294967295",
            ),
            (
                r#"{"ami":{"port":5038}}"#,
                "invalid value for `ami`: must be an object of address, username, secret, ping_interval_secs, max_backoff_secs",
            ),
            (
                r#"{"network":{}}"#,
                "invalid value for `(section)`: must be one of ami, dialplan, policy, idempotency, auth",
            ),
            (
                r#"{"auth":{"api_key_hash":"sha256:00"}}"#,
                "invalid value for `auth.api_key_hash`: must be sha256:<64 hex digits>",
            ),
            (
                r#"{"policy":{"refuse_premium_rate":"yes"}}"#,
                "invalid value for `policy.refuse_premium_rate`: must be true or false",
            ),
            (
                r#"{"idempotency":{"ttl_secs":-1}}"#,
                "invalid value for `idempotency.ttl_secs`: must be a whole number",
            ),
            (
                r#"{"policy":{"denied_prefixes":["1","2","3","4","5","6","7","8","9"]}}"#,
                "invalid value for `policy.denied_prefixes`: must be a list of at most 8 strings",
            ),
            (
                r#"{"ami":[]}"#,
                "invalid value for `ami`: must be an object",
            ),
        ] {
            assert_eq!(config_error(body), message, "{body}");
        }
    }

    #[test]
    fn malformed_bodies() {
        for body in [
            "",
            "[]",
            "{",
            r#"{"ami":{"secret":"x"}"#,
            r#"{"ami":{"secret":"x"}}}"#,
            r#"{"ami":{"secret":"x",}}"#,
            r#"{"ami":{"secret":x}}"#,
            r#"{"ami" {}}"#,
            r#"{"ami":{"secret":"x"}} x"#,
            r#"{"policy":{"denied_prefixes":["1",]}}"#,
        ] {
            assert_eq!(
                Settings::parse_checked(body.as_bytes(), &BUILD),
                Err(Refusal::Json),
                "{body}"
            );
        }
    }

    #[test]
    fn not_utf8() {
        assert_eq!(
            Settings::parse_checked(b"{\"ami\":{\"secret\":\"\xff\"}}", &BUILD),
            Err(Refusal::Json)
        );
    }

    #[test]
    fn addresses() {
        assert_eq!(address("10.0.2.2:5038"), Ok(([10, 0, 2, 2], 5038)));
        assert_eq!(address("255.255.255.255:65535"), Ok(([255; 4], 65535)));
        for bad in [
            "10.0.2.2:0",
            "10.0.2:5038",
            "10.0.2.2.1:5038",
            "256.0.0.1:5038",
            "10.0.2.2:65536",
            "10.0.02.2:5038",
            "10.0.2.2:",
            ":5038",
            "a.b.c.d:1",
        ] {
            assert!(address(bad).is_err(), "{bad}");
        }
    }
}
