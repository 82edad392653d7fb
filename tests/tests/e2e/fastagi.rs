//! Calls from a softphone over FastAGI, end to end: the PBX simulator plays the agent's
//! INVITE to `c2d` with `X-Teleforge-*` headers and runs `AGI(agi://…/click2dial)` against the
//! host's FastAGI port, exactly as the recorded Asterisk sessions do; the host decides with
//! the REST rules and follows the call; notifications arrive in Redis.

use std::time::{Duration, Instant};

use crate::support::{events, eventually, free_port, Host, Redis, Sim};

/// What an answered softphone call notifies: nobody rings the agent (it is the caller).
const SOFTPHONE_ANSWERED: [&str; 5] = [
    "queued",
    "callee_ringing",
    "joined",
    "hangup",
    "recording_ready",
];

struct AgiWorld {
    redis: Redis,
    sim: Sim,
    host: Host,
    _recordings: tempfile::TempDir,
}

fn agi_world(extra: &[(&str, &str)]) -> AgiWorld {
    agi_world_logged(extra, None)
}

/// [`agi_world`], with the host's log written to `log` when given.
fn agi_world_logged(extra: &[(&str, &str)], log: Option<&std::path::Path>) -> AgiWorld {
    let recordings = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start();
    let fastagi = format!("127.0.0.1:{}", free_port());
    let sim = Sim::start_with(recordings.path(), "127.0.0.1:0", Some(&fastagi));
    // Softphone calls belong to the test key, so REST and softphones share its contact_refs
    // and it reads their recordings.
    let mut vars = vec![
        ("C2D_FASTAGI__LISTEN", fastagi.as_str()),
        ("C2D_FASTAGI__OWNER_KEY", "e2e"),
    ];
    vars.extend_from_slice(extra);
    let host = match log {
        Some(log) => Host::start_logged(&redis, &sim.address, recordings.path(), &vars, log),
        None => Host::start(&redis, &sim.address, recordings.path(), &vars),
    };
    assert!(
        eventually(Duration::from_secs(20), || host.get("/readyz").status
            == 200),
        "the host logged in to the PBX"
    );
    AgiWorld {
        redis,
        sim,
        host,
        _recordings: recordings,
    }
}

fn invite(endpoint: &str, callee: &str, outbound_id: &str, contact_ref: &str) -> String {
    format!(
        "invite {endpoint} X-Teleforge-Callee={callee} X-Teleforge-Outbound-Id={outbound_id} \
         X-Teleforge-Contact-Ref={contact_ref}"
    )
}

fn key_of(contact_ref: &str) -> String {
    format!("teleforge:notifications:c2d:{contact_ref}")
}

