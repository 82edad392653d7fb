//! The host as an attacker meets it, through its real ports (HTTP, FastAGI) with a real
//! redis-server and the PBX simulator: one test per defect of issue 12, each of which the
//! code before the fix failed, plus a table-driven run of hostile requests.
//!
//! Modules follow the issue's items: `isolation` (keys own what they create, scopes),
//! `resources` (nothing an unauthenticated client sends grows memory), `files`
//! (recordings opened safely), `idempotency` (honest repeats), `dependencies` (fast
//! failure), `low` (the Low items) and `hostile` (the table).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{
    self, auth_keys, hash_key as hash, host_binary, world, Answer, Host, World, TEST_KEY,
};

/// A second tenant's key (default scopes).
const KEY_B: &str = "c2d_tenant_b_0123456789abcdef0123456789abcdef";
/// A key that may only read calls.
const READ_ONLY_KEY: &str = "c2d_read_only_0123456789abcdef0123456789abcdef";

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
        let missing = "/click2dial/recordings/aaaaaaaaaaaaaaaaaaaaaaaaaa";
        let t_other = median_time(21, || w.host.request("GET", &path, Some(KEY_B), &[], None));
        let t_none = median_time(21, || {
            w.host.request("GET", missing, Some(KEY_B), &[], None)
        });
        let (lo, hi) = (t_other.min(t_none), t_other.max(t_none));
        assert!(
            hi <= lo * 3 + Duration::from_millis(5),
            "timing tells them apart: {t_other:?} vs {t_none:?}"
        );
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
        assert_eq!(scope("/click2dial/calls", "get"), "calls:read");
        assert_eq!(
            scope("/click2dial/calls/{contact_ref}", "get"),
            "calls:read"
        );
        assert_eq!(
            scope("/click2dial/calls/{contact_ref}", "delete"),
            "calls:create"
        );
        assert_eq!(
            scope("/click2dial/calls/{contact_ref}/events", "get"),
            "calls:read"
        );
        assert_eq!(
            scope("/click2dial/recordings/{recording_ref}", "get"),
            "recordings:read"
        );
        assert_eq!(scope("/metrics", "get"), "metrics:read");
        assert_eq!(scope("/click2dial/webhooks", "get"), "calls:read");
    }
}

/// A small deterministic generator (xorshift64*), for made-up methods and paths.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// `len` characters of `alphabet`.
    fn text(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len)
            .map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize] as char)
            .collect()
    }
}

