//! Fuzzes one FastAGI session of `click2dial-core` with arbitrary bytes from "Asterisk": the
//! environment, replies and `HANGUP` lines the service reads, fed in chunks whose size comes
//! from the input. The core must never panic, and the script must keep its promises: it
//! consumes no more than it is given, every command it sends is one sendable line, a decision
//! is only asked for once, a dialled call's agent is the caller's PJSIP endpoint (never
//! another agent a header claims), and a finished session asks for nothing more.
//!
//! The seeds are the recorded Asterisk 22 sessions (`core/tests/fixtures/agi/*.agi`); those
//! from `h_` on answer the commands of the current script (endpoint first), the older ones
//! still show every reply shape.
#![no_main]

use std::sync::OnceLock;

use click2dial_core::agi::{Decision, Dial, Script, ScriptEvent, MAX_COMMAND_LEN};
use click2dial_core::{DialPolicy, Validators};
use libfuzzer_sys::fuzz_target;

fn validators() -> &'static Validators {
    static V: OnceLock<Validators> = OnceLock::new();
    V.get_or_init(|| Validators::new().expect("embedded DFAs load"))
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the chunk size (1..=256), the rest is what Asterisk sends.
    let Some((&chunk, input)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk) + 1;
    let mut script = Script::new();
    let mut out = [0u8; MAX_COMMAND_LEN];
    let mut pending: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut decisions = 0;
    loop {
        while let Some(n) = script
            .poll_transmit(&mut out)
            .expect("a command fits MAX_COMMAND_LEN")
        {
            let line = &out[..n];
            assert!(line.ends_with(b"\n"), "{line:?}");
            let body = &line[..n - 1];
            assert!(!body.contains(&b'\n') && !body.contains(&b'\r'), "{line:?}");
            assert!(!body.is_empty());
        }
        match script.poll_event() {
            Some(ScriptEvent::Decide) => {
                decisions += 1;
                assert_eq!(decisions, 1, "one decision per session");
                let headers = *script.headers();
                let result = match headers.validate(validators(), &DialPolicy::SOUTH_AFRICA) {
                    Ok(valid) => {
                        // Only an identified endpoint places calls, and only in its own name.
                        let endpoint = headers.endpoint().expect("a dialled call has an endpoint");
                        assert_eq!(valid.agent, endpoint);
                        assert!(headers.claimed_agent().is_none_or(|a| a == endpoint));
                        let call = valid.assign_references(&[7; 32]);
                        script.decide(&Decision::Dial(Dial::for_call(&call)))
                    }
                    Err(rejection) => script.decide(&rejection.into()),
                };
                // A validated call's values are all sendable.
                result.expect("the decision can be sent");
                continue;
            }
            Some(ScriptEvent::HungUp) => continue,
            Some(ScriptEvent::Close) => {
                assert!(script.is_done());
                assert_eq!(script.poll_event(), None);
                return;
            }
            None => {}
        }
        match script.handle_input(&pending) {
            Ok(0) => {}
            Ok(used) => {
                assert!(used <= pending.len());
                pending.drain(..used);
                continue;
            }
            Err(_) => return, // Not AGI: the service closes the session.
        }
        if fed >= input.len() {
            return; // Asterisk has nothing more to say.
        }
        let end = (fed + chunk).min(input.len());
        pending.extend_from_slice(&input[fed..end]);
        fed = end;
    }
});
