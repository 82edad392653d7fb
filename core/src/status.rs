//! A call's status as a resource: the notifications of one call folded into what
//! `GET /click2dial/calls/{contact_ref}` answers — a state and reason named as in the CAMARA
//! ClickToDial API, each leg's outcome, and the times that matter. Sans-IO: the caller
//! applies each notification it pushes and stores the result.
//!
//! | notification | state | reason |
//! |---|---|---|
//! | `queued` | `initiating` | |
//! | `agent_ringing` | `callingCaller` | |
//! | `agent_answered`, `callee_ringing` | `callingCallee` | |
//! | `joined` | `connected` | |
//! | `hangup` | `disconnected` | `hangUp`; `maxDuration` (cause `max_duration`); `other` (cause `pbx_error`) |
//! | `failed` | `failed` | from the cause: `agent_busy` → `callerBusy`, `agent_no_answer` → `callerNoAnswer`, `agent_unavailable` → `callerFailure`, `agent_hung_up` → `callerAbandon`, `callee_busy` → `calleeBusy`, `callee_no_answer` → `calleeNoAnswer`, `callee_rejected`/`callee_not_found`/`callee_unavailable` → `calleeFailure`, `pbx_error` → `other` |
//! | `recording_ready` | unchanged | the recording is ready |
//!
//! A state never goes back: a late or repeated notification of an earlier step changes
//! nothing, and nothing changes a final state but `recording_ready`.

use crate::json::{Cause, Event};

/// Where a call is, in CAMARA's names.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "camelCase")]
pub enum State {
    /// Accepted and handed to the PBX.
    Initiating,
    /// The agent's phone rings.
    CallingCaller,
    /// The agent answered; the callee is being dialled or rings.
    CallingCallee,
    /// Agent and callee talk.
    Connected,
    /// The connected call ended.
    Disconnected,
    /// The call ended before it was connected.
    Failed,
}

impl State {
    /// Whether the call is over.
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Disconnected | Self::Failed)
    }

    /// The name in the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Initiating => "initiating",
            Self::CallingCaller => "callingCaller",
            Self::CallingCallee => "callingCallee",
            Self::Connected => "connected",
            Self::Disconnected => "disconnected",
            Self::Failed => "failed",
        }
    }
}

/// Why a call is `disconnected` or `failed`, in CAMARA's names (and `maxDuration`, the
/// call's own limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Reason {
    /// A party hung up a connected call.
    HangUp,
    /// The agent's line was busy.
    CallerBusy,
    /// The agent did not answer.
    CallerNoAnswer,
    /// The agent's phone could not be reached.
    CallerFailure,
    /// The agent hung up before the callee answered.
    CallerAbandon,
    /// The callee's line was busy.
    CalleeBusy,
    /// The callee did not answer.
    CalleeNoAnswer,
    /// The callee declined, does not exist, or could not be reached.
    CalleeFailure,
    /// The call reached the `max_duration_secs` it was created with.
    MaxDuration,
    /// Anything else (the PBX failed or went silent).
    Other,
}

impl Reason {
    /// The reason for a call that ended with `event` and `cause`.
    pub const fn of(event: Event, cause: Option<Cause>) -> Self {
        match (event, cause) {
            (_, Some(Cause::AgentBusy)) => Self::CallerBusy,
            (_, Some(Cause::AgentNoAnswer)) => Self::CallerNoAnswer,
            (_, Some(Cause::AgentUnavailable)) => Self::CallerFailure,
            (_, Some(Cause::AgentHungUp)) => Self::CallerAbandon,
            (_, Some(Cause::CalleeBusy)) => Self::CalleeBusy,
            (_, Some(Cause::CalleeNoAnswer)) => Self::CalleeNoAnswer,
            (_, Some(Cause::CalleeRejected | Cause::CalleeNotFound | Cause::CalleeUnavailable)) => {
                Self::CalleeFailure
            }
            (_, Some(Cause::MaxDuration)) => Self::MaxDuration,
            (Event::Hangup, Some(Cause::NormalClearing) | None) => Self::HangUp,
            _ => Self::Other,
        }
    }

