//! Redis Sentinel: one master, one replica and three sentinels (real `redis-server` and
//! `redis-sentinel` processes on free loopback ports), the host configured with the
//! sentinels, calls running on the PBX simulator. The master is killed (SIGKILL); the
//! sentinels promote the replica; the host follows: creates answer `503` while no master
//! is reachable, `/readyz` says not ready, the notifications of the calls in progress wait
//! in the spool and reach the new master in order, each once.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{events, eventually, follow, free_port, kill, Host, Sim, ANSWERED};

/// The name the sentinels monitor the master under.
const MASTER: &str = "c2d";

/// How long a sentinel waits before it calls the master down, in milliseconds.
const DOWN_AFTER_MS: u64 = 1000;

/// One `redis-server` or `redis-sentinel` process, killed when dropped.
struct Node {
    child: Option<Child>,
    port: u16,
}

impl Node {
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn connection(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url())?.get_connection_with_timeout(Duration::from_secs(2))
    }

    /// Whether the server's `INFO replication` has the line `line`.
    fn replication_says(&self, line: &str) -> bool {
        self.connection()
            .and_then(|mut c| {
                redis::cmd("INFO")
                    .arg("replication")
                    .query::<String>(&mut c)
            })
            .is_ok_and(|info| info.lines().any(|l| l.trim() == line))
    }

    /// SIGKILL: no goodbye, nothing written after.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill(&mut child);
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `program` with `args` and waits until it answers `PING`.
fn start(program: &str, port: u16, args: &[&str]) -> Node {
    let child = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} is installed (.ci/run installs it): {e}"));
    let node = Node {
        child: Some(child),
        port,
    };
    let answers = || {
        node.connection()
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok()
    };
    assert!(
        eventually(Duration::from_secs(10), answers),
        "{program} on {port} did not answer PING"
    );
    node
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
    start("redis-server", port, &args)
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
    start("redis-sentinel", port, &[conf.to_str().expect("utf-8")])
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
fn master_port(sentinel: &Node) -> Option<u16> {
    let mut c = sentinel.connection().ok()?;
    let (_, port): (String, u16) = redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg(MASTER)
        .query(&mut c)
        .ok()?;
    Some(port)
}