/// Reads one answer with a `Content-Length` body from a keep-alive connection; its status.
fn read_answer(stream: &mut std::net::TcpStream, buf: &mut Vec<u8>) -> Option<u16> {
    use std::io::Read;
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let status = head.split(' ').nth(1)?.parse().ok()?;
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = stream.read(&mut chunk).ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.drain(..end + 4 + len);
            return Some(status);
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Whether to print the figures (`tests/load/hostile.sh` sets it).
fn report() -> bool {
    std::env::var_os("C2D_HOSTILE_REPORT").is_some()
}

mod resources {
    use super::*;
    use std::io::Write;

    /// 20,000 requests without a key, each with a made-up method and path: no new metric
    /// series, and the host's memory stays where it was.
    #[test]
    fn made_up_methods_and_paths_grow_neither_metrics_nor_memory() {
        let w = world(&[]);
        const REQUESTS: usize = 20_000;
        const CONNECTIONS: usize = 8;
        let before = w.host.rss_kib();
        let address = w.host.address.clone();
        let statuses: Vec<std::collections::HashMap<u16, usize>> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..CONNECTIONS)
                .map(|t| {
                    let address = address.clone();
                    s.spawn(move || {
                        let mut noise = Noise(0x9e37_79b9_7f4a_7c15 ^ (t as u64 + 1));
                        let mut seen = std::collections::HashMap::new();
                        let mut stream = std::net::TcpStream::connect(&address).expect("connect");
                        let mut buf = Vec::new();
                        for _ in 0..REQUESTS / CONNECTIONS {
                            let method = noise.text(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", 12);
                            let path = noise.text(b"abcdefghijklmnopqrstuvwxyz0123456789/", 40);
                            let request = format!("{method} /{path} HTTP/1.1\r\nHost: x\r\n\r\n");
                            if stream.write_all(request.as_bytes()).is_err() {
                                stream = std::net::TcpStream::connect(&address).expect("connect");
                                buf.clear();
                                stream.write_all(request.as_bytes()).expect("send");
                            }
                            match read_answer(&mut stream, &mut buf) {
                                Some(status) => *seen.entry(status).or_insert(0) += 1,
                                None => {
                                    stream =
                                        std::net::TcpStream::connect(&address).expect("connect");
                                    buf.clear();
                                }
                            }
                        }
                        seen
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("worker"))
                .collect()
        });
        let answered: usize = statuses.iter().flat_map(|m| m.values()).sum();
        let after = w.host.rss_kib();
        let metrics = w.host.get("/metrics");
        assert_eq!(metrics.status, 200);
        let text = String::from_utf8_lossy(&metrics.body).to_string();
        if report() {
            println!(
                "hostile requests: {answered} answered, RSS {before} KiB -> {after} KiB, \
                 /metrics {} bytes",
                metrics.body.len()
            );
        }
        assert!(answered >= REQUESTS * 9 / 10, "{statuses:?}");
        let methods: std::collections::HashSet<&str> = text
            .lines()
            .filter(|l| l.starts_with("click2dial_http_requests_total{"))
            .filter_map(|l| l.split("method=\"").nth(1)?.split('"').next())
            .collect();
        assert!(
            methods
                .iter()
                .all(|m| ["GET", "HEAD", "POST", "other"].contains(m)),
            "{methods:?}"
        );
        assert!(
            metrics.body.len() < 16 * 1024,
            "{} bytes",
            metrics.body.len()
        );
        assert!(
            after < before + 16 * 1024,
            "RSS grew from {before} KiB to {after} KiB"
        );
    }

    /// 2,000 connections that send half a request head: at most
    /// `http.max_connections_per_peer` stay open, they are closed at the header timeout,
    /// and the host's memory stays bounded; afterwards it serves as before.
    #[test]
    fn half_open_connections_are_capped_and_timed_out() {
        let w = world(&[("C2D_HTTP__HEADER_TIMEOUT_SECS", "2")]);
        const CONNECTIONS: usize = 2_000;
        let before = w.host.rss_kib();
        let started = Instant::now();
        let mut open = Vec::with_capacity(CONNECTIONS);
        for i in 0..CONNECTIONS {
            let Ok(mut stream) = std::net::TcpStream::connect(&w.host.address) else {
                continue;
            };
            let head = format!(
                "GET /click2dial/calls/x{i}/events HTTP/1.1\r\nHost: x\r\nX-Pad: {}",
                "a".repeat(8000)
            );
            let _ = stream.write_all(head.as_bytes());
            open.push(stream);
        }
        std::thread::sleep(Duration::from_millis(500));
        let peak = w.host.rss_kib();
        let still_open = |streams: &mut Vec<std::net::TcpStream>| {
            use std::io::Read;
            streams
                .iter_mut()
                .filter(|s: &&mut std::net::TcpStream| {
                    s.set_nonblocking(true).expect("nonblocking");
                    let mut byte = [0u8; 1];
                    let mut reader: &std::net::TcpStream = s;
                    matches!(reader.read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
                })
                .count()
        };
        let held = still_open(&mut open);
        if report() {
            println!(
                "half-open connections: {} made, {held} held by the host, RSS {before} KiB -> \
                 {peak} KiB (in {:?})",
                open.len(),
                started.elapsed()
            );
        }
        assert!(held <= 128, "{held} half-open connections held");
        assert!(
            peak < before + 32 * 1024,
            "RSS grew from {before} KiB to {peak} KiB"
        );
        // The header timeout closes the rest; then the host serves again.
        std::thread::sleep(Duration::from_millis(2_500));
        assert_eq!(still_open(&mut open), 0, "closed at the header timeout");
        drop(open);
        assert!(support::eventually(Duration::from_secs(5), || w
            .host
            .get("/readyz")
            .status
            == 200));
    }

    /// Opens an event stream over a raw connection and reads its head; the status.
    fn open_stream(address: &str, key: &str, contact_ref: &str) -> (u16, std::net::TcpStream) {
        use std::io::Read;
        let mut stream = std::net::TcpStream::connect(address).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let head = format!(
            "GET /click2dial/calls/{contact_ref}/events HTTP/1.1\r\nHost: x\r\n\
             Authorization: Bearer {key}\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).expect("send");
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte) {
                Ok(1) => buf.push(byte[0]),
                _ => break,
            }
        }
        let status = String::from_utf8_lossy(&buf)
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, stream)
    }

    /// One key opening streams until it is refused leaves room for the others.
    #[test]
    fn one_key_cannot_hold_every_event_stream() {
        let recordings = tempfile::tempdir().expect("tempdir");
        let redis = support::Redis::start();
        // Real time: a call lasts as long as recorded (several seconds).
        let sim = support::Sim::start_scaled(recordings.path(), "127.0.0.1:0", None, "1");
        let keys = tenant_keys();
        let host = Host::start(
            &redis,
            &sim.address,
            recordings.path(),
            &[
                ("C2D_AUTH__KEYS", keys.as_str()),
                ("C2D_HTTP__MAX_CONNECTIONS_PER_PEER", "1000"),
            ],
        );
        assert_eq!(
            post_when_ready(&host, TEST_KEY, &call("0820001234", "long-a")).status,
            202
        );
        assert_eq!(
            post(&host, KEY_B, &call("0820001234", "long-b")).status,
            202
        );
        assert!(support::eventually(Duration::from_secs(5), || {
            open_stream(&host.address, KEY_B, "long-b").0 == 200
        }));
        let mut held = Vec::new();
        let refused = loop {
            let (status, stream) = open_stream(&host.address, TEST_KEY, "long-a");
            if status != 200 || held.len() > 1024 {
                break status;
            }
            held.push(stream);
        };
        assert_eq!(refused, 503, "after {} streams", held.len());
        assert_eq!(held.len(), 128, "the per-key cap");
        let (status, _other) = open_stream(&host.address, KEY_B, "long-b");
        assert_eq!(status, 200, "another key still gets a stream");
    }
}

/// A complete WAV whose audio is `marker` repeated.
fn wav_with(marker: &[u8], repeat: usize) -> Vec<u8> {
    let audio: Vec<u8> = marker
        .iter()
        .copied()
        .cycle()
        .take(marker.len() * repeat)
        .collect();
    let mut v = b"RIFF".to_vec();
    v.extend_from_slice(&(36 + audio.len() as u32).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.resize(44, 0);
    v.extend_from_slice(&audio);
    v
}

mod files {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// `<ref>.wav` is swapped for a symbolic link to a file outside the directory, and back,
    /// as fast as the file system allows, while requests for it run: the outside file is
    /// never served.
    #[test]
    fn a_recording_swapped_for_a_symlink_never_serves_outside_content() {
        const REF: &str = "racexaaaaaaaaaaaaaaaaaaaaa";
        const REQUESTS: usize = 3_000;
        let w = world(&[]);
        w.own_recordings("e2e", &[REF]);
        let dir = w.recordings.path().to_path_buf();
        let outside = tempfile::tempdir().expect("tempdir");
        let secret = outside.path().join("secret.wav");
        std::fs::write(&secret, wav_with(b"OUTSIDE-SECRET!", 64)).expect("write");
        let inside = wav_with(b"inside-audio...", 64);
        let target = dir.join(format!("{REF}.wav"));
        std::fs::write(&target, &inside).expect("write");
        let stop = AtomicBool::new(false);
        let (served, leaked, swaps) = std::thread::scope(|s| {
            let swapper = s.spawn(|| {
                let mut swaps = 0u64;
                let tmp_link = dir.join("swap-link.tmp");
                let tmp_file = dir.join("swap-file.tmp");
                while !stop.load(Ordering::Relaxed) {
                    let _ = std::fs::remove_file(&tmp_link);
                    std::os::unix::fs::symlink(&secret, &tmp_link).expect("symlink");
                    std::fs::rename(&tmp_link, &target).expect("rename link");
                    std::fs::write(&tmp_file, &inside).expect("write");
                    std::fs::rename(&tmp_file, &target).expect("rename file");
                    swaps += 1;
                }
                swaps
            });
            let path = format!("/click2dial/recordings/{REF}");
            let clients: Vec<_> = (0..4)
                .map(|_| {
                    let path = path.clone();
                    let host = &w.host;
                    s.spawn(move || {
                        let (mut served, mut leaked) = (0, 0);
                        for _ in 0..REQUESTS / 4 {
                            let answer = host.get(&path);
                            let body = String::from_utf8_lossy(&answer.body);
                            if body.contains("OUTSIDE-SECRET") {
                                leaked += 1;
                            }
                            if answer.status == 200 {
                                assert!(body.contains("inside-audio"), "{}", answer.status);
                                served += 1;
                            } else {
                                assert_eq!(answer.status, 404);
                            }
                        }
                        (served, leaked)
                    })
                })
                .collect();
            let (mut served, mut leaked) = (0, 0);
            for c in clients {
                let (s, l) = c.join().expect("client");
                served += s;
                leaked += l;
            }
            stop.store(true, Ordering::Relaxed);
            (served, leaked, swapper.join().expect("swapper"))
        });
        if report() {
            println!("symlink race: {served} served, {leaked} leaked, {swaps} swaps");
        }
        assert_eq!(leaked, 0, "{leaked} answers carried the outside file");
        assert!(served > 0, "the real file was served sometimes");
        assert!(swaps > 100, "the race ran ({swaps} swaps)");
    }
}

mod idempotency {
    use super::*;

    /// The PBX takes 1.5 s to refuse the first Originate; repeats sent meanwhile must not
    /// answer `202` for it.
    #[test]
    fn a_repeat_while_the_first_is_pending_never_says_202_for_a_refused_call() {
        let recordings = tempfile::tempdir().expect("tempdir");
        let redis = support::Redis::start();
        let sim = support::Sim::start_args(
            recordings.path(),
            &[
                "--refuse-callee",
                "0820000999",
                "--refusal-delay-ms",
                "1500",
            ],
        );
        let host = Host::start(&redis, &sim.address, recordings.path(), &[]);
        assert_eq!(
            post_when_ready(&host, TEST_KEY, &call("0820001234", "warm-up")).status,
            202
        );
        let body = call("0820000999", "pending-refused");
        let answers: Vec<Answer> = std::thread::scope(|s| {
            let first = s.spawn(|| post(&host, TEST_KEY, &body));
            std::thread::sleep(Duration::from_millis(300));
            let repeats: Vec<_> = (0..5)
                .map(|_| s.spawn(|| post(&host, TEST_KEY, &body)))
                .collect();
            std::iter::once(first)
                .chain(repeats)
                .map(|t| t.join().expect("client"))
                .collect()
        });
        for (i, answer) in answers.iter().enumerate() {
            assert_ne!(
                answer.status,
                202,
                "request {i} said 202 for a call the PBX refused: {:?}",
                answer.json()
            );
            assert_eq!(answer.status, 503, "{:?}", answer.json());
            assert!(answer.header("retry-after").is_some());
        }
        assert_eq!(answers[0].code(), "pbx_unavailable");
    }

    /// Redis goes down while the PBX is queueing the call, so the claim cannot be marked
    /// accepted when the PBX answers: the acceptance waits (with the call's notifications)
    /// and lands once Redis is back. Lost, the claim would stay pending, expire after 60 s,
    /// and a repeat would ring the customer again.
    #[test]
    fn an_acceptance_held_up_by_a_redis_outage_lands_when_redis_is_back() {
        let recordings = tempfile::tempdir().expect("tempdir");
        let mut redis = support::Redis::start();
        let sim = support::Sim::start_args(
            recordings.path(),
            &["--slow-callee", "0820001777", "--queue-delay-ms", "1000"],
        );
        let host = Host::start(&redis, &sim.address, recordings.path(), &[]);
        assert_eq!(
            post_when_ready(&host, TEST_KEY, &call("0820001234", "warm-up")).status,
            202
        );
        let body = call("0820001777", "outage-accept");
        let first = std::thread::scope(|s| {
            let first = s.spawn(|| post(&host, TEST_KEY, &body));
            // The claim is in (pending) and the Originate is with the PBX: Redis goes down.
            assert!(support::eventually(Duration::from_secs(10), || {
                redis
                    .claim("outage-accept")
                    .is_some_and(|(c, _)| c["pending"] == true)
            }));
            redis.stop();
            first.join().expect("client")
        });
        assert_eq!(first.status, 202, "{:?}", first.json());
        redis.restart();
        assert!(
            support::eventually(Duration::from_secs(15), || {
                redis
                    .claim("outage-accept")
                    .is_some_and(|(c, ttl)| c["pending"] == false && ttl > 60)
            }),
            "the claim is still {:?}",
            redis.claim("outage-accept")
        );
        // A client retries on `503` (the store's back-off right after its outage).
        let repeat = post_when_ready(&host, TEST_KEY, &body);
        assert_eq!(repeat.status, 202, "{:?}", repeat.json());
        assert_eq!(
            repeat.json(),
            first.json(),
            "the first answer, not a new call"
        );
        assert_eq!(sim.originates_of("outage-accept"), 1, "dialled once");
    }

    /// A `contact_ref` used again once its idempotency record is gone is a new call, with
    /// all of its own notifications (its exactly-once marks are not the first call's).
    #[test]
    fn a_contact_ref_reused_after_the_window_gets_its_own_notifications() {
        let w = world(&[]);
        let body = call("0820001234", "reuse-1");
        let key = "teleforge:notifications:c2d:reuse-1";
        let first = post_when_ready(&w.host, TEST_KEY, &body);
        assert_eq!(first.status, 202);
        let got = w
            .redis
            .follow(key, &["recording_ready"], Duration::from_secs(20));
        assert_eq!(support::events(&got), support::ANSWERED);
        // The idempotency window ends (the record expires).
        let mut conn = w.redis.connection().expect("redis");
        let claims: Vec<String> = redis::cmd("KEYS")
            .arg("teleforge:c2d:idempotency:*reuse-1")
            .query(&mut conn)
            .expect("KEYS");
        assert!(!claims.is_empty());
        for claim in &claims {
            redis::cmd("DEL")
                .arg(claim)
                .query::<()>(&mut conn)
                .expect("DEL");
        }
        let second = post(&w.host, TEST_KEY, &body);
        assert_eq!(second.status, 202);
        assert_ne!(
            second.json()["recording_ref"],
            first.json()["recording_ref"]
        );
        let got = w
            .redis
            .follow(key, &["recording_ready"], Duration::from_secs(20));
        assert_eq!(
            support::events(&got),
            support::ANSWERED,
            "the second call's notifications"
        );
        assert_eq!(got[0]["recording_ref"], second.json()["recording_ref"]);
    }

    /// `check-config` with `vars`: its exit code and stderr.
    fn check_config(vars: &[(&str, &str)]) -> (Option<i32>, String) {
        let out = Command::new(host_binary())
            .arg("check-config")
            .envs(vars.iter().copied())
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), stderr)
    }

    #[test]
    fn check_config_refuses_an_idempotency_window_shorter_than_the_notifications() {
        let (code, stderr) = check_config(&[
            ("C2D_REDIS__TTL_SECS", "86400"),
            ("C2D_REDIS__IDEMPOTENCY_TTL_SECS", "3600"),
        ]);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains("redis.idempotency_ttl_secs"), "{stderr}");
    }

    #[test]
    fn check_config_refuses_a_deprecated_list_with_no_room() {
        let (code, stderr) = check_config(&[("C2D_REDIS__LEGACY_MAX_LEN", "0")]);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains("redis.legacy_max_len"), "{stderr}");
        assert!(stderr.contains("legacy_key_enabled = false"), "{stderr}");
    }
}

