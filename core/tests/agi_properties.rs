//! Property tests: no bytes from a FastAGI peer make the codec or the script panic, every
//! command the writers accept is one line that Asterisk splits back into its arguments, and
//! no header makes a call's agent anything but the caller's PJSIP endpoint.

use click2dial_core::agi::{
    Command, Decision, Decoder, Header, Headers, Script, ScriptEvent, MAX_COMMAND_LEN,
};
use click2dial_core::{DialPolicy, ErrorCode, Validators};
use proptest::prelude::*;

/// Bytes shaped like AGI often enough to reach deep states.
fn agi_like() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"agi_uniqueid: 1.2\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"HANGUP\n".to_vec()),
        Just(b"200 result=1 (0820001234)\n".to_vec()),
        Just(b"200 result=1 (1002)\n".to_vec()),
        Just(b"200 result=0\n".to_vec()),
        Just(b"520-x\n".to_vec()),
        Just(b"520 End\n".to_vec()),
        Just(b"511 dead\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..12),
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

/// Asterisk's argument splitting (quotes group, no escapes needed for sendable values).
fn split(line: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any {
                    args.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        args.push(cur);
    }
    args
}

proptest! {
    #[test]
    fn decoder_never_panics(bytes in prop_oneof![agi_like(), proptest::collection::vec(any::<u8>(), 0..600)]) {
        let mut decoder = Decoder::new();
        let mut at = 0;
        while let Ok(Some(d)) = decoder.decode(&bytes[at..]) {
            prop_assert!(d.len > 0 && at + d.len <= bytes.len());
            at += d.len;
        }
    }

    #[test]
    fn script_never_panics(bytes in agi_like(), step in 1usize..40) {
        let validators = Validators::new().expect("tables");
        let mut script = Script::new();
        let mut out = [0u8; MAX_COMMAND_LEN];
        let mut inbox = Vec::new();
        for chunk in bytes.chunks(step) {
            inbox.extend_from_slice(chunk);
            let Ok(used) = script.handle_input(&inbox) else { break };
            inbox.drain(..used);
            while let Some(event) = script.poll_event() {
                if event == ScriptEvent::Decide {
                    let headers = *script.headers();
                    let decision: Decision<'_> = match headers.validate(&validators, &DialPolicy::SOUTH_AFRICA) {
                        Ok(_) => Decision::Reject { code: click2dial_core::ErrorCode::Internal, cause: 255 },
                        Err(r) => r.into(),
                    };
                    prop_assert!(script.decide(&decision).is_ok());
                }
            }
            let _ = script.poll_transmit(&mut out);
        }
    }

    #[test]
    fn accepted_commands_split_back(name in "[ -~]{0,20}", value in "\\PC{0,40}") {
        let mut out = [0u8; MAX_COMMAND_LEN];
        let command = Command::SetVariable { name: &name, value: &value };
        if let Ok(n) = command.write(&mut out) {
            let line = std::str::from_utf8(&out[..n]).expect("utf-8");
            prop_assert!(line.ends_with('\n'));
            prop_assert_eq!(line.matches('\n').count(), 1);
            let args = split(line.trim_end_matches('\n'));
            prop_assert_eq!(args, vec!["SET".to_string(), "VARIABLE".into(), name.clone(), value.clone()]);
        } else {
            prop_assert!(!click2dial_core::agi::is_sendable(&name) || !click2dial_core::agi::is_sendable(&value));
        }
    }

    #[test]
    fn the_agent_is_always_the_endpoint(
        endpoint in proptest::option::of("[0-9]{0,5}|[a-z ]{0,5}"),
        claimed in proptest::option::of("[0-9]{0,5}"),
    ) {
        let validators = Validators::new().expect("tables");
        let headers = Headers::new()
            .with(Header::Endpoint, endpoint.as_deref())
            .with(Header::Callee, Some("0820001234"))
            .with(Header::OutboundId, Some("27820001234"))
            .with(Header::Agent, claimed.as_deref());
        let endpoint = endpoint.as_deref().filter(|e| !e.is_empty());
        let claimed = claimed.as_deref().filter(|c| !c.is_empty());
        match headers.validate(&validators, &DialPolicy::SOUTH_AFRICA) {
            Ok(valid) => {
                prop_assert_eq!(Some(valid.agent), endpoint);
                prop_assert!(claimed.is_none() || claimed == endpoint);
            }
            Err(rejection) => {
                if endpoint.is_none() || (claimed.is_some() && claimed != endpoint) {
                    prop_assert_eq!(rejection.error.code, ErrorCode::InvalidAgent);
                    prop_assert_eq!(rejection.cause, 21);
                }
            }
        }
    }
}
