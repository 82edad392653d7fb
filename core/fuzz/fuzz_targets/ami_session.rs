//! Fuzzes the AMI client of `click2dial-core` with arbitrary bytes from "the PBX": one
//! [`Session`] on a virtual clock logs in, checks the PBX, pings, sends Originates and routes
//! channel events to [`CallTracker`]s, as the host's driver does. The input is cut in chunks
//! whose size, the time between them and how often a call is originated come from its first
//! three bytes. The core must never panic, and:
//!
//! - the session always takes the bytes it is offered or says something (a full receive
//!   buffer that decodes to nothing would stall the driver);
//! - what it sends fits the driver's buffer, and one round of events is bounded;
//! - it answers only Originates that were sent and not yet answered, and a probe (a `Ping`
//!   before an Originate to a PBX that was silent) is answered or ends the connection;
//! - a tracker starts with `queued`, says each notification at most once and in order, and says nothing
//!   after its end but `recording_ready`;
//! - every tracker finishes once time passes its `poll_timeout`, a lost one too (a dropped
//!   connection leaves calls to be re-synchronised from the next login's listing).
//!
//! The seeds are the recorded Asterisk 22 login checks (`core/tests/fixtures/ami/preflight/`)
//! and call transcripts (`core/tests/fixtures/ami/transcripts/`) after the `full` login.
#![no_main]

use click2dial_core::ami::session::{Config, Event, RECEIVE_BUFFER_LEN};
use click2dial_core::ami::{Checks, ContextCheck, Session};
use click2dial_core::call::{CallTracker, Mode, CHANNEL_ID_MAX_LEN};
use click2dial_core::dial::DialControls;
use click2dial_core::json::Event as Notification;
use click2dial_core::originate::{Dialplan, OriginateCall};
use libfuzzer_sys::fuzz_target;

/// The contexts the recorded `full` login check answers for.
const CONTEXTS: [ContextCheck<'static>; 2] = [
    ContextCheck {
        context: "c2d-outbound",
        extension: None,
        campaigns: false,
    },
    ContextCheck {
        context: "c2d-tvc",
        extension: None,
        campaigns: true,
    },
];

const CONFIG: Config<'static> = Config {
    checks: Checks {
        username: "c2d",
        secret: "secret",
        contexts: &CONTEXTS,
        booted_within_ms: 5_000,
        answer_within_ms: 5_000,
        lists_channels: true,
    },
    ping_interval_ms: 20_000,
    originate_answer_within_ms: 5_000,
    recheck_misconfigured_ms: 5_000,
    first_backoff_ms: 250,
    max_backoff_ms: 30_000,
};

/// Calls followed at once (as the host's limit on calls in flight).
const MAX_CALLS: usize = 8;
/// A driver that polls after every input never sees more events in one round.
const MAX_EVENTS_PER_ROUND: usize = 4096;

struct Call {
    key: String,
    tracker: CallTracker,
    said: Vec<Notification>,
}

impl Call {
    fn new(key: &str, mode: Mode, now: u64) -> Option<Self> {
        let mut call = Self {
            key: key.to_owned(),
            tracker: CallTracker::new(key, mode, now).ok()?,
            said: Vec::new(),
        };
        call.drain();
        assert_eq!(call.said, [Notification::Queued]);
        Some(call)
    }

    fn drain(&mut self) {
        while let Some(progress) = self.tracker.poll_progress() {
            let event = progress.event;
            assert!(
                !self.said.contains(&event),
                "{}: {event:?} twice in {:?}",
                self.key,
                self.said
            );
            let ended = self
                .said
                .iter()
                .any(|e| matches!(e, Notification::Hangup | Notification::Failed));
            assert!(
                !ended || event == Notification::RecordingReady,
                "{}: {event:?} after the end in {:?}",
                self.key,
                self.said
            );
            // A notification's sequence number is its event's: strictly increasing in a
            // call, so two hosts that saw different parts of it never number two events alike.
            assert!(
                self.said
                    .last()
                    .is_none_or(|last| last.sequence() < event.sequence()),
                "{}: {event:?} out of order in {:?}",
                self.key,
                self.said
            );
            if matches!(event, Notification::Hangup | Notification::Failed) {
                assert!(
                    progress.cause.is_some(),
                    "{}: an end without a cause",
                    self.key
                );
            }
            self.said.push(event);
        }
    }
}

