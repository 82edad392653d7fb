//! A real Asterisk 22 for end-to-end tests: an instance of its own (`run-asterisk.sh` from
//! `../shared/pbx/asterisk/`) with the shipped kit (`host/asterisk/`) included into a site
//! configuration the way an administrator does it, SIPp phones (agents that register, the
//! carrier that reaches callees, a softphone that calls `c2d`), and the host binary started
//! with `host/click2dial.example.toml`.

#![allow(dead_code, unreachable_pub, missing_docs)]

mod record;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use std::time::{Duration, Instant};

use crate::support::{self, auth_keys, Host, Redis};

/// The installed bundle (`../shared/pbx/asterisk/install.sh`; `.ci/run` runs it).
const ASTERISK: &str = "/opt/asterisk/sbin/asterisk";

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

/// `../shared/pbx/asterisk/run-asterisk.sh`.
fn run_asterisk_script() -> PathBuf {
    repo().join("../shared/pbx/asterisk/run-asterisk.sh")
}

/// The shipped kit.
pub fn kit() -> PathBuf {
    repo().join("host/asterisk")
}

/// SIPp scenarios of these tests.
pub fn scenario(name: &str) -> PathBuf {
    repo().join("tests/asterisk/sipp").join(name)
}

/// Fails the test, saying how to install what is missing, unless Asterisk and SIPp are here.
pub fn require_tools() {
    assert!(
        Path::new(ASTERISK).exists(),
        "Asterisk is not installed: run ../shared/pbx/asterisk/install.sh (.ci/run does)"
    );
    let sipp = Command::new("sipp").arg("-v").output();
    assert!(
        sipp.is_ok(),
        "SIPp is not installed: apt-get install sip-tester (.ci/run does)"
    );
}

pub use crate::support::low_port;

/// What the site configuration around the kit looks like.
#[derive(Clone, Debug)]
pub struct Site {
    /// Include the kit's `extensions.conf` (false: the PBX without click2dial's dialplan).
    pub dialplan_kit: bool,
    /// `[globals]` lines of the site (`C2D_FASTAGI`, `C2D_CALLEE_RING_SECS`, …).
    pub globals: Vec<(String, String)>,
    /// More of the site's own `manager.conf` (other users).
    pub manager_extra: String,
}

impl Default for Site {
    fn default() -> Self {
        Self {
            dialplan_kit: true,
            globals: vec![("C2D_CALLEE_RING_SECS".into(), "6".into())],
            manager_extra: String::new(),
        }
    }
}

/// Agent endpoints of `host/asterisk/pjsip.example.conf` and their passwords.
pub const AGENTS: [(&str, &str); 2] = [("1000", "change-me-1000"), ("1001", "change-me-1001")];

/// One Asterisk instance with the kit; stopped when dropped.
pub struct Asterisk {
    pub dir: PathBuf,
    pub conf: PathBuf,
    pub ami_port: u16,
    pub sip_port: u16,
    /// Where the carrier trunk's SIPp listens.
    pub carrier_port: u16,
    /// Where each agent's phone (SIPp) registered from, by endpoint.
    pub phone_ports: Vec<(String, u16)>,
    pub site: Site,
}

