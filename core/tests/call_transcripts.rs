//! The call state machine against the recorded Asterisk 22 transcripts: every outcome gives
//! the notification sequence the contract promises, whatever order `OriginateResponse`
//! arrives in.

use click2dial_core::{
    ami::{Decoder, Frame},
    call::{CallTracker, ChannelEvent, Mode},
    json::{Cause, Event},
};

const DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/ami/transcripts"
);

/// A header of the Originate the client sent in the case (`ChannelId`, `ActionID`).
fn originate_header(case: &str, name: &str) -> String {
    let client = std::fs::read_to_string(format!("{DIR}/{case}.client.ami")).expect("client side");
    let originate = client
        .split("\r\n\r\n")
        .find(|m| m.starts_with("Action: Originate"))
        .expect("an Originate");
    originate
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
        .expect("header present")
        .trim()
        .to_string()
}

/// Replays the server side of `case` into a tracker; returns what it produced.
fn replay(case: &str) -> Vec<(Event, Option<Cause>, Option<u16>)> {
    let server = std::fs::read(format!("{DIR}/{case}.ami")).expect("server side");
    replay_bytes(case, &server)
}

/// The server side of `case` with its last two `Hangup` events in the other order: Asterisk
/// sends the two legs' final Hangups in either order (the recorded runs have the callee's
/// first; the real-Asterisk suite sees the agent's first too).
fn with_last_hangups_swapped(case: &str) -> Vec<u8> {
    let server = std::fs::read(format!("{DIR}/{case}.ami")).expect("server side");
    let mut frames: Vec<&[u8]> = Vec::new();
    let mut decoder = Decoder::new();
    let mut at = 0;
    while let Some(decoded) = decoder.decode(&server[at..]).expect("valid AMI") {
        frames.push(&server[at..at + decoded.len]);
        at += decoded.len;
    }
    let hangups: Vec<usize> = (0..frames.len())
        .filter(|&i| frames[i].starts_with(b"Event: Hangup\r\n"))
        .collect();
    let [.., first, second] = hangups[..] else {
        panic!("{case}: two Hangup events");
    };
    frames.swap(first, second);
    frames.concat()
}

/// Replays `server` (the server side of `case`, maybe reordered) into a tracker.
fn replay_bytes(case: &str, server: &[u8]) -> Vec<(Event, Option<Cause>, Option<u16>)> {
    // The recorded client used an ActionID other than the ChannelId; the product sends
    // them equal, so route by either here.
    let id = originate_header(case, "ChannelId");
    let action_id = originate_header(case, "ActionID");
    let mut tracker = CallTracker::new(&id, Mode::TwoLeg, 0).expect("id fits");
    let mut out = Vec::new();
    let mut drain = |tracker: &mut CallTracker| {
        while let Some(p) = tracker.poll_progress() {
            out.push((p.event, p.cause, p.q850));
        }
    };
    drain(&mut tracker);
    let mut decoder = Decoder::new();
    let mut at = 0;
    let mut now = 0;
    while let Some(decoded) = decoder.decode(&server[at..]).expect("valid AMI") {
        at += decoded.len;
        now += 1;
        if let Frame::Message(message) = decoded.frame {
            if let Some((key, event)) = ChannelEvent::from_message(&message) {
                if key == id || key == action_id {
                    tracker.handle_event(now, &event);
                    drain(&mut tracker);
                }
            }
        }
    }
    assert!(tracker.is_finished(), "{case}: the call must be over");
    out
}

use Event::*;

fn normal_start() -> Vec<(Event, Option<Cause>, Option<u16>)> {
    vec![
        (Queued, None, None),
        (AgentRinging, None, None),
        (AgentAnswered, None, None),
    ]
}

fn with(
    mut start: Vec<(Event, Option<Cause>, Option<u16>)>,
    rest: &[(Event, Option<Cause>, Option<u16>)],
) -> Vec<(Event, Option<Cause>, Option<u16>)> {
    start.extend_from_slice(rest);
    start
}

#[test]
fn answered_call() {
    let expected = with(
        normal_start(),
        &[
            (CalleeRinging, None, None),
            (Joined, None, None),
            (Hangup, Some(Cause::NormalClearing), Some(16)),
            (RecordingReady, None, None),
        ],
    );
    assert_eq!(replay("a_success"), expected);
    // Through a Local channel and a pre-dial handler: more channels, same story.
    assert_eq!(replay("a2_success_local_predial"), expected);
}

