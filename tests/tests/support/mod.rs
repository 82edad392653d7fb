//! Real processes for end-to-end tests: `redis-server`, the PBX simulator and the host
//! binary, each on a free loopback port, killed when dropped.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Reads the child's stdout until a line `listening <addr>`; returns `<addr>`.
fn wait_listening(child: &mut Child, what: &str) -> String {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("listening ") {
                let _ = tx.send(addr.trim().to_string());
                break;
            }
        }
        // Keep draining so the child never blocks on a full pipe.
        for _ in lines {}
    });
    rx.recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{what} did not print `listening <addr>`"))
}

/// A `redis-server` with its own data directory (AOF on, so a restart keeps the data).
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Redis {
    pub fn start() -> Self {
        let mut redis = Self {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().expect("tempdir"),
        };
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
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn connection(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url())?.get_connection_with_timeout(Duration::from_secs(2))
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
        let mut conn = self.connection().expect("redis");
        let deadline = Instant::now() + timeout;
        let mut out: Vec<serde_json::Value> = Vec::new();
        while Instant::now() < deadline {
            let popped: Option<(String, String)> = redis::cmd("BRPOP")
                .arg(key)
                .arg(0.5)
                .query(&mut conn)
                .expect("BRPOP");
            if let Some((_, text)) = popped {
                let value: serde_json::Value =
                    serde_json::from_str(&text).expect("notification JSON");
                let done = last.iter().any(|e| value["event"] == *e);
                out.push(value);
                if done {
                    break;
                }
            }
        }
        out
    }
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
    pub recordings: PathBuf,
    log: PathBuf,
}

/// Simulated time runs this much faster than the recorded calls.
pub const TIME_SCALE: &str = "0.05";

impl Sim {
    pub fn start(recordings: &Path, listen: &str) -> Self {
        let log = recordings.join(format!("pbx-sim-{}.log", free_port()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_pbx-sim"))
            .args(["--listen", listen, "--secret", "secret"])
            .args(["--time-scale", TIME_SCALE])
            .arg("--recordings-dir")
            .arg(recordings)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("sim log"))
            .spawn()
            .expect("pbx-sim");
        let address = wait_listening(&mut child, "pbx-sim");
        Self {
            child,
            address,
            recordings: recordings.to_path_buf(),
            log,
        }
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

    pub fn stop(&mut self) {
        kill(&mut self.child);
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// The `click2dial-host` binary, configured through `C2D_*` variables.
pub struct Host {
    child: Child,
    pub url: String,
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
    pub fn start(
        redis: &Redis,
        sim_address: &str,
        recordings: &Path,
        extra: &[(&str, &str)],
    ) -> Self {
        let mut command = Command::new(host_binary());
        for (key, _) in std::env::vars() {
            if key.starts_with("C2D_") {
                command.env_remove(key);
            }
        }
        command
            .env("C2D_HTTP__PORT", "0")
            .env("C2D_HTTP__PUBLIC_URL", "http://127.0.0.1:1")
            .env("C2D_AMI__ADDRESS", sim_address)
            .env("C2D_AMI__SECRET", "secret")
            .env("C2D_AMI__MAX_BACKOFF_SECS", "1")
            .env("C2D_REDIS__URL", redis.url())
            .env("C2D_RECORDINGS__DIR", recordings)
            .env("RUST_LOG", "warn");
        for (k, v) in extra {
            command.env(k, v);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("click2dial-host");
        let address = wait_listening(&mut child, "click2dial-host");
        Self {
            child,
            url: format!("http://{address}"),
        }
    }

    /// `POST /click2dial/calls`; returns the status and the JSON body.
    pub fn create_call(&self, body: &str) -> (u16, serde_json::Value) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let mut response = agent
            .post(format!("{}/click2dial/calls", self.url))
            .header("content-type", "application/json")
            .send(body)
            .expect("HTTP");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().expect("body");
        (status, serde_json::from_str(&text).expect("JSON answer"))
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