/// `click2dial_fastagi_sessions_total{outcome="…"}` from `/metrics`.
fn sessions(host: &Host, outcome: &str) -> f64 {
    let text = String::from_utf8_lossy(&host.get("/metrics").body).into_owned();
    let needle = format!("click2dial_fastagi_sessions_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&needle))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn a_softphone_call_is_dialled_recorded_and_notified() {
    let w = agi_world(&[]);
    let answer = w
        .sim
        .invite(&invite("1002", "0820001234", "27820001234", "sp-1"));
    let uniqueid = answer
        .strip_prefix("dial ")
        .unwrap_or_else(|| panic!("dialled, not {answer:?}"));
    let got = w.redis.follow(
        &key_of("sp-1"),
        &["recording_ready"],
        Duration::from_secs(20),
    );
    assert_eq!(events(&got), SOFTPHONE_ANSWERED, "{got:?}");
    let recording_ref = got[0]["recording_ref"].as_str().expect("recording_ref");
    for n in &got {
        assert_eq!(n["agent"], "1002", "the agent is the calling extension");
        assert_eq!(n["callee"], "+27820001234");
        assert_eq!(n["outbound_id"], "27820001234");
        assert_eq!(n["contact_ref"], "sp-1");
        assert_eq!(n["recording_ref"], recording_ref);
    }
    assert_eq!(got[3]["cause"], "normal_clearing");
    // The recording the dialplan wrote under the host's reference is served.
    let wav = w
        .host
        .get(&format!("/click2dial/recordings/{recording_ref}"));
    assert_eq!(wav.status, 200);
    assert_eq!(wav.header("content-type"), Some("audio/wav"));
    assert!(wav.body.starts_with(b"RIFF"));
    assert_eq!(sessions(&w.host, "dial"), 1.0);
    // Nothing was originated: the softphone's own channel dialled.
    assert_eq!(w.sim.originates(uniqueid), 0);
}

#[test]
fn broken_headers_are_refused_with_the_rest_codes_and_q850_21() {
    let w = agi_world(&[]);
    let cases = [
        (
            invite("1002", "12345", "27820001234", "sp-bad-1"),
            "invalid_callee",
        ),
        (
            invite("1002", "0862001234", "27820001234", "sp-bad-2"),
            "callee_not_allowed",
        ),
        (
            invite("1002", "0820001234", "12", "sp-bad-3"),
            "invalid_outbound_id",
        ),
        (
            format!(
                "{} X-Teleforge-Agent=1003",
                invite("1002", "0820001234", "27820001234", "sp-bad-4")
            ),
            "invalid_agent",
        ),
        ("invite 1002".to_string(), "missing_field"),
        (
            "invite 1002 X-Teleforge-Callee=0820001234 X-Teleforge-Contact-Ref=sp-bad-6"
                .to_string(),
            "missing_field",
        ),
    ];
    for (request, code) in &cases {
        let answer = w.sim.invite(request);
        assert_eq!(
            answer,
            format!("reject cause=21 reason={code}"),
            "{request}"
        );
    }
    for i in 1..=6 {
        assert!(
            w.redis.drain(&key_of(&format!("sp-bad-{i}"))).is_empty(),
            "nothing notified for a refused call"
        );
    }
    assert_eq!(sessions(&w.host, "reject"), cases.len() as f64);
    assert_eq!(sessions(&w.host, "dial"), 0.0);
}

#[test]
fn a_contact_ref_is_dialled_once_across_softphone_and_rest() {
    let w = agi_world(&[]);
    let first = w
        .sim
        .invite(&invite("1002", "0820001234", "27820001234", "sp-once"));
    assert!(first.starts_with("dial "), "{first}");
    // The softphone retries the same INVITE: never dialled twice.
    let again = w
        .sim
        .invite(&invite("1002", "0820001234", "27820001234", "sp-once"));
    assert_eq!(again, "reject cause=21 reason=contact_ref_conflict");
    // A REST create with a contact_ref a softphone call used is a conflict too.
    let (status, body) = w.host.create_call(
        r#"{"agent":"1001","callee":"0820001234","outbound_id":"27820001234","contact_ref":"sp-once"}"#,
    );
    assert_eq!(status, 409, "{body}");
    // And the other way round.
    let (status, body) = w.host.create_call(
        r#"{"agent":"1001","callee":"0820001234","outbound_id":"27820001234","contact_ref":"rest-first"}"#,
    );
    assert_eq!(status, 202, "{body}");
    let after_rest = w
        .sim
        .invite(&invite("1002", "0820001234", "27820001234", "rest-first"));
    assert_eq!(after_rest, "reject cause=21 reason=contact_ref_conflict");
    let got = w.redis.follow(
        &key_of("sp-once"),
        &["recording_ready"],
        Duration::from_secs(20),
    );
    assert_eq!(events(&got), SOFTPHONE_ANSWERED);
    assert_eq!(sessions(&w.host, "repeat"), 1.0);
}

#[test]
fn a_caller_who_hangs_up_during_the_session_gets_no_call() {
    let w = agi_world(&[]);
    // The caller hangs up while the service's first command is in flight.
    let answer = w.sim.invite(&format!(
        "{} cancel=0",
        invite("1002", "0820001234", "27820001234", "sp-cancel")
    ));
    assert!(answer.starts_with("cancelled "), "{answer}");
    assert!(eventually(Duration::from_secs(5), || sessions(
        &w.host, "hung_up"
    ) == 1.0));
    assert!(w.redis.drain(&key_of("sp-cancel")).is_empty());
    // No claim was left behind: the same contact_ref can be dialled now.
    let retry = w
        .sim
        .invite(&invite("1002", "0820001234", "27820001234", "sp-cancel"));
    assert!(retry.starts_with("dial "), "{retry}");
}

#[test]
fn peers_outside_the_allow_list_get_no_decision() {
    let w = agi_world(&[("C2D_FASTAGI__ALLOWED_PEERS", r#"["192.0.2.1"]"#)]);
    let answer = w
        .sim
        .invite(&invite("1002", "0820001234", "27820001234", "sp-peer"));
    assert!(!answer.starts_with("dial"), "{answer}");
    assert_eq!(sessions(&w.host, "refused_peer"), 1.0);
    assert!(w.redis.drain(&key_of("sp-peer")).is_empty());
}

#[test]
fn without_the_service_the_dialplan_carries_on_undecided() {
    let recordings = tempfile::tempdir().expect("tempdir");
    let fastagi = format!("127.0.0.1:{}", free_port());
    let sim = Sim::start_with(recordings.path(), "127.0.0.1:0", Some(&fastagi));
    assert_eq!(
        sim.invite(&invite("1002", "0820001234", "27820001234", "sp-down")),
        "agi-failed"
    );
}

#[test]
fn another_host_finishes_a_softphone_call_when_the_deciding_host_dies() {
    let w = agi_world(&[]);
    // A second host on the same Redis and PBX, without a FastAGI port of its own.
    let recordings = tempfile::tempdir().expect("tempdir");
    let other = Host::start(&w.redis, &w.sim.address, recordings.path(), &[]);
    assert!(eventually(Duration::from_secs(20), || other
        .get("/readyz")
        .status
        == 200));
    let answer = w
        .sim
        .invite(&invite("1002", "0820001234", "27820001234", "sp-ha"));
    assert!(answer.starts_with("dial "), "{answer}");
    let started = Instant::now();
    drop(w.host); // SIGKILL: no flush, no goodbye.
    let got = w.redis.follow(
        &key_of("sp-ha"),
        &["recording_ready"],
        Duration::from_secs(20),
    );
    assert_eq!(
        events(&got),
        SOFTPHONE_ANSWERED,
        "the other host pushed the rest after {:?}",
        started.elapsed()
    );
}

/// A lone host SIGKILLed while a softphone's call is connected, and a new one started with
/// the same configuration: at its login it finds the call in the PBX's channel list (keyed
/// by the softphone channel's `Uniqueid`), loads its record and history from Redis and
/// follows it to its end: every notification once.
#[test]
fn a_restarted_host_resumes_a_softphone_call_in_flight() {
    let recordings = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start();
    let fastagi = format!("127.0.0.1:{}", free_port());
    // Real time: the call is connected for seconds, long enough to restart the host.
    let sim = Sim::start_scaled(recordings.path(), "127.0.0.1:0", Some(&fastagi), "1");
    let vars = [
        ("C2D_FASTAGI__LISTEN", fastagi.as_str()),
        ("C2D_FASTAGI__OWNER_KEY", "e2e"),
    ];
    let host = Host::start(&redis, &sim.address, recordings.path(), &vars);
    assert!(eventually(Duration::from_secs(20), || host
        .get("/readyz")
        .status
        == 200));
    let answer = sim.invite(&invite("1002", "0820001234", "27820001234", "sp-restart"));
    assert!(answer.starts_with("dial "), "{answer}");
    let key = key_of("sp-restart");
    let mut got = redis.follow(&key, &["joined"], Duration::from_secs(20));
    assert_eq!(events(&got).last().map(String::as_str), Some("joined"));
    drop(host); // SIGKILL: no flush, no goodbye.
    let host = Host::start(&redis, &sim.address, recordings.path(), &vars);
    got.extend(redis.follow(&key, &["recording_ready"], Duration::from_secs(30)));
    assert_eq!(events(&got), SOFTPHONE_ANSWERED, "{got:#?}");
    assert_eq!(got[3]["cause"], "normal_clearing");
    std::thread::sleep(Duration::from_millis(500));
    assert!(redis.drain(&key).is_empty(), "nothing duplicated");
    let metrics = String::from_utf8_lossy(&host.get("/metrics").body).into_owned();
    assert!(
        metrics.contains(
            "click2dial_calls_resynchronised_total{pbx=\"default\",outcome=\"resumed\"} 1\n"
        ),
        "{metrics}"
    );
}

#[test]
fn a_softphone_claiming_another_agent_is_refused_and_logged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("host.log");
    let w = agi_world_logged(&[("C2D_LOG_JSON", "true")], Some(&log));
    // Endpoint 1002 whose From and X-Teleforge-Agent both say 1003.
    let claim = format!(
        "{} X-Teleforge-Agent=1003 From=<sip:1003@127.0.0.1:5073>",
        invite("1002", "0820001234", "27820001234", "sp-claim")
    );
    assert_eq!(w.sim.invite(&claim), "reject cause=21 reason=invalid_agent");
    assert!(w.redis.drain(&key_of("sp-claim")).is_empty());
    // The same phone naming itself, From still saying 1003: dialled as 1002.
    let own = format!(
        "{} X-Teleforge-Agent=1002 From=<sip:1003@127.0.0.1:5073>",
        invite("1002", "0820001234", "27820001234", "sp-own")
    );
    assert!(w.sim.invite(&own).starts_with("dial "));
    assert_eq!(sessions(&w.host, "reject"), 1.0);
    let warned = |text: &str| {
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|l| l["level"] == "WARN" && l["fields"]["claimed_agent"].is_string())
    };
    assert!(
        eventually(Duration::from_secs(5), || warned(
            &std::fs::read_to_string(&log).unwrap_or_default()
        )
        .is_some()),
        "the refusal is logged at warn"
    );
    let line = warned(&std::fs::read_to_string(&log).unwrap()).unwrap();
    let fields = &line["fields"];
    assert_eq!(fields["endpoint"], "1002", "{line}");
    assert_eq!(fields["claimed_agent"], "1003", "{line}");
    assert_eq!(fields["contact_ref"], "sp-claim", "{line}");
}

/// Plays Asterisk's side of one FastAGI session against the host, as the recorded
/// `a_valid_dial` session answers, for a softphone call from `1002` to `callee`; returns the
/// commands the host sent. Nothing of the call ever shows on AMI.
fn agi_session_without_a_channel(fastagi: &str, uniqueid: &str, contact_ref: &str) -> Vec<String> {
    use std::io::{BufRead, BufReader, Write};
    let stream = std::net::TcpStream::connect(fastagi).expect("FastAGI port");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut write = stream.try_clone().expect("clone");
    let env = format!(
        "agi_network: yes\nagi_network_script: click2dial\nagi_request: agi://{fastagi}/click2dial\n\
         agi_channel: PJSIP/1002-00000002\nagi_language: en\nagi_type: PJSIP\nagi_uniqueid: {uniqueid}\n\
         agi_version: 22.10.1\nagi_callerid: 1002\nagi_calleridname: Agent 1002\nagi_callingpres: 0\n\
         agi_callingani2: 0\nagi_callington: 0\nagi_callingtns: 0\nagi_dnid: c2d\nagi_rdnis: unknown\n\
         agi_context: c2d-agent-webrtc\nagi_extension: c2d\nagi_priority: 2\nagi_enhanced: 0.0\n\
         agi_accountcode: \nagi_threadid: 139932789704384\n\n"
    );
    write.write_all(env.as_bytes()).expect("env");
    let mut commands = Vec::new();
    let mut lines = BufReader::new(stream).lines();
    while let Some(Ok(command)) = lines.next() {
        let answer =
            if command.contains("X-Teleforge-Callee)\"") && command.starts_with("GET VARIABLE") {
                "200 result=1 (0820001234)".to_string()
            } else if command.contains("X-Teleforge-Outbound-Id") {
                "200 result=1 (27820001234)".into()
            } else if command.contains("X-Teleforge-Contact-Ref") {
                format!("200 result=1 ({contact_ref})")
            } else if command.contains("X-Teleforge-Agent") {
                "200 result=0".into()
            } else if command.contains("CHANNEL(endpoint)") || command.contains("CALLERID(num)") {
                "200 result=1 (1002)".into()
            } else if command.starts_with("GET FULL VARIABLE") {
                "200 result=1 (PJSIP/1002-00000002 0820001234)".into()
            } else if command.starts_with("CHANNEL STATUS") {
                "200 result=4".into()
            } else if command.starts_with("GET VARIABLE C2D_DECISION") {
                "200 result=1 (dial)".into()
            } else {
                "200 result=1".into()
            };
        commands.push(command);
        if write.write_all(format!("{answer}\n").as_bytes()).is_err() {
            break;
        }
    }
    commands
}

/// Issue 12: a call the service decided to dial whose channel never shows on AMI ends
/// after `[limits] call_silence_secs` (`failed`/`pbx_error`), and its slot comes back: the
/// `503` of a full host does not stick.
#[test]
fn a_decided_call_whose_channel_never_shows_ends_and_frees_its_slot() {
    let recordings = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start();
    let fastagi = format!("127.0.0.1:{}", free_port());
    let sim = Sim::start(recordings.path(), "127.0.0.1:0");
    let host = Host::start(
        &redis,
        &sim.address,
        recordings.path(),
        &[
            ("C2D_FASTAGI__LISTEN", fastagi.as_str()),
            ("C2D_LIMITS__MAX_CALLS_IN_FLIGHT", "1"),
            ("C2D_LIMITS__CALL_SILENCE_SECS", "2"),
        ],
    );
    assert!(eventually(Duration::from_secs(20), || host
        .get("/readyz")
        .status
        == 200));

    // Taken before the session: the host starts the call's silence clock when it decides,
    // inside it, so an instant taken after could make the 2 s look like 1.999 s.
    let decided = Instant::now();
    let commands = agi_session_without_a_channel(&fastagi, "1795758224.99", "sp-ghost");
    assert!(
        commands
            .iter()
            .any(|c| c == "SET VARIABLE C2D_DECISION dial"),
        "{commands:?}"
    );
    // The ghost call holds the only slot.
    let body = r#"{"agent":"1001","callee":"0820001234","outbound_id":"27820001234","contact_ref":"after-ghost"}"#;
    let (status, answer) = host.create_call(body);
    assert_eq!(status, 503, "{answer}");

    let notes = redis.follow(&key_of("sp-ghost"), &["failed"], Duration::from_secs(10));
    assert_eq!(events(&notes), ["queued", "failed"]);
    assert_eq!(notes[1]["cause"], "pbx_error");
    assert!(
        decided.elapsed() >= Duration::from_secs(2),
        "{:?}",
        decided.elapsed()
    );

    assert!(
        eventually(Duration::from_secs(5), || host.create_call(body).0 == 202),
        "the slot came back"
    );
}
