//! Signed, retried webhooks through the real ports: the host binary, `redis-server`, the
//! PBX simulator, and a receiver (`webhook_receiver.py`) that verifies every delivery with
//! the Standard Webhooks reference library for Python — an implementation independent of
//! the host's. The retry schedule is shortened through `[webhooks]` (`retry_base_ms`, …),
//! so "a day of retries" takes milliseconds here.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use crate::support::{
    eventually, free_port, hash_key, kill, Host, Redis, Sim, ANSWERED, TEST_KEY, TEST_KEY_HASH,
};

/// The newest secret (the Standard Webhooks specification's example).
const NEW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The secret being rotated out.
const OLD_SECRET: &str = "whsec_Y2xpY2syZGlhbC1lMmUtb2xkLXNlY3JldC0zMmJ5dGU=";
/// A second key, without a webhook unless a test gives it one.
const OTHER_KEY: &str = "c2d_e2e_other_key_0123456789abcdef0123456789";

/// A Python with `standardwebhooks`: `C2D_TEST_PYTHON`, else a venv under the target
/// directory, made (`pip install standardwebhooks`, from PyPI) on first use.
fn python() -> PathBuf {
    static MADE: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut made = MADE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = made.as_ref() {
        return p.clone();
    }
    if let Ok(p) = std::env::var("C2D_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test binary");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("target/<profile>/deps/<test>")
        .to_path_buf();
    let venv = target.join("webhook-venv");
    let python = venv.join("bin/python");
    let has_library = |p: &PathBuf| {
        Command::new(p)
            .args(["-c", "import standardwebhooks"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has_library(&python) {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 -m venv");
        assert!(status.success(), "python3 -m venv failed");
        let status = Command::new(&python)
            .args(["-m", "pip", "install", "-q", "standardwebhooks"])
            .status()
            .expect("pip install");
        assert!(status.success(), "pip install standardwebhooks failed");
    }
    *made = Some(python.clone());
    python
}

/// The test receiver, on a fixed port so that it can be down and come back.
struct Receiver {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Receiver {
    /// A receiver that is not listening yet (connections to its port are refused).
    fn down() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        Self {
            child: None,
            port: free_port(),
            log: dir.path().join("deliveries.jsonl"),
            _dir: dir,
        }
    }

    fn up() -> Self {
        let mut r = Self::down();
        r.start();
        r
    }

    fn start(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/webhook_receiver.py");
        let child = Command::new(python())
            .arg(script)
            .arg(self.port.to_string())
            .arg(&self.log)
            .arg(format!("{NEW_SECRET},{OLD_SECRET}"))
            .stdout(Stdio::null())
            .spawn()
            .expect("webhook receiver");
        self.child = Some(child);
        assert!(
            eventually(Duration::from_secs(10), || TcpStream::connect((
                "127.0.0.1",
                self.port
            ))
            .is_ok()),
            "the receiver listens"
        );
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill(&mut c);
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// How `/hook` answers from now on.
    fn answer(&self, status: u16) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("receiver");
        let body = format!(r#"{{"status":{status}}}"#);
        write!(
            s,
            "POST /control HTTP/1.1\r\nHost: r\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("control");
        let mut answer = String::new();
        let _ = std::io::Read::read_to_string(&mut s, &mut answer);
        assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
    }

    /// Every request received, in order.
    fn records(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("log line"))
            .collect()
    }

    /// The events answered `2xx`, as CloudEvents.
    fn delivered(&self) -> Vec<Value> {
        self.records()
            .into_iter()
            .filter(|r| {
                r["answered"]
                    .as_u64()
                    .is_some_and(|s| (200..300).contains(&s))
            })
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `[[auth.keys]]` value: the test key with `webhook_url` (both secrets, newest first),
/// and [`OTHER_KEY`] with `other_webhook` (an inline table) when given.
fn keys(webhook_url: &str, other_webhook: Option<&str>) -> String {
    let other = match other_webhook {
        Some(w) => format!(",webhook={w}"),
        None => String::new(),
    };
    format!(
        r#"[{{id="e2e",hash="{TEST_KEY_HASH}",rate_per_minute=600000,burst=100000,scopes=["calls:create","calls:read","recordings:read","metrics:read"],webhook={{url="{webhook_url}",secrets=["{NEW_SECRET}","{OLD_SECRET}"]}}}},{{id="other",hash="{}"{other}}}]"#,
        other_hash()
    )
}

fn other_hash() -> String {
    static HASH: Mutex<Option<String>> = Mutex::new(None);
    let mut hash = HASH.lock().unwrap_or_else(|e| e.into_inner());
    hash.get_or_insert_with(|| hash_key(OTHER_KEY)).clone()
}

/// Redis, the simulator and a host whose test key's webhook goes to `url`, with a retry
/// schedule of milliseconds; `private` sets `allow_private_targets` (the receiver is on
/// loopback).
struct Setup {
    redis: Redis,
    sim: Sim,
    host: Option<Host>,
    recordings: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Setup {
    fn new(keys: String, private: bool) -> Self {
        Self::with(keys, private, &[])
    }

    /// As [`Setup::new`], with more `C2D_*` variables.
    fn with(keys: String, private: bool, extra: &[(&str, &str)]) -> Self {
        let recordings = tempfile::tempdir().expect("tempdir");
        let redis = Redis::start();
        let sim = Sim::start(recordings.path(), "127.0.0.1:0");
        let mut env: Vec<(String, String)> = vec![
            ("C2D_AUTH__KEYS".into(), keys),
            ("C2D_WEBHOOKS__RETRY_BASE_MS".into(), "100".into()),
            ("C2D_WEBHOOKS__RETRY_MAX_DELAY_MS".into(), "400".into()),
            ("C2D_WEBHOOKS__POLL_INTERVAL_MS".into(), "50".into()),
            ("C2D_WEBHOOKS__TIMEOUT_MS".into(), "2000".into()),
        ];
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        if private {
            env.push(("C2D_WEBHOOKS__ALLOW_PRIVATE_TARGETS".into(), "true".into()));
        }
        let mut setup = Self {
            redis,
            sim,
            host: None,
            recordings,
            env,
        };
        setup.start_host();
        setup
    }

    fn start_host(&mut self) {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.host = Some(Host::start(
            &self.redis,
            &self.sim.address,
            self.recordings.path(),
            &env,
        ));
    }

    fn host(&self) -> &Host {
        self.host.as_ref().expect("host running")
    }

    /// Creates an answered call and waits until all its notifications are in Redis.
    fn call(&self, contact_ref: &str) {
        let body = format!(
            r#"{{"agent":"1001","callee":"0820001234","outbound_id":"27820001234","contact_ref":"{contact_ref}"}}"#
        );
        let (status, answer) = self.host().create_call_when_ready(&body);
        assert_eq!(status, 202, "{answer}");
    }

    fn notified(&self, contact_ref: &str) {
        let got = self.redis.follow(
            &format!("teleforge:notifications:c2d:{contact_ref}"),
            &["recording_ready"],
            Duration::from_secs(30),
        );
        assert_eq!(crate::support::events(&got), ANSWERED, "{contact_ref}");
    }

    /// `GET /click2dial/webhooks` with `key`.
    fn state(&self, key: &str) -> Value {
        let answer = self
            .host()
            .request("GET", "/click2dial/webhooks", Some(key), &[], None);
        assert_eq!(
            answer.status,
            200,
            "{:?}",
            String::from_utf8_lossy(&answer.body)
        );
        answer.json()
    }

    fn metrics(&self) -> String {
        String::from_utf8(self.host().get("/metrics").body).expect("utf-8")
    }

    /// Waits up to `within` for the test key's delivery state to satisfy `ready`; returns it.
    fn wait_for_state(&self, within: Duration, ready: impl Fn(&Value) -> bool) -> Value {
        assert!(
            eventually(within, || ready(&self.state(TEST_KEY))),
            "{}",
            self.state(TEST_KEY)
        );
        self.state(TEST_KEY)
    }

    /// Waits up to 5 s for `/metrics` to show `line`.
    fn wait_for_metric(&self, line: &str) {
        assert!(
            eventually(Duration::from_secs(5), || self.metrics().contains(line)),
            "{line} not in:\n{}",
            self.metrics()
        );
    }
}

/// The delivered events' bodies, grouped by call (`subject`), in delivery order.
fn by_call(delivered: &[Value]) -> BTreeMap<String, Vec<Value>> {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in delivered {
        let event: Value = serde_json::from_str(r["body"].as_str().expect("body")).expect("JSON");
        out.entry(event["subject"].as_str().expect("subject").to_string())
            .or_default()
            .push(event);
    }
    out
}

fn sequence_of(id: &str) -> u32 {
    id.rsplit_once(':')
        .and_then(|(_, s)| s.parse().ok())
        .unwrap_or_else(|| panic!("webhook-id {id} ends with :<sequence>"))
}

/// Every call's events were delivered once each, in order, and each attempt was for the
/// call's next undelivered event (never a later one first).
fn assert_once_each_in_order(receiver: &Receiver, calls: &[&str]) {
    let delivered = receiver.delivered();
    let mut ids: HashMap<String, usize> = HashMap::new();
    for r in &delivered {
        *ids.entry(r["id"].as_str().expect("id").to_string())
            .or_default() += 1;
    }
    assert!(
        ids.values().all(|n| *n == 1),
        "once per webhook-id: {ids:?}"
    );
    let grouped = by_call(&delivered);
    for call in calls {
        let events: Vec<&str> = grouped[*call]
            .iter()
            .map(|e| e["data"]["event"].as_str().expect("event"))
            .collect();
        assert_eq!(events, ANSWERED, "{call}");
    }
    // In order per call: the attempts' sequence numbers never go down.
    let mut last: HashMap<String, u32> = HashMap::new();
    for r in receiver.records() {
        let id = r["id"].as_str().expect("id");
        let (call, _) = id.rsplit_once(':').expect("id");
        let seq = sequence_of(id);
        let prev = last.insert(call.to_string(), seq).unwrap_or(0);
        assert!(seq >= prev, "attempt of {id} after sequence {prev}");
    }
}

#[test]
fn every_event_is_delivered_signed_in_order_as_a_cloudevent() {
    let receiver = Receiver::up();
    let s = Setup::new(keys(&receiver.url("/hook"), None), true);
    for call in ["wh-a", "wh-b"] {
        s.call(call);
    }
    assert!(
        eventually(Duration::from_secs(30), || receiver.delivered().len() >= 14),
        "{:#?}",
        receiver.records()
    );
    assert_once_each_in_order(&receiver, &["wh-a", "wh-b"]);
    for r in receiver.records() {
        // Both secrets sign each delivery: a receiver that knows either verifies it.
        assert_eq!(r["verified_by"], serde_json::json!([0, 1]), "{r}");
        assert_eq!(r["content_type"], "application/cloudevents+json");
        assert_eq!(
            r["signature"].as_str().map(|s| s.split(' ').count()),
            Some(2)
        );
        let event: Value = serde_json::from_str(r["body"].as_str().expect("body")).expect("JSON");
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["id"], r["id"], "the CloudEvent id is the webhook-id");
        assert_eq!(
            event["type"],
            "org.camaraproject.click-to-dial.v0.status-changed"
        );
        assert_eq!(event["source"], "http://127.0.0.1:1/click2dial/calls");
        assert_eq!(event["datacontenttype"], "application/json");
        assert_eq!(event["time"], event["data"]["timestamp"]);
        assert_eq!(event["subject"], event["data"]["contact_ref"]);
    }
    let state = s.state(TEST_KEY);
    assert_eq!(state["state"], "active", "{state}");
    assert_eq!(state["url"], receiver.url("/hook"));
    assert_eq!(state["delivered"], 14, "{state}");
    assert_eq!(state["pending"], 0, "{state}");
    assert_eq!(state["failed"], 0, "{state}");
    // Another key sees its own state only: it has no webhook.
    let other = s.state(OTHER_KEY);
    assert_eq!(other["state"], "none", "{other}");
    assert_eq!(other["delivered"], 0, "{other}");
    s.wait_for_metric(r#"click2dial_webhook_pending{key="e2e"} 0"#);
    assert!(s
        .metrics()
        .contains(r#"click2dial_webhook_attempts_total{key="e2e",outcome="delivered"} 14"#));
    // The description has the deliveries: the signature scheme and the event's schema.
    let doc = s.host().get("/openapi.json").json();
    let hook = &doc["webhooks"]["status-changed"]["post"];
    let description = hook["description"].as_str().unwrap_or_default();
    for needle in [
        "webhook-signature",
        "HMAC-SHA256",
        "whsec_",
        "410",
        "CloudEvents 1.0",
    ] {
        assert!(description.contains(needle), "{needle}: {description}");
    }
    assert_eq!(
        hook["requestBody"]["content"]["application/cloudevents+json"]["schema"]["$ref"],
        "#/components/schemas/WebhookEvent"
    );
    let schema = &doc["components"]["schemas"]["WebhookEvent"]["properties"];
    for field in ["specversion", "id", "source", "type", "time", "data"] {
        assert!(schema.get(field).is_some(), "{field}: {schema}");
    }
}

#[test]
fn a_receiver_that_was_down_gets_every_event_once_in_order() {
    let mut receiver = Receiver::down();
    let s = Setup::new(keys(&receiver.url("/hook"), None), true);
    for call in ["wh-down-a", "wh-down-b"] {
        s.call(call);
    }
    for call in ["wh-down-a", "wh-down-b"] {
        s.notified(call);
    }
    // Down: connections refused, retried, nothing lost.
    let state = s.wait_for_state(Duration::from_secs(10), |state| {
        state["pending"] == 14 && state["retries"].as_u64().is_some_and(|r| r >= 2)
    });
    assert!(
        state["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("connect")),
        "{state}"
    );
    // Up, but failing: the same events again, under the same ids.
    receiver.start();
    receiver.answer(503);
    assert!(eventually(Duration::from_secs(10), || receiver
        .records()
        .len()
        >= 4));
    receiver.answer(200);
    assert!(
        eventually(Duration::from_secs(30), || receiver.delivered().len() >= 14),
        "{}",
        s.state(TEST_KEY)
    );
    assert_once_each_in_order(&receiver, &["wh-down-a", "wh-down-b"]);
    let delivered: Vec<String> = receiver
        .delivered()
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_string())
        .collect();
    for failed in receiver.records().iter().filter(|r| r["answered"] == 503) {
        let id = failed["id"].as_str().expect("id");
        assert!(delivered.iter().any(|d| d == id), "{id} was retried");
    }
    let state = s.state(TEST_KEY);
    assert_eq!(state["pending"], 0, "{state}");
    assert_eq!(state["delivered"], 14, "{state}");
}

#[test]
fn a_host_restarted_mid_retry_loses_nothing() {
    let receiver = Receiver::up();
    receiver.answer(503);
    let mut s = Setup::new(keys(&receiver.url("/hook"), None), true);
    s.call("wh-restart");
    s.notified("wh-restart");
    assert!(eventually(Duration::from_secs(10), || receiver
        .records()
        .len()
        >= 3));
    // Killed (no graceful anything), then a new process on the same Redis.
    drop(s.host.take());
    let attempts_before = receiver.records().len();
    s.start_host();
    receiver.answer(200);
    assert!(
        eventually(Duration::from_secs(30), || receiver.delivered().len() >= 7),
        "{}",
        s.state(TEST_KEY)
    );
    assert!(receiver.records().len() > attempts_before);
    assert_once_each_in_order(&receiver, &["wh-restart"]);
    assert_eq!(s.state(TEST_KEY)["pending"], 0);
}

#[test]
fn gone_disables_the_endpoint() {
    let receiver = Receiver::up();
    let s = Setup::new(keys(&receiver.url("/gone"), None), true);
    s.call("wh-gone");
    s.notified("wh-gone");
    assert!(
        eventually(Duration::from_secs(10), || {
            let state = s.state(TEST_KEY);
            state["state"] == "disabled" && state["failed"] == 7 && state["pending"] == 0
        }),
        "{}",
        s.state(TEST_KEY)
    );
    assert_eq!(receiver.records().len(), 1, "nothing is sent after the 410");
    s.wait_for_metric(r#"click2dial_webhook_disabled{key="e2e"} 1"#);
}

#[test]
fn private_targets_are_refused_without_the_allow_flag() {
    let receiver = Receiver::up();
    // A name that resolves to loopback (refused by the resolver) for the test key; an
    // address literal (refused before any lookup) for the other key.
    let localhost = format!("http://localhost:{}/hook", receiver.port);
    let literal = format!(
        r#"{{url="{}",secrets=["{NEW_SECRET}"]}}"#,
        receiver.url("/hook")
    );
    let s = Setup::new(keys(&localhost, Some(&literal)), false);
    s.call("wh-ssrf");
    let body = r#"{"agent":"1001","callee":"0820001234","outbound_id":"27820001234","contact_ref":"wh-ssrf-other"}"#;
    let answer = s.host().request(
        "POST",
        "/click2dial/calls",
        Some(OTHER_KEY),
        &[("content-type", "application/json")],
        Some(body),
    );
    assert_eq!(answer.status, 202);
    for key in [TEST_KEY, OTHER_KEY] {
        assert!(
            eventually(Duration::from_secs(15), || {
                let state = s.state(key);
                state["retries"].as_u64().is_some_and(|r| r >= 2)
                    && state["last_error"]
                        .as_str()
                        .is_some_and(|e| e.contains("is not public"))
            }),
            "{}",
            s.state(key)
        );
        assert_eq!(s.state(key)["delivered"], 0);
    }
    assert!(
        receiver.records().is_empty(),
        "nothing reached the receiver"
    );
}

#[test]
fn redirects_are_not_followed() {
    let receiver = Receiver::up();
    let s = Setup::new(keys(&receiver.url("/redirect"), None), true);
    s.call("wh-redirect");
    assert!(
        eventually(Duration::from_secs(15), || receiver.records().len() >= 3),
        "{}",
        s.state(TEST_KEY)
    );
    let records = receiver.records();
    assert!(
        records.iter().all(|r| r["path"] == "/redirect"),
        "{records:#?}"
    );
    assert!(
        records.iter().all(|r| r["id"] == records[0]["id"]),
        "the first event is retried, the next one waits"
    );
    let state = s.state(TEST_KEY);
    assert_eq!(state["last_error"], "HTTP 307", "{state}");
    assert_eq!(state["delivered"], 0, "{state}");
}

#[test]
fn two_hosts_deliver_each_event_once() {
    let receiver = Receiver::up();
    let s = Setup::new(keys(&receiver.url("/hook"), None), true);
    let env: Vec<(&str, &str)> = s
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let second = Host::start(&s.redis, &s.sim.address, s.recordings.path(), &env);
    let calls = ["wh-two-a", "wh-two-b", "wh-two-c"];
    for (i, call) in calls.iter().enumerate() {
        let body = format!(
            r#"{{"agent":"1001","callee":"0820001234","outbound_id":"27820001234","contact_ref":"{call}"}}"#
        );
        let host = if i % 2 == 0 { s.host() } else { &second };
        let (status, answer) = host.create_call_when_ready(&body);
        assert_eq!(status, 202, "{answer}");
    }
    assert!(
        eventually(Duration::from_secs(30), || receiver.delivered().len() >= 21),
        "{}",
        s.state(TEST_KEY)
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(receiver.records().len(), 21, "no event sent twice");
    assert_once_each_in_order(&receiver, &calls);
}

#[test]
fn an_event_retried_past_give_up_after_secs_is_failed_and_the_next_one_goes() {
    let receiver = Receiver::up();
    receiver.answer(500);
    // The shortest window, so that giving up takes a second, not 3 days.
    let s = Setup::with(
        keys(&receiver.url("/hook"), None),
        true,
        &[("C2D_WEBHOOKS__GIVE_UP_AFTER_SECS", "1")],
    );
    s.call("wh-give-up");
    assert!(
        eventually(Duration::from_secs(30), || s.state(TEST_KEY)["failed"] == 7),
        "{}",
        s.state(TEST_KEY)
    );
    let state = s.state(TEST_KEY);
    assert_eq!(state["pending"], 0, "{state}");
    assert!(
        state["last_error"]
            .as_str()
            .is_some_and(|e| e.starts_with("HTTP 500; gave up after")),
        "{state}"
    );
    // Each event was tried more than once, in the call's order.
    let ids: Vec<u32> = receiver
        .records()
        .iter()
        .map(|r| sequence_of(r["id"].as_str().expect("id")))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] <= w[1]), "{ids:?}");
    for seq in 1..=7 {
        assert!(
            ids.iter().filter(|s| **s == seq).count() >= 2,
            "{seq}: {ids:?}"
        );
    }
    s.wait_for_metric(r#"click2dial_webhook_failed{key="e2e"} 7"#);
}

#[test]
fn an_answer_later_than_the_timeout_is_retried() {
    let receiver = Receiver::up();
    let s = Setup::with(
        keys(&receiver.url("/slow"), None),
        true,
        &[("C2D_WEBHOOKS__TIMEOUT_MS", "300")],
    );
    s.call("wh-slow");
    let state = s.wait_for_state(Duration::from_secs(15), |state| {
        state["retries"].as_u64().is_some_and(|r| r >= 2)
    });
    assert!(
        state["last_error"]
            .as_str()
            .is_some_and(|e| e.starts_with("timed out")),
        "{state}"
    );
    assert_eq!(state["delivered"], 0, "{state}");
    let records = receiver.records();
    assert!(records.len() >= 2, "{records:#?}");
    assert!(
        records.iter().all(|r| r["id"] == records[0]["id"]),
        "the same event again"
    );
}

/// With Redis Cluster (three real masters): the webhook queue's keys are all in the slot of
/// `{teleforge:c2d:webhook}`, queued by a step with marks of its own after each call's push
/// (`host/src/store/schema.rs`, "Cluster"); every event is delivered once, in order.
#[test]
fn with_a_redis_cluster_every_event_is_delivered_once_in_order() {
    let receiver = Receiver::up();
    let cluster = crate::support::cluster::Cluster::start();
    let recordings = tempfile::tempdir().expect("tempdir");
    let sim = Sim::start(recordings.path(), "127.0.0.1:0");
    let vars = cluster.host_vars();
    let keys = keys(&receiver.url("/hook"), None);
    let host = Host::start_on(
        &vars.each_ref().map(|(k, v)| (*k, v.as_str())),
        &sim.address,
        recordings.path(),
        &[
            ("C2D_AUTH__KEYS", keys.as_str()),
            ("C2D_WEBHOOKS__RETRY_BASE_MS", "100"),
            ("C2D_WEBHOOKS__RETRY_MAX_DELAY_MS", "400"),
            ("C2D_WEBHOOKS__POLL_INTERVAL_MS", "50"),
            ("C2D_WEBHOOKS__TIMEOUT_MS", "2000"),
            ("C2D_WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true"),
        ],
    );
    let calls = ["wh-cl-a", "wh-cl-b", "wh-cl-c"];
    for call in calls {
        let (status, answer) =
            host.create_call_when_ready(&crate::support::call_body("1001", "0820001234", call));
        assert_eq!(status, 202, "{answer}");
    }
    assert!(
        eventually(Duration::from_secs(30), || receiver.delivered().len() >= 21),
        "{:#?}",
        receiver.records()
    );
    assert_once_each_in_order(&receiver, &calls);
    let state = host
        .request("GET", "/click2dial/webhooks", Some(TEST_KEY), &[], None)
        .json();
    assert_eq!(state["delivered"], 21, "{state}");
    assert_eq!(state["pending"], 0, "{state}");
    // The queue's state is in the tag's slot, on the node that serves it.
    let slot = cluster.slot("{teleforge:c2d:webhook}");
    let mut node = cluster.owner(slot).connection().expect("node");
    let endpoint: HashMap<String, String> = redis::cmd("HGETALL")
        .arg("{teleforge:c2d:webhook}:endpoint:e2e")
        .query(&mut node)
        .expect("HGETALL");
    assert_eq!(
        endpoint.get("delivered").map(String::as_str),
        Some("21"),
        "{endpoint:?}"
    );
}
