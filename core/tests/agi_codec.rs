//! The FastAGI codec against the recorded Asterisk 22 sessions: every byte Asterisk sent
//! decodes into the frames the parsed dialogue shows, whole or one byte at a time, and the
//! command writers produce the recorded service's bytes.

use click2dial_core::agi::{
    Command, CommandError, DecodeError, Decoder, Frame, Reply, Success, MAX_COMMAND_LEN,
    MAX_ENV_LEN, MAX_REPLY_LEN,
};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/agi");

const CASES: &[&str] = &[
    "a_valid_dial",
    "b_reject_invalid_callee",
    "c_missing_headers",
    "d_caller_cancel_service_idle",
    "d2_caller_cancel_during_wait_for_digit",
    "e_slow_service_dial",
    "g_server_full_close_dial",
    "h_endpoint_dial",
    "i_agent_header_mismatch",
    "j_spoofed_from_and_agent",
    "k_local_channel_no_endpoint",
];

fn read(case: &str, ext: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}/{case}.{ext}")).expect("fixture")
}

/// A frame as one comparable line: the reply's lines joined with `|`.
fn render(frame: &Frame<'_>) -> String {
    match frame {
        Frame::Environment(env) => format!("ENV {}", env.len()),
        Frame::Hangup => "HANGUP".into(),
        Frame::Reply(Reply::Success(Success {
            result,
            value,
            rest,
        })) => {
            let mut s = format!("200 result={result}");
            if let Some(v) = value {
                s += &format!(" ({v})");
            }
            if !rest.is_empty() {
                s += &format!(" {rest}");
            }
            s
        }
        Frame::Reply(Reply::InvalidCommand(t)) => format!("510 {t}"),
        Frame::Reply(Reply::DeadChannel(t)) => format!("511 {t}"),
        Frame::Reply(Reply::Usage(t)) => format!(
            "520-Invalid command syntax.  Proper usage follows:|{}|520 End of proper usage.",
            t.replace('\n', "|")
        ),
        Frame::Reply(Reply::Other { code, text }) => format!("{code} {text}"),
    }
}

/// What the parsed dialogue says Asterisk sent, one entry per frame.
fn expected(case: &str) -> Vec<String> {
    let dialog = String::from_utf8(read(case, "agi-dialog.txt")).expect("utf-8");
    let mut out = vec!["ENV 22".to_string()];
    let mut usage: Option<Vec<String>> = None;
    for line in dialog.lines() {
        let Some((_, text)) = line.split_once("  << ") else {
            continue;
        };
        let text = text
            .trim_end_matches("  (async notification)")
            .trim_end_matches("  (after half-close)");
        if let Some(lines) = usage.as_mut() {
            lines.push(text.to_string());
            if text.starts_with("520 ") {
                out.push(usage.take().expect("open").join("|"));
            }
        } else if text.starts_with("520-") {
            usage = Some(vec![text.to_string()]);
        } else {
            out.push(text.to_string());
        }
    }
    out
}

/// Decodes `bytes` handing the decoder `step` new bytes at a time.
fn decode_all(bytes: &[u8], step: usize) -> Vec<String> {
    let mut decoder = Decoder::new();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for chunk in bytes.chunks(step) {
        buf.extend_from_slice(chunk);
        while let Some(decoded) = decoder.decode(&buf).expect("valid AGI") {
            assert!(decoded.len > 0);
            out.push(render(&decoded.frame));
            buf.drain(..decoded.len);
        }
    }
    assert!(buf.is_empty(), "trailing bytes");
    out
}

#[test]
fn every_session_decodes_as_the_dialogue_shows() {
    for case in CASES {
        let bytes = read(case, "agi");
        let whole = decode_all(&bytes, bytes.len());
        assert_eq!(whole, expected(case), "{case}");
        assert_eq!(decode_all(&bytes, 1), whole, "{case}, byte by byte");
        assert_eq!(decode_all(&bytes, 7), whole, "{case}, 7 bytes at a time");
    }
}

#[test]
fn environment_accessors() {
    let bytes = read("a_valid_dial", "agi");
    let decoded = Decoder::new()
        .decode(&bytes)
        .expect("valid")
        .expect("complete");
    let Frame::Environment(env) = decoded.frame else {
        panic!("environment first");
    };
    assert_eq!(env.len(), 22);
    assert_eq!(env.request(), Some("agi://127.0.0.1:4573/click2dial"));
    assert_eq!(env.network_script(), Some("click2dial"));
    assert_eq!(env.channel(), Some("PJSIP/1002-00000002"));
    assert_eq!(env.uniqueid(), Some("1795758224.2"));
    assert_eq!(env.callerid(), Some("1002"));
    assert_eq!(env.calleridname(), Some("Agent 1002"));
    assert_eq!(env.context(), Some("c2d-agent-webrtc"));
    assert_eq!(env.extension(), Some("c2d"));
    assert_eq!(env.version(), Some("22.10.1"));
    assert_eq!(env.get("agi_accountcode"), Some(""));
    assert_eq!(env.get("agi_arg_1"), None);
    assert_eq!(env.iter().next(), Some(("agi_network", "yes")));
    assert_eq!(&bytes[decoded.len..][..26], b"200 result=1 (0820001234)\n");
}