impl Asterisk {
    /// An instance not started yet, in a fresh `/tmp/<prefix>-…` directory (short: the
    /// control socket's path is limited).
    fn unbooted(prefix: &str, site: Site) -> Self {
        require_tools();
        let dir = PathBuf::from(format!(
            "/tmp/{prefix}-{}-{}",
            std::process::id(),
            low_port(1)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let conf = dir.join("conf");
        std::fs::create_dir_all(conf.join("click2dial")).expect("conf dir");
        Self {
            dir,
            conf,
            ami_port: 0,
            sip_port: 0,
            carrier_port: 0,
            phone_ports: Vec::new(),
            site,
        }
    }

    /// Picks ports (and one per agent's phone, for the first `phones` agents), writes the
    /// configuration with `write` and boots; other ports when one was taken meanwhile.
    fn boot_on_free_ports(&mut self, phones: usize, write: fn(&Self), what: &str) {
        let mut attempts = 0;
        loop {
            attempts += 1;
            self.ami_port = low_port(1);
            self.sip_port = low_port(1);
            self.carrier_port = low_port(1);
            self.phone_ports = AGENTS
                .iter()
                .take(phones)
                .map(|(agent, _)| (agent.to_string(), low_port(1)))
                .collect();
            write(self);
            match self.boot() {
                Ok(()) => return,
                Err(3) if attempts < 5 => continue, // a port was taken meanwhile
                Err(code) => panic!(
                    "run-asterisk.sh failed ({code}){what}; log:\n{}\n{}",
                    self.full_log(),
                    self.messages_log()
                ),
            }
        }
    }

    /// Starts an instance with the kit and `site`, then registers the agents' phones.
    pub fn start(site: Site) -> Self {
        let mut asterisk = Self::unbooted("c2d-ast", site);
        asterisk.boot_on_free_ports(AGENTS.len(), Self::write_site, "");
        for (agent, password) in AGENTS {
            asterisk.register(agent, password);
        }
        asterisk
    }

    /// The instance's files (`asterisk.conf`, `log/`, `spool/`).
    pub fn instance(&self) -> PathBuf {
        self.dir.join("inst")
    }

    /// The running instance's configuration directory (a copy of the site's).
    pub fn etc(&self) -> PathBuf {
        self.instance().join("etc")
    }

    /// Where MixMonitor writes the kit's recordings.
    pub fn recordings(&self) -> PathBuf {
        self.instance().join("spool/monitor/click2dial")
    }

    /// `host:port` of the AMI.
    pub fn ami_address(&self) -> String {
        format!("127.0.0.1:{}", self.ami_port)
    }

    /// `host:port` of the PJSIP UDP transport.
    pub fn sip_address(&self) -> String {
        format!("127.0.0.1:{}", self.sip_port)
    }

    /// The port agent `endpoint`'s phone registered from.
    pub fn phone_port(&self, endpoint: &str) -> u16 {
        self.phone_ports
            .iter()
            .find(|(e, _)| e == endpoint)
            .map(|(_, p)| *p)
            .unwrap_or_else(|| panic!("no phone for {endpoint}"))
    }

    /// Asserts that Asterisk logged no ERROR or WARNING line (besides `allowed` ones).
    pub fn assert_clean_log(&self, allowed: &[&str]) {
        let problems: Vec<String> = self
            .problems()
            .into_iter()
            .filter(|line| !allowed.iter().any(|a| line.contains(a)))
            .collect();
        assert!(
            problems.is_empty(),
            "Asterisk logged {} ERROR/WARNING line(s):\n{}",
            problems.len(),
            problems.join("\n")
        );
    }

    /// Starts agent `endpoint`'s phone running `sipp` (its port is the phone's).
    pub fn phone_with(&self, endpoint: &str, sipp: Sipp, name: &str) -> Phone {
        let sipp = Sipp {
            port: self.phone_port(endpoint),
            ..sipp
        };
        let phone = sipp.run(
            &self.sip_address(),
            &self.dir.join(format!("{name}-{endpoint}")),
        );
        std::thread::sleep(Duration::from_millis(300)); // SIPp binds its port
        phone
    }

    /// Starts the carrier trunk's SIPp (where every callee is reached) with `sipp`.
    pub fn carrier(&self, sipp: Sipp, name: &str) -> Phone {
        let sipp = Sipp {
            port: self.carrier_port,
            ..sipp
        };
        let phone = sipp.run(
            &self.sip_address(),
            &self.dir.join(format!("{name}-carrier")),
        );
        std::thread::sleep(Duration::from_millis(300));
        phone
    }

    /// Writes the site's configuration: what an administrator has, plus the kit's files
    /// copied to `click2dial/` and `#include`d, as the README says.
    fn write_site(&self) {
        for file in [
            "extensions.conf",
            "manager.conf",
            "pjsip.conf",
            "pjsip.example.conf",
        ] {
            std::fs::copy(kit().join(file), self.conf.join("click2dial").join(file))
                .expect("copy the kit");
        }
        let write = |name: &str, text: String| {
            std::fs::write(self.conf.join(name), text).expect("write site config")
        };
        write(
            "manager.conf",
            format!(
                "[general]\nenabled = yes\nbindaddr = 127.0.0.1\nport = {}\n\n\
                 #include \"click2dial/manager.conf\"\n\n{}",
                self.ami_port, self.site.manager_extra
            ),
        );
        let globals: String = self
            .site
            .globals
            .iter()
            .map(|(k, v)| format!("{k} = {v}\n"))
            .collect();
        let include = if self.site.dialplan_kit {
            "#include \"click2dial/extensions.conf\"\n"
        } else {
            ""
        };
        write(
            "extensions.conf",
            format!(
                "[general]\nstatic = yes\nwriteprotect = yes\n\n[globals]\n{globals}\n\
                 ; The site's own dialplan, which the kit must leave alone.\n\
                 [from-internal]\nexten => 1000,1,Dial(PJSIP/1000,20)\n\
                 exten => 1001,1,Dial(PJSIP/1001,20)\nexten => 0,1,Answer()\n \
                 same => n,Hangup()\n\n{include}"
            ),
        );
        // The example endpoints as an administrator adopts them: the carrier's documentation
        // address replaced by where the carrier (SIPp) listens.
        let example =
            std::fs::read_to_string(kit().join("pjsip.example.conf")).expect("pjsip.example.conf");
        assert!(example.contains("contact = sip:203.0.113.10:5060"));
        assert!(example.contains("match = 203.0.113.10\n"));
        let carrier = format!("127.0.0.1:{}", self.carrier_port);
        let site_endpoints = example
            .replace(
                "contact = sip:203.0.113.10:5060",
                &format!("contact = sip:{carrier}"),
            )
            .replace("match = 203.0.113.10\n", &format!("match = {carrier}\n"));
        write("pjsip-endpoints.conf", site_endpoints);
        write(
            "pjsip.conf",
            format!(
                "[transport-udp]\ntype = transport\nprotocol = udp\nbind = {}\n\n\
                 #include \"click2dial/pjsip.conf\"\n#include \"pjsip-endpoints.conf\"\n",
                self.sip_address()
            ),
        );
        let rtp = low_port(101).next_multiple_of(2); // Asterisk wants an even start
        write(
            "rtp.conf",
            format!("[general]\nrtpstart = {rtp}\nrtpend = {}\n", rtp + 99),
        );
        // A clean PBX: every module whose configuration this site lacks is not loaded, and
        // the rest have (empty) files, so the log has no ERROR or WARNING of its own and any
        // that appears is the kit's or the calls'.
        for entry in std::fs::read_dir(repo().join("tests/asterisk/site")).expect("site dir") {
            let path = entry.expect("entry").path();
            let name = path.file_name().expect("name").to_owned();
            std::fs::copy(&path, self.conf.join(name)).expect("site file");
        }
    }

    /// Starts Asterisk; `Err(exit code)` when run-asterisk.sh fails (3: a port was taken).
    fn boot(&mut self) -> Result<(), i32> {
        let output = Command::new("bash")
            .arg(run_asterisk_script())
            .arg(self.instance())
            .arg(&self.conf)
            .stderr(Stdio::inherit())
            .output()
            .expect("run-asterisk.sh");
        if output.status.success() {
            Ok(())
        } else {
            Err(output.status.code().unwrap_or(-1))
        }
    }

    /// Stops the instance (keeping its files).
    pub fn stop(&self) {
        let _ = Command::new("bash")
            .arg(run_asterisk_script())
            .arg("--stop")
            .arg(self.instance())
            .stderr(Stdio::null()) // "no pid file" when it is stopped already
            .status();
    }

    /// Stops and starts it again with the same configuration and ports (the old log is
    /// moved to `log.prev`; problems found there so far are kept by the caller).
    pub fn restart(&mut self) {
        self.stop();
        self.boot()
            .unwrap_or_else(|code| panic!("restart failed ({code}):\n{}", self.full_log()));
        for (agent, password) in AGENTS {
            self.register(agent, password);
        }
    }

    /// Runs a CLI command (`asterisk -rx`).
    pub fn cli(&self, command: &str) -> String {
        let output = Command::new(ASTERISK)
            .arg("-C")
            .arg(self.instance().join("asterisk.conf"))
            .arg("-rx")
            .arg(command)
            .output()
            .expect("asterisk -rx");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The instance's `full.log`.
    pub fn full_log(&self) -> String {
        std::fs::read_to_string(self.instance().join("log/full.log")).unwrap_or_default()
    }

    /// `ERROR` and `WARNING` lines of the log.
    pub fn problems(&self) -> Vec<String> {
        self.full_log()
            .lines()
            .filter(|l| l.contains("] ERROR[") || l.contains("] WARNING["))
            .map(str::to_string)
            .collect()
    }

    /// Registers agent `endpoint`'s phone from its port, as a desk phone does.
    fn register(&self, endpoint: &str, password: &str) {
        let port = self.phone_port(endpoint);
        let status = Sipp::new("register.xml", port)
            .args(["-s", endpoint, "-au", endpoint, "-ap", password])
            .run(
                &self.sip_address(),
                &self.dir.join(format!("register-{endpoint}")),
            )
            .wait(Duration::from_secs(10));
        assert!(
            status.is_some_and(|s| s.success()),
            "agent {endpoint} did not register"
        );
    }
}

impl Drop for Asterisk {
    fn drop(&mut self) {
        self.stop();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("Asterisk instance kept in {}", self.dir.display());
        }
    }
}

/// A SIPp run being built.
pub struct Sipp {
    scenario: String,
    port: u16,
    args: Vec<String>,
}

impl Sipp {
    /// `scenario` (a file of `tests/asterisk/sipp/`) on local UDP `port`.
    pub fn new(scenario: &str, port: u16) -> Self {
        Self {
            scenario: scenario.to_string(),
            port,
            args: Vec::new(),
        }
    }

    /// More SIPp arguments.
    pub fn args<'a>(mut self, args: impl IntoIterator<Item = &'a str>) -> Self {
        self.args.extend(args.into_iter().map(str::to_string));
        self
    }

    /// A `-key name value` pair.
    pub fn key(self, name: &str, value: &str) -> Self {
        self.args(["-key", name, value])
    }

    /// Starts SIPp against `remote`; its messages go to `<base>.msg`, errors to `<base>.err`.
    pub fn run(self, remote: &str, base: &Path) -> Phone {
        let media = low_port(4);
        let messages = base.with_extension("msg");
        let errors = base.with_extension("err");
        let child = Command::new("sipp")
            .arg("-sf")
            .arg(scenario(&self.scenario))
            .args(["-i", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-mp", &media.to_string(), "-m", "1", "-nostdin"])
            .args(["-timeout", "60s", "-timeout_error"])
            .arg("-trace_msg")
            .arg("-message_file")
            .arg(&messages)
            .arg("-trace_err")
            .arg("-error_file")
            .arg(&errors)
            .args(&self.args)
            .arg(remote)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp");
        Phone {
            child,
            messages,
            errors,
        }
    }
}

/// A running SIPp; killed when dropped.
pub struct Phone {
    child: Child,
    messages: PathBuf,
    errors: PathBuf,
}

impl Phone {
    /// Waits for SIPp to end, at most `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
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

    /// Waits for a successful end (exit 0), or panics with SIPp's error log.
    pub fn expect_success(&mut self, timeout: Duration, what: &str) {
        let status = self.wait(timeout);
        assert!(
            status.is_some_and(|s| s.success()),
            "{what}: SIPp ended with {status:?}\nerrors:\n{}\nmessages:\n{}",
            std::fs::read_to_string(&self.errors).unwrap_or_default(),
            self.messages()
        );
    }

    /// Every SIP message SIPp sent and received so far.
    pub fn messages(&self) -> String {
        std::fs::read_to_string(&self.messages).unwrap_or_default()
    }

    /// The SIP requests received with this method (`INVITE`, `BYE`, …), whole.
    pub fn received(&self, method: &str) -> Vec<String> {
        sip_messages(&self.messages())
            .into_iter()
            .filter(|(received, m)| *received && m.starts_with(&format!("{method} ")))
            .map(|(_, m)| m)
            .collect()
    }

    /// The final responses (status >= 200) received, as status lines' codes.
    pub fn received_finals(&self) -> Vec<u16> {
        sip_messages(&self.messages())
            .into_iter()
            .filter(|(received, _)| *received)
            .filter_map(|(_, m)| {
                m.strip_prefix("SIP/2.0 ")
                    .and_then(|r| r.get(..3))
                    .and_then(|c| c.parse().ok())
            })
            .filter(|code| *code >= 200)
            .collect()
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        support::kill(&mut self.child);
    }
}

/// SIPp's `-trace_msg` file split into messages: `(received, text)`.
fn sip_messages(log: &str) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    let mut current: Option<(bool, String)> = None;
    for line in log.lines() {
        if line.starts_with("----------------------------------------------- ") {
            if let Some(message) = current.take() {
                out.push(message);
            }
            continue;
        }
        let received_header = line.contains(" message received [");
        let sent_header = line.contains(" message sent (") || line.contains(" message sent [");
        if received_header || sent_header {
            if let Some(message) = current.take() {
                out.push(message);
            }
            current = Some((received_header, String::new()));
            continue;
        }
        if let Some((_, text)) = current.as_mut() {
            if text.is_empty() && line.trim().is_empty() {
                continue;
            }
            text.push_str(line.trim_end_matches('\r'));
            text.push('\n');
        }
    }
    out.extend(current);
    out
}

/// The value of header `name` in a SIP message (case-insensitive).
pub fn sip_header<'m>(message: &'m str, name: &str) -> Option<&'m str> {
    message.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Redis, the real Asterisk with the kit, and the host configured from
/// `host/click2dial.example.toml` as shipped (addresses and ports overridden by `C2D_*`).
pub struct Lab {
    // Dropped in this order: the host first, so it does not log the PBX going away.
    pub host: Host,
    pub asterisk: Asterisk,
    pub redis: Redis,
    pub fastagi: String,
}

impl Lab {
    /// Everything started with the default site and the host ready.
    pub fn start() -> Self {
        Self::start_with(Site::default(), &[])
    }

