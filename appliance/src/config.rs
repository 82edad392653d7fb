//! The appliance's configuration: plain `'static` data, fixed when the image is built.
//!
//! `build.rs` reads the TOML file named by `C2D_APPLIANCE_CONFIG` (each board's
//! `.cargo/config.toml` points it at the board's `appliance.toml`), checks every value, and
//! turns it into [`BUILD`]. A bad file stops the build with a message naming the key.

use click2dial_core::DialPolicy;

/// Everything the appliance needs to know about its network, its PBX and its rules.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// How the device gets its IPv4 address.
    pub network: Network,
    /// The REST API.
    pub http: Http,
    /// The Asterisk Manager Interface.
    pub ami: Ami,
    /// How calls are placed.
    pub dialplan: Dialplan,
    /// The toll-fraud guard.
    pub policy: DialPolicy<'static>,
    /// How long a `contact_ref` is remembered.
    pub idempotency: Idempotency,
    /// Who may create calls.
    pub auth: Auth,
}

/// `[auth]`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Auth {
    /// SHA-256 of the API key `POST /click2dial/calls` requires (`Authorization: Bearer
    /// <key>`), written `sha256:<64 hex digits>` as the host's `[[auth.keys]] hash`; `None`:
    /// no key is required (a device on a closed network, as before keys existed here).
    pub api_key_hash: Option<[u8; 32]>,
    /// SHA-256 of the admin key the admin API requires (`/admin/*`): compiled in from
    /// `[auth] admin_key_hash`, or provisioned by the board (the QEMU board's provisioning
    /// page); never changed through the API. `None`: the admin API refuses every request.
    pub admin_key_hash: Option<[u8; 32]>,
}

/// `[network]`: DHCP, or a static address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// Ask a DHCP server.
    Dhcp,
    /// A fixed address.
    Static {
        /// IPv4 address.
        address: [u8; 4],
        /// Prefix length of the subnet, e.g. `24`.
        prefix_len: u8,
        /// Default gateway, if any.
        gateway: Option<[u8; 4]>,
    },
}

/// `[http]`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Http {
    /// TCP port of the REST API.
    pub http_port: u16,
    /// Longest time from a connection's accept to its answer, in milliseconds; a client
    /// slower than that is disconnected.
    pub request_timeout_ms: u32,
}

/// `[ami]`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ami {
    /// IPv4 address of Asterisk's manager interface.
    pub address: [u8; 4],
    /// Its TCP port.
    pub port: u16,
    /// `manager.conf` user.
    pub username: &'static str,
    /// `manager.conf` secret.
    pub secret: &'static str,
    /// Seconds between `Ping`s.
    pub ping_interval_secs: u32,
    /// Longest wait between reconnection attempts (the backoff doubles up to it).
    pub max_backoff_secs: u32,
}

pub use click2dial_core::originate::CalleeDigits;

/// `[dialplan]`, as the host's: core's Originate names, fixed at build time.
pub type Dialplan = click2dial_core::originate::Dialplan<'static>;

/// `[idempotency]`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Idempotency {
    /// How long a `contact_ref` is remembered, in seconds (the table is also bounded in size:
    /// the oldest entry makes room for a new one).
    pub ttl_secs: u32,
}

impl Config {
    /// The embassy-net configuration for [`Config::network`].
    pub fn net_config(&self) -> embassy_net::Config {
        match self.network {
            Network::Dhcp => embassy_net::Config::dhcpv4(Default::default()),
            Network::Static {
                address,
                prefix_len,
                gateway,
            } => embassy_net::Config::ipv4_static(embassy_net::StaticConfigV4 {
                address: embassy_net::Ipv4Cidr::new(address.into(), prefix_len),
                gateway: gateway.map(Into::into),
                dns_servers: Default::default(),
            }),
        }
    }
}

include!(concat!(env!("OUT_DIR"), "/config.rs"));
