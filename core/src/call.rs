//! The call state machine: AMI channel events of one call in, notification events out.
//!
//! Sans-IO in the style of quinn-proto: inputs are `handle_*(now, …)`, outputs are drained
//! with [`CallTracker::poll_progress`] until it returns `None`. Time is passed in, never read.
//!
//! One tracker follows one originated call. Every channel of the call carries the Originate's
//! `ChannelId` as its `Linkedid`, and the originated channel's `Uniqueid` is that same
//! `ChannelId`; the caller routes events to the tracker by `Linkedid` (or, for
//! `OriginateResponse`, by `ActionID`), and the tracker tells the originated channel from the
//! others by `Uniqueid`. Nothing depends on arrival order where Asterisk does not fix it:
//! `OriginateResponse` may come before or after the agent's `Hangup`, so outcomes are taken
//! from the channels' `Hangup` causes and `DialEnd` statuses.
//!
//! What each outcome looks like (from the recorded Asterisk 22 transcripts):
//!
//! | outcome | what decides it |
//! |---|---|
//! | agent no answer | agent `Hangup` cause 19 before `Up` |
//! | agent busy | agent `Hangup` cause 17 before `Up` (`OriginateResponse Reason: 0`) |
//! | callee busy | `DialEnd BUSY`, callee `Hangup` 17 |
//! | callee not found | `DialEnd NOANSWER`, callee `Hangup` 1 |
//! | callee declines | `DialEnd NOANSWER`, callee `Hangup` 21 |
//! | callee no answer | `DialEnd NOANSWER`, callee `Hangup` 0 or 19 |
//! | agent gives up | `DialEnd CANCEL` |
//! | answered | callee `BridgeEnter`, then the first `Hangup` ends it |
//!
//! **A call the agent's phone started** ([`Mode::AgentInitiated`], the FastAGI path): the
//! agent's channel already exists, has run the AGI, and now dials the callee itself. The
//! tracker's `ChannelId` is that channel's `Uniqueid` (`agi_uniqueid`), which is also the
//! `Linkedid` of every channel of the call and the `Uniqueid` of its `DialBegin`. Nobody rings
//! the agent, so there is no `agent_ringing` and no `agent_answered`: the agent is the caller,
//! and their channel is only answered by Asterisk when the callee answers. The notifications
//! are `queued` (at creation, when the service decided to dial), `callee_ringing`, `joined`,
//! `hangup`, `recording_ready` — the same as a REST call minus the two agent events.
//! Failures: callee busy, not found, declines, no answer, unavailable as above; the agent
//! hanging up before the callee answers (`DialEnd CANCEL`, or the agent's `Hangup` before any
//! `DialBegin`, e.g. the cause 127 of a caller who cancelled during the AGI) is
//! `agent_hung_up`, as when a REST call's agent gives up.
//!
//! **A lost PBX connection** does not end a call: its channels may live on in Asterisk.
//! The tracker [waits](CallTracker::handle_pbx_lost) for a new connection's
//! `CoreShowChannels` list ([`CallTracker::handle_listed`], [`CallTracker::handle_resynced`])
//! and goes on from what it shows, notifying the steps it proves; a call whose channels are
//! gone ends with `pbx_error`. [`CallTracker::resume`] does the same for a call an earlier
//! process followed (a restarted host), from what was already notified.

use crate::ami::{ChannelState, DialStatus, Message};
use crate::json::{Cause, Event};
use crate::text::Text;

/// Longest `ChannelId` a tracker can hold.
pub const CHANNEL_ID_MAX_LEN: usize = 64;

/// How many outputs can wait; one input produces at most two, so polling after every input
/// (as the drivers do) never loses one.
const QUEUE_LEN: usize = 8;

/// A monotonic instant in milliseconds, on the caller's clock.
pub type Millis = u64;

