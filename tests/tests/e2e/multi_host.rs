//! Two hosts behind a (simulated) load balancer, one Redis, one PBX: they behave as one
//! service. Each host sees every AMI event and follows every click2dial call (the call's
//! record is in Redis before its Originate is sent); each notification is pushed once, by
//! whichever host gets there first (a `SET NX` mark per event), so a host that dies mid-call
//! loses nothing while another is alive.

use std::time::Duration;

use crate::support::cutter::Cutter;
use crate::support::{events, eventually, Host, Redis, Sim, ANSWERED};

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

/// Host A's AMI connection drops while the agent's phone rings and stays out for 3 s: A
/// learns from the PBX's list, at its next login, that the agent answered and the call was
/// joined, but it never sees `callee_ringing`, which B saw. Neither host reaches Redis
/// meanwhile, so each spools the rest of the call; A's spool is pushed first, then B's.
/// Every event is pushed once: a notification's sequence number is its event's, so A's
/// `joined` and B's `callee_ringing` have marks of their own. (When the numbers were a
/// count, A's `joined` took the number of B's `callee_ringing`, and each of A's later
/// events the next one's: `callee_ringing` was lost and `recording_ready` pushed twice.)
/// The event A missed arrives late, with B's spool.
#[test]
fn a_host_that_missed_an_event_pushes_nothing_twice() {
    let recordings = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start();
    // Calls as long as recorded: the agent's phone rings long enough to cut A out.
    let sim = Sim::start_scaled(recordings.path(), "127.0.0.1:0", None, "1");
    let ami_a = Cutter::start(&sim.address);
    let redis_a = Cutter::start(&format!("127.0.0.1:{}", redis.port));
    let redis_b = Cutter::start(&format!("127.0.0.1:{}", redis.port));
    let url = |cutter: &Cutter| format!("redis://{}", cutter.address);
    let a = Host::start_on(
        &[("C2D_REDIS__URL", &url(&redis_a))],
        &ami_a.address,
        recordings.path(),
        &[],
    );
    let b_log = recordings.path().join("host-b.log");
    let b = Host::start_logged_on(
        &[("C2D_REDIS__URL", &url(&redis_b))],
        &sim.address,
        recordings.path(),
        &[("RUST_LOG", "click2dial_host=debug")],
        &b_log,
    );
    let b_says = |line: &str| std::fs::read_to_string(&b_log).is_ok_and(|l| l.contains(line));
    assert!(
        eventually(Duration::from_secs(20), || b_says("AMI logged in")),
        "host b logged in"
    );
    let (status, answer) = a.create_call_when_ready(&body("0820001234", "lb-missed"));
    assert_eq!(status, 202, "{answer}");
    let key = "teleforge:notifications:c2d:lb-missed";
    let mut got = redis.follow(key, &["agent_ringing"], Duration::from_secs(10));
    assert!(
        eventually(Duration::from_secs(10), || b_says(
            "following a call placed by another host"
        )),
        "host b follows the call"
    );
    ami_a.cut(Duration::from_secs(3));
    redis_a.cut(Duration::from_secs(600));
    redis_b.cut(Duration::from_secs(600));
    assert!(
        eventually(Duration::from_secs(30), || sim
            .log_text()
            .contains("recording complete")),
        "the call ended: {}",
        sim.log_text()
    );
    // Both hosts saw the last hangup; each has the rest of the call in its spool.
    assert!(
        eventually(Duration::from_secs(10), || a.spool_depth() >= 4
            && b.spool_depth() >= 5),
        "spooled: a {}, b {}",
        a.spool_depth(),
        b.spool_depth()
    );
    redis_a.reopen();
    got.extend(redis.follow(key, &["recording_ready"], Duration::from_secs(20)));
    assert!(
        eventually(Duration::from_secs(10), || a.spool_depth() == 0),
        "a's spool pushed"
    );
    redis_b.reopen();
    assert!(
        eventually(Duration::from_secs(20), || b.spool_depth() == 0),
        "b's spool pushed"
    );
    std::thread::sleep(Duration::from_millis(300));
    got.extend(redis.drain(key));
    let mut said = events(&got);
    assert_eq!(
        said.last().map(String::as_str),
        Some("callee_ringing"),
        "the event a missed comes with b's spool: {said:?}"
    );
    said.sort_by_key(|e| ANSWERED.iter().position(|a| a == e));
    assert_eq!(said, ANSWERED, "each event once: {got:#?}");
}