    /// With `site` and the host's extra `C2D_*` variables.
    pub fn start_with(mut site: Site, extra: &[(&str, &str)]) -> Self {
        let fastagi = format!("127.0.0.1:{}", low_port(1));
        if !site.globals.iter().any(|(k, _)| k == "C2D_FASTAGI") {
            site.globals
                .push(("C2D_FASTAGI".into(), format!("agi://{fastagi}/click2dial")));
        }
        let asterisk = Asterisk::start(site);
        let redis = Redis::start();
        let host = start_host(&asterisk, &redis, &fastagi, extra);
        Self {
            host,
            asterisk,
            redis,
            fastagi,
        }
    }

    /// With the default site, the host reaching Asterisk's AMI through a
    /// [`Cutter`](crate::support::cutter::Cutter) (so a test can cut the connection).
    pub fn start_behind_cutter() -> (Self, crate::support::cutter::Cutter) {
        let fastagi = format!("127.0.0.1:{}", low_port(1));
        let mut site = Site::default();
        site.globals
            .push(("C2D_FASTAGI".into(), format!("agi://{fastagi}/click2dial")));
        let asterisk = Asterisk::start(site);
        let redis = Redis::start();
        let cutter = crate::support::cutter::Cutter::start(&asterisk.ami_address());
        let address = cutter.address.clone();
        let host = start_host(
            &asterisk,
            &redis,
            &fastagi,
            &[("C2D_AMI__ADDRESS", &address)],
        );
        let lab = Self {
            host,
            asterisk,
            redis,
            fastagi,
        };
        (lab, cutter)
    }