mod dependencies {
    use super::*;

    /// 20 creates at once; each answer's status, `Retry-After` and how long it took.
    fn burst(host: &Host, prefix: &str) -> Vec<(u16, Option<String>, Duration)> {
        std::thread::scope(|s| {
            let clients: Vec<_> = (0..20)
                .map(|i| {
                    s.spawn(move || {
                        let started = Instant::now();
                        let answer = post(
                            host,
                            TEST_KEY,
                            &call("0820001234", &format!("{prefix}-{i}")),
                        );
                        (
                            answer.status,
                            answer.header("retry-after").map(str::to_string),
                            started.elapsed(),
                        )
                    })
                })
                .collect();
            clients
                .into_iter()
                .map(|c| c.join().expect("client"))
                .collect()
        })
    }

    fn assert_fast_503(answers: &[(u16, Option<String>, Duration)], what: &str) {
        for (status, retry_after, took) in answers {
            assert_eq!(*status, 503, "{what}: {answers:?}");
            assert!(retry_after.is_some(), "{what}: Retry-After");
            assert!(
                *took < Duration::from_millis(2_500),
                "{what}: answered after {took:?}"
            );
        }
    }

    #[test]
    fn redis_hung_answers_503_with_retry_after_within_the_bound() {
        let w = warm_world("hang-warm");
        w.redis.signal("STOP");
        let answers = burst(&w.host, "hang");
        w.redis.signal("CONT");
        if report() {
            let worst = answers.iter().map(|a| a.2).max().unwrap_or_default();
            println!("redis hung: 20 creates, slowest answer {worst:?}");
        }
        assert_fast_503(&answers, "hung");
        // Back: creates go through again within the back-off.
        assert!(support::eventually(Duration::from_secs(5), || {
            post(&w.host, TEST_KEY, &call("0820001234", "hang-after")).status == 202
        }));
    }