#[test]
fn agent_does_not_answer() {
    let expected = vec![
        (Queued, None, None),
        (AgentRinging, None, None),
        (Failed, Some(Cause::AgentNoAnswer), Some(19)),
    ];
    assert_eq!(replay("b_agent_noanswer"), expected);
    assert_eq!(replay("earlier-run/b_agent_noanswer"), expected);
}

#[test]
fn agent_busy_despite_originate_reason_0() {
    let expected = vec![
        (Queued, None, None),
        (AgentRinging, None, None),
        (Failed, Some(Cause::AgentBusy), Some(17)),
    ];
    assert_eq!(replay("c_agent_busy"), expected);
    assert_eq!(replay("earlier-run/c_agent_busy"), expected);
}

#[test]
fn callee_busy() {
    assert_eq!(
        replay("d_callee_busy"),
        with(
            normal_start(),
            &[
                (CalleeRinging, None, None),
                (Failed, Some(Cause::CalleeBusy), Some(17)),
                (RecordingReady, None, None),
            ]
        )
    );
}

#[test]
fn callee_not_found() {
    assert_eq!(
        replay("d2_callee_notfound"),
        with(
            normal_start(),
            &[
                (Failed, Some(Cause::CalleeNotFound), Some(1)),
                (RecordingReady, None, None),
            ]
        )
    );
}

#[test]
fn callee_declines() {
    assert_eq!(
        replay("d3_callee_decline"),
        with(
            normal_start(),
            &[
                (CalleeRinging, None, None),
                (Failed, Some(Cause::CalleeRejected), Some(21)),
                (RecordingReady, None, None),
            ]
        )
    );
}

#[test]
fn callee_does_not_answer() {
    assert_eq!(
        replay("d4_callee_noanswer"),
        with(
            normal_start(),
            &[
                (CalleeRinging, None, None),
                (Failed, Some(Cause::CalleeNoAnswer), None),
                (RecordingReady, None, None),
            ]
        )
    );
}

#[test]
fn agent_gives_up_while_callee_rings() {
    assert_eq!(
        replay("d5_agent_hangs_up_while_callee_rings"),
        with(
            normal_start(),
            &[
                (CalleeRinging, None, None),
                (Failed, Some(Cause::AgentHungUp), Some(16)),
                (RecordingReady, None, None),
            ]
        )
    );
}

/// Drives a tracker with hand-made events on a virtual clock.
#[test]
fn the_order_of_the_last_two_hangups_does_not_change_the_outcome() {
    for case in [
        "a_success",
        "d_callee_busy",
        "d2_callee_notfound",
        "d3_callee_decline",
        "d4_callee_noanswer",
        "d5_agent_hangs_up_while_callee_rings",
    ] {
        assert_eq!(
            replay_bytes(case, &with_last_hangups_swapped(case)),
            replay(case),
            "{case}"
        );
    }
}

