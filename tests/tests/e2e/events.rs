//! `GET /click2dial/calls/{contact_ref}/events` over the real HTTP port: a call's Server-Sent
//! Events carry exactly what reached its Redis list, in order, to early and late subscribers
//! alike, on every host that follows the call, and the stream ends with the call.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use crate::support::{eventually, world, Host, Redis, Sim, ANSWERED, TEST_KEY};

/// One SSE message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Message {
    event: String,
    id: String,
    data: String,
}

/// What a subscription gave: the status, the messages until the server closed the stream,
/// the comments seen, the error body (non-200) and how long it took.
#[derive(Debug)]
struct Stream {
    status: u16,
    content_type: String,
    messages: Vec<Message>,
    comments: usize,
    error: serde_json::Value,
    took: Duration,
}

/// Subscribes and reads until the server ends the stream (at most 30 s).
fn subscribe(host: &Host, contact_ref: &str, key: Option<&str>, last_id: Option<&str>) -> Stream {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut request = agent.get(format!(
        "{}/click2dial/calls/{contact_ref}/events",
        host.url
    ));
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    if let Some(id) = last_id {
        request = request.header("last-event-id", id);
    }
    let started = Instant::now();
    let response = request.call().expect("HTTP");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut stream = Stream {
        status,
        content_type,
        messages: Vec::new(),
        comments: 0,
        error: serde_json::Value::Null,
        took: Duration::ZERO,
    };
    let mut body = response.into_body();
    if status != 200 {
        let text = body.read_to_string().unwrap_or_default();
        stream.error = serde_json::from_str(&text).unwrap_or_default();
        return stream;
    }
    let (mut event, mut id, mut data) = (String::new(), String::new(), Vec::<String>::new());
    for line in BufReader::new(body.into_reader()).lines() {
        let line = line.expect("the stream ends cleanly, not by a timeout");
        if line.is_empty() {
            if !data.is_empty() {
                stream.messages.push(Message {
                    event: std::mem::take(&mut event),
                    id: std::mem::take(&mut id),
                    data: data.join("\n"),
                });
                data.clear();
            }
        } else if line.starts_with(':') {
            stream.comments += 1;
        } else if let Some((field, value)) = line.split_once(':') {
            let value = value.strip_prefix(' ').unwrap_or(value).to_string();
            match field {
                "event" => event = value,
                "id" => id = value,
                "data" => data.push(value),
                _ => {}
            }
        }
    }
    stream.took = started.elapsed();
    stream
}

fn body(agent: &str, callee: &str, contact_ref: &str) -> String {
    format!(
        r#"{{"agent":"{agent}","callee":"{callee}","outbound_id":"27820001234","contact_ref":"{contact_ref}"}}"#
    )
}

/// The call's Redis list as pushed, oldest first, once it ends with one of `last`.
fn redis_list(redis: &Redis, contact_ref: &str, last: &[&str]) -> Vec<String> {
    let key = format!("teleforge:notifications:c2d:{contact_ref}");
    let mut list = Vec::new();
    let done = eventually(Duration::from_secs(20), || {
        let mut conn = redis.connection().expect("redis");
        list = redis::cmd("LRANGE")
            .arg(&key)
            .arg(0)
            .arg(-1)
            .query::<Vec<String>>(&mut conn)
            .expect("LRANGE");
        list.reverse();
        list.last()
            .and_then(|n| serde_json::from_str::<serde_json::Value>(n).ok())
            .is_some_and(|n| last.iter().any(|e| n["event"] == *e))
    });
    assert!(done, "{contact_ref}: no {last:?} in Redis: {list:?}");
    list
}

fn names(messages: &[Message]) -> Vec<String> {
    messages.iter().map(|m| m.event.clone()).collect()
}

/// The sequence number of the event named `event`: its place in a normal call, the same on
/// every host whatever it saw of the call.
fn sequence_of(event: &str) -> String {
    let place = match event {
        "queued" => 1,
        "agent_ringing" => 2,
        "agent_answered" => 3,
        "callee_ringing" => 4,
        "joined" => 5,
        "hangup" | "failed" => 6,
        "recording_ready" => 7,
        other => panic!("unknown event {other}"),
    };
    place.to_string()
}

