//! Real processes for end-to-end tests: `redis-server`, the PBX simulator and the host
//! binary, each on a free loopback port, killed when dropped.

#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod browser;
pub mod cluster;
pub mod cutter;
pub mod redis_node;
pub mod sentinel;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 for a process to listen on, from 10000-19999: below the
/// kernel's ephemeral range, so no socket the kernel numbers itself (every `bind` to port 0,
/// every outgoing connection) can take it between this check and the process's `bind`; and
/// apart from [`low_port`]'s, so the one-port picks never fragment the Asterisk tests' ranges.
pub fn free_port() -> u16 {
    pick_port(10_000..20_000, 1)
}

/// A port free for TCP and UDP on 127.0.0.1, below the kernel's ephemeral range (ports in
/// that range are handed out to other sockets at any moment; run-asterisk.sh's README).
/// `span` consecutive ports are reserved (RTP ranges). Single ports come from 20000-22999 and
/// spans from 23000-31999, so the many single picks of a run never fragment the room the
/// 101-port RTP ranges need.
pub fn low_port(span: u16) -> u16 {
    if span <= 1 {
        pick_port(20_000..23_000, 1)
    } else {
        pick_port(23_000..32_000, span)
    }
}

/// Ports handed out in this process, so parallel tests never pick the same one.
static TAKEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// `span` consecutive ports in `within`, free for TCP and UDP and not handed out before.
fn pick_port(within: std::ops::Range<u16>, span: u16) -> u16 {
    let mut taken = TAKEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let taken = taken.get_or_insert_with(HashSet::new);
    let seed = (std::process::id() as u64)
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
    let state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let size = within.end - within.start - span;
    // Every start in the range, once, from a random one on: a free window is found whenever
    // there is one (random probes missed them as the taken ports fragmented the range).
    let first = ((state >> 33) % u64::from(size)) as u16;
    for i in 0..size {
        let port = within.start + (first + i) % size;
        let range = port..port + span;
        if range.clone().any(|p| taken.contains(&p)) {
            continue;
        }
        let free = range.clone().all(|p| {
            TcpListener::bind(("127.0.0.1", p)).is_ok() && UdpSocket::bind(("127.0.0.1", p)).is_ok()
        });
        if free {
            taken.extend(range);
            return port;
        }
    }
    panic!("no {span} free ports in {within:?}");
}

/// Kills a child process and reaps it.
pub fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Reads the child's stdout until a line `listening <addr>`; returns `<addr>`.
fn wait_listening(child: &mut Child, what: &str) -> String {
    wait_addresses(child, what, &["listening"]).remove(0)
}

/// Waits for one `<name> <addr>` line per name on the child's stdout (in that order) and
/// returns the addresses.
fn wait_addresses(child: &mut Child, what: &str, names: &[&'static str]) -> Vec<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let wanted: Vec<&'static str> = names.to_vec();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let mut next = 0;
        for line in lines.by_ref().map_while(Result::ok) {
            let Some(name) = wanted.get(next) else { break };
            if let Some(addr) = line.strip_prefix(name).and_then(|r| r.strip_prefix(' ')) {
                let _ = tx.send(addr.trim().to_string());
                next += 1;
                if next == wanted.len() {
                    break;
                }
            }
        }
        // Keep draining so the child never blocks on a full pipe.
        for _ in lines {}
    });
    names
        .iter()
        .map(|name| {
            rx.recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("{what} did not print `{name} <addr>`"))
        })
        .collect()
}

/// A `redis-server` with its own data directory (AOF on, so a restart keeps the data).
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    /// More `redis-server` arguments (`--maxmemory-policy allkeys-lru`).
    args: Vec<String>,
    /// Listens on a Unix socket in `dir` only, no TCP port.
    socket_only: bool,
}

impl Redis {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server started with these arguments too (kept for [`Redis::restart`]).
    pub fn start_with(args: &[&str]) -> Self {
        let mut redis = Self {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().expect("tempdir"),
            args: args.iter().map(|a| a.to_string()).collect(),
            socket_only: false,
        };
        redis.spawn();
        redis
    }

