//! The SIP.js softphone (`/console/softphone.html`, served by the host) in headless Chromium,
//! registered over a WebSocket to a real Kamailio (tests/browser/kamailio.cfg), against SIPp
//! on the UDP side: it shows the `X-Teleforge-*` values of a SIPp INVITE, rejects it, sends
//! the headers on its own INVITE (checked by a SIPp UAS), and unregisters.
//!
//! Needs `chromium`, `kamailio` with its websocket module, `sipp` and `node` with the npm
//! packages of tests/browser (`bash .ci/browser.sh` installs them all); without them the test
//! fails, it never skips. Screenshots and logs go to `target/browser-artifacts/softphone/`.

use std::io::{BufRead, BufReader};
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use crate::support::browser::{artifacts_dir, browser_dir, require, require_browser, SETUP};
use crate::support::{free_port, kill, world};

/// The `X-Teleforge-*` values of the SIPp INVITE that rings the softphone: SIPp `-key` name,
/// header, value. The recording reference is markup on purpose: the page must show it as text.
const INCOMING: [(&str, &str, &str); 5] = [
    ("agent", "X-Teleforge-Agent", "1002"),
    ("callee", "X-Teleforge-Callee", "0820005678"),
    ("outbound", "X-Teleforge-Outbound-Id", "27820009999"),
    ("contact", "X-Teleforge-Contact-Ref", "crm-incoming-42"),
    ("recording", "X-Teleforge-Recording-Ref", "rec-<b>9</b>"),
];

/// The contact reference of the click-to-dial call the page answers by itself (the other
/// values are [`INCOMING`]'s).
const AUTO_CONTACT_REF: &str = "crm-auto-43";

/// What the test types into the page's call form: variable for the page, header, value. The
/// SIPp UAS (tests/browser/sipp/uas_c2d.xml) checks these exact values.
const OUTGOING: [(&str, &str, &str); 4] = [
    ("C2D_OUT_CALLEE", "X-Teleforge-Callee", "0820001234"),
    (
        "C2D_OUT_OUTBOUND_ID",
        "X-Teleforge-Outbound-Id",
        "27820001234",
    ),
    (
        "C2D_OUT_CONTACT_REF",
        "X-Teleforge-Contact-Ref",
        "crm-softphone-7",
    ),
    ("C2D_OUT_AGENT", "X-Teleforge-Agent", "1002"),
];

/// Every wait of the test is bounded by this.
const STEP: Duration = Duration::from_secs(15);

/// Chromium and Kamailio, or a clear failure unless every tool of the test is installed.
fn preflight() -> (PathBuf, PathBuf) {
    let chromium = require_browser();
    let kamailio = require("kamailio", "kamailio");
    // Debian's module directory: /usr/lib/<multiarch triple>/kamailio/modules.
    let websocket = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .any(|dir| dir.path().join("kamailio/modules/websocket.so").is_file());
    assert!(
        websocket,
        "Kamailio's websocket module not found (Debian package kamailio-websocket-modules): {SETUP}"
    );
    require("sipp", "sip-tester");
    (chromium, kamailio)
}

/// A free UDP port on 127.0.0.1 (bound, then released).
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port")
}

/// A child process killed when the test ends, passed or not.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        kill(&mut self.0);
    }
}

