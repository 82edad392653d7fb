//! `[[pbx]]`: several PBXes, each with its AMI login and the agents it serves, and the
//! one check of them. Without `[[pbx]]`, `[ami]` is the one PBX, serving every agent.
//!
//! ```toml
//! [[pbx]]
//! name = "east"
//! address = "10.0.0.5:5038"
//! secret = "…"                      # username/secret default to [ami]'s
//! agents = ["1000-1999", "2500"]    # ranges ("<first>-<last>") or single extensions
//!
//! [[pbx]]
//! name = "west"
//! address = "10.0.0.6:5038"
//! agents = ["2000-2499"]
//! default = true                    # serves every agent no entry lists (and one-leg calls)
//! ```

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::agents::Agents;

/// The name of the one PBX of a configuration without `[[pbx]]` (the `pbx` label of its
/// metrics).
pub const IMPLICIT_NAME: &str = "default";

/// One `[[pbx]]` entry.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PbxEntry {
    /// A name for `/readyz`, the `pbx` label of the metrics and the log: 1–32 of letters,
    /// digits, `.`, `_`, `-`.
    pub name: String,
    /// `host:port` of its manager interface.
    pub address: String,
    /// `manager.conf` user; empty: `[ami] username`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// Its secret; empty: `[ami] secret`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub secret: String,
    /// The agents it serves: ranges `"<first>-<last>"` (as `[[auth.keys]] agents`) or
    /// single extensions (`"2500"`).
    pub agents: Vec<String>,
    /// Serves every agent no entry lists, and one-leg calls (whose agent is a phone number).
    pub default: bool,
    /// Addresses its FastAGI sessions come from; empty: the IP address of `address`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fastagi_peers: Vec<IpAddr>,
}

/// One PBX as the host runs it: `[[pbx]]` entries, or `[ami]` alone.
#[derive(Clone, Debug, PartialEq)]
pub struct PbxSite {
    /// Its name (`default` for `[ami]` alone).
    pub name: String,
    /// `host:port` of its manager interface.
    pub address: String,
    /// `manager.conf` user.
    pub username: String,
    /// Its secret.
    pub secret: String,
    /// The agents it serves.
    pub agents: Agents,
    /// Serves every agent no other PBX lists.
    pub default: bool,
    /// Addresses its FastAGI sessions may come from.
    pub fastagi_peers: Vec<IpAddr>,
}

/// The `[ami]` login: the one PBX without `[[pbx]]`, and the username and secret of
/// entries without their own.
#[derive(Clone, Copy, Debug)]
pub struct Login<'a> {
    /// `[ami] address`.
    pub address: &'a str,
    /// `[ami] username`.
    pub username: &'a str,
    /// `[ami] secret`.
    pub secret: &'a str,
}