    /// A server on a Unix socket only (`--port 0`, `--unixsocket`, mode 0700): [`Redis::url`]
    /// is `unix://…`.
    pub fn start_on_socket() -> Self {
        let mut redis = Self {
            child: None,
            port: 0,
            dir: tempfile::tempdir().expect("tempdir"),
            args: Vec::new(),
            socket_only: true,
        };
        let socket = redis.dir.path().join("redis.sock");
        redis.args = ["--unixsocket", socket.to_str().expect("UTF-8 path")]
            .into_iter()
            .chain(["--unixsocketperm", "700"])
            .map(String::from)
            .collect();
        redis.spawn();
        redis
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (.ci/run installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut c) = self.connection() {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not answer PING");
    }

    pub fn url(&self) -> String {
        if self.socket_only {
            return format!("unix://{}", self.dir.path().join("redis.sock").display());
        }
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn connection(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url())?.get_connection_with_timeout(Duration::from_secs(2))
    }

    /// Sends `signal` (e.g. `STOP`: the server hangs with its connections open; `CONT`).
    pub fn signal(&self, signal: &str) {
        if let Some(c) = self.child.as_ref() {
            let _ = Command::new("kill")
                .args([&format!("-{signal}"), &c.id().to_string()])
                .status();
        }
    }

    /// Stops the server (the data stays in its directory).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if let Ok(mut conn) = self.connection() {
                let _: redis::RedisResult<()> = redis::cmd("SHUTDOWN").query(&mut conn);
            }
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The idempotency claim of `contact_ref` (whichever key made it), as JSON, and its
    /// TTL in seconds; `None` when there is none or Redis does not answer.
    pub fn claim(&self, contact_ref: &str) -> Option<(serde_json::Value, i64)> {
        let mut conn = self.connection().ok()?;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("teleforge:c2d:idempotency:*:{contact_ref}"))
            .query(&mut conn)
            .ok()?;
        let key = keys.first()?;
        let json: String = redis::cmd("GET").arg(key).query(&mut conn).ok()?;
        let ttl: i64 = redis::cmd("TTL").arg(key).query(&mut conn).ok()?;
        Some((serde_json::from_str(&json).expect("claim JSON"), ttl))
    }

    /// Pops everything pushed to `key`, oldest first (`RPOP` order), as JSON.
    pub fn drain(&self, key: &str) -> Vec<serde_json::Value> {
        let mut conn = self.connection().expect("redis");
        let mut out = Vec::new();
        while let Some(text) = redis::cmd("RPOP")
            .arg(key)
            .query::<Option<String>>(&mut conn)
            .expect("RPOP")
        {
            out.push(serde_json::from_str(&text).expect("notification JSON"));
        }
        out
    }

    /// `BRPOP`s from `key` until an object with `event` ∈ `last` arrives or `timeout`
    /// passes; returns all objects popped, oldest first.
    pub fn follow(&self, key: &str, last: &[&str], timeout: Duration) -> Vec<serde_json::Value> {
        follow(&mut self.connection().expect("redis"), key, last, timeout)
    }
}

/// A consumer on `conn`: `BRPOP`s from `key` until an object with `event` ∈ `last` arrives
/// or `timeout` passes; returns all objects popped, oldest first.
pub fn follow(
    conn: &mut impl redis::ConnectionLike,
    key: &str,
    last: &[&str],
    timeout: Duration,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + timeout;
    let mut out: Vec<serde_json::Value> = Vec::new();
    while Instant::now() < deadline {
        let popped: Option<(String, String)> = redis::cmd("BRPOP")
            .arg(key)
            .arg(0.5)
            .query(conn)
            .expect("BRPOP");
        if let Some((_, text)) = popped {
            let value: serde_json::Value = serde_json::from_str(&text).expect("notification JSON");
            let done = last.iter().any(|e| value["event"] == *e);
            out.push(value);
            if done {
                break;
            }
        }
    }
    out
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            kill(c);
        }
    }
}

/// The PBX simulator (`pbx-sim`), fast-forwarded.
pub struct Sim {
    child: Child,
    pub address: String,
    /// The control listener, when started with FastAGI.
    pub control: Option<String>,
    pub recordings: PathBuf,
    log: PathBuf,
}

/// Simulated time runs this much faster than the recorded calls.
pub const TIME_SCALE: &str = "0.05";

impl Sim {
    pub fn start(recordings: &Path, listen: &str) -> Self {
        Self::start_with(recordings, listen, None)
    }

    /// A simulator that also plays softphone INVITEs: its FastAGI client calls `fastagi`,
    /// and [`Sim::invite`] drives it over the control listener.
    pub fn start_with(recordings: &Path, listen: &str, fastagi: Option<&str>) -> Self {
        Self::start_scaled(recordings, listen, fastagi, TIME_SCALE)
    }

