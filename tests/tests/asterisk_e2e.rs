//! The shipped Asterisk kit on a real Asterisk 22, end to end: `redis-server`, an Asterisk
//! instance with `host/asterisk/*.conf` included into a site configuration, SIPp phones
//! (agents that register, the carrier trunk that reaches callees, a softphone calling `c2d`)
//! and the host binary configured from `host/click2dial.example.toml`. Each test asserts
//! what a user sees (HTTP answers, Redis notifications in order, SIP messages the phones
//! got, the recording) and that Asterisk logged no ERROR or WARNING line.

mod asterisk_support;
#[path = "qemu/qemu_support.rs"]
mod qemu_support;
mod support;

use std::time::Duration;

use asterisk_support::{sip_header, AmiMonitor, Asterisk, Lab, Phone, Sipp, Site};
use support::{events, ANSWERED, ANSWERED_UNSEEN, TEST_KEY};

fn key_of(contact_ref: &str) -> String {
    format!("teleforge:notifications:c2d:{contact_ref}")
}

fn body(agent: &str, callee: &str, outbound_id: &str, contact_ref: &str) -> String {
    format!(
        r#"{{"agent":"{agent}","callee":"{callee}","outbound_id":"{outbound_id}","contact_ref":"{contact_ref}"}}"#
    )
}

/// Agent 1001 calls 0820001234 with `outbound_id` and both answer: asserts the `202`, the
/// answered notification sequence and both phones' scenarios; returns the `202` body and
/// the notifications.
fn answered_call(
    lab: &Lab,
    agent: &mut Phone,
    callee: &mut Phone,
    outbound_id: &str,
    contact_ref: &str,
) -> (serde_json::Value, Vec<serde_json::Value>) {
    let (status, answer) =
        lab.host
            .create_call(&body("1001", "0820001234", outbound_id, contact_ref));
    assert_eq!(status, 202, "{answer}");
    let notifications = lab.redis.follow(
        &key_of(contact_ref),
        &["recording_ready", "failed"],
        Duration::from_secs(30),
    );
    assert_eq!(events(&notifications), ANSWERED, "{notifications:#?}");
    agent.expect_success(Duration::from_secs(20), "agent");
    callee.expect_success(Duration::from_secs(20), "carrier");
    (answer, notifications)
}

/// Asserts that SIP `message` carries each `(header, value)`.
fn assert_headers(message: &str, expected: &[(&str, &str)]) {
    for &(header, value) in expected {
        assert_eq!(
            sip_header(message, header),
            Some(value),
            "{header} in\n{message}"
        );
    }
}

/// What the phones of a two-leg call from agent 1001 to 0820001234 with outbound_id
/// 27820001234 got: one INVITE to the agent, carrying the call's values and showing the
/// callee's number; the callee's showing outbound_id, and none of the headers.
fn assert_two_leg_invites(agent: &Phone, callee: &Phone, contact_ref: &str, recording_ref: &str) {
    let invites = agent.received("INVITE");
    assert_eq!(invites.len(), 1, "one INVITE to the agent");
    let invite = &invites[0];
    assert_headers(
        invite,
        &[
            ("X-Teleforge-Agent", "1001"),
            ("X-Teleforge-Callee", "0820001234"),
            ("X-Teleforge-Outbound-Id", "27820001234"),
            ("X-Teleforge-Contact-Ref", contact_ref),
            ("X-Teleforge-Recording-Ref", recording_ref),
        ],
    );
    assert!(sip_header(invite, "From").is_some_and(|f| f.contains("sip:0820001234@")));
    let callee_invite = &callee.received("INVITE")[0];
    for header in ["From", "P-Asserted-Identity"] {
        assert!(
            sip_header(callee_invite, header).is_some_and(|f| f.contains("sip:27820001234@")),
            "{header} in\n{callee_invite}"
        );
    }
    assert!(sip_header(callee_invite, "X-Teleforge-Contact-Ref").is_none());
}

/// What the phones of a one-leg call to 0820001234 with outbound_id 27820001234 got: the
/// callee's INVITE, and whatever it is told later (re-INVITE/UPDATE), showing outbound_id;
/// the desk's INVITE (from `[c2d-direct-destination]`) carrying the call's values.
fn assert_one_leg_invites(callee: &Phone, desk: &Phone, contact_ref: &str, recording_ref: &str) {
    let callee_invite = &callee.received("INVITE")[0];
    for header in ["From", "P-Asserted-Identity"] {
        assert!(
            sip_header(callee_invite, header).is_some_and(|f| f.contains("sip:27820001234@")),
            "{header} in\n{callee_invite}"
        );
    }
    for message in callee
        .received("INVITE")
        .iter()
        .chain(&callee.received("UPDATE"))
    {
        if let Some(pai) = sip_header(message, "P-Asserted-Identity") {
            assert!(pai.contains("sip:27820001234@"), "{message}");
        }
    }
    assert_headers(
        &desk.received("INVITE")[0],
        &[
            ("X-Teleforge-Agent", "0820001234"),
            ("X-Teleforge-Callee", "0820001234"),
            ("X-Teleforge-Outbound-Id", "27820001234"),
            ("X-Teleforge-Contact-Ref", contact_ref),
            ("X-Teleforge-Recording-Ref", recording_ref),
        ],
    );
}

/// The contexts `dialplan show` lists.
fn contexts(asterisk: &Asterisk) -> Vec<String> {
    let mut names: Vec<String> = asterisk
        .cli("dialplan show")
        .lines()
        .filter_map(|l| l.strip_prefix("[ Context '"))
        .filter_map(|l| l.split_once('\'').map(|(name, _)| name.to_string()))
        .collect();
    names.sort();
    names
}

#[test]
fn kit_loads_cleanly_and_adds_only_its_own_contexts() {
    let without = Asterisk::start(Site {
        dialplan_kit: false,
        ..Site::default()
    });
    let site_contexts = contexts(&without);
    let site_dialplan = without.cli("dialplan show from-internal");
    assert!(site_contexts.contains(&"from-internal".to_string()));
    assert!(without.problems().is_empty(), "{:?}", without.problems());
    drop(without);

    let with = Asterisk::start(Site::default());
    assert!(
        with.problems().is_empty(),
        "the kit made Asterisk log:\n{}",
        with.problems().join("\n")
    );
    let all = contexts(&with);
    let added: Vec<&String> = all.iter().filter(|c| !site_contexts.contains(c)).collect();
    assert!(
        added.iter().all(|c| c.starts_with("c2d-")),
        "the kit added contexts outside c2d-: {added:?}"
    );
    for wanted in [
        "c2d-outbound",
        "c2d-dial",
        "c2d-callerid",
        "c2d-tvc",
        "c2d-single",
        "c2d-direct",
        "c2d-direct-destination",
        "c2d-agent-webrtc",
    ] {
        assert!(all.iter().any(|c| c == wanted), "{wanted} missing: {all:?}");
    }
    assert!(site_contexts.iter().all(|c| all.contains(c)));
    assert_eq!(
        with.cli("dialplan show from-internal"),
        site_dialplan,
        "the kit changed the site's own context"
    );
    let endpoints = with.cli("pjsip show endpoints");
    for endpoint in ["1000", "1001", "2001", "carrier"] {
        assert!(
            endpoints.contains(&format!("Endpoint:  {endpoint} ")),
            "{endpoint} missing:\n{endpoints}"
        );
    }
    let user = with.cli("manager show user c2d");
    assert!(
        user.contains("write perm: call,reporting,originate"),
        "{user}"
    );
}

#[test]
fn two_leg_call_both_answer() {
    let lab = Lab::start();
    lab.wait_ready();
    let mut monitor = lab.monitor();
    let mut agent = lab.phone("1001", "answer.xml", "two-leg");
    let mut callee = lab.carrier(Sipp::new("answer_long.xml", 0), "two-leg");

    let (answer, notifications) =
        answered_call(&lab, &mut agent, &mut callee, "27820001234", "crm-two-leg");
    let recording_ref = answer["recording_ref"]
        .as_str()
        .expect("recording_ref")
        .to_string();

    assert_two_leg_invites(&agent, &callee, "crm-two-leg", &recording_ref);

    // The recording MixMonitor wrote is served, with Range.
    let path = format!("/click2dial/recordings/{recording_ref}");
    let whole = lab.host.get(&path);
    assert_eq!(whole.status, 200);
    assert_eq!(whole.header("content-type"), Some("audio/wav"));
    assert_eq!(&whole.body[..4], b"RIFF");
    assert!(
        whole.body.len() > 8_000,
        "{} bytes of audio",
        whole.body.len()
    );
    let part = lab.host.request(
        "GET",
        &path,
        Some(TEST_KEY),
        &[("range", "bytes=0-11")],
        None,
    );
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &whole.body[..12]);
    lab.assert_clean_log(&[]);
    same_as_the_simulator(
        &mut monitor,
        "crm-two-leg",
        &notifications,
        SimCase {
            agent: "1001",
            callee: "0820001234",
        },
    );
    // The kit's manager user gets only the events the host reads (its `eventfilter`s):
    // the call's own, none of the dialplan's VarSet and Newexten flood.
    let events = monitor.events();
    for needed in [
        "Newchannel",
        "DialBegin",
        "BridgeEnter",
        "MixMonitorStart",
        "Hangup",
    ] {
        assert!(
            events.iter().any(|(name, _)| name == needed),
            "no {needed}: {events:?}"
        );
    }
    let kit = [
        "FullyBooted",
        "Newchannel",
        "Newstate",
        "DialBegin",
        "DialState",
        "DialEnd",
        "BridgeEnter",
        "MixMonitorStart",
        "Hangup",
        "OriginateResponse",
    ];
    for (name, variable) in &events {
        assert!(
            kit.contains(&name.as_str())
                || (name == "VarSet" && variable.as_deref() == Some("C2D_DECISION")),
            "{name} ({variable:?}) passed the kit's filters"
        );
    }
}

