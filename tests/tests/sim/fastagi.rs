//! The simulator's FastAGI side: a softphone's INVITE to `c2d` makes it connect to a FastAGI
//! service, send the recorded environment, answer like the recorded Asterisk, and play the
//! recorded dialplan's AMI events; the control listener triggers it from another process.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use crate::support::{assert_same, connect, login, next, start, Normaliser, Running, FAST, LIMIT};
use click2dial_core::agi::{Decision, Dial, Script, ScriptEvent, MAX_COMMAND_LEN};
use click2dial_core::{DialPolicy, Validators};
use click2dial_tests::ami_client::AmiClient;
use click2dial_tests::pbx_sim::{Config, Invite, InviteOutcome};
use click2dial_tests::transcript::split_frames;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as AsyncBufReader};
use tokio::net::TcpListener;

const AGI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../core/tests/fixtures/agi");
const AMI: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../core/tests/fixtures/ami/fastagi"
);

fn fixture(case: &str, ext: &str) -> Vec<u8> {
    std::fs::read(format!("{AGI}/{case}.{ext}")).expect("fixture")
}

/// The recorded INVITE's headers (none for an empty callee, as in `c_missing_headers`).
fn recorded_headers(callee: &str) -> Vec<(String, String)> {
    if callee.is_empty() {
        return Vec::new();
    }
    vec![
        ("X-Teleforge-Callee".into(), callee.into()),
        ("X-Teleforge-Outbound-Id".into(), "27820001234".into()),
        ("X-Teleforge-Contact-Ref".into(), "crm-77".into()),
    ]
}

async fn sim(fastagi: Option<SocketAddr>, dir: &std::path::Path) -> Running {
    start(Config {
        recordings_dir: dir.to_owned(),
        time_scale: FAST,
        fastagi,
        ..Config::default()
    })
    .await
}

/// Reads the environment block; returns its lines.
async fn read_env(reader: &mut AsyncBufReader<tokio::net::tcp::OwnedReadHalf>) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        assert!(line.ends_with('\n') && !line.ends_with("\r\n"), "{line:?}");
        if line == "\n" {
            return lines;
        }
        lines.push(line.trim_end().to_owned());
    }
}

/// A scripted FastAGI service: sends `commands` one at a time, records every byte the
/// simulator sent, half-closes and reads to the end. Returns (environment lines, bytes after
/// the environment).
async fn scripted(listener: TcpListener, commands: Vec<String>) -> (Vec<String>, Vec<u8>) {
    let (stream, _) = listener.accept().await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut reader = AsyncBufReader::new(read);
    let env = read_env(&mut reader).await;
    let mut received = Vec::new();
    for command in commands {
        write.write_all(command.as_bytes()).await.unwrap();
        // One reply: lines up to a non-HANGUP one (a 520- runs to its `520 ` line).
        let mut usage = false;
        loop {
            let mut line = String::new();
            assert!(
                reader.read_line(&mut line).await.unwrap() > 0,
                "reply to {command:?}"
            );
            received.extend_from_slice(line.as_bytes());
            if line.starts_with("520-") {
                usage = true;
            } else if (usage && line.starts_with("520 ")) || (!usage && line != "HANGUP\n") {
                break;
            }
        }
    }
    write.shutdown().await.unwrap();
    reader.read_to_end(&mut received).await.unwrap();
    (env, received)
}

/// The recorded environment's names, and the replies after it.
fn recorded_session(case: &str) -> (Vec<String>, Vec<u8>) {
    let server = fixture(case, "agi");
    let text = String::from_utf8(server).unwrap();
    let (env, rest) = text.split_once("\n\n").unwrap();
    (
        env.lines()
            .map(|l| l.split(':').next().unwrap().to_owned())
            .collect(),
        rest.as_bytes().to_vec(),
    )
}

