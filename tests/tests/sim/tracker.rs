//! The core call state machine fed by the simulator: for every outcome, an Originate written
//! by the core's own writer (one `Variable` line per variable, as the product sends it) to
//! numbers that the default outcome rules map to that outcome gives the notification sequence
//! the contract promises, the same sequence the recorded transcript of that outcome gives, and
//! a complete recording whenever the agent answered.

use std::time::Instant;

use crate::support::{config, connect, login, next, start, FAST};
use click2dial_core::ami::{Action, Channel, Decoder, Frame, Message, Originate};
use click2dial_core::call::{CallTracker, ChannelEvent, Mode};
use click2dial_core::json::{Cause, Event};
use click2dial_tests::ami_client::AmiClient;
use click2dial_tests::pbx_sim::Outcome;
use click2dial_tests::transcript::{self, Case};

type Note = (Event, Option<Cause>, Option<u16>);

/// Feeds one frame to the tracker when it belongs to the call `id`; drains the outputs.
fn feed(tracker: &mut CallTracker, id: &str, now: u64, frame: &[u8], out: &mut Vec<Note>) {
    let body = frame.strip_suffix(b"\r\n\r\n").unwrap_or(frame);
    if let Some((key, event)) = ChannelEvent::from_message(&Message::new(body)) {
        if key == id {
            tracker.handle_event(now, &event);
        }
    }
    while let Some(p) = tracker.poll_progress() {
        out.push((p.event, p.cause, p.q850));
    }
}

/// The notifications of the recorded call of `case`, replayed through the tracker.
fn recorded(case: Case, channel_id: &str) -> Vec<Note> {
    let mut tracker = CallTracker::new(channel_id, Mode::TwoLeg, 0).unwrap();
    let mut out = Vec::new();
    for (i, frame) in case.frames().iter().enumerate() {
        feed(&mut tracker, channel_id, i as u64, frame.bytes, &mut out);
    }
    assert!(tracker.is_finished(), "{}", case.name);
    out
}

/// The notifications of one simulated call, and the recording file if one was written.
async fn simulated(client: &mut AmiClient, id: &str, agent: &str, callee: &str) -> Vec<Note> {
    let recording = format!("rec-{id}");
    let variables = [
        ("C2D_CONTACT_REF", "crm-42"),
        ("C2D_RECORDING_REF", recording.as_str()),
        ("C2D_OUTBOUND_ID", "27820001234"),
        ("PJSIP_HEADER(add,X-Teleforge-Callee)", callee),
        ("PJSIP_HEADER(add,X-Teleforge-Contact-Ref)", "crm-42"),
    ];
    let originate = Originate {
        action_id: id,
        channel: Channel::pjsip(agent),
        context: "c2d-outbound",
        exten: callee,
        priority: 1,
        // What the agent's phone shows: the number being called.
        caller_id: Some(callee),
        timeout_ms: Some(20_000),
        channel_id: Some(id),
        other_channel_id: None,
        variables: &variables,
    };
    let mut buf = [0u8; 2048];
    let n = originate.write(&mut buf).unwrap();
    client.send(&buf[..n]).await.unwrap();
    let started = Instant::now();
    let mut tracker = CallTracker::new(id, Mode::TwoLeg, 0).unwrap();
    let mut out = Vec::new();
    feed(&mut tracker, id, 0, b"", &mut out);
    let ack = next(client).await;
    assert!(
        ack.starts_with(b"Response: Success\r\n")
            && transcript::header(&ack, "Message") == Some("Originate successfully queued"),
        "{}",
        String::from_utf8_lossy(&ack)
    );
    while !tracker.is_finished() {
        let frame = next(client).await;
        let now = started.elapsed().as_millis() as u64;
        feed(&mut tracker, id, now, &frame, &mut out);
    }
    out
}

use Event::*;