/// The AMI events the machine understands, reduced to what it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelEvent<'a> {
    /// `Newchannel`
    Newchannel {
        /// `Uniqueid`
        uniqueid: &'a str,
    },
    /// `Newstate`
    Newstate {
        /// `Uniqueid`
        uniqueid: &'a str,
        /// `ChannelState`
        state: ChannelState,
    },
    /// `DialBegin`
    DialBegin {
        /// `Uniqueid` of the dialling channel; absent when the Originate itself dials.
        uniqueid: Option<&'a str>,
        /// `DestUniqueid`
        dest_uniqueid: &'a str,
    },
    /// `DialState`
    DialState {
        /// `DestUniqueid`
        dest_uniqueid: &'a str,
        /// `DialStatus`
        status: DialStatus,
    },
    /// `DialEnd`
    DialEnd {
        /// `DestUniqueid`
        dest_uniqueid: &'a str,
        /// `DialStatus`
        status: DialStatus,
    },
    /// `BridgeEnter`
    BridgeEnter {
        /// `Uniqueid`
        uniqueid: &'a str,
    },
    /// `MixMonitorStart`: the recording file is being written.
    MixMonitorStart,
    /// `Hangup`
    Hangup {
        /// `Uniqueid`
        uniqueid: &'a str,
        /// `Cause` (Q.850), 0 when unknown.
        cause: u16,
    },
    /// `OriginateResponse`
    OriginateResponse {
        /// `Response: Success`
        success: bool,
        /// `Reason` (Asterisk's originate result code).
        reason: u8,
    },
}

impl<'a> ChannelEvent<'a> {
    /// Reduces an AMI event to what the machine needs, with the key that routes it to its
    /// call: `Linkedid` (`DestLinkedid` for the dial events, whose source may be absent), or
    /// `ActionID` for `OriginateResponse`, whose `Uniqueid` is `<unknown>` when no channel
    /// was created. Drivers send each Originate with `ActionID` equal to its `ChannelId`, so
    /// one key finds the call either way. Events the machine does not need, and events
    /// missing a routing header, give `None`.
    pub fn from_message(message: &Message<'a>) -> Option<(&'a str, Self)> {
        let name = message.event()?;
        let event = match name {
            "Newchannel" => Self::Newchannel {
                uniqueid: message.uniqueid()?,
            },
            "Newstate" => Self::Newstate {
                uniqueid: message.uniqueid()?,
                state: message.channel_state()?,
            },
            "DialBegin" => Self::DialBegin {
                uniqueid: message.uniqueid(),
                dest_uniqueid: message.dest_uniqueid()?,
            },
            "DialState" => Self::DialState {
                dest_uniqueid: message.dest_uniqueid()?,
                status: message.dial_status()?,
            },
            "DialEnd" => Self::DialEnd {
                dest_uniqueid: message.dest_uniqueid()?,
                status: message.dial_status()?,
            },
            "BridgeEnter" => Self::BridgeEnter {
                uniqueid: message.uniqueid()?,
            },
            "MixMonitorStart" => Self::MixMonitorStart,
            "Hangup" => Self::Hangup {
                uniqueid: message.uniqueid()?,
                cause: message.cause().unwrap_or(0),
            },
            "OriginateResponse" => {
                let success = message.response() == Some(crate::ami::ResponseStatus::Success);
                let reason = message
                    .reason()
                    .and_then(|r| u8::try_from(r).ok())
                    .unwrap_or(0);
                return Some((
                    message.action_id()?,
                    Self::OriginateResponse { success, reason },
                ));
            }
            _ => return None,
        };
        let key = match event {
            Self::DialBegin { .. } | Self::DialState { .. } | Self::DialEnd { .. } => {
                message.dest_linkedid()?
            }
            _ => message.linkedid()?,
        };
        Some((key, event))
    }
}

/// One channel of a `CoreShowChannels` listing, reduced to what re-synchronising a call
/// needs ([`CallTracker::handle_listed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListedChannel<'a> {
    /// `Uniqueid`
    pub uniqueid: &'a str,
    /// `ChannelState`
    pub state: ChannelState,
    /// `BridgeId`: the bridge the channel is in, empty when it is in none.
    pub bridge_id: &'a str,
    /// `Application: AppDial`: another channel of the call is dialling this one.
    pub dialled: bool,
}

impl<'a> ListedChannel<'a> {
    /// Reads a `CoreShowChannel` event, with its call's key (its `Linkedid`); `None` for any
    /// other message, or one missing `Uniqueid` or `Linkedid`.
    pub fn from_message(message: &Message<'a>) -> Option<(&'a str, Self)> {
        if message.event() != Some("CoreShowChannel") {
            return None;
        }
        let channel = Self {
            uniqueid: message.uniqueid()?,
            state: message.channel_state().unwrap_or(ChannelState::Unknown),
            bridge_id: message.get("BridgeId").unwrap_or(""),
            dialled: message.get("Application") == Some("AppDial"),
        };
        Some((message.linkedid()?, channel))
    }
}

/// One step of a call's progress, ready to become a notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Progress {
    /// The notification event.
    pub event: Event,
    /// Why, for `failed` and `hangup`.
    pub cause: Option<Cause>,
    /// The Q.850 cause code, when the PBX gave a non-zero one.
    pub q850: Option<u16>,
    /// When the input that produced it was handled.
    pub at: Millis,
}