/// A two-leg call (agent 1001 answering with `agent_scenario`, the carrier with
/// `callee_scenario`) that `disrupt` interrupts once `at` is notified. Checks what any such
/// call must show after it (the callee's `hangup` `normal_clearing`, both phones' scenarios
/// done, the recording served, nothing pushed twice, a clean Asterisk log) and returns every
/// notification, oldest first.
fn disrupted_call(
    lab: &mut Lab,
    (agent_scenario, callee_scenario): (&str, &str),
    contact_ref: &str,
    at: &str,
    disrupt: impl FnOnce(&mut Lab),
) -> Vec<serde_json::Value> {
    let mut agent = lab.phone("1001", agent_scenario, contact_ref);
    let mut callee = lab.carrier(Sipp::new(callee_scenario, 0), contact_ref);
    let (status, answer) =
        lab.host
            .create_call(&body("1001", "0820001234", "27820001234", contact_ref));
    assert_eq!(status, 202, "{answer}");
    let key = key_of(contact_ref);
    let mut got = lab.redis.follow(&key, &[at], Duration::from_secs(20));
    assert_eq!(events(&got).last().map(String::as_str), Some(at));
    disrupt(lab);
    got.extend(
        lab.redis
            .follow(&key, &["recording_ready"], Duration::from_secs(30)),
    );
    let hangup = got.iter().find(|n| n["event"] == "hangup");
    assert_eq!(
        hangup.map(|n| n["cause"].clone()),
        Some("normal_clearing".into()),
        "{got:#?}\n{}",
        lab.host_log()
    );
    agent.expect_success(Duration::from_secs(40), "agent");
    callee.expect_success(Duration::from_secs(20), "carrier");
    let recording_ref = answer["recording_ref"].as_str().expect("recording_ref");
    let recording = lab
        .host
        .get(&format!("/click2dial/recordings/{recording_ref}"));
    assert_eq!(recording.status, 200);
    assert_eq!(&recording.body[..4], b"RIFF");
    std::thread::sleep(Duration::from_millis(500));
    assert!(lab.redis.drain(&key).is_empty(), "nothing pushed twice");
    lab.assert_clean_log(&[]);
    got
}

/// The spec's "re-synchronise the calls in flight" on a real Asterisk: the host's AMI
/// connection is cut while agent and callee talk. The host logs in again, lists the
/// channels (`CoreShowChannels`, allowed by the kit's `write = reporting` and not held back
/// by its event filters), finds the call's two, and follows the call to its real end: the
/// notifications of any answered call, each once, and the recording served.
#[test]
fn a_call_in_flight_survives_a_cut_ami_connection() {
    let (mut lab, cutter) = Lab::start_behind_cutter();
    lab.wait_ready();
    let got = disrupted_call(
        &mut lab,
        ("answer.xml", "answer_long.xml"),
        "crm-blip",
        "joined",
        |_| cutter.cut(Duration::ZERO),
    );
    assert_eq!(events(&got), ANSWERED, "{got:#?}");
    assert_eq!(cutter.relayed(), 2, "logged in again once");
}

/// Cut while the agent's phone rings and kept out for 1.5 s, on a real Asterisk: the agent
/// answers and the callee is joined unseen. The listing after the login proves
/// `agent_answered` and `joined` (notified then); `callee_ringing` is not claimed. The kit
/// records before it dials the callee, so `recording_ready` follows the callee's hangup.
#[test]
fn steps_missed_during_a_cut_are_notified_from_the_listing() {
    let (mut lab, cutter) = Lab::start_behind_cutter();
    lab.wait_ready();
    let got = disrupted_call(
        &mut lab,
        ("answer_long.xml", "answer.xml"),
        "crm-blackout",
        "agent_ringing",
        |_| cutter.cut(Duration::from_millis(1_500)),
    );
    assert_eq!(events(&got), ANSWERED_UNSEEN, "{got:#?}");
}

/// A lone host SIGKILLed while agent and callee talk on a real Asterisk, and a new one
/// started: at its login it lists the channels, finds the call, loads its record and
/// history from Redis, and follows it: once it says so (`/metrics`), a `DELETE` through it
/// ends the call (its `Hangup` by the call's `ChannelId`), and the rest of the answered
/// call's notifications follow, each once, with the recording. The phones talk until the
/// `DELETE`, so no race with the new host's start.
#[test]
fn a_restarted_host_resumes_the_calls_in_flight() {
    let mut lab = Lab::start();
    lab.wait_ready();
    let got = disrupted_call(
        &mut lab,
        ("answer_long.xml", "answer_long.xml"),
        "crm-upgrade",
        "joined",
        |lab| {
            lab.host.sigkill();
            lab.host = asterisk_support::start_host(&lab.asterisk, &lab.redis, &lab.fastagi, &[]);
            let resumed =
                "click2dial_calls_resynchronised_total{pbx=\"default\",outcome=\"resumed\"} 1\n";
            assert!(
                support::eventually(Duration::from_secs(20), || {
                    String::from_utf8_lossy(&lab.host.get("/metrics").body).contains(resumed)
                }),
                "the new host found the call: {}",
                lab.host_log()
            );
            let path = "/click2dial/calls/crm-upgrade";
            let ended = lab.host.request("DELETE", path, Some(TEST_KEY), &[], None);
            assert_eq!(ended.status, 200, "{:?}", ended.json());
            assert_eq!(ended.json()["state"], "disconnected");
        },
    );
    assert_eq!(events(&got), ANSWERED, "{got:#?}");
}

/// A lone host SIGKILLed while agent and callee talk on a real Asterisk, and the call ends
/// (the phones hang up) before a new host starts: the PBX no longer lists it, but Redis's
/// set of its calls in flight has it, so the new host ends it, `hangup`/`pbx_error`, once
/// (how the call ended is not known: no cause is guessed). MixMonitor closed the recording
/// when the call ended, so the new host finds it whole: `recording_ready` follows, and the
/// file is served.
#[test]
fn a_call_that_ended_while_no_host_ran_is_ended_by_the_next_one() {
    let mut lab = Lab::start();
    lab.wait_ready();
    let mut agent = lab.phone("1001", "answer.xml", "crm-gap");
    let mut callee = lab.carrier(Sipp::new("answer.xml", 0), "crm-gap");
    let (status, answer) =
        lab.host
            .create_call(&body("1001", "0820001234", "27820001234", "crm-gap"));
    assert_eq!(status, 202, "{answer}");
    let key = key_of("crm-gap");
    let mut got = lab.redis.follow(&key, &["joined"], Duration::from_secs(20));
    lab.host.sigkill();
    agent.expect_success(Duration::from_secs(40), "agent");
    callee.expect_success(Duration::from_secs(20), "carrier");
    lab.host = asterisk_support::start_host(&lab.asterisk, &lab.redis, &lab.fastagi, &[]);
    got.extend(
        lab.redis
            .follow(&key, &["recording_ready"], Duration::from_secs(30)),
    );
    assert_eq!(events(&got), ANSWERED, "{got:#?}\n{}", lab.host_log());
    let hangup = got.iter().find(|n| n["event"] == "hangup").unwrap();
    assert_eq!(hangup["cause"], "pbx_error", "{hangup}");
    let recording_ref = answer["recording_ref"].as_str().expect("recording_ref");
    let recording = lab
        .host
        .get(&format!("/click2dial/recordings/{recording_ref}"));
    assert_eq!(recording.status, 200, "MixMonitor's file, whole");
    assert_eq!(&recording.body[..4], b"RIFF");
    std::thread::sleep(Duration::from_millis(500));
    assert!(lab.redis.drain(&key).is_empty(), "nothing more");
    lab.assert_clean_log(&[]);
}

/// A phone's SIPp run: a scenario and its keys.
fn sipp(scenario: &str, keys: &[(&str, &str)]) -> Sipp {
    keys.iter()
        .fold(Sipp::new(scenario, 0), |sipp, (k, v)| sipp.key(k, v))
}

/// A phone that rings, then refuses with `code` (`busy_486.xml`, `notfound_404.xml`,
/// `decline_603.xml`).
fn refuse(code: &str) -> Sipp {
    let scenario = match code {
        "486" => "busy_486.xml",
        "404" => "notfound_404.xml",
        "603" => "decline_603.xml",
        other => panic!("no scenario refuses with {other}"),
    };
    Sipp::new(scenario, 0)
}

/// A two-leg call whose agent's phone runs `agent` and the carrier `callee` (none: the
/// callee is never dialled); asserts the notifications end `failed` with `cause`/`q850`.
/// The simulator's stand-in for a scenario: the agent and callee numbers whose outcome
/// rules (tests/README.md) replay the recorded case that scenario is.
struct SimCase {
    agent: &'static str,
    callee: &'static str,
}

#[allow(clippy::too_many_arguments)]
fn failing_call(
    name: &str,
    agent: Sipp,
    callee: Option<Sipp>,
    expected: &[&str],
    cause: &str,
    q850: Option<u64>,
    extra: &[(&str, &str)],
    sim: SimCase,
) -> Lab {
    let lab = Lab::start_with(Site::default(), extra);
    lab.wait_ready();
    let mut monitor = lab.monitor();
    let mut agent = lab.phone_with("1001", agent, name);
    let mut carrier = callee.map(|c| lab.carrier(c, name));
    let contact_ref = format!("crm-{name}");
    let (status, answer) =
        lab.host
            .create_call(&body("1001", "0820001234", "27820001234", &contact_ref));
    assert_eq!(status, 202, "{answer}");
    let notifications = lab.redis.follow(
        &key_of(&contact_ref),
        &[expected.last().copied().unwrap_or("failed")],
        Duration::from_secs(40),
    );
    assert_eq!(events(&notifications), expected, "{notifications:#?}");
    let failed = notifications
        .iter()
        .find(|n| n["event"] == "failed")
        .expect("a failed notification");
    assert_eq!(failed["cause"], cause, "{failed}");
    match q850 {
        Some(q850) => assert_eq!(failed["q850"], q850, "{failed}"),
        None => assert!(
            failed.get("q850").is_none() || failed["q850"].is_u64(),
            "{failed}"
        ),
    }
    agent.expect_success(Duration::from_secs(20), "agent");
    assert_eq!(agent.received("INVITE").len(), 1);
    if let Some(carrier) = carrier.as_mut() {
        carrier.expect_success(Duration::from_secs(20), "carrier");
    }
    lab.assert_clean_log(&[]);
    same_as_the_simulator(&mut monitor, &contact_ref, &notifications, sim);
    lab
}