/// The stream is the Redis list: same JSON bytes, same order; `event` is the JSON's event and
/// `id` is the event's sequence number.
fn assert_is_the_list(stream: &Stream, list: &[String], what: &str) {
    assert_eq!(stream.status, 200, "{what}: {:?}", stream.error);
    assert!(
        stream.content_type.starts_with("text/event-stream"),
        "{what}: {}",
        stream.content_type
    );
    let data: Vec<&str> = stream.messages.iter().map(|m| m.data.as_str()).collect();
    assert_eq!(data, list, "{what}");
    for m in &stream.messages {
        assert_eq!(m.id, sequence_of(&m.event), "{what}");
        let json: serde_json::Value = serde_json::from_str(&m.data).expect("JSON data");
        assert_eq!(json["event"], m.event.as_str(), "{what}");
    }
}

#[test]
fn a_calls_stream_is_its_redis_list_and_ends_with_the_call() {
    let w = world(&[]);
    let (status, answer) =
        w.host
            .create_call_when_ready(&body("1001", "0820001234", "ev-answered"));
    assert_eq!(status, 202, "{answer}");
    // Two subscribers from the start of the call.
    let streams: Vec<Stream> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| s.spawn(|| subscribe(&w.host, "ev-answered", Some(TEST_KEY), None)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("subscriber"))
            .collect()
    });
    let list = redis_list(&w.redis, "ev-answered", &["recording_ready"]);
    for (i, stream) in streams.iter().enumerate() {
        assert_is_the_list(stream, &list, &format!("subscriber {i}"));
        assert_eq!(names(&stream.messages), ANSWERED);
        assert!(
            stream.took < Duration::from_secs(15),
            "the stream ended with the call: {:?}",
            stream.took
        );
    }

    // A call that fails: the stream ends after `failed` (no recording is coming).
    let (status, _) = w
        .host
        .create_call(&body("1486", "0820001234", "ev-agent-busy"));
    assert_eq!(status, 202);
    let stream = subscribe(&w.host, "ev-agent-busy", Some(TEST_KEY), None);
    let list = redis_list(&w.redis, "ev-agent-busy", &["failed"]);
    assert_is_the_list(&stream, &list, "agent busy");
    assert_eq!(
        names(&stream.messages).last().map(String::as_str),
        Some("failed")
    );
}

#[test]
fn late_subscribers_get_the_history_without_duplicates() {
    let w = world(&[]);
    let (status, _) = w
        .host
        .create_call_when_ready(&body("1001", "0820001234", "ev-late"));
    assert_eq!(status, 202);
    // Mid-call: once part of the call is in Redis.
    let key = "teleforge:notifications:c2d:ev-late";
    assert!(eventually(Duration::from_secs(10), || {
        let mut conn = w.redis.connection().expect("redis");
        redis::cmd("LLEN")
            .arg(key)
            .query::<usize>(&mut conn)
            .unwrap_or(0)
            >= 3
    }));
    let mid_call = subscribe(&w.host, "ev-late", Some(TEST_KEY), None);
    let list = redis_list(&w.redis, "ev-late", &["recording_ready"]);
    assert_is_the_list(&mid_call, &list, "subscribed mid-call");

    // After the call: the whole history at once, then the end.
    let after = subscribe(&w.host, "ev-late", Some(TEST_KEY), None);
    assert_is_the_list(&after, &list, "subscribed after the call");
    assert!(after.took < Duration::from_secs(2), "{:?}", after.took);

    // Resuming with Last-Event-ID: only what came after it.
    let resumed = subscribe(&w.host, "ev-late", Some(TEST_KEY), Some("4"));
    assert_eq!(resumed.status, 200);
    let ids: Vec<&str> = resumed.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["5", "6", "7"]);
    let data: Vec<&str> = resumed.messages.iter().map(|m| m.data.as_str()).collect();
    assert_eq!(data, list[4..]);
}