/// A refused configuration: the key and what is wrong (naming the entry).
pub type Invalid = (&'static str, String);

/// The PBXes of a configuration, checked: `[[pbx]]`, or `ami` as the one default PBX.
/// `fastagi`: with FastAGI on, `[fastagi] allowed_peers` (the one PBX's peers without
/// `[[pbx]]`); `None` with it off.
pub fn sites(
    entries: &[PbxEntry],
    ami: &Login<'_>,
    fastagi: Option<&[IpAddr]>,
) -> Result<Vec<PbxSite>, Invalid> {
    if entries.is_empty() {
        if let Some(reason) = address_problem(ami.address) {
            return Err(("ami.address", reason));
        }
        if let Some(reason) = login_problem(ami.username, ami.secret) {
            return Err(reason);
        }
        return Ok(vec![PbxSite {
            name: IMPLICIT_NAME.into(),
            address: ami.address.into(),
            username: ami.username.into(),
            secret: ami.secret.into(),
            agents: Agents::default(),
            default: true,
            fastagi_peers: fastagi.unwrap_or_default().to_vec(),
        }]);
    }
    let mut sites: Vec<PbxSite> = Vec::with_capacity(entries.len());
    for entry in entries {
        sites.push(site(entry, ami, fastagi.is_some(), &sites)?);
    }
    Ok(sites)
}

/// One entry, checked against itself and the entries before it.
fn site(
    entry: &PbxEntry,
    ami: &Login<'_>,
    fastagi_on: bool,
    before: &[PbxSite],
) -> Result<PbxSite, Invalid> {
    let name = &entry.name;
    if name.is_empty()
        || name.len() > 32
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err((
            "pbx.name",
            format!("{name:?}: 1-32 of letters, digits, `.`, `_`, `-`"),
        ));
    }
    if before.iter().any(|s| &s.name == name) {
        return Err(("pbx.name", format!("{name:?} is used twice")));
    }
    if let Some(reason) = address_problem(&entry.address) {
        return Err(("pbx.address", format!("pbx {name:?}: {reason}")));
    }
    let agents = Agents::parse(&entry.agents).map_err(|bad| {
        (
            "pbx.agents",
            format!(
                "pbx {name:?}: {bad:?} is neither \"<first>-<last>\" (3-4 digit extensions) \
                 nor an extension"
            ),
        )
    })?;
    if entry.agents.is_empty() && !entry.default {
        return Err((
            "pbx.agents",
            format!("pbx {name:?} serves no agent: list its agents or make it the default"),
        ));
    }
    if let Some(other) = before.iter().find(|s| s.default && entry.default) {
        return Err((
            "pbx.default",
            format!("pbx {name:?} and pbx {:?} are both the default", other.name),
        ));
    }
    for other in before {
        if let Some(agent) = agents.shared_with(&other.agents) {
            return Err((
                "pbx.agents",
                format!(
                    "pbx {name:?} and pbx {:?} both serve agent {agent}: an agent belongs to \
                     one PBX",
                    other.name
                ),
            ));
        }
    }
    let fastagi_peers = match (entry.fastagi_peers.is_empty(), host_ip(&entry.address)) {
        (false, _) => entry.fastagi_peers.clone(),
        (true, Some(ip)) => vec![ip],
        (true, None) if !fastagi_on => Vec::new(),
        (true, None) => {
            return Err((
                "pbx.fastagi_peers",
                format!(
                    "pbx {name:?}: its address is not an IP address, so the addresses its \
                     FastAGI sessions come from must be listed"
                ),
            ))
        }
    };
    let or_ami = |own: &str, shared: &str| if own.is_empty() { shared } else { own }.to_string();
    let username = or_ami(&entry.username, ami.username);
    let secret = or_ami(&entry.secret, ami.secret);
    if username.is_empty() {
        return Err((
            "pbx.username",
            format!("pbx {name:?}: no manager user (its own username or [ami] username)"),
        ));
    }
    if let Some((key, reason)) = login_problem(&username, &secret) {
        let key = if key == "ami.username" {
            "pbx.username"
        } else {
            "pbx.secret"
        };
        return Err((key, format!("pbx {name:?}: {reason}")));
    }
    Ok(PbxSite {
        name: name.clone(),
        address: entry.address.clone(),
        username,
        secret,
        agents,
        default: entry.default,
        fastagi_peers,
    })
}

/// What is wrong with a PBX's `host:port`, if anything: a host name or IPv4 address, or an
/// IPv6 address in brackets, and a port from 1 to 65535. Without this check a typo only
/// showed as a PBX that never answers.
fn address_problem(address: &str) -> Option<String> {
    // An IP address and port as the connection reads it: a link-local IPv6 address with
    // its interface's number too (`[fe80::1%2]:5038`).
    if address.parse::<SocketAddr>().is_ok_and(|a| a.port() != 0) {
        return None;
    }
    // Otherwise a host name and a port.
    let ok = address.rsplit_once(':').is_some_and(|(host, port)| {
        port.parse::<u16>().is_ok_and(|p| p != 0)
            && !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_".contains(&b))
    });
    (!ok).then(|| {
        format!(
            "{address:?} is not host:port (e.g. 10.0.0.5:5038, pbx.example:5038, [::1]:5038, \
             [fe80::1%2]:5038 with the interface's number, not its name; the port 1-65535)"
        )
    })
}

/// What is wrong with a manager login, if anything: the user name by core's rule for
/// names, the firmware's (it is a `manager.conf` section's name); a secret, when given,
/// without control characters (the AMI writer would refuse it at every login).
fn login_problem(username: &str, secret: &str) -> Option<Invalid> {
    if let Err(e) = click2dial_core::config::check_name("ami.username", username) {
        let mut reason = String::new();
        e.reason(|piece| reason.push_str(piece));
        return Some(("ami.username", reason));
    }
    secret.bytes().any(|b| b.is_ascii_control()).then(|| {
        (
            "ami.secret",
            "must not contain control characters".to_string(),
        )
    })
}

