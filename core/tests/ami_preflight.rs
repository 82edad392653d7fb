//! The preflight against what a real Asterisk 22 answered (`fixtures/ami/preflight/`): each
//! recorded case is replayed line by line on a virtual clock; the machine must send exactly
//! the recorded client bytes and find exactly the problems the answers show.

use std::fs;
use std::path::Path;

use click2dial_core::ami::{
    Checks, ContextCheck, Decoder, Frame, Outcome, Preflight, ProblemCode, MAX_MESSAGE_LEN,
};

fn read(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ami/preflight")
        .join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const fn context(context: &'static str) -> ContextCheck<'static> {
    ContextCheck {
        context,
        extension: None,
        campaigns: false,
    }
}

/// The contexts of the `full` case, in the order it asked for them.
const FULL: [ContextCheck<'static>; 7] = [
    context("c2d-outbound"),
    ContextCheck {
        context: "c2d-tvc",
        extension: None,
        campaigns: true,
    },
    context("c2d-missing"),
    ContextCheck {
        context: "c2d-agent-webrtc",
        extension: Some("c2d"),
        campaigns: false,
    },
    ContextCheck {
        context: "c2d-agent-webrtc",
        extension: Some("nope"),
        campaigns: false,
    },
    ContextCheck {
        context: "c2d-missing",
        extension: Some("c2d"),
        campaigns: false,
    },
    context("empty-ctx"),
];

fn checks<'a>(username: &'a str, secret: &'a str, contexts: &'a [ContextCheck<'a>]) -> Checks<'a> {
    Checks {
        username,
        secret,
        contexts,
        booted_within_ms: 5_000,
        answer_within_ms: 5_000,
    }
}

type Machine<'a> = Preflight<'a, 16>;

/// Feeds `server` line by line at time 0 and collects what the machine sends meanwhile.
fn replay(preflight: &mut Machine<'_>, server: &[u8]) -> Vec<u8> {
    let mut sent = Vec::new();
    let mut out = [0u8; 1024];
    let mut transmit = |preflight: &mut Machine<'_>, sent: &mut Vec<u8>| {
        while let Some(n) = preflight.poll_transmit(&mut out).expect("fits") {
            sent.extend_from_slice(&out[..n]);
        }
    };
    transmit(preflight, &mut sent);
    let mut rest = server;
    while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
        preflight.handle_line(0, &rest[..end]);
        rest = &rest[end + 2..];
        transmit(preflight, &mut sent);
        if preflight.outcome().is_some() {
            break;
        }
    }
    sent
}

fn codes(preflight: &Machine<'_>) -> Vec<(&'static str, String)> {
    preflight
        .problems()
        .map(|p| (p.code.as_str(), p.subject().to_owned()))
        .collect()
}

/// The recorded client bytes up to the first action the machine does not send.
fn client_until(name: &str, stop: &str) -> Vec<u8> {
    let client = read(name);
    let end = client
        .windows(stop.len())
        .position(|w| w == stop.as_bytes())
        .unwrap_or(client.len());
    client[..end].to_vec()
}

#[test]
fn full_pbx_missing_context_and_extension_and_the_campaigns() {
    let mut preflight = Machine::login(checks("c2d", "secret", &FULL), 0);
    let sent = replay(&mut preflight, &read("full.server.ami"));
    assert_eq!(
        String::from_utf8_lossy(&sent),
        String::from_utf8_lossy(&client_until("full.client.ami", "Action: Originate"))
    );
    assert_eq!(
        preflight.outcome(),
        Some(Outcome::Failed {
            session_usable: true
        })
    );
    assert_eq!(
        codes(&preflight),
        [
            ("dialplan_context_missing", "c2d-missing".to_owned()),
            (
                "dialplan_extension_missing",
                "nope@c2d-agent-webrtc".to_owned()
            ),
        ]
    );
    let campaigns: Vec<&str> = preflight.campaigns().iter().collect();
    assert_eq!(campaigns, ["renewals", "spring"]);
    assert!(preflight.campaigns().contains("spring"));
    assert!(!preflight.campaigns().contains("Spring"));
    assert!(!preflight.campaigns().overflowed());
    assert_eq!(preflight.poll_timeout(), None);
}

#[test]
fn the_kit_contexts_pass() {
    let server = read("full.server.ami");
    let mut preflight = Machine::login(checks("c2d", "secret", &FULL[..2]), 0);
    replay(&mut preflight, &server);
    assert_eq!(preflight.outcome(), Some(Outcome::Passed));
    assert_eq!(preflight.campaigns().len(), 2);
}

#[test]
fn restricted_write_names_the_missing_privilege() {
    let mut preflight = Machine::login(checks("limited", "secret", &FULL), 0);
    let sent = replay(&mut preflight, &read("limited.server.ami"));
    // Without ShowDialPlan the dialplan is not asked for.
    assert_eq!(
        sent,
        client_until("limited.client.ami", "Action: ShowDialPlan")
    );
    assert_eq!(
        codes(&preflight),
        [("ami_permission_missing", "ShowDialPlan".to_owned())]
    );
    assert_eq!(
        preflight.outcome(),
        Some(Outcome::Failed {
            session_usable: false
        })
    );
    let sentence = preflight.problems().next().expect("one").to_string();
    assert_eq!(
        sentence,
        "the manager user may not run ShowDialPlan: add reporting to its write= in \
         manager.conf (the kit has write = originate,call,reporting), then \
         `manager reload`"
    );
}

#[test]
fn permission_denied_to_show_dial_plan_is_a_missing_privilege() {
    // The same recorded session, as the dialplan-only check of run 0 reads it: only the
    // `Permission denied` answer carries its ActionID (c2d-pf-0-0).
    let mut preflight = Machine::dialplan(checks("limited", "secret", &FULL), 0, 0);
    replay(&mut preflight, &read("limited.server.ami"));
    assert_eq!(
        codes(&preflight),
        [("ami_permission_missing", "ShowDialPlan".to_owned())]
    );
}

#[test]
fn no_fully_booted_means_read_system_is_missing() {
    let mut preflight = Machine::login(checks("noread", "secret", &FULL), 1_000);
    replay(&mut preflight, &read("noread.server.ami"));
    assert_eq!(preflight.outcome(), None);
    // The deadline runs from the accepted login (read at t=0 here).
    assert_eq!(preflight.poll_timeout(), Some(5_000));
    preflight.handle_timeout(4_999);
    assert_eq!(preflight.outcome(), None);
    preflight.handle_timeout(5_000);
    assert_eq!(codes(&preflight), [("ami_not_fully_booted", String::new())]);
    assert!(preflight
        .problems()
        .next()
        .expect("one")
        .to_string()
        .contains("read = system"));
}

#[test]
fn refused_login_says_so() {
    let mut preflight = Machine::login(checks("c2d", "wrong", &FULL), 0);
    let sent = replay(&mut preflight, &read("badlogin.server.ami"));
    assert_eq!(sent, read("badlogin.client.ami"));
    assert_eq!(codes(&preflight), [("ami_login_failed", String::new())]);
    assert_eq!(
        preflight.outcome(),
        Some(Outcome::Failed {
            session_usable: false
        })
    );
    let sentence = preflight.problems().next().expect("one").to_string();
    assert!(sentence.contains("Authentication failed") && sentence.contains("permit"));
}

#[test]
fn write_all_lists_everything_in_one_large_message() {
    let server = read("admin.server.ami");
    let mut preflight = Machine::login(checks("admin", "secret", &[]), 0);
    let sent = replay(&mut preflight, &server);
    assert_eq!(sent, read("admin.client.ami"));
    assert_eq!(preflight.outcome(), Some(Outcome::Passed));
    let start = server
        .windows(11)
        .position(|w| w == b"c2d-pf-0-lc")
        .expect("answer");
    let len = server[start..]
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end");
    assert!(
        len > MAX_MESSAGE_LEN * 9 / 10,
        "{len}: close to the frame limit"
    );
}

#[test]
fn messages_from_the_decoder_work_as_lines_do() {
    let server = read("full.server.ami");
    let mut preflight = Machine::dialplan(checks("c2d", "secret", &FULL), 0, 0);
    let mut decoder = Decoder::new();
    let mut start = 0;
    let mut out = [0u8; 512];
    let mut sent = Vec::new();
    while let Some(decoded) = decoder.decode(&server[start..]).expect("AMI") {
        while let Some(n) = preflight.poll_transmit(&mut out).expect("fits") {
            sent.extend_from_slice(&out[..n]);
        }
        if let Frame::Message(m) = decoded.frame {
            preflight.handle_message(0, &m);
        }
        start += decoded.len;
    }
    assert_eq!(
        preflight.outcome(),
        Some(Outcome::Failed {
            session_usable: true
        })
    );
    assert_eq!(codes(&preflight).len(), 2);
    assert_eq!(preflight.campaigns().len(), 2);
    let sent = String::from_utf8(sent).expect("ASCII");
    assert_eq!(sent.matches("Action: ShowDialPlan").count(), 7);
    assert!(!sent.contains("Login"));
}

#[test]
fn silence_after_an_action_is_no_answer() {
    let mut preflight = Machine::dialplan(checks("c2d", "secret", &FULL), 3, 100);
    let mut out = [0u8; 256];
    let n = preflight
        .poll_transmit(&mut out)
        .expect("fits")
        .expect("one");
    assert_eq!(
        &out[..n],
        b"Action: ShowDialPlan\r\nActionID: c2d-pf-3-0\r\nContext: c2d-outbound\r\n\r\n"
    );
    assert_eq!(preflight.poll_transmit(&mut out), Ok(None));
    assert_eq!(preflight.poll_timeout(), Some(5_100));
    preflight.handle_timeout(5_100);
    assert_eq!(
        codes(&preflight),
        [("ami_no_answer", "ShowDialPlan".into())]
    );
    assert!(!ProblemCode::NoAnswer.is_configuration());
    assert!(ProblemCode::ContextMissing.is_configuration());
}

#[test]
fn a_small_buffer_keeps_the_action_due() {
    let mut preflight = Machine::login(checks("c2d", "secret", &FULL), 0);
    let mut small = [0u8; 8];
    assert!(preflight.poll_transmit(&mut small).is_err());
    let mut out = [0u8; 256];
    assert!(preflight.poll_transmit(&mut out).expect("fits").is_some());
}

#[test]
fn not_asterisk() {
    let mut preflight = Machine::login(checks("c2d", "secret", &FULL), 0);
    preflight.handle_line(0, b"HTTP/1.1 400 Bad Request");
    assert_eq!(codes(&preflight), [("ami_not_asterisk", String::new())]);
}

#[test]
fn sentences_for_the_dialplan() {
    let mut preflight = Machine::login(checks("c2d", "secret", &FULL), 0);
    replay(&mut preflight, &read("full.server.ami"));
    let sentences: Vec<String> = preflight.problems().map(ToString::to_string).collect();
    assert_eq!(
        sentences,
        [
            "context c2d-missing not found in the PBX dialplan: #include the click2dial \
             extensions.conf kit and `dialplan reload`",
            "extension nope@c2d-agent-webrtc not found in the PBX dialplan: add it from the \
             click2dial extensions.conf kit and `dialplan reload`",
        ]
    );
}