    /// [`Sim::start_with`] at another time scale (`"1"`: calls last as long as recorded).
    pub fn start_scaled(
        recordings: &Path,
        listen: &str,
        fastagi: Option<&str>,
        time_scale: &str,
    ) -> Self {
        Self::start_full(recordings, listen, fastagi, time_scale, &[])
    }

    /// A simulator with more command-line arguments (e.g. `--refuse-callee`).
    pub fn start_args(recordings: &Path, args: &[&str]) -> Self {
        Self::start_full(recordings, "127.0.0.1:0", None, TIME_SCALE, args)
    }

    fn start_full(
        recordings: &Path,
        listen: &str,
        fastagi: Option<&str>,
        time_scale: &str,
        args: &[&str],
    ) -> Self {
        let log = recordings.join(format!("pbx-sim-{}.log", free_port()));
        let mut command = Command::new(env!("CARGO_BIN_EXE_pbx-sim"));
        command
            .args(["--listen", listen, "--secret", "secret"])
            .args(["--time-scale", time_scale])
            .arg("--recordings-dir")
            .arg(recordings)
            // What an Asterisk with the kit sends the host's manager user.
            .arg("--eventfilters-from")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../host/asterisk/manager.conf"))
            .args(args);
        if let Some(fastagi) = fastagi {
            command.args(["--fastagi", fastagi, "--control", "127.0.0.1:0"]);
        }
        let mut child = command
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("sim log"))
            .spawn()
            .expect("pbx-sim");
        let names: &[&'static str] = if fastagi.is_some() {
            &["listening", "control"]
        } else {
            &["listening"]
        };
        let mut addresses = wait_addresses(&mut child, "pbx-sim", names).into_iter();
        let address = addresses.next().unwrap_or_default();
        Self {
            child,
            address,
            control: addresses.next(),
            recordings: recordings.to_path_buf(),
            log,
        }
    }

    /// Plays a softphone's INVITE (`invite <endpoint> <Header>=<value>…`, see
    /// `tests/src/pbx_sim/control.rs`) and returns the simulator's one-line answer.
    pub fn invite(&self, request: &str) -> String {
        use std::io::{BufRead, Write};
        let control = self
            .control
            .as_deref()
            .expect("a simulator started with FastAGI");
        let mut stream = std::net::TcpStream::connect(control).expect("control connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        stream
            .write_all(format!("{request}\n").as_bytes())
            .expect("control send");
        let mut line = String::new();
        BufReader::new(stream)
            .read_line(&mut line)
            .expect("control answer");
        line.trim().to_string()
    }

    /// Sends `signal` to the simulator (`STOP`: the PBX hangs with its sockets open; `CONT`).
    pub fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status();
    }

    /// The simulator's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many Originates with this `ActionID` the simulator accepted (from its log).
    pub fn originates(&self, action_id: &str) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&format!(" originate action_id=\"{action_id}\"")))
            .count()
    }

    /// How many Originates for this `contact_ref` (its `C2D_CONTACT_REF`) the simulator
    /// accepted, whichever key placed them.
    pub fn originates_of(&self, contact_ref: &str) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                l.contains(" originate action_id=")
                    && l.contains(&format!(" contact_ref=\"{contact_ref}\""))
            })
            .count()
    }

    pub fn stop(&mut self) {
        kill(&mut self.child);
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// A create's JSON body: `agent` calls `callee` for `contact_ref` (outbound id
/// 27820001234).
pub fn call_body(agent: &str, callee: &str, contact_ref: &str) -> String {
    format!(
        r#"{{"agent":"{agent}","callee":"{callee}","outbound_id":"27820001234","contact_ref":"{contact_ref}"}}"#
    )
}

/// A configuration with two PBXes (`[[pbx]]`): east at `east` serves agents 1000-1099,
/// west at `west` serves 2000-2099 and 1500; neither is the default. `more` goes after the
/// entries (e.g. a west entry's `fastagi_peers`).
pub fn two_pbxes(east: &str, west: &str, more: &str) -> String {
    format!(
        r#"
[[pbx]]
name = "east"
address = "{east}"
agents = ["1000-1099"]

[[pbx]]
name = "west"
address = "{west}"
agents = ["2000-2099", "1500"]
{more}
"#
    )
}

/// The API key `Host::start` configures (rate limit out of the way) and `create_call` sends.
pub const TEST_KEY: &str = "c2d_e2e_key_0123456789abcdef0123456789abcdef";
/// `click2dial-host hash-key` of [`TEST_KEY`].
pub const TEST_KEY_HASH: &str =
    "sha256:6ea7a695ba70270cbdd09e7d3e7957532c35ccc651264b051f9915ce43483668";

/// `click2dial-host hash-key` of `key`.
pub fn hash_key(key: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(host_binary())
        .arg("hash-key")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("hash-key");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{key}\n").as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("output");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

/// The `[[auth.keys]]` value (`C2D_AUTH__KEYS`) with the test key and `more` entries
/// (inline TOML tables, e.g. `{id="b",hash="sha256:…"}`).
pub fn auth_keys(more: &[&str]) -> String {
    let mut entries = vec![format!(
        r#"{{id="e2e",hash="{TEST_KEY_HASH}",rate_per_minute=600000,burst=100000,scopes=["calls:create","calls:read","recordings:read","metrics:read"]}}"#
    )];
    entries.extend(more.iter().map(|e| e.to_string()));
    format!("[{}]", entries.join(","))
}

/// The `click2dial-host` binary, configured through `C2D_*` variables.
pub struct Host {
    child: Child,
    pub url: String,
    /// `host:port` of the HTTP listener.
    pub address: String,
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            panic!(
                "{}: not JSON: {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// `error.code` of a JSON error body.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("?")
            .to_string()
    }
}

static BUILD_HOST: Once = Once::new();

/// Path of the host binary. `cargo test --workspace` builds it (the host's own integration
/// tests need it); when it is missing (e.g. `cargo test -p click2dial-tests` on a fresh
/// tree), it is built once here.
pub fn host_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf();
    let binary = dir.join("click2dial-host");
    BUILD_HOST.call_once(|| {
        if binary.exists() {
            return;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "click2dial-host", "--bin", "click2dial-host"])
            .status()
            .expect("cargo build");
        assert!(status.success(), "building click2dial-host failed");
    });
    binary
}

