//! The click2dial FastAGI script: one session, from the environment to "close".
//!
//! Sans-IO: bytes from Asterisk go in with [`Script::handle_input`], commands come out of
//! [`Script::poll_transmit`], and what the driver must act on comes out of
//! [`Script::poll_event`]. One command is in flight at a time.
//!
//! 1. After the environment it reads the caller's PJSIP endpoint (`GET VARIABLE
//!    CHANNEL(endpoint)`), the agent's identity; then, only if there is one, `X-Teleforge-Callee`,
//!    `-Outbound-Id`, `-Contact-Ref`, `-Agent` (`GET VARIABLE "PJSIP_HEADER(read,…)"`).
//!    A missing header answers `200 result=0`; any reply but `200 result=1 (…)` counts as
//!    absent. Without an endpoint (a channel that is not PJSIP answers `200 result=0`) the
//!    call is refused anyway, and each `PJSIP_HEADER` read would log an `ERROR` in Asterisk,
//!    so the script goes straight to the decision.
//! 2. [`ScriptEvent::Decide`]: the driver copies [`Script::headers`], validates them (see
//!    [`super::Headers::validate`]), applies idempotency, and calls [`Script::decide`].
//! 3. It sets the channel variables the dialplan reads — `C2D_DECISION` `dial` with
//!    `C2D_CALLEE`, `C2D_OUTBOUND_CID`, `C2D_RECORDING_REF`, `C2D_CONTACT_REF`; or `reject`
//!    with `C2D_REJECT_REASON` (the stable error code) and `C2D_REJECT_CAUSE` (Q.850) —
//!    then emits [`ScriptEvent::Close`]: half-close the socket and read until Asterisk
//!    closes (it sends a last `HANGUP` when the AGI ends, even on a live channel).
//!
//! A `HANGUP` before the last variable is set means the caller is gone: the script emits
//! [`ScriptEvent::HungUp`] then [`ScriptEvent::Close`] at once, without deciding, so the
//! driver abandons the call (Asterisk keeps the dead channel in the AGI until the service
//! closes). The script reads no clock: Asterisk has no read timeout on the service, so the
//! driver bounds the session's length and closes on its own when it is exceeded.

use core::fmt;

use crate::error::{BufferTooSmall, ErrorCode};
use crate::validate::{Call, CONTACT_REF_MAX_LEN};

use super::command::{is_sendable, Command};
use super::frame::{DecodeError, Decoder, Frame, Reply};
use super::headers::{Header, Headers, Rejection};
use crate::text::Text;

/// Longest `agi_uniqueid` kept (Asterisk allows 149 bytes; its own are `1795758224.2`).
pub const UNIQUEID_MAX_LEN: usize = 150;

/// Longest `agi_channel` kept.
pub const CHANNEL_MAX_LEN: usize = 128;

/// Longest callee digits a decision can carry.
pub const CALLEE_MAX_LEN: usize = 32;

/// Longest outbound caller ID a decision can carry (`tvc_` and 64 characters).
pub const OUTBOUND_CID_MAX_LEN: usize = 80;

/// Longest recording reference a decision can carry (the service's own are 26 characters).
pub const RECORDING_REF_MAX_LEN: usize = 64;

/// What the driver must act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ScriptEvent {
    /// The caller hung up before the decision reached the dialplan: abandon the call.
    HungUp,
    /// Every value is read: validate [`Script::headers`] and call [`Script::decide`].
    Decide,
    /// Nothing more to send: half-close, read until Asterisk closes, drop the script.
    Close,
}

/// Dial the callee: the values the dialplan's `c2d-dial` context uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Dial<'a> {
    /// `C2D_CALLEE`: the digits the dialplan dials (`0820001234`).
    pub callee: &'a str,
    /// `C2D_OUTBOUND_CID`: the callee leg's caller ID.
    pub outbound_cid: &'a str,
    /// `C2D_RECORDING_REF`: the recording is `<recording_ref>.wav`.
    pub recording_ref: &'a str,
    /// `C2D_CONTACT_REF`.
    pub contact_ref: &'a str,
}

