//! The call state machine in [`Mode::AgentInitiated`] against the AMI streams of the
//! recorded FastAGI calls: the agent's channel (`agi_uniqueid`) dials the callee itself.

use click2dial_core::{
    agi::{Decoder as AgiDecoder, Frame as AgiFrame},
    ami::{Decoder, Frame},
    call::{CallTracker, ChannelEvent, Mode},
    json::{Cause, Event},
};

const AMI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ami/fastagi");
const AGI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/agi");

type Seen = Vec<(Event, Option<Cause>, Option<u16>)>;

/// `agi_uniqueid` from the session's environment.
fn uniqueid(case: &str) -> String {
    let bytes = std::fs::read(format!("{AGI}/{case}.agi")).expect("fixture");
    match AgiDecoder::new()
        .decode(&bytes)
        .expect("valid")
        .expect("complete")
        .frame
    {
        AgiFrame::Environment(env) => env.uniqueid().expect("uniqueid").to_string(),
        other => panic!("{other:?}"),
    }
}

/// Replays `case`'s AMI stream; the tracker is created when `start` says so (the host
/// creates it when the service decides to dial, i.e. during the AGI).
fn replay(
    case: &str,
    id: &str,
    start: impl Fn(&click2dial_core::ami::Message<'_>) -> bool,
) -> (Seen, bool) {
    let server = std::fs::read(format!("{AMI}/{case}.ami")).expect("fixture");
    let mut tracker: Option<CallTracker> = None;
    let mut out = Vec::new();
    let mut decoder = Decoder::new();
    let mut at = 0;
    let mut now = 0;
    while let Some(decoded) = decoder.decode(&server[at..]).expect("valid AMI") {
        at += decoded.len;
        now += 1;
        let Frame::Message(message) = decoded.frame else {
            continue;
        };
        if tracker.is_none() && start(&message) {
            tracker = Some(CallTracker::new(id, Mode::AgentInitiated, now).expect("fits"));
        }
        let Some(t) = tracker.as_mut() else { continue };
        if let Some((key, event)) = ChannelEvent::from_message(&message) {
            if key == id {
                t.handle_event(now, &event);
            }
        }
        while let Some(p) = t.poll_progress() {
            out.push((p.event, p.cause, p.q850));
        }
    }
    let finished = tracker.is_some_and(|t| t.is_finished());
    (out, finished)
}

use Event::*;

fn from_the_start(_: &click2dial_core::ami::Message<'_>) -> bool {
    true
}

/// The moment the service's `SET VARIABLE C2D_DECISION` shows on AMI.
fn at_decision(m: &click2dial_core::ami::Message<'_>) -> bool {
    m.is_event("VarSet") && m.get("Variable") == Some("C2D_DECISION")
}

#[test]
fn dialled_calls_give_callee_ringing_joined_hangup_recording() {
    let expected = vec![
        (Queued, None, None),
        (CalleeRinging, None, None),
        (Joined, None, None),
        (Hangup, Some(Cause::NormalClearing), Some(16)),
        (RecordingReady, None, None),
    ];
    for case in [
        "a_valid_dial",
        "e_slow_service_dial",
        "g_server_full_close_dial",
    ] {
        let id = uniqueid(case);
        for start in [from_the_start, at_decision] {
            let (seen, finished) = replay(case, &id, start);
            assert_eq!(seen, expected, "{case}");
            assert!(finished, "{case}: the call must be over");
        }
    }
}

#[test]
fn a_caller_who_cancels_during_the_agi_is_agent_hung_up() {
    // Had the host decided to dial just before the caller cancelled: the agent's channel
    // hangs up (cause 127) before any DialBegin.
    for case in [
        "d_caller_cancel_service_idle",
        "d2_caller_cancel_during_wait_for_digit",
    ] {
        let (seen, finished) = replay(case, &uniqueid(case), from_the_start);
        assert_eq!(
            seen,
            vec![
                (Queued, None, None),
                (Failed, Some(Cause::AgentHungUp), Some(127))
            ],
            "{case}"
        );
        assert!(finished);
    }
}

#[test]
fn a_rejected_call_the_tracker_followed_fails_with_the_reject_cause() {
    let (seen, finished) = replay(
        "b_reject_invalid_callee",
        &uniqueid("b_reject_invalid_callee"),
        from_the_start,
    );
    assert_eq!(
        seen,
        vec![
            (Queued, None, None),
            (Failed, Some(Cause::AgentHungUp), Some(21))
        ]
    );
    assert!(finished);
}

/// Hand-made events for the outcomes not recorded over FastAGI; same shapes as the REST
/// transcripts (`DialEnd` status, callee `Hangup` cause).
fn drive(events: &[ChannelEvent<'_>]) -> (Seen, bool) {
    let mut tracker = CallTracker::new("1795758224.2", Mode::AgentInitiated, 0).expect("fits");
    assert_eq!(
        tracker.poll_timeout(),
        Some(click2dial_core::call::SILENCE_TIMEOUT_MS)
    );
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate() {
        tracker.handle_event(i as u64 + 1, e);
        while let Some(p) = tracker.poll_progress() {
            out.push((p.event, p.cause, p.q850));
        }
    }
    (out, tracker.is_finished())
}

#[test]
fn callee_failures() {
    use click2dial_core::ami::DialStatus;
    let agent = "1795758224.2";
    let callee = "1795758224.3";
    for (status, cause, expected, q850) in [
        (DialStatus::Busy, 17, Cause::CalleeBusy, Some(17)),
        (DialStatus::NoAnswer, 1, Cause::CalleeNotFound, Some(1)),
        (DialStatus::NoAnswer, 21, Cause::CalleeRejected, Some(21)),
        (DialStatus::NoAnswer, 19, Cause::CalleeNoAnswer, Some(19)),
        (DialStatus::Cancel, 16, Cause::AgentHungUp, Some(16)),
    ] {
        let (seen, finished) = drive(&[
            ChannelEvent::Newchannel { uniqueid: agent },
            ChannelEvent::MixMonitorStart,
            ChannelEvent::Newchannel { uniqueid: callee },
            ChannelEvent::DialBegin {
                uniqueid: Some(agent),
                dest_uniqueid: callee,
            },
            ChannelEvent::DialEnd {
                dest_uniqueid: callee,
                status,
            },
            ChannelEvent::Hangup {
                uniqueid: callee,
                cause,
            },
            ChannelEvent::Hangup {
                uniqueid: agent,
                cause: 16,
            },
        ]);
        assert_eq!(
            seen,
            vec![
                (Queued, None, None),
                (Failed, Some(expected), q850),
                (RecordingReady, None, None)
            ],
            "{status:?}"
        );
        assert!(finished);
    }
    let (seen, finished) = drive(&[
        ChannelEvent::DialBegin {
            uniqueid: Some(agent),
            dest_uniqueid: callee,
        },
        ChannelEvent::DialEnd {
            dest_uniqueid: callee,
            status: DialStatus::ChanUnavail,
        },
        ChannelEvent::Hangup {
            uniqueid: agent,
            cause: 16,
        },
    ]);
    assert_eq!(
        seen,
        vec![
            (Queued, None, None),
            (Failed, Some(Cause::CalleeUnavailable), None)
        ]
    );
    assert!(finished);
}

/// A call the FastAGI service decided to dial whose channel never shows on AMI (issue 12):
/// after the silence it fails with `pbx_error` and the tracker is finished, so its slot goes
/// back.
#[test]
fn a_decided_call_whose_channel_never_shows_fails_and_finishes() {
    use click2dial_core::call::{Timeouts, SILENCE_TIMEOUT_MS};
    let mut tracker =
        CallTracker::with_timeouts("1795758224.2", Mode::AgentInitiated, 7, Timeouts::DEFAULT)
            .expect("fits");
    assert_eq!(
        tracker.poll_progress().map(|p| p.event),
        Some(Event::Queued)
    );
    let deadline = tracker.poll_timeout().expect("armed");
    assert_eq!(deadline, 7 + SILENCE_TIMEOUT_MS);
    tracker.handle_timeout(deadline - 1);
    assert!(!tracker.is_finished());
    tracker.handle_timeout(deadline);
    let p = tracker.poll_progress().expect("failed");
    assert_eq!((p.event, p.cause), (Event::Failed, Some(Cause::PbxError)));
    assert!(tracker.is_finished());
    assert_eq!(tracker.poll_timeout(), None);
}