fn expected(outcome: Outcome) -> Vec<Note> {
    let start = vec![
        (Queued, None, None),
        (AgentRinging, None, None),
        (AgentAnswered, None, None),
    ];
    let with = |rest: &[Note]| {
        let mut v = start.clone();
        v.extend_from_slice(rest);
        v
    };
    let ready = (RecordingReady, None, None);
    match outcome {
        Outcome::Answered => with(&[
            (CalleeRinging, None, None),
            (Joined, None, None),
            (Hangup, Some(Cause::NormalClearing), Some(16)),
            ready,
        ]),
        Outcome::AgentNoAnswer => vec![
            (Queued, None, None),
            (AgentRinging, None, None),
            (Failed, Some(Cause::AgentNoAnswer), Some(19)),
        ],
        Outcome::AgentBusy => vec![
            (Queued, None, None),
            (AgentRinging, None, None),
            (Failed, Some(Cause::AgentBusy), Some(17)),
        ],
        Outcome::AgentUnavailable => vec![
            (Queued, None, None),
            (Failed, Some(Cause::AgentUnavailable), None),
        ],
        Outcome::CalleeBusy => with(&[
            (CalleeRinging, None, None),
            (Failed, Some(Cause::CalleeBusy), Some(17)),
            ready,
        ]),
        Outcome::CalleeNotFound => with(&[(Failed, Some(Cause::CalleeNotFound), Some(1)), ready]),
        Outcome::CalleeDeclines => with(&[
            (CalleeRinging, None, None),
            (Failed, Some(Cause::CalleeRejected), Some(21)),
            ready,
        ]),
        Outcome::CalleeNoAnswer => with(&[
            (CalleeRinging, None, None),
            (Failed, Some(Cause::CalleeNoAnswer), None),
            ready,
        ]),
        Outcome::AgentHangsUp => with(&[
            (CalleeRinging, None, None),
            (Failed, Some(Cause::AgentHungUp), Some(16)),
            ready,
        ]),
    }
}

/// Agent, callee, and the recorded case, for each outcome under the default rules.
fn table() -> Vec<(Outcome, &'static str, &'static str, Option<Case>)> {
    use transcript::*;
    vec![
        (Outcome::Answered, "1001", "0820001234", Some(A_SUCCESS)),
        (
            Outcome::AgentNoAnswer,
            "1408",
            "0820001234",
            Some(B_AGENT_NOANSWER),
        ),
        (Outcome::AgentBusy, "1486", "0820001234", Some(C_AGENT_BUSY)),
        (Outcome::AgentUnavailable, "1404", "0820001234", None),
        (Outcome::AgentUnavailable, "1503", "27820001234", None),
        (
            Outcome::CalleeBusy,
            "1001",
            "0820000486",
            Some(D_CALLEE_BUSY),
        ),
        (
            Outcome::CalleeNotFound,
            "1001",
            "0820000404",
            Some(D2_CALLEE_NOTFOUND),
        ),
        (
            Outcome::CalleeDeclines,
            "1001",
            "27820000603",
            Some(D3_CALLEE_DECLINE),
        ),
        (
            Outcome::CalleeNoAnswer,
            "1001",
            "0820000408",
            Some(D4_CALLEE_NOANSWER),
        ),
        (
            Outcome::AgentHangsUp,
            "1001",
            "0820000487",
            Some(D5_AGENT_HANGS_UP),
        ),
    ]
}

fn channel_id_of(case: Case) -> String {
    let originate = case
        .actions()
        .into_iter()
        .find(|a| transcript::header(a, "Action") == Some("Originate"))
        .unwrap();
    transcript::header(originate, "ChannelId")
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn every_outcome_notifies_like_its_recording() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(config(dir.path(), FAST, &[])).await;
    let mut client = connect(running.addr).await;
    login(&mut client).await;
    for (i, (outcome, agent, callee, case)) in table().into_iter().enumerate() {
        let id = format!("c2d-{i}-{}", outcome.name());
        let got = simulated(&mut client, &id, agent, callee).await;
        assert_eq!(got, expected(outcome), "{outcome} ({agent} → {callee})");
        if let Some(case) = case {
            assert_eq!(
                got,
                recorded(case, &channel_id_of(case)),
                "{outcome}: simulator and {} notify alike",
                case.name
            );
        }
        // Wait for the call's last events before the next Originate.
        running.sim.idle().await;
        while let Ok(Some(_)) = client
            .next_frame_within(std::time::Duration::from_millis(20))
            .await
        {}
        let wav = dir.path().join(format!("rec-{id}.wav"));
        let answered = !outcome.is_agent_side();
        assert_eq!(wav.exists(), answered, "{outcome}: recording exists");
        if answered {
            let bytes = std::fs::read(&wav).unwrap();
            assert_eq!(&bytes[..4], b"RIFF");
            let riff = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
            assert_eq!(riff, bytes.len() - 8, "{outcome}: complete");
        }
    }
}

/// The core's decoder reads everything the simulator sends, banner included.
#[tokio::test]
async fn the_core_decoder_reads_the_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(config(dir.path(), FAST, &[])).await;
    let mut client = connect(running.addr).await;
    login(&mut client).await;
    let _ = simulated(&mut client, "c2d-decoder", "1001", "0820001234").await;
    running.sim.idle().await;
    client
        .action(&[("Action", "Logoff"), ("ActionID", "bye")])
        .await
        .unwrap();
    client.read_to_close().await.unwrap();
    let bytes = client.received();
    let mut decoder = Decoder::new();
    let (mut at, mut messages) = (0, 0);
    while let Some(decoded) = decoder.decode(&bytes[at..]).expect("valid AMI") {
        if let Frame::Message(m) = decoded.frame {
            assert_eq!(m.skipped_lines(), 0);
            messages += 1;
        }
        at += decoded.len;
    }
    assert_eq!(at, bytes.len());
    assert!(messages > 90, "{messages}");
}