/// Which side of the call the originated channel is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Mode {
    /// The PBX rings the agent, then dials the callee.
    TwoLeg,
    /// `agent` equals `callee`: the PBX dials the callee first and connects it to the
    /// configured direct destination.
    SingleLeg,
    /// The agent's phone called the click-to-dial extension (FastAGI): its channel, whose
    /// `Uniqueid` is the `ChannelId`, exists already and dials the callee.
    AgentInitiated,
}

/// The `ChannelId` did not fit [`CHANNEL_ID_MAX_LEN`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ChannelIdTooLong;

/// Declared in the order a call goes through them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// Originate accepted; nothing heard from the channel yet.
    Queued,
    /// The originated channel exists (ringing or not).
    Originating,
    /// The originated channel answered; the other leg is being dialled.
    Answered,
    /// Both legs bridged.
    Joined,
    /// `failed` or `hangup` was emitted.
    Ended,
}

/// A channel identifier held inline (no allocation); empty when unknown.
type Id = Text<CHANNEL_ID_MAX_LEN>;

/// Whether `id` is known and is `value`.
fn is(id: &Id, value: &str) -> bool {
    !id.is_empty() && id.as_str() == value
}

/// How a channel relates to the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Leg {
    /// The channel the Originate created (`Uniqueid` = `ChannelId`).
    Originated,
    /// The channel the originated channel dialled.
    Other,
    /// Any other channel of the call (Local channel halves, helpers).
    Unrelated,
}

/// What a `CoreShowChannels` listing showed of one call: how many channels it has, and the
/// two that tell where it stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Listing {
    channels: u8,
    /// The originated channel: its state and bridge.
    originated: Option<(ChannelState, Id)>,
    /// The other leg (the one the tracker knows, else a channel being dialled): its
    /// `Uniqueid`, state and bridge.
    other: Option<(Id, ChannelState, Id)>,
}

impl Listing {
    const EMPTY: Self = Self {
        channels: 0,
        originated: None,
        other: None,
    };
}

/// Follows one call from `queued` to its last notification.
#[derive(Clone, Debug)]
pub struct CallTracker {
    channel_id: Id,
    /// The channel the originated channel dials: the callee's (the agent's in single-leg).
    other_leg: Id,
    mode: Mode,
    phase: Phase,
    /// Channels of the call that exist now.
    live_channels: u8,
    /// Whether any channel of the call was seen at all.
    seen_channel: bool,
    agent_ringing_sent: bool,
    callee_ringing_sent: bool,
    recording: bool,
    /// The dialplan records the call before it dials the other leg.
    records: bool,
    recording_ready_sent: bool,
    /// The call ended without the PBX telling how ([`CallTracker::gave_up`]).
    gave_up: bool,
    /// The last `DialEnd` status towards the other leg.
    other_leg_dial_end: Option<DialStatus>,
    /// The other leg's channel has hung up.
    other_leg_gone: bool,
    /// The originated channel hung up before the other leg was bridged, while the other
    /// leg still lived: the other leg's `Hangup` (its cause) decides how the call failed.
    originated_gone: bool,
    last_activity: Millis,
    /// When the PBX connection was lost, until the call is re-synchronised.
    lost_at: Option<Millis>,
    /// What the PBX listed of the call since it was lost.
    listing: Listing,
    created: Millis,
    /// When the call was joined (meaningful from [`Phase::Joined`] on).
    joined_at: Millis,
    timeouts: Timeouts,
    /// The [sequence number](Event::sequence) of the last event said: a call says its
    /// events in that order, each at most once.
    said_up_to: u8,
    queue: [Option<Progress>; QUEUE_LEN],
}

/// How long a call that is not joined (queued, ringing, dialling the other leg, or ended
/// with channels left) may go without any event before the tracker gives up on it: it
/// fails with `pbx_error` (or, ended, finishes without claiming its recording: see
/// [`CallTracker::gave_up`]). Ring timeouts are
/// enforced by the PBX and are shorter; this catches a PBX that went silent and a call
/// whose channel never showed (a FastAGI decision the dialplan did not follow).
pub const SILENCE_TIMEOUT_MS: Millis = 120_000;

/// The longest a call may last from `queued`: a joined call still going on then ends with
/// `hangup`/`pbx_error` (its events were lost, or it is far longer than any call).
pub const MAX_CALL_MS: Millis = 24 * 60 * 60 * 1000;

