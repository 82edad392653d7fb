//! Turns the appliance's TOML configuration into `$OUT_DIR/config.rs` (`config::BUILD`).
//!
//! The file is `$C2D_APPLIANCE_CONFIG` (each board's `.cargo/config.toml` sets it), else
//! `appliance.toml` beside this crate. Every value is checked here, so a flashed device never
//! starts with a configuration it cannot use: a bad file fails the build and names the key.
//! `[dialplan]` and `[policy]` go through `click2dial_core::config::check`, the check the
//! host's `check-config` runs, so both builds refuse the same values with the same message;
//! it runs here, at build time, so the image carries none of it.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

use click2dial_core::config::check_name;
use click2dial_core::originate::CalleeDigits;
use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct File {
    network: Network,
    http: Http,
    ami: Ami,
    dialplan: Dialplan,
    policy: Policy,
    idempotency: Idempotency,
    auth: Auth,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct Auth {
    /// `sha256:<64 hex digits>`, as the host's `[[auth.keys]] hash`.
    api_key_hash: Option<String>,
    /// The admin API's key, `sha256:<64 hex digits>`.
    admin_key_hash: Option<String>,
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Network {
    /// `dhcp` or `static`.
    mode: String,
    /// `a.b.c.d/len`, for `static`.
    address: Option<String>,
    gateway: Option<String>,
}

impl Default for Network {
    fn default() -> Self {
        Self {
            mode: "dhcp".into(),
            address: None,
            gateway: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Http {
    http_port: u16,
    request_timeout_ms: u32,
}

impl Default for Http {
    fn default() -> Self {
        Self {
            http_port: 80,
            request_timeout_ms: 5_000,
        }
    }
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Ami {
    address: String,
    username: String,
    secret: String,
    ping_interval_secs: u32,
    max_backoff_secs: u32,
}

impl Default for Ami {
    fn default() -> Self {
        Self {
            address: String::new(),
            username: "c2d".into(),
            secret: String::new(),
            ping_interval_secs: 20,
            max_backoff_secs: 30,
        }
    }
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Dialplan {
    agent_tech: String,
    outbound_context: String,
    direct_context: String,
    direct_channel: String,
    agent_ring_timeout_ms: u32,
    callee_digits: String,
}

impl Default for Dialplan {
    fn default() -> Self {
        Self {
            agent_tech: "PJSIP".into(),
            outbound_context: "c2d-outbound".into(),
            direct_context: "c2d-direct".into(),
            direct_channel: "Local/{callee}@c2d-single".into(),
            agent_ring_timeout_ms: 20_000,
            callee_digits: "as_given".into(),
        }
    }
}

/// What the file gives of `[policy]`; core's `DialPolicy::SOUTH_AFRICA` for the rest
/// ([`Policy::lists`], [`Policy::refuse_premium_rate`]).
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct Policy {
    allowed_country_codes: Option<Vec<String>>,
    refuse_premium_rate: Option<bool>,
    denied_prefixes: Option<Vec<String>>,
}

impl Policy {
    /// The allowed country codes and the denied prefixes.
    fn lists(&self) -> (Vec<&str>, Vec<&str>) {
        let default = click2dial_core::DialPolicy::SOUTH_AFRICA;
        fn or_default<'a>(
            given: &'a Option<Vec<String>>,
            default: &[&'static str],
        ) -> Vec<&'a str> {
            match given {
                Some(list) => list.iter().map(String::as_str).collect(),
                None => default.to_vec(),
            }
        }
        (
            or_default(&self.allowed_country_codes, default.allowed_country_codes),
            or_default(&self.denied_prefixes, default.denied_prefixes),
        )
    }

    fn refuse_premium_rate(&self) -> bool {
        self.refuse_premium_rate
            .unwrap_or(click2dial_core::DialPolicy::SOUTH_AFRICA.refuse_premium_rate)
    }
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Idempotency {
    ttl_secs: u32,
}

impl Default for Idempotency {
    fn default() -> Self {
        Self { ttl_secs: 86_400 }
    }
}

fn main() {
    println!("cargo::rerun-if-env-changed=C2D_APPLIANCE_CONFIG");
    let path = std::env::var_os("C2D_APPLIANCE_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"))
                .join("appliance.toml")
        });
    println!("cargo::rerun-if-changed={}", path.display());
    let out =
        std::path::Path::new(&std::env::var("OUT_DIR").expect("cargo sets it")).join("config.rs");
    match generate(&path) {
        Ok(source) => std::fs::write(&out, source).expect("write config.rs"),
        Err(message) => {
            println!(
                "cargo::error=appliance configuration {}: {message}",
                path.display()
            );
            std::process::exit(1);
        }
    }
}

/// The `config.rs` source for the file at `path`, or why the file cannot be used (the test
/// `tests/build_config.rs` calls it too).
pub(crate) fn generate(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot be read: {e}"))?;
    let file: File = toml::from_str(&text).map_err(|e| e.to_string().replace('\n', " "))?;
    let network = network(&file.network)?;

    if file.http.http_port == 0 {
        return Err("http.http_port: must be 1-65535".into());
    }
    if file.http.request_timeout_ms < 100 {
        return Err("http.request_timeout_ms: must be at least 100".into());
    }
    let ami: SocketAddrV4 = file.ami.address.parse().map_err(|_| {
        format!(
            "ami.address: {:?} is not an IPv4 address and port such as \"10.0.2.2:5038\"",
            file.ami.address
        )
    })?;
    if ami.port() == 0 {
        return Err("ami.address: the port must be 1-65535".into());
    }
    // The AMI credentials go into the fixed Login buffer: the same rule as dialplan names.
    check_name("ami.username", &file.ami.username).map_err(|e| e.to_string())?;
    check_name("ami.secret", &file.ami.secret).map_err(|e| e.to_string())?;
    if file.ami.ping_interval_secs == 0 {
        return Err("ami.ping_interval_secs: must be at least 1".into());
    }
    if file.ami.max_backoff_secs == 0 {
        return Err("ami.max_backoff_secs: must be at least 1".into());
    }
    let callee_digits =
        CalleeDigits::from_config(&file.dialplan.callee_digits).map_err(|e| e.to_string())?;
    // [dialplan] and [policy]: the host's check-config runs the same check.
    let d = &file.dialplan;
    let (allowed_country_codes, denied_prefixes) = file.policy.lists();
    click2dial_core::config::check(
        &click2dial_core::originate::Dialplan {
            agent_tech: &d.agent_tech,
            outbound_context: &d.outbound_context,
            direct_context: &d.direct_context,
            direct_channel: &d.direct_channel,
            ring_timeout_ms: d.agent_ring_timeout_ms,
            callee_digits,
        },
        &allowed_country_codes,
        &denied_prefixes,
    )
    .map_err(|e| e.to_string())?;
    if file.idempotency.ttl_secs == 0 {
        return Err("idempotency.ttl_secs: must be at least 1".into());
    }

    let hash = |key: &str, text: &Option<String>| match text {
        None => Ok(None),
        Some(text) => parse_hash(text).map(Some).ok_or(format!(
            "{key}: must be sha256:<64 hex digits> (click2dial-host hash-key)"
        )),
    };
    let api = hash("auth.api_key_hash", &file.auth.api_key_hash)?;
    let admin = hash("auth.admin_key_hash", &file.auth.admin_key_hash)?;
    if api.is_some() && api == admin {
        return Err("auth.api_key_hash: must not be the admin key's hash".into());
    }
    let api_key_hash = match api {
        None => "None".to_string(),
        Some(h) => format!("Some({h:?})"),
    };
    let admin_key_hash = match admin {
        None => "None".to_string(),
        Some(h) => format!("Some({h:?})"),
    };

    let mut s = String::new();
    let _ = writeln!(s, "/// The configuration this image was built with.");
    let _ = writeln!(s, "pub const BUILD: Config = Config {{");
    let _ = writeln!(s, "    network: {network},");
    let _ = writeln!(
        s,
        "    http: Http {{ http_port: {}, request_timeout_ms: {} }},",
        file.http.http_port, file.http.request_timeout_ms
    );
    let _ = writeln!(
        s,
        "    ami: Ami {{ address: {:?}, port: {}, username: {:?}, secret: {:?}, ping_interval_secs: {}, max_backoff_secs: {} }},",
        ami.ip().octets(),
        ami.port(),
        file.ami.username,
        file.ami.secret,
        file.ami.ping_interval_secs,
        file.ami.max_backoff_secs
    );
    let _ = writeln!(
        s,
        "    dialplan: Dialplan {{ agent_tech: {:?}, outbound_context: {:?}, direct_context: {:?}, direct_channel: {:?}, ring_timeout_ms: {}, callee_digits: CalleeDigits::{callee_digits:?} }},",
        d.agent_tech, d.outbound_context, d.direct_context, d.direct_channel, d.agent_ring_timeout_ms
    );
    let _ = writeln!(
        s,
        "    policy: DialPolicy {{ allowed_country_codes: &{:?}, refuse_premium_rate: {}, denied_prefixes: &{:?} }},",
        allowed_country_codes,
        file.policy.refuse_premium_rate(),
        denied_prefixes
    );
    let _ = writeln!(
        s,
        "    idempotency: Idempotency {{ ttl_secs: {} }},",
        file.idempotency.ttl_secs
    );
    let _ = writeln!(
        s,
        "    auth: Auth {{ api_key_hash: {api_key_hash}, admin_key_hash: {admin_key_hash} }},"
    );
    let _ = writeln!(s, "}};");
    Ok(s)
}

/// `sha256:<64 hex digits>` → the 32 bytes.
fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let hex = text.strip_prefix("sha256:")?;
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn network(n: &Network) -> Result<String, String> {
    match n.mode.as_str() {
        "dhcp" => {
            if n.address.is_some() || n.gateway.is_some() {
                return Err("network: address and gateway need mode = \"static\"".into());
            }
            Ok("Network::Dhcp".into())
        }
        "static" => {
            let cidr = n
                .address
                .as_deref()
                .ok_or("network.address: required for mode = \"static\" (e.g. \"10.0.2.15/24\")")?;
            let (ip, len) = cidr
                .split_once('/')
                .ok_or("network.address: write it as a.b.c.d/prefix, e.g. \"10.0.2.15/24\"")?;
            let ip: Ipv4Addr = ip
                .parse()
                .map_err(|_| format!("network.address: {ip:?} is not an IPv4 address"))?;
            let len: u8 = len
                .parse()
                .ok()
                .filter(|l| (1..=32).contains(l))
                .ok_or("network.address: the prefix length must be 1-32")?;
            let gateway = match &n.gateway {
                None => "None".to_string(),
                Some(g) => {
                    let g: Ipv4Addr = g
                        .parse()
                        .map_err(|_| format!("network.gateway: {g:?} is not an IPv4 address"))?;
                    format!("Some({:?})", g.octets())
                }
            };
            Ok(format!(
                "Network::Static {{ address: {:?}, prefix_len: {len}, gateway: {gateway} }}",
                ip.octets()
            ))
        }
        other => Err(format!(
            "network.mode: {other:?} is neither \"dhcp\" nor \"static\""
        )),
    }
}