fn one(bytes: &[u8]) -> Result<Option<(Frame<'_>, usize)>, DecodeError> {
    Decoder::without_environment()
        .decode(bytes)
        .map(|d| d.map(|d| (d.frame, d.len)))
}

fn success(bytes: &[u8]) -> Success<'_> {
    match one(bytes) {
        Ok(Some((Frame::Reply(Reply::Success(s)), _))) => s,
        other => panic!("{other:?}"),
    }
}

#[test]
fn values_keep_spaces_and_parentheses() {
    let s = success(b"200 result=1 (PJSIP/1002-00000005 )\n");
    assert_eq!(
        (s.result, s.value, s.rest),
        (1, Some("PJSIP/1002-00000005 "), "")
    );
    let s = success(b"200 result=1 (a (b) c)) d)\n");
    assert_eq!(s.value, Some("a (b) c)) d"));
    let s = success(b"200 result=0 (timeout) endpos=1234\n");
    assert_eq!(
        (s.result, s.value, s.rest),
        (0, Some("timeout"), "endpos=1234")
    );
    let s = success(b"200 result=-1\n");
    assert_eq!((s.result, s.value, s.rest), (-1, None, ""));
    let s = success(b"200 result=1 ()\r\n");
    assert_eq!(s.value, Some(""));
}

#[test]
fn usage_ends_only_at_the_520_space_line() {
    let text = b"520-Invalid command syntax.  Proper usage follows:\n\
        Example return code: 200 result=1 (testvariable)\n\
        520-not yet\n\
        520 End of proper usage.\n200 result=1\n";
    for cut in 0..text.len() - 13 {
        assert_eq!(one(&text[..cut]), Ok(None), "cut at {cut}");
    }
    let (frame, len) = one(text).expect("valid").expect("complete");
    assert_eq!(len, text.len() - 13);
    assert_eq!(
        frame,
        Frame::Reply(Reply::Usage(
            "Example return code: 200 result=1 (testvariable)\n520-not yet"
        ))
    );
}

#[test]
fn other_replies() {
    assert_eq!(one(b"HANGUP\n"), Ok(Some((Frame::Hangup, 7))));
    assert_eq!(
        one(b"511 Command Not Permitted on a dead channel or intercept routine\n")
            .unwrap()
            .unwrap()
            .0,
        Frame::Reply(Reply::DeadChannel(
            "Command Not Permitted on a dead channel or intercept routine"
        ))
    );
    assert_eq!(
        one(b"100 result=0 Trying...\n").unwrap().unwrap().0,
        Frame::Reply(Reply::Other {
            code: 100,
            text: "result=0 Trying..."
        })
    );
    assert_eq!(
        one(b"520 Invalid command syntax.\n").unwrap().unwrap().0,
        Frame::Reply(Reply::Usage(""))
    );
}

#[test]
fn garbage_and_floods_are_errors() {
    assert_eq!(one(b"hello\n"), Err(DecodeError::Malformed));
    assert_eq!(one(b"200 result=x\n"), Err(DecodeError::Malformed));
    assert_eq!(one(b"200 ok\n"), Err(DecodeError::Malformed));
    assert_eq!(one(b"200 result=1 (open\n"), Err(DecodeError::Malformed));
    assert_eq!(one(b"200 result=1 (\xff)\n"), Err(DecodeError::Malformed));
    assert_eq!(one(&vec![b'2'; MAX_REPLY_LEN]), Err(DecodeError::TooLarge));
    let mut usage = b"520-x\n".to_vec();
    usage.resize(MAX_REPLY_LEN, b'y');
    assert_eq!(one(&usage), Err(DecodeError::TooLarge));
    let env = |b: &[u8]| Decoder::new().decode(b).map(|d| d.map(|d| d.len));
    assert_eq!(env(b"HTTP/1.1"), Err(DecodeError::NotAgi));
    assert_eq!(
        env(b"agi_x: 1\nnot a variable\n\n"),
        Err(DecodeError::NotAgi)
    );
    assert_eq!(env(b"agi_x: 1\nagi_y"), Ok(None));
    assert_eq!(env(b"agi"), Ok(None));
    assert_eq!(env(b"\n"), Ok(Some(1)));
    let mut flood = Vec::new();
    while flood.len() < MAX_ENV_LEN {
        flood.extend_from_slice(b"agi_x: 1\n");
    }
    assert_eq!(env(&flood), Err(DecodeError::TooLarge));
}

