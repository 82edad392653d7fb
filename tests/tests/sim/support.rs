//! Shared by the `sim_*` tests: starting an in-process simulator on a free port, replaying a
//! recorded client, and normalising the values that legitimately differ between runs.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use click2dial_tests::ami_client::AmiClient;
use click2dial_tests::pbx_sim::{Config, Override, Simulator};
use click2dial_tests::transcript::{self, Case};
use tokio::net::TcpListener;

/// Time scale of the tests: a 10 s recorded call takes 100 ms.
pub const FAST: f64 = 0.01;

/// How long any single wait in a test may take before it fails.
pub const LIMIT: Duration = Duration::from_secs(20);

/// A simulator serving on a free loopback port.
pub struct Running {
    pub sim: Simulator,
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn config(dir: &Path, time_scale: f64, overrides: &[&str]) -> Config {
    Config {
        recordings_dir: dir.to_owned(),
        time_scale,
        overrides: overrides
            .iter()
            .map(|o| o.parse::<Override>().expect("valid override"))
            .collect(),
        ..Config::default()
    }
}

pub async fn start(config: Config) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let sim = Simulator::new(config).expect("simulator");
    let serving = sim.clone();
    let task = tokio::spawn(async move {
        let _ = serving.serve(listener).await;
    });
    Running { sim, addr, task }
}