/// The notifications of a recorded one-leg call, replayed through the tracker.
fn recorded_one_leg(case: Case) -> Vec<Note> {
    let channel_id = channel_id_of(case);
    let mut tracker = CallTracker::new(&channel_id, Mode::SingleLeg, 0).unwrap();
    let mut out = Vec::new();
    feed(&mut tracker, &channel_id, 0, b"", &mut out);
    for (i, frame) in case.frames().iter().enumerate() {
        feed(&mut tracker, &channel_id, i as u64, frame.bytes, &mut out);
    }
    assert!(tracker.is_finished(), "{}", case.name);
    out
}

/// One-leg calls (agent == callee), sent as the host writes them (`write_originate`,
/// `single_leg: true`): the simulator plays the recorded one-leg call with this call's
/// values (none of the recorded ones is left), and the tracker gives the notifications the
/// recording gives: answered (`queued, callee_ringing, joined, hangup, recording_ready`,
/// the recording complete) and callee busy.
#[tokio::test]
async fn one_leg_calls_notify_like_their_recordings() {
    use click2dial_core::originate::{write_originate, Dialplan, OriginateCall};
    let dir = tempfile::tempdir().unwrap();
    let running = start(config(dir.path(), FAST, &[])).await;
    let mut client = connect(running.addr).await;
    login(&mut client).await;
    let cases = [
        ("0821234567", transcript::I_ONE_LEG_SUCCESS, true),
        ("0820000486", transcript::I2_ONE_LEG_CALLEE_BUSY, false),
    ];
    for (i, (callee, case, answered)) in cases.into_iter().enumerate() {
        let id = format!("c2d-one-leg-{i}");
        let recording = format!("rec-{id}");
        let contact = format!("crm-one-leg-{i}");
        let call = OriginateCall {
            channel_id: &id,
            agent: callee,
            callee,
            callee_e164: "+27821234567",
            outbound_id: "27829990000",
            contact_ref: &contact,
            recording_ref: &recording,
            single_leg: true,
            controls: click2dial_core::dial::DialControls::DEFAULT,
        };
        let mut buf = [0u8; 2048];
        let n = write_originate(&call, &Dialplan::DEFAULT, &mut buf).unwrap();
        client.send(&buf[..n]).await.unwrap();
        let started = Instant::now();
        let mut tracker = CallTracker::new(&id, Mode::SingleLeg, 0).unwrap();
        let mut got = Vec::new();
        feed(&mut tracker, &id, 0, b"", &mut got);
        let ack = next(&mut client).await;
        assert!(ack.starts_with(b"Response: Success\r\n"), "{ack:?}");
        let mut frames = Vec::new();
        while !tracker.is_finished() {
            let frame = next(&mut client).await;
            let now = started.elapsed().as_millis() as u64;
            feed(&mut tracker, &id, now, &frame, &mut got);
            frames.push(frame);
        }
        running.sim.idle().await;
        while let Ok(Some(frame)) = client
            .next_frame_within(std::time::Duration::from_millis(20))
            .await
        {
            frames.push(frame);
        }
        assert_eq!(got, recorded_one_leg(case), "{}", case.name);
        if answered {
            assert_eq!(
                got,
                [
                    (Queued, None, None),
                    (CalleeRinging, None, None),
                    (Joined, None, None),
                    (Hangup, Some(Cause::NormalClearing), Some(16)),
                    (RecordingReady, None, None),
                ]
            );
        } else {
            assert_eq!(
                got.last(),
                Some(&(Failed, Some(Cause::CalleeBusy), Some(17))),
                "{got:?}"
            );
        }
        let text: String = frames
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect();
        for recorded in ["0820001234", "27820001234", "crm-42", "rec-abc", "c2d-oacx"] {
            assert!(!text.contains(recorded), "{recorded} left in\n{text}");
        }
        for new in [
            format!("Channel: Local/{callee}@c2d-single-"),
            format!("Uniqueid: {id};2\r\n"),
            "CallerIDNum: 27829990000\r\n".to_owned(),
            format!("Variable: C2D_CONTACT_REF\r\nValue: {contact}\r\n"),
        ] {
            assert!(text.contains(&new), "{new} missing");
        }
        let wav = dir.path().join(format!("{recording}.wav"));
        assert_eq!(wav.exists(), answered, "{}: recording", case.name);
        if answered {
            let bytes = std::fs::read(&wav).unwrap();
            let riff = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
            assert_eq!(riff, bytes.len() - 8, "complete");
        }
    }
}