    /// An AMI session of its own on this Asterisk, as the kit's manager user.
    pub fn monitor(&self) -> AmiMonitor {
        AmiMonitor::login(&self.asterisk.ami_address(), "c2d", "c2d-change-me")
    }

    /// What the host logged so far.
    pub fn host_log(&self) -> String {
        std::fs::read_to_string(host_log_path(&self.asterisk)).unwrap_or_default()
    }

    /// Waits until `/readyz` answers 200.
    pub fn wait_ready(&self) {
        let ready = support::eventually(Duration::from_secs(20), || {
            self.host.get("/readyz").status == 200
        });
        assert!(
            ready,
            "the host never became ready: {}",
            String::from_utf8_lossy(&self.host.get("/readyz").body)
        );
    }

    /// Starts agent `endpoint`'s phone with `scenario`.
    pub fn phone(&self, endpoint: &str, scenario: &str, name: &str) -> Phone {
        self.asterisk
            .phone_with(endpoint, Sipp::new(scenario, 0), name)
    }

    /// Starts agent `endpoint`'s phone running `sipp` (its port is the phone's).
    pub fn phone_with(&self, endpoint: &str, sipp: Sipp, name: &str) -> Phone {
        self.asterisk.phone_with(endpoint, sipp, name)
    }

    /// Starts the carrier trunk's SIPp (where every callee is reached) with `sipp`.
    pub fn carrier(&self, sipp: Sipp, name: &str) -> Phone {
        self.asterisk.carrier(sipp, name)
    }

