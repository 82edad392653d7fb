//! Operations over the real HTTP port: readiness, metrics, the OpenAPI description against
//! the served routes, request ids, limits and timeouts, and shutdown on SIGTERM.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::{
    events, eventually, parse_answer, world, Host, Redis, Sim, ANSWERED, TEST_KEY,
};

fn body(agent: &str, callee: &str, contact_ref: &str) -> String {
    format!(
        r#"{{"agent":"{agent}","callee":"{callee}","outbound_id":"27820001234","contact_ref":"{contact_ref}"}}"#
    )
}

fn key_of(contact_ref: &str) -> String {
    format!("teleforge:notifications:c2d:{contact_ref}")
}

/// `(status, checks.ami, checks.redis)` of `/readyz`.
fn readiness(host: &Host) -> (u16, String, String) {
    let answer = host.get("/readyz");
    let json = answer.json();
    let word = |v: &serde_json::Value| v.as_str().unwrap_or("?").to_string();
    (
        answer.status,
        word(&json["checks"]["ami"]),
        word(&json["checks"]["redis"]),
    )
}

fn ready_is(host: &Host, expected: (u16, &str, &str)) -> bool {
    eventually(Duration::from_secs(15), || {
        let (s, a, r) = readiness(host);
        (s, a.as_str(), r.as_str()) == expected
    })
}

