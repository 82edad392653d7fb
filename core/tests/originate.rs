//! The Originate every deployment sends for an accepted call.

use click2dial_core::dial::DialControls;
use click2dial_core::originate::{write_originate, CalleeDigits, Dialplan, OriginateCall};

const CALL: OriginateCall<'static> = OriginateCall {
    channel_id: "c2d-oacxmqkrhrsl63ywyav6eykpgq",
    agent: "1001",
    callee: "0820001234",
    callee_e164: "+27820001234",
    outbound_id: "27820009999",
    contact_ref: "crm-42",
    recording_ref: "aaaqeayeaudaocajbifqydiob4",
    single_leg: false,
    controls: DialControls::DEFAULT,
};

fn written(call: &OriginateCall<'_>, dialplan: &Dialplan<'_>) -> String {
    let mut out = [0u8; 2048];
    let n = write_originate(call, dialplan, &mut out).expect("fits");
    String::from_utf8(out[..n].to_vec()).expect("utf-8")
}

#[test]
fn two_leg_call_rings_the_agent_and_carries_the_headers() {
    assert_eq!(
        written(&CALL, &Dialplan::DEFAULT),
        "Action: Originate\r\n\
         ActionID: c2d-oacxmqkrhrsl63ywyav6eykpgq\r\n\
         Channel: PJSIP/1001\r\n\
         Context: c2d-outbound\r\n\
         Exten: 0820001234\r\n\
         Priority: 1\r\n\
         CallerID: 0820001234\r\n\
         Timeout: 20000\r\n\
         Async: true\r\n\
         ChannelId: c2d-oacxmqkrhrsl63ywyav6eykpgq\r\n\
         Variable: C2D_CONTACT_REF=crm-42\r\n\
         Variable: C2D_RECORDING_REF=aaaqeayeaudaocajbifqydiob4\r\n\
         Variable: C2D_OUTBOUND_ID=27820009999\r\n\
         Variable: C2D_CALLEE=0820001234\r\n\
         Variable: PJSIP_HEADER(add,X-Teleforge-Agent)=1001\r\n\
         Variable: PJSIP_HEADER(add,X-Teleforge-Callee)=0820001234\r\n\
         Variable: PJSIP_HEADER(add,X-Teleforge-Outbound-Id)=27820009999\r\n\
         Variable: PJSIP_HEADER(add,X-Teleforge-Contact-Ref)=crm-42\r\n\
         Variable: PJSIP_HEADER(add,X-Teleforge-Recording-Ref)=aaaqeayeaudaocajbifqydiob4\r\n\r\n"
    );
}

#[test]
fn e164_digits_are_dialled_without_plus() {
    let dialplan = Dialplan {
        callee_digits: CalleeDigits::E164,
        ..Dialplan::DEFAULT
    };
    let text = written(&CALL, &dialplan);
    assert!(text.contains("Exten: 27820001234\r\n"), "{text}");
    assert!(
        text.contains("X-Teleforge-Callee)=27820001234\r\n"),
        "{text}"
    );
    let without_plus = OriginateCall {
        callee_e164: "27820001234",
        ..CALL
    };
    assert_eq!(written(&without_plus, &dialplan), text);
}

/// The one-leg Originate: the callee through `Local/<callee>@c2d-single`, with the `C2D_*`
/// variables only (no `PJSIP_HEADER` on a Local channel: Asterisk logs an `ERROR` for each).
const ONE_LEG: &str = "Action: Originate\r\n\
     ActionID: c2d-oacxmqkrhrsl63ywyav6eykpgq\r\n\
     Channel: Local/0820001234@c2d-single\r\n\
     Context: c2d-direct\r\n\
     Exten: s\r\n\
     Priority: 1\r\n\
     CallerID: 27820009999\r\n\
     Timeout: 20000\r\n\
     Async: true\r\n\
     ChannelId: c2d-oacxmqkrhrsl63ywyav6eykpgq\r\n\
     Variable: C2D_CONTACT_REF=crm-42\r\n\
     Variable: C2D_RECORDING_REF=aaaqeayeaudaocajbifqydiob4\r\n\
     Variable: C2D_OUTBOUND_ID=27820009999\r\n\
     Variable: C2D_CALLEE=0820001234\r\n\r\n";

const ONE_LEG_CALL: OriginateCall<'static> = OriginateCall {
    agent: "0820001234",
    single_leg: true,
    ..CALL
};

#[test]
fn one_leg_call_rings_the_callee_with_the_caller_id_and_no_pjsip_headers() {
    assert_eq!(written(&ONE_LEG_CALL, &Dialplan::DEFAULT), ONE_LEG);
}