/// The deadlines of a call ([`CallTracker::with_timeouts`]); every state has one, so every
/// tracker finishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Timeouts {
    /// Longest silence before the call is joined and after it ended, and the longest wait
    /// for a lost PBX connection to be re-synchronised ([`SILENCE_TIMEOUT_MS`]).
    pub silence_ms: Millis,
    /// Longest call, from `queued` ([`MAX_CALL_MS`]).
    pub max_call_ms: Millis,
    /// The call's own longest duration once connected (`max_duration_secs`), which the PBX
    /// enforces (the kit's `Dial` `S()` option): a joined call that ends this long after it
    /// was joined (less [`MAX_DURATION_TOLERANCE_MS`]) ends with cause `max_duration`.
    pub max_duration_ms: Option<Millis>,
}

/// How much earlier than its `max_duration_ms` a joined call's end is still put down to
/// that limit: the PBX counts from the callee's answer, the tracker from the bridge, a few
/// milliseconds later.
pub const MAX_DURATION_TOLERANCE_MS: Millis = 1_000;

impl Timeouts {
    /// [`SILENCE_TIMEOUT_MS`] and [`MAX_CALL_MS`].
    pub const DEFAULT: Self = Self {
        silence_ms: SILENCE_TIMEOUT_MS,
        max_call_ms: MAX_CALL_MS,
        max_duration_ms: None,
    };
}

impl Default for Timeouts {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl CallTracker {
    /// A tracker for the call originated with `channel_id` (for [`Mode::AgentInitiated`]:
    /// the agent channel's `Uniqueid`); emits `queued` at `now`.
    pub fn new(channel_id: &str, mode: Mode, now: Millis) -> Result<Self, ChannelIdTooLong> {
        Self::with_timeouts(channel_id, mode, now, Timeouts::DEFAULT)
    }

    /// [`CallTracker::new`] with other deadlines.
    pub fn with_timeouts(
        channel_id: &str,
        mode: Mode,
        now: Millis,
        timeouts: Timeouts,
    ) -> Result<Self, ChannelIdTooLong> {
        let agent_initiated = mode == Mode::AgentInitiated;
        let mut tracker = Self {
            channel_id: Id::new(channel_id).ok_or(ChannelIdTooLong)?,
            other_leg: Id::EMPTY,
            mode,
            // The agent's channel is there and about to dial: as if it had answered.
            phase: if agent_initiated {
                Phase::Answered
            } else {
                Phase::Queued
            },
            live_channels: u8::from(agent_initiated),
            seen_channel: agent_initiated,
            agent_ringing_sent: false,
            callee_ringing_sent: false,
            recording: false,
            records: false,
            recording_ready_sent: false,
            gave_up: false,
            other_leg_dial_end: None,
            other_leg_gone: false,
            originated_gone: false,
            last_activity: now,
            lost_at: None,
            listing: Listing::EMPTY,
            created: now,
            joined_at: now,
            timeouts,
            said_up_to: 0,
            queue: [None; QUEUE_LEN],
        };
        tracker.emit(Event::Queued, None, 0, now);
        Ok(tracker)
    }

    /// A tracker for a call some earlier process followed and that was notified `notified`
    /// (in order, as its history in the notification store has them): for a host that
    /// starts while the call is in flight. It is [lost](CallTracker::is_lost) at `now`:
    /// the PBX's listing ([`CallTracker::handle_listed`], [`CallTracker::handle_resynced`])
    /// says where the call stands, and only what was not notified yet follows (nothing
    /// twice; `queued` only when nothing was notified).
    pub fn resume(
        channel_id: &str,
        mode: Mode,
        now: Millis,
        timeouts: Timeouts,
        notified: &[Event],
    ) -> Result<Self, ChannelIdTooLong> {
        let mut tracker = Self::with_timeouts(channel_id, mode, now, timeouts)?;
        if let Some(last) = notified.iter().map(|e| e.sequence()).max() {
            tracker.queue = [None; QUEUE_LEN];
            tracker.said_up_to = u8::try_from(last).unwrap_or(u8::MAX);
        }
        let was = |event: Event| notified.contains(&event);
        tracker.agent_ringing_sent = was(Event::AgentRinging);
        tracker.callee_ringing_sent = was(Event::CalleeRinging);
        tracker.recording_ready_sent = was(Event::RecordingReady);
        let phase = if was(Event::Hangup) || was(Event::Failed) {
            Phase::Ended
        } else if was(Event::Joined) {
            Phase::Joined
        } else if was(Event::AgentAnswered) || mode == Mode::AgentInitiated {
            Phase::Answered
        } else if was(Event::AgentRinging) {
            Phase::Originating
        } else {
            Phase::Queued
        };
        tracker.phase = tracker.phase.max(phase);
        tracker.seen_channel |= phase > Phase::Queued;
        tracker.lost_at = Some(now);
        Ok(tracker)
    }