fn commands(case: &str) -> Vec<String> {
    String::from_utf8(fixture(case, "agi-client"))
        .unwrap()
        .lines()
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Every AMI frame the simulator sends until the call of `uniqueid` has ended.
async fn call_frames(client: &mut AmiClient, running: &Running) -> Vec<Vec<u8>> {
    tokio::time::timeout(LIMIT, running.sim.idle())
        .await
        .expect("call ends");
    // A Ping's answer comes after every event queued before it.
    client
        .action(&[("Action", "Ping"), ("ActionID", "p")])
        .await
        .unwrap();
    let mut frames = Vec::new();
    loop {
        let frame = next(client).await;
        if frame.starts_with(b"Response: Success\r\nActionID: p\r\n") {
            return frames;
        }
        frames.push(frame);
    }
}

/// The recorded AMI frames of the call (from `Newchannel` to the last `Hangup`).
fn recorded_call(case: &str) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(format!("{AMI}/{case}.ami")).unwrap();
    let frames: Vec<Vec<u8>> = split_frames(&bytes, true)
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect();
    let first = frames
        .iter()
        .position(|f| f.starts_with(b"Event: Newchannel"))
        .unwrap();
    let last = frames
        .iter()
        .rposition(|f| f.starts_with(b"Event: Hangup"))
        .unwrap();
    frames[first..=last].to_vec()
}