/// The IP address of `host:port` (`[::1]:5038` and `[fe80::1%2]:5038` too), when the host
/// is one.
fn host_ip(address: &str) -> Option<IpAddr> {
    address.parse::<SocketAddr>().ok().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_host_and_port() {
        for good in [
            "127.0.0.1:5038",
            "pbx.example:5038",
            "pbx-1.example.com:1",
            "[::1]:5039",
            "[fe80::1]:65535",
            "[fe80::1%2]:5038",
        ] {
            assert_eq!(address_problem(good), None, "{good}");
        }
        for (address, ip) in [
            ("[fe80::1%2]:5038", Some("fe80::1")),
            ("[::1]:5039", Some("::1")),
            ("10.0.0.5:5038", Some("10.0.0.5")),
            ("pbx.example:5038", None),
        ] {
            let ip = ip.map(|ip| ip.parse::<IpAddr>().expect("an IP address"));
            assert_eq!(host_ip(address), ip, "{address}");
        }
        for bad in [
            "",
            "nonsense",
            "127.0.0.1",
            ":5038",
            "127.0.0.1:0",
            "127.0.0.1:65536",
            "pbx.example:x",
            "::1:5038",
            "[::1:5038",
            "[nonsense]:5038",
            "pbx example:5038",
            "http://pbx:5038",
            "[fe80::1%eth0]:5038",
            "[fe80::1%2]:0",
        ] {
            assert!(address_problem(bad).is_some(), "{bad:?} is refused");
        }
    }

    const AMI: Login<'static> = Login {
        address: "127.0.0.1:5038",
        username: "shared",
        secret: "s3",
    };

    fn entry(name: &str, agents: &[&str], default: bool) -> PbxEntry {
        PbxEntry {
            name: name.into(),
            address: "127.0.0.1:5038".into(),
            agents: agents.iter().map(|a| a.to_string()).collect(),
            default,
            ..PbxEntry::default()
        }
    }

    #[test]
    fn without_entries_ami_is_the_one_default_pbx() {
        let peers = [IpAddr::from([10, 0, 0, 9])];
        let got = sites(&[], &AMI, Some(&peers)).expect("valid");
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].name.as_str(), got[0].default),
            (IMPLICIT_NAME, true)
        );
        assert_eq!(
            (got[0].address.as_str(), got[0].secret.as_str()),
            (AMI.address, "s3")
        );
        assert_eq!(got[0].fastagi_peers, peers);
        assert!(
            !got[0].agents.contains("1001"),
            "it lists no agent: it serves every agent as the default"
        );
    }

    #[test]
    fn each_refusal_names_its_key_and_the_entries() {
        let cases: [(&[PbxEntry], &str, &[&str]); 7] = [
            (
                &[
                    entry("east", &["1000-1999"], false),
                    entry("west", &["1500-2500"], false),
                ],
                "pbx.agents",
                &["\"west\"", "\"east\"", "agent 1500"],
            ),
            (
                &[
                    entry("east", &["1000-1999"], false),
                    entry("west", &["1234"], false),
                ],
                "pbx.agents",
                &["agent 1234"],
            ),
            (
                &[
                    entry("east", &["1000-1999"], false),
                    entry("east", &["2000"], false),
                ],
                "pbx.name",
                &["\"east\" is used twice"],
            ),
            (
                &[entry("east", &[], true), entry("west", &[], true)],
                "pbx.default",
                &["\"west\"", "\"east\"", "both the default"],
            ),
            (
                &[entry("east", &["1000-19x9"], false)],
                "pbx.agents",
                &["\"1000-19x9\""],
            ),
            (
                &[entry("east", &[], false)],
                "pbx.agents",
                &["serves no agent"],
            ),
            (&[entry("", &["1000"], false)], "pbx.name", &["\"\""]),
        ];
        for (entries, key, words) in cases {
            let (got, reason) = sites(entries, &AMI, None).expect_err("refused");
            assert_eq!(got, key, "{reason}");
            for word in words {
                assert!(reason.contains(word), "{reason} lacks {word}");
            }
        }
        // Ranges written differently share nothing: `0100-0199` holds 0150, `100-199` 150.
        sites(
            &[
                entry("a", &["0100-0199"], false),
                entry("b", &["100-199"], false),
            ],
            &AMI,
            None,
        )
        .expect("disjoint");
    }

    #[test]
    fn entries_take_the_ami_login_unless_they_have_their_own() {
        let mut own = entry("west", &["2000"], false);
        own.secret = "own".into();
        own.address = "[::1]:5039".into();
        let got = sites(&[entry("east", &["1000"], true), own], &AMI, None).expect("valid");
        assert_eq!(
            (got[0].username.as_str(), got[0].secret.as_str()),
            ("shared", "s3")
        );
        assert_eq!(got[1].secret, "own");
        assert_eq!(
            got[1].fastagi_peers,
            vec![IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])]
        );
        // A name instead of an address: FastAGI needs the peers listed.
        let mut named = entry("east", &["1000"], true);
        named.address = "pbx.example:5038".into();
        assert!(sites(std::slice::from_ref(&named), &AMI, None).is_ok());
        let (key, _) = sites(&[named.clone()], &AMI, Some(&[])).expect_err("refused");
        assert_eq!(key, "pbx.fastagi_peers");
        named.fastagi_peers = vec![IpAddr::from([10, 0, 0, 5])];
        let got = sites(&[named], &AMI, Some(&[])).expect("valid");
        assert_eq!(got[0].fastagi_peers, vec![IpAddr::from([10, 0, 0, 5])]);
    }
}