    /// For a [resumed](CallTracker::resume) call: when its history says `event` was
    /// notified, on this tracker's clock (by default the resume's `now`). `queued` is the
    /// call's start (its `max_call_ms`), `joined` its bridge (its `max_duration_ms`, so
    /// that a call the PBX ends at that limit says `max_duration`); other events change
    /// nothing, nor does a time after the resume.
    pub fn notified_at(&mut self, event: Event, at: Millis) {
        match event {
            Event::Queued => self.created = self.created.min(at),
            Event::Joined if self.phase == Phase::Joined => {
                self.joined_at = self.joined_at.min(at);
            }
            _ => {}
        }
    }

    /// The `ChannelId` (= `Linkedid` of every channel of the call).
    pub fn channel_id(&self) -> &str {
        self.channel_id.as_str()
    }

    fn leg(&self, uniqueid: &str) -> Leg {
        if is(&self.channel_id, uniqueid) {
            Leg::Originated
        } else if is(&self.other_leg, uniqueid) {
            Leg::Other
        } else {
            Leg::Unrelated
        }
    }

    /// Feeds one event of this call.
    pub fn handle_event(&mut self, now: Millis, event: &ChannelEvent<'_>) {
        self.last_activity = now;
        match *event {
            ChannelEvent::Newchannel { uniqueid }
                if self.mode == Mode::AgentInitiated && is(&self.channel_id, uniqueid) =>
            {
                // Counted at creation.
            }
            ChannelEvent::Newchannel { .. } => {
                self.live_channels = self.live_channels.saturating_add(1);
                self.seen_channel = true;
                if self.phase == Phase::Queued {
                    self.phase = Phase::Originating;
                }
            }
            ChannelEvent::Newstate { uniqueid, state } => {
                self.on_state(now, self.leg(uniqueid), state)
            }
            ChannelEvent::DialState {
                dest_uniqueid,
                status: DialStatus::Ringing,
            } => self.on_state(now, self.leg(dest_uniqueid), ChannelState::Ringing),
            ChannelEvent::DialBegin {
                uniqueid: Some(source),
                dest_uniqueid,
            } if is(&self.channel_id, source) => {
                self.other_leg = Id::new(dest_uniqueid).unwrap_or(Id::EMPTY);
            }
            ChannelEvent::DialBegin { .. } | ChannelEvent::DialState { .. } => {}
            ChannelEvent::DialEnd {
                dest_uniqueid,
                status,
            } => {
                if self.leg(dest_uniqueid) == Leg::Other {
                    self.other_leg_dial_end = Some(status);
                    if status == DialStatus::ChanUnavail || status == DialStatus::Congestion {
                        // No channel will hang up for the other leg: it never rang.
                        self.fail_other_leg(now, 0);
                    }
                }
            }
            ChannelEvent::BridgeEnter { uniqueid } => {
                if self.leg(uniqueid) == Leg::Other {
                    self.join(now);
                }
            }
            ChannelEvent::MixMonitorStart => self.recording = true,
            ChannelEvent::Hangup { uniqueid, cause } => {
                self.live_channels = self.live_channels.saturating_sub(1);
                let leg = self.leg(uniqueid);
                if leg == Leg::Other {
                    self.other_leg_gone = true;
                }
                self.on_hangup(now, leg, cause);
            }
            ChannelEvent::OriginateResponse { success, reason } => {
                // Only decisive when no channel ever existed: otherwise that channel's
                // Hangup carries the real cause (a busy agent gives Reason 0, not 5).
                if !success && !self.seen_channel && self.phase == Phase::Queued {
                    let (cause, q850) = match reason {
                        3 => (Cause::AgentNoAnswer, 19),
                        5 => (Cause::AgentBusy, 17),
                        _ => (Cause::AgentUnavailable, 0),
                    };
                    let cause = self.for_mode_originated(cause);
                    self.end(now, Event::Failed, cause, q850);
                }
            }
        }
    }

    /// The PBX connection was lost. The call's channels may live on in Asterisk: the tracker
    /// waits for the listing of a new connection ([`CallTracker::handle_listed`], then
    /// [`CallTracker::handle_resynced`]) for at most [`Timeouts::silence_ms`], past which
    /// [`CallTracker::handle_timeout`] gives up on it (`pbx_error`).
    pub fn handle_pbx_lost(&mut self, now: Millis) {
        if self.is_finished() {
            return;
        }
        if self.lost_at.is_none() {
            self.lost_at = Some(now);
        }
        self.listing = Listing::EMPTY;
    }