    #[test]
    fn pbx_hung_answers_503_with_retry_after_within_the_bound() {
        let w = world(&[]);
        assert!(support::eventually(Duration::from_secs(20), || w
            .host
            .get("/readyz")
            .status
            == 200));
        // Past the probe threshold: the PBX has been silent since its login check.
        std::thread::sleep(Duration::from_millis(1_500));
        w.sim.signal("STOP");
        let answers = burst(&w.host, "pbxhang");
        // The session decided the PBX is hung: at once, and /readyz says why.
        let started = Instant::now();
        let after = post(&w.host, TEST_KEY, &call("0820001234", "pbxhang-next"));
        let after_took = started.elapsed();
        let readyz = w.host.get("/readyz");
        w.sim.signal("CONT");
        if report() {
            let worst = answers.iter().map(|a| a.2).max().unwrap_or_default();
            println!("pbx hung: 20 creates, slowest answer {worst:?}; next one {after_took:?}");
        }
        for (status, retry_after, took) in &answers {
            assert_eq!(*status, 503, "{answers:?}");
            assert!(retry_after.is_some(), "Retry-After: {answers:?}");
            assert!(
                *took < Duration::from_millis(6_000),
                "answered after {took:?} (the bound is 5 s)"
            );
        }
        assert_eq!(after.status, 503, "{:?}", after.json());
        assert_eq!(after.code(), "pbx_unavailable");
        assert!(after.header("retry-after").is_some());
        assert!(after_took < Duration::from_millis(500), "{after_took:?}");
        assert_eq!(readyz.status, 503);
        let body = readyz.json();
        assert_eq!(body["checks"]["ami"], "down", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("no answer to Ping"),
            "{body}"
        );
        // Back: creates go through again, and nothing of the burst was dialled.
        assert!(support::eventually(Duration::from_secs(20), || {
            post(&w.host, TEST_KEY, &call("0820001234", "pbxhang-after")).status == 202
        }));
        for i in 0..20 {
            assert_eq!(
                w.sim.originates_of(&format!("pbxhang-{i}")),
                0,
                "pbxhang-{i}"
            );
        }
        assert_eq!(w.sim.originates_of("pbxhang-after"), 1);
    }

