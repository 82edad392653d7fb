//! The host checks the PBX it logs in to, through the real binary's HTTP port: a PBX
//! without a kit context or with a manager user missing a privilege makes `/readyz`
//! `misconfigured` with the reason and `POST` a `503` with it (nothing originated); a
//! campaign the PBX does not know is refused with `422 unknown_campaign`; after a later PBX
//! restart the host is ready again within seconds (the backoff starts over at each login).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, eventually, free_port, kill, Host, Redis, Sim, TEST_KEY_HASH};

fn body(outbound_id: &str, contact_ref: &str) -> String {
    format!(
        r#"{{"agent":"1001","callee":"0820001234","outbound_id":"{outbound_id}","contact_ref":"{contact_ref}"}}"#
    )
}

/// A `pbx-sim` started with `args` (e.g. `--missing-context c2d-outbound`).
struct MisconfiguredSim {
    child: Child,
    address: String,
    log: std::path::PathBuf,
}

impl MisconfiguredSim {
    fn start(recordings: &std::path::Path, args: &[&str]) -> Self {
        let log = recordings.join("pbx-sim.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_pbx-sim"))
            .args(["--listen", "127.0.0.1:0", "--secret", "secret"])
            .args(["--time-scale", support::TIME_SCALE])
            .arg("--recordings-dir")
            .arg(recordings)
            .args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("pbx-sim");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("listening line");
        let address = line
            .trim()
            .strip_prefix("listening ")
            .expect("listening <addr>")
            .to_string();
        Self {
            child,
            address,
            log,
        }
    }

    fn originates(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches(" originate ")
            .count()
    }
}

impl Drop for MisconfiguredSim {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// `/readyz` once `checks.ami` is `word` (or the last answer after 15 s).
fn readiness_when(host: &Host, word: &str) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    eventually(Duration::from_secs(15), || {
        last = host.get("/readyz").json();
        last["checks"]["ami"] == word
    });
    last
}