/// Item 5 of issue 11: the same scenario through the PBX simulator gives the host the same
/// AMI events (those its call tracker reads, in order, with the same states, dial statuses
/// and causes; `OriginateResponse` apart; for a one-leg call — `agent` == `callee` — in order
/// on the originated channel) and the same notifications.
fn same_as_the_simulator(
    real: &mut AmiMonitor,
    contact_ref: &str,
    real_notifications: &[serde_json::Value],
    sim: SimCase,
) {
    same_as_the_simulator_cut(real, contact_ref, real_notifications, sim, SimCut::NONE);
}

/// How the simulator's run of a scenario is cut as the real one was: a `DELETE` once the
/// notifications reached `delete_after`, or the body's `controls` (e.g. a max duration).
/// A cut scenario runs the simulator in real time (the host measures a max duration by the
/// clock, and a `DELETE` must find the call where the real one was).
struct SimCut {
    delete_after: Option<&'static str>,
    controls: Option<&'static str>,
}

impl SimCut {
    const NONE: Self = Self {
        delete_after: None,
        controls: None,
    };

    fn is_none(&self) -> bool {
        self.delete_after.is_none() && self.controls.is_none()
    }
}

/// [`same_as_the_simulator`] of a call that was cut as `cut` says.
fn same_as_the_simulator_cut(
    real: &mut AmiMonitor,
    contact_ref: &str,
    real_notifications: &[serde_json::Value],
    sim: SimCase,
    cut: SimCut,
) {
    // Each attempt has its own ChannelId (key, contact_ref, recording_ref): read it off AMI.
    real.read_until_quiet(Duration::from_millis(800), Duration::from_secs(10));
    let channel_id = real.originated_channel().expect("an originated channel");
    let (real_events, real_originate) = real.call_events(&channel_id);
    assert!(!real_events.is_empty(), "no AMI event of {channel_id}");

    let world = if cut.is_none() {
        support::world(&[])
    } else {
        support::world_scaled("1", &[])
    };
    let mut simulated = AmiMonitor::login(&world.sim.address, "c2d", "secret");
    let mut body = body(sim.agent, sim.callee, "27820001234", contact_ref);
    if let Some(controls) = cut.controls {
        body = body.replace('}', &format!(",{controls}}}"));
    }
    let (status, answer) = world.host.create_call_when_ready(&body);
    assert_eq!(status, 202, "{answer}");
    let mut sim_notifications = Vec::new();
    if let Some(after) = cut.delete_after {
        sim_notifications =
            world
                .redis
                .follow(&key_of(contact_ref), &[after], Duration::from_secs(30));
        let path = format!("/click2dial/calls/{contact_ref}");
        let ended = world
            .host
            .request("DELETE", &path, Some(TEST_KEY), &[], None);
        assert_eq!(ended.status, 200, "{:?}", ended.json());
    }
    let last: Vec<&str> = real_notifications
        .last()
        .and_then(|n| n["event"].as_str())
        .into_iter()
        .collect();
    sim_notifications.extend(world.redis.follow(
        &key_of(contact_ref),
        &last,
        Duration::from_secs(40),
    ));
    simulated.read_until_quiet(Duration::from_millis(800), Duration::from_secs(10));
    let sim_channel = simulated
        .originated_channel()
        .expect("an originated channel in the simulator");
    let (sim_events, sim_originate) = simulated.call_events(&sim_channel);
    if sim.agent == sim.callee {
        // A one-leg call's events come from three threads (the Local channel's `;1` half,
        // its `;2` half with the carrier, the direct destination), whose events interleave
        // differently from run to run: the originated channel's (`A`, and its
        // MixMonitorStart) in order, and all of them as a multiset.
        let a_leg = |events: &[String]| -> Vec<String> {
            events
                .iter()
                .filter(|e| e.contains("(A") || *e == "MixMonitorStart")
                .cloned()
                .collect()
        };
        let sorted = |events: &[String]| -> Vec<String> {
            let mut events = events.to_vec();
            events.sort();
            events
        };
        assert_eq!(
            a_leg(&sim_events),
            a_leg(&real_events),
            "the simulator's events (left) differ from Asterisk's (right) on the originated channel"
        );
        assert_eq!(
            sorted(&sim_events),
            sorted(&real_events),
            "the simulator's events (left) differ from Asterisk's (right)"
        );
    } else {
        assert_eq!(
            asterisk_support::by_source(&sim_events),
            asterisk_support::by_source(&real_events),
            "the simulator's events (left) differ from Asterisk's (right)\n{sim_events:?}\n{real_events:?}"
        );
    }
    assert_eq!(sim_originate, real_originate, "OriginateResponse");
    let summary = |ns: &[serde_json::Value]| -> Vec<String> {
        ns.iter()
            .map(|n| format!("{} {} {}", n["event"], n["cause"], n["q850"]))
            .collect()
    };
    assert_eq!(summary(&sim_notifications), summary(real_notifications));
}

const CALLEE_FAILED: [&str; 6] = [
    "queued",
    "agent_ringing",
    "agent_answered",
    "callee_ringing",
    "failed",
    "recording_ready",
];

#[test]
fn callee_busy() {
    failing_call(
        "callee-busy",
        sipp("answer.xml", &[]),
        Some(refuse("486")),
        &CALLEE_FAILED,
        "callee_busy",
        Some(17),
        &[],
        SimCase {
            agent: "1001",
            callee: "0820000486",
        },
    );
}

#[test]
fn callee_not_found() {
    failing_call(
        "callee-404",
        sipp("answer.xml", &[]),
        Some(refuse("404")),
        &[
            "queued",
            "agent_ringing",
            "agent_answered",
            "failed",
            "recording_ready",
        ],
        "callee_not_found",
        Some(1),
        &[],
        SimCase {
            agent: "1001",
            callee: "0820000404",
        },
    );
}

#[test]
fn callee_declines() {
    failing_call(
        "callee-603",
        sipp("answer.xml", &[]),
        Some(refuse("603")),
        &CALLEE_FAILED,
        "callee_rejected",
        Some(21),
        &[],
        SimCase {
            agent: "1001",
            callee: "0820000603",
        },
    );
}

#[test]
fn callee_does_not_answer() {
    // The site rings callees for C2D_CALLEE_RING_SECS = 6 s ([globals], Site::default).
    failing_call(
        "callee-noanswer",
        sipp("answer_long.xml", &[]),
        Some(sipp("noanswer.xml", &[])),
        &CALLEE_FAILED,
        "callee_no_answer",
        None,
        &[],
        SimCase {
            agent: "1001",
            callee: "0820000408",
        },
    );
}

#[test]
fn agent_does_not_answer() {
    failing_call(
        "agent-noanswer",
        sipp("noanswer.xml", &[]),
        None,
        &["queued", "agent_ringing", "failed"],
        "agent_no_answer",
        Some(19),
        &[("C2D_DIALPLAN__AGENT_RING_TIMEOUT_MS", "3000")],
        SimCase {
            agent: "1408",
            callee: "0820001234",
        },
    );
}

#[test]
fn agent_busy() {
    failing_call(
        "agent-busy",
        refuse("486"),
        None,
        &["queued", "agent_ringing", "failed"],
        "agent_busy",
        Some(17),
        &[],
        SimCase {
            agent: "1486",
            callee: "0820001234",
        },
    );
}

#[test]
fn agent_hangs_up_while_the_callee_rings() {
    // The agent's phone hangs up 3 s after answering; the callee rings for 6 s.
    failing_call(
        "agent-gives-up",
        sipp("answer.xml", &[]),
        Some(sipp("noanswer.xml", &[])),
        &CALLEE_FAILED,
        "agent_hung_up",
        None,
        &[],
        SimCase {
            agent: "1001",
            callee: "0820000487",
        },
    );
}

#[test]
fn idempotent_repeat_rings_the_agent_once() {
    let lab = Lab::start();
    lab.wait_ready();
    let mut agent = lab.phone("1001", "answer.xml", "repeat");
    let mut callee = lab.carrier(Sipp::new("answer_long.xml", 0), "repeat");
    let request = body("1001", "0820001234", "27820001234", "crm-repeat");
    let (first_status, first) = lab.host.create_call(&request);
    assert_eq!(first_status, 202, "{first}");
    let (second_status, second) = lab.host.create_call(&request);
    assert_eq!(second_status, 202, "{second}");
    assert_eq!(first, second, "the repeat gets the first answer");
    let notifications = lab.redis.follow(
        &key_of("crm-repeat"),
        &["recording_ready"],
        Duration::from_secs(30),
    );
    assert_eq!(events(&notifications), ANSWERED);
    let (third_status, third) = lab.host.create_call(&request);
    assert_eq!(third_status, 202, "{third}");
    assert_eq!(first, third);
    agent.expect_success(Duration::from_secs(20), "agent");
    callee.expect_success(Duration::from_secs(20), "carrier");
    assert_eq!(
        agent.received("INVITE").len(),
        1,
        "exactly one INVITE to the agent"
    );
    assert_eq!(callee.received("INVITE").len(), 1);
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        lab.redis.drain(&key_of("crm-repeat")).is_empty(),
        "no second call"
    );
    lab.assert_clean_log(&[]);
}