    /// A world whose host has created one call (`contact_ref`): Redis and the PBX up.
    fn warm_world(contact_ref: &str) -> support::World {
        let w = world(&[]);
        let answer = post_when_ready(&w.host, TEST_KEY, &call("0820001234", contact_ref));
        assert_eq!(answer.status, 202);
        w
    }

    /// `/readyz`: its status and body.
    fn redis_readiness(w: &support::World) -> (u16, serde_json::Value) {
        let answer = w.host.get("/readyz");
        (answer.status, answer.json())
    }

    #[test]
    fn readyz_is_not_ready_while_redis_refuses_writes() {
        let w = warm_world("ro-warm");
        assert_eq!(redis_readiness(&w).0, 200);
        let mut conn = w.redis.connection().expect("redis");
        // Full: `maxmemory` below what it holds, no eviction (the default policy).
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory")
            .arg(1)
            .query::<()>(&mut conn)
            .expect("CONFIG SET");
        let (status, body) = redis_readiness(&w);
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["checks"]["redis"], "refuses_writes", "{body}");
        let problem = &body["problems"][0];
        assert_eq!(problem["code"], "redis_refuses_writes", "{body}");
        assert!(
            problem["message"]
                .as_str()
                .is_some_and(|m| m.contains("OOM")),
            "the server's reason: {body}"
        );
        // What a create meets meanwhile: 503, nothing dialled.
        assert_eq!(
            post(&w.host, TEST_KEY, &call("0820001234", "ro-full")).status,
            503
        );
        assert_eq!(w.sim.originates_of("ro-full"), 0);
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory")
            .arg(0)
            .query::<()>(&mut conn)
            .expect("CONFIG SET");
        assert_eq!(redis_readiness(&w).0, 200);
        // A replica (here of an empty server): it answers PING, and READONLY to writes.
        let primary = support::Redis::start();
        redis::cmd("REPLICAOF")
            .arg("127.0.0.1")
            .arg(primary.port)
            .query::<()>(&mut conn)
            .expect("REPLICAOF");
        let (status, body) = redis_readiness(&w);
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["checks"]["redis"], "refuses_writes", "{body}");
        assert!(
            body["problems"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("READONLY")),
            "{body}"
        );
        redis::cmd("REPLICAOF")
            .arg("NO")
            .arg("ONE")
            .query::<()>(&mut conn)
            .expect("REPLICAOF NO ONE");
        assert!(support::eventually(Duration::from_secs(10), || {
            redis_readiness(&w).0 == 200
        }));
        assert_eq!(
            post(&w.host, TEST_KEY, &call("0820001234", "ro-after")).status,
            202
        );
    }

    #[test]
    fn redis_down_answers_503_with_retry_after_within_the_bound() {
        let mut w = warm_world("down-warm");
        w.redis.stop();
        let answers = burst(&w.host, "down");
        if report() {
            let worst = answers.iter().map(|a| a.2).max().unwrap_or_default();
            println!("redis down: 20 creates, slowest answer {worst:?}");
        }
        assert_fast_503(&answers, "down");
        // A recording's owner cannot be looked up either: 503, not a wait.
        let started = Instant::now();
        let answer = w
            .host
            .get("/click2dial/recordings/aaaaaaaaaaaaaaaaaaaaaaaaaa");
        assert_eq!(answer.status, 503);
        assert!(started.elapsed() < Duration::from_millis(2_500));
        w.redis.restart();
        assert!(support::eventually(Duration::from_secs(10), || {
            post(&w.host, TEST_KEY, &call("0820001234", "down-after")).status == 202
        }));
    }
}