fn drive(
    mode: Mode,
    events: &[ChannelEvent<'_>],
) -> (CallTracker, Vec<(Event, Option<Cause>, u64)>) {
    let mut tracker = CallTracker::new("c2d-x", mode, 0).expect("fits");
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate() {
        tracker.handle_event(10 * (i as u64 + 1), e);
        while let Some(p) = tracker.poll_progress() {
            out.push((p.event, p.cause, p.at));
        }
    }
    while let Some(p) = tracker.poll_progress() {
        out.push((p.event, p.cause, p.at));
    }
    (tracker, out)
}

#[test]
fn originate_failure_without_any_channel_fails_at_once() {
    let (tracker, out) = drive(
        Mode::TwoLeg,
        &[ChannelEvent::OriginateResponse {
            success: false,
            reason: 0,
        }],
    );
    assert_eq!(
        out,
        vec![
            (Queued, None, 0),
            (Failed, Some(Cause::AgentUnavailable), 10)
        ]
    );
    assert!(tracker.is_finished());
}

/// A lost PBX connection does not end a call at once: its channels may live on, and a new
/// connection's listing says (core's session tests play the recorded one). Unresynchronised
/// for the silence timeout from the loss, it fails once with `pbx_error`, no recording
/// claimed; a second loss does not move the deadline.
#[test]
fn a_lost_call_waits_for_its_listing_then_gives_up_once() {
    let (mut tracker, _) = drive(
        Mode::TwoLeg,
        &[
            ChannelEvent::Newchannel { uniqueid: "c2d-x" },
            ChannelEvent::Newstate {
                uniqueid: "c2d-x",
                state: click2dial_core::ami::ChannelState::Up,
            },
            ChannelEvent::MixMonitorStart,
        ],
    );
    tracker.handle_pbx_lost(500);
    tracker.handle_pbx_lost(600);
    assert!(tracker.is_lost());
    assert_eq!(tracker.poll_progress(), None);
    let deadline = 500 + click2dial_core::call::SILENCE_TIMEOUT_MS;
    assert_eq!(tracker.poll_timeout(), Some(deadline));
    tracker.handle_timeout(deadline - 1);
    assert_eq!(tracker.poll_progress(), None);
    tracker.handle_timeout(deadline);
    let p = tracker.poll_progress().expect("failed");
    assert_eq!(
        (p.event, p.cause, p.at),
        (Failed, Some(Cause::PbxError), deadline)
    );
    assert_eq!(tracker.poll_progress(), None);
    assert!(tracker.is_finished() && !tracker.is_lost());
    // A listing that comes too late changes nothing.
    tracker.handle_resynced(deadline + 1);
    assert_eq!(tracker.poll_progress(), None);
}

/// A call whose channels were gone when the listing came ended unseen, and claimed no
/// recording; the caller then found its file whole: `recording_ready` follows, once. A call
/// the PBX's events ended is not moved by the same call.
#[test]
fn a_call_that_gave_up_says_recording_ready_once_its_file_is_found_whole() {
    let (mut tracker, _) = drive(
        Mode::TwoLeg,
        &[
            ChannelEvent::Newchannel { uniqueid: "c2d-x" },
            ChannelEvent::MixMonitorStart,
        ],
    );
    assert!(!tracker.gave_up());
    tracker.handle_recording_whole(400);
    assert_eq!(tracker.poll_progress(), None, "not over: ignored");
    tracker.handle_pbx_lost(500);
    tracker.handle_recording_whole(550);
    assert_eq!(tracker.poll_progress(), None, "lost: ignored");
    tracker.handle_resynced(600);
    let p = tracker.poll_progress().expect("failed");
    assert_eq!((p.event, p.cause), (Failed, Some(Cause::PbxError)));
    assert_eq!(tracker.poll_progress(), None, "no recording claimed");
    assert!(tracker.gave_up() && tracker.is_finished());
    tracker.handle_recording_whole(700);
    let p = tracker.poll_progress().expect("recording_ready");
    assert_eq!((p.event, p.cause, p.at), (RecordingReady, None, 700));
    tracker.handle_recording_whole(800);
    assert_eq!(tracker.poll_progress(), None, "once");
    assert!(tracker.is_finished());

    let (mut ended, _) = drive(
        Mode::TwoLeg,
        &[ChannelEvent::OriginateResponse {
            success: false,
            reason: 0,
        }],
    );
    assert!(!ended.gave_up());
    ended.handle_recording_whole(900);
    assert_eq!(ended.poll_progress(), None);
}

/// A tracker that was not lost ignores listings: they are for calls a lost connection left.
#[test]
fn listings_are_ignored_unless_lost() {
    let mut tracker = CallTracker::new("c2d-x", Mode::TwoLeg, 0).expect("fits");
    assert_eq!(tracker.poll_progress().map(|p| p.event), Some(Queued));
    tracker.handle_listed(&click2dial_core::call::ListedChannel {
        uniqueid: "c2d-x",
        state: click2dial_core::ami::ChannelState::Up,
        bridge_id: "",
        dialled: false,
    });
    tracker.handle_resynced(10);
    tracker.handle_resync_failed(10);
    assert_eq!(tracker.poll_progress(), None);
    assert!(!tracker.is_finished());
}

#[test]
fn silence_after_queued_times_out() {
    let mut tracker = CallTracker::new("c2d-x", Mode::TwoLeg, 1_000).expect("fits");
    assert_eq!(tracker.poll_progress().map(|p| p.event), Some(Queued));
    let deadline = tracker.poll_timeout().expect("armed");
    assert_eq!(deadline, 1_000 + click2dial_core::call::SILENCE_TIMEOUT_MS);
    tracker.handle_timeout(deadline - 1);
    assert_eq!(tracker.poll_progress(), None);
    tracker.handle_timeout(deadline);
    let p = tracker.poll_progress().expect("failed");
    assert_eq!((p.event, p.cause), (Failed, Some(Cause::PbxError)));
    assert_eq!(tracker.poll_timeout(), None);
    assert!(tracker.is_finished());
}

/// Every state has a deadline (issue 12): a ringing call, a call dialling its other leg,
/// a joined call (the longest call), an ended call whose channels never hang up.
#[test]
fn every_state_has_a_deadline_and_every_tracker_finishes() {
    use click2dial_core::ami::ChannelState::Ringing;
    use click2dial_core::call::{Timeouts, MAX_CALL_MS, SILENCE_TIMEOUT_MS};
    let timeouts = Timeouts::DEFAULT;
    let ringing = [
        ChannelEvent::Newchannel { uniqueid: "c2d-x" },
        ChannelEvent::Newstate {
            uniqueid: "c2d-x",
            state: Ringing,
        },
    ];
    let joined = joined_two_leg_call().to_vec();
    let answered = &joined[..4];
    let mut ended = joined.clone();
    ended.push(ChannelEvent::Hangup {
        uniqueid: "c2d-y",
        cause: 16,
    });
    for (events, last, expect) in [
        (&ringing[..], Failed, Some((Failed, Cause::PbxError))),
        (answered, Failed, Some((Failed, Cause::PbxError))),
        (&joined[..], Joined, Some((Hangup, Cause::PbxError))),
        (&ended[..], Hangup, None),
    ] {
        let mut tracker =
            CallTracker::with_timeouts("c2d-x", Mode::TwoLeg, 0, timeouts).expect("fits");
        for (i, e) in events.iter().enumerate() {
            tracker.handle_event(i as u64 + 1, e);
        }
        let mut seen = Vec::new();
        while let Some(p) = tracker.poll_progress() {
            seen.push(p.event);
        }
        assert!(!tracker.is_finished(), "{events:?}");
        let n = events.len() as u64;
        let deadline = tracker.poll_timeout().expect("every state has a deadline");
        if last == Joined {
            assert_eq!(deadline, MAX_CALL_MS);
            assert_eq!(seen.last(), Some(&Joined));
        } else {
            assert_eq!(deadline, n + SILENCE_TIMEOUT_MS, "{events:?}");
        }
        tracker.handle_timeout(deadline - 1);
        assert_eq!(tracker.poll_progress(), None);
        tracker.handle_timeout(deadline);
        let progress = tracker
            .poll_progress()
            .map(|p| (p.event, p.cause.expect("cause")));
        assert_eq!(progress, expect, "{events:?}");
        assert!(tracker.is_finished(), "{events:?}");
        assert_eq!(tracker.poll_timeout(), None);
    }
}

#[test]
fn single_leg_call_rings_and_joins_the_callee() {
    use click2dial_core::ami::ChannelState::{Ringing, Up};
    let (tracker, out) = drive(
        Mode::SingleLeg,
        &[
            ChannelEvent::Newchannel { uniqueid: "c2d-x" },
            ChannelEvent::Newstate {
                uniqueid: "c2d-x",
                state: Ringing,
            },
            ChannelEvent::Newstate {
                uniqueid: "c2d-x",
                state: Up,
            },
            ChannelEvent::Newchannel { uniqueid: "dest.1" },
            ChannelEvent::DialBegin {
                uniqueid: Some("c2d-x"),
                dest_uniqueid: "dest.1",
            },
            ChannelEvent::BridgeEnter { uniqueid: "dest.1" },
            ChannelEvent::Hangup {
                uniqueid: "c2d-x",
                cause: 16,
            },
            ChannelEvent::Hangup {
                uniqueid: "dest.1",
                cause: 16,
            },
        ],
    );
    let events: Vec<_> = out.iter().map(|(e, c, _)| (*e, *c)).collect();
    assert_eq!(
        events,
        vec![
            (Queued, None),
            (CalleeRinging, None),
            (Joined, None),
            (Hangup, Some(Cause::NormalClearing)),
        ]
    );
    assert!(tracker.is_finished());
}

#[test]
fn single_leg_busy_callee_is_a_callee_cause() {
    let (_, out) = drive(
        Mode::SingleLeg,
        &[
            ChannelEvent::Newchannel { uniqueid: "c2d-x" },
            ChannelEvent::Hangup {
                uniqueid: "c2d-x",
                cause: 17,
            },
        ],
    );
    assert_eq!(
        out.last().map(|(e, c, _)| (*e, *c)),
        Some((Failed, Some(Cause::CalleeBusy)))
    );
}

#[test]
fn events_of_unrelated_channels_change_nothing() {
    let (tracker, out) = drive(
        Mode::TwoLeg,
        &[
            ChannelEvent::Newchannel { uniqueid: "c2d-x" },
            ChannelEvent::Hangup {
                uniqueid: "someone-else",
                cause: 17,
            },
            ChannelEvent::BridgeEnter {
                uniqueid: "someone-else",
            },
        ],
    );
    assert_eq!(out, vec![(Queued, None, 0)]);
    assert!(!tracker.is_finished());
}

#[test]
fn channel_id_longer_than_the_limit_is_refused() {
    let long = "x".repeat(click2dial_core::call::CHANNEL_ID_MAX_LEN + 1);
    assert!(CallTracker::new(&long, Mode::TwoLeg, 0).is_err());
    let max = "x".repeat(click2dial_core::call::CHANNEL_ID_MAX_LEN);
    assert_eq!(
        CallTracker::new(&max, Mode::TwoLeg, 0)
            .expect("fits")
            .channel_id(),
        max
    );
}

/// A two-leg call's events until both legs are bridged: the agent's channel `c2d-x` answers
/// and dials the callee's `c2d-y`, which joins the bridge.
fn joined_two_leg_call() -> [ChannelEvent<'static>; 5] {
    [
        ChannelEvent::Newchannel { uniqueid: "c2d-x" },
        ChannelEvent::Newstate {
            uniqueid: "c2d-x",
            state: click2dial_core::ami::ChannelState::Up,
        },
        ChannelEvent::DialBegin {
            uniqueid: Some("c2d-x"),
            dest_uniqueid: "c2d-y",
        },
        ChannelEvent::Newchannel { uniqueid: "c2d-y" },
        ChannelEvent::BridgeEnter { uniqueid: "c2d-y" },
    ]
}

/// A call says its events in their order ([`Event::sequence`]), each once: steps the PBX
/// shows after a later one was said (here the agent's phone ringing and answering after
/// the callee's rang, an order the fuzzer found) are not said late, so every host that
/// follows the call numbers and orders its notifications alike.
#[test]
fn events_the_pbx_shows_out_of_order_are_not_said_late() {
    use click2dial_core::ami::ChannelState::{Ringing, Up};
    let (_, out) = drive(
        Mode::TwoLeg,
        &[
            ChannelEvent::Newchannel { uniqueid: "c2d-x" },
            ChannelEvent::DialBegin {
                uniqueid: Some("c2d-x"),
                dest_uniqueid: "c2d-y",
            },
            ChannelEvent::Newchannel { uniqueid: "c2d-y" },
            ChannelEvent::Newstate {
                uniqueid: "c2d-y",
                state: Ringing,
            },
            ChannelEvent::Newstate {
                uniqueid: "c2d-x",
                state: Ringing,
            },
            ChannelEvent::Newstate {
                uniqueid: "c2d-x",
                state: Up,
            },
            ChannelEvent::BridgeEnter { uniqueid: "c2d-y" },
        ],
    );
    let said: Vec<Event> = out.iter().map(|(e, _, _)| *e).collect();
    assert_eq!(said, [Event::Queued, Event::CalleeRinging, Event::Joined]);
}

/// Each event's sequence number is its place in a normal call, `hangup` and `failed`
/// sharing theirs: increasing along [`Event::ALL`], which lists them in that order.
#[test]
fn sequence_numbers_follow_the_order_of_a_call() {
    let numbers: Vec<u32> = Event::ALL.iter().map(|e| e.sequence()).collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5, 6, 6, 7]);
}