    /// The name in the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::HangUp => "hangUp",
            Self::CallerBusy => "callerBusy",
            Self::CallerNoAnswer => "callerNoAnswer",
            Self::CallerFailure => "callerFailure",
            Self::CallerAbandon => "callerAbandon",
            Self::CalleeBusy => "calleeBusy",
            Self::CalleeNoAnswer => "calleeNoAnswer",
            Self::CalleeFailure => "calleeFailure",
            Self::MaxDuration => "maxDuration",
            Self::Other => "other",
        }
    }
}

/// What happened to one phone of the call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Leg {
    /// The phone rang.
    pub rung: bool,
    /// The phone answered.
    pub answered: bool,
    /// Why this phone's part failed, when the call failed because of it.
    pub cause: Option<Cause>,
}

/// The status of one call, from its notifications. Times are Unix milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CallStatus {
    /// Where the call is.
    pub state: State,
    /// Why it ended, once it has.
    pub reason: Option<Reason>,
    /// The agent's phone (for a one-leg call: unused).
    pub agent: Leg,
    /// The callee's phone.
    pub callee: Leg,
    /// When the call was accepted.
    pub created_ms: u64,
    /// When agent and callee were connected.
    pub connected_ms: Option<u64>,
    /// When the call ended.
    pub ended_ms: Option<u64>,
    /// The recording file is complete.
    pub recording_ready: bool,
}

impl CallStatus {
    /// A call accepted at `created_ms` (`initiating`).
    pub const fn new(created_ms: u64) -> Self {
        Self {
            state: State::Initiating,
            reason: None,
            agent: Leg {
                rung: false,
                answered: false,
                cause: None,
            },
            callee: Leg {
                rung: false,
                answered: false,
                cause: None,
            },
            created_ms,
            connected_ms: None,
            ended_ms: None,
            recording_ready: false,
        }
    }

    /// Folds one notification in.
    pub fn apply(&mut self, event: Event, cause: Option<Cause>, at_ms: u64) {
        if event == Event::RecordingReady {
            self.recording_ready = true;
            return;
        }
        if self.state.is_final() {
            return;
        }
        let next = match event {
            Event::Queued => State::Initiating,
            Event::AgentRinging => {
                self.agent.rung = true;
                State::CallingCaller
            }
            Event::AgentAnswered => {
                self.agent.answered = true;
                State::CallingCallee
            }
            Event::CalleeRinging => {
                self.callee.rung = true;
                State::CallingCallee
            }
            Event::Joined => {
                self.callee.answered = true;
                self.connected_ms = Some(at_ms);
                State::Connected
            }
            Event::Hangup => State::Disconnected,
            Event::Failed => State::Failed,
            Event::RecordingReady => self.state,
        };
        if next < self.state {
            return;
        }
        self.state = next;
        if next.is_final() {
            self.ended_ms = Some(at_ms);
            let reason = Reason::of(event, cause);
            self.reason = Some(reason);
            if event == Event::Failed {
                match reason {
                    Reason::CallerBusy
                    | Reason::CallerNoAnswer
                    | Reason::CallerFailure
                    | Reason::CallerAbandon => self.agent.cause = cause,
                    Reason::CalleeBusy | Reason::CalleeNoAnswer | Reason::CalleeFailure => {
                        self.callee.cause = cause
                    }
                    _ => {}
                }
            }
        }
    }