impl<'a> Dial<'a> {
    /// The values of an accepted call, with the callee's digits as the softphone sent them
    /// (as [`crate::originate::CalleeDigits::AsGiven`]) and the outbound ID as given.
    pub fn for_call(call: &'a Call<'a>) -> Self {
        Self {
            callee: call.valid.callee.as_str(),
            outbound_cid: call.valid.outbound_id.as_str(),
            recording_ref: call.recording_ref.as_str(),
            contact_ref: call.contact_ref.as_str(),
        }
    }
}

/// The driver's answer to [`ScriptEvent::Decide`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Decision<'a> {
    /// The dialplan dials the callee.
    Dial(Dial<'a>),
    /// The dialplan hangs up the caller.
    Reject {
        /// `C2D_REJECT_REASON`: the stable error code.
        code: ErrorCode,
        /// `C2D_REJECT_CAUSE`: the Q.850 cause.
        cause: u8,
    },
}

impl From<Rejection> for Decision<'_> {
    fn from(r: Rejection) -> Self {
        Self::Reject {
            code: r.error.code,
            cause: r.cause,
        }
    }
}

/// Why [`Script::decide`] refused a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DecideError {
    /// No [`ScriptEvent::Decide`] is pending (too early, already decided, or hung up).
    NotDeciding,
    /// A value holds a byte AGI cannot carry (`"`, `\`, a control byte), or is empty.
    UnsafeValue,
    /// A value is longer than the script keeps.
    TooLong,
}

impl fmt::Display for DecideError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotDeciding => "the script is not waiting for a decision",
            Self::UnsafeValue => "a decision value cannot be sent over AGI",
            Self::TooLong => "a decision value is too long",
        })
    }
}

impl core::error::Error for DecideError {}

/// Why a session cannot go on. Close the connection; the dialplan then rejects the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ScriptError {
    /// The bytes are not AGI.
    Decode(DecodeError),
    /// A reply arrived with no command in flight, or the environment came twice.
    Unexpected,
    /// The environment has no `agi_uniqueid`, or one too long to keep.
    NoUniqueid,
}

impl From<DecodeError> for ScriptError {
    fn from(e: DecodeError) -> Self {
        Self::Decode(e)
    }
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Decode(e) => e.fmt(f),
            Self::Unexpected => f.write_str("AGI frame out of turn"),
            Self::NoUniqueid => f.write_str("AGI environment without a usable agi_uniqueid"),
        }
    }
}

impl core::error::Error for ScriptError {}

/// The decision, copied so its commands can be written one at a time.
// One per session and nothing to box into without alloc.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stored {
    Dial {
        callee: Text<CALLEE_MAX_LEN>,
        outbound_cid: Text<OUTBOUND_CID_MAX_LEN>,
        recording_ref: Text<RECORDING_REF_MAX_LEN>,
        contact_ref: Text<CONTACT_REF_MAX_LEN>,
    },
    Reject {
        code: ErrorCode,
        cause: Text<3>,
    },
}

impl Stored {
    fn new(decision: &Decision<'_>) -> Result<Self, DecideError> {
        match *decision {
            Decision::Dial(d) => {
                for v in [d.callee, d.outbound_cid, d.recording_ref, d.contact_ref] {
                    if v.is_empty() || !is_sendable(v) {
                        return Err(DecideError::UnsafeValue);
                    }
                }
                Ok(Self::Dial {
                    callee: Text::new(d.callee).ok_or(DecideError::TooLong)?,
                    outbound_cid: Text::new(d.outbound_cid).ok_or(DecideError::TooLong)?,
                    recording_ref: Text::new(d.recording_ref).ok_or(DecideError::TooLong)?,
                    contact_ref: Text::new(d.contact_ref).ok_or(DecideError::TooLong)?,
                })
            }
            Decision::Reject { code, cause } => {
                let mut digits = [0u8; 3];
                let mut n = cause;
                let mut len = 0usize;
                for slot in digits.iter_mut().rev() {
                    *slot = b'0'.saturating_add(n % 10);
                    n /= 10;
                    len = len.saturating_add(1);
                    if n == 0 {
                        break;
                    }
                }
                let start = digits.len().saturating_sub(len);
                let text = digits
                    .get(start..)
                    .and_then(|d| core::str::from_utf8(d).ok())
                    .and_then(Text::new)
                    .ok_or(DecideError::TooLong)?;
                Ok(Self::Reject { code, cause: text })
            }
        }
    }