#[test]
fn a_missing_kit_context_is_named_by_readyz_and_post() {
    let recordings = tempfile::tempdir().expect("dir");
    let redis = Redis::start();
    let sim = MisconfiguredSim::start(recordings.path(), &["--missing-context", "c2d-outbound"]);
    // A key allowed one request a minute: /readyz must not use it up.
    let keys = format!(r#"[{{id="e2e",hash="{TEST_KEY_HASH}",rate_per_minute=1,burst=1}}]"#);
    let host = Host::start(
        &redis,
        &sim.address,
        recordings.path(),
        &[("C2D_AUTH__KEYS", keys.as_str())],
    );
    let ready = readiness_when(&host, "misconfigured");
    assert_eq!(ready["checks"]["ami"], "misconfigured", "{ready}");
    assert_eq!(ready["checks"]["redis"], "ok");
    assert_eq!(ready["status"], "not_ready");
    assert_eq!(ready["error"]["code"], "service_unavailable");
    let problems = ready["problems"].as_array().expect("problems");
    assert_eq!(problems.len(), 1, "{ready}");
    assert_eq!(problems[0]["check"], "ami");
    assert_eq!(problems[0]["code"], "dialplan_context_missing");
    assert_eq!(
        problems[0]["message"],
        "context c2d-outbound not found in the PBX dialplan: #include the click2dial \
         extensions.conf kit and `dialplan reload`"
    );
    assert!(ready["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("context c2d-outbound not found")));
    for _ in 0..5 {
        assert_eq!(host.get("/readyz").status, 503, "never 429");
    }

    let answer = host.request(
        "POST",
        "/click2dial/calls",
        Some(support::TEST_KEY),
        &[("content-type", "application/json")],
        Some(&body("27820001234", "crm-misconfigured")),
    );
    assert_eq!(answer.status, 503);
    assert_eq!(answer.code(), "pbx_unavailable");
    assert!(answer.json()["error"]["message"].as_str().is_some_and(|m| m
        .contains("context c2d-outbound not found")
        && m.contains("nothing was dialled")));
    assert_eq!(answer.header("retry-after"), Some("10"));
    assert_eq!(sim.originates(), 0);
    // The key's one request was that POST: the next is rate-limited, /readyz still is not.
    let (status, _) = host.create_call(&body("27820001234", "crm-again"));
    assert_eq!(status, 429);
    assert_eq!(host.get("/readyz").status, 503);
}

/// A manager user without `write = reporting` may not check the dialplan
/// (`ShowDialPlan`) nor list the channels (`CoreShowChannels`), which the host needs to
/// re-synchronise its calls in flight after a lost connection: either one missing is
/// named, and nothing is dialled.
#[test]
fn a_missing_privilege_is_named() {
    for action in ["ShowDialPlan", "CoreShowChannels"] {
        let recordings = tempfile::tempdir().expect("dir");
        let redis = Redis::start();
        let sim = MisconfiguredSim::start(recordings.path(), &["--deny-action", action]);
        let host = Host::start(&redis, &sim.address, recordings.path(), &[]);
        let ready = readiness_when(&host, "misconfigured");
        let problems = ready["problems"].as_array().expect("problems");
        assert_eq!(problems.len(), 1, "{action}: {ready}");
        assert_eq!(problems[0]["code"], "ami_permission_missing", "{ready}");
        assert!(
            problems[0]["message"]
                .as_str()
                .is_some_and(|m| m.contains(&format!("may not run {action}:"))
                    && m.contains("add reporting")),
            "{ready}"
        );
        let (status, error) = host.create_call(&body("27820001234", "crm-denied"));
        assert_eq!(
            (status, error["error"]["code"].as_str()),
            (503, Some("pbx_unavailable"))
        );
        assert_eq!(sim.originates(), 0);
    }
}

#[test]
fn a_campaign_the_pbx_does_not_know_is_refused_before_dialling() {
    let recordings = tempfile::tempdir().expect("dir");
    let redis = Redis::start();
    let sim = MisconfiguredSim::start(recordings.path(), &[]);
    let host = Host::start(&redis, &sim.address, recordings.path(), &[]);
    let ready = readiness_when(&host, "ok");
    assert_eq!(ready["status"], "ready", "{ready}");
    assert!(ready.get("problems").is_none());

    let (status, error) = host.create_call(&body("tvc_winter", "crm-winter"));
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["error"]["code"], "unknown_campaign");
    assert_eq!(error["error"]["field"], "outbound_id");
    assert_eq!(
        error["error"]["message"],
        "campaign winter is not in the PBX's dialplan context c2d-tvc: add \
         `exten => winter,1,Return(<verified number>)` there and `dialplan reload`; \
         nothing was dialled"
    );
    assert_eq!(sim.originates(), 0);

    let (status, answer) = host.create_call(&body("tvc_spring", "crm-spring"));
    assert_eq!(status, 202, "{answer}");
    assert!(eventually(Duration::from_secs(5), || sim.originates() == 1));
}

#[test]
fn after_a_second_pbx_restart_the_host_is_ready_within_seconds() {
    let recordings = tempfile::tempdir().expect("dir");
    let redis = Redis::start();
    let address = format!("127.0.0.1:{}", free_port());
    let mut sim = Sim::start(recordings.path(), &address);
    let host = Host::start(
        &redis,
        &address,
        recordings.path(),
        &[("C2D_AMI__MAX_BACKOFF_SECS", "30")],
    );
    assert_eq!(readiness_when(&host, "ok")["status"], "ready");

    // A long outage: the reconnect backoff grows (0.25, 0.5, 1, 2, 4 s …).
    sim.stop();
    assert_eq!(readiness_when(&host, "down")["checks"]["ami"], "down");
    std::thread::sleep(Duration::from_secs(8));
    sim = Sim::start(recordings.path(), &address);
    assert_eq!(readiness_when(&host, "ok")["status"], "ready");

    // A short one later: the login in between started the backoff over.
    sim.stop();
    assert_eq!(readiness_when(&host, "down")["checks"]["ami"], "down");
    let _sim = Sim::start(recordings.path(), &address);
    let back = Instant::now();
    assert!(
        eventually(Duration::from_secs(3), || host.get("/readyz").status == 200),
        "not ready 3 s after the PBX came back"
    );
    eprintln!("ready again after {:?}", back.elapsed());
}