    /// How long agent and callee were connected, in milliseconds (so far, for a connected
    /// call, at `now_ms`); `None` when they never were.
    pub fn connected_for_ms(&self, now_ms: u64) -> Option<u64> {
        let from = self.connected_ms?;
        Some(self.ended_ms.unwrap_or(now_ms).saturating_sub(from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Event::*;

    fn run(events: &[(Event, Option<Cause>)]) -> CallStatus {
        let mut status = CallStatus::new(1_000);
        for (i, (event, cause)) in events.iter().enumerate() {
            status.apply(*event, *cause, 1_000 + 1_000 * i as u64);
        }
        status
    }

    #[test]
    fn an_answered_call_is_connected_then_disconnected_by_a_hang_up() {
        let mut s = run(&[
            (Queued, None),
            (AgentRinging, None),
            (AgentAnswered, None),
            (CalleeRinging, None),
            (Joined, None),
        ]);
        assert_eq!(s.state, State::Connected);
        assert_eq!(s.connected_for_ms(7_000), Some(2_000));
        s.apply(Hangup, Some(Cause::NormalClearing), 9_000);
        assert_eq!(
            (s.state, s.reason),
            (State::Disconnected, Some(Reason::HangUp))
        );
        assert_eq!(s.connected_for_ms(99_000), Some(4_000));
        assert!(s.agent.answered && s.callee.answered && s.agent.rung && s.callee.rung);
        assert!(!s.recording_ready);
        s.apply(RecordingReady, None, 10_000);
        assert!(s.recording_ready);
        assert_eq!(s.state, State::Disconnected);
    }

    #[test]
    fn failures_name_the_leg_and_camaras_reason() {
        for (cause, reason, agent) in [
            (Cause::AgentBusy, Reason::CallerBusy, true),
            (Cause::AgentNoAnswer, Reason::CallerNoAnswer, true),
            (Cause::AgentUnavailable, Reason::CallerFailure, true),
            (Cause::AgentHungUp, Reason::CallerAbandon, true),
            (Cause::CalleeBusy, Reason::CalleeBusy, false),
            (Cause::CalleeNoAnswer, Reason::CalleeNoAnswer, false),
            (Cause::CalleeRejected, Reason::CalleeFailure, false),
            (Cause::CalleeNotFound, Reason::CalleeFailure, false),
            (Cause::CalleeUnavailable, Reason::CalleeFailure, false),
        ] {
            let s = run(&[(Queued, None), (AgentRinging, None), (Failed, Some(cause))]);
            assert_eq!((s.state, s.reason), (State::Failed, Some(reason)));
            let (failed, other) = if agent {
                (s.agent, s.callee)
            } else {
                (s.callee, s.agent)
            };
            assert_eq!((failed.cause, other.cause), (Some(cause), None));
            assert_eq!(s.connected_for_ms(50_000), None);
        }
        let s = run(&[(Queued, None), (Failed, Some(Cause::PbxError))]);
        assert_eq!(s.reason, Some(Reason::Other));
    }

    #[test]
    fn a_max_duration_hangup_has_its_own_reason() {
        let s = run(&[
            (Queued, None),
            (Joined, None),
            (Hangup, Some(Cause::MaxDuration)),
        ]);
        assert_eq!(
            (s.state, s.reason),
            (State::Disconnected, Some(Reason::MaxDuration))
        );
        let s = run(&[
            (Queued, None),
            (Joined, None),
            (Hangup, Some(Cause::PbxError)),
        ]);
        assert_eq!(s.reason, Some(Reason::Other));
    }

    #[test]
    fn states_never_go_back_and_final_states_stay() {
        let s = run(&[
            (Queued, None),
            (CalleeRinging, None),
            (AgentRinging, None),
            (Queued, None),
        ]);
        assert_eq!(s.state, State::CallingCallee);
        let s = run(&[
            (Queued, None),
            (Failed, Some(Cause::AgentBusy)),
            (Joined, None),
            (Hangup, None),
        ]);
        assert_eq!(
            (s.state, s.reason),
            (State::Failed, Some(Reason::CallerBusy))
        );
        assert_eq!(s.ended_ms, Some(2_000));
    }

    #[test]
    fn stored_causes_keep_their_notification_names() {
        for cause in Cause::ALL {
            let json = serde_json::to_string(&cause).unwrap();
            assert_eq!(json, std::format!("\"{}\"", cause.as_str()));
            assert_eq!(serde_json::from_str::<Cause>(&json).unwrap(), cause);
        }
    }

    #[test]
    fn names_are_camaras() {
        assert_eq!(State::CallingCaller.as_str(), "callingCaller");
        assert_eq!(Reason::CalleeNoAnswer.as_str(), "calleeNoAnswer");
        let json = serde_json::to_string(&State::CallingCallee).unwrap();
        assert_eq!(json, "\"callingCallee\"");
    }
}