/// Sends `bytes` as they are on a new connection (ask for `Connection: close` in them) and
/// reads until the host closes it (or 5 s pass); the parsed answer, or `None` when the host
/// closed without one. The write side stays open: hyper drops a request whose client
/// half-closed.
fn send_raw(address: &str, bytes: &[u8]) -> Option<Answer> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = stream.write_all(bytes);
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    out.windows(4)
        .any(|w| w == b"\r\n\r\n")
        .then(|| support::parse_answer(&out))
}

mod low {
    use super::*;

    #[test]
    fn an_agent_range_refuses_a_leading_zero() {
        const RANGED: &str = "c2d_ranged_0123456789abcdef0123456789abcdef";
        let keys = auth_keys(&[&format!(
            r#"{{id="ranged",hash="{}",rate_per_minute=0,agents="100-199"}}"#,
            hash(RANGED)
        )]);
        let w = world(&[("C2D_AUTH__KEYS", keys.as_str())]);
        let body = |agent: &str, contact_ref: &str| {
            format!(
                r#"{{"agent":"{agent}","callee":"0820001234","outbound_id":"27820001234","contact_ref":"{contact_ref}"}}"#
            )
        };
        // The refusal comes before the PBX is asked, so it does not show the host is ready:
        // the accepted one waits for that.
        let zero = post_when_ready(&w.host, RANGED, &body("0150", "range-zero"));
        assert_eq!(zero.status, 422, "{:?}", zero.json());
        assert_eq!(zero.code(), "agent_not_allowed");
        let plain = post_when_ready(&w.host, RANGED, &body("150", "range-plain"));
        assert_eq!(plain.status, 202, "{:?}", plain.json());
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(w.sim.originates_of("range-zero"), 0);
    }

    #[test]
    fn fastagi_on_a_dual_stack_listener_accepts_ipv4_peers() {
        let recordings = tempfile::tempdir().expect("tempdir");
        let redis = support::Redis::start();
        let port = support::free_port();
        let sim = support::Sim::start_with(
            recordings.path(),
            "127.0.0.1:0",
            Some(&format!("127.0.0.1:{port}")),
        );
        let listen = format!("[::]:{port}");
        let host = Host::start(
            &redis,
            &sim.address,
            recordings.path(),
            &[
                ("C2D_FASTAGI__LISTEN", listen.as_str()),
                ("C2D_FASTAGI__OWNER_KEY", "e2e"),
            ],
        );
        assert!(support::eventually(Duration::from_secs(20), || host
            .get("/readyz")
            .status
            == 200));
        let answer = sim.invite(
            "invite 1002 X-Teleforge-Callee=0820001234 X-Teleforge-Outbound-Id=27820001234 \
             X-Teleforge-Contact-Ref=dual-stack",
        );
        assert!(answer.starts_with("dial "), "{answer}");
    }