/// Waits for `child` to exit, at most `timeout`; kills it when it does not.
fn wait_bounded(child: &mut Child, what: &str, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            kill(child);
            panic!("{what} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// SIPp's error lines (a failed `check_it` regexp, …) from its screen log: they start with a
/// date, the screens do not.
fn sipp_errors(screen: &Path) -> String {
    std::fs::read_to_string(screen)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("20"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Kamailio from tests/browser/kamailio.cfg: UDP and WebSocket listeners on free ports, its
/// own run directory, `c2d` routed to `uas`.
struct Kamailio {
    child: Child,
    log: PathBuf,
    udp: u16,
    ws: u16,
    _run: tempfile::TempDir,
}

impl Kamailio {
    fn start(program: &Path, uas: &str, log: PathBuf) -> Self {
        let run = tempfile::tempdir().expect("run dir");
        let (udp, ws) = (free_udp_port(), free_port());
        let mut command = Command::new(program);
        command
            .args(["-DD", "-E", "-m", "32", "-M", "4"])
            .arg("-f")
            .arg(browser_dir().join("kamailio.cfg"))
            .arg("-Y")
            .arg(run.path())
            .arg("-P")
            .arg(run.path().join("kamailio.pid"))
            .arg("-w")
            .arg(run.path())
            .args(["-l", &format!("udp:127.0.0.1:{udp}")])
            .args(["-l", &format!("tcp:127.0.0.1:{ws}")])
            .args(["-A", &format!("C2D_UAS=\"{uas}\"")]);
        let file = std::fs::File::create(&log).expect("kamailio log");
        let child = command
            .stdout(file.try_clone().expect("kamailio log"))
            .stderr(file)
            .spawn()
            .expect("kamailio");
        let mut kamailio = Self {
            child,
            log,
            udp,
            ws,
            _run: run,
        };
        let deadline = Instant::now() + STEP;
        while TcpStream::connect(("127.0.0.1", ws)).is_err() {
            if let Ok(Some(status)) = kamailio.child.try_wait() {
                panic!("kamailio exited ({status}):\n{}", tail(&kamailio.log, 30));
            }
            assert!(
                Instant::now() < deadline,
                "kamailio did not listen on {ws}:\n{}",
                tail(&kamailio.log, 30)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        kamailio
    }
}

impl Drop for Kamailio {
    /// SIGTERM: the main process stops its worker processes before it exits.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        kill(&mut self.child);
    }
}

/// A SIPp command for one call of `scenario` (tests/browser/sipp/), its screen and messages
/// logged under `artifacts` as `<name>-screen.log` and `<name>-messages.log`, on UDP `port`
/// (SIPp would take 5060 when it is free, which a parallel test may want).
fn sipp(scenario: &str, name: &str, artifacts: &Path, port: u16) -> Command {
    let screen = std::fs::File::create(artifacts.join(format!("{name}-screen.log"))).expect("log");
    let mut command = Command::new("sipp");
    command
        .arg("-sf")
        .arg(browser_dir().join("sipp").join(scenario))
        .args(["-i", "127.0.0.1", "-m", "1", "-nostdin"])
        .args(["-timeout", "15", "-timeout_error"])
        .arg("-trace_msg")
        .arg("-message_file")
        .arg(artifacts.join(format!("{name}-messages.log")))
        .arg("-trace_logs")
        .arg("-log_file")
        .arg(artifacts.join(format!("{name}-actions.log")))
        .args(["-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(screen.try_clone().expect("log"))
        .stderr(screen);
    command
}

/// The node script (tests/browser/softphone.test.mjs) and its stdout lines.
struct Node {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    log: PathBuf,
    kamailio_log: PathBuf,
    screenshots: Vec<PathBuf>,
}

impl Node {
    /// The rest of the first line that starts with `prefix` (screenshot lines are collected
    /// on the way); fails with the page's and Kamailio's logs when none comes.
    fn expect(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    eprintln!("softphone: {line}");
                    if let Some(path) = line.strip_prefix("screenshot ") {
                        self.screenshots.push(PathBuf::from(path));
                    } else if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.trim().to_string();
                    }
                }
                Err(error) => {
                    kill(&mut self.child);
                    panic!(
                        "no `{prefix}` from the softphone script ({error:?})\n--- node/page log:\n{}\n--- kamailio log:\n{}",
                        tail(&self.log, 40),
                        tail(&self.kamailio_log, 30)
                    );
                }
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

#[test]
fn softphone_shows_and_sends_the_teleforge_headers_through_kamailio() {
    let started = Instant::now();
    let (chromium, kamailio) = preflight();
    let artifacts = artifacts_dir("softphone");
    let w = world(&[]);
    // The host embeds the pages at build time: a binary older than them would test old pages.
    for file in ["softphone.html", "softphone.js", "softphone.css"] {
        let served = w
            .host
            .request("GET", &format!("/console/{file}"), None, &[], None);
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../host/console")
            .join(file);
        assert!(
            served.body == std::fs::read(&source).expect("page source"),
            "the host serves an old {file}: run `cargo build -p click2dial-host`"
        );
    }

    // The PBX's c2d extension: a SIPp UAS that checks the headers of the page's INVITE.
    let uas_port = free_udp_port();
    let mut uas = Guard(
        sipp("uas_c2d.xml", "uas", &artifacts, uas_port)
            .spawn()
            .expect("sipp"),
    );
    let kamailio = Kamailio::start(
        &kamailio,
        &format!("sip:127.0.0.1:{uas_port}"),
        artifacts.join("kamailio.log"),
    );

    let page = format!(
        "{}/console/softphone.html?server=ws://127.0.0.1:{}&uri=sip:1002@127.0.0.1&display-name=Agent%201002",
        w.host.url, kamailio.ws
    );
    let node_log = artifacts.join("node.log");
    let mut command = Command::new("node");
    command
        .arg("softphone.test.mjs")
        .current_dir(browser_dir())
        .env("C2D_PAGE_URL", &page)
        .env("C2D_ARTIFACTS", &artifacts)
        .env("C2D_CHROMIUM", &chromium)
        .env("C2D_AUTO_CONTACT_REF", AUTO_CONTACT_REF);
    for (variable, _, value) in OUTGOING {
        command.env(variable, value);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&node_log).expect("node log"))
        .spawn()
        .expect("node");
    let (tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut node = Node {
        stdin: child.stdin.take(),
        child,
        lines,
        log: node_log,
        kamailio_log: kamailio.log.clone(),
        screenshots: Vec::new(),
    };

    // Registered through Kamailio's WebSocket listener.
    node.expect("registered");

    // The PBX rings the softphone through Kamailio's UDP listener; the page rejects it.
    let mut uac = sipp(
        "uac_invite_softphone.xml",
        "uac",
        &artifacts,
        free_udp_port(),
    );
    uac.arg(format!("127.0.0.1:{}", kamailio.udp))
        .args(["-s", "1002"]);
    for (key, _, value) in INCOMING {
        uac.args(["-key", key, value]);
    }
    let mut uac = Guard(uac.spawn().expect("sipp"));
    let incoming = json(&node.expect("incoming"));
    let status = wait_bounded(&mut uac.0, "the SIPp UAC", STEP);
    assert!(
        status.success(),
        "the SIPp UAC did not get 486 from the softphone ({status}):\n{}",
        tail(&artifacts.join("uac-messages.log"), 40)
    );
    let uac_messages =
        std::fs::read_to_string(artifacts.join("uac-messages.log")).unwrap_or_default();
    assert!(
        uac_messages.contains("SIP/2.0 486 Busy Here"),
        "{uac_messages}"
    );

    for (_, header, value) in INCOMING {
        assert_eq!(
            incoming["values"][header]["text"], value,
            "{header} as the page shows it: {incoming}"
        );
        assert_eq!(incoming["values"][header]["present"], "true", "{header}");
    }
    assert_eq!(
        incoming["elementsInValues"], 0,
        "a header value became markup"
    );
    assert_eq!(incoming["clickToDial"], "true", "{incoming}");
    assert_eq!(incoming["callState"], "ringing (click-to-dial)");
    assert_eq!(incoming["afterReject"], "rejected (486 Busy Here)");

    // With auto-answer on, a click-to-dial call is answered by the page (200 OK, ACK), then
    // the caller hangs up (BYE, 200 OK).
    node.expect("auto-answer-on");
    let mut auto = sipp("uac_auto_answer.xml", "auto", &artifacts, free_udp_port());
    auto.arg(format!("127.0.0.1:{}", kamailio.udp))
        .args(["-s", "1002"]);
    for (key, _, value) in INCOMING {
        let value = if key == "contact" {
            AUTO_CONTACT_REF
        } else {
            value
        };
        auto.args(["-key", key, value]);
    }
    let mut auto = Guard(auto.spawn().expect("sipp"));
    let answered = json(&node.expect("auto"));
    let status = wait_bounded(&mut auto.0, "the SIPp auto-answer UAC", STEP);
    assert!(
        status.success(),
        "the softphone did not answer the click-to-dial call by itself ({status}):\n{}",
        tail(&artifacts.join("auto-messages.log"), 60)
    );
    let events = answered["events"].to_string();
    for event in [
        "auto-answering the click-to-dial call",
        "incoming call established",
        "incoming call ended",
    ] {
        assert!(events.contains(event), "{event:?} not in {events}");
    }
    assert_eq!(answered["callState"], "ended", "{answered}");

    // The page's own call reached the UAS with the headers, which declined it.
    let outgoing = json(&node.expect("outgoing"));
    assert_eq!(outgoing["callState"], "rejected: 603 Decline", "{outgoing}");
    let status = wait_bounded(&mut uas.0, "the SIPp UAS", STEP);
    let uas_messages =
        std::fs::read_to_string(artifacts.join("uas-messages.log")).unwrap_or_default();
    assert!(
        status.success(),
        "the SIPp UAS found the X-Teleforge-* headers missing or wrong ({status}):\n{}\n{uas_messages}",
        sipp_errors(&artifacts.join("uas-screen.log"))
    );
    let invite = uas_messages
        .split("----")
        .find(|m| m.contains("INVITE sip:c2d@127.0.0.1"))
        .unwrap_or_else(|| panic!("no INVITE for c2d in the UAS log:\n{uas_messages}"));
    for (_, header, value) in OUTGOING {
        let line = format!("{header}: {value}");
        assert!(
            invite.lines().any(|l| l.trim_end() == line),
            "{line:?} not in the INVITE:\n{invite}"
        );
    }

    // Unregistered: Kamailio no longer knows 1002 while the page is still connected.
    node.expect("unregistered");
    let done = json(&node.expect("done"));
    assert_eq!(done["regState"], "unregistered");
    assert_eq!(done["problems"], serde_json::json!([]), "page errors");
    let mut probe = sipp(
        "uac_not_registered.xml",
        "unregistered",
        &artifacts,
        free_udp_port(),
    );
    probe
        .arg(format!("127.0.0.1:{}", kamailio.udp))
        .args(["-s", "1002"]);
    let status = wait_bounded(
        &mut Guard(probe.spawn().expect("sipp")).0,
        "the SIPp probe",
        STEP,
    );
    assert!(
        status.success(),
        "1002 is still registered after Unregister ({status}):\n{}",
        tail(&artifacts.join("unregistered-messages.log"), 30)
    );

    drop(node.stdin.take());
    let status = wait_bounded(&mut node.child, "the softphone script", STEP);
    assert!(status.success(), "node: {status}\n{}", tail(&node.log, 40));

    assert_eq!(node.screenshots.len(), 5, "{:?}", node.screenshots);
    for path in &node.screenshots {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        assert!(size > 1000, "{} is empty", path.display());
        println!("screenshot: {}", path.display());
    }
    println!("logs: {}", artifacts.display());
    println!("softphone test took {:?}", started.elapsed());
}
