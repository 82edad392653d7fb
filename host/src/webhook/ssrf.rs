//! Which addresses a webhook may reach. Unless `[webhooks] allow_private_targets` is on,
//! only public unicast addresses are: a target that is (or whose name resolves to)
//! loopback, private, link-local, shared (CGNAT), multicast, documentation or otherwise
//! reserved space is refused before any connection is made, so a key's endpoint cannot
//! reach the PBX, Redis or a cloud metadata service next to the host.
//!
//! The check is made on the addresses the connection uses — the HTTP client resolves names
//! through [`Guard`] — so a name that resolves to a public address when checked and to a
//! private one when connecting (DNS rebinding) is refused too.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// Whether `ip` is a public unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            // NAT64 (64:ff9b::/96) carries an IPv4 address.
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return is_public_v4(Ipv4Addr::new(a, b, c, d));
            }
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || s[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible (deprecated)
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0 // "this network"
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || (a == 100 && (b & 0xc0) == 64) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || (a == 198 && (b & 0xfe) == 18) // benchmarking
        || a >= 224) // multicast, reserved, broadcast
}

/// Why a target is refused.
pub fn refusal(ip: IpAddr) -> String {
    format!(
        "target address {ip} is not public (loopback, private, link-local or reserved); \
         refused unless [webhooks] allow_private_targets is on"
    )
}

/// The HTTP client's resolver: the system's, keeping only the addresses allowed.
#[derive(Clone, Debug)]
pub struct Guard {
    /// `[webhooks] allow_private_targets`.
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for Guard {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if allowed.is_empty() {
                let reason = match found.first() {
                    Some(a) => refusal(a.ip()),
                    None => format!("{host} resolves to no address"),
                };
                return Err(reason.into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

impl Guard {
    /// The resolver, as the client builder takes it.
    pub fn shared(self) -> Arc<Self> {
        Arc::new(self)
    }

    /// Refuses a URL whose host is an address literal that is not allowed (names are
    /// checked when resolved).
    pub fn check_literal(&self, url: &reqwest::Url) -> Result<(), String> {
        if self.allow_private {
            return Ok(());
        }
        let ip = match url.host() {
            Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
            _ => return Ok(()),
        };
        if is_public(ip) {
            Ok(())
        } else {
            Err(refusal(ip))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(text: &str) -> IpAddr {
        IpAddr::V6(text.parse::<std::net::Ipv6Addr>().unwrap())
    }

    #[test]
    fn only_public_unicast_addresses_are_public() {
        for refused in [
            "0.0.0.0",
            "127.0.0.1",
            "127.1.2.3",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!is_public(refused.parse().unwrap()), "{refused}");
        }
        for allowed in ["8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1"] {
            assert!(is_public(allowed.parse().unwrap()), "{allowed}");
        }
        for refused in [
            "::",
            "::1",
            "fe80::1",
            "fd00::1",
            "fc00::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(!is_public(v6(refused)), "{refused}");
        }
        assert!(is_public(v6("2606:4700:4700::1111")));
        assert!(is_public(v6("::ffff:8.8.8.8")));
    }

    #[test]
    fn literals_are_checked_unless_allowed() {
        let guard = Guard {
            allow_private: false,
        };
        let url = |u: &str| reqwest::Url::parse(u).unwrap();
        assert!(guard.check_literal(&url("http://127.0.0.1:9/")).is_err());
        assert!(guard.check_literal(&url("http://[::1]:9/")).is_err());
        assert!(guard.check_literal(&url("http://8.8.8.8/")).is_ok());
        assert!(guard.check_literal(&url("http://example.com/")).is_ok());
        let open = Guard {
            allow_private: true,
        };
        assert!(open.check_literal(&url("http://127.0.0.1:9/")).is_ok());
    }
}