    #[test]
    fn a_fastagi_claim_binds_only_the_owner_keys_contact_refs() {
        let recordings = tempfile::tempdir().expect("tempdir");
        let redis = support::Redis::start();
        let fastagi = format!("127.0.0.1:{}", support::free_port());
        let sim = support::Sim::start_with(recordings.path(), "127.0.0.1:0", Some(&fastagi));
        let keys = tenant_keys();
        let host = Host::start(
            &redis,
            &sim.address,
            recordings.path(),
            &[
                ("C2D_AUTH__KEYS", keys.as_str()),
                ("C2D_FASTAGI__LISTEN", fastagi.as_str()),
                ("C2D_FASTAGI__OWNER_KEY", "e2e"),
            ],
        );
        assert!(support::eventually(Duration::from_secs(20), || host
            .get("/readyz")
            .status
            == 200));
        let answer = sim.invite(
            "invite 1002 X-Teleforge-Callee=0820001234 X-Teleforge-Outbound-Id=27820001234 \
             X-Teleforge-Contact-Ref=agi-claimed",
        );
        assert!(answer.starts_with("dial "), "{answer}");
        // The owner key's namespace holds the claim…
        let owner = post(&host, TEST_KEY, &call("0820009999", "agi-claimed"));
        assert_eq!(owner.status, 409, "{:?}", owner.json());
        // …another key's does not.
        let other = post(&host, KEY_B, &call("0820009999", "agi-claimed"));
        assert_eq!(other.status, 202, "{:?}", other.json());
    }

    #[test]
    fn malformed_chunked_body_missing_host_and_unknown_range_unit() {
        const REF: &str = "lowrangeaaaaaaaaaaaaaaaaaa";
        let w = world(&[]);
        w.own_recordings("e2e", &[REF]);
        let file = wav_with(b"range-unit-test", 16);
        std::fs::write(w.recordings.path().join(format!("{REF}.wav")), &file).expect("write");
        let host = &w.host.address;
        // A chunk size that is not hex: 400, not 413.
        let chunked = format!(
            "POST /click2dial/calls HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TEST_KEY}\r\n\
             Content-Type: application/json\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n"
        );
        let answer = send_raw(host, chunked.as_bytes()).expect("an answer");
        assert_eq!(answer.status, 400);
        assert_eq!(answer.code(), "bad_request");
        // No Host on HTTP/1.1: 400 with the JSON body.
        let answer = send_raw(host, b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
            .expect("an answer");
        assert_eq!(answer.status, 400);
        assert_eq!(answer.code(), "bad_request");
        // Two Hosts: 400 too.
        let answer = send_raw(
            host,
            b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
        )
        .expect("an answer");
        assert_eq!(answer.status, 400);
        // A range in an unknown unit is ignored: the whole file.
        let path = format!("/click2dial/recordings/{REF}");
        let answer = w.host.request(
            "GET",
            &path,
            Some(TEST_KEY),
            &[("range", "items=0-1")],
            None,
        );
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, file);
    }
}

mod hostile {
    use super::*;