fn mode_of(key: &str) -> Mode {
    match key.bytes().map(usize::from).sum::<usize>() % 3 {
        0 => Mode::TwoLeg,
        1 => Mode::SingleLeg,
        _ => Mode::AgentInitiated,
    }
}

struct World<'b> {
    session: Session<'b, 16, 4>,
    now: u64,
    calls: Vec<Call>,
    awaiting_answer: Vec<String>,
    originated: u32,
    out: Vec<u8>,
}

impl World<'_> {
    /// Sends what the session has to send, acts on its events; returns how many there were.
    fn drain(&mut self) -> usize {
        let mut events = 0;
        loop {
            self.transmit();
            let now = self.now;
            let Some(event) = self.session.poll_event() else {
                return events;
            };
            events += 1;
            assert!(events <= MAX_EVENTS_PER_ROUND, "unbounded events");
            match event {
                Event::Channel { key, event, .. } => {
                    let index = match self.calls.iter().position(|c| c.key == key) {
                        Some(i) => Some(i),
                        // A call some other client placed, followed as if it were ours.
                        None if self.calls.len() < MAX_CALLS && key.len() <= CHANNEL_ID_MAX_LEN => {
                            self.calls.extend(Call::new(key, mode_of(key), now));
                            self.calls.len().checked_sub(1)
                        }
                        None => None,
                    };
                    if let Some(call) = index.and_then(|i| self.calls.get_mut(i)) {
                        call.tracker.handle_event(now, &event);
                        call.drain();
                    }
                }
                Event::OriginateAnswered { action_id, refused } => {
                    let i = self
                        .awaiting_answer
                        .iter()
                        .position(|id| id == action_id)
                        .unwrap_or_else(|| panic!("an answer to {action_id:?}, never sent"));
                    let id = self.awaiting_answer.swap_remove(i);
                    if refused.is_some() {
                        // Nothing was dialled: the call is forgotten.
                        self.calls.retain(|c| c.key != id);
                    }
                }
                Event::Down(_) => {
                    self.awaiting_answer.clear();
                    for call in &mut self.calls {
                        call.tracker.handle_pbx_lost(now);
                        call.drain();
                    }
                }
                // As the host: calls a lost connection left are listed again after a login.
                Event::Checked { login: true, .. } => {
                    if self.calls.iter().any(|c| c.tracker.is_lost()) {
                        self.session.resync(now);
                    }
                }
                Event::Listed { key, channel } => {
                    if let Some(call) = self.calls.iter_mut().find(|c| c.key == key) {
                        call.tracker.handle_listed(&channel);
                    }
                }
                Event::Resynced { complete } => {
                    for call in &mut self.calls {
                        if complete {
                            call.tracker.handle_resynced(now);
                        } else {
                            call.tracker.handle_resync_failed(now);
                        }
                        call.drain();
                    }
                }
                Event::Checked { .. } | Event::Message(_) => {}
            }
            self.calls.retain(|c| !c.tracker.is_finished());
        }
    }

    fn transmit(&mut self) {
        let mut sent = 0;
        while let Some(n) = self.session.poll_transmit(&mut self.out) {
            assert!(n > 0 && n <= self.out.len(), "wrote {n} bytes");
            sent += 1;
            assert!(sent <= MAX_EVENTS_PER_ROUND, "unbounded actions");
        }
    }

    fn timeouts(&mut self) {
        if self.session.wants_connect(self.now) {
            self.session.handle_connected(self.now);
        }
        if self.session.poll_timeout().is_some_and(|at| at <= self.now) {
            self.session.handle_timeout(self.now);
        }
        for call in &mut self.calls {
            if call.tracker.poll_timeout().is_some_and(|at| at <= self.now) {
                call.tracker.handle_timeout(self.now);
                call.drain();
            }
            // As the host: a call that ended unseen has its recording looked at (found
            // whole here, twice); `said`'s checks hold its `recording_ready` to once, last.
            if call.tracker.is_finished() && call.tracker.gave_up() {
                for _ in 0..2 {
                    call.tracker.handle_recording_whole(self.now);
                    call.drain();
                }
            }
        }
        self.calls.retain(|c| !c.tracker.is_finished());
        self.drain();
    }

    fn originate(&mut self) {
        if !self.session.is_ready() || self.calls.len() >= MAX_CALLS {
            return;
        }
        // As the host: a PBX silent for a second is probed before anything is dialled.
        if self.session.is_probing() || self.now.saturating_sub(self.session.heard_at()) > 1_000 {
            self.session.probe(self.now);
            return;
        }
        let channel_id = format!("c2d-fuzz-{}", self.originated);
        let single_leg = self.originated % 2 == 1;
        let call = OriginateCall {
            channel_id: &channel_id,
            agent: if single_leg { "0820001234" } else { "1001" },
            callee: "0820001234",
            callee_e164: "+27820001234",
            outbound_id: "27820001234",
            contact_ref: "crm-42",
            recording_ref: "rec",
            single_leg,
            // Every third call with controls of its own, the others with the defaults.
            controls: if self.originated % 3 == 2 {
                DialControls {
                    agent_ring_timeout_secs: Some(20),
                    callee_ring_timeout_secs: Some(45),
                    max_duration_secs: Some(600),
                    record: false,
                }
            } else {
                DialControls::DEFAULT
            },
        };
        let mut out = [0u8; 2048];
        if self
            .session
            .originate(self.now, &call, &Dialplan::DEFAULT, &mut out)
            .is_ok()
        {
            self.originated += 1;
            let mode = if single_leg {
                Mode::SingleLeg
            } else {
                Mode::TwoLeg
            };
            self.calls.extend(Call::new(&channel_id, mode, self.now));
            self.awaiting_answer.push(channel_id);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [chunk, step, every, ref input @ ..] = *data else {
        return;
    };
    let chunk = usize::from(chunk) + 1;
    let step = u64::from(step) * 100;
    let mut buf = vec![0u8; RECEIVE_BUFFER_LEN];
    let mut world = World {
        session: Session::new(CONFIG, &mut buf),
        now: 0,
        calls: Vec::new(),
        awaiting_answer: Vec::new(),
        originated: 0,
        out: vec![0u8; 8192],
    };
    for (i, piece) in input.chunks(chunk).enumerate() {
        world.timeouts();
        if every != 0 && i % usize::from(every) == 0 {
            world.originate();
            world.drain();
        }
        let mut rest = piece;
        while !rest.is_empty() {
            let taken = world.session.handle_input(world.now, rest);
            rest = rest.get(taken..).unwrap_or_default();
            let said = world.drain();
            assert!(
                taken > 0 || said > 0,
                "stalled: the session takes no byte and says nothing"
            );
        }
        world.now += step;
    }
    // Time passes with nothing more from the PBX: every call ends by its own deadline.
    world.drain();
    let now = world.now;
    for call in &mut world.calls {
        let mut at = now;
        for _ in 0..4 {
            let Some(deadline) = call.tracker.poll_timeout() else {
                break;
            };
            at = at.max(deadline);
            call.tracker.handle_timeout(at);
            call.drain();
        }
        assert!(
            call.tracker.is_finished(),
            "{}: not finished after its deadlines: {:?}",
            call.key,
            call.said
        );
    }
    // And the session notices the silence: its timers keep firing and never stall.
    for _ in 0..8 {
        let Some(at) = world.session.poll_timeout() else {
            break;
        };
        world.now = world.now.max(at);
        world.timeouts();
    }
});