/// Normalised for comparison: generated ids, and the random `CommandId` and thread ids.
fn normalise(frames: &[Vec<u8>], dir: Option<&std::path::Path>) -> Vec<String> {
    let mut n = Normaliser::new(dir);
    n.frames(frames)
        .into_iter()
        .map(|f| {
            f.lines()
                .map(|l| match l.split_once(": ") {
                    Some(("CommandId", _)) => "CommandId: <id>".to_owned(),
                    Some(("SentNTP", _)) => "SentNTP: <ntp>".to_owned(),
                    _ => l.to_owned(),
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect()
}

/// Plays `case`'s INVITE to the recorded commands; checks the environment, Asterisk's
/// answers, and (with `compare_ami`) every AMI frame against the recording.
async fn replay_case(
    case: &str,
    callee: &str,
    cancel_at: Option<usize>,
    compare_ami: bool,
) -> (InviteOutcome, Vec<String>) {
    let (outcome, _, frames) = replay(case, recorded_headers(callee), cancel_at, compare_ami).await;
    (outcome, frames)
}

/// [`replay_case`] with the INVITE's headers given; also returns the environment.
async fn replay(
    case: &str,
    headers: Vec<(String, String)>,
    cancel_at: Option<usize>,
    compare_ami: bool,
) -> (InviteOutcome, Vec<String>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = sim(Some(listener.local_addr().unwrap()), dir.path()).await;
    let mut ami = connect(running.addr).await;
    login(&mut ami).await;
    let service = tokio::spawn(scripted(listener, commands(case)));
    let outcome = running
        .sim
        .invite(Invite {
            endpoint: "1002".into(),
            headers,
            cancel_at,
        })
        .await;
    let (env, received) = service.await.unwrap();
    let (names, replies) = recorded_session(case);
    // The environment: the recorded 22 names in order, this call's values.
    assert_eq!(
        env.iter()
            .map(|l| l.split(':').next().unwrap())
            .collect::<Vec<_>>(),
        names
    );
    assert!(env.contains(&"agi_network_script: click2dial".to_owned()));
    assert!(env.contains(&"agi_accountcode:".to_owned()), "{env:?}");
    // Asterisk's answers, byte for byte (g closed without a half-close: no last HANGUP there).
    let recorded_channel = String::from_utf8(fixture(case, "agi"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("agi_channel: ").map(str::to_owned))
        .unwrap();
    let channel = env
        .iter()
        .find_map(|l| l.strip_prefix("agi_channel: "))
        .unwrap();
    let mut expected = String::from_utf8(replies)
        .unwrap()
        .replace(&recorded_channel, channel)
        .into_bytes();
    if !expected.ends_with(b"HANGUP\n") {
        expected.extend_from_slice(b"HANGUP\n");
    }
    assert_eq!(
        String::from_utf8_lossy(&received),
        String::from_utf8_lossy(&expected),
        "{case}"
    );
    let frames = call_frames(&mut ami, &running).await;
    let got = normalise(&frames, Some(running.sim.recordings_dir()));
    if !compare_ami {
        // The call still plays to its end (the recording had other timing and RTCP reports).
        assert!(
            got.last().is_some_and(|f| f.starts_with("Event: Hangup")),
            "{case}"
        );
        return (outcome, env, got);
    }
    // b's softphone dialled `*99` (`Goto(c2d,1)`); the simulated INVITE goes to `c2d`.
    let recorded: Vec<Vec<u8>> = recorded_call(case)
        .into_iter()
        .filter(|f| {
            !(f.starts_with(b"Event: Newexten")
                && String::from_utf8_lossy(f).contains("\r\nExten: *99\r\n"))
        })
        .map(|f| {
            String::from_utf8_lossy(&f)
                .replace("\r\nExten: *99\r\n", "\r\nExten: c2d\r\n")
                .into_bytes()
        })
        .collect();
    let want = normalise(&recorded, None);
    assert_same(case, &got, &want);
    (outcome, env, got)
}

#[tokio::test]
async fn dial_answers_and_plays_like_a_valid_dial() {
    for (case, compare_ami) in [("a_valid_dial", true), ("g_server_full_close_dial", false)] {
        let (outcome, _) = replay_case(case, "0820001234", None, compare_ami).await;
        assert!(
            matches!(outcome, InviteOutcome::Dial(ref id) if id.contains('.')),
            "{outcome:?}"
        );
    }
}

#[tokio::test]
async fn reject_answers_and_plays_like_b_and_c() {
    let (outcome, _) = replay_case("b_reject_invalid_callee", "12345", None, true).await;
    assert_eq!(
        outcome.to_string(),
        "reject cause=21 reason=invalid%20or%20missing%20callee"
    );
    let (outcome, _) = replay_case("c_missing_headers", "", None, true).await;
    assert_eq!(
        outcome.to_string(),
        "reject cause=21 reason=invalid%20or%20missing%20callee"
    );
}

#[tokio::test]
async fn caller_cancel_answers_and_plays_like_d() {
    let (outcome, _) =
        replay_case("d_caller_cancel_service_idle", "0820001234", Some(0), true).await;
    assert!(matches!(outcome, InviteOutcome::Cancelled(_)));
}

#[tokio::test]
async fn service_down_plays_like_f() {
    let dir = tempfile::tempdir().unwrap();
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let running = sim(Some(closed), dir.path()).await;
    let mut ami = connect(running.addr).await;
    login(&mut ami).await;
    let outcome = running
        .sim
        .invite(Invite {
            endpoint: "1002".into(),
            headers: recorded_headers("0820001234"),
            cancel_at: None,
        })
        .await;
    assert_eq!(outcome, InviteOutcome::AgiFailed);
    let got = normalise(&call_frames(&mut ami, &running).await, None);
    assert_same(
        "f_service_down",
        &got,
        &normalise(&recorded_call("f_service_down"), None),
    );
}

/// The core's click2dial script as the service, over a real socket.
async fn core_service(listener: TcpListener, recording_ref: &'static str) -> bool {
    let (mut stream, _) = listener.accept().await.unwrap();
    let validators = Validators::new().unwrap();
    let mut script = Script::new();
    let mut inbox = Vec::new();
    let mut out = [0u8; MAX_COMMAND_LEN];
    let mut buf = [0u8; 4096];
    loop {
        while let Some(event) = script.poll_event() {
            match event {
                ScriptEvent::Decide => {
                    let headers = *script.headers();
                    let decision = match headers.validate(&validators, &DialPolicy::SOUTH_AFRICA) {
                        Ok(valid) => Decision::Dial(Dial {
                            callee: valid.callee.as_str(),
                            outbound_cid: valid.outbound_id.as_str(),
                            recording_ref,
                            contact_ref: valid.contact_ref.unwrap_or("generated"),
                        }),
                        Err(rejection) => rejection.into(),
                    };
                    script.decide(&decision).unwrap();
                }
                ScriptEvent::HungUp => {}
                ScriptEvent::Close => {
                    stream.shutdown().await.unwrap();
                    let mut rest = Vec::new();
                    stream.read_to_end(&mut rest).await.unwrap();
                    assert_eq!(rest, b"HANGUP\n");
                    return script.delivered();
                }
            }
        }
        while let Some(n) = script.poll_transmit(&mut out).unwrap() {
            stream.write_all(&out[..n]).await.unwrap();
        }
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "Asterisk closed early");
        inbox.extend_from_slice(&buf[..n]);
        let used = script.handle_input(&inbox).unwrap();
        inbox.drain(..used);
    }
}

#[tokio::test]
async fn the_core_script_against_the_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = sim(Some(listener.local_addr().unwrap()), dir.path()).await;
    let service = tokio::spawn(core_service(listener, "rec-core"));
    let outcome = running
        .sim
        .invite(Invite {
            endpoint: "1002".into(),
            headers: recorded_headers("0820001234"),
            cancel_at: None,
        })
        .await;
    assert!(service.await.unwrap(), "decision delivered");
    assert!(matches!(outcome, InviteOutcome::Dial(_)), "{outcome:?}");
    tokio::time::timeout(LIMIT, running.sim.idle())
        .await
        .unwrap();
    let wav = std::fs::read(dir.path().join("rec-core.wav")).expect("recording written");
    assert!(wav.starts_with(b"RIFF") && wav.len() > 44);

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = sim(Some(listener.local_addr().unwrap()), dir.path()).await;
    let service = tokio::spawn(core_service(listener, "rec-x"));
    let outcome = running
        .sim
        .invite(Invite {
            endpoint: "1002".into(),
            headers: recorded_headers("12345"),
            cancel_at: None,
        })
        .await;
    assert!(service.await.unwrap());
    assert_eq!(outcome.to_string(), "reject cause=21 reason=invalid_callee");
}

#[tokio::test]
async fn the_control_listener_of_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fastagi = listener.local_addr().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pbx-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--time-scale",
            "0.01",
            "--control",
            "127.0.0.1:0",
        ])
        .args(["--fastagi", &fastagi.to_string(), "--recordings"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = [String::new(), String::new()];
    for line in &mut lines {
        stdout.read_line(line).unwrap();
    }
    assert!(lines[0].starts_with("listening 127.0.0.1:"), "{lines:?}");
    let control: SocketAddr = lines[1]
        .trim()
        .strip_prefix("control ")
        .unwrap_or_else(|| panic!("{lines:?}"))
        .parse()
        .unwrap();
    let service = tokio::spawn(core_service(listener, "rec-ctl"));
    let answer = tokio::task::spawn_blocking(move || {
        let mut conn = std::net::TcpStream::connect(control).unwrap();
        conn.write_all(b"invite 1002 X-Teleforge-Callee=0820001234 X-Teleforge-Outbound-Id=27820001234 X-Teleforge-Contact-Ref=crm-77\nbogus\n").unwrap();
        let mut reader = BufReader::new(conn);
        let mut answers = [String::new(), String::new()];
        for a in &mut answers {
            reader.read_line(a).unwrap();
        }
        answers
    })
    .await
    .unwrap();
    assert!(service.await.unwrap());
    assert!(
        answer[0].starts_with("dial ") && answer[0].ends_with('\n'),
        "{answer:?}"
    );
    assert!(answer[1].starts_with("error "), "{answer:?}");
    let _ = child.kill();
    let _ = child.wait();
}

/// The INVITE of the `h_`…`j_` recordings: endpoint `1002` (by its source address) sending
/// these `X-Teleforge-*` headers, and optionally its own `From`.
fn softphone_headers(contact_ref: &str, agent: &str, from: Option<&str>) -> Vec<(String, String)> {
    let mut headers = vec![
        ("X-Teleforge-Callee".to_owned(), "0820001234".to_owned()),
        ("X-Teleforge-Outbound-Id".into(), "27820001234".into()),
        ("X-Teleforge-Contact-Ref".into(), contact_ref.into()),
        ("X-Teleforge-Agent".into(), agent.into()),
    ];
    if let Some(from) = from {
        headers.push(("From".into(), from.into()));
    }
    headers
}

#[tokio::test]
async fn the_endpoint_answers_like_the_endpoint_recordings() {
    // The script's own commands (endpoint first), answered byte for byte as recorded.
    let (outcome, env, _) = replay(
        "h_endpoint_dial",
        softphone_headers("crm-88", "1002", None),
        None,
        false,
    )
    .await;
    assert!(matches!(outcome, InviteOutcome::Dial(_)), "{outcome:?}");
    assert!(env.contains(&"agi_callerid: 1002".to_owned()), "{env:?}");
    let (outcome, _, _) = replay(
        "i_agent_header_mismatch",
        softphone_headers("crm-89", "1003", None),
        None,
        false,
    )
    .await;
    assert_eq!(outcome.to_string(), "reject cause=21 reason=invalid_agent");
    // The phone's From says 1003: so does the caller ID, but not the endpoint.
    let (outcome, env, _) = replay(
        "j_spoofed_from_and_agent",
        softphone_headers(
            "crm-90",
            "1003",
            Some("\"Agent 1003\" <sip:1003@127.0.0.1:27173>;tag=1SIPpTag001"),
        ),
        None,
        false,
    )
    .await;
    assert_eq!(outcome.to_string(), "reject cause=21 reason=invalid_agent");
    assert!(env.contains(&"agi_callerid: 1003".to_owned()), "{env:?}");
    assert!(
        env.contains(&"agi_calleridname: Agent 1003".to_owned()),
        "{env:?}"
    );
}

/// One INVITE from endpoint `endpoint` through the core's script; the outcome.
async fn core_invite(endpoint: &str, headers: Vec<(String, String)>) -> (InviteOutcome, bool) {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = sim(Some(listener.local_addr().unwrap()), dir.path()).await;
    let service = tokio::spawn(core_service(listener, "rec-id"));
    let outcome = running
        .sim
        .invite(Invite {
            endpoint: endpoint.into(),
            headers,
            cancel_at: None,
        })
        .await;
    let delivered = service.await.unwrap();
    tokio::time::timeout(LIMIT, running.sim.idle())
        .await
        .unwrap();
    (outcome, delivered)
}

#[tokio::test]
async fn a_softphone_claiming_another_agent_is_refused() {
    // Endpoint 1002 claims to be agent 1003 in X-Teleforge-Agent: refused, cause 21.
    let (outcome, delivered) = core_invite("1002", softphone_headers("crm-1", "1003", None)).await;
    assert!(delivered);
    assert_eq!(outcome.to_string(), "reject cause=21 reason=invalid_agent");
    // Its From says 1003 as well: the caller ID is the phone's word, the endpoint is not.
    let from = "\"Agent 1003\" <sip:1003@127.0.0.1:5073>;tag=x";
    let (outcome, _) = core_invite("1002", softphone_headers("crm-2", "1003", Some(from))).await;
    assert_eq!(outcome.to_string(), "reject cause=21 reason=invalid_agent");
    // A From naming another agent changes nothing for a phone that claims no one: it dials
    // as its endpoint.
    let mut headers = recorded_headers("0820001234");
    headers.push(("From".into(), from.into()));
    let (outcome, delivered) = core_invite("1002", headers).await;
    assert!(
        delivered && matches!(outcome, InviteOutcome::Dial(_)),
        "{outcome:?}"
    );
    // Naming itself is fine.
    let (outcome, _) = core_invite("1002", softphone_headers("crm-3", "1002", None)).await;
    assert!(matches!(outcome, InviteOutcome::Dial(_)), "{outcome:?}");
    // No endpoint (CHANNEL(endpoint) unset): refused, whatever it claims.
    let (outcome, delivered) = core_invite("", softphone_headers("crm-4", "1002", None)).await;
    assert!(delivered);
    assert_eq!(outcome.to_string(), "reject cause=21 reason=invalid_agent");
}