    /// What an entry of the table must get.
    #[derive(Debug)]
    enum Want {
        /// This status, with the contract's JSON error body carrying this code.
        Json(u16, &'static str),
        /// This status with any body (hyper answers before the application: no JSON).
        Bare(&'static [u16]),
        /// This status, not an error (e.g. `200`).
        Ok(u16),
    }

    /// Hostile requests, as sent on the wire; `{key}` is replaced by a valid key.
    fn table() -> Vec<(&'static str, String, Want)> {
        let long_path = "a/".repeat(10_000);
        let many_headers: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
        let flood_headers: String = (0..300).map(|i| format!("X-H{i}: v\r\n")).collect();
        let deep = format!(
            r#"{{"agent":"1001","callee":"0820001234","outbound_id":"27820001234","x":{}{}}}"#,
            "[".repeat(1000),
            "]".repeat(1000)
        );
        let post = |body: &str| {
            format!(
                "POST /click2dial/calls HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {{key}}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        };
        let get = |path: &str, extra: &str| {
            format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n")
        };
        vec![
            ("no key", get("/click2dial/calls/x/events", ""), Want::Json(401, "unauthorized")),
            (
                "key in the query string",
                get("/metrics?access_token={key}", ""),
                Want::Json(401, "unauthorized"),
            ),
            (
                "key as Basic credentials",
                get("/metrics", "Authorization: Basic {key}\r\n"),
                Want::Json(401, "unauthorized"),
            ),
            (
                "key with a suffix",
                get("/metrics", "Authorization: Bearer {key}x\r\n"),
                Want::Json(401, "unauthorized"),
            ),
            (
                "encoded traversal",
                get(
                    "/click2dial/recordings/..%2F..%2Fetc%2Fpasswd",
                    "Authorization: Bearer {key}\r\n",
                ),
                Want::Json(400, "invalid_recording_ref"),
            ),
            (
                "CRLF in a contact_ref",
                get(
                    "/click2dial/calls/a%0d%0aSet-Cookie:x/events",
                    "Authorization: Bearer {key}\r\n",
                ),
                Want::Json(422, "invalid_contact_ref"),
            ),
            (
                "made-up method",
                "FOO /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".into(),
                Want::Json(405, "method_not_allowed"),
            ),
            (
                "lower-case method",
                "get /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".into(),
                Want::Json(405, "method_not_allowed"),
            ),
            ("no Host", "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n".into(), Want::Json(400, "bad_request")),
            ("HTTP/1.0 without Host", "GET /healthz HTTP/1.0\r\n\r\n".into(), Want::Ok(200)),
            ("absolute-form target", get("http://evil.example/healthz", ""), Want::Ok(200)),
            (
                "Content-Length and chunked together",
                "POST /click2dial/calls HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
                 Content-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\
                 Connection: close\r\n\r\n0\r\n\r\n"
                    .into(),
                Want::Bare(&[400]),
            ),
            (
                "two different Content-Lengths",
                "POST /click2dial/calls HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\
                 Connection: close\r\n\r\n{}"
                    .into(),
                Want::Bare(&[400]),
            ),
            (
                "negative Content-Length",
                "POST /click2dial/calls HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\nConnection: close\r\n\r\n"
                    .into(),
                Want::Bare(&[400]),
            ),
            (
                "a gigabyte announced",
                "POST /click2dial/calls HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
                 Content-Type: application/json\r\nContent-Length: 1000000000\r\nConnection: close\r\n\r\n"
                    .into(),
                Want::Json(413, "body_too_large"),
            ),
            (
                "malformed chunk size",
                "POST /click2dial/calls HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
                 Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
                 fffffffffffffffffffff\r\n{}\r\n0\r\n\r\n"
                    .into(),
                Want::Json(400, "bad_request"),
            ),
            ("NUL in the target", "GET /healthz\0 HTTP/1.1\r\nHost: x\r\n\r\n".into(), Want::Bare(&[400])),
            ("20 KB target", get(&format!("/{long_path}"), ""), Want::Bare(&[414, 431])),
            (
                "100 header lines",
                get("/healthz", &many_headers),
                Want::Json(431, "headers_too_large"),
            ),
            (
                "a 10 KB header",
                get("/healthz", &format!("X-Big: {}\r\n", "b".repeat(10_000))),
                Want::Json(431, "headers_too_large"),
            ),
            (
                "300 header lines (past hyper's hard cap)",
                get("/healthz", &flood_headers),
                Want::Bare(&[431]),
            ),
            (
                "escaped NUL in a field",
                post(r#"{"agent":"1001","callee":"082000\u00001234","outbound_id":"27820001234","contact_ref":"hostile-nul"}"#),
                Want::Json(422, "invalid_callee"),
            ),
            ("JSON nested 1000 deep", post(&deep), Want::Json(400, "malformed_json")),
            (
                "premium-rate callee",
                post(r#"{"agent":"1001","callee":"0900001234","outbound_id":"27820001234","contact_ref":"hostile-premium"}"#),
                Want::Json(422, "callee_not_allowed"),
            ),
            (
                "duplicate field",
                post(r#"{"agent":"1001","agent":"1002","callee":"0820001234","outbound_id":"27820001234","contact_ref":"hostile-dup"}"#),
                Want::Json(400, "malformed_json"),
            ),
            (
                "Range in an unknown unit on a missing recording",
                get(
                    "/click2dial/recordings/zzzzzzzzzzzzzzzzzzzzzzzzzz",
                    "Authorization: Bearer {key}\r\nRange: items=0-1\r\n",
                ),
                Want::Json(404, "not_found"),
            ),
        ]
    }

    #[test]
    fn hostile_requests_get_the_documented_answers_and_dial_nothing() {
        let w = world(&[]);
        assert!(support::eventually(Duration::from_secs(20), || w
            .host
            .get("/readyz")
            .status
            == 200));
        let mut failures = Vec::new();
        for (name, request, want) in table() {
            let request = request.replace("{key}", TEST_KEY);
            let Some(answer) = send_raw(&w.host.address, request.as_bytes()) else {
                failures.push(format!("{name}: no answer, want {want:?}"));
                continue;
            };
            let json_code = || {
                let is_json = answer
                    .header("content-type")
                    .is_some_and(|v| v.starts_with("application/json"));
                let code = serde_json::from_slice::<serde_json::Value>(&answer.body)
                    .ok()
                    .and_then(|v| v["error"]["code"].as_str().map(str::to_string));
                is_json.then_some(code).flatten()
            };
            let ok = match &want {
                Want::Json(status, code) => {
                    answer.status == *status && json_code().as_deref() == Some(*code)
                }
                Want::Bare(statuses) => statuses.contains(&answer.status),
                Want::Ok(status) => answer.status == *status,
            };
            if report() {
                println!("hostile: {name}: {} {:?}", answer.status, json_code());
            }
            if !ok {
                failures.push(format!(
                    "{name}: got {} {:?}, want {want:?}",
                    answer.status,
                    String::from_utf8_lossy(&answer.body)
                ));
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
        std::thread::sleep(Duration::from_millis(300));
        for contact_ref in ["hostile-nul", "hostile-premium", "hostile-dup"] {
            assert_eq!(w.sim.originates_of(contact_ref), 0, "{contact_ref}");
        }
        assert_eq!(w.host.get("/healthz").status, 200, "still serving");
    }
}
