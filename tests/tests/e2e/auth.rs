//! API keys over the real HTTP port: every route but `/healthz` needs one, keys limit
//! caller IDs and agents, rate limits answer 429, and no key ever reaches the log.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{
    auth_keys, hash_key as hash, host_binary, world, Host, Redis, Sim, TEST_KEY, TEST_KEY_HASH,
};

const REF: &str = "abcdefghijklmnopqrstuvwxyz";
const LIMITED_KEY: &str = "c2d_limited_0123456789abcdef0123456789abcdef";
const SLOW_KEY: &str = "c2d_slow_key_0123456789abcdef0123456789abcdef";

fn call(agent: &str, outbound_id: &str, contact_ref: &str) -> String {
    format!(
        r#"{{"agent":"{agent}","callee":"0820001234","outbound_id":"{outbound_id}","contact_ref":"{contact_ref}"}}"#
    )
}

#[test]
fn hash_key_makes_the_configured_hash() {
    assert_eq!(hash(TEST_KEY), TEST_KEY_HASH);
    let out = Command::new(host_binary())
        .arg("hash-key")
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "an empty key is refused");
    let out = Command::new(host_binary())
        .arg("new-key")
        .output()
        .expect("runs");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let key = text
        .lines()
        .find_map(|l| l.strip_prefix("key  = "))
        .expect("key line");
    assert!(
        text.contains(&format!("hash = \"{}\"", hash(key))),
        "{text}"
    );
}

