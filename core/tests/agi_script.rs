//! The click2dial script driven end to end by the recorded Asterisk sessions: each command
//! it sends gets the reply Asterisk gave the same command in the recording, and the caller's
//! hang-up lands while the same command (by position) is in flight as it did there.
//!
//! Sessions `h_`… were recorded with the script's own commands (the endpoint first) and are
//! matched command for command. The older ones (`a_`…`g_`) predate `CHANNEL(endpoint)`: they
//! were all placed by endpoint `1002`, and `GET VARIABLE CHANNEL(endpoint)` gets the reply
//! `h_endpoint_dial` recorded for it, [`ENDPOINT_1002`].

use click2dial_core::agi::{
    q850_cause, DecideError, Decision, Decoder, Dial, Frame, Header, Headers, Rejection, Script,
    ScriptError, ScriptEvent, Value, AGENT_MISMATCH, MAX_COMMAND_LEN, NO_ENDPOINT,
};
use click2dial_core::{DialPolicy, ErrorCode, Field, Validators};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/agi");

/// A recorded session: the environment's bytes, each command with its reply's bytes and how
/// many `HANGUP`s preceded that reply, and the `HANGUP`s after the last reply.
struct Recording {
    env: Vec<u8>,
    exchanges: Vec<(String, Vec<u8>, usize)>,
    trailing_hangups: usize,
}

fn recording(case: &str) -> Recording {
    let server = std::fs::read(format!("{DIR}/{case}.agi")).expect("fixture");
    let client = std::fs::read_to_string(format!("{DIR}/{case}.agi-client")).expect("fixture");
    let mut decoder = Decoder::new();
    let mut at = 0;
    let mut env = Vec::new();
    let mut replies = Vec::new();
    let mut hangups = 0;
    while let Some(d) = decoder.decode(&server[at..]).expect("valid") {
        let bytes = server[at..at + d.len].to_vec();
        match d.frame {
            Frame::Environment(_) => env = bytes,
            Frame::Hangup => hangups += 1,
            Frame::Reply(_) => {
                replies.push((bytes, hangups));
                hangups = 0;
            }
        }
        at += d.len;
    }
    let commands: Vec<String> = client.lines().map(|l| format!("{l}\n")).collect();
    assert_eq!(
        commands.len(),
        replies.len(),
        "{case}: one reply per command"
    );
    Recording {
        env,
        exchanges: commands
            .into_iter()
            .zip(replies)
            .map(|(c, (r, h))| (c, r, h))
            .collect(),
        trailing_hangups: hangups,
    }
}

/// What a session produced.
#[derive(Debug, Default)]
struct Run {
    sent: Vec<String>,
    events: Vec<ScriptEvent>,
    headers: Option<Headers>,
    delivered: bool,
    hung_up: bool,
}

/// Plays `case`'s Asterisk side to a fresh script; `decide` answers `Decide`.
fn run(case: &str, mut decide: impl FnMut(&Headers) -> Decision<'static>) -> Run {
    let rec = recording(case);
    let mut script = Script::new();
    let mut out = Run::default();
    let mut inbox = rec.env.clone();
    let mut buf = [0u8; MAX_COMMAND_LEN];
    loop {
        let used = script
            .handle_input(&inbox)
            .expect("script accepts Asterisk's bytes");
        inbox.drain(..used);
        while let Some(event) = script.poll_event() {
            out.events.push(event);
            if event == ScriptEvent::Decide {
                let headers = *script.headers();
                out.headers = Some(headers);
                script.decide(&decide(&headers)).expect("decision accepted");
            }
        }
        if script.is_done() {
            break;
        }
        let Some(n) = script.poll_transmit(&mut buf).expect("room") else {
            panic!("{case}: the script neither sends nor finishes");
        };
        assert_eq!(script.poll_transmit(&mut buf), Ok(None), "one at a time");
        let command = std::str::from_utf8(&buf[..n]).unwrap().to_string();
        let position = out.sent.len();
        // Hang-ups come by position: the caller left while this command was in flight.
        let hangups = rec.exchanges.get(position).map_or(0, |e| e.2);
        inbox.extend(b"HANGUP\n".repeat(hangups));
        let reply = match rec.exchanges.iter().find(|e| e.0 == command) {
            Some(e) => e.1.clone(),
            None if command == READS[0] => ENDPOINT_1002.to_vec(),
            None if command.starts_with("SET VARIABLE ") => b"200 result=1\n".to_vec(),
            None => b"200 result=0\n".to_vec(),
        };
        inbox.extend(reply);
        out.sent.push(command);
    }
    // After the half-close Asterisk ends the AGI with `HANGUP`: nothing changes.
    let delivered = script.delivered();
    let tail = b"HANGUP\n".repeat(rec.trailing_hangups);
    assert_eq!(script.handle_input(&tail), Ok(tail.len()));
    assert_eq!(script.poll_event(), None);
    out.delivered = script.delivered();
    assert_eq!(out.delivered, delivered);
    out.hung_up = script.hung_up();
    out
}