    /// Asserts that Asterisk logged no ERROR or WARNING line (besides `allowed` ones).
    pub fn assert_clean_log(&self, allowed: &[&str]) {
        self.asterisk.assert_clean_log(allowed);
    }
}

/// Where [`start_host`] writes the host's log.
pub fn host_log_path(asterisk: &Asterisk) -> PathBuf {
    asterisk.dir.join("host.log")
}

/// The host binary with `host/click2dial.example.toml`, pointed at this Asterisk and Redis;
/// its log (`warn` and up unless `extra` sets `RUST_LOG`) goes to [`host_log_path`].
pub fn start_host(
    asterisk: &Asterisk,
    redis: &Redis,
    fastagi: &str,
    extra: &[(&str, &str)],
) -> Host {
    let config = repo().join("host/click2dial.example.toml");
    let mut command = host_command(asterisk, redis, fastagi, &config);
    command.env("C2D_AMI__ADDRESS", asterisk.ami_address());
    run_host(asterisk, command, extra)
}

/// As [`start_host`], with `config` (which names its PBXes, `[[pbx]]`) in place of the
/// example and no `[ami] address` override.
pub fn start_host_with_config(
    asterisk: &Asterisk,
    redis: &Redis,
    fastagi: &str,
    config: &Path,
    extra: &[(&str, &str)],
) -> Host {
    let command = host_command(asterisk, redis, fastagi, config);
    run_host(asterisk, command, extra)
}

/// The host's command with `config`, this Asterisk's recordings and Redis.
fn host_command(asterisk: &Asterisk, redis: &Redis, fastagi: &str, config: &Path) -> Command {
    // README "Connect to your Asterisk", step 5: the recordings directory is made before the
    // first call (MixMonitor would make it at the first recording; until then `/readyz`
    // says `degraded`).
    std::fs::create_dir_all(asterisk.recordings()).expect("recordings dir");
    let mut command = Command::new(support::host_binary());
    for (key, _) in std::env::vars() {
        if key.starts_with("C2D_") {
            command.env_remove(key);
        }
    }
    command
        .arg("--config")
        .arg(config)
        .arg("run")
        .env("C2D_HTTP__HTTP_PORT", "0")
        .env("C2D_HTTP__PUBLIC_URL", "http://127.0.0.1:1")
        .env("C2D_AMI__MAX_BACKOFF_SECS", "2")
        .env("C2D_REDIS__URL", redis.url())
        .env("C2D_RECORDINGS__DIR", asterisk.recordings())
        .env("C2D_FASTAGI__LISTEN", fastagi)
        // Softphone calls belong to the test key, which reads their recordings.
        .env("C2D_FASTAGI__OWNER_KEY", "e2e")
        .env("C2D_AUTH__KEYS", auth_keys(&[]))
        .env("RUST_LOG", "warn");
    command
}

/// Runs the host's `command` with `extra` variables, its log to [`host_log_path`].
fn run_host(asterisk: &Asterisk, mut command: Command, extra: &[(&str, &str)]) -> Host {
    for (k, v) in extra {
        command.env(k, v);
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(host_log_path(asterisk))
        .expect("host log");
    Host::from_command(command, Stdio::from(log))
}

/// An AMI session that only listens: every frame the PBX sends, kept for comparison.
pub struct AmiMonitor {
    stream: std::net::TcpStream,
    bytes: Vec<u8>,
}

impl AmiMonitor {
    /// Connects to `address` and logs in as `username`/`secret`.
    pub fn login(address: &str, username: &str, secret: &str) -> Self {
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(address).expect("AMI connect");
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let login = format!(
            "Action: Login\r\nActionID: monitor\r\nUsername: {username}\r\nSecret: {secret}\r\n\r\n"
        );
        stream.write_all(login.as_bytes()).expect("login");
        let mut monitor = Self {
            stream,
            bytes: Vec::new(),
        };
        // Events reach a session once it is logged in: wait for the answer.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !String::from_utf8_lossy(&monitor.bytes).contains("Authentication accepted") {
            assert!(Instant::now() < deadline, "the AMI login was not accepted");
            monitor.read_until_quiet(Duration::from_millis(100), Duration::from_millis(200));
        }
        monitor
    }

    /// Reads until the PBX has been silent for `quiet` (at most `limit` in all).
    pub fn read_until_quiet(&mut self, quiet: Duration, limit: Duration) {
        use std::io::Read;
        let start = Instant::now();
        let mut last = Instant::now();
        let mut chunk = [0u8; 16384];
        while start.elapsed() < limit && last.elapsed() < quiet {
            match self.stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    self.bytes.extend_from_slice(&chunk[..n]);
                    last = Instant::now();
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("AMI read: {e}"),
            }
        }
    }

