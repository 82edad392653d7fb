//! A hostile or broken peer: oversized messages, no empty line, binary junk, lines without
//! a colon. The decoder must answer "incomplete" or "invalid", never panic, never consume
//! more than it was given, and never need more than `MAX_MESSAGE_LEN` bytes of buffer; and
//! the writers must never let a value add a header or a variable.

use click2dial_core::ami::{
    Action, Channel, DecodeError, Decoder, Frame, Kind, Message, Originate, MAX_MESSAGE_LEN,
};
use proptest::prelude::*;

const BANNER: &[u8] = b"Asterisk Call Manager/11.0.0\r\n";

/// Decodes `bytes` in one piece until incomplete or invalid; returns the frames' lengths
/// and how it ended.
fn run(decoder: &mut Decoder, bytes: &[u8]) -> (Vec<usize>, Result<(), DecodeError>) {
    let mut at = 0;
    let mut lens = Vec::new();
    loop {
        match decoder.decode(&bytes[at..]) {
            Ok(Some(d)) => {
                assert!(d.len >= 2 && d.len <= MAX_MESSAGE_LEN && d.len <= bytes.len() - at);
                if let Frame::Message(m) = d.frame {
                    touch(&m);
                }
                lens.push(d.len);
                at += d.len;
            }
            Ok(None) => return (lens, Ok(())),
            Err(e) => return (lens, Err(e)),
        }
    }
}

/// Calls every accessor; any panic fails the test.
fn touch(m: &Message<'_>) {
    let _ = (
        m.kind(),
        m.event(),
        m.response(),
        m.action_id(),
        m.message(),
    );
    let _ = (m.channel(), m.uniqueid(), m.linkedid(), m.channel_state());
    let _ = (m.dest_channel(), m.dest_uniqueid(), m.dest_linkedid());
    let _ = (
        m.dest_channel_state(),
        m.dial_status(),
        m.cause(),
        m.cause_txt(),
    );
    let _ = (
        m.tech_cause(),
        m.reason(),
        m.bridge_uniqueid(),
        m.skipped_lines(),
    );
    let _ = m.chan_variables().count() + m.dest_chan_variables().count();
    let _ = m.chan_variables_with("LocalOneChanVariable").count();
    let _ = m.chan_variable("C2D_CONTACT_REF");
    let _ = m.get_all("ChanVariable").count();
    for h in m.headers().take(64) {
        assert!(!h.key.is_empty());
        assert_eq!(h.key.trim(), h.key);
        assert_eq!(h.value.trim_ascii(), h.value);
        let _ = m.get(h.key);
    }
    let _ = format!("{m:?}");
}

#[test]
fn oversized_message_is_invalid_at_the_limit() {
    let mut stream = BANNER.to_vec();
    stream.extend(std::iter::repeat_n(b"Key: value\r\n".as_slice(), 1000).flatten());
    let mut decoder = Decoder::new();
    let (lens, end) = run(&mut decoder, &stream);
    assert_eq!(lens, [BANNER.len()]);
    assert_eq!(end, Err(DecodeError::MessageTooLarge));
    // One byte short of the limit is still only incomplete.
    let mut decoder = Decoder::new();
    let (_, end) = run(&mut decoder, &stream[..BANNER.len() + MAX_MESSAGE_LEN - 1]);
    assert_eq!(end, Ok(()));
}

#[test]
fn no_empty_line_stays_incomplete_until_the_limit() {
    let mut decoder = Decoder::without_banner();
    let line = b"Event: Hangup\r\n".repeat(100);
    assert_eq!(decoder.decode(&line), Ok(None));
    let mut lf_only = b"Event: Hangup\n\n".repeat(100);
    assert_eq!(
        decoder.decode(&lf_only),
        Ok(None),
        "bare LF never ends a message"
    );
    lf_only.resize(MAX_MESSAGE_LEN, b'\n');
    assert_eq!(decoder.decode(&lf_only), Err(DecodeError::MessageTooLarge));
}

#[test]
fn binary_junk_never_panics() {
    let mut junk = Vec::with_capacity(3 * MAX_MESSAGE_LEN);
    let mut x: u32 = 0x1234_5678;
    for _ in 0..3 * MAX_MESSAGE_LEN {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        junk.push(x.to_le_bytes()[0]);
    }
    assert_eq!(run(&mut Decoder::new(), &junk).1, Err(DecodeError::NotAmi));
    let mut stream = BANNER.to_vec();
    stream.extend_from_slice(&junk);
    let (lens, _) = run(&mut Decoder::new(), &stream);
    assert_eq!(lens[0], BANNER.len());
}

#[test]
fn a_wrong_banner_is_invalid_as_soon_as_it_differs() {
    for stream in [
        &b"SSH-2.0-OpenSSH_9.6\r\n"[..],
        b"HTTP/1.1 400",
        b"asterisk call manager/1",
    ] {
        assert_eq!(Decoder::new().decode(stream), Err(DecodeError::NotAmi));
    }
}

#[test]
fn a_line_without_colon_is_skipped_not_fatal() {
    let stream = b"Event: Hangup\r\nthis line has no colon\r\nUniqueid: u1\r\n\xff\xfe: x\r\nCause: 17\r\n\r\n";
    let d = Decoder::without_banner()
        .decode(stream)
        .expect("valid framing")
        .expect("complete");
    let Frame::Message(m) = d.frame else {
        panic!("message")
    };
    assert_eq!(d.len, stream.len());
    assert_eq!(m.kind(), Kind::Event("Hangup"));
    assert_eq!((m.uniqueid(), m.cause()), (Some("u1"), Some(17)));
    assert_eq!(m.skipped_lines(), 2);
}