fn validators() -> Validators {
    Validators::new().expect("tables")
}

/// The service's decision for these headers, with the recording reference the recorded
/// service used.
fn product_decision(case: &'static str) -> impl FnMut(&Headers) -> Decision<'static> {
    move |headers| {
        let headers: &'static Headers = Box::leak(Box::new(*headers));
        match headers.validate(&validators(), &DialPolicy::SOUTH_AFRICA) {
            Ok(valid) => Decision::Dial(Dial {
                callee: valid.callee.as_str(),
                outbound_cid: valid.outbound_id.as_str(),
                recording_ref: Box::leak(format!("rec-{case}").into_boxed_str()),
                contact_ref: valid.contact_ref.expect("given"),
            }),
            Err(rejection) => rejection.into(),
        }
    }
}

const READS: [&str; 5] = [
    "GET VARIABLE CHANNEL(endpoint)\n",
    "GET VARIABLE \"PJSIP_HEADER(read,X-Teleforge-Callee)\"\n",
    "GET VARIABLE \"PJSIP_HEADER(read,X-Teleforge-Outbound-Id)\"\n",
    "GET VARIABLE \"PJSIP_HEADER(read,X-Teleforge-Contact-Ref)\"\n",
    "GET VARIABLE \"PJSIP_HEADER(read,X-Teleforge-Agent)\"\n",
];

/// Asterisk's reply to `GET VARIABLE CHANNEL(endpoint)` on endpoint `1002`'s channel, as
/// recorded in `h_endpoint_dial`.
const ENDPOINT_1002: &[u8] = b"200 result=1 (1002)\n";

#[test]
fn the_endpoint_reply_is_the_recorded_one() {
    let rec = recording("h_endpoint_dial");
    assert_eq!(rec.exchanges[0].0, READS[0]);
    assert_eq!(rec.exchanges[0].1, ENDPOINT_1002);
}

/// The commands the recorded service sent in `case`.
fn recorded_commands(case: &str) -> Vec<String> {
    recording(case).exchanges.into_iter().map(|e| e.0).collect()
}

#[test]
fn the_endpoint_dials_in_its_own_name() {
    let run = run("h_endpoint_dial", product_decision("h_endpoint_dial"));
    // Command for command what was sent to the real Asterisk.
    assert_eq!(run.sent, recorded_commands("h_endpoint_dial"));
    assert_eq!(&run.sent[..5], READS);
    assert!(run.delivered && !run.hung_up);
    let headers = run.headers.expect("read");
    assert_eq!(headers.endpoint(), Some("1002"));
    assert_eq!(headers.claimed_agent(), Some("1002"));
    let valid = headers
        .validate(&validators(), &DialPolicy::SOUTH_AFRICA)
        .expect("valid");
    assert_eq!(valid.agent, "1002");
}

#[test]
fn a_phone_claiming_another_agent_is_refused_whatever_its_from_says() {
    // i: X-Teleforge-Agent 1003 from endpoint 1002. j: the same, and `From` (hence
    // `agi_callerid`, `CALLERID(num)`) says 1003 too: the endpoint still says 1002.
    for case in ["i_agent_header_mismatch", "j_spoofed_from_and_agent"] {
        let run = run(case, product_decision("never"));
        assert_eq!(run.sent, recorded_commands(case), "{case}");
        assert_eq!(
            &run.sent[5..],
            [
                "SET VARIABLE C2D_DECISION reject\n",
                "SET VARIABLE C2D_REJECT_REASON invalid_agent\n",
                "SET VARIABLE C2D_REJECT_CAUSE 21\n",
            ]
        );
        assert!(run.delivered, "{case}");
        let headers = run.headers.expect("read");
        assert_eq!(headers.endpoint(), Some("1002"));
        assert_eq!(headers.claimed_agent(), Some("1003"));
        let rejection = headers
            .validate(&validators(), &DialPolicy::SOUTH_AFRICA)
            .expect_err("refused");
        assert_eq!(rejection, Rejection::from(AGENT_MISMATCH));
        assert_eq!(rejection.cause, 21);
    }
    let env = recording("j_spoofed_from_and_agent").env;
    assert!(String::from_utf8(env)
        .unwrap()
        .contains("agi_callerid: 1003\n"));
}

#[test]
fn a_channel_without_endpoint_is_refused_without_reading_headers() {
    let case = "k_local_channel_no_endpoint";
    let run = run(case, product_decision("never"));
    assert_eq!(run.sent, recorded_commands(case));
    assert_eq!(
        run.sent,
        [
            READS[0],
            "SET VARIABLE C2D_DECISION reject\n",
            "SET VARIABLE C2D_REJECT_REASON invalid_agent\n",
            "SET VARIABLE C2D_REJECT_CAUSE 21\n",
        ]
    );
    assert!(run.delivered);
    let headers = run.headers.expect("read");
    assert_eq!(headers.endpoint(), None);
    assert_eq!(
        headers.validate(&validators(), &DialPolicy::SOUTH_AFRICA),
        Err(Rejection::from(NO_ENDPOINT))
    );
}

#[test]
fn valid_dial_sets_what_the_recorded_service_set() {
    for case in [
        "a_valid_dial",
        "e_slow_service_dial",
        "g_server_full_close_dial",
    ] {
        let run = run(case, product_decision(case));
        // The recording's four header reads (it read CALLERID(num) fifth, the script reads
        // the endpoint first) and its five SET VARIABLEs.
        let recorded = recorded_commands(case);
        let mut expected: Vec<String> = vec![READS[0].to_string()];
        expected.extend_from_slice(&recorded[..4]);
        expected.extend_from_slice(&recorded[11..16]);
        assert_eq!(run.sent, expected, "{case}");
        assert_eq!(&run.sent[..5], READS);
        assert_eq!(run.events, [ScriptEvent::Decide, ScriptEvent::Close]);
        assert!(run.delivered && !run.hung_up, "{case}");
        let headers = run.headers.expect("read");
        assert_eq!(headers.get(Header::Callee), Value::Given("0820001234"));
        assert_eq!(headers.get(Header::Agent), Value::Absent);
        assert_eq!(headers.get(Header::Endpoint), Value::Given("1002"));
    }
}

#[test]
fn invalid_callee_is_rejected_with_cause_21() {
    let run = run("b_reject_invalid_callee", product_decision("b"));
    assert_eq!(&run.sent[..5], READS);
    assert_eq!(
        &run.sent[5..],
        [
            "SET VARIABLE C2D_DECISION reject\n",
            "SET VARIABLE C2D_REJECT_REASON invalid_callee\n",
            "SET VARIABLE C2D_REJECT_CAUSE 21\n",
        ]
    );
    assert!(run.delivered);
}

#[test]
fn missing_headers_are_missing_field() {
    let run = run("c_missing_headers", product_decision("c"));
    let headers = run.headers.expect("read");
    for h in [
        Header::Callee,
        Header::OutboundId,
        Header::ContactRef,
        Header::Agent,
    ] {
        assert_eq!(headers.get(h), Value::Absent);
    }
    let rejection = headers
        .validate(&validators(), &DialPolicy::SOUTH_AFRICA)
        .expect_err("rejected");
    assert_eq!(rejection.error.code, ErrorCode::MissingField);
    assert_eq!(rejection.error.field, Some(Field::Callee));
    assert_eq!(rejection.cause, 21);
    assert_eq!(
        run.sent[6],
        "SET VARIABLE C2D_REJECT_REASON missing_field\n"
    );
}

#[test]
fn a_caller_who_hangs_up_is_abandoned_before_any_decision() {
    // d: HANGUP arrives between the first command (now the endpoint) and its reply.
    let run_d = run("d_caller_cancel_service_idle", |_| panic!("no decision"));
    assert_eq!(run_d.sent, [READS[0]]);
    // d2: the caller leaves while the third command is in flight.
    let run_d2 = run("d2_caller_cancel_during_wait_for_digit", |_| {
        panic!("no decision")
    });
    assert_eq!(run_d2.sent, READS[..3]);
    for run in [run_d, run_d2] {
        assert_eq!(run.events, [ScriptEvent::HungUp, ScriptEvent::Close]);
        assert!(run.hung_up && !run.delivered);
        assert!(run.headers.is_none());
    }
}

fn feed(script: &mut Script, bytes: &[u8]) {
    assert_eq!(script.handle_input(bytes), Ok(bytes.len()));
}

const ENV: &[u8] =
    b"agi_network: yes\nagi_channel: PJSIP/1002-00000002\nagi_uniqueid: 1795758224.2\n\n";

/// A script that has read the values (with these replies, endpoint first) and waits for a
/// decision.
fn deciding(replies: &[&str]) -> Script {
    let mut script = Script::new();
    let mut buf = [0u8; MAX_COMMAND_LEN];
    feed(&mut script, ENV);
    assert_eq!(script.uniqueid(), "1795758224.2");
    assert_eq!(script.channel(), "PJSIP/1002-00000002");
    for reply in replies {
        assert!(script.poll_transmit(&mut buf).unwrap().is_some());
        feed(&mut script, reply.as_bytes());
    }
    assert_eq!(script.poll_event(), Some(ScriptEvent::Decide));
    script
}

#[test]
fn hangup_between_decision_and_the_last_variable_is_not_delivered() {
    let mut script = deciding(&[
        "200 result=1 (1002)\n",
        "200 result=1 (0820001234)\n",
        "200 result=1 (27820001234)\n",
        "200 result=0\n",
        "200 result=0\n",
    ]);
    let dial = Dial {
        callee: "0820001234",
        outbound_cid: "27820001234",
        recording_ref: "abcdefghijklmnopqrstuvwxyz",
        contact_ref: "crm-1",
    };
    script.decide(&Decision::Dial(dial)).unwrap();
    assert_eq!(
        script.decide(&Decision::Dial(dial)),
        Err(DecideError::NotDeciding)
    );
    let mut buf = [0u8; MAX_COMMAND_LEN];
    script.poll_transmit(&mut buf).unwrap().unwrap();
    feed(&mut script, b"200 result=1\n");
    script.poll_transmit(&mut buf).unwrap().unwrap();
    feed(&mut script, b"HANGUP\n");
    assert_eq!(script.poll_event(), Some(ScriptEvent::HungUp));
    assert_eq!(script.poll_event(), Some(ScriptEvent::Close));
    assert_eq!(script.poll_transmit(&mut buf), Ok(None));
    assert!(!script.delivered() && script.hung_up());
}

#[test]
fn a_failed_set_is_not_delivered() {
    let mut script = deciding(&["200 result=0\n"]);
    script
        .decide(&Decision::Reject {
            code: ErrorCode::RateLimited,
            cause: q850_cause(ErrorCode::RateLimited),
        })
        .unwrap();
    let mut buf = [0u8; MAX_COMMAND_LEN];
    let mut sent = Vec::new();
    for reply in [
        "200 result=1\n",
        "511 Command Not Permitted\n",
        "200 result=1\n",
    ] {
        let n = script.poll_transmit(&mut buf).unwrap().unwrap();
        sent.push(String::from_utf8(buf[..n].to_vec()).unwrap());
        feed(&mut script, reply.as_bytes());
    }
    assert_eq!(sent[2], "SET VARIABLE C2D_REJECT_CAUSE 34\n");
    assert_eq!(script.poll_event(), Some(ScriptEvent::Close));
    assert!(script.is_done() && !script.delivered());
}

#[test]
fn unsendable_or_overlong_decisions_are_refused() {
    let mut script = deciding(&["200 result=0\n"]);
    let dial = |contact_ref| {
        Decision::Dial(Dial {
            callee: "0820001234",
            outbound_cid: "27820001234",
            recording_ref: "abcdefghijklmnopqrstuvwxyz",
            contact_ref,
        })
    };
    assert_eq!(script.decide(&dial("a\nb")), Err(DecideError::UnsafeValue));
    assert_eq!(script.decide(&dial("")), Err(DecideError::UnsafeValue));
    let long = "x".repeat(231);
    assert_eq!(script.decide(&dial(&long)), Err(DecideError::TooLong));
    assert_eq!(script.decide(&dial("ok")), Ok(()));
}

#[test]
fn out_of_turn_frames_are_errors() {
    let mut script = Script::new();
    assert_eq!(
        script.handle_input(b"agi_network: yes\n\n"),
        Err(ScriptError::NoUniqueid)
    );
    let mut script = Script::new();
    feed(&mut script, ENV);
    assert_eq!(
        script.handle_input(b"200 result=1\n"),
        Err(ScriptError::Unexpected)
    );
    let mut script = Script::new();
    assert!(matches!(
        script.handle_input(b"GET / HTTP/1.1\r\n"),
        Err(ScriptError::Decode(_))
    ));
    assert_eq!(Script::new().handle_input(b"agi_netw"), Ok(0));
}

#[test]
fn non_200_replies_to_reads_count_as_absent() {
    let script = deciding(&[
        "200 result=1 (1002)\n",
        "200 result=1 (0820001234)\n",
        "511 Command Not Permitted on a dead channel or intercept routine\n",
        "520-Invalid command syntax.  Proper usage follows:\nx\n520 End of proper usage.\n",
        "510 Invalid or unknown command\n",
    ]);
    let h = script.headers();
    assert_eq!(h.get(Header::Callee), Value::Given("0820001234"));
    assert_eq!(h.get(Header::OutboundId), Value::Absent);
    assert_eq!(h.get(Header::ContactRef), Value::Absent);
    assert_eq!(h.get(Header::Agent), Value::Absent);
}

#[test]
fn no_endpoint_means_no_header_is_read() {
    for reply in [
        "200 result=0\n",
        "200 result=1 ()\n",
        "511 Command Not Permitted on a dead channel or intercept routine\n",
        "510 Invalid or unknown command\n",
        "520-Invalid command syntax.  Proper usage follows:\nx\n520 End of proper usage.\n",
    ] {
        let mut script = deciding(&[reply]);
        let mut buf = [0u8; MAX_COMMAND_LEN];
        assert_eq!(script.poll_transmit(&mut buf), Ok(None), "{reply}");
        let headers = *script.headers();
        assert_eq!(headers.endpoint(), None);
        let rejection = headers
            .validate(&validators(), &DialPolicy::SOUTH_AFRICA)
            .expect_err("refused");
        assert_eq!(rejection, Rejection::from(NO_ENDPOINT), "{reply}");
        script.decide(&rejection.into()).unwrap();
        let n = script.poll_transmit(&mut buf).unwrap().unwrap();
        assert_eq!(&buf[..n], b"SET VARIABLE C2D_DECISION reject\n");
    }
    // An endpoint longer than any agent is no endpoint either.
    let long = format!("200 result=1 ({})\n", "1".repeat(200));
    let script = deciding(&[&long]);
    assert_eq!(script.headers().get(Header::Endpoint), Value::TooLong);
}

fn headers(values: [Option<&str>; 5]) -> Headers {
    Header::ALL
        .iter()
        .zip(values)
        .fold(Headers::new(), |h, (&header, v)| h.with(header, v))
}

fn verdict(values: [Option<&str>; 5]) -> Result<(), (ErrorCode, Option<Field>, u8)> {
    headers(values)
        .validate(&validators(), &DialPolicy::SOUTH_AFRICA)
        .map(|_| ())
        .map_err(|Rejection { error, cause }| (error.code, error.field, cause))
}

#[test]
fn headers_validate_like_rest() {
    use ErrorCode::*;
    // Header::ALL order: endpoint, callee, outbound ID, contact ref, claimed agent.
    let ok = [
        Some("1002"),
        Some("0820001234"),
        Some("27820001234"),
        Some("crm-77"),
        None,
    ];
    assert_eq!(verdict(ok), Ok(()));
    fn with<'a>(ok: [Option<&'a str>; 5], i: usize, v: Option<&'a str>) -> [Option<&'a str>; 5] {
        let mut values = ok;
        values[i] = v;
        values
    }
    // The agent header may repeat the endpoint; another agent is refused.
    assert_eq!(verdict(with(ok, 4, Some("1002"))), Ok(()));
    assert_eq!(verdict(with(ok, 4, Some(""))), Ok(()));
    let mismatch = Err((InvalidAgent, Some(Field::Agent), 21));
    assert_eq!(verdict(with(ok, 4, Some("1003"))), mismatch);
    assert_eq!(verdict(with(ok, 4, Some("1002 "))), mismatch);
    assert_eq!(verdict(with(ok, 4, Some(&"1".repeat(200)))), mismatch);
    // No endpoint: refused, whatever the phone claims.
    for endpoint in [None, Some("")] {
        for claimed in [None, Some("1002")] {
            let values = with(with(ok, 0, endpoint), 4, claimed);
            assert_eq!(verdict(values), mismatch, "{endpoint:?} {claimed:?}");
            assert_eq!(
                headers(values).validate(&validators(), &DialPolicy::SOUTH_AFRICA),
                Err(Rejection::from(NO_ENDPOINT))
            );
        }
    }
    assert_eq!(
        headers(with(ok, 4, Some("1003"))).validate(&validators(), &DialPolicy::SOUTH_AFRICA),
        Err(Rejection::from(AGENT_MISMATCH))
    );
    // An endpoint whose name is not an agent extension is refused as REST refuses the agent.
    assert_eq!(verdict(with(ok, 0, Some("Agent 1002"))), mismatch);
    assert_eq!(
        verdict(with(ok, 1, None)),
        Err((MissingField, Some(Field::Callee), 21))
    );
    assert_eq!(
        verdict(with(ok, 2, None)),
        Err((MissingField, Some(Field::OutboundId), 21))
    );
    assert_eq!(
        verdict(with(ok, 1, Some("12345"))),
        Err((InvalidCallee, Some(Field::Callee), 21))
    );
    assert_eq!(
        verdict(with(ok, 1, Some("0862001234"))),
        Err((CalleeNotAllowed, Some(Field::Callee), 21))
    );
    assert_eq!(
        verdict(with(ok, 2, Some("tvc_bad campaign"))),
        Err((InvalidOutboundId, Some(Field::OutboundId), 21))
    );
    assert_eq!(
        verdict(with(ok, 3, Some("crm 77"))),
        Err((InvalidContactRef, Some(Field::ContactRef), 21))
    );
    assert_eq!(verdict(with(ok, 3, None)), Ok(()));
    assert_eq!(verdict(with(ok, 3, Some(""))), Ok(()));
    let long = "0".repeat(200);
    assert_eq!(
        verdict(with(ok, 1, Some(&long))),
        Err((InvalidCallee, Some(Field::Callee), 21))
    );
    // The endpoint's own number as callee would be a REST one-leg call: not from a phone.
    assert_eq!(
        verdict([
            Some("0820001234"),
            Some("0820001234"),
            Some("27820001234"),
            None,
            None,
        ]),
        Err((InvalidAgent, Some(Field::Agent), 21))
    );
    // The same values through REST give the same codes.
    let body = br#"{"agent":"1002","callee":"12345","outbound_id":"27820001234"}"#;
    let rest = click2dial_core::request::parse(body)
        .and_then(|r| validators().validate(&r, &DialPolicy::SOUTH_AFRICA))
        .expect_err("refused");
    assert_eq!(rest.code, InvalidCallee);
}

#[test]
fn q850_table() {
    use ErrorCode::*;
    for code in [
        MissingField,
        InvalidCallee,
        CalleeNotAllowed,
        ContactRefConflict,
    ] {
        assert_eq!(q850_cause(code), 21);
    }
    assert_eq!(q850_cause(RateLimited), 34);
    for code in [PbxUnavailable, ServiceUnavailable, Internal, RequestTimeout] {
        assert_eq!(q850_cause(code), 41);
    }
}

#[test]
fn dial_for_call_uses_the_call_values() {
    let h = headers([
        Some("1002"),
        Some("0820001234"),
        Some("tvc_spring-sale"),
        Some("crm-9"),
        Some("1002"),
    ]);
    let valid = h
        .validate(&validators(), &DialPolicy::SOUTH_AFRICA)
        .expect("valid");
    let call = valid.assign_references(&[1; 32]);
    let dial = Dial::for_call(&call);
    assert_eq!(dial.callee, "0820001234");
    assert_eq!(dial.outbound_cid, "tvc_spring-sale");
    assert_eq!(dial.contact_ref, "crm-9");
    assert_eq!(dial.recording_ref, call.recording_ref.as_str());
}
