//! Redis Cluster for end-to-end tests: three masters (real `redis-server --cluster-enabled
//! yes` processes on free loopback ports, their cluster bus ports free ones too), joined by
//! `redis-cli --cluster create`, and a consumer that reads through redis-rs's cluster
//! client (each command goes to the node that owns its key's slot, `MOVED` followed).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub use super::redis_node::Node;
use super::{eventually, follow, free_port};

/// How long a node may be unreachable before the others call it failed, in milliseconds.
pub const NODE_TIMEOUT_MS: u64 = 1000;

/// What a cluster node answers about the cluster.
impl Node {
    /// `CLUSTER MYID`.
    pub fn id(&self) -> String {
        let mut c = self.connection().expect("node");
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut c)
            .expect("CLUSTER MYID")
    }

    /// Whether this node's `CLUSTER INFO` says `cluster_state:ok`.
    pub fn cluster_ok(&self) -> bool {
        self.connection()
            .and_then(|mut c| redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut c))
            .is_ok_and(|info| info.lines().any(|l| l.trim() == "cluster_state:ok"))
    }

    /// The slots this node serves, as this node sees them (`CLUSTER SHARDS` would do; the
    /// `CLUSTER NODES` line is in every Redis 7).
    pub fn own_slots(&self) -> Vec<u16> {
        let mut c = self.connection().expect("node");
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query(&mut c)
            .expect("CLUSTER NODES");
        let line = nodes
            .lines()
            .find(|l| l.split(' ').nth(2).is_some_and(|f| f.contains("myself")))
            .expect("myself");
        let mut slots = Vec::new();
        for range in line.split(' ').skip(8) {
            if range.starts_with('[') {
                continue; // a slot being migrated or imported
            }
            let (from, to) = range.split_once('-').unwrap_or((range, range));
            let (Ok(from), Ok(to)) = (from.parse::<u16>(), to.parse::<u16>()) else {
                continue;
            };
            slots.extend(from..=to);
        }
        slots
    }
}

/// Three masters, no replicas, every slot served.
pub struct Cluster {
    pub nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let nodes: Vec<Node> = (0..3).map(|_| node(dir.path())).collect();
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &nodes {
            create.arg(node.address());
        }
        let out = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli is installed (redis-tools; .ci/run installs it)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Self { nodes, _dir: dir };
        assert!(
            eventually(Duration::from_secs(20), || cluster
                .nodes
                .iter()
                .all(Node::cluster_ok)),
            "every node says cluster_state:ok"
        );
        cluster
    }

    /// The host's Redis setting: `C2D_REDIS__CLUSTER`, the nodes' URLs as a TOML list.
    pub fn host_vars(&self) -> [(&'static str, String); 1] {
        let urls: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("\"{}\"", n.url()))
            .collect();
        [("C2D_REDIS__CLUSTER", format!("[{}]", urls.join(",")))]
    }

    /// A cluster client (redis-rs) on every node as a seed.
    pub fn client(&self) -> redis::cluster::ClusterClient {
        redis::cluster::ClusterClient::builder(self.nodes.iter().map(Node::url))
            .connection_timeout(Duration::from_secs(2))
            .response_timeout(Duration::from_secs(3))
            .build()
            .expect("cluster client")
    }

    /// The slot of `key` (`CLUSTER KEYSLOT`).
    pub fn slot(&self, key: &str) -> u16 {
        let mut c = self.nodes[0].connection().expect("node");
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut c)
            .expect("CLUSTER KEYSLOT")
    }

    /// The node that serves `slot` now.
    pub fn owner(&self, slot: u16) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.own_slots().contains(&slot))
            .expect("a node serves the slot")
    }

    /// `redis-cli --cluster reshard`: `count` slots from `from` to `to`; returns how long it
    /// took.
    pub fn reshard(&self, from: usize, to: usize, count: usize) -> Duration {
        self.settled();
        let started = Instant::now();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("reshard")
            .arg(self.nodes[0].address())
            .args(["--cluster-from", &self.nodes[from].id()])
            .args(["--cluster-to", &self.nodes[to].id()])
            .args(["--cluster-slots", &count.to_string()])
            .arg("--cluster-yes")
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli");
        assert!(
            out.status.success(),
            "redis-cli --cluster reshard: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        started.elapsed()
    }
}

impl Cluster {
    /// Waits until `redis-cli --cluster check` finds the nodes agreeing on the slots, none
    /// open (after a reshard the others learn the new owners over the bus).
    pub fn settled(&self) {
        let agree = || {
            Command::new("redis-cli")
                .arg("--cluster")
                .arg("check")
                .arg(self.nodes[0].address())
                .stdin(Stdio::null())
                .output()
                .is_ok_and(|out| {
                    let text = String::from_utf8_lossy(&out.stdout);
                    out.status.success() && !text.contains("[ERR]") && !text.contains("[WARNING]")
                })
        };
        assert!(
            eventually(Duration::from_secs(30), agree),
            "redis-cli --cluster check: the nodes agree"
        );
    }
}

/// A cluster-enabled `redis-server` on a free port (and a free bus port), answering `PING`.
fn node(dir: &std::path::Path) -> Node {
    let port = free_port();
    let bus = free_port();
    let dir = dir.join(port.to_string());
    std::fs::create_dir_all(&dir).expect("node dir");
    let port_arg = port.to_string();
    let bus_arg = bus.to_string();
    let timeout_arg = NODE_TIMEOUT_MS.to_string();
    let args = [
        "--port",
        &port_arg,
        "--bind",
        "127.0.0.1",
        "--cluster-enabled",
        "yes",
        "--cluster-port",
        &bus_arg,
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        &timeout_arg,
        // A master that gave away its last slot stays a master (to take slots back).
        "--cluster-allow-replica-migration",
        "no",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        dir.to_str().expect("utf-8"),
    ];
    Node::start("redis-server", port, &args)
}

/// Reads notification lists as a consumer would, through the cluster client: `BRPOP` goes
/// to the node that owns the list's slot.
pub struct Consumer(pub redis::cluster::ClusterConnection);

impl Consumer {
    pub fn new(cluster: &Cluster) -> Self {
        Self(
            cluster
                .client()
                .get_connection()
                .expect("cluster connection"),
        )
    }

    /// `BRPOP`s `key` until a notification `last` arrives or `timeout` passes.
    pub fn follow(&mut self, key: &str, last: &str, timeout: Duration) -> Vec<serde_json::Value> {
        follow(&mut self.0, key, &[last], timeout)
    }

    /// Pops everything in `key`, oldest first.
    pub fn drain(&mut self, key: &str) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        while let Some(text) = redis::cmd("RPOP")
            .arg(key)
            .query::<Option<String>>(&mut self.0)
            .expect("RPOP")
        {
            out.push(serde_json::from_str(&text).expect("notification JSON"));
        }
        out
    }

    /// The newest notification in `key` (`LINDEX 0`), without popping it.
    pub fn peek_newest(&mut self, key: &str) -> Option<serde_json::Value> {
        let text: Option<String> = redis::cmd("LINDEX")
            .arg(key)
            .arg(0)
            .query(&mut self.0)
            .expect("LINDEX");
        text.map(|t| serde_json::from_str(&t).expect("notification JSON"))
    }

    pub fn len(&mut self, key: &str) -> usize {
        redis::cmd("LLEN")
            .arg(key)
            .query(&mut self.0)
            .expect("LLEN")
    }
}
