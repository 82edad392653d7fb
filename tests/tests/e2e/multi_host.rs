//! Two hosts behind a (simulated) load balancer, one Redis, one PBX: they behave as one
//! service. Each host sees every AMI event and follows every click2dial call (the call's
//! record is in Redis before its Originate is sent); each notification is pushed once, by
//! whichever host gets there first (a `SET NX` mark per event), so a host that dies mid-call
//! loses nothing while another is alive.

use std::time::Duration;

use crate::support::{events, Host, Redis, Sim, ANSWERED};

struct Cluster {
    redis: Redis,
    sim: Sim,
    a: Option<Host>,
    b: Host,
    _recordings: tempfile::TempDir,
}

fn cluster() -> Cluster {
    let recordings = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start();
    let sim = Sim::start(recordings.path(), "127.0.0.1:0");
    let a = Host::start(&redis, &sim.address, recordings.path(), &[]);
    let b = Host::start(&redis, &sim.address, recordings.path(), &[]);
    Cluster {
        redis,
        sim,
        a: Some(a),
        b,
        _recordings: recordings,
    }
}

fn body(callee: &str, contact_ref: &str) -> String {
    format!(
        r#"{{"agent":"1001","callee":"{callee}","outbound_id":"27820001234","contact_ref":"{contact_ref}"}}"#
    )
}

#[test]
fn calls_through_either_host_are_notified_once_each() {
    let c = cluster();
    let a = c.a.as_ref().expect("host a");
    for (i, host) in [a, &c.b, a, &c.b].into_iter().enumerate() {
        let (status, answer) = host.create_call_when_ready(&body("0820001234", &format!("lb-{i}")));
        assert_eq!(status, 202, "{answer}");
    }
    for i in 0..4 {
        let key = format!("teleforge:notifications:c2d:lb-{i}");
        let got = c
            .redis
            .follow(&key, &["recording_ready"], Duration::from_secs(20));
        assert_eq!(events(&got), ANSWERED, "lb-{i}");
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            c.redis.drain(&key).is_empty(),
            "lb-{i}: nothing pushed twice"
        );
    }
}

#[test]
fn the_same_create_on_both_hosts_dials_once() {
    let c = cluster();
    let a = c.a.as_ref().expect("host a");
    let request = body("0820001234", "lb-same");
    let (first, answer_a) = a.create_call_when_ready(&request);
    let (second, answer_b) = c.b.create_call_when_ready(&request);
    assert_eq!((first, second), (202, 202));
    assert_eq!(
        answer_a, answer_b,
        "the second host answers with the first answer"
    );
    let got = c.redis.follow(
        "teleforge:notifications:c2d:lb-same",
        &["recording_ready"],
        Duration::from_secs(20),
    );
    assert_eq!(events(&got), ANSWERED);
    let id = "lb-same".to_string();
    assert_eq!(c.sim.originates_of(&id), 1, "exactly one Originate");
}

#[test]
fn a_host_that_dies_mid_call_loses_no_event() {
    let mut c = cluster();
    // Make sure B is logged in too before A goes away.
    let (status, _) = c.b.create_call_when_ready(&body("0820001234", "lb-warmup"));
    assert_eq!(status, 202);
    // Callee no answer: the call rings on for about 1.6 s at the test time scale.
    let a = c.a.as_ref().expect("host a");
    let (status, answer) = a.create_call_when_ready(&body("0820000408", "lb-dies"));
    assert_eq!(status, 202, "{answer}");
    let key = "teleforge:notifications:c2d:lb-dies";
    let early = c
        .redis
        .follow(key, &["agent_answered"], Duration::from_secs(10));
    assert_eq!(
        events(&early).last().map(String::as_str),
        Some("agent_answered")
    );
    drop(c.a.take()); // SIGKILL: no flush, no goodbye.
    let rest = c
        .redis
        .follow(key, &["recording_ready"], Duration::from_secs(20));
    let mut all = events(&early);
    all.extend(events(&rest));
    assert_eq!(
        all,
        [
            "queued",
            "agent_ringing",
            "agent_answered",
            "callee_ringing",
            "failed",
            "recording_ready"
        ]
    );
    assert_eq!(
        rest.iter()
            .find(|n| n["event"] == "failed")
            .map(|n| n["cause"].clone()),
        Some("callee_no_answer".into())
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(c.redis.drain(key).is_empty(), "nothing pushed twice");
}

/// Host A sends the Originate and dies before the PBX answers it, so A never marks the
/// claim accepted. Host B follows the call the PBX then places, and marks the claim
/// itself: a repeat through B gets the first call's answer and dials nothing. (Left
/// pending, the claim would make repeats wait and fail for 60 s, then expire, and the next
/// repeat would ring the customer a second time.)
#[test]
fn a_host_that_dies_before_the_pbx_answers_leaves_no_pending_claim() {
    let recordings = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start();
    let sim = Sim::start_args(
        recordings.path(),
        &["--slow-callee", "0820001777", "--queue-delay-ms", "1500"],
    );
    let a = Host::start(&redis, &sim.address, recordings.path(), &[]);
    let b = Host::start(&redis, &sim.address, recordings.path(), &[]);
    for (host, warm_up) in [(&a, "dies-warmup-a"), (&b, "dies-warmup-b")] {
        let (status, _) = host.create_call_when_ready(&body("0820001234", warm_up));
        assert_eq!(status, 202);
    }
    let request = body("0820001777", "dies-pending");
    let (url, sent) = (a.url.clone(), request.clone());
    // The client's connection dies with A: its answer, if any, is not looked at.
    std::thread::spawn(move || {
        let _ = ureq::post(format!("{url}/click2dial/calls"))
            .header("content-type", "application/json")
            .header(
                "authorization",
                format!("Bearer {}", crate::support::TEST_KEY),
            )
            .send(sent.as_str());
    });
    assert!(crate::support::eventually(Duration::from_secs(10), || {
        sim.originates_of("dies-pending") == 1
    }));
    drop(a); // SIGKILL while the PBX is still queueing the call.
    let claim = || redis.claim("dies-pending");
    assert!(
        crate::support::eventually(Duration::from_secs(10), || {
            claim().is_some_and(|(c, ttl)| c["pending"] == false && ttl > 60)
        }),
        "the claim is still {:?}",
        claim()
    );
    let (stored, _) = claim().expect("the claim");
    let first: serde_json::Value =
        serde_json::from_str(stored["answer"].as_str().expect("answer")).expect("JSON");
    let (status, repeat) = b.create_call(&request);
    assert_eq!(status, 202, "{repeat}");
    assert_eq!(repeat, first, "the first call's answer");
    let got = redis.follow(
        "teleforge:notifications:c2d:dies-pending",
        &["recording_ready"],
        Duration::from_secs(20),
    );
    assert_eq!(got[0]["recording_ref"], first["recording_ref"]);
    assert_eq!(sim.originates_of("dies-pending"), 1, "dialled once");
}