#[test]
fn pjsip_headers_follow_the_originated_channels_technology() {
    // A one-leg call straight to a PJSIP channel (any case) carries the headers, after the
    // same `C2D_*` variables.
    let headers = "Variable: PJSIP_HEADER(add,X-Teleforge-Agent)=0820001234\r\n\
         Variable: PJSIP_HEADER(add,X-Teleforge-Callee)=0820001234\r\n\
         Variable: PJSIP_HEADER(add,X-Teleforge-Outbound-Id)=27820009999\r\n\
         Variable: PJSIP_HEADER(add,X-Teleforge-Contact-Ref)=crm-42\r\n\
         Variable: PJSIP_HEADER(add,X-Teleforge-Recording-Ref)=aaaqeayeaudaocajbifqydiob4\r\n\r\n";
    for (direct_channel, channel) in [
        ("PJSIP/{callee}@carrier", "PJSIP/0820001234@carrier"),
        ("pjsip/{callee}@carrier", "pjsip/0820001234@carrier"),
        ("{callee}", "PJSIP/0820001234"),
    ] {
        let dialplan = Dialplan {
            direct_channel,
            ..Dialplan::DEFAULT
        };
        let expected = ONE_LEG
            .replace(
                "Channel: Local/0820001234@c2d-single\r\n",
                &format!("Channel: {channel}\r\n"),
            )
            .replace("C2D_CALLEE=0820001234\r\n\r\n", "C2D_CALLEE=0820001234\r\n")
            + headers;
        assert_eq!(
            written(&ONE_LEG_CALL, &dialplan),
            expected,
            "{direct_channel}"
        );
    }
    // An agent reached through another technology gets no header variables either.
    for agent_tech in ["Local", "SIP", "IAX2", "PJSIPX"] {
        let dialplan = Dialplan {
            agent_tech,
            ..Dialplan::DEFAULT
        };
        let text = written(&CALL, &dialplan);
        assert!(
            text.contains(&format!("Channel: {agent_tech}/1001\r\n")),
            "{text}"
        );
        assert!(
            text.ends_with("Variable: C2D_CALLEE=0820001234\r\n\r\n"),
            "{text}"
        );
        assert!(!text.contains("PJSIP_HEADER"), "{text}");
    }
    let dialplan = Dialplan {
        agent_tech: "pjsip",
        ..Dialplan::DEFAULT
    };
    assert_eq!(
        written(&CALL, &dialplan)
            .matches("PJSIP_HEADER(add,")
            .count(),
        5
    );
}

#[test]
fn an_oversized_direct_channel_is_an_error_not_a_truncation() {
    let long = format!("PJSIP/{}{{callee}}", "x".repeat(200));
    let dialplan = Dialplan {
        direct_channel: &long,
        ..Dialplan::DEFAULT
    };
    let call = OriginateCall {
        single_leg: true,
        ..CALL
    };
    assert!(write_originate(&call, &dialplan, &mut [0u8; 4096]).is_err());
    assert!(write_originate(&CALL, &Dialplan::DEFAULT, &mut [0u8; 64]).is_err());
}

/// Dial controls reach Asterisk: the agent's ring limit is the Originate's `Timeout`; the
/// callee's ring limit, the call's longest duration and "do not record" are `C2D_*` variables
/// that the kit's dialplan reads (`[c2d-settings]`, `[c2d-dial]`), before the headers.
#[test]
fn dial_controls_reach_the_originate() {
    let call = OriginateCall {
        controls: DialControls {
            agent_ring_timeout_secs: Some(7),
            callee_ring_timeout_secs: Some(45),
            max_duration_secs: Some(600),
            record: false,
        },
        ..CALL
    };
    let text = written(&call, &Dialplan::DEFAULT);
    assert!(text.contains("Timeout: 7000\r\n"), "{text}");
    assert!(
        text.contains(
            "Variable: C2D_CALLEE=0820001234\r\n\
             Variable: C2D_CALLEE_RING_SECS=45\r\n\
             Variable: C2D_MAX_DURATION_SECS=600\r\n\
             Variable: C2D_RECORD=no\r\n\
             Variable: PJSIP_HEADER(add,X-Teleforge-Agent)=1001\r\n"
        ),
        "{text}"
    );
    // A one-leg call rings only the callee: its limit is the Originate's Timeout.
    let one_leg = OriginateCall {
        agent: "0820001234",
        single_leg: true,
        ..call
    };
    let text = written(&one_leg, &Dialplan::DEFAULT);
    assert!(text.contains("Timeout: 45000\r\n"), "{text}");
    assert!(text.contains("Variable: C2D_RECORD=no\r\n"), "{text}");
    assert!(!text.contains("PJSIP_HEADER"), "{text}");
}

#[test]
fn only_given_controls_are_sent() {
    let call = OriginateCall {
        controls: DialControls {
            max_duration_secs: Some(10),
            ..DialControls::DEFAULT
        },
        ..CALL
    };
    let text = written(&call, &Dialplan::DEFAULT);
    assert!(text.contains("Timeout: 20000\r\n"), "{text}");
    assert!(text.contains("C2D_MAX_DURATION_SECS=10\r\n"), "{text}");
    assert!(!text.contains("C2D_CALLEE_RING_SECS"), "{text}");
    assert!(!text.contains("C2D_RECORD="), "{text}");
}