/// The Redis side: master, replica, three sentinels that see each other and the replica.
struct Deployment {
    master: Node,
    replica: Node,
    sentinels: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl Deployment {
    fn start() -> Self {
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

    /// `C2D_REDIS__SENTINELS`: the sentinels' URLs as a TOML list.
    fn sentinels_toml(&self) -> String {
        let urls: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("\"{}\"", s.url()))
            .collect();
        format!("[{}]", urls.join(","))
    }
}

fn body(contact_ref: &str) -> String {
    format!(
        r#"{{"agent":"1001","callee":"0820001234","outbound_id":"27820001234","contact_ref":"{contact_ref}"}}"#
    )
}

/// `click2dial_notification_spool_depth` from `/metrics`.
fn spool_depth(host: &Host) -> u64 {
    let metrics = host.get("/metrics");
    String::from_utf8_lossy(&metrics.body)
        .lines()
        .find_map(|l| l.strip_prefix("click2dial_notification_spool_depth "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The deployment, the simulator and the host configured with the sentinels, ready.
struct Setup {
    redis: Deployment,
    host: Host,
    _sim: Sim,
    _recordings: tempfile::TempDir,
}

impl Setup {
    fn start() -> Self {
        let redis = Deployment::start();
        let recordings = tempfile::tempdir().expect("tempdir");
        // Calls last about 5 s (half the recorded time): they run on through the failover.
        let sim = Sim::start_scaled(recordings.path(), "127.0.0.1:0", None, "0.5");
        let sentinels = redis.sentinels_toml();
        let host = Host::start_on(
            &[
                ("C2D_REDIS__SENTINELS", &sentinels),
                ("C2D_REDIS__MASTER_NAME", MASTER),
            ],
            &sim.address,
            recordings.path(),
            &[],
        );
        let setup = Self {
            redis,
            host,
            _sim: sim,
            _recordings: recordings,
        };
        assert!(
            eventually(Duration::from_secs(20), || setup.ready()),
            "ready at start"
        );
        setup
    }

    fn ready(&self) -> bool {
        self.host.get("/readyz").status == 200
    }

    /// Creates `count` calls `<prefix>-<i>`, each accepted (after `503`s while the host
    /// finds the master); returns their `contact_ref`s.
    fn calls(&self, prefix: &str, count: usize) -> Vec<String> {
        (0..count)
            .map(|i| {
                let contact_ref = format!("{prefix}-{i}");
                let (status, answer) = self.host.create_call_when_ready(&body(&contact_ref));
                assert_eq!(status, 202, "{answer}");
                std::thread::sleep(Duration::from_millis(100));
                contact_ref
            })
            .collect()
    }

    /// Waits until every sentinel names the replica as the master.
    fn replica_promoted(&self) {
        let promoted = || {
            self.redis
                .sentinels
                .iter()
                .all(|s| master_port(s) == Some(self.redis.replica.port))
        };
        assert!(
            eventually(Duration::from_secs(20), promoted),
            "the sentinels name the replica as the master"
        );
    }

    /// A real consumer on the new master: every accepted call's list, popped until its last
    /// event, has all of them in order, once; refused ones have none; the shared list has
    /// each notification once. Returns how many were counted.
    fn count_notifications(&self, accepted: &[String], refused: &[String]) -> usize {
        let consumer = Consumer(&self.redis.replica);
        let key = |contact_ref: &str| format!("teleforge:notifications:c2d:{contact_ref}");
        let mut counted = 0;
        for contact_ref in accepted {
            let got = consumer.follow(
                &key(contact_ref),
                "recording_ready",
                Duration::from_secs(30),
            );
            assert_eq!(events(&got), ANSWERED, "{contact_ref}: all, in order, once");
            counted += got.len();
        }
        for contact_ref in refused {
            assert_eq!(
                consumer.len(&key(contact_ref)),
                0,
                "{contact_ref} was refused"
            );
        }
        // Nothing pushed twice: the lists stay empty, the shared list has each once.
        std::thread::sleep(Duration::from_millis(500));
        for contact_ref in accepted {
            assert_eq!(
                consumer.len(&key(contact_ref)),
                0,
                "{contact_ref}: nothing after the last"
            );
        }
        assert_eq!(
            consumer.len("enigma:notifications:c2d"),
            accepted.len() * ANSWERED.len(),
            "the shared list has every notification once"
        );
        assert_eq!(spool_depth(&self.host), 0);
        counted
    }
}

#[test]
fn the_host_follows_a_failover_and_loses_no_notification() {
    let mut setup = Setup::start();
    let mut accepted = setup.calls("sentinel-before", 8);

    let killed_at = Instant::now();
    setup.redis.master.kill();
    let host = &setup.host;
    let not_ready = || host.get("/readyz").status == 503;
    assert!(
        eventually(Duration::from_secs(5), not_ready),
        "not ready without a master"
    );

    // Creates while no master is reachable: `503` within the host's Redis deadline (1 s;
    // asserted with room), until the new master takes them.
    let mut refused = Vec::new();
    let mut slowest_refusal = Duration::ZERO;
    let mut deepest_spool = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    let first_after = loop {
        assert!(
            Instant::now() < deadline,
            "no create succeeded after the failover"
        );
        let contact_ref = format!("sentinel-during-{}", refused.len());
        let asked = Instant::now();
        let (status, answer) = host.create_call(&body(&contact_ref));
        let took = asked.elapsed();
        if status == 202 {
            break contact_ref;
        }
        assert_eq!(status, 503, "{answer}");
        assert!(took < Duration::from_secs(5), "a 503 took {took:?}");
        slowest_refusal = slowest_refusal.max(took);
        deepest_spool = deepest_spool.max(spool_depth(host));
        refused.push(contact_ref);
        std::thread::sleep(Duration::from_millis(100));
    };
    let failover = killed_at.elapsed();
    accepted.push(first_after);
    assert!(!refused.is_empty(), "creates were refused without a master");
    assert!(
        deepest_spool > 0,
        "notifications of the calls in progress were spooled"
    );
    setup.replica_promoted();
    assert!(
        eventually(Duration::from_secs(10), || setup.ready()),
        "ready again"
    );
    accepted.extend(setup.calls("sentinel-after", 4));

    let counted = setup.count_notifications(&accepted, &refused);
    eprintln!(
        "sentinel failover: {} calls, {counted} notifications counted, none lost or \
         duplicated; kill to first create accepted {failover:?}; {} creates refused, the \
         slowest in {slowest_refusal:?}; spool up to {deepest_spool}",
        accepted.len(),
        refused.len()
    );
}

/// `SENTINEL FAILOVER`: the master is not killed but made a replica of the promoted one, so
/// a connection that reaches it again gets `READONLY` and must be made to the new master.
#[test]
fn the_host_follows_a_switch_to_the_replica_with_the_old_master_alive() {
    let setup = Setup::start();
    let mut accepted = setup.calls("switch-before", 6);
    let mut c = setup.redis.sentinels[0].connection().expect("sentinel");
    redis::cmd("SENTINEL")
        .arg("FAILOVER")
        .arg(MASTER)
        .query::<()>(&mut c)
        .expect("SENTINEL FAILOVER");
    // Creates go on through the switch: each is accepted or refused with `503`.
    let mut refused = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let promoted = || master_port(&setup.redis.sentinels[0]) == Some(setup.redis.replica.port);
    let mut i = 0;
    while !promoted() || accepted.len() < 10 {
        assert!(Instant::now() < deadline, "the switch did not complete");
        let contact_ref = format!("switch-during-{i}");
        i += 1;
        let (status, answer) = setup.host.create_call(&body(&contact_ref));
        match status {
            202 => accepted.push(contact_ref),
            503 => refused.push(contact_ref),
            _ => panic!("{status}: {answer}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    setup.replica_promoted();
    let old_is_replica = || setup.redis.master.replication_says("role:slave");
    assert!(
        eventually(Duration::from_secs(30), old_is_replica),
        "the old master is a replica now"
    );
    accepted.extend(setup.calls("switch-after", 4));
    assert!(
        eventually(Duration::from_secs(10), || setup.ready()),
        "ready after the switch"
    );
    let counted = setup.count_notifications(&accepted, &refused);
    eprintln!(
        "sentinel switch: {} calls, {counted} notifications counted, none lost or \
         duplicated; {} creates refused during the switch",
        accepted.len(),
        refused.len()
    );
}

/// Reads notification lists as a consumer would.
struct Consumer<'a>(&'a Node);

impl Consumer<'_> {
    /// `BRPOP`s `key` until a notification `last` arrives or `timeout` passes.
    fn follow(&self, key: &str, last: &str, timeout: Duration) -> Vec<serde_json::Value> {
        let mut conn = self.0.connection().expect("new master");
        follow(&mut conn, key, &[last], timeout)
    }

    fn len(&self, key: &str) -> usize {
        let mut conn = self.0.connection().expect("new master");
        redis::cmd("LLEN").arg(key).query(&mut conn).expect("LLEN")
    }
}