#[test]
fn one_leg_call_reaches_the_direct_destination() {
    let lab = Lab::start();
    lab.wait_ready();
    let mut monitor = lab.monitor();
    // The callee answers first; then [c2d-direct-destination] rings PJSIP/1000.
    let mut callee = lab.carrier(Sipp::new("answer_long.xml", 0), "one-leg");
    let mut desk = lab.phone("1000", "answer.xml", "one-leg");
    let (status, answer) = lab.host.create_call(&body(
        "0820001234",
        "0820001234",
        "27820001234",
        "crm-one-leg",
    ));
    assert_eq!(status, 202, "{answer}");
    let recording_ref = answer["recording_ref"]
        .as_str()
        .expect("recording_ref")
        .to_string();
    let notifications = lab.redis.follow(
        &key_of("crm-one-leg"),
        &["recording_ready", "failed"],
        Duration::from_secs(30),
    );
    assert_eq!(
        events(&notifications),
        [
            "queued",
            "callee_ringing",
            "joined",
            "hangup",
            "recording_ready"
        ],
        "{notifications:#?}"
    );
    callee.expect_success(Duration::from_secs(20), "carrier");
    desk.expect_success(Duration::from_secs(20), "direct destination");

    assert_one_leg_invites(&callee, &desk, "crm-one-leg", &recording_ref);
    let recording = lab
        .host
        .get(&format!("/click2dial/recordings/{recording_ref}"));
    assert_eq!(recording.status, 200);
    lab.assert_clean_log(&[]);
    // pbx-sim plays the one-leg call recorded on this kit (`i_one_leg_success`).
    same_as_the_simulator(
        &mut monitor,
        "crm-one-leg",
        &notifications,
        SimCase {
            agent: "0820001234",
            callee: "0820001234",
        },
    );
}

/// What a softphone-started call notifies: nobody rings the agent (it is the caller).
const SOFTPHONE_ANSWERED: [&str; 5] = [
    "queued",
    "callee_ringing",
    "joined",
    "hangup",
    "recording_ready",
];

/// Agent 1001's softphone calls `c2d` with these values (`agent`: an X-Teleforge-Agent
/// header); it talks for 2 s when answered.
fn softphone(
    lab: &Lab,
    name: &str,
    callee: &str,
    outbound: &str,
    contact_ref: &str,
    agent: Option<&str>,
) -> Phone {
    let agent_header = match agent {
        Some(agent) => format!("X-Teleforge-Agent: {agent}"),
        None => "X-Softphone: test".to_string(),
    };
    let sipp = sipp(
        "softphone_c2d.xml",
        &[
            ("callee", callee),
            ("outbound", outbound),
            ("contact", contact_ref),
            ("agent_header", &agent_header),
        ],
    )
    .args([
        "-s",
        "1001",
        "-au",
        "1001",
        "-ap",
        "change-me-1001",
        "-d",
        "2000",
    ]);
    lab.phone_with("1001", sipp, name)
}

#[test]
fn softphone_call_through_fastagi() {
    let lab = Lab::start();
    lab.wait_ready();
    let mut monitor = lab.monitor();
    let mut callee = lab.carrier(Sipp::new("answer_long.xml", 0), "softphone");
    let mut phone = softphone(
        &lab,
        "softphone",
        "0820001234",
        "27820001234",
        "crm-softphone",
        None,
    );
    phone.expect_success(Duration::from_secs(30), "softphone");
    callee.expect_success(Duration::from_secs(20), "carrier");
    assert_eq!(
        phone.received_finals().last(),
        Some(&200),
        "{}",
        phone.messages()
    );
    let notifications = lab.redis.follow(
        &key_of("crm-softphone"),
        &["recording_ready", "failed"],
        Duration::from_secs(20),
    );
    assert_eq!(
        events(&notifications),
        SOFTPHONE_ANSWERED,
        "{notifications:#?}"
    );
    assert_eq!(notifications[0]["agent"], "1001");
    let callee_invite = &callee.received("INVITE")[0];
    assert!(
        sip_header(callee_invite, "From").is_some_and(|f| f.contains("sip:27820001234@")),
        "{callee_invite}"
    );
    let recording_ref = notifications[0]["recording_ref"]
        .as_str()
        .expect("recording_ref");
    assert_eq!(
        lab.host
            .get(&format!("/click2dial/recordings/{recording_ref}"))
            .status,
        200
    );
    lab.assert_clean_log(&[]);

    // The same through the simulator's softphone: the same AMI events for the host.
    monitor.read_until_quiet(Duration::from_millis(800), Duration::from_secs(10));
    let agent_channel = monitor
        .uniqueid_of("PJSIP/1001-")
        .expect("the softphone's channel");
    let (real_events, _) = monitor.call_events(&agent_channel);
    let recordings = tempfile::tempdir().expect("tempdir");
    let redis = support::Redis::start();
    let fastagi = format!("127.0.0.1:{}", support::free_port());
    let sim = support::Sim::start_with(recordings.path(), "127.0.0.1:0", Some(&fastagi));
    let host = support::Host::start(
        &redis,
        &sim.address,
        recordings.path(),
        &[("C2D_FASTAGI__LISTEN", fastagi.as_str())],
    );
    assert!(support::eventually(Duration::from_secs(20), || host
        .get("/readyz")
        .status
        == 200));
    let mut simulated = AmiMonitor::login(&sim.address, "c2d", "secret");
    let answer = sim.invite(
        "invite 1001 X-Teleforge-Callee=0820001234 X-Teleforge-Outbound-Id=27820001234 \
         X-Teleforge-Contact-Ref=crm-softphone",
    );
    let sim_channel = answer
        .strip_prefix("dial ")
        .expect("dialled")
        .trim()
        .to_string();
    let sim_notifications = redis.follow(
        &key_of("crm-softphone"),
        &["recording_ready", "failed"],
        Duration::from_secs(30),
    );
    assert_eq!(events(&sim_notifications), events(&notifications));
    simulated.read_until_quiet(Duration::from_millis(800), Duration::from_secs(10));
    let (sim_events, _) = simulated.call_events(&sim_channel);
    assert_eq!(
        asterisk_support::by_source(&sim_events),
        asterisk_support::by_source(&real_events),
        "the simulator's events (left) differ from Asterisk's (right)\n{sim_events:?}\n{real_events:?}"
    );
}

#[test]
fn softphone_gets_503_when_the_service_cannot_take_the_call() {
    // The service answers but cannot take calls (Redis is down): cause 41 -> 503.
    let mut lab = Lab::start();
    lab.wait_ready();
    lab.redis.stop();
    let mut phone = softphone(
        &lab,
        "no-redis",
        "0820001234",
        "27820001234",
        "crm-soft-noredis",
        None,
    );
    phone.expect_success(Duration::from_secs(20), "softphone");
    assert_eq!(
        phone.received_finals().last(),
        Some(&503),
        "{}",
        phone.messages()
    );
    assert!(lab.asterisk.full_log().contains(
        "click2dial rejected crm-soft-noredis from endpoint 1001: service_unavailable (cause 41)"
    ));
    lab.assert_clean_log(&[]);
}

#[test]
fn softphone_refusals_reach_the_phone_as_documented() {
    let lab = Lab::start();
    lab.wait_ready();
    // A broken rule: 403 (Q.850 21), nothing dialled, nothing notified.
    let mut phone = softphone(
        &lab,
        "bad-callee",
        "12345",
        "27820001234",
        "crm-soft-bad",
        None,
    );
    phone.expect_success(Duration::from_secs(20), "softphone");
    assert_eq!(
        phone.received_finals().last(),
        Some(&403),
        "{}",
        phone.messages()
    );
    // Claiming another agent: refused the same way, and the host says so in its log.
    let mut phone = softphone(
        &lab,
        "spoof",
        "0820001234",
        "27820001234",
        "crm-soft-spoof",
        Some("1000"),
    );
    phone.expect_success(Duration::from_secs(20), "softphone");
    assert_eq!(
        phone.received_finals().last(),
        Some(&403),
        "{}",
        phone.messages()
    );
    let log = lab.host_log();
    assert!(
        log.contains("crm-soft-spoof") && log.contains("1000"),
        "the refusal is logged:\n{log}"
    );
    // A campaign the PBX does not know: refused by the service, like REST's 422.
    let mut phone = softphone(
        &lab,
        "winter",
        "0820001234",
        "tvc_winter",
        "crm-soft-winter",
        None,
    );
    phone.expect_success(Duration::from_secs(20), "softphone");
    assert_eq!(
        phone.received_finals().last(),
        Some(&403),
        "{}",
        phone.messages()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(lab.redis.drain(&key_of("crm-soft-winter")).is_empty());
    assert!(lab.redis.drain(&key_of("crm-soft-bad")).is_empty());
    assert!(lab.redis.drain(&key_of("crm-soft-spoof")).is_empty());
    let refused = lab.asterisk.full_log();
    for line in [
        "click2dial rejected crm-soft-bad from endpoint 1001: invalid_callee (cause 21)",
        "click2dial rejected crm-soft-spoof from endpoint 1001: invalid_agent (cause 21)",
        "click2dial rejected crm-soft-winter from endpoint 1001: unknown_campaign (cause 21)",
    ] {
        assert!(refused.contains(line), "{line} in\n{refused}");
    }
    lab.assert_clean_log(&[]);
}

#[test]
fn softphone_with_the_service_down_gets_a_temporary_failure() {
    // The dialplan points at a FastAGI address where nothing listens.
    let site = Site {
        globals: vec![(
            "C2D_FASTAGI".into(),
            format!(
                "agi://127.0.0.1:{}/click2dial",
                asterisk_support::low_port(1)
            ),
        )],
        ..Site::default()
    };
    let lab = Lab::start_with(site, &[]);
    lab.wait_ready();
    let mut phone = softphone(
        &lab,
        "down",
        "0820001234",
        "27820001234",
        "crm-soft-down",
        None,
    );
    phone.expect_success(Duration::from_secs(20), "softphone");
    assert_eq!(
        phone.received_finals().last(),
        Some(&503),
        "{}",
        phone.messages()
    );
    // The kit's own warning says what happened; nothing else is logged.
    let warning = "gave no decision (AGISTATUS FAILURE)";
    assert!(lab.asterisk.full_log().contains(warning));
    // Asterisk's own two lines about the refused connection are expected too.
    lab.assert_clean_log(&[
        warning,
        "res_agi.c: Connecting to",
        "res_agi.c: Couldn't connect to any host",
    ]);
}

/// `/readyz` once `checks.ami` is `word` (or the last answer after `timeout`).
fn readiness_when(lab: &Lab, word: &str, timeout: Duration) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    support::eventually(timeout, || {
        last = lab.host.get("/readyz").json();
        last["checks"]["ami"] == word
    });
    last
}

