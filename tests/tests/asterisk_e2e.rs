//! The shipped Asterisk kit on a real Asterisk 22, end to end: `redis-server`, an Asterisk
//! instance with `host/asterisk/*.conf` included into a site configuration, SIPp phones
//! (agents that register, the carrier trunk that reaches callees, a softphone calling `c2d`)
//! and the host binary configured from `host/click2dial.example.toml`. Each test asserts
//! what a user sees (HTTP answers, Redis notifications in order, SIP messages the phones
//! got, the recording) and that Asterisk logged no ERROR or WARNING line.

mod asterisk_support;
mod support;

use std::time::Duration;

use asterisk_support::{sip_header, Asterisk, Lab, Sipp, Site};
use support::{events, ANSWERED, TEST_KEY};

fn key_of(contact_ref: &str) -> String {
    format!("teleforge:notifications:c2d:{contact_ref}")
}

fn body(agent: &str, callee: &str, outbound_id: &str, contact_ref: &str) -> String {
    format!(
        r#"{{"agent":"{agent}","callee":"{callee}","outbound_id":"{outbound_id}","contact_ref":"{contact_ref}"}}"#
    )
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
    let mut agent = lab.phone("1001", "answer.xml", "two-leg");
    let mut callee = lab.carrier(Sipp::new("answer_long.xml", 0), "two-leg");

    let (status, answer) =
        lab.host
            .create_call(&body("1001", "0820001234", "27820001234", "crm-two-leg"));
    assert_eq!(status, 202, "{answer}");
    let recording_ref = answer["recording_ref"]
        .as_str()
        .expect("recording_ref")
        .to_string();

    let notifications = lab.redis.follow(
        &key_of("crm-two-leg"),
        &["recording_ready", "failed"],
        Duration::from_secs(30),
    );
    assert_eq!(events(&notifications), ANSWERED, "{notifications:#?}");
    agent.expect_success(Duration::from_secs(20), "agent");
    callee.expect_success(Duration::from_secs(20), "carrier");

    // The agent's INVITE carries the call's values.
    let invites = agent.received("INVITE");
    assert_eq!(invites.len(), 1, "one INVITE to the agent");
    let invite = &invites[0];
    for (header, value) in [
        ("X-Teleforge-Agent", "1001"),
        ("X-Teleforge-Callee", "0820001234"),
        ("X-Teleforge-Outbound-Id", "27820001234"),
        ("X-Teleforge-Contact-Ref", "crm-two-leg"),
        ("X-Teleforge-Recording-Ref", recording_ref.as_str()),
    ] {
        assert_eq!(
            sip_header(invite, header),
            Some(value),
            "{header} in\n{invite}"
        );
    }
    // The callee sees outbound_id; the agent saw the callee's number.
    let callee_invite = &callee.received("INVITE")[0];
    assert!(
        sip_header(callee_invite, "From").is_some_and(|f| f.contains("sip:27820001234@")),
        "{callee_invite}"
    );
    assert!(
        sip_header(callee_invite, "P-Asserted-Identity")
            .is_some_and(|f| f.contains("sip:27820001234@")),
        "{callee_invite}"
    );
    assert!(sip_header(callee_invite, "X-Teleforge-Contact-Ref").is_none());
    assert!(sip_header(invite, "From").is_some_and(|f| f.contains("sip:0820001234@")));

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
}
