//! The host as an attacker meets it, through its real ports (HTTP, FastAGI) with a real
//! redis-server and the PBX simulator: one test per defect of issue 12, each of which the
//! code before the fix failed, plus a table-driven run of hostile requests.
//!
//! Modules follow the issue's items: `isolation` (keys own what they create, scopes),
//! `resources` (nothing an unauthenticated client sends grows memory), `files`
//! (recordings opened safely), `idempotency` (honest repeats), `dependencies` (fast
//! failure), `low` (the Low items) and `hostile` (the table).

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{auth_keys, host_binary, world, Answer, Host, World, TEST_KEY};

/// A second tenant's key (default scopes).
const KEY_B: &str = "c2d_tenant_b_0123456789abcdef0123456789abcdef";
/// A key that may only read calls.
const READ_ONLY_KEY: &str = "c2d_read_only_0123456789abcdef0123456789abcdef";

/// `click2dial-host hash-key` of `key`.
fn hash(key: &str) -> String {
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

/// The keys of a multi-tenant host: `e2e` (every scope), `b` (the default scopes) and
/// `reader` (`calls:read` only).
fn tenant_keys() -> String {
    auth_keys(&[
        &format!(r#"{{id="b",hash="{}",rate_per_minute=0}}"#, hash(KEY_B)),
        &format!(
            r#"{{id="reader",hash="{}",rate_per_minute=0,scopes=["calls:read"]}}"#,
            hash(READ_ONLY_KEY)
        ),
    ])
}

fn tenants(extra: &[(&str, &str)]) -> World {
    let keys = tenant_keys();
    let mut vars = vec![("C2D_AUTH__KEYS", keys.as_str())];
    vars.extend_from_slice(extra);
    world(&vars)
}

fn call(callee: &str, contact_ref: &str) -> String {
    format!(
        r#"{{"agent":"1001","callee":"{callee}","outbound_id":"27820001234","contact_ref":"{contact_ref}"}}"#
    )
}

fn post(host: &Host, key: &str, body: &str) -> Answer {
    host.request(
        "POST",
        "/click2dial/calls",
        Some(key),
        &[("content-type", "application/json")],
        Some(body),
    )
}

/// Posts until the host is logged in to the PBX (a `503` before that).
fn post_when_ready(host: &Host, key: &str, body: &str) -> Answer {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = post(host, key, body);
        if answer.status != 503 || Instant::now() > deadline {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The answer's headers that are the same for every request (not the request id, date or
/// length), sorted.
fn stable_headers(answer: &Answer) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = answer
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .filter(|(k, _)| !matches!(k.as_str(), "x-request-id" | "date"))
        .collect();
    out.sort();
    out
}

/// Two answers an attacker could not tell apart: status, body and headers.
fn assert_indistinguishable(a: &Answer, b: &Answer, what: &str) {
    assert_eq!(a.status, b.status, "{what}: status");
    assert_eq!(
        String::from_utf8_lossy(&a.body),
        String::from_utf8_lossy(&b.body),
        "{what}: body"
    );
    assert_eq!(stable_headers(a), stable_headers(b), "{what}: headers");
}

/// The median time of `n` requests made by `send`.
fn median_time(n: usize, mut send: impl FnMut() -> Answer) -> Duration {
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let started = Instant::now();
            let _ = send();
            started.elapsed()
        })
        .collect();
    times.sort();
    times[n / 2]
}

mod isolation {
    use super::*;

    #[test]
    fn another_keys_call_events_are_404_like_a_call_that_does_not_exist() {
        let w = tenants(&[]);
        let created = post_when_ready(&w.host, TEST_KEY, &call("0820001234", "iso-events"));
        assert_eq!(created.status, 202, "{:?}", created.json());
        let path = "/click2dial/calls/iso-events/events";
        let missing = "/click2dial/calls/iso-nobody-made-this/events";
        // The owner follows it (the call is known to the host).
        assert!(support::eventually(Duration::from_secs(5), || {
            w.host
                .request("GET", path, Some(TEST_KEY), &[], None)
                .status
                == 200
        }));
        let other = w.host.request("GET", path, Some(KEY_B), &[], None);
        let none = w.host.request("GET", missing, Some(KEY_B), &[], None);
        assert_eq!(other.status, 404, "{:?}", other.json());
        assert_indistinguishable(&other, &none, "another key's call vs no call");
        let t_other = median_time(21, || w.host.request("GET", path, Some(KEY_B), &[], None));
        let t_none = median_time(21, || {
            w.host.request("GET", missing, Some(KEY_B), &[], None)
        });
        let (lo, hi) = (t_other.min(t_none), t_other.max(t_none));
        assert!(
            hi <= lo * 3 + Duration::from_millis(5),
            "timing tells them apart: {t_other:?} vs {t_none:?}"
        );
    }

    #[test]
    fn another_keys_recording_is_404_like_one_that_does_not_exist() {
        let w = tenants(&[]);
        let created = post_when_ready(&w.host, TEST_KEY, &call("0820001234", "iso-rec"));
        assert_eq!(created.status, 202);
        let recording_ref = created.json()["recording_ref"]
            .as_str()
            .expect("recording_ref")
            .to_string();
        let got = w.redis.follow(
            "teleforge:notifications:c2d:iso-rec",
            &["recording_ready"],
            Duration::from_secs(20),
        );
        assert_eq!(
            got.last().map(|n| n["event"].clone()),
            Some("recording_ready".into())
        );
        let path = format!("/click2dial/recordings/{recording_ref}");
        let mine = w.host.request("GET", &path, Some(TEST_KEY), &[], None);
        assert_eq!(mine.status, 200);
        assert!(!mine.body.is_empty());
        for method in ["GET", "HEAD"] {
            let other = w.host.request(method, &path, Some(KEY_B), &[], None);
            let none = w.host.request(
                method,
                "/click2dial/recordings/aaaaaaaaaaaaaaaaaaaaaaaaaa",
                Some(KEY_B),
                &[],
                None,
            );
            assert_eq!(other.status, 404, "{method}");
            assert_indistinguishable(&other, &none, method);
        }
        // A range or a conditional request tells nothing either.
        let other = w.host.request(
            "GET",
            &path,
            Some(KEY_B),
            &[("range", "bytes=0-3"), ("if-none-match", "\"x\"")],
            None,
        );
        assert_eq!(other.status, 404);
    }

    #[test]
    fn idempotency_is_per_key_and_each_keys_call_is_its_own() {
        let w = tenants(&[]);
        let body = call("0820001234", "iso-shared");
        let a = post_when_ready(&w.host, TEST_KEY, &body);
        let b = post(&w.host, KEY_B, &body);
        assert_eq!(
            (a.status, b.status),
            (202, 202),
            "{:?} {:?}",
            a.json(),
            b.json()
        );
        assert_ne!(
            a.json()["recording_ref"],
            b.json()["recording_ref"],
            "B must not get A's answer back"
        );
        // Each key's repeat is answered from its own first answer.
        assert_eq!(post(&w.host, KEY_B, &body).json(), b.json());
        assert_eq!(post(&w.host, TEST_KEY, &body).json(), a.json());
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(w.sim.originates_of("iso-shared"), 2, "one call per key");
        // The PBX sees two distinct ChannelIds (Asterisk refuses a ChannelId in use).
        let log = w.sim.log_text();
        let ids: std::collections::HashSet<&str> = log
            .lines()
            .filter(|l| l.contains(" originate action_id=") && l.contains("iso-shared"))
            .filter_map(|l| l.split("action_id=\"").nth(1)?.split('"').next())
            .collect();
        assert_eq!(ids.len(), 2, "{ids:?}");
        // A different payload under B's contact_ref conflicts with B's call only.
        let conflict = post(&w.host, KEY_B, &call("0820009999", "iso-shared"));
        assert_eq!(conflict.status, 409);
    }

    #[test]
    fn scopes_are_enforced_with_403_insufficient_scope() {
        let w = tenants(&[]);
        let cases: [(&str, &str, &str, u16); 5] = [
            (READ_ONLY_KEY, "POST", "/click2dial/calls", 403),
            (
                READ_ONLY_KEY,
                "GET",
                "/click2dial/recordings/aaaaaaaaaaaaaaaaaaaaaaaaaa",
                403,
            ),
            (READ_ONLY_KEY, "GET", "/metrics", 403),
            (KEY_B, "GET", "/metrics", 403),
            (TEST_KEY, "GET", "/metrics", 200),
        ];
        for (key, method, path, status) in cases {
            let answer = w.host.request(
                method,
                path,
                Some(key),
                &[("content-type", "application/json")],
                (method == "POST").then_some(call("0820001234", "scope-1").as_str()),
            );
            assert_eq!(answer.status, status, "{method} {path}");
            if status == 403 {
                assert_eq!(answer.code(), "insufficient_scope", "{method} {path}");
                let text = String::from_utf8_lossy(&answer.body).to_string();
                assert!(!text.contains("e2e") && !text.contains("reader"), "{text}");
            }
        }
        // A read-only key still reads (its own) calls: an unknown one is 404, not 403.
        let answer = w.host.request(
            "GET",
            "/click2dial/calls/nobody/events",
            Some(READ_ONLY_KEY),
            &[],
            None,
        );
        assert_eq!(answer.status, 404);
        assert_eq!(w.sim.originates_of("scope-1"), 0);
    }

    #[test]
    fn the_openapi_document_shows_the_scheme_and_each_routes_scope() {
        let w = tenants(&[]);
        let doc = w
            .host
            .request("GET", "/openapi.json", Some(KEY_B), &[], None)
            .json();
        let scheme = &doc["components"]["securitySchemes"]["api_key"];
        assert_eq!(scheme["scheme"], "bearer", "{scheme}");
        let description = scheme["description"].as_str().unwrap_or_default();
        for scope in [
            "calls:create",
            "calls:read",
            "recordings:read",
            "metrics:read",
        ] {
            assert!(description.contains(scope), "{description}");
        }
        let scope = |path: &str, method: &str| {
            doc["paths"][path][method]["security"][0]["api_key"][0]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(scope("/click2dial/calls", "post"), "calls:create");
        assert_eq!(
            scope("/click2dial/calls/{contact_ref}/events", "get"),
            "calls:read"
        );
        assert_eq!(
            scope("/click2dial/recordings/{recording_ref}", "get"),
            "recordings:read"
        );
        assert_eq!(scope("/metrics", "get"), "metrics:read");
    }
}
