//! One Redis process (`redis-server` or `redis-sentinel`) on a free loopback port, killed
//! when dropped: what the Sentinel and Cluster deployments are built from.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{eventually, kill};

/// One Redis process, killed (SIGKILL) when dropped.
pub struct Node {
    child: Option<Child>,
    pub port: u16,
}

impl Node {
    /// Starts `program` with `args` (which must make it listen on `port`) and waits until it
    /// answers `PING`.
    pub fn start(program: &str, port: u16, args: &[&str]) -> Self {
        let child = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} is installed (.ci/run installs it): {e}"));
        let node = Self {
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

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A plain connection to this process alone (no redirections followed).
    pub fn connection(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url())?.get_connection_with_timeout(Duration::from_secs(2))
    }

    /// SIGKILL: no goodbye, nothing written after.
    pub fn kill(&mut self) {
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