impl Host {
    /// Starts the host with [`TEST_KEY`] configured; `extra` variables come last (so they
    /// may replace `C2D_AUTH__KEYS`). Its log goes to the test's stderr.
    pub fn start(
        redis: &Redis,
        sim_address: &str,
        recordings: &Path,
        extra: &[(&str, &str)],
    ) -> Self {
        let url = redis.url();
        Self::start_on(&[("C2D_REDIS__URL", &url)], sim_address, recordings, extra)
    }

    /// As [`Host::start`], with Redis given by `redis` variables instead of one server's
    /// URL (e.g. `C2D_REDIS__SENTINELS` and `C2D_REDIS__MASTER_NAME`).
    pub fn start_on(
        redis: &[(&str, &str)],
        sim_address: &str,
        recordings: &Path,
        extra: &[(&str, &str)],
    ) -> Self {
        let command = Self::command(redis, Some(sim_address), recordings, extra);
        Self::from_command(command, Stdio::inherit())
    }

    /// As [`Host::start`], with `--config <config>` and no `[ami] address` in the
    /// environment: for a configuration that names its PBXes itself (`[[pbx]]`).
    pub fn start_with_config(
        redis: &Redis,
        config: &Path,
        recordings: &Path,
        extra: &[(&str, &str)],
    ) -> Self {
        let url = redis.url();
        Self::start_on_config(&[("C2D_REDIS__URL", &url)], config, recordings, extra)
    }

    /// As [`Host::start_with_config`], with Redis given by `redis` variables (as
    /// [`Host::start_on`]).
    pub fn start_on_config(
        redis: &[(&str, &str)],
        config: &Path,
        recordings: &Path,
        extra: &[(&str, &str)],
    ) -> Self {
        let mut command = Self::command(redis, None, recordings, extra);
        command.arg("--config").arg(config);
        Self::from_command(command, Stdio::inherit())
    }

    /// As [`Host::start`], with the log (`RUST_LOG=info` unless `extra` says otherwise)
    /// written to `log`.
    pub fn start_logged(
        redis: &Redis,
        sim_address: &str,
        recordings: &Path,
        extra: &[(&str, &str)],
        log: &Path,
    ) -> Self {
        let url = redis.url();
        let redis = [("C2D_REDIS__URL", url.as_str())];
        Self::start_logged_on(&redis, sim_address, recordings, extra, log)
    }

    /// As [`Host::start_logged`], with Redis given by `redis` variables (as
    /// [`Host::start_on`]).
    pub fn start_logged_on(
        redis: &[(&str, &str)],
        sim_address: &str,
        recordings: &Path,
        extra: &[(&str, &str)],
        log: &Path,
    ) -> Self {
        let file = std::fs::File::create(log).expect("host log");
        let mut vars = vec![("RUST_LOG", "info")];
        vars.extend_from_slice(extra);
        let command = Self::command(redis, Some(sim_address), recordings, &vars);
        Self::from_command(command, Stdio::from(file))
    }