    /// Every event received, by name, with its `Variable` header (a `VarSet`'s).
    pub fn events(&self) -> Vec<(String, Option<String>)> {
        use click2dial_core::ami::{Decoder, Frame};
        let mut decoder = Decoder::new();
        let mut rest = &self.bytes[..];
        let mut events = Vec::new();
        while let Ok(Some(decoded)) = decoder.decode(rest) {
            rest = &rest[decoded.len..];
            if let Frame::Message(message) = decoded.frame {
                if let Some(name) = message.event() {
                    events.push((
                        name.to_string(),
                        message.get("Variable").map(str::to_string),
                    ));
                }
            }
        }
        events
    }

    /// The `ChannelId` of the first call the host originated: the `Uniqueid` of the first
    /// channel whose `Uniqueid` starts with `c2d-` (the host's ids; its own actions are
    /// `c2d-pf-…` and `c2d-ping`, never channels).
    pub fn originated_channel(&self) -> Option<String> {
        use click2dial_core::ami::{Decoder, Frame};
        let mut decoder = Decoder::new();
        let mut rest = &self.bytes[..];
        while let Ok(Some(decoded)) = decoder.decode(rest) {
            rest = &rest[decoded.len..];
            if let Frame::Message(message) = decoded.frame {
                if message.is_event("Newchannel") {
                    if let Some(id) = message.uniqueid().filter(|u| u.starts_with("c2d-")) {
                        return Some(id.to_string());
                    }
                }
            }
        }
        None
    }

    /// The `Uniqueid` of the first channel whose name starts with `prefix` (`Newchannel`).
    pub fn uniqueid_of(&self, prefix: &str) -> Option<String> {
        use click2dial_core::ami::{Decoder, Frame};
        let mut decoder = Decoder::new();
        let mut rest = &self.bytes[..];
        while let Ok(Some(decoded)) = decoder.decode(rest) {
            rest = &rest[decoded.len..];
            if let Frame::Message(message) = decoded.frame {
                if message.is_event("Newchannel")
                    && message.channel().is_some_and(|c| c.starts_with(prefix))
                {
                    return message.uniqueid().map(str::to_string);
                }
            }
        }
        None
    }

