//! The action writers against what the recorded client sent (`*.client.ami`): Login and
//! Logoff byte for byte, every Originate byte for byte up to how its variables are spread
//! over `Variable:` lines, and no value able to add a header or a variable.

use std::fs;
use std::path::Path;

use click2dial_core::ami::{
    Action, ActionError, Channel, Decoder, Frame, Hangup, Kind, Login, Logoff, Message, Originate,
    Ping, MAX_CHANNEL_ID_LEN,
};
use click2dial_core::error::BufferTooSmall;

fn read(relative: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ami")
        .join(relative);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn client_transcripts() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ami/transcripts");
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .filter(|n| n.ends_with(".client.ami"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 22);
    names
}

/// The actions of a client transcript, each with its raw bytes (closing empty line included).
fn actions(bytes: &[u8]) -> Vec<(Message<'_>, &[u8])> {
    let mut decoder = Decoder::without_banner();
    let mut at = 0;
    let mut out = Vec::new();
    while let Some(d) = decoder.decode(&bytes[at..]).expect("client AMI") {
        let Frame::Message(m) = d.frame else {
            panic!("no banner from a client")
        };
        assert_eq!(m.kind(), Kind::Other, "actions start with Action:");
        out.push((m, &bytes[at..at + d.len]));
        at += d.len;
    }
    assert_eq!(at, bytes.len());
    out
}

fn write(action: &dyn Action) -> Result<Vec<u8>, ActionError> {
    let mut buf = [0u8; 2048];
    let n = action.write(&mut buf)?;
    Ok(buf[..n].to_vec())
}

/// How Asterisk reads one `Variable:` value (manager.c `man_do_variable_value`): split on
/// commas outside `()`, `[]` and double quotes, with quotes dropped and a backslash taking
/// the next character literally; then each item at its first `=`, items without one or with
/// an empty name dropped.
fn asterisk_variables(value: &str) -> Vec<(String, String)> {
    let mut items = Vec::new();
    let mut item = String::new();
    let (mut paren, mut bracket, mut quoted) = (0u32, 0u32, false);
    let mut chars = value.trim_start_matches([' ', '\t']).chars();
    while let Some(c) = chars.next() {
        match c {
            '(' => paren += 1,
            ')' => paren = paren.saturating_sub(1),
            '[' => bracket += 1,
            ']' => bracket = bracket.saturating_sub(1),
            '"' => {
                quoted = !quoted;
                continue;
            }
            '\\' => {
                item.extend(chars.next());
                continue;
            }
            ',' if paren == 0 && bracket == 0 && !quoted => {
                items.push(std::mem::take(&mut item));
                continue;
            }
            _ => {}
        }
        item.push(c);
    }
    items.push(item);
    items
        .into_iter()
        .filter_map(|i| {
            let (name, value) = i.split_once('=')?;
            (!name.is_empty()).then(|| (name.to_owned(), value.to_owned()))
        })
        .collect()
}

/// Every variable Asterisk would set from the `Variable:` lines of `bytes`.
fn variables_in(bytes: &[u8]) -> Vec<(String, String)> {
    Message::new(bytes)
        .get_all("Variable")
        .flat_map(asterisk_variables)
        .collect()
}

/// The transcript's action with each `Variable:` line rewritten one variable per line.
fn one_variable_per_line(raw: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(raw).expect("utf-8");
    let body = text.strip_suffix("\r\n\r\n").expect("framed");
    let mut out = String::new();
    for line in body.split("\r\n") {
        match line.strip_prefix("Variable: ") {
            Some(value) => {
                for (name, value) in asterisk_variables(value) {
                    out.push_str(&format!("Variable: {name}={value}\r\n"));
                }
            }
            None => out.push_str(&format!("{line}\r\n")),
        }
    }
    out.push_str("\r\n");
    out.into_bytes()
}

const ORIGINATE_KEYS: [&str; 12] = [
    "Action",
    "ActionID",
    "Channel",
    "Context",
    "Exten",
    "Priority",
    "CallerID",
    "Timeout",
    "Async",
    "ChannelId",
    "OtherChannelId",
    "Variable",
];

/// Rebuilds the transcript's Originate through the writer; `Err` names what the typed
/// [`Originate`] cannot express (by design: it only writes what Asterisk accepts).
fn rewrite_originate(m: &Message<'_>) -> Result<Result<Vec<u8>, ActionError>, &'static str> {
    assert!(
        m.headers().all(|h| ORIGINATE_KEYS.contains(&h.key)),
        "{m:?}"
    );
    let (tech, resource) = m
        .get("Channel")
        .ok_or("no Channel")?
        .split_once('/')
        .ok_or("Channel without /")?;
    if m.get("Async") != Some("true") {
        return Err("not Async");
    }
    let variables = variables_in(m.as_bytes());
    let variables: Vec<(&str, &str)> = variables
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let originate = Originate {
        action_id: m.action_id().expect("ActionID"),
        channel: Channel { tech, resource },
        context: m.get("Context").ok_or("no Context")?,
        exten: m.get("Exten").ok_or("no Exten")?,
        priority: m
            .get("Priority")
            .ok_or("no Priority")?
            .parse()
            .map_err(|_| "Priority not a number")?,
        caller_id: m.get("CallerID"),
        timeout_ms: m
            .get("Timeout")
            .map(|t| t.parse().map_err(|_| "Timeout not a number"))
            .transpose()?,
        channel_id: m.get("ChannelId"),
        other_channel_id: m.get("OtherChannelId"),
        variables: &variables,
    };
    Ok(write(&originate))
}

/// Login, Logoff and the `Hangup`s of the recorded `DELETE`s (`j_`, `j2_`, `k_`, `k2_`, `k4_`), byte
/// for byte.
#[test]
fn login_and_logoff_are_byte_exact() {
    let mut checked = 0;
    for name in client_transcripts() {
        let bytes = read(&format!("transcripts/{name}"));
        for (m, raw) in actions(&bytes) {
            let written = match m.get("Action") {
                Some("Login") => write(&Login {
                    action_id: m.action_id().expect("ActionID"),
                    username: m.get("Username").expect("Username"),
                    secret: m.get("Secret").expect("Secret"),
                }),
                Some("Logoff") => write(&Logoff {
                    action_id: m.action_id().expect("ActionID"),
                }),
                Some("Hangup") => write(&Hangup {
                    action_id: m.action_id().expect("ActionID"),
                    channel: m.get("Channel").expect("Channel"),
                    cause: m.get("Cause").and_then(|c| c.parse().ok()).expect("Cause"),
                }),
                _ => continue,
            };
            assert_eq!(written.as_deref(), Ok(raw), "{name}");
            checked += 1;
        }
    }
    // Every Login and Logoff; two Hangups in each of the five recordings of a DELETE.
    assert_eq!(checked, 22 + 20 + 5 * 2);
}

#[test]
fn originates_are_byte_exact_one_variable_per_line() {
    let mut exact = Vec::new();
    let mut joined_lines = 0;
    for name in client_transcripts() {
        let bytes = read(&format!("transcripts/{name}"));
        for (m, raw) in actions(&bytes) {
            if m.get("Action") != Some("Originate") {
                continue;
            }
            let action_id = m.action_id().expect("ActionID").to_owned();
            let Ok(written) = rewrite_originate(&m) else {
                continue;
            };
            let Ok(written) = written else {
                continue;
            };
            // Asterisk sets the same variables, in the same order, from both.
            assert_eq!(variables_in(raw), variables_in(&written), "{action_id}");
            assert_eq!(written, one_variable_per_line(raw), "{action_id}");
            if written != raw {
                joined_lines += 1;
            }
            exact.push(action_id);
        }
    }
    assert_eq!(
        exact,
        [
            "orig-a2_success_local_predial",
            "orig-a_success",
            "orig-b_agent_noanswer",
            "orig-c_agent_busy",
            "orig-d2_callee_notfound",
            "orig-d3_callee_decline",
            "orig-d4_callee_noanswer",
            "orig-d5_agent_hangs_up_while_callee_rings",
            "orig-d_callee_busy",
            "f5-unknown-tech-async",
            "f6-unknown-endpoint-async",
            "orig-h_header_variants",
            // i2_one_leg_callee_busy, i_one_leg_success, j*_ (one leg), k*_ (two legs):
            // written by the host's writer.
            "c2d-oacxmqkrhrsl63ywyav6eykpgq",
            "c2d-oacxmqkrhrsl63ywyav6eykpgq",
            "c2d-oacxmqkrhrsl63ywyav6eykpgq",
            "c2d-oacxmqkrhrsl63ywyav6eykpgq",
            "c2d-oacxmqkrhrsl63ywyav6eykpgq",
            "c2d-oacxmqkrhrsl63ywyav6eykpgq",
            "c2d-oacxmqkrhrsl63ywyav6eykpgq",
            "c2d-oacxmqkrhrsl63ywyav6eykpgq",
            "c2d-oacxmqkrhrsl63ywyav6eykpgq",
        ]
    );
    // The recorded client joined two variables on one line in every call case.
    assert_eq!(joined_lines, 10);
}

#[test]
fn the_malformed_originates_cannot_be_written() {
    let bytes = read("transcripts/f_originate_errors.client.ami");
    let mut got = Vec::new();
    for (m, _) in actions(&bytes) {
        if m.get("Action") != Some("Originate") {
            continue;
        }
        let outcome = match rewrite_originate(&m) {
            Err(why) => why.to_owned(),
            Ok(Err(e)) => format!("{e:?}"),
            Ok(Ok(_)) => "written".to_owned(),
        };
        got.push((m.action_id().expect("ActionID").to_owned(), outcome));
    }
    let want = [
        ("f1-missing-channel", "no Channel"),
        ("f2-channel-no-slash", "Channel without /"),
        ("f3-bad-priority", "Priority not a number"),
        ("f4-bad-timeout", "Timeout not a number"),
        ("f5-unknown-tech-async", "written"),
        ("f6-unknown-endpoint-async", "written"),
        ("f7-unknown-endpoint-sync", "not Async"),
        ("f8-no-exten-no-app", "no Context"),
        ("f9-bad-channelid", "TooLong { header: \"ChannelId\" }"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn the_header_variants_reach_asterisk_as_four_variables() {
    let bytes = read("transcripts/h_header_variants.client.ami");
    let (_, raw) = actions(&bytes)
        .into_iter()
        .find(|(m, _)| m.get("Action") == Some("Originate"))
        .expect("Originate");
    assert_eq!(
        variables_in(raw),
        [
            ("C2D_CONTACT_REF", "crm-42"),
            ("C2D_RECORDING_REF", "rec-abc"),
            ("PJSIP_HEADER(add,X-Teleforge-Callee)", "0820001234"),
            ("PJSIP_HEADER(add,X-Teleforge-Contact-Ref)", "crm-42"),
            ("__C2D_X", "1"),
            ("PJSIP_HEADER(add,X-Teleforge-Recording-Ref)", "rec-abc"),
        ]
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
    );
}

fn product_originate<'a>(variables: &'a [(&'a str, &'a str)]) -> Originate<'a> {
    Originate {
        action_id: "orig-1",
        channel: Channel::pjsip("1001"),
        context: "c2d-outbound",
        exten: "0820001234",
        priority: 1,
        caller_id: Some("27820001234"),
        timeout_ms: Some(20000),
        channel_id: Some("c2d-crm-42-7244a9c1"),
        other_channel_id: None,
        variables,
    }
}

const PRODUCT_VARIABLES: [(&str, &str); 4] = [
    ("C2D_CONTACT_REF", "crm-42"),
    ("C2D_RECORDING_REF", "aaaqeayeaudaocajbifqydiob4"),
    ("C2D_OUTBOUND_ID", "27820001234"),
    ("PJSIP_HEADER(add,X-Teleforge-Agent)", "1001"),
];

#[test]
fn product_originate_bytes() {
    let written = write(&product_originate(&PRODUCT_VARIABLES)).expect("fits");
    assert_eq!(
        String::from_utf8(written.clone()).expect("utf-8"),
        "Action: Originate\r\n\
         ActionID: orig-1\r\n\
         Channel: PJSIP/1001\r\n\
         Context: c2d-outbound\r\n\
         Exten: 0820001234\r\n\
         Priority: 1\r\n\
         CallerID: 27820001234\r\n\
         Timeout: 20000\r\n\
         Async: true\r\n\
         ChannelId: c2d-crm-42-7244a9c1\r\n\
         Variable: C2D_CONTACT_REF=crm-42\r\n\
         Variable: C2D_RECORDING_REF=aaaqeayeaudaocajbifqydiob4\r\n\
         Variable: C2D_OUTBOUND_ID=27820001234\r\n\
         Variable: PJSIP_HEADER(add,X-Teleforge-Agent)=1001\r\n\
         \r\n"
    );
    assert_eq!(
        variables_in(&written),
        PRODUCT_VARIABLES.map(|(n, v)| (n.to_owned(), v.to_owned()))
    );
    let mut small = [0u8; 64];
    assert_eq!(
        product_originate(&PRODUCT_VARIABLES).write(&mut small),
        Err(ActionError::BufferTooSmall(BufferTooSmall {
            required: Some(written.len())
        }))
    );
}

const INJECTIONS: [&str; 6] = [
    "1001\r\nAction: Command",
    "1001\nVariable: SHELL(id)=x",
    "1001\rChannel: Local/x",
    "1001\r\n\r\nAction: Logoff",
    "nul\0cut",
    "tab\there",
];

#[test]
fn line_breaks_are_refused_in_every_value() {
    let vars = [("A", "1")];
    for bad in INJECTIONS {
        let refused = |e: Result<Vec<u8>, ActionError>, header: &str| {
            assert!(
                matches!(e, Err(ActionError::ControlCharacter { header: h }) if h == header),
                "{header} accepted {bad:?}: {e:?}"
            );
        };
        refused(write(&Ping { action_id: bad }), "ActionID");
        refused(write(&Logoff { action_id: bad }), "ActionID");
        let login = Login {
            action_id: "l",
            username: "c2d",
            secret: "s",
        };
        refused(
            write(&Login {
                action_id: bad,
                ..login
            }),
            "ActionID",
        );
        refused(
            write(&Login {
                username: bad,
                ..login
            }),
            "Username",
        );
        refused(
            write(&Login {
                secret: bad,
                ..login
            }),
            "Secret",
        );
        let o = product_originate(&vars);
        refused(
            write(&Originate {
                action_id: bad,
                ..o
            }),
            "ActionID",
        );
        let channel = Channel::pjsip(bad);
        refused(write(&Originate { channel, ..o }), "Channel");
        let channel = Channel {
            tech: bad,
            resource: "1001",
        };
        refused(write(&Originate { channel, ..o }), "Channel");
        refused(write(&Originate { context: bad, ..o }), "Context");
        refused(write(&Originate { exten: bad, ..o }), "Exten");
        let caller_id = Some(bad);
        refused(write(&Originate { caller_id, ..o }), "CallerID");
        let channel_id = Some(bad);
        refused(write(&Originate { channel_id, ..o }), "ChannelId");
        let other_channel_id = Some(bad);
        refused(
            write(&Originate {
                other_channel_id,
                ..o
            }),
            "OtherChannelId",
        );
        for variables in [&[("OK", "1"), ("A", bad)][..], &[(bad, "1")]] {
            refused(write(&Originate { variables, ..o }), "Variable");
        }
    }
}

#[test]
fn values_cannot_add_variables() {
    let cases: [(&str, &str); 7] = [
        ("C2D_CONTACT_REF", "crm-42,CALLERID(num)=999"),
        ("C2D_CONTACT_REF", "\"crm\"-42"),
        ("C2D_CONTACT_REF", "crm\\,42"),
        ("C2D_X,CALLERID(num)", "999"),
        ("C2D_X=1", "2"),
        ("PJSIP_HEADER(add,X-A", "1,B=2"),
        ("", "orphan"),
    ];
    for (index, (name, value)) in cases.into_iter().enumerate() {
        let vars = [("C2D_OK", "1"), (name, value)];
        assert_eq!(
            write(&product_originate(&vars)),
            Err(ActionError::InvalidVariable { index: 1 }),
            "case {index}: {name}={value}"
        );
    }
}

#[test]
fn required_values_are_not_empty_and_ids_fit_asterisk() {
    let o = product_originate(&[]);
    assert_eq!(
        write(&Originate { exten: "", ..o }),
        Err(ActionError::Empty { header: "Exten" })
    );
    assert_eq!(
        write(&Ping { action_id: "" }),
        Err(ActionError::Empty { header: "ActionID" })
    );
    let long = "c".repeat(MAX_CHANNEL_ID_LEN + 1);
    assert_eq!(
        write(&Originate {
            channel_id: Some(&long),
            ..o
        }),
        Err(ActionError::TooLong {
            header: "ChannelId"
        })
    );
}

#[test]
fn errors_display_without_values() {
    let secret = "hunter2\r\n";
    let e = write(&Login {
        action_id: "l",
        username: "c2d",
        secret,
    })
    .expect_err("refused");
    let text = e.to_string();
    assert_eq!(text, "AMI Secret value contains a control character");
    assert!(!format!("{e:?}").contains("hunter2"));
}
