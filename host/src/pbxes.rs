//! The PBXes: one [`Pbx`] driver per configured PBX (`[[pbx]]`, or `[ami]` alone), each
//! with its own AMI session, backoff and readiness, and which of them a call goes to —
//! the PBX that serves its agent, else the default one.
//!
//! A PBX that is down answers `503` for its own agents only; the others' calls go on.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::call::Outbox;
use crate::config::agents::Agents;
use crate::config::{Config, PbxSite};
use crate::metrics::Metrics;
use crate::pbx::{self, Pbx};
use crate::store::call_store::CallStore;

/// One PBX and what it serves.
#[derive(Clone, Debug)]
pub struct Site {
    /// Its configured name (the `pbx` label of its metrics, its entry in `/readyz`).
    pub name: Arc<str>,
    /// Its AMI driver.
    pub pbx: Pbx,
    agents: Agents,
    default: bool,
    fastagi_peers: Vec<IpAddr>,
}

/// Every configured PBX, in configuration order; cheap to clone.
#[derive(Clone, Debug)]
pub struct Pbxes {
    sites: Arc<[Site]>,
    /// They are `[[pbx]]` entries (not `[ami]` alone).
    listed: bool,
}

impl Pbxes {
    /// Starts one AMI driver per PBX of `config` (checked already: `Config::load`).
    pub fn start(
        config: &Config,
        notifier: &Arc<dyn Outbox>,
        metrics: &Metrics,
        call_store: &Option<CallStore>,
    ) -> Result<Self, String> {
        let sites = config.pbx_sites().map_err(|e| e.to_string())?;
        let started = sites
            .into_iter()
            .map(|site: PbxSite| {
                let name: Arc<str> = site.name.into();
                let settings = pbx::Settings {
                    name: name.clone(),
                    address: site.address,
                    username: site.username,
                    secret: site.secret,
                    ping_interval: Duration::from_secs(config.ami.ping_interval_secs),
                    max_backoff: Duration::from_secs(config.ami.max_backoff_secs.max(1)),
                    dialplan: config.dialplan.clone(),
                    contexts: config.pbx_contexts(),
                    call_silence: Duration::from_secs(config.limits.call_silence_secs.max(1)),
                    recordings_dir: config.recordings.dir.clone(),
                };
                Site {
                    name,
                    pbx: Pbx::start(
                        settings,
                        notifier.clone(),
                        metrics.clone(),
                        call_store.clone(),
                    ),
                    agents: site.agents,
                    default: site.default,
                    fastagi_peers: site.fastagi_peers,
                }
            })
            .collect();
        Ok(Self {
            sites: started,
            listed: !config.pbx.is_empty(),
        })
    }

    /// Every PBX, in configuration order.
    pub fn iter(&self) -> impl Iterator<Item = &Site> {
        self.sites.iter()
    }

    /// Whether the PBXes are `[[pbx]]` entries, named in `/readyz` (not `[ami]` alone).
    pub fn listed(&self) -> bool {
        self.listed
    }

    /// The PBX that serves `agent` (as the request sends it): the one that lists it, else
    /// the default; `None` when no PBX serves it.
    pub fn for_agent(&self, agent: &str) -> Option<&Site> {
        self.sites
            .iter()
            .find(|s| s.agents.contains(agent))
            .or_else(|| self.sites.iter().find(|s| s.default))
    }

    /// The PBX named `name`.
    pub fn named(&self, name: &str) -> Option<&Site> {
        self.sites.iter().find(|s| &*s.name == name)
    }

    /// The PBX that carries a call: the one its record names (`None` for a record stored
    /// before several PBXes, or no record), else the one that serves its agent.
    pub fn carrying(&self, name: Option<&str>, agent: &str) -> Option<&Site> {
        name.and_then(|n| self.named(n))
            .or_else(|| self.for_agent(agent))
    }

    /// Whether a FastAGI session from `ip` may start: it is one of a PBX's addresses.
    pub fn accepts_peer(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.sites.iter().any(|s| s.has_peer(ip))
    }

    /// The PBX a FastAGI session from `ip` for `agent` runs on: among the PBXes at that
    /// address, the one that serves the agent (several PBXes may share an address).
    pub fn for_peer(&self, ip: IpAddr, agent: &str) -> Option<&Site> {
        let ip = ip.to_canonical();
        let at = || self.sites.iter().filter(move |s| s.has_peer(ip));
        at().find(|s| s.agents.contains(agent))
            .or_else(|| at().find(|s| s.default))
    }