    /// The host's command: the test's settings in the environment (Redis from `redis`,
    /// `[ami] address` when given), then `extra`.
    fn command(
        redis: &[(&str, &str)],
        sim_address: Option<&str>,
        recordings: &Path,
        extra: &[(&str, &str)],
    ) -> Command {
        let mut command = Command::new(host_binary());
        for (key, _) in std::env::vars() {
            if key.starts_with("C2D_") {
                command.env_remove(key);
            }
        }
        command
            .env("C2D_HTTP__PORT", "0")
            .env("C2D_HTTP__PUBLIC_URL", "http://127.0.0.1:1")
            .env("C2D_AMI__SECRET", "secret")
            .env("C2D_AMI__MAX_BACKOFF_SECS", "1")
            .envs(redis.iter().copied())
            .env("C2D_RECORDINGS__DIR", recordings)
            .env("C2D_AUTH__KEYS", auth_keys(&[]))
            .env("C2D_SHUTDOWN__REQUESTS_GRACE_SECS", "5")
            .env("RUST_LOG", "warn");
        if let Some(address) = sim_address {
            command.env("C2D_AMI__ADDRESS", address);
        }
        for (k, v) in extra {
            command.env(k, v);
        }
        command
    }

    /// Runs `command` (the host binary with its arguments and environment) and waits for
    /// its `listening <addr>` line.
    pub fn from_command(mut command: Command, stderr: Stdio) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("click2dial-host");
        let address = wait_listening(&mut child, "click2dial-host");
        Self {
            child,
            url: format!("http://{address}"),
            address,
        }
    }

    /// `click2dial_notification_spool_depth` from `/metrics` (notifications not yet in
    /// Redis).
    pub fn spool_depth(&self) -> u64 {
        let metrics = self.get("/metrics");
        String::from_utf8_lossy(&metrics.body)
            .lines()
            .find_map(|l| l.strip_prefix("click2dial_notification_spool_depth "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The process id (for signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process (SIGKILL: no flush, no goodbye) and waits for it.
    pub fn sigkill(&mut self) {
        kill(&mut self.child);
    }

    /// The process's resident memory (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// A request through ureq with `key` as the bearer token (`None`: no Authorization).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Answer {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .allow_non_standard_methods(true)
            .build()
            .into();
        let uri = format!("{}{path}", self.url);
        let mut builder = ureq::http::Request::builder().method(method).uri(&uri);
        if let Some(key) = key {
            builder = builder.header("authorization", format!("Bearer {key}"));
        }
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let mut response = match body {
            Some(body) => agent.run(builder.body(body.to_string()).expect("request")),
            None => agent.run(builder.body(()).expect("request")),
        }
        .expect("HTTP");
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = if method == "HEAD" {
            Vec::new()
        } else {
            response
                .body_mut()
                .with_config()
                .limit(64 * 1024 * 1024)
                .read_to_vec()
                .expect("body")
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    /// `GET` with [`TEST_KEY`].
    pub fn get(&self, path: &str) -> Answer {
        self.request("GET", path, Some(TEST_KEY), &[], None)
    }

    /// Sends `head` (request line and headers, CRLF-separated, without the blank line) as it
    /// is over a new connection, with `Connection: close`, and reads the answer. For paths
    /// an HTTP client would normalise.
    pub fn raw(&self, head: &str) -> Answer {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&self.address).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let request = format!(
            "{head}\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.address
        );
        stream.write_all(request.as_bytes()).expect("send");
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        parse_answer(&bytes)
    }

    /// `POST /click2dial/calls`; returns the status and the JSON body.
    pub fn create_call(&self, body: &str) -> (u16, serde_json::Value) {
        let (status, text) = self.create_call_raw(body.as_bytes());
        (status, serde_json::from_str(&text).expect("JSON answer"))
    }

    /// `POST /click2dial/calls` with raw bytes; returns the status and the body text.
    pub fn create_call_raw(&self, body: &[u8]) -> (u16, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let mut response = agent
            .post(format!("{}/click2dial/calls", self.url))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {TEST_KEY}"))
            .send(body)
            .expect("HTTP");
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().expect("body"))
    }

    /// Creates a call, retrying `503` until the host has logged in to the PBX.
    pub fn create_call_when_ready(&self, body: &str) -> (u16, serde_json::Value) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (status, json) = self.create_call(body);
            if status != 503 || Instant::now() > deadline {
                return (status, json);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends SIGTERM without waiting.
    pub fn signal_term(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// Waits for the process to exit, at most `timeout`; `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("wait")
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// Event names of a sequence of notifications.
pub fn events(notifications: &[serde_json::Value]) -> Vec<String> {
    notifications
        .iter()
        .map(|n| n["event"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// Each notification's `contact_ref` and `event`, for lists that hold several calls.
pub fn calls_and_events(notifications: &[serde_json::Value]) -> Vec<(String, String)> {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("?").to_string();
    notifications
        .iter()
        .map(|n| (text(&n["contact_ref"]), text(&n["event"])))
        .collect()
}

/// Parses an HTTP/1.1 answer read to the end of the connection (`Content-Length` bodies).
pub fn parse_answer(bytes: &[u8]) -> Answer {
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no answer head in {:?}", String::from_utf8_lossy(bytes)));
    let head = String::from_utf8_lossy(&bytes[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: bytes[split + 4..].to_vec(),
    }
}

/// Polls `check` every 100 ms until it is true or `timeout` passes; returns the last result.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Asserts a `DELETE`'s answer for a call ended before it was connected: not connected, so
/// `failed`; asked for, so reason `hangUp` and no phone's failure; the agent never answered,
/// the callee never rang.
pub fn assert_hung_up_before_connected(ended: &serde_json::Value) {
    assert_eq!(ended["state"], "failed", "{ended}");
    assert_eq!(ended["reason"], "hangUp", "{ended}");
    assert!(ended["agent"].get("cause").is_none(), "{ended}");
    assert_eq!(ended["agent"]["answered"], false, "{ended}");
    assert_eq!(ended["callee"]["rung"], false, "{ended}");
}

/// The notification sequence of an answered call.
pub const ANSWERED: [&str; 7] = [
    "queued",
    "agent_ringing",
    "agent_answered",
    "callee_ringing",
    "joined",
    "hangup",
    "recording_ready",
];

/// A joined call that ended while no host followed it, ended by the next host from Redis's
/// set of calls in flight, its recording not found whole: `hangup` (`pbx_error`), no
/// `recording_ready`.
pub const JOINED_THEN_LOST: &[&str] = ANSWERED.split_at(6).0;

/// An answered call whose agent answered and whose callee rang and answered while the host
/// could not see the PBX: the channel list after its login proves the answer and the bridge,
/// not the ringing.
pub const ANSWERED_UNSEEN: [&str; 6] = [
    "queued",
    "agent_ringing",
    "agent_answered",
    "joined",
    "hangup",
    "recording_ready",
];

/// One Redis, one PBX simulator, one host, and the recordings directory they share.
pub struct World {
    pub redis: Redis,
    pub sim: Sim,
    pub host: Host,
    pub recordings: tempfile::TempDir,
}

impl World {
    /// Stops the host and starts a new one on the same Redis, simulator and recordings.
    pub fn restart_host(&mut self, extra: &[(&str, &str)]) {
        let fresh = Host::start(
            &self.redis,
            &self.sim.address,
            self.recordings.path(),
            extra,
        );
        let old = std::mem::replace(&mut self.host, fresh);
        drop(old);
    }

    /// Records in Redis that `owner` (a key id) owns these recordings, as a create-call
    /// does: for files a test puts in the recordings directory itself.
    pub fn own_recordings(&self, owner: &str, refs: &[&str]) {
        let mut conn = self.redis.connection().expect("redis");
        for r in refs {
            redis::cmd("SET")
                .arg(format!("teleforge:c2d:recording:{r}"))
                .arg(owner)
                .query::<()>(&mut conn)
                .expect("SET");
        }
    }
}

/// Starts a [`World`]; `extra` are the host's additional `C2D_*` variables.
pub fn world(extra: &[(&str, &str)]) -> World {
    world_scaled(TIME_SCALE, extra)
}

/// Starts a [`World`] whose simulator plays calls at `time_scale` (`"1"`: as long as
/// recorded, so that a `DELETE` finds a call ringing or connected).
pub fn world_scaled(time_scale: &str, extra: &[(&str, &str)]) -> World {
    let recordings = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start();
    let sim = Sim::start_scaled(recordings.path(), "127.0.0.1:0", None, time_scale);
    let host = Host::start(&redis, &sim.address, recordings.path(), extra);
    World {
        redis,
        sim,
        host,
        recordings,
    }
}