/// A call created with `max_duration_secs` that the PBX hangs up at that limit ends with
/// cause `max_duration`; one that ends sooner is a normal end.
#[test]
fn a_joined_call_ended_at_its_max_duration_says_so() {
    use click2dial_core::call::{Timeouts, MAX_DURATION_TOLERANCE_MS};
    let joined = joined_two_leg_call();
    let max = 10_000;
    let joined_at = joined.len() as u64;
    for (talked, limit, cause) in [
        (max, Some(max), Cause::MaxDuration),
        (
            max - MAX_DURATION_TOLERANCE_MS,
            Some(max),
            Cause::MaxDuration,
        ),
        (
            max - MAX_DURATION_TOLERANCE_MS - 1,
            Some(max),
            Cause::NormalClearing,
        ),
        (max + 5_000, Some(max), Cause::MaxDuration),
        (max, None, Cause::NormalClearing),
    ] {
        let timeouts = Timeouts {
            max_duration_ms: limit,
            ..Timeouts::DEFAULT
        };
        let mut tracker =
            CallTracker::with_timeouts("c2d-x", Mode::TwoLeg, 0, timeouts).expect("fits");
        for (i, e) in joined.iter().enumerate() {
            tracker.handle_event(i as u64 + 1, e);
        }
        tracker.handle_event(
            joined_at + talked,
            &ChannelEvent::Hangup {
                uniqueid: "c2d-x",
                cause: 16,
            },
        );
        let mut last = None;
        while let Some(p) = tracker.poll_progress() {
            last = Some((p.event, p.cause));
        }
        assert_eq!(
            last,
            Some((Hangup, Some(cause))),
            "{talked} ms, limit {limit:?}"
        );
    }
}