    /// The dialplan starts recording the call before it dials the other leg (the kit's does,
    /// unless the call asked for no recording): a listing that shows the other leg then
    /// proves the recording started while the connection was down, and `recording_ready`
    /// follows the call's end as if `MixMonitorStart` had been seen.
    pub fn expect_recording(&mut self) {
        self.records = true;
    }

    /// Whether the tracker waits to be re-synchronised ([`CallTracker::handle_pbx_lost`]).
    pub fn is_lost(&self) -> bool {
        self.lost_at.is_some()
    }

    /// One channel of the call, as a new connection's `CoreShowChannels` listed it (ignored
    /// unless the tracker [is lost](CallTracker::is_lost)).
    pub fn handle_listed(&mut self, channel: &ListedChannel<'_>) {
        if self.lost_at.is_none() {
            return;
        }
        let listing = &mut self.listing;
        listing.channels = listing.channels.saturating_add(1);
        let bridge = Id::new(channel.bridge_id).unwrap_or(Id::EMPTY);
        if is(&self.channel_id, channel.uniqueid) {
            listing.originated = Some((channel.state, bridge));
        } else if is(&self.other_leg, channel.uniqueid)
            || self.other_leg.is_empty() && channel.dialled && listing.other.is_none()
        {
            let id = Id::new(channel.uniqueid).unwrap_or(Id::EMPTY);
            listing.other = Some((id, channel.state, bridge));
        }
    }

    /// The listing is complete: the call goes on from what it showed, and the steps it
    /// proves happened while the connection was down are notified now (`agent_answered`,
    /// `callee_ringing`, `joined`). A call none of whose channels is listed ended unseen (or
    /// the PBX restarted): it ends with `pbx_error` (`failed`, or `hangup` once joined) and
    /// claims no recording, which may have been cut short ([`CallTracker::gave_up`]: the
    /// caller may look at the file). One whose originated channel is
    /// gone but others are listed is ending: it ends the same way, and `recording_ready`
    /// follows their hangups when the recording had started. Ignored unless the tracker is
    /// lost.
    pub fn handle_resynced(&mut self, now: Millis) {
        if self.lost_at.take().is_none() {
            return;
        }
        let listing = core::mem::replace(&mut self.listing, Listing::EMPTY);
        self.last_activity = now;
        self.live_channels = listing.channels;
        if let Some((id, _, _)) = listing.other {
            if self.other_leg.is_empty() {
                self.other_leg = id;
            }
            self.recording |= self.records;
        }
        let Some((state, bridge)) = listing.originated else {
            if listing.channels == 0 {
                // Hung up unseen, or the PBX restarted: a recording may be cut short.
                return self.give_up(now);
            }
            // Ending: the channels left hang up in sight, so the recording is whole.
            return self.end_unseen(now);
        };
        self.seen_channel = true;
        if self.phase == Phase::Queued {
            self.phase = Phase::Originating;
        }
        if state == ChannelState::Ringing || state == ChannelState::Up {
            self.on_state(now, Leg::Originated, state);
        }
        if let Some((_, other_state, other_bridge)) = listing.other {
            if other_state == ChannelState::Ringing {
                self.on_state(now, Leg::Other, ChannelState::Ringing);
            }
            if !bridge.is_empty() && bridge.as_str() == other_bridge.as_str() {
                self.join(now);
            }
        }
    }

    /// The connection's listing could not be had (the PBX refused `CoreShowChannels`): the
    /// call ends as if it had vanished, claiming no recording ([`CallTracker::gave_up`]).
    /// Ignored unless the tracker is lost.
    pub fn handle_resync_failed(&mut self, now: Millis) {
        if self.lost_at.take().is_none() {
            return;
        }
        self.listing = Listing::EMPTY;
        self.give_up(now);
    }

    /// Ends a call whose outcome the PBX's events no longer tell: `failed`, or `hangup` once
    /// joined, with `pbx_error`.
    fn end_unseen(&mut self, now: Millis) {
        let event = if self.phase == Phase::Joined {
            Event::Hangup
        } else {
            Event::Failed
        };
        self.end(now, event, Cause::PbxError, 0);
    }

    /// Ends the call unseen and forgets its channels and recording: nothing more will be
    /// heard of it.
    fn give_up(&mut self, now: Millis) {
        self.end_unseen(now);
        self.live_channels = 0;
        self.recording = false;
        self.gave_up = true;
    }

