//! Redis Sentinel for end-to-end tests: one master, one replica and three sentinels (real
//! `redis-server` and `redis-sentinel` processes on free loopback ports), and a consumer
//! that reads notification lists on whichever server it is given.

use std::path::Path;
use std::time::Duration;

pub use super::redis_node::Node;
use super::{eventually, follow, free_port};

/// The name the sentinels monitor the master under.
pub const MASTER: &str = "c2d";

/// How long a sentinel waits before it calls the master down, in milliseconds.
pub const DOWN_AFTER_MS: u64 = 1000;

impl Node {
    /// Whether the server's `INFO replication` has the line `line`.
    pub fn replication_says(&self, line: &str) -> bool {
        self.connection()
            .and_then(|mut c| {
                redis::cmd("INFO")
                    .arg("replication")
                    .query::<String>(&mut c)
            })
            .is_ok_and(|info| info.lines().any(|l| l.trim() == line))
    }
}

/// A data server; a replica of `master` when given.
fn server(dir: &Path, master: Option<u16>) -> Node {
    let port = free_port();
    let dir = dir.join(port.to_string());
    std::fs::create_dir_all(&dir).expect("server dir");
    let port_arg = port.to_string();
    let mut args = vec!["--port", &port_arg, "--bind", "127.0.0.1", "--save", ""];
    args.extend(["--appendonly", "no", "--dir", dir.to_str().expect("utf-8")]);
    let master_port = master.map(|p| p.to_string());
    if let Some(master_port) = &master_port {
        args.extend(["--replicaof", "127.0.0.1", master_port]);
    }
    Node::start("redis-server", port, &args)
}

/// A sentinel watching the master on `master`, its configuration file (which it rewrites)
/// in `dir`.
fn sentinel(dir: &Path, master: u16) -> Node {
    let port = free_port();
    let conf = dir.join(format!("sentinel-{port}.conf"));
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\ndir {dir}\n\
             sentinel monitor {MASTER} 127.0.0.1 {master} 2\n\
             sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n\
             sentinel failover-timeout {MASTER} 5000\n\
             sentinel parallel-syncs {MASTER} 1\n",
            dir = dir.display()
        ),
    )
    .expect("sentinel conf");
    Node::start("redis-sentinel", port, &[conf.to_str().expect("utf-8")])
}

/// `SENTINEL MASTER <name>` of one sentinel, as field → value.
fn master_info(sentinel: &Node) -> std::collections::HashMap<String, String> {
    sentinel
        .connection()
        .and_then(|mut c| {
            redis::cmd("SENTINEL")
                .arg("MASTER")
                .arg(MASTER)
                .query(&mut c)
        })
        .unwrap_or_default()
}

/// Where one sentinel says the master is now (its port).
pub fn master_port(sentinel: &Node) -> Option<u16> {
    let mut c = sentinel.connection().ok()?;
    let (_, port): (String, u16) = redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg(MASTER)
        .query(&mut c)
        .ok()?;
    Some(port)
}

/// The Redis side: master, replica, three sentinels that see each other and the replica.
pub struct Deployment {
    pub master: Node,
    pub replica: Node,
    pub sentinels: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl Deployment {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let master = server(dir.path(), None);
        let replica = server(dir.path(), Some(master.port));
        let linked = || replica.replication_says("master_link_status:up");
        assert!(
            eventually(Duration::from_secs(10), linked),
            "replica linked"
        );
        let sentinels: Vec<Node> = (0..3).map(|_| sentinel(dir.path(), master.port)).collect();
        // Sentinels find the replica through the master's INFO and each other through
        // hello messages (every 2 s): only then can they agree on a failover.
        let acquainted = || {
            sentinels.iter().all(|s| {
                let info = master_info(s);
                info.get("num-slaves").map(String::as_str) == Some("1")
                    && info.get("num-other-sentinels").map(String::as_str) == Some("2")
            })
        };
        assert!(
            eventually(Duration::from_secs(20), acquainted),
            "the sentinels know the replica and each other"
        );
        Self {
            master,
            replica,
            sentinels,
            _dir: dir,
        }
    }

    /// The host's Redis settings for this deployment: `C2D_REDIS__SENTINELS` (the
    /// sentinels' URLs as a TOML list) and `C2D_REDIS__MASTER_NAME`.
    pub fn host_vars(&self) -> [(&'static str, String); 2] {
        let urls: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("\"{}\"", s.url()))
            .collect();
        [
            ("C2D_REDIS__SENTINELS", format!("[{}]", urls.join(","))),
            ("C2D_REDIS__MASTER_NAME", MASTER.to_string()),
        ]
    }

    /// Waits until every sentinel names the replica as the master.
    pub fn replica_promoted(&self) {
        let promoted = || {
            self.sentinels
                .iter()
                .all(|s| master_port(s) == Some(self.replica.port))
        };
        assert!(
            eventually(Duration::from_secs(20), promoted),
            "the sentinels name the replica as the master"
        );
    }
}

/// Reads notification lists as a consumer would.
pub struct Consumer<'a>(pub &'a Node);

impl Consumer<'_> {
    /// `BRPOP`s `key` until a notification `last` arrives or `timeout` passes.
    pub fn follow(&self, key: &str, last: &str, timeout: Duration) -> Vec<serde_json::Value> {
        let mut conn = self.0.connection().expect("new master");
        follow(&mut conn, key, &[last], timeout)
    }

    pub fn len(&self, key: &str) -> usize {
        let mut conn = self.0.connection().expect("new master");
        redis::cmd("LLEN").arg(key).query(&mut conn).expect("LLEN")
    }
}