#[test]
fn streams_need_a_key_and_a_known_valid_contact_ref() {
    let w = world(&[]);
    let (status, _) = w
        .host
        .create_call_when_ready(&body("1001", "0820001234", "ev-auth"));
    assert_eq!(status, 202);

    let anonymous = subscribe(&w.host, "ev-auth", None, None);
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.error["error"]["code"], "unauthorized");
    let wrong = subscribe(
        &w.host,
        "ev-auth",
        Some("c2d_wrong_key_0123456789abcdef0123456789"),
        None,
    );
    assert_eq!(wrong.status, 401);
    let raw = w.host.raw("GET /click2dial/calls/ev-auth/events HTTP/1.1");
    assert_eq!(raw.status, 401);
    assert!(raw
        .header("www-authenticate")
        .is_some_and(|v| v.starts_with("Bearer")));

    let unknown = subscribe(&w.host, "no-such-call", Some(TEST_KEY), None);
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.error["error"]["code"], "not_found");
    let long = "x".repeat(231);
    for bad in ["a*b", "a%20b", "%2e%2e", long.as_str()] {
        let answer = subscribe(&w.host, bad, Some(TEST_KEY), None);
        assert_eq!(answer.status, 422, "{bad}");
        assert_eq!(
            (
                answer.error["error"]["code"].as_str(),
                answer.error["error"]["field"].as_str()
            ),
            (Some("invalid_contact_ref"), Some("contact_ref")),
            "{bad}"
        );
    }
    let post = w.host.request(
        "POST",
        "/click2dial/calls/ev-auth/events",
        Some(TEST_KEY),
        &[],
        None,
    );
    assert_eq!(
        (post.status, post.code()),
        (405, "method_not_allowed".into())
    );
    // The call itself is streamed to the end.
    let stream = subscribe(&w.host, "ev-auth", Some(TEST_KEY), None);
    assert_eq!(names(&stream.messages), ANSWERED);
}

#[test]
fn every_host_streams_the_calls_it_follows() {
    let recordings = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start();
    let sim = Sim::start(recordings.path(), "127.0.0.1:0");
    let a = Host::start(&redis, &sim.address, recordings.path(), &[]);
    let b = Host::start(&redis, &sim.address, recordings.path(), &[]);
    // B must be logged in to see the call start.
    assert!(eventually(Duration::from_secs(20), || b
        .get("/readyz")
        .status
        == 200));
    let (status, _) = a.create_call_when_ready(&body("1001", "0820001234", "ev-two-hosts"));
    assert_eq!(status, 202);
    // B adopts the call when it sees it start: until then it does not know it.
    let mut on_b = subscribe(&b, "ev-two-hosts", Some(TEST_KEY), None);
    let deadline = Instant::now() + Duration::from_secs(5);
    while on_b.status == 404 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        on_b = subscribe(&b, "ev-two-hosts", Some(TEST_KEY), None);
    }
    let on_a = subscribe(&a, "ev-two-hosts", Some(TEST_KEY), None);
    let list = redis_list(&redis, "ev-two-hosts", &["recording_ready"]);
    // The same notifications, in the same order, with the same ids on both hosts. Each
    // host stamps the time it read the AMI event itself, and each event in Redis is the copy
    // of whichever host pushed it first: the timestamps may differ by a few milliseconds.
    let without_time = |text: &str| {
        let mut json: serde_json::Value = serde_json::from_str(text).expect("JSON");
        json.as_object_mut().map(|o| o.remove("timestamp"));
        json
    };
    let pushed: Vec<serde_json::Value> = list.iter().map(|n| without_time(n)).collect();
    for (host, stream) in [("a", &on_a), ("b", &on_b)] {
        assert_eq!(stream.status, 200, "{host}: {:?}", stream.error);
        assert_eq!(names(&stream.messages), ANSWERED, "{host}");
        let ids: Vec<String> = stream.messages.iter().map(|m| m.id.clone()).collect();
        assert_eq!(ids, ["1", "2", "3", "4", "5", "6", "7"], "{host}");
        let data: Vec<serde_json::Value> = stream
            .messages
            .iter()
            .map(|m| without_time(&m.data))
            .collect();
        assert_eq!(data, pushed, "{host}");
    }
}

#[test]
fn open_streams_do_not_hold_up_shutdown() {
    // The agent never answers and rings for 600 s (30 s at the simulator's pace).
    let w = world(&[
        ("C2D_DIALPLAN__AGENT_RING_TIMEOUT_MS", "600000"),
        ("C2D_SHUTDOWN__CALLS_GRACE_SECS", "1"),
    ]);
    let (status, _) = w
        .host
        .create_call_when_ready(&body("1408", "0820001234", "ev-shutdown"));
    assert_eq!(status, 202);
    std::thread::scope(|s| {
        let follower = s.spawn(|| subscribe(&w.host, "ev-shutdown", Some(TEST_KEY), None));
        std::thread::sleep(Duration::from_millis(500));
        let sent = Instant::now();
        w.host.signal_term();
        let stream = follower.join().expect("subscriber");
        assert_eq!(stream.status, 200);
        assert!(
            sent.elapsed() < Duration::from_secs(3),
            "the stream closed at shutdown: {:?}",
            sent.elapsed()
        );
        assert_eq!(names(&stream.messages), ["queued", "agent_ringing"]);
    });
}