    /// Whether the call ended without the PBX telling how: its channels were gone unseen,
    /// its listing could not be had, or its deadline passed. No `recording_ready` was
    /// claimed for it: the caller may look at the file itself
    /// ([`CallTracker::handle_recording_whole`]).
    pub fn gave_up(&self) -> bool {
        self.gave_up
    }

    /// The recording of a call that [gave up](CallTracker::gave_up) was found whole (its
    /// writer closed it: a WAV's sizes are set): `recording_ready` follows, once. Ignored
    /// for any other call.
    pub fn handle_recording_whole(&mut self, now: Millis) {
        if self.gave_up && self.phase == Phase::Ended && self.lost_at.is_none() {
            self.recording = true;
            self.maybe_recording_ready(now);
        }
    }

    /// When [`CallTracker::handle_timeout`] should next be called: always, until the
    /// tracker is finished ([`Timeouts`]).
    pub fn poll_timeout(&self) -> Option<Millis> {
        if self.is_finished() {
            return None;
        }
        let max_call = self.created.saturating_add(self.timeouts.max_call_ms);
        let silence_from = match (self.lost_at, self.phase) {
            // Nothing can be heard until the connection is back: the wait starts at the loss.
            (Some(lost_at), _) => lost_at,
            (None, Phase::Joined) => return Some(max_call),
            (None, Phase::Queued | Phase::Originating | Phase::Answered | Phase::Ended) => {
                self.last_activity
            }
        };
        Some(
            silence_from
                .saturating_add(self.timeouts.silence_ms)
                .min(max_call),
        )
    }

    /// Past the deadline the tracker gives up on the call: one that has not ended fails
    /// with `pbx_error` (a joined one ends with `hangup`/`pbx_error`), and it is finished,
    /// claiming no recording ([`CallTracker::gave_up`]).
    pub fn handle_timeout(&mut self, now: Millis) {
        if self.poll_timeout().is_none_or(|deadline| now < deadline) {
            return;
        }
        self.lost_at = None;
        self.give_up(now);
    }

    /// The next notification, oldest first.
    pub fn poll_progress(&mut self) -> Option<Progress> {
        let first = self.queue.first_mut()?.take();
        self.queue.rotate_left(1);
        first
    }

    /// Whether the call has ended and every notification was produced (the caller may drop
    /// the tracker once the queue is drained); never while it waits to be re-synchronised.
    pub fn is_finished(&self) -> bool {
        self.lost_at.is_none()
            && self.phase == Phase::Ended
            && self.live_channels == 0
            && (!self.recording || self.recording_ready_sent)
    }

    fn on_state(&mut self, now: Millis, leg: Leg, state: ChannelState) {
        let callee_side = match self.mode {
            Mode::TwoLeg | Mode::AgentInitiated => leg == Leg::Other,
            Mode::SingleLeg => leg == Leg::Originated,
        };
        let ringing = state == ChannelState::Ringing;
        if ringing && callee_side {
            if !self.callee_ringing_sent && self.phase < Phase::Joined {
                self.callee_ringing_sent = true;
                self.emit(Event::CalleeRinging, None, 0, now);
            }
        } else if ringing && leg == Leg::Originated {
            if !self.agent_ringing_sent && self.phase <= Phase::Originating {
                self.agent_ringing_sent = true;
                self.emit(Event::AgentRinging, None, 0, now);
            }
        } else if state == ChannelState::Up
            && leg == Leg::Originated
            && self.phase <= Phase::Originating
        {
            self.phase = Phase::Answered;
            if self.mode == Mode::TwoLeg {
                self.emit(Event::AgentAnswered, None, 0, now);
            }
        }
    }