    /// What the host's call tracker reads of the call `channel_id`, one token per event in
    /// the order received (`A` is the originated channel, `B` any other), and the
    /// `OriginateResponse` apart (Asterisk sends it at no fixed place). See [`by_source`].
    pub fn call_events(&self, channel_id: &str) -> (Vec<String>, Option<String>) {
        use click2dial_core::ami::{Decoder, Frame};
        use click2dial_core::call::ChannelEvent;
        let leg = |uniqueid: &str| if uniqueid == channel_id { "A" } else { "B" };
        let mut decoder = Decoder::new();
        let mut rest = &self.bytes[..];
        let mut events = Vec::new();
        let mut originate = None;
        while let Ok(Some(decoded)) = decoder.decode(rest) {
            rest = &rest[decoded.len..];
            let Frame::Message(message) = decoded.frame else {
                continue;
            };
            let Some((key, event)) = ChannelEvent::from_message(&message) else {
                continue;
            };
            if key != channel_id {
                continue;
            }
            let token = match event {
                ChannelEvent::Newchannel { uniqueid } => format!("Newchannel({})", leg(uniqueid)),
                ChannelEvent::Newstate { uniqueid, state } => {
                    format!("Newstate({},{state:?})", leg(uniqueid))
                }
                ChannelEvent::DialBegin { dest_uniqueid, .. } => {
                    format!("DialBegin({})", leg(dest_uniqueid))
                }
                ChannelEvent::DialState {
                    dest_uniqueid,
                    status,
                } => format!("DialState({},{status:?})", leg(dest_uniqueid)),
                ChannelEvent::DialEnd {
                    dest_uniqueid,
                    status,
                } => format!("DialEnd({},{status:?})", leg(dest_uniqueid)),
                ChannelEvent::BridgeEnter { uniqueid } => format!("BridgeEnter({})", leg(uniqueid)),
                ChannelEvent::MixMonitorStart => "MixMonitorStart".to_string(),
                ChannelEvent::Hangup { uniqueid, cause } => {
                    format!("Hangup({},{cause})", leg(uniqueid))
                }
                ChannelEvent::OriginateResponse { success, reason } => {
                    originate = Some(format!("OriginateResponse({success},{reason})"));
                    continue;
                }
            };
            events.push(token);
        }
        (events, originate)
    }
}

// ---------------------------------------------------------------------------------------
// "Your Asterisk": Asterisk's own upstream sample configuration, as a packaged Asterisk's
// /etc/asterisk looks, with the kit connected as the README's "Connect to your Asterisk" says.

/// The upstream sample configuration files (`<name>.conf.sample`) of the installed bundle.
pub const SAMPLES: &str = "/opt/asterisk/share/asterisk/samples";

/// Sample files left out: their modules open fixed ports of their own (IAX2 4569, DUNDi
/// 4520, UNIStim 5000), which parallel instances (and other software) would fight over.
pub const SAMPLES_LEFT_OUT: [&str; 3] = ["iax.conf", "dundi.conf", "unistim.conf"];

/// `text` with `from` replaced by `to`, which must occur exactly once.
fn replace_once(text: &str, from: &str, to: &str, file: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "{file}: expected `{from}` once in the sample"
    );
    text.replacen(from, to, 1)
}

/// `ERROR`/`WARNING` lines of a log, normalised for comparing two instances: no timestamp,
/// no thread id (`WARNING[123]` becomes `WARNING`), `workdir` replaced by `<WORKDIR>`.
pub fn normalised_problems(log: &str, workdir: &Path) -> std::collections::BTreeSet<String> {
    let workdir = workdir.display().to_string();
    log.lines()
        .filter_map(|line| {
            let line = match line.strip_prefix('[') {
                Some(rest) => rest.split_once("] ").map_or(line, |(_, after)| after),
                None => line,
            };
            let (level, rest) = line.split_once('[')?;
            if level != "ERROR" && level != "WARNING" {
                return None;
            }
            let (thread, rest) = rest.split_once(']')?;
            if !thread.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            Some(format!("{level}{}", rest.replace(&workdir, "<WORKDIR>")))
        })
        .collect()
}

impl Asterisk {
    /// An instance configured with Asterisk's upstream sample files, copied without the
    /// `.sample` suffix, and only what an administrator must change so that nothing clashes:
    /// the AMI port and address (`manager.conf`; the sample leaves the AMI off), a PJSIP
    /// transport on its own port (the sample `pjsip.conf` has none), an own RTP range, and
    /// [`SAMPLES_LEFT_OUT`]. No kit, no agents' phones.
    pub fn start_samples() -> Self {
        let mut asterisk = Self::unbooted("c2d-smp", Site::default());
        asterisk.boot_on_free_ports(0, Self::write_samples, " with the sample configuration");
        asterisk
    }