#[test]
fn readiness_says_which_of_redis_and_the_pbx_is_down() {
    let mut w = world(&[]);
    assert!(
        ready_is(&w.host, (200, "ok", "ok")),
        "{:?}",
        readiness(&w.host)
    );
    assert_eq!(w.host.get("/readyz").json()["status"], "ready");

    w.redis.stop();
    assert!(
        ready_is(&w.host, (503, "ok", "down")),
        "{:?}",
        readiness(&w.host)
    );
    let answer = w.host.get("/readyz");
    assert_eq!(answer.code(), "service_unavailable");
    assert!(answer.json()["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("Redis")));
    assert_eq!(
        w.host.request("GET", "/healthz", None, &[], None).status,
        200
    );

    w.redis.restart();
    assert!(
        ready_is(&w.host, (200, "ok", "ok")),
        "{:?}",
        readiness(&w.host)
    );

    let address = w.sim.address.clone();
    let recordings = w.sim.recordings.clone();
    w.sim.stop();
    assert!(
        ready_is(&w.host, (503, "down", "ok")),
        "{:?}",
        readiness(&w.host)
    );
    assert!(w.host.get("/readyz").json()["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("AMI")));

    w.redis.stop();
    assert!(
        ready_is(&w.host, (503, "down", "down")),
        "{:?}",
        readiness(&w.host)
    );
    w.redis.restart();

    w.sim = Sim::start(&recordings, &address);
    assert!(
        ready_is(&w.host, (200, "ok", "ok")),
        "{:?}",
        readiness(&w.host)
    );
}

/// The value of the metric line that starts with `name` and contains every `labels` part.
fn metric(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            let (series, _) = l.rsplit_once(' ').unwrap_or((l, ""));
            (series == name || series.starts_with(&format!("{name}{{")))
                && labels.iter().all(|p| series.contains(p))
        })
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

/// A recordings directory the host cannot read (here: not made yet) is named by `/readyz`,
/// `degraded` rather than `not_ready`: calls go on; once it is there, ready.
#[test]
fn readiness_names_a_recordings_directory_it_cannot_read() {
    let spool = tempfile::tempdir().expect("tempdir");
    let missing = spool.path().join("click2dial");
    let redis = Redis::start();
    let sim = Sim::start(spool.path(), "127.0.0.1:0");
    let host = Host::start(&redis, &sim.address, &missing, &[]);
    assert!(
        eventually(Duration::from_secs(15), || host.get("/readyz").json()
            ["status"]
            == "degraded"),
        "{}",
        host.get("/readyz").json()
    );
    let answer = host.get("/readyz");
    let json = answer.json();
    assert_eq!(answer.status, 200, "{json}");
    assert_eq!(json["checks"]["recordings"], "unreadable", "{json}");
    assert_eq!(json["checks"]["ami"], "ok", "{json}");
    let problem = &json["problems"][0];
    assert_eq!(problem["check"], "recordings", "{json}");
    assert_eq!(problem["code"], "recordings_unreadable", "{json}");
    let message = problem["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(missing.to_str().expect("UTF-8")) && message.contains("No such file"),
        "{message}"
    );
    let (status, created) = host.create_call_when_ready(&body("1001", "0820001234", "rec-dir-1"));
    assert_eq!(status, 202, "calls go on: {created}");
    std::fs::create_dir(&missing).expect("mkdir");
    assert!(ready_is(&host, (200, "ok", "ok")), "{:?}", readiness(&host));
    let json = host.get("/readyz").json();
    assert_eq!(json["status"], "ready", "{json}");
    assert_eq!(json["checks"]["recordings"], "ok", "{json}");
}

/// Redis on the same machine, reached over its Unix socket (`redis.url = "unix://…"`), with
/// no TCP port at all: readiness, a whole call's notifications and idempotency go through it.
#[test]
fn redis_over_a_unix_socket_only() {
    let recordings = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start_on_socket();
    assert!(redis.url().starts_with("unix:///"), "{}", redis.url());
    let sim = Sim::start(recordings.path(), "127.0.0.1:0");
    let host = Host::start(&redis, &sim.address, recordings.path(), &[]);
    assert!(ready_is(&host, (200, "ok", "ok")), "{:?}", readiness(&host));
    let call = body("1001", "0820001234", "unix-socket-1");
    let (status, first) = host.create_call_when_ready(&call);
    assert_eq!(status, 202, "{first}");
    let got = redis.follow(
        &key_of("unix-socket-1"),
        &["recording_ready"],
        Duration::from_secs(20),
    );
    assert_eq!(events(&got), ANSWERED);
    let (status, repeat) = host.create_call(&call);
    assert_eq!(
        (status, &repeat),
        (202, &first),
        "a repeat gets the first answer"
    );
    assert_eq!(sim.originates_of("unix-socket-1"), 1, "and dials nothing");
}

#[test]
fn metrics_count_what_happened() {
    let mut w = world(&[]);
    let (status, _) = w
        .host
        .create_call_when_ready(&body("1001", "0820001234", "crm-m1"));
    assert_eq!(status, 202);
    let got = w.redis.follow(
        &key_of("crm-m1"),
        &["recording_ready"],
        Duration::from_secs(20),
    );
    assert_eq!(events(&got), ANSWERED);
    let (status, _) = w.host.create_call(&body("1486", "0820001234", "crm-m2"));
    assert_eq!(status, 202);
    w.redis
        .follow(&key_of("crm-m2"), &["failed"], Duration::from_secs(20));
    assert_eq!(
        w.host.create_call(&body("1001", "0900001234", "crm-m3")).0,
        422
    );
    w.host
        .request("POST", "/click2dial/calls", None, &[], Some("{}"));
    w.host.get("/no/such/route");

    let scrape = || String::from_utf8(w.host.get("/metrics").body).expect("utf-8");
    let text = scrape();
    let calls = ["route=\"/click2dial/calls\"", "method=\"POST\""];
    let by_status = |status: &str| {
        let mut labels = calls.to_vec();
        let s = format!("status=\"{status}\"");
        labels.push(&s);
        metric(&text, "click2dial_http_requests_total", &labels)
    };
    assert!(by_status("202") >= Some(2.0), "{text}");
    assert_eq!(by_status("422"), Some(1.0), "{text}");
    assert_eq!(by_status("401"), Some(1.0), "{text}");
    assert_eq!(
        metric(
            &text,
            "click2dial_http_requests_total",
            &["route=\"unmatched\"", "status=\"404\""]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "click2dial_calls_started_total", &[]),
        Some(2.0)
    );
    assert_eq!(
        metric(
            &text,
            "click2dial_calls_ended_total",
            &["event=\"hangup\"", "cause=\"normal_clearing\""]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "click2dial_calls_ended_total",
            &["event=\"failed\"", "cause=\"agent_busy\""]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(metric(&text, "click2dial_ami_up", &[]), Some(1.0));
    assert_eq!(
        metric(&text, "click2dial_ami_reconnects_total", &[]),
        Some(0.0)
    );
    assert_eq!(
        metric(&text, "click2dial_notification_spool_depth", &[]),
        Some(0.0)
    );
    assert_eq!(metric(&text, "click2dial_calls_in_flight", &[]), Some(0.0));
    // Seven notifications for the answered call, at least two for the busy agent.
    let pushed = metric(&text, "click2dial_notification_latency_seconds_count", &[]);
    assert!(pushed >= Some(9.0), "{text}");
    assert!(text.contains("click2dial_notification_latency_seconds_bucket{le=\"0.001\"}"));

    // The PBX restarts: one reconnect.
    let (address, recordings) = (w.sim.address.clone(), w.sim.recordings.clone());
    w.sim.stop();
    assert!(eventually(Duration::from_secs(5), || {
        metric(&scrape(), "click2dial_ami_up", &[]) == Some(0.0)
    }));
    w.sim = Sim::start(&recordings, &address);
    assert!(eventually(Duration::from_secs(15), || {
        metric(&scrape(), "click2dial_ami_reconnects_total", &[]) == Some(1.0)
    }));

    // Redis goes away: notifications wait in the spool, and the gauge shows them.
    w.redis.stop();
    let (status, _) = w.host.create_call(&body("1486", "0820001234", "crm-m4"));
    assert_eq!(status, 503, "no idempotency store: nothing dialled");
    let (status, _) = w
        .host
        .create_call(r#"{"agent":"1486","callee":"0820001234","outbound_id":"27820001234"}"#);
    assert_eq!(
        status, 202,
        "a generated contact_ref needs no idempotency store"
    );
    assert!(eventually(Duration::from_secs(10), || {
        metric(&scrape(), "click2dial_notification_spool_depth", &[]) >= Some(2.0)
    }));
    w.redis.restart();
    assert!(eventually(Duration::from_secs(15), || {
        metric(&scrape(), "click2dial_notification_spool_depth", &[]) == Some(0.0)
    }));
}

#[test]
fn openapi_describes_exactly_the_served_routes() {
    let w = world(&[]);
    let doc = w.host.get("/openapi.json").json();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    let paths = doc["paths"].as_object().expect("paths");
    let mut documented = Vec::new();
    for (path, item) in paths {
        for method in ["get", "head", "post", "put", "delete", "patch", "options"] {
            if item.get(method).is_some() {
                documented.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    documented.sort();
    let expected: Vec<(String, String)> = [
        ("DELETE", "/click2dial/calls/{contact_ref}"),
        ("GET", "/click2dial/calls"),
        ("GET", "/click2dial/calls/{contact_ref}"),
        ("GET", "/click2dial/calls/{contact_ref}/events"),
        ("GET", "/click2dial/recordings/{recording_ref}"),
        ("GET", "/click2dial/webhooks"),
        ("GET", "/healthz"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/readyz"),
        ("HEAD", "/click2dial/recordings/{recording_ref}"),
        ("POST", "/click2dial/calls"),
    ]
    .iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    assert_eq!(documented, expected);
    for (method, path) in &documented {
        let concrete = path
            .replace("{recording_ref}", "abcdefghijklmnopqrstuvwxyz")
            .replace("{contact_ref}", "no-such-call");
        let operation = &paths[path.as_str()][method.to_lowercase()];
        let secured = operation["security"]
            .as_array()
            .is_some_and(|s| !s.is_empty());
        // Without a key: a served, protected route says 401; an unknown one would be 404.
        let anonymous = w.host.request(method, &concrete, None, &[], None);
        if path == "/healthz" {
            assert!(!secured);
            assert_eq!(anonymous.status, 200);
        } else {
            assert!(secured, "{method} {path} declares the API key");
            assert_eq!(anonymous.status, 401, "{method} {path} is served");
        }
        // Every documented status is one the operation declares.
        let answer = w.host.request(
            method,
            &concrete,
            Some(TEST_KEY),
            &[("content-type", "application/json")],
            (method == "POST").then_some("{}"),
        );
        let declared = operation["responses"].as_object().expect("responses");
        assert!(
            declared.contains_key(&answer.status.to_string()),
            "{method} {path} answered {} which is not documented",
            answer.status
        );
        // Methods the description does not list are not served.
        for other in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            if documented.iter().any(|(m, p)| m == other && p == path)
                || (other == "GET" && documented.iter().any(|(m, p)| m == "HEAD" && p == path))
            {
                continue;
            }
            let refused = w.host.request(other, &concrete, Some(TEST_KEY), &[], None);
            assert_eq!(refused.status, 405, "{other} {path}");
            assert_eq!(refused.code(), "method_not_allowed");
        }
    }
    for unknown in [
        "/",
        "/click2dial",
        "/click2dial/calls/x",
        "/click2dial/calls/x/events/y",
        "/click2dial/recordings",
        "/docs",
        "/healthz/x",
    ] {
        let answer = w.host.request("GET", unknown, Some(TEST_KEY), &[], None);
        assert_eq!(
            (answer.status, answer.code()),
            (404, "not_found".into()),
            "{unknown}"
        );
    }
}

#[test]
fn every_answer_carries_a_request_id() {
    let w = world(&[]);
    let fresh = w.host.request("GET", "/healthz", None, &[], None);
    let id = fresh.header("x-request-id").expect("x-request-id");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let kept = w.host.request(
        "GET",
        "/healthz",
        None,
        &[("x-request-id", "crm-trace-7")],
        None,
    );
    assert_eq!(kept.header("x-request-id"), Some("crm-trace-7"));
    let odd = "x".repeat(100);
    let replaced = w
        .host
        .request("GET", "/healthz", None, &[("x-request-id", &odd)], None);
    let new = replaced.header("x-request-id").expect("x-request-id");
    assert_ne!(new, odd);
    assert_eq!(new.len(), 36);
    let error = w.host.request("GET", "/nothing", None, &[], None);
    assert!(error.header("x-request-id").is_some());
}

#[test]
fn limits_on_bodies_heads_and_slow_requests() {
    let w = world(&[
        ("C2D_HTTP__REQUEST_TIMEOUT_SECS", "1"),
        ("C2D_HTTP__HEADER_TIMEOUT_SECS", "1"),
    ]);
    // A declared body over 4 KiB: 413 before it is read.
    let big = w.host.raw(&format!(
        "POST /click2dial/calls HTTP/1.1\r\nAuthorization: Bearer {TEST_KEY}\r\nContent-Type: application/json\r\nContent-Length: 100000"
    ));
    assert_eq!((big.status, big.code()), (413, "body_too_large".into()));

    // Too many header lines: refused by hyper before the application.
    let many: String = (0..70).map(|i| format!("\r\nX-Pad-{i}: v")).collect();
    let crowded = w.host.raw(&format!("GET /healthz HTTP/1.1{many}"));
    assert_eq!(crowded.status, 431);

    // A body that never completes: 408 once the request timeout passes.
    let mut stream = TcpStream::connect(&w.host.address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let started = Instant::now();
    write!(
        stream,
        "POST /click2dial/calls HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TEST_KEY}\r\nContent-Type: application/json\r\nContent-Length: 50\r\nConnection: close\r\n\r\n{{\"agent\":"
    )
    .expect("send");
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    let answer = parse_answer(&bytes);
    assert_eq!(
        (answer.status, answer.code()),
        (408, "request_timeout".into())
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    // A head that never completes: the connection is closed.
    let mut stream = TcpStream::connect(&w.host.address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let started = Instant::now();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .expect("send");
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    assert!(!bytes.starts_with(b"HTTP/1.1 200"), "nothing was served");
}

#[test]
fn calls_in_flight_are_capped() {
    let w = world(&[("C2D_LIMITS__MAX_CALLS_IN_FLIGHT", "1")]);
    let (status, _) = w
        .host
        .create_call_when_ready(&body("1001", "0820001234", "crm-cap-1"));
    assert_eq!(status, 202);
    let answer = w.host.request(
        "POST",
        "/click2dial/calls",
        Some(TEST_KEY),
        &[("content-type", "application/json")],
        Some(&body("1001", "0820001234", "crm-cap-2")),
    );
    assert_eq!(answer.status, 503);
    assert_eq!(answer.code(), "service_unavailable");
    assert!(answer.header("retry-after").is_some());
    w.redis.follow(
        &key_of("crm-cap-1"),
        &["recording_ready"],
        Duration::from_secs(20),
    );
    // The refused call left no idempotency record: the same request goes through now.
    assert!(eventually(Duration::from_secs(5), || {
        w.host
            .create_call(&body("1001", "0820001234", "crm-cap-2"))
            .0
            == 202
    }));
}

#[test]
fn sigterm_flushes_notifications_spooled_while_redis_was_down() {
    let mut w = world(&[("C2D_SHUTDOWN__FLUSH_TIMEOUT_SECS", "20")]);
    let (status, _) = w
        .host
        .create_call_when_ready(&body("1001", "0820001234", "crm-spooled"));
    assert_eq!(status, 202);
    w.redis.stop();
    // Let the call end while Redis is away: its events wait in the spool.
    let scrape = |host: &Host| String::from_utf8(host.get("/metrics").body).unwrap_or_default();
    assert!(eventually(Duration::from_secs(20), || {
        let text = scrape(&w.host);
        metric(&text, "click2dial_calls_in_flight", &[]) == Some(0.0)
            && metric(&text, "click2dial_notification_spool_depth", &[]) >= Some(1.0)
    }));
    w.host.signal_term();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        w.host.wait_exit(Duration::ZERO).is_none(),
        "the host waits for Redis to take the spool"
    );
    w.redis.restart();
    let exit = w.host.wait_exit(Duration::from_secs(20)).expect("exits");
    assert!(exit.success(), "{exit:?}");
    let got = w.redis.drain(&key_of("crm-spooled"));
    assert_eq!(events(&got), ANSWERED, "nothing lost, nothing twice");
}

#[test]
fn sigterm_finishes_requests_and_calls_in_flight() {
    let mut w = world(&[]);
    let (status, _) = w
        .host
        .create_call_when_ready(&body("1001", "0820001234", "crm-before"));
    assert_eq!(status, 202);
    // A request whose body is still arriving when SIGTERM comes.
    let request = body("1001", "0820001234", "crm-during");
    let mut stream = TcpStream::connect(&w.host.address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    write!(
        stream,
        "POST /click2dial/calls HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TEST_KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        request.len(),
        &request[..10]
    )
    .expect("send");
    std::thread::sleep(Duration::from_millis(200));
    w.host.signal_term();
    std::thread::sleep(Duration::from_millis(300));
    // New connections are no longer accepted…
    assert!(
        TcpStream::connect(&w.host.address).is_err() || w.host.wait_exit(Duration::ZERO).is_none()
    );
    // …but the request in flight is answered.
    stream.write_all(&request.as_bytes()[10..]).expect("rest");
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    let answer = parse_answer(&bytes);
    assert_eq!(
        answer.status,
        202,
        "{:?}",
        String::from_utf8_lossy(&answer.body)
    );

    let exit = w.host.wait_exit(Duration::from_secs(30)).expect("exits");
    assert!(exit.success(), "{exit:?}");
    // Both calls ran to their end before the host left, and every event is in Redis.
    for contact_ref in ["crm-before", "crm-during"] {
        let got = w.redis.drain(&key_of(contact_ref));
        assert_eq!(events(&got), ANSWERED, "{contact_ref}");
    }
}

/// A Redis that may evict keys when full would lose idempotency claims and exactly-once
/// marks: the host names its policy in the log on connecting; a `noeviction` one is not
/// named.
#[test]
fn a_redis_that_evicts_keys_is_named_in_the_log() {
    const WARNING: &str = "set maxmemory-policy noeviction";
    for (args, contact_ref, warned) in [
        (
            &["--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru"][..],
            "evict-1",
            true,
        ),
        (&[][..], "evict-2", false),
    ] {
        let recordings = tempfile::tempdir().expect("tempdir");
        let redis = Redis::start_with(args);
        let sim = Sim::start(recordings.path(), "127.0.0.1:0");
        let log = recordings.path().join("host.log");
        let host = Host::start_logged(&redis, &sim.address, recordings.path(), &[], &log);
        let (status, answer) =
            host.create_call_when_ready(&body("1001", "0820001234", contact_ref));
        assert_eq!(status, 202, "{answer}");
        // The create used the request path's connection; its check follows at once and
        // is over within the 1 s bound of a Redis round trip.
        let read = || std::fs::read_to_string(&log).expect("log");
        if warned {
            assert!(eventually(Duration::from_secs(5), || read().contains(WARNING)));
        } else {
            std::thread::sleep(Duration::from_millis(1500));
        }
        let text = read();
        assert_eq!(text.contains(WARNING), warned, "{args:?}:\n{text}");
        if warned {
            assert!(
                text.contains(r#"maxmemory_policy="allkeys-lru" maxmemory="104857600""#),
                "{text}"
            );
        }
    }
}