#[test]
fn every_route_but_healthz_needs_a_key() {
    let w = world(&[]);
    std::fs::write(w.recordings.path().join(format!("{REF}.wav")), b"RIFF").expect("write");
    let json = r#"{"agent":"1001","callee":"0820001234","outbound_id":"27820001234"}"#;
    let routes: [(&str, String, Option<&str>); 6] = [
        ("POST", "/click2dial/calls".into(), Some(json)),
        ("GET", format!("/click2dial/recordings/{REF}"), None),
        ("HEAD", format!("/click2dial/recordings/{REF}"), None),
        ("GET", "/readyz".into(), None),
        ("GET", "/metrics".into(), None),
        ("GET", "/openapi.json".into(), None),
    ];
    let content_type = [("content-type", "application/json")];
    for (method, path, body) in &routes {
        let none = w.host.request(method, path, None, &content_type, *body);
        assert_eq!(none.status, 401, "{method} {path}");
        assert_eq!(
            none.header("www-authenticate"),
            Some(r#"Bearer realm="click2dial""#),
            "{method} {path}"
        );
        if *method != "HEAD" {
            assert_eq!(none.code(), "unauthorized");
        }
        for bad in [
            format!("Bearer {TEST_KEY}x"),
            "Bearer ".into(),
            format!("Basic {TEST_KEY}"),
            TEST_KEY.to_string(),
        ] {
            let mut headers = vec![("authorization", bad.as_str())];
            headers.extend_from_slice(&content_type);
            let answer = w.host.request(method, path, None, &headers, *body);
            assert_eq!(answer.status, 401, "{method} {path} with {bad:?}");
            assert_eq!(
                answer.header("www-authenticate"),
                Some(r#"Bearer realm="click2dial", error="invalid_token""#)
            );
        }
        let with_key = w
            .host
            .request(method, path, Some(TEST_KEY), &content_type, *body);
        assert_ne!(with_key.status, 401, "{method} {path}");
    }
    let health = w.host.request("GET", "/healthz", None, &[], None);
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");
}

#[test]
fn keys_limit_caller_ids_and_agents_before_anything_is_dialled() {
    let limited = format!(
        r#"{{id="crm-limited",hash="{}",outbound_ids=["27820001234","tvc_spring"],agents="1000-1099"}}"#,
        hash(LIMITED_KEY)
    );
    let keys = auth_keys(&[&limited]);
    let w = world(&[("C2D_AUTH__KEYS", &keys)]);
    let post = |key: &str, body: &str| {
        w.host.request(
            "POST",
            "/click2dial/calls",
            Some(key),
            &[("content-type", "application/json")],
            Some(body),
        )
    };
    // Wait for the PBX with the unrestricted key.
    let (status, _) = w
        .host
        .create_call_when_ready(&call("1500", "27829999999", "crm-free"));
    assert_eq!(status, 202, "the test key has no restrictions");

    let refused = [
        (call("1001", "27829999999", "r-outbound"), "outbound_id_not_allowed", "outbound_id"),
        (call("1001", "tvc_other", "r-campaign"), "outbound_id_not_allowed", "outbound_id"),
        (call("1100", "27820001234", "r-agent"), "agent_not_allowed", "agent"),
        (
            r#"{"agent":"0820001234","callee":"0820001234","outbound_id":"27820001234","contact_ref":"r-oneleg"}"#.into(),
            "agent_not_allowed",
            "agent",
        ),
    ];
    for (body, code, field) in &refused {
        let answer = post(LIMITED_KEY, body);
        assert_eq!(answer.status, 422, "{body}");
        assert_eq!(answer.code(), *code, "{body}");
        assert_eq!(answer.json()["error"]["field"], *field);
    }
    let ok = post(LIMITED_KEY, &call("1099", "tvc_spring", "crm-allowed"));
    assert_eq!(ok.status, 202, "{:?}", ok.json());
    std::thread::sleep(Duration::from_millis(300));
    for contact_ref in ["r-outbound", "r-campaign", "r-agent", "r-oneleg"] {
        let id = contact_ref.to_string();
        assert_eq!(w.sim.originates_of(&id), 0, "{contact_ref} was not dialled");
    }
    let id = "crm-allowed".to_string();
    assert_eq!(w.sim.originates_of(&id), 1);
}

#[test]
fn a_key_over_its_rate_gets_429_with_retry_after() {
    let slow = format!(
        r#"{{id="slow",hash="{}",rate_per_minute=60,burst=3}}"#,
        hash(SLOW_KEY)
    );
    let keys = auth_keys(&[&slow]);
    let w = world(&[("C2D_AUTH__KEYS", &keys)]);
    let get = |key: &str| w.host.request("GET", "/openapi.json", Some(key), &[], None);
    for i in 0..3 {
        assert_eq!(get(SLOW_KEY).status, 200, "request {i} is within the burst");
    }
    let limited = get(SLOW_KEY);
    assert_eq!(limited.status, 429);
    assert_eq!(limited.code(), "rate_limited");
    let wait: u64 = limited
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=2).contains(&wait), "{wait}");
    // Other keys are not affected.
    assert_eq!(get(TEST_KEY).status, 200);
    // The create-call route counts too.
    let post = w.host.request(
        "POST",
        "/click2dial/calls",
        Some(SLOW_KEY),
        &[("content-type", "application/json")],
        Some("{}"),
    );
    assert_eq!(post.status, 429);
    std::thread::sleep(Duration::from_secs(wait));
    assert_eq!(get(SLOW_KEY).status, 200, "allowed again after Retry-After");
    let metrics = String::from_utf8(w.host.get("/metrics").body).expect("utf-8");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("click2dial_rate_limited_total{key=\"slow\"} 2")),
        "{metrics}"
    );
}

#[test]
fn keys_never_reach_the_log() {
    let recordings = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start();
    let sim = Sim::start(recordings.path(), "127.0.0.1:0");
    let log = recordings.path().join("host.log");
    let host = Host::start_logged(
        &redis,
        &sim.address,
        recordings.path(),
        &[("RUST_LOG", "debug"), ("C2D_LOG_JSON", "true")],
        &log,
    );
    let (status, _) = host.create_call_when_ready(&call("1001", "27820001234", "crm-log"));
    assert_eq!(status, 202);
    let wrong = "c2d_wrong_0123456789abcdef0123456789abcdef";
    for key in [TEST_KEY, wrong] {
        host.request(
            "GET",
            "/readyz",
            Some(key),
            &[("x-request-id", "req-42")],
            None,
        );
    }
    host.terminate();
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(!text.is_empty());
    assert!(!text.contains(TEST_KEY), "the key is in the log");
    assert!(!text.contains(wrong), "a refused key is in the log");
    assert!(
        !text.contains("c2d_e2e_key"),
        "part of the key is in the log"
    );
    // JSON lines, with the request id and the key's configured name.
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("JSON log line"))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["span"]["request_id"] == "req-42" && l["span"]["key"] == "e2e"),
        "{text}"
    );
}