#[test]
fn readyz_names_a_missing_kit_until_it_is_included() {
    let lab = Lab::start_with(
        Site {
            dialplan_kit: false,
            ..Site::default()
        },
        &[],
    );
    let ready = readiness_when(&lab, "misconfigured", Duration::from_secs(20));
    assert_eq!(ready["status"], "not_ready", "{ready}");
    let problems = ready["problems"].as_array().expect("problems");
    let missing: Vec<&str> = problems
        .iter()
        .filter(|p| p["code"] == "dialplan_context_missing")
        .filter_map(|p| p["message"].as_str())
        .collect();
    for context in ["c2d-outbound", "c2d-direct", "c2d-single", "c2d-tvc"] {
        assert!(
            missing
                .iter()
                .any(|m| m.starts_with(&format!("context {context} not found"))),
            "{context} is named: {ready}"
        );
    }
    let mut agent = lab.phone("1001", "answer.xml", "no-kit");
    let (status, error) =
        lab.host
            .create_call(&body("1001", "0820001234", "27820001234", "crm-no-kit"));
    assert_eq!(status, 503, "{error}");
    assert_eq!(error["error"]["code"], "pbx_unavailable");
    assert!(error["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("not found in the PBX dialplan")));
    assert!(
        lab.host_log().contains("c2d-outbound"),
        "the log says what to fix:\n{}",
        lab.host_log()
    );
    // Once: the probes' 503s above are not logged one by one.
    assert!(
        !lab.host_log().contains("response failed"),
        "{}",
        lab.host_log()
    );

    // The administrator includes the kit and reloads the dialplan: ready without a restart.
    let extensions = lab.asterisk.etc().join("extensions.conf");
    let mut text = std::fs::read_to_string(&extensions).expect("extensions.conf");
    text.push_str("#include \"click2dial/extensions.conf\"\n");
    std::fs::write(&extensions, text).expect("write");
    lab.asterisk.cli("dialplan reload");
    let ready = readiness_when(&lab, "ok", Duration::from_secs(20));
    assert_eq!(ready["status"], "ready", "{ready}");
    let mut callee = lab.carrier(Sipp::new("answer_long.xml", 0), "no-kit");
    answered_call(&lab, &mut agent, &mut callee, "27820001234", "crm-kit-now");
    assert_eq!(
        agent.received("INVITE").len(),
        1,
        "only the second call rang"
    );
    lab.assert_clean_log(&[]);
}

/// Asterisk's `ListCommands` leaves out what the manager user may not run. Without
/// `write = reporting` the host can neither check the dialplan (`ShowDialPlan`) nor list
/// the channels after a login (`CoreShowChannels`, to re-synchronise its calls in flight);
/// with `config` instead it can check the dialplan but still not list: each missing one is
/// named, and nothing is dialled.
#[test]
fn readyz_names_a_manager_user_without_the_privileges() {
    for (write, missing) in [
        ("originate,call", &["ShowDialPlan", "CoreShowChannels"][..]),
        ("originate,call,config", &["CoreShowChannels"][..]),
    ] {
        let lab = Lab::start_with(
            Site {
                manager_extra: format!(
                    "[c2d-limited]\nsecret = limited-secret\ndeny = 0.0.0.0/0.0.0.0\n\
                     permit = 127.0.0.1/255.255.255.255\n\
                     read = system,call,dialplan,originate\nwrite = {write}\n"
                ),
                ..Site::default()
            },
            &[
                ("C2D_AMI__USERNAME", "c2d-limited"),
                ("C2D_AMI__SECRET", "limited-secret"),
            ],
        );
        let ready = readiness_when(&lab, "misconfigured", Duration::from_secs(20));
        let problems = ready["problems"].as_array().expect("problems");
        let named: Vec<&str> = problems
            .iter()
            .filter(|p| p["code"] == "ami_permission_missing")
            .filter_map(|p| p["message"].as_str())
            .filter(|m| m.contains("add reporting"))
            .filter_map(|m| {
                m.strip_prefix("the manager user may not run ")?
                    .split(':')
                    .next()
            })
            .collect();
        assert_eq!(named, missing, "write = {write}: {ready}");
        let (status, error) =
            lab.host
                .create_call(&body("1001", "0820001234", "27820001234", "crm-limited"));
        assert_eq!(status, 503, "{error}");
        assert_eq!(error["error"]["code"], "pbx_unavailable");
        lab.assert_clean_log(&[]);
    }
}

#[test]
fn readyz_names_a_wrong_secret() {
    let lab = Lab::start_with(Site::default(), &[("C2D_AMI__SECRET", "not-the-secret")]);
    let ready = readiness_when(&lab, "misconfigured", Duration::from_secs(20));
    let problems = ready["problems"].as_array().expect("problems");
    assert_eq!(problems[0]["code"], "ami_login_failed", "{ready}");
    let (status, error) =
        lab.host
            .create_call(&body("1001", "0820001234", "27820001234", "crm-badsecret"));
    assert_eq!(status, 503, "{error}");
    assert_eq!(error["error"]["code"], "pbx_unavailable");
    // Asterisk logs a failed login as a NOTICE, not a WARNING: nothing else to see.
    lab.assert_clean_log(&[]);
}

#[test]
fn verified_caller_ids_come_from_the_tvc_context_and_unknown_campaigns_ring_nobody() {
    let lab = Lab::start();
    lab.wait_ready();
    let mut agent = lab.phone("1001", "answer.xml", "tvc");
    let mut callee = lab.carrier(Sipp::new("answer_long.xml", 0), "tvc");
    let (status, error) =
        lab.host
            .create_call(&body("1001", "0820001234", "tvc_winter", "crm-tvc-winter"));
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["error"]["code"], "unknown_campaign");
    assert_eq!(error["error"]["field"], "outbound_id");
    answered_call(
        &lab,
        &mut agent,
        &mut callee,
        "tvc_renewals",
        "crm-tvc-renewals",
    );
    assert_eq!(agent.received("INVITE").len(), 1, "winter rang nobody");
    // [c2d-tvc] renewals -> 27820009999 is what the callee sees.
    let callee_invite = &callee.received("INVITE")[0];
    assert!(
        sip_header(callee_invite, "From").is_some_and(|f| f.contains("sip:27820009999@")),
        "{callee_invite}"
    );
    assert!(lab.redis.drain(&key_of("crm-tvc-winter")).is_empty());
    lab.assert_clean_log(&[]);
}

#[test]
fn asterisk_restarted_twice_the_host_is_usable_again_within_seconds() {
    let mut lab = Lab::start_with(Site::default(), &[("C2D_AMI__MAX_BACKOFF_SECS", "30")]);
    lab.wait_ready();
    // A long outage lets the reconnect backoff grow (0.25, 0.5, 1, 2, 4, 8 s …).
    lab.asterisk.stop();
    assert_eq!(
        readiness_when(&lab, "down", Duration::from_secs(10))["checks"]["ami"],
        "down"
    );
    std::thread::sleep(Duration::from_secs(8));
    lab.asterisk.restart();
    assert_eq!(
        readiness_when(&lab, "ok", Duration::from_secs(30))["status"],
        "ready"
    );
    // A short second outage: a login that passed started the backoff over.
    lab.asterisk.stop();
    assert_eq!(
        readiness_when(&lab, "down", Duration::from_secs(10))["checks"]["ami"],
        "down"
    );
    lab.asterisk.restart();
    let back = std::time::Instant::now();
    assert_eq!(
        readiness_when(&lab, "ok", Duration::from_secs(30))["status"],
        "ready"
    );
    let waited = back.elapsed();
    assert!(
        waited < Duration::from_secs(4),
        "ready {waited:?} after the second restart"
    );
    let mut agent = lab.phone("1001", "answer.xml", "restart");
    let mut callee = lab.carrier(Sipp::new("answer_long.xml", 0), "restart");
    answered_call(&lab, &mut agent, &mut callee, "27820001234", "crm-restart");
    lab.assert_clean_log(&[]);
}

#[test]
fn an_agent_without_a_phone_is_agent_unavailable() {
    let lab = Lab::start();
    lab.wait_ready();
    // 2001 exists (the WebRTC example) but never registered; 1003 is no endpoint at all.
    for (agent, contact_ref) in [("2001", "crm-unregistered"), ("1003", "crm-no-endpoint")] {
        let (status, answer) =
            lab.host
                .create_call(&body(agent, "0820001234", "27820001234", contact_ref));
        assert_eq!(status, 202, "{answer}");
        let notifications =
            lab.redis
                .follow(&key_of(contact_ref), &["failed"], Duration::from_secs(20));
        assert_eq!(events(&notifications), ["queued", "failed"], "{agent}");
        assert_eq!(notifications[1]["cause"], "agent_unavailable", "{agent}");
    }
    // Asterisk's own ERROR lines about the two (the request's doing, not the kit's), and
    // nothing else.
    let expected = [
        "Endpoint '2001': Could not create dialog to invalid URI '2001'.  Is endpoint registered and reachable?",
        "Failed to create outgoing session to endpoint '2001'",
        "Unable to create PJSIP channel - endpoint '1003' was not found",
    ];
    let log = lab.asterisk.full_log();
    for line in expected {
        assert!(log.contains(line), "{line}");
    }
    lab.assert_clean_log(&expected);
}

/// An administrator's trial of README "Connect to your Asterisk" on an Asterisk that already
/// has a configuration of its own: Asterisk's upstream sample files (as a packaged
/// `/etc/asterisk`, only ports changed). The kit is connected to the running PBX (steps 1
/// and 3, then step 6's reloads) and again at a restart: it adds no ERROR/WARNING line to
/// the samples' own, leaves the samples' contexts and globals as they were, and the host
/// (`host/click2dial.example.toml`, addresses overridden) becomes ready.
#[test]
fn kit_connects_to_the_upstream_sample_configuration_as_the_readme_says() {
    let mut pbx = Asterisk::start_samples();
    let baseline = pbx.normalised_problems();
    let sample_contexts = contexts(&pbx);
    let shown = |pbx: &Asterisk| -> Vec<String> {
        [
            "demo", "default", "public", "stdexten", "local", "ani", "globals",
        ]
        .iter()
        .map(|c| pbx.cli(&format!("dialplan show {c}")))
        .collect()
    };
    let sample_dialplan = shown(&pbx);
    assert!(
        sample_dialplan[0].contains("[ Context 'demo' created by 'pbx_config' ]"),
        "the samples' dialplan is not loaded:\n{}",
        sample_dialplan[0]
    );
    let check = |pbx: &Asterisk, when: &str| {
        let added: Vec<String> = pbx
            .normalised_problems()
            .difference(&baseline)
            .cloned()
            .collect();
        assert!(
            added.is_empty(),
            "{when}: the kit added {} ERROR/WARNING line(s) to the samples' own:\n{}\n\
             (the samples alone logged:\n{})",
            added.len(),
            added.join("\n"),
            baseline.iter().cloned().collect::<Vec<_>>().join("\n")
        );
        let all = contexts(pbx);
        let added: Vec<&String> = all
            .iter()
            .filter(|c| !sample_contexts.contains(c))
            .collect();
        assert!(
            added.iter().all(|c| c.starts_with("c2d-")),
            "{when}: contexts outside c2d-: {added:?}"
        );
        assert!(
            added.iter().any(|c| *c == "c2d-outbound"),
            "{when}: {all:?}"
        );
        assert!(
            sample_contexts.iter().all(|c| all.contains(c)),
            "{when}: a sample context is gone"
        );
        assert_eq!(
            shown(pbx),
            sample_dialplan,
            "{when}: the kit changed the samples' own contexts or globals"
        );
        let user = pbx.cli("manager show user c2d");
        assert!(
            user.contains("read perm: system,call,dialplan,originate")
                && user.contains("write perm: call,reporting,originate"),
            "{when}: {user}"
        );
        let endpoints = pbx.cli("pjsip show endpoints");
        for endpoint in ["1000", "1001", "2001", "carrier"] {
            assert!(
                endpoints.contains(&format!("Endpoint:  {endpoint} ")),
                "{when}: {endpoint} missing:\n{endpoints}"
            );
        }
    };

    // Steps 1 and 3 on the running PBX's /etc/asterisk (and on the site's copy, which the
    // restart below reads), then step 6.
    pbx.connect_kit(&pbx.etc());
    pbx.connect_kit(&pbx.conf.clone());
    for command in ["dialplan reload", "manager reload", "pjsip reload"] {
        pbx.cli(command);
    }
    assert!(
        pbx.cli("dialplan show c2d-outbound")
            .contains("Goto(c2d-dial,${EXTEN},1)"),
        "the kit is not there after a dialplan reload"
    );
    check(&pbx, "after the reloads");

    let redis = support::Redis::start();
    let fastagi = format!("127.0.0.1:{}", asterisk_support::low_port(1));
    let host = asterisk_support::start_host(&pbx, &redis, &fastagi, &[]);
    let ready = |host: &support::Host, when: &str| {
        let ok = support::eventually(Duration::from_secs(20), || {
            host.get("/readyz").status == 200
        });
        assert!(
            ok,
            "{when}: the host never became ready: {}",
            String::from_utf8_lossy(&host.get("/readyz").body)
        );
    };
    ready(&host, "after the reloads");

    // The same configuration from boot (a restart reads the site's files).
    pbx.reboot();
    check(&pbx, "after a restart");
    let noticed = support::eventually(Duration::from_secs(10), || {
        std::fs::read_to_string(asterisk_support::host_log_path(&pbx))
            .unwrap_or_default()
            .contains("AMI connection lost")
    });
    assert!(noticed, "the host did not notice the restart");
    ready(&host, "after a restart");
    drop(host);
}

// ---- Per-call dial controls on the real PBX (core::dial; the kit's [c2d-settings] and
// [c2d-record]) ----

/// Seconds from `from`'s notification to `to`'s, from their timestamps
/// (`2026-12-03T13:55:01.123Z`, written by the host when it saw the AMI event).
fn seconds_between(notifications: &[serde_json::Value], from: &str, to: &str) -> f64 {
    let at = |event: &str| -> f64 {
        let n = notifications
            .iter()
            .find(|n| n["event"] == event)
            .unwrap_or_else(|| panic!("no {event} in {notifications:#?}"));
        let stamp = n["timestamp"].as_str().expect("timestamp");
        let time = stamp.split_once('T').expect("T").1.trim_end_matches('Z');
        let parts: Vec<f64> = time
            .split(':')
            .map(|p| p.parse().expect("number"))
            .collect();
        parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
    };
    at(to) - at(from)
}

fn body_with(contact_ref: &str, controls: &str) -> String {
    format!(
        r#"{{"agent":"1001","callee":"0820001234","outbound_id":"27820001234","contact_ref":"{contact_ref}",{controls}}}"#
    )
}

/// `callee_ring_timeout_secs` outlasts the site's `C2D_CALLEE_RING_SECS` (6 s here): the
/// callee rings the call's 20 s, then the call fails `callee_no_answer`.
#[test]
fn callee_ring_timeout_overrides_the_site_default() {
    let lab = Lab::start();
    lab.wait_ready();
    let mut agent = lab.phone("1001", "answer_long.xml", "callee-ring");
    let mut carrier = lab.carrier(sipp("noanswer.xml", &[]), "callee-ring");
    let (status, answer) = lab.host.create_call(&body_with(
        "crm-callee-ring",
        r#""callee_ring_timeout_secs":20"#,
    ));
    assert_eq!(status, 202, "{answer}");
    let notifications = lab.redis.follow(
        &key_of("crm-callee-ring"),
        &["recording_ready"],
        Duration::from_secs(60),
    );
    assert_eq!(events(&notifications), CALLEE_FAILED, "{notifications:#?}");
    let failed = notifications
        .iter()
        .find(|n| n["event"] == "failed")
        .unwrap();
    assert_eq!(failed["cause"], "callee_no_answer", "{failed}");
    // The site's 6 s would have ended it much sooner; the PBX may only be slower, not faster.
    let rang = seconds_between(&notifications, "callee_ringing", "failed");
    assert!(
        rang >= 18.0,
        "the callee rang {rang} s, not the call's 20 s"
    );
    agent.expect_success(Duration::from_secs(40), "agent");
    carrier.expect_success(Duration::from_secs(40), "carrier");
    lab.assert_clean_log(&[]);
}

/// `agent_ring_timeout_secs` is the Originate's timeout: 12 s against the host's 3 s.
#[test]
fn agent_ring_timeout_overrides_the_hosts_default() {
    let lab = Lab::start_with(
        Site::default(),
        &[("C2D_DIALPLAN__AGENT_RING_TIMEOUT_MS", "3000")],
    );
    lab.wait_ready();
    let mut agent = lab.phone("1001", "noanswer.xml", "agent-ring");
    let (status, answer) = lab.host.create_call(&body_with(
        "crm-agent-ring",
        r#""agent_ring_timeout_secs":12"#,
    ));
    assert_eq!(status, 202, "{answer}");
    let notifications = lab.redis.follow(
        &key_of("crm-agent-ring"),
        &["failed"],
        Duration::from_secs(40),
    );
    assert_eq!(
        events(&notifications),
        ["queued", "agent_ringing", "failed"],
        "{notifications:#?}"
    );
    assert_eq!(notifications[2]["cause"], "agent_no_answer");
    let rang = seconds_between(&notifications, "queued", "failed");
    assert!(rang >= 10.0, "the agent rang {rang} s, not the call's 12 s");
    agent.expect_success(Duration::from_secs(40), "agent");
    lab.assert_clean_log(&[]);
}

/// `record: false`: the call is connected as usual, but nothing is recorded: no MixMonitor,
/// no file in the PBX's recordings directory, no `recording_ready`, no recording URL.
#[test]
fn a_call_created_with_record_false_is_not_recorded() {
    let lab = Lab::start();
    lab.wait_ready();
    let mut agent = lab.phone("1001", "answer.xml", "no-record");
    let mut carrier = lab.carrier(Sipp::new("answer_long.xml", 0), "no-record");
    let (status, answer) = lab
        .host
        .create_call(&body_with("crm-no-record", r#""record":false"#));
    assert_eq!(status, 202, "{answer}");
    assert!(answer.get("recording_url").is_none(), "{answer}");
    let recording_ref = answer["recording_ref"].as_str().unwrap().to_string();
    let notifications = lab.redis.follow(
        &key_of("crm-no-record"),
        &["hangup", "failed"],
        Duration::from_secs(40),
    );
    assert_eq!(
        events(&notifications),
        &ANSWERED[..ANSWERED.len() - 1],
        "{notifications:#?}"
    );
    agent.expect_success(Duration::from_secs(20), "agent");
    carrier.expect_success(Duration::from_secs(20), "carrier");
    // Still nothing after the call's channels are gone.
    std::thread::sleep(Duration::from_secs(2));
    let again = lab
        .redis
        .follow(&key_of("crm-no-record"), &[], Duration::from_millis(200));
    assert!(
        !events(&again).contains(&"recording_ready".to_string()),
        "{again:#?}"
    );
    let wav = lab
        .asterisk
        .recordings()
        .join(format!("{recording_ref}.wav"));
    assert!(!wav.exists(), "{} was written", wav.display());
    assert_eq!(
        lab.host
            .get(&format!("/click2dial/recordings/{recording_ref}"))
            .status,
        404
    );
    lab.assert_clean_log(&[]);
}

/// `max_duration_secs`: both phones would talk for 30 s; the PBX hangs the call up 10 s
/// after the callee answered, both phones get a BYE, and the hangup says `max_duration`.
#[test]
fn max_duration_hangs_up_a_connected_call() {
    let lab = Lab::start();
    lab.wait_ready();
    let mut monitor = lab.monitor();
    let mut agent = lab.phone("1001", "answer_long.xml", "max-duration");
    let mut carrier = lab.carrier(Sipp::new("answer_long.xml", 0), "max-duration");
    let (status, answer) = lab
        .host
        .create_call(&body_with("crm-max-duration", r#""max_duration_secs":10"#));
    assert_eq!(status, 202, "{answer}");
    let notifications = lab.redis.follow(
        &key_of("crm-max-duration"),
        &["recording_ready", "failed"],
        Duration::from_secs(60),
    );
    assert_eq!(events(&notifications), ANSWERED, "{notifications:#?}");
    let talked = seconds_between(&notifications, "joined", "hangup");
    assert!(
        (9.0..25.0).contains(&talked),
        "connected for {talked} s, not the call's 10 s (the phones hang up at 30 s)"
    );
    agent.expect_success(Duration::from_secs(40), "agent");
    carrier.expect_success(Duration::from_secs(40), "carrier");
    assert_eq!(agent.received("BYE").len(), 1, "the PBX hung up the agent");
    assert_eq!(
        carrier.received("BYE").len(),
        1,
        "the PBX hung up the callee"
    );
    // Its own reason: the PBX ends it as a normal clearing (Q.850 16); the host knows the
    // limit it asked for.
    let hangup = notifications
        .iter()
        .find(|n| n["event"] == "hangup")
        .unwrap();
    assert_eq!(hangup["cause"], "max_duration", "{hangup}");
    assert_eq!(hangup["q850"], 16, "{hangup}");
    let call = lab
        .host
        .request(
            "GET",
            "/click2dial/calls/crm-max-duration",
            Some(TEST_KEY),
            &[],
            None,
        )
        .json();
    assert_eq!(call["state"], "disconnected", "{call}");
    assert_eq!(call["reason"], "maxDuration", "{call}");
    assert!(
        call["duration_secs"]
            .as_u64()
            .is_some_and(|d| (9..25).contains(&d)),
        "{call}"
    );
    lab.assert_clean_log(&[]);
    same_as_the_simulator_cut(
        &mut monitor,
        "crm-max-duration",
        &notifications,
        SimCase {
            agent: "1001",
            callee: "0820001234",
        },
        SimCut {
            delete_after: None,
            controls: Some(r#""max_duration_secs":10"#),
        },
    );
}

/// `DELETE /click2dial/calls/{contact_ref}` on a connected call: the PBX hangs up both
/// legs (both phones get a BYE), the answer is the final state (`disconnected`, `hangUp`),
/// a repeat answers the same, and another key's DELETE is `404`.
#[test]
fn delete_ends_a_connected_call() {
    let lab = Lab::start();
    lab.wait_ready();
    let mut monitor = lab.monitor();
    let mut agent = lab.phone("1001", "answer_long.xml", "delete");
    let mut carrier = lab.carrier(Sipp::new("answer_long.xml", 0), "delete");
    let (status, answer) =
        lab.host
            .create_call(&body("1001", "0820001234", "27820001234", "crm-delete"));
    assert_eq!(status, 202, "{answer}");
    let so_far = lab.redis.follow(
        &key_of("crm-delete"),
        &["joined", "failed"],
        Duration::from_secs(30),
    );
    assert_eq!(
        events(&so_far).last().map(String::as_str),
        Some("joined"),
        "{so_far:#?}"
    );
    let path = "/click2dial/calls/crm-delete";
    let live = lab
        .host
        .request("GET", path, Some(TEST_KEY), &[], None)
        .json();
    assert_eq!(live["state"], "connected", "{live}");

    let ended = lab.host.request("DELETE", path, Some(TEST_KEY), &[], None);
    assert_eq!(ended.status, 200, "{:?}", ended.json());
    let ended = ended.json();
    assert_eq!(ended["state"], "disconnected", "{ended}");
    assert_eq!(ended["reason"], "hangUp", "{ended}");
    agent.expect_success(Duration::from_secs(20), "agent");
    carrier.expect_success(Duration::from_secs(20), "carrier");
    assert_eq!(agent.received("BYE").len(), 1, "the PBX hung up the agent");
    assert_eq!(
        carrier.received("BYE").len(),
        1,
        "the PBX hung up the callee"
    );
    let rest = lab.redis.follow(
        &key_of("crm-delete"),
        &["recording_ready"],
        Duration::from_secs(20),
    );
    assert_eq!(events(&rest), ["hangup", "recording_ready"], "{rest:#?}");
    assert_eq!(rest[0]["cause"], "normal_clearing");

    let again = lab.host.request("DELETE", path, Some(TEST_KEY), &[], None);
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["state"], "disconnected");
    assert_eq!(
        lab.host
            .request(
                "DELETE",
                "/click2dial/calls/crm-nobody",
                Some(TEST_KEY),
                &[],
                None
            )
            .status,
        404
    );
    lab.assert_clean_log(&[]);
    same_as_the_simulator_cut(
        &mut monitor,
        "crm-delete",
        &[so_far, rest].concat(),
        SimCase {
            agent: "1001",
            callee: "0820001234",
        },
        SimCut {
            delete_after: Some("joined"),
            controls: None,
        },
    );
}

/// `DELETE` while the agent's phone still rings: the PBX cancels the ring (the phone gets a
/// CANCEL), the call ends before it was connected, and nothing more is dialled.
#[test]
fn delete_cancels_a_ringing_call() {
    let lab = Lab::start();
    lab.wait_ready();
    let mut monitor = lab.monitor();
    let mut agent = lab.phone("1001", "noanswer.xml", "delete-ringing");
    let (status, answer) = lab.host.create_call(&body(
        "1001",
        "0820001234",
        "27820001234",
        "crm-delete-ringing",
    ));
    assert_eq!(status, 202, "{answer}");
    let so_far = lab.redis.follow(
        &key_of("crm-delete-ringing"),
        &["agent_ringing", "failed"],
        Duration::from_secs(30),
    );
    assert_eq!(events(&so_far), ["queued", "agent_ringing"], "{so_far:#?}");
    let path = "/click2dial/calls/crm-delete-ringing";
    let ended = lab.host.request("DELETE", path, Some(TEST_KEY), &[], None);
    assert_eq!(ended.status, 200, "{:?}", ended.json());
    support::assert_hung_up_before_connected(&ended.json());
    agent.expect_success(Duration::from_secs(40), "agent");
    assert!(
        !agent.received("CANCEL").is_empty(),
        "the ring was cancelled"
    );
    let rest = lab.redis.follow(
        &key_of("crm-delete-ringing"),
        &["failed"],
        Duration::from_secs(20),
    );
    assert_eq!(events(&rest), ["failed"], "{rest:#?}");
    lab.assert_clean_log(&[]);
    // The simulator's agent 1408 never answers.
    same_as_the_simulator_cut(
        &mut monitor,
        "crm-delete-ringing",
        &[so_far, rest].concat(),
        SimCase {
            agent: "1408",
            callee: "0820001234",
        },
        SimCut {
            delete_after: Some("agent_ringing"),
            controls: None,
        },
    );
}

/// Issue 15: two PBXes behind one host — this Asterisk serves agents 1000-1099, the PBX
/// simulator 2000-2099 (`[[pbx]]` entries appended to `host/click2dial.example.toml`; the
/// Asterisk entry takes `[ami]`'s secret, the simulator's has its own). Each call goes to its
/// agent's PBX; `DELETE` hangs up on the PBX that carries the call; Asterisk stopped → only
/// its agents get `503` while the simulator's calls complete; restarted → its agents' calls
/// go through again.
#[test]
fn two_pbxes_asterisk_and_the_simulator_each_serve_their_agents() {
    let fastagi = format!("127.0.0.1:{}", asterisk_support::low_port(1));
    let mut site = Site::default();
    site.globals
        .push(("C2D_FASTAGI".into(), format!("agi://{fastagi}/click2dial")));
    let asterisk = Asterisk::start(site);
    let redis = support::Redis::start();
    let sim_dir = tempfile::tempdir().expect("tempdir");
    let mut sim = support::Sim::start(sim_dir.path(), "127.0.0.1:0");
    let example =
        std::fs::read_to_string(asterisk_support::repo().join("host/click2dial.example.toml"))
            .expect("example");
    let config = format!(
        r#"{example}
[[pbx]]
name = "asterisk"
address = "{asterisk}"
agents = ["1000-1099"]

[[pbx]]
name = "sim"
address = "{sim}"
secret = "secret"
agents = ["2000-2099"]
fastagi_peers = ["127.0.0.2"]
"#,
        asterisk = asterisk.ami_address(),
        sim = sim.address,
    );
    let file = asterisk.dir.join("two-pbxes.toml");
    std::fs::write(&file, config).expect("config");
    let host = asterisk_support::start_host_with_config(&asterisk, &redis, &fastagi, &file, &[]);
    let mut lab = Lab {
        host,
        asterisk,
        redis,
        fastagi,
    };
    lab.wait_ready();
    let ready = lab.host.get("/readyz").json();
    assert_eq!(
        ready["checks"]["pbx"],
        serde_json::json!({"asterisk": "ok", "sim": "ok"}),
        "{ready}"
    );

    // Routed by agent: 1001 rings on Asterisk, 2001 on the simulator.
    let mut agent = lab.phone("1001", "answer.xml", "two-pbx");
    let mut callee = lab.carrier(Sipp::new("answer_long.xml", 0), "two-pbx");
    answered_call(&lab, &mut agent, &mut callee, "27820001234", "two-pbx-a1");
    let on_sim = |contact_ref: &str| {
        let (status, answer) =
            lab.host
                .create_call(&body("2001", "0820001234", "27820001234", contact_ref));
        assert_eq!(status, 202, "{answer}");
        let got = lab.redis.follow(
            &key_of(contact_ref),
            &["recording_ready", "failed"],
            Duration::from_secs(20),
        );
        assert_eq!(events(&got), ANSWERED, "{contact_ref}");
    };
    on_sim("two-pbx-s1");
    assert_eq!(sim.originates_of("two-pbx-s1"), 1);
    assert_eq!(
        sim.originates_of("two-pbx-a1"),
        0,
        "Asterisk's call never reached the simulator"
    );
    assert_eq!(
        agent.received("INVITE").len(),
        1,
        "the simulator's call rang no phone"
    );

    // DELETE of a ringing Asterisk call: Asterisk cancels the ring (the simulator would not).
    let mut ringing = lab.phone("1001", "noanswer.xml", "two-pbx-delete");
    let (status, answer) =
        lab.host
            .create_call(&body("1001", "0820001234", "27820001234", "two-pbx-del"));
    assert_eq!(status, 202, "{answer}");
    lab.redis.follow(
        &key_of("two-pbx-del"),
        &["agent_ringing", "failed"],
        Duration::from_secs(30),
    );
    let ended = lab.host.request(
        "DELETE",
        "/click2dial/calls/two-pbx-del",
        Some(TEST_KEY),
        &[],
        None,
    );
    assert_eq!(ended.status, 200, "{:?}", ended.json());
    assert_eq!(ended.json()["reason"], "hangUp");
    ringing.expect_success(Duration::from_secs(40), "ringing agent");
    assert!(
        !ringing.received("CANCEL").is_empty(),
        "Asterisk cancelled the ring"
    );

    // Asterisk stopped: its agents 503 naming it, the simulator's go on.
    lab.asterisk.stop();
    let down = support::eventually(Duration::from_secs(10), || {
        lab.host.get("/readyz").json()["checks"]["pbx"]["asterisk"] == "down"
    });
    assert!(down, "{:?}", lab.host.get("/readyz").json());
    let refused = lab
        .host
        .create_call(&body("1001", "0820001234", "27820001234", "two-pbx-a2"));
    assert_eq!(refused.0, 503, "{refused:?}");
    assert!(
        refused.1["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("\"asterisk\"")),
        "{refused:?}"
    );
    on_sim("two-pbx-s2");
    let ready = lab.host.get("/readyz");
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["status"], "degraded");
    assert_eq!(ready.json()["checks"]["pbx"]["asterisk"], "down");

    // Restarted: Asterisk's agents are served again.
    lab.asterisk.restart();
    assert!(
        support::eventually(Duration::from_secs(30), || lab.host.get("/readyz").json()
            ["status"]
            == "ready"),
        "{:?}",
        lab.host.get("/readyz").json()
    );
    let mut agent = lab.phone("1001", "answer.xml", "two-pbx-back");
    let mut callee = lab.carrier(Sipp::new("answer_long.xml", 0), "two-pbx-back");
    answered_call(&lab, &mut agent, &mut callee, "27820001234", "two-pbx-a2");
    assert_eq!(sim.originates_of("two-pbx-a2"), 0);
    sim.stop();
    lab.assert_clean_log(&[]);
}

/// The appliance on the real PBX, set up as an operator would (`appliance/README.md`,
/// "Connecting a device to an Asterisk"): the `admin` image booted in QEMU, given the kit's manager user and the PBX's
/// address over `PUT /admin/config`, rebooted. The call it then places rings the agent with
/// the call's `X-Teleforge-*` headers, dials the callee with `outbound_id`, and is recorded:
/// the firmware's AMI session (core's, over embassy-net) against Asterisk 22 itself. Then
/// Asterisk restarts, and a one-leg call goes through without a reboot.
#[test]
fn the_appliance_places_a_call_on_asterisk() {
    let Some(fw) = qemu_support::firmware_admin() else {
        return;
    };
    // Two more manager users besides the kit's: one without `write = reporting` or
    // `config` (no ShowDialPlan), one with `config` instead of `reporting` (ShowDialPlan, not
    // CoreShowChannels: the host would refuse it, the firmware follows no calls).
    let user = |name: &str, write: &str| {
        format!(
            "[{name}]\nsecret = {name}-secret\ndeny = 0.0.0.0/0.0.0.0\n\
             permit = 127.0.0.1/255.255.255.255\n\
             read = system,call,dialplan,originate\nwrite = {write}\n"
        )
    };
    let mut asterisk = Asterisk::start(Site {
        manager_extra: user("c2d-limited", "originate,call")
            + &user("c2d-device", "originate,call,config"),
        ..Site::default()
    });
    // First boot: the compiled configuration, its PBX at a port where nothing listens.
    let device = qemu_support::Device::boot_with(
        fw,
        support::free_port(),
        1,
        &qemu_support::random_secret(),
        Some(&qemu_support::hash_bytes(qemu_support::ADMIN_KEY_HASH)),
        None,
    );
    let admin = format!("Authorization: Bearer {}", qemu_support::ADMIN_KEY);
    let json = "Content-Type: application/json";
    let configure = |username: &str, secret: &str| {
        let config = format!(
            r#"{{"ami":{{"address":"10.0.2.2:{}","username":"{username}","secret":"{secret}"}}}}"#,
            asterisk.ami_port
        );
        let r = device.request("PUT", "/admin/config", &[&admin, json], config.as_bytes());
        assert_eq!(r.status, 200, "{r:?}");
        device.reboot();
    };
    let call = body("1001", "0820001234", "27820001234", "crm-appliance");

    let status = || {
        let r = device.request("GET", "/admin/status", &[&admin], b"");
        assert_eq!(r.status, 200, "{r:?}");
        r.text()
    };
    let status_becomes = |want: &str| {
        let became = support::eventually(Duration::from_secs(20), || status() == want);
        assert!(became, "{} is not {want}\n{}", status(), device.log());
    };
    // A mistyped secret: nothing is dialled, and the device says why (its status, its log).
    configure("c2d", "c2d-mistyped");
    status_becomes(r#"{"pbx":"refused","problems":["ami_login_failed"]}"#);
    assert!(device.log().contains("PBX problem: ami_login_failed"));
    let r = device.request("POST", "/click2dial/calls", &[json], call.as_bytes());
    assert_eq!(r.status, 503, "{r:?}");
    let refused: serde_json::Value = serde_json::from_slice(&r.body).expect("a JSON 503");
    assert_eq!(refused["error"]["code"], "pbx_unavailable", "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("the PBX refused this device")),
        "{refused}"
    );

    // A user that may not run ShowDialPlan: refused, the action named in the log.
    configure("c2d-limited", "c2d-limited-secret");
    status_becomes(r#"{"pbx":"refused","problems":["ami_permission_missing"]}"#);
    assert!(device
        .log()
        .contains("PBX problem: ami_permission_missing ShowDialPlan"));
    // One without CoreShowChannels is enough for the firmware.
    configure("c2d-device", "c2d-device-secret");
    status_becomes(r#"{"pbx":"ready","problems":[]}"#);

    // The kit's user, as shipped, for the calls.
    configure("c2d", "c2d-change-me");

    let mut agent = asterisk.phone_with("1001", Sipp::new("answer.xml", 0), "appliance");
    let mut callee = asterisk.carrier(Sipp::new("answer_long.xml", 0), "appliance");
    let post_when_up = |call: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            // 503 until the device has logged in to Asterisk and passed its check.
            let r = device.request("POST", "/click2dial/calls", &[json], call.as_bytes());
            if r.status != 503 || std::time::Instant::now() > deadline {
                break r;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let r = post_when_up(&call);
    assert_eq!(r.status, 202, "{r:?}\n{}", device.log());
    assert_eq!(status(), r#"{"pbx":"ready","problems":[]}"#);
    let answer: serde_json::Value = serde_json::from_slice(&r.body).expect("a JSON 202");
    assert_eq!(answer["contact_ref"], "crm-appliance", "{answer}");
    let recording_ref = answer["recording_ref"]
        .as_str()
        .expect("recording_ref")
        .to_string();

    agent.expect_success(Duration::from_secs(30), "agent");
    callee.expect_success(Duration::from_secs(30), "carrier");
    assert_two_leg_invites(&agent, &callee, "crm-appliance", &recording_ref);
    // MixMonitor recorded the bridged call under the appliance's recording_ref.
    let file = asterisk.recordings().join(format!("{recording_ref}.wav"));
    let recorded = support::eventually(Duration::from_secs(10), || {
        std::fs::metadata(&file).is_ok_and(|m| m.len() > 8_000)
    });
    assert!(recorded, "no recording at {}", file.display());
    asterisk.assert_clean_log(&[]);

    // Asterisk restarted: not reachable meanwhile, then calls again without a reboot.
    asterisk.stop();
    let unreachable = support::eventually(Duration::from_secs(10), || {
        let r = device.request("POST", "/click2dial/calls", &[json], call.as_bytes());
        r.status == 503 && r.text().contains("the PBX is not reachable")
    });
    assert!(unreachable, "{}", device.log());
    assert_eq!(status(), r#"{"pbx":"unreachable","problems":[]}"#);
    asterisk.restart();
    // This time a one-leg call (agent = callee): the device's direct_channel, then
    // [c2d-direct-destination] rings PJSIP/1000 with the headers.
    let mut callee = asterisk.carrier(Sipp::new("answer_long.xml", 0), "restarted");
    let mut desk = asterisk.phone_with("1000", Sipp::new("answer.xml", 0), "restarted");
    let direct = body(
        "0820001234",
        "0820001234",
        "27820001234",
        "crm-appliance-direct",
    );
    let r = post_when_up(&direct);
    assert_eq!(r.status, 202, "{r:?}\n{}", device.log());
    let answer: serde_json::Value = serde_json::from_slice(&r.body).expect("a JSON 202");
    callee.expect_success(Duration::from_secs(30), "carrier after the restart");
    desk.expect_success(
        Duration::from_secs(30),
        "direct destination after the restart",
    );
    let recording_ref = answer["recording_ref"].as_str().expect("recording_ref");
    assert_one_leg_invites(&callee, &desk, "crm-appliance-direct", recording_ref);
    asterisk.assert_clean_log(&[]);
    let log = device.assert_log_clean();
    assert!(log.contains("configuration stored"), "{log}");
}