    fn on_hangup(&mut self, now: Millis, leg: Leg, cause: u16) {
        match self.phase {
            Phase::Queued | Phase::Originating if leg == Leg::Originated => {
                let reason = match cause {
                    17 | 21 => Cause::AgentBusy,
                    18 | 19 => Cause::AgentNoAnswer,
                    _ => Cause::AgentUnavailable,
                };
                let reason = self.for_mode_originated(reason);
                self.end(now, Event::Failed, reason, cause);
            }
            Phase::Answered if leg == Leg::Other => self.fail_other_leg(now, cause),
            Phase::Answered if leg == Leg::Originated && self.other_leg_lives() => {
                // The originated side hung up before the other leg was bridged, and the
                // other leg's Hangup is still to come: Asterisk sends the two in either
                // order, and only the other leg's carries the callee's cause (1 for a 404,
                // 21 for a 603). It decides.
                self.originated_gone = true;
            }
            Phase::Answered if leg == Leg::Originated => {
                // The originated side hung up before the other leg was bridged.
                let reason = match self.other_leg_dial_end {
                    Some(DialStatus::Busy) => Cause::CalleeBusy,
                    Some(DialStatus::NoAnswer) => Cause::CalleeNoAnswer,
                    _ => Cause::AgentHungUp,
                };
                self.end(now, Event::Failed, reason, cause);
            }
            Phase::Joined => {
                let reason = if self.reached_max_duration(now) {
                    Cause::MaxDuration
                } else {
                    Cause::joined_call_end(cause)
                };
                self.end(now, Event::Hangup, reason, cause);
            }
            Phase::Queued | Phase::Originating | Phase::Answered | Phase::Ended => {}
        }
        if self.live_channels == 0 && self.phase == Phase::Ended {
            self.maybe_recording_ready(now);
        }
    }

    /// The other leg was bridged with the originated channel: `joined`, once, after the
    /// answer.
    fn join(&mut self, now: Millis) {
        if self.phase == Phase::Answered {
            self.phase = Phase::Joined;
            self.joined_at = now;
            self.emit(Event::Joined, None, 0, now);
        }
    }

    /// Whether a joined call has lasted its own longest duration.
    fn reached_max_duration(&self, now: Millis) -> bool {
        self.timeouts.max_duration_ms.is_some_and(|max| {
            now.saturating_sub(self.joined_at) >= max.saturating_sub(MAX_DURATION_TOLERANCE_MS)
        })
    }

    /// Whether the originated channel dialled another leg whose channel has not hung up.
    fn other_leg_lives(&self) -> bool {
        !self.other_leg.is_empty() && !self.other_leg_gone
    }

    /// The other leg ended without being bridged.
    fn fail_other_leg(&mut self, now: Millis, cause: u16) {
        if self.phase != Phase::Answered {
            return;
        }
        let reason = match (self.other_leg_dial_end, cause) {
            (Some(DialStatus::Cancel), _) => Cause::AgentHungUp,
            // The originated side left first and no dial outcome says why the other
            // leg ended: the agent gave up.
            (None, _) if self.originated_gone => Cause::AgentHungUp,
            (Some(DialStatus::Busy), _) | (_, 17) => Cause::CalleeBusy,
            (Some(DialStatus::ChanUnavail | DialStatus::Congestion), _) => Cause::CalleeUnavailable,
            (_, 1) => Cause::CalleeNotFound,
            (_, 21) => Cause::CalleeRejected,
            _ => Cause::CalleeNoAnswer,
        };
        self.end(now, Event::Failed, reason, cause);
    }

    /// In single-leg mode the originated channel is the callee's.
    fn for_mode_originated(&self, cause: Cause) -> Cause {
        match (self.mode, cause) {
            (Mode::TwoLeg | Mode::AgentInitiated, c) => c,
            (Mode::SingleLeg, Cause::AgentBusy) => Cause::CalleeBusy,
            (Mode::SingleLeg, Cause::AgentNoAnswer) => Cause::CalleeNoAnswer,
            (Mode::SingleLeg, Cause::AgentUnavailable) => Cause::CalleeUnavailable,
            (Mode::SingleLeg, c) => c,
        }
    }

    fn maybe_recording_ready(&mut self, now: Millis) {
        if self.recording && !self.recording_ready_sent {
            self.recording_ready_sent = true;
            self.emit(Event::RecordingReady, None, 0, now);
        }
    }

    fn end(&mut self, now: Millis, event: Event, cause: Cause, q850: u16) {
        if self.phase == Phase::Ended {
            return;
        }
        self.phase = Phase::Ended;
        self.emit(event, Some(cause), q850, now);
    }

    /// Queues `event`, unless an event of the same or a later place in a call's order was
    /// said: events the PBX shows out of that order (a callee's leg ringing before the
    /// agent's) are not said late, so every host numbers and orders a call's
    /// notifications alike.
    fn emit(&mut self, event: Event, cause: Option<Cause>, q850: u16, at: Millis) {
        let sequence = u8::try_from(event.sequence()).unwrap_or(u8::MAX);
        if sequence <= self.said_up_to {
            return;
        }
        self.said_up_to = sequence;
        let progress = Progress {
            event,
            cause,
            q850: (q850 != 0).then_some(q850),
            at,
        };
        if let Some(slot) = self.queue.iter_mut().find(|s| s.is_none()) {
            *slot = Some(progress);
        }
    }
}