/// Parses a recorded command line back into a [`Command`] (quotes removed).
fn parse_command(line: &str) -> Option<Command<'_>> {
    let arg = |s: &str| -> Option<(String, String)> {
        if let Some(rest) = s.strip_prefix('"') {
            let (a, tail) = rest.split_once('"')?;
            Some((a.to_string(), tail.trim_start().to_string()))
        } else {
            let (a, tail) = s.split_once(' ').unwrap_or((s, ""));
            Some((a.to_string(), tail.to_string()))
        }
    };
    // Leak: test-only, a few short strings.
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    if line == "CHANNEL STATUS" {
        return Some(Command::ChannelStatus);
    }
    if let Some(rest) = line.strip_prefix("GET FULL VARIABLE ") {
        let (a, tail) = arg(rest)?;
        return tail.is_empty().then(|| Command::GetFullVariable(leak(a)));
    }
    if let Some(rest) = line.strip_prefix("GET VARIABLE ") {
        let (a, tail) = arg(rest)?;
        return tail.is_empty().then(|| Command::GetVariable(leak(a)));
    }
    if let Some(rest) = line.strip_prefix("SET VARIABLE ") {
        let (name, tail) = arg(rest)?;
        let (value, tail) = arg(&tail)?;
        return (!value.is_empty() && tail.is_empty()).then(|| Command::SetVariable {
            name: leak(name),
            value: leak(value),
        });
    }
    if let Some(rest) = line.strip_prefix("VERBOSE ") {
        let (message, tail) = arg(rest)?;
        return Some(Command::Verbose {
            message: leak(message),
            level: tail.parse().ok()?,
        });
    }
    None
}

#[test]
fn writers_reproduce_the_recorded_commands() {
    let mut written = 0;
    for case in CASES {
        let client = String::from_utf8(read(case, "agi-client")).expect("utf-8");
        assert!(
            !client.contains('\r'),
            "the service ended lines with \\n only"
        );
        for line in client.lines() {
            let Some(command) = parse_command(line) else {
                continue;
            };
            let mut out = [0u8; MAX_COMMAND_LEN];
            let n = command.write(&mut out).expect("writes");
            assert_eq!(
                std::str::from_utf8(&out[..n]).unwrap(),
                format!("{line}\n"),
                "{case}"
            );
            written += 1;
        }
    }
    // Every recorded command but the deliberately broken ones and those the script has
    // no writer for (WAIT FOR DIGIT, ANSWER, FROBNICATE); 30 of them from the sessions of
    // the script as it is (h to k).
    assert_eq!(written, 108);
}

#[test]
fn writers_refuse_what_cannot_be_sent() {
    let mut out = [0u8; MAX_COMMAND_LEN];
    for bad in [
        "a\nHANGUP",
        "say \"hi\"",
        "back\\slash",
        "nul\0",
        "cr\r",
        "del\x7f",
    ] {
        for command in [
            Command::GetVariable(bad),
            Command::SetVariable {
                name: "X",
                value: bad,
            },
            Command::Verbose {
                message: bad,
                level: 1,
            },
        ] {
            assert_eq!(command.write(&mut out), Err(CommandError::UnsafeArgument));
        }
    }
    let long = "x".repeat(MAX_COMMAND_LEN);
    assert_eq!(
        Command::GetVariable(&long).write(&mut out),
        Err(CommandError::TooLong)
    );
    let mut small = [0u8; 10];
    assert_eq!(
        Command::SetVariable {
            name: "C2D_DECISION",
            value: "dial"
        }
        .write(&mut small),
        Err(CommandError::BufferTooSmall { required: 31 })
    );
    let n = Command::SetVariable {
        name: "C2D_REJECT_REASON",
        value: "",
    }
    .write(&mut out)
    .unwrap();
    assert_eq!(&out[..n], b"SET VARIABLE C2D_REJECT_REASON \"\"\n");
    let n = Command::Verbose {
        message: "x",
        level: 255,
    }
    .write(&mut out)
    .unwrap();
    assert_eq!(&out[..n], b"VERBOSE x 255\n");
    let n = Command::Hangup.write(&mut out).unwrap();
    assert_eq!(&out[..n], b"HANGUP\n");
    let n = Command::GetVariable("CALLERID(name)")
        .write(&mut out)
        .unwrap();
    assert_eq!(&out[..n], b"GET VARIABLE CALLERID(name)\n");
    let n = Command::SetVariable {
        name: "N",
        value: "caf\u{e9} au lait",
    }
    .write(&mut out)
    .unwrap();
    assert_eq!(
        &out[..n],
        "SET VARIABLE N \"caf\u{e9} au lait\"\n".as_bytes()
    );
}
