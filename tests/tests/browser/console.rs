//! The agent console in headless Chromium (`tests/browser/console.test.mjs`, playwright-core)
//! against a real host, PBX simulator and Redis: an answered call's notifications appear as
//! they reached Redis and its recording plays; a bad callee's 422 is shown next to the callee
//! input with the server's message; a wrong key's 401 is shown. Screenshots are kept in
//! `target/browser-artifacts/console/`.
//!
//! Needs `node`, Chromium and `npm ci` in `tests/browser` (`bash .ci/browser.sh` installs
//! them): without them the test fails and says so.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::browser::{artifacts_dir, browser_dir, require_browser};
use crate::support::{eventually, kill, world, ANSWERED, TEST_KEY};

/// Runs the script; returns its exit status, stdout and stderr.
fn run_script(base_url: &str, chromium: &Path, artifacts: &Path) -> (Option<i32>, String, String) {
    let mut child = Command::new("node")
        .arg("console.test.mjs")
        .current_dir(browser_dir())
        .env("C2D_BASE_URL", base_url)
        .env("C2D_KEY", TEST_KEY)
        .env("C2D_ARTIFACTS", artifacts)
        .env("CHROMIUM", chromium)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status.code();
        }
        if Instant::now() > deadline {
            kill(&mut child);
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    (
        status,
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    )
}

#[test]
fn the_console_places_a_call_follows_it_and_shows_errors() {
    let chromium = require_browser();
    let artifacts = artifacts_dir("console");
    println!("browser screenshots: {}", artifacts.display());

    let w = world(&[]);
    assert!(
        eventually(Duration::from_secs(20), || w.host.get("/readyz").status
            == 200),
        "the host is ready (PBX and Redis)"
    );
    let (status, stdout, stderr) = run_script(&w.host.url, &chromium, &artifacts);
    eprintln!("{stderr}");
    let result: serde_json::Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON from the script (status {status:?}): {stdout}"));
    assert_eq!(
        status,
        Some(0),
        "console.test.mjs failed: {}",
        result["failures"]
    );
    assert_eq!(result["page_errors"], serde_json::json!([]));
    assert_eq!(
        result["error_responses"],
        serde_json::json!(["POST /click2dial/calls 422", "POST /click2dial/calls 401"]),
        "the only error answers the page got"
    );

    // (a) What the page showed is what reached Redis: same JSON, same order, ANSWERED.
    let answered = &result["answered"];
    assert_eq!(answered["contact_ref"], "browser-answered");
    let key = "teleforge:notifications:c2d:browser-answered";
    let mut conn = w.redis.connection().expect("redis");
    let mut pushed: Vec<String> = Vec::new();
    assert!(eventually(Duration::from_secs(10), || {
        pushed = redis::cmd("LRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .query(&mut conn)
            .expect("LRANGE");
        pushed.len() >= ANSWERED.len()
    }));
    pushed.reverse();
    let shown = answered["events"].as_array().expect("events");
    let shown_names: Vec<&str> = shown.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(shown_names, ANSWERED);
    let shown_json: Vec<&str> = shown.iter().filter_map(|e| e["json"].as_str()).collect();
    assert_eq!(shown_json, pushed);
    for (i, row) in shown.iter().enumerate() {
        assert_eq!(row["sequence"], i + 1);
        let text = row["text"].as_str().unwrap_or_default();
        assert!(
            text.contains(row["event"].as_str().unwrap_or("?")),
            "{text}"
        );
    }
    let hangup = shown
        .iter()
        .find(|e| e["event"] == "hangup")
        .expect("hangup");
    assert!(
        hangup["text"]
            .as_str()
            .is_some_and(|t| t.contains("normal_clearing") && t.contains("16")),
        "the cause and Q.850 code are shown: {hangup}"
    );
    // The recording was fetched whole into a blob and decodes.
    let recording_ref = answered["recording_ref"].as_str().expect("recording_ref");
    let file = w.recordings.path().join(format!("{recording_ref}.wav"));
    let size = std::fs::metadata(&file).expect("recording file").len();
    assert_eq!(answered["recording_size"], size);
    assert!(answered["audio_duration"].as_f64().is_some_and(|d| d > 0.0));
    assert_eq!(answered["audio_src_is_blob"], true);
    assert_eq!(
        answered["download"],
        format!("{recording_ref}.wav").as_str()
    );
    assert_eq!(answered["stream_state"], "The call is over.");
    assert_eq!(answered["key_in_session"], TEST_KEY);
    assert_eq!(answered["local_storage_items"], 0);
    assert_eq!(result["key_kept_after_reload"], true);

    // (b) The 422: the server's own message, next to the callee input.
    let bad = r#"{"agent":"1001","callee":"12345","outbound_id":"27820001234","contact_ref":"browser-422"}"#;
    let (status, server) = w.host.create_call(bad);
    assert_eq!(status, 422);
    let invalid = &result["invalid_callee"];
    assert_eq!(invalid["status"], 422);
    assert_eq!(invalid["code"], server["error"]["code"]);
    assert_eq!(server["error"]["field"], "callee");
    assert_eq!(invalid["callee_error"], server["error"]["message"]);
    assert_eq!(invalid["callee_invalid"], "true");
    assert!(invalid["callee_described_by"]
        .as_str()
        .is_some_and(|d| d.split(' ').any(|id| id == "callee-error")));
    assert_eq!(invalid["others_invalid"], serde_json::json!([]));
    assert!(invalid["summary"]
        .as_str()
        .is_some_and(|s| s.contains("422") && s.contains("invalid_callee")));
    assert_eq!(invalid["call_shown"], false);
    assert!(
        w.redis
            .drain("teleforge:notifications:c2d:browser-422")
            .is_empty(),
        "nothing was dialled"
    );

    // (c) The 401.
    let wrong = &result["wrong_key"];
    assert_eq!(wrong["status"], 401);
    assert_eq!(wrong["code"], "unauthorized");
    assert!(wrong["summary"]
        .as_str()
        .is_some_and(|s| s.contains("401") && s.contains("API key")));
    assert_eq!(wrong["key_invalid"], "true");
    assert_eq!(wrong["key_error"], "the API key is not valid");
    assert_eq!(wrong["callee_invalid"], serde_json::Value::Null);

    let shots = result["screenshots"].as_array().expect("screenshots");
    assert_eq!(shots.len(), 3);
    for shot in shots {
        let path = PathBuf::from(shot.as_str().expect("path"));
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(len > 1000, "{} is a screenshot", path.display());
        println!("screenshot: {}", path.display());
    }
}