#[test]
fn a_crlf_in_a_peer_value_cannot_forge_a_header_in_the_same_line() {
    // A bare LF (as in the recorded `…149\n`) stays inside its value.
    let m =
        Message::new(b"Event: Newchannel\r\nCallerIDName: Bob\nUniqueid: forged\r\nUniqueid: real");
    assert_eq!(m.uniqueid(), Some("real"));
    assert_eq!(m.get("CallerIDName"), Some("Bob\nUniqueid: forged"));
}

fn stream_bytes() -> impl Strategy<Value = Vec<u8>> {
    // Mostly the bytes that matter to the framing, so the interesting paths are hit often.
    let byte = prop_oneof![
        4 => prop::sample::select(b"\r\n:= ()abcXY".to_vec()),
        1 => any::<u8>(),
    ];
    prop::collection::vec(byte, 0..1200)
}

/// Mostly printable ASCII (so most actions are accepted and read back), sometimes anything.
fn field() -> impl Strategy<Value = String> {
    prop_oneof![6 => "[ -~]{1,40}", 1 => ".{0,40}"]
}

fn variable_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Z_]{1,16}",
        "PJSIP_HEADER\\(add,X-[A-Za-z-]{1,16}\\)",
        "[A-Za-z_(),\\[\\] =\"\\\\\r\n-]{0,24}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..MAX_MESSAGE_LEN + 64)) {
        let _ = run(&mut Decoder::new(), &bytes);
        let _ = run(&mut Decoder::without_banner(), &bytes);
        let mut with_banner = BANNER.to_vec();
        with_banner.extend_from_slice(&bytes);
        let _ = run(&mut Decoder::new(), &with_banner);
        touch(&Message::new(&bytes));
    }

    #[test]
    fn chunked_feeding_matches_one_piece(
        bytes in stream_bytes(),
        cuts in prop::collection::vec(1usize..200, 1..20),
    ) {
        let mut stream = BANNER.to_vec();
        stream.extend_from_slice(&bytes);
        let (whole, whole_end) = run(&mut Decoder::new(), &stream);

        let mut decoder = Decoder::new();
        let mut pending = Vec::new();
        let mut lens = Vec::new();
        let mut end = Ok(());
        let mut fed = 0;
        'feed: for &cut in cuts.iter().cycle() {
            if fed == stream.len() {
                break;
            }
            let next = (fed + cut).min(stream.len());
            pending.extend_from_slice(&stream[fed..next]);
            fed = next;
            loop {
                match decoder.decode(&pending) {
                    Ok(Some(d)) => {
                        lens.push(d.len);
                        pending.drain(..d.len);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        end = Err(e);
                        break 'feed;
                    }
                }
            }
        }
        prop_assert_eq!(lens, whole);
        prop_assert_eq!(end, whole_end);
    }

    #[test]
    fn any_accepted_originate_reads_back_as_written(
        action_id in field(),
        resource in field(),
        exten in field(),
        caller_id in proptest::option::of(field()),
        name in variable_name(),
        value in prop_oneof![3 => "[a-z0-9.:~_-]{0,40}", 2 => "[ -~]{0,40}", 1 => ".{0,40}"],
    ) {
        let vars = [(name.as_str(), value.as_str())];
        let originate = Originate {
            action_id: &action_id,
            channel: Channel { tech: "PJSIP", resource: &resource },
            context: "c2d-outbound",
            exten: &exten,
            priority: 1,
            caller_id: caller_id.as_deref(),
            timeout_ms: Some(20000),
            channel_id: Some("c2d-1"),
            other_channel_id: None,
            variables: &vars,
        };
        let mut buf = [0u8; 4096];
        let Ok(n) = originate.write(&mut buf) else {
            // Refused: fine, as long as nothing with a line break was accepted.
            return Ok(());
        };
        for text in [&action_id, &resource, &exten, &name, &value] {
            prop_assert!(!text.contains(['\r', '\n']));
        }
        let d = Decoder::without_banner().decode(&buf[..n]).unwrap().unwrap();
        prop_assert_eq!(d.len, n, "exactly one message");
        let Frame::Message(m) = d.frame else { unreachable!() };
        let expected_headers = 10 + usize::from(caller_id.is_some());
        prop_assert_eq!(m.headers().count(), expected_headers);
        prop_assert_eq!(m.skipped_lines(), 0);
        // Values read back trimmed of blanks, as Asterisk reads them.
        let blank = |s: &str| s.trim_matches(' ').to_owned();
        prop_assert_eq!(m.action_id().map(blank), Some(blank(&action_id)));
        prop_assert_eq!(m.get("Exten").map(blank), Some(blank(&exten)));
        prop_assert_eq!(m.get("CallerID").map(blank), caller_id.as_deref().map(blank));
        // Asterisk splits Variable values on commas outside brackets and drops quotes and
        // backslashes: none of that may apply to an accepted variable.
        let line = m.get("Variable").unwrap();
        prop_assert!(!value.contains([',', '"', '\\']));
        prop_assert!(!name.contains(['"', '\\', '=', ' ']));
        let written = format!("{name}={value}");
        prop_assert_eq!(line, written.trim_matches(' '));
    }
}