    /// The `index`th `SET VARIABLE`, if any.
    fn variable(&self, index: usize) -> Option<(&'static str, &str)> {
        match self {
            Self::Dial {
                callee,
                outbound_cid,
                recording_ref,
                contact_ref,
            } => [
                ("C2D_DECISION", "dial"),
                ("C2D_CALLEE", callee.as_str()),
                ("C2D_OUTBOUND_CID", outbound_cid.as_str()),
                ("C2D_RECORDING_REF", recording_ref.as_str()),
                ("C2D_CONTACT_REF", contact_ref.as_str()),
            ]
            .get(index)
            .copied(),
            Self::Reject { code, cause } => [
                ("C2D_DECISION", "reject"),
                ("C2D_REJECT_REASON", code.as_str()),
                ("C2D_REJECT_CAUSE", cause.as_str()),
            ]
            .get(index)
            .copied(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Waiting for the environment.
    Environment,
    /// Reading `Header::ALL[i]`.
    Read(usize),
    /// Waiting for [`Script::decide`].
    Deciding,
    /// Setting the decision's `i`th variable.
    Set(usize),
    /// Nothing more to send.
    Done,
}

/// One FastAGI session of the click2dial script.
#[derive(Clone, Debug)]
pub struct Script {
    decoder: Decoder,
    stage: Stage,
    /// A command was sent and its reply has not arrived.
    in_flight: bool,
    uniqueid: Text<UNIQUEID_MAX_LEN>,
    channel: Text<CHANNEL_MAX_LEN>,
    headers: Headers,
    decision: Option<Stored>,
    hung_up: bool,
    /// A `SET VARIABLE` was not answered `200`.
    set_failed: bool,
    pending_hung_up: bool,
    pending_decide: bool,
    pending_close: bool,
}

impl Default for Script {
    fn default() -> Self {
        Self::new()
    }
}

impl Script {
    /// A script for a freshly accepted connection.
    pub const fn new() -> Self {
        Self {
            decoder: Decoder::new(),
            stage: Stage::Environment,
            in_flight: false,
            uniqueid: Text::EMPTY,
            channel: Text::EMPTY,
            headers: Headers::new(),
            decision: None,
            hung_up: false,
            set_failed: false,
            pending_hung_up: false,
            pending_decide: false,
            pending_close: false,
        }
    }

    /// Decodes and handles every complete frame at the front of `buf`; returns how many
    /// bytes were used (drop them; keep the rest for the next call).
    pub fn handle_input(&mut self, buf: &[u8]) -> Result<usize, ScriptError> {
        let mut used = 0usize;
        while let Some(decoded) = self.decoder.decode(buf.get(used..).unwrap_or_default())? {
            used = used.saturating_add(decoded.len);
            self.handle_frame(&decoded.frame)?;
        }
        Ok(used)
    }

    /// Handles one decoded frame (for drivers that run the [`Decoder`] themselves).
    pub fn handle_frame(&mut self, frame: &Frame<'_>) -> Result<(), ScriptError> {
        if self.stage == Stage::Done {
            // The trailing `HANGUP` and late replies after a hang-up change nothing.
            return Ok(());
        }
        match frame {
            Frame::Environment(env) => {
                if self.stage != Stage::Environment {
                    return Err(ScriptError::Unexpected);
                }
                self.uniqueid = env
                    .uniqueid()
                    .filter(|u| !u.is_empty())
                    .and_then(Text::new)
                    .ok_or(ScriptError::NoUniqueid)?;
                self.channel = env.channel().and_then(Text::new).unwrap_or_default();
                self.stage = Stage::Read(0);
            }
            Frame::Hangup => {
                self.hung_up = true;
                self.pending_hung_up = true;
                self.pending_decide = false;
                self.finish();
            }
            Frame::Reply(reply) => {
                if !self.in_flight {
                    return Err(ScriptError::Unexpected);
                }
                self.in_flight = false;
                self.on_reply(reply);
            }
        }
        Ok(())
    }

    fn on_reply(&mut self, reply: &Reply<'_>) {
        match self.stage {
            Stage::Read(i) => {
                if let Some(&header) = Header::ALL.get(i) {
                    let value = reply
                        .success()
                        .filter(|s| s.result == 1)
                        .and_then(|s| s.value);
                    self.headers.set(header, value);
                }
                let next = i.saturating_add(1);
                let identified = self.headers.endpoint().is_some();
                if identified && next < Header::ALL.len() {
                    self.stage = Stage::Read(next);
                } else {
                    self.stage = Stage::Deciding;
                    self.pending_decide = true;
                }
            }
            Stage::Set(i) => {
                if reply.success().is_none() {
                    self.set_failed = true;
                }
                let next = i.saturating_add(1);
                let more = self
                    .decision
                    .as_ref()
                    .and_then(|d| d.variable(next))
                    .is_some();
                if more {
                    self.stage = Stage::Set(next);
                } else {
                    self.finish();
                }
            }
            Stage::Environment | Stage::Deciding | Stage::Done => {}
        }
    }

    fn finish(&mut self) {
        if self.stage != Stage::Done {
            self.stage = Stage::Done;
            self.pending_close = true;
        }
    }

    /// Writes the next command into `out` (at least [`super::MAX_COMMAND_LEN`] bytes always
    /// suffice); `Ok(None)` when nothing is to be sent now.
    pub fn poll_transmit(&mut self, out: &mut [u8]) -> Result<Option<usize>, BufferTooSmall> {
        if self.in_flight {
            return Ok(None);
        }
        let command = match self.stage {
            Stage::Read(i) => match Header::ALL.get(i) {
                Some(h) => Command::GetVariable(h.variable()),
                None => return Ok(None),
            },
            Stage::Set(i) => match self.decision.as_ref().and_then(|d| d.variable(i)) {
                Some((name, value)) => Command::SetVariable { name, value },
                None => return Ok(None),
            },
            Stage::Environment | Stage::Deciding | Stage::Done => return Ok(None),
        };
        let len = command.write(out)?;
        self.in_flight = true;
        Ok(Some(len))
    }

    /// The next thing the driver must act on, oldest first.
    pub fn poll_event(&mut self) -> Option<ScriptEvent> {
        if core::mem::take(&mut self.pending_hung_up) {
            Some(ScriptEvent::HungUp)
        } else if core::mem::take(&mut self.pending_decide) {
            Some(ScriptEvent::Decide)
        } else if core::mem::take(&mut self.pending_close) {
            Some(ScriptEvent::Close)
        } else {
            None
        }
    }

    /// Answers [`ScriptEvent::Decide`]. The values are checked and copied; the commands
    /// follow from [`Script::poll_transmit`].
    pub fn decide(&mut self, decision: &Decision<'_>) -> Result<(), DecideError> {
        if self.stage != Stage::Deciding {
            return Err(DecideError::NotDeciding);
        }
        self.decision = Some(Stored::new(decision)?);
        self.pending_decide = false;
        self.stage = Stage::Set(0);
        Ok(())
    }

    /// The values read so far (all of them once [`ScriptEvent::Decide`] was emitted). Copy
    /// them (`Headers` is `Copy`) to validate while deciding.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// `agi_uniqueid`: the caller's channel, whose `Uniqueid` is the `Linkedid` of every
    /// channel of the call; empty before the environment.
    pub fn uniqueid(&self) -> &str {
        self.uniqueid.as_str()
    }

    /// `agi_channel` (`PJSIP/1002-00000002`); empty before the environment.
    pub fn channel(&self) -> &str {
        self.channel.as_str()
    }

    /// Whether Asterisk said `HANGUP` before the script finished.
    pub fn hung_up(&self) -> bool {
        self.hung_up
    }

    /// Whether every variable of a decision was set (`200` to each `SET VARIABLE`) before
    /// any hang-up: only then does the dialplan act on it.
    pub fn delivered(&self) -> bool {
        self.stage == Stage::Done && self.decision.is_some() && !self.set_failed && !self.hung_up
    }

    /// Whether the session is over (after [`ScriptEvent::Close`]).
    pub fn is_done(&self) -> bool {
        self.stage == Stage::Done
    }
}