pub async fn connect(addr: SocketAddr) -> AmiClient {
    tokio::time::timeout(LIMIT, AmiClient::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// Logs in with the recorded credentials and reads the answer and `FullyBooted`.
pub async fn login(client: &mut AmiClient) {
    client
        .action(&[
            ("Action", "Login"),
            ("ActionID", "login-1"),
            ("Username", "c2d"),
            ("Secret", "secret"),
        ])
        .await
        .expect("send");
    let answer = next(client).await;
    assert!(
        answer.starts_with(b"Response: Success\r\nActionID: login-1\r\n"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(next(client).await.starts_with(b"Event: FullyBooted\r\n"));
}

pub async fn next(client: &mut AmiClient) -> Vec<u8> {
    client
        .next_frame_within(LIMIT)
        .await
        .expect("read")
        .expect("a frame before the connection closed")
}

/// Sends the recorded client bytes of `case` one action at a time, as the recording client
/// did: each action once the previous one was answered and no call is in progress. Returns
/// every frame received, until the server closed the connection.
pub async fn replay(running: &Running, case: Case) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut client = connect(running.addr).await;
    let mut frames: Vec<Vec<u8>> = Vec::new();
    let mut closed = false;
    for action in case.actions() {
        tokio::time::timeout(LIMIT, running.sim.idle())
            .await
            .expect("calls end");
        client.send(action).await.expect("send");
        let id = transcript::header(action, "ActionID").expect("recorded actions have one");
        loop {
            let Some(frame) = client.next_frame_within(LIMIT).await.expect("read") else {
                closed = true;
                break;
            };
            let answered = frame.starts_with(b"Response: ")
                && transcript::header(&frame, "ActionID") == Some(id);
            frames.push(frame);
            if answered {
                break;
            }
        }
        if closed {
            break;
        }
    }
    if !closed {
        frames.extend(
            tokio::time::timeout(LIMIT, client.read_to_close())
                .await
                .expect("server closes")
                .expect("read"),
        );
    }
    let banner = client.received()[..case.banner().len()].to_vec();
    (banner, frames)
}

/// Replays a recorded cut case (`record.rs`'s `Cut`): `Login` and the `Originate` as
/// recorded; once `count` received frames hold every one of `after`, its two `Hangup`s in
/// one write (as recorded); once the call is over, `Logoff`. Returns every frame received
/// after the banner.
pub async fn replay_cut(
    running: &Running,
    case: Case,
    after: &[&str],
    count: usize,
) -> Vec<Vec<u8>> {
    let actions = case.actions();
    assert_eq!(
        actions.len(),
        5,
        "{}: Login, Originate, 2 Hangups, Logoff",
        case.name
    );
    let mut client = connect(running.addr).await;
    let mut frames: Vec<Vec<u8>> = Vec::new();
    client.send(actions[0]).await.expect("send");
    client.send(actions[1]).await.expect("send");
    let seen = |frames: &[Vec<u8>]| {
        frames
            .iter()
            .filter(|f| {
                let text = String::from_utf8_lossy(f);
                after.iter().all(|a| text.contains(a))
            })
            .count()
    };
    while seen(&frames) < count {
        let frame = client.next_frame_within(LIMIT).await.expect("read");
        frames.push(frame.expect("the call goes on"));
    }
    client
        .send(&[actions[2], actions[3]].concat())
        .await
        .expect("send");
    tokio::time::timeout(LIMIT, running.sim.idle())
        .await
        .expect("calls end");
    client.send(actions[4]).await.expect("send");
    frames.extend(
        tokio::time::timeout(LIMIT, client.read_to_close())
            .await
            .expect("server closes")
            .expect("read"),
    );
    frames
}

/// The recorded frames of `case`, as owned bytes.
pub fn recorded(case: Case) -> Vec<Vec<u8>> {
    case.frames()
        .into_iter()
        .map(|f| f.bytes.to_vec())
        .collect()
}

/// Replaces the values that differ between two runs of the same call by placeholders
/// numbered in order of first appearance, so that which frames share a value still counts:
/// generated `Uniqueid`s (`<epoch>.<n>`), channel counters (`PJSIP/x-0000000N`),
/// `BridgeUniqueid`s, RTCP `SentNTP`, `Uptime`/`LastReload`, and the recordings directory.
pub struct Normaliser {
    recordings_dir: Option<String>,
    ids: HashMap<String, String>,
    channels: HashMap<String, String>,
    bridges: HashMap<String, String>,
}

pub const RECORDED_DIR: &str = "/var/spool/asterisk/monitor/click2dial";

impl Normaliser {
    pub fn new(recordings_dir: Option<&Path>) -> Self {
        Self {
            recordings_dir: recordings_dir.map(|d| d.display().to_string()),
            ids: HashMap::new(),
            channels: HashMap::new(),
            bridges: HashMap::new(),
        }
    }

    pub fn frames(&mut self, frames: &[Vec<u8>]) -> Vec<String> {
        frames.iter().map(|f| self.frame(f)).collect()
    }

    pub fn frame(&mut self, frame: &[u8]) -> String {
        let mut out = String::new();
        for (key, value) in transcript::lines(frame) {
            let key = self.channel_names(key);
            let value = match key.as_str() {
                "Uptime" | "LastReload" => "<secs>".to_owned(),
                "SentNTP" => "<ntp>".to_owned(),
                "Uniqueid" | "Linkedid" | "DestUniqueid" | "DestLinkedid"
                    if is_generated(value) =>
                {
                    let n = self.ids.len() + 1;
                    self.ids
                        .entry(value.to_owned())
                        .or_insert_with(|| format!("<uid{n}>"))
                        .clone()
                }
                "BridgeUniqueid" => {
                    let n = self.bridges.len() + 1;
                    self.bridges
                        .entry(value.to_owned())
                        .or_insert_with(|| format!("<bridge{n}>"))
                        .clone()
                }
                _ => {
                    let value = match &self.recordings_dir {
                        Some(dir) => value.replace(dir.as_str(), RECORDED_DIR),
                        None => value.to_owned(),
                    };
                    self.channel_names(&value)
                }
            };
            out.push_str(&format!("{key}: {value}\r\n"));
        }
        out.push_str("\r\n");
        out
    }

    /// `PJSIP/<endpoint>-<8 hex>` → `PJSIP/<endpoint>-<chanN>`, and the same for
    /// `Local/<exten>@<context>-<8 hex>` (before the `;1`/`;2` of its halves).
    fn channel_names(&mut self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(at) = ["PJSIP/", "Local/"]
            .iter()
            .filter_map(|prefix| rest.find(prefix))
            .min()
        {
            out.push_str(&rest[..at]);
            let tail = &rest[at..];
            let name_end = tail.find([')', ',', ' ', ';']).unwrap_or(tail.len());
            let name = &tail[..name_end];
            match name.rsplit_once('-') {
                Some((base, counter))
                    if counter.len() == 8 && counter.bytes().all(|b| b.is_ascii_hexdigit()) =>
                {
                    let n = self.channels.len() + 1;
                    let placeholder = self
                        .channels
                        .entry(name.to_owned())
                        .or_insert_with(|| format!("{base}-<chan{n}>"))
                        .clone();
                    out.push_str(&placeholder);
                }
                _ => out.push_str(name),
            }
            rest = &tail[name_end..];
        }
        out.push_str(rest);
        out
    }
}

/// `<epoch>.<n>`, as Asterisk makes a `Uniqueid` nobody named.
fn is_generated(value: &str) -> bool {
    value.split_once('.').is_some_and(|(a, b)| {
        a.len() >= 9
            && !b.is_empty()
            && a.bytes().all(|c| c.is_ascii_digit())
            && b.bytes().all(|c| c.is_ascii_digit())
    })
}

/// One line per frame with its name and key headers, like the recorded `summary.txt`.
pub fn summary(frame: &str) -> String {
    const KEYS: [&str; 12] = [
        "ActionID",
        "Channel",
        "DestChannel",
        "ChannelStateDesc",
        "DialStatus",
        "Cause",
        "Response",
        "Reason",
        "Variable",
        "Application",
        "Message",
        "Uniqueid",
    ];
    let lines = transcript::lines(frame.as_bytes());
    let mut out = match lines.first() {
        Some((k, v)) => format!("{k}: {v}"),
        None => String::new(),
    };
    for (k, v) in lines.iter().skip(1) {
        if KEYS.contains(k) {
            out.push_str(&format!(" {k}={v}"));
        }
    }
    out
}

/// Asserts that two normalised frame lists are the same, first by their summaries (the
/// message sequence), then byte for byte, with a readable message on the first difference.
pub fn assert_same(case: &str, got: &[String], want: &[String]) {
    let got_summary: Vec<String> = got.iter().map(|f| summary(f)).collect();
    let want_summary: Vec<String> = want.iter().map(|f| summary(f)).collect();
    if let Some(i) = (0..got_summary.len().max(want_summary.len()))
        .find(|&i| got_summary.get(i) != want_summary.get(i))
    {
        panic!(
            "{case}: message {i} differs\n  simulator: {:?}\n  recorded:  {:?}\n(simulator sent {}, recording has {})",
            got_summary.get(i),
            want_summary.get(i),
            got.len(),
            want.len()
        );
    }
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g == w,
            "{case}: frame {i} differs\n--- simulator\n{g}--- recorded\n{w}"
        );
    }
}