    /// Writes the sample configuration (with the port changes) into the site's directory.
    fn write_samples(&self) {
        let _ = std::fs::remove_dir_all(&self.conf);
        std::fs::create_dir_all(&self.conf).expect("conf dir");
        for entry in std::fs::read_dir(SAMPLES).expect("sample configs") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            let Some(conf) = name.strip_suffix(".conf.sample") else {
                continue;
            };
            let conf = format!("{conf}.conf");
            if SAMPLES_LEFT_OUT.contains(&conf.as_str()) {
                continue;
            }
            std::fs::copy(&path, self.conf.join(conf)).expect("copy sample");
        }
        let edit = |name: &str, change: &dyn Fn(String) -> String| {
            let path = self.conf.join(name);
            let text = std::fs::read_to_string(&path).expect(name);
            std::fs::write(&path, change(text)).expect(name);
        };
        edit("manager.conf", &|t| {
            let t = replace_once(
                &t,
                "\nport = 5038\n",
                &format!("\nport = {}\n", self.ami_port),
                "manager.conf",
            );
            replace_once(
                &t,
                "\nbindaddr = 0.0.0.0\n",
                "\nbindaddr = 127.0.0.1\n",
                "manager.conf",
            )
        });
        edit("pjsip.conf", &|t| {
            format!(
                "{t}\n[transport-udp]\ntype=transport\nprotocol=udp\nbind={}\n",
                self.sip_address()
            )
        });
        let rtp = low_port(101).next_multiple_of(2);
        edit("rtp.conf", &|t| {
            let t = replace_once(
                &t,
                "\nrtpstart=10000\n",
                &format!("\nrtpstart={rtp}\n"),
                "rtp.conf",
            );
            replace_once(
                &t,
                "\nrtpend=20000\n",
                &format!("\nrtpend={}\n", rtp + 99),
                "rtp.conf",
            )
        });
    }

    /// Connects the kit to the configuration in `etc` (the site's directory, or the running
    /// instance's `/etc/asterisk`) as the README's "Connect to your Asterisk" says: step 1
    /// (the kit copied to `click2dial/`, `#include`d at the end of `extensions.conf`,
    /// `manager.conf` and `pjsip.conf`; `enabled = yes` in `manager.conf`'s `[general]`) and
    /// step 3 (the agents and the carrier of `pjsip.example.conf` in `pjsip.conf`, the
    /// carrier's documentation address replaced by `carrier_port` on 127.0.0.1).
    pub fn connect_kit(&self, etc: &Path) {
        std::fs::create_dir_all(etc.join("click2dial")).expect("click2dial dir");
        for entry in std::fs::read_dir(kit()).expect("kit") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "conf") {
                std::fs::copy(
                    &path,
                    etc.join("click2dial").join(path.file_name().expect("name")),
                )
                .expect("copy the kit");
            }
        }
        let append = |name: &str, more: &str| {
            let path = etc.join(name);
            let text = std::fs::read_to_string(&path).expect(name);
            std::fs::write(&path, format!("{text}\n{more}")).expect(name);
        };
        let path = etc.join("manager.conf");
        let manager = std::fs::read_to_string(&path).expect("manager.conf");
        let manager = replace_once(
            &manager,
            "\nenabled = no\n",
            "\nenabled = yes\n",
            "manager.conf",
        );
        std::fs::write(&path, manager).expect("manager.conf");
        append(
            "extensions.conf",
            "#include \"click2dial/extensions.conf\"\n",
        );
        append("manager.conf", "#include \"click2dial/manager.conf\"\n");
        let carrier = format!("127.0.0.1:{}", self.carrier_port);
        let example =
            std::fs::read_to_string(kit().join("pjsip.example.conf")).expect("pjsip.example.conf");
        let endpoints = replace_once(
            &example,
            "contact = sip:203.0.113.10:5060",
            &format!("contact = sip:{carrier}"),
            "pjsip.example.conf",
        );
        let endpoints = replace_once(
            &endpoints,
            "match = 203.0.113.10\n",
            &format!("match = {carrier}\n"),
            "pjsip.example.conf",
        );
        append(
            "pjsip.conf",
            &format!("#include \"click2dial/pjsip.conf\"\n\n{endpoints}"),
        );
    }

    /// The instance's `messages.log` (the sample `logger.conf` writes no `full.log`).
    pub fn messages_log(&self) -> String {
        std::fs::read_to_string(self.instance().join("log/messages.log")).unwrap_or_default()
    }

    /// [`normalised_problems`] of `messages.log`.
    pub fn normalised_problems(&self) -> std::collections::BTreeSet<String> {
        normalised_problems(&self.messages_log(), &self.instance())
    }

    /// Stops and starts the instance again from the site's directory, same ports, no phones.
    pub fn reboot(&mut self) {
        self.stop();
        self.boot()
            .unwrap_or_else(|code| panic!("restart failed ({code}):\n{}", self.messages_log()));
    }
}

/// Call events ([`AmiMonitor::call_events`]) grouped by the Asterisk thread that emits them,
/// each group in order: a channel's own events (`Newchannel`, `Newstate`, `BridgeEnter`,
/// `Hangup`; `MixMonitorStart` runs on the originated channel) under its leg, and the
/// `DialBegin`/`DialState`/`DialEnd` about a channel under `dial→<leg>` (the dialling side
/// sends those). Asterisk interleaves different threads' events differently from run to
/// run (seen here: `Newstate(B)` before or after `DialBegin(B)`, `Newstate(A)` before or
/// after `DialState(A)`, the last two `Hangup`s in either order), and the call tracker takes
/// any interleaving (core/tests/call_transcripts.rs swaps them); within a group the order is
/// causal and compared exactly.
pub fn by_source(events: &[String]) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut groups: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for event in events {
        let leg = event
            .split_once('(')
            .map(|(_, rest)| rest.trim_end_matches(')'))
            .and_then(|args| args.split(',').next())
            .unwrap_or("A");
        let group = if event.starts_with("Dial") {
            format!("dial→{leg}")
        } else {
            leg.to_string()
        };
        groups.entry(group).or_default().push(event.clone());
    }
    groups
}