    /// Whether `recording_ref` belongs to a call in flight that some PBX's driver follows.
    pub fn recording_pending(&self, recording_ref: &str) -> bool {
        self.sites
            .iter()
            .any(|s| s.pbx.recording_pending(recording_ref))
    }
}

impl Site {
    fn has_peer(&self, ip: IpAddr) -> bool {
        self.fastagi_peers.iter().any(|p| p.to_canonical() == ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::Notification;
    use crate::config::PbxEntry;

    struct Nowhere;

    impl Outbox for Nowhere {
        fn send(&self, _: Notification) {}
        fn call_over(&self, _: &str, _: &str) {}
    }

    /// East serves 1000-1099 from 127.0.0.1; west 2000-2099 and 1500, its FastAGI sessions
    /// from 127.0.0.2; `west_default` makes west the default.
    fn two(west_default: bool) -> Pbxes {
        let entry = |name: &str, agents: &[&str]| PbxEntry {
            name: name.into(),
            // Nothing listens on port 9: the drivers only try to connect.
            address: "127.0.0.1:9".into(),
            agents: agents.iter().map(|a| a.to_string()).collect(),
            ..PbxEntry::default()
        };
        let east = entry("east", &["1000-1099"]);
        let west = PbxEntry {
            default: west_default,
            fastagi_peers: vec![IpAddr::from([127, 0, 0, 2])],
            ..entry("west", &["2000-2099", "1500"])
        };
        let config = Config {
            pbx: vec![east, west],
            ..Config::default()
        };
        let outbox: Arc<dyn Outbox> = Arc::new(Nowhere);
        Pbxes::start(&config, &outbox, &Metrics::new(), &None).expect("valid")
    }

    fn name(site: Option<&Site>) -> Option<&str> {
        site.map(|s| &*s.name)
    }

    #[tokio::test]
    async fn a_call_goes_to_the_pbx_that_serves_its_agent_else_the_default() {
        let pbxes = two(false);
        assert!(pbxes.listed());
        assert_eq!(name(pbxes.for_agent("1001")), Some("east"));
        assert_eq!(name(pbxes.for_agent("2099")), Some("west"));
        assert_eq!(name(pbxes.for_agent("1500")), Some("west"));
        assert_eq!(name(pbxes.for_agent("3001")), None);
        assert_eq!(name(pbxes.for_agent("01001")), None, "as written");
        let pbxes = two(true);
        assert_eq!(name(pbxes.for_agent("3001")), Some("west"));
        assert_eq!(name(pbxes.for_agent("27820001234")), Some("west"));
        assert_eq!(name(pbxes.for_agent("1001")), Some("east"));
    }

    #[tokio::test]
    async fn a_call_is_ended_on_the_pbx_its_record_names_else_its_agents() {
        let pbxes = two(false);
        assert_eq!(name(pbxes.carrying(Some("east"), "2001")), Some("east"));
        assert_eq!(name(pbxes.carrying(None, "2001")), Some("west"));
        assert_eq!(name(pbxes.carrying(Some("gone"), "1001")), Some("east"));
        assert_eq!(name(pbxes.carrying(None, "3001")), None);
    }

    #[tokio::test]
    async fn fastagi_sessions_come_from_a_pbx_that_serves_the_agent() {
        let pbxes = two(false);
        let local = IpAddr::from([127, 0, 0, 1]);
        let west = IpAddr::from([127, 0, 0, 2]);
        assert!(pbxes.accepts_peer(local) && pbxes.accepts_peer(west));
        assert!(!pbxes.accepts_peer(IpAddr::from([10, 0, 0, 1])));
        // A dual-stack listener sees IPv4 peers as `::ffff:a.b.c.d`.
        assert!(pbxes.accepts_peer(IpAddr::from(
            std::net::Ipv4Addr::new(127, 0, 0, 2).to_ipv6_mapped()
        )));
        assert_eq!(name(pbxes.for_peer(local, "1002")), Some("east"));
        assert_eq!(
            name(pbxes.for_peer(local, "2002")),
            None,
            "west is not at 127.0.0.1"
        );
        assert_eq!(name(pbxes.for_peer(west, "2002")), Some("west"));
        assert_eq!(name(pbxes.for_peer(west, "1002")), None);
    }
}
