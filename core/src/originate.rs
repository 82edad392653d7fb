//! The Originate of a click2dial call, composed once for every deployment.
//!
//! Two legs: ring the agent (`<agent_tech>/<agent>`), and once it answers run
//! `outbound_context`/`<callee>`, whose dialplan dials the callee with `outbound_id` as caller
//! ID. One leg (agent equals callee): ring the callee through `direct_channel` and connect it
//! to `direct_context`. `ActionID` and `ChannelId` are the call's derived
//! [`crate::reference::ChannelId`]. The channel variables carry the call's values to the
//! dialplan (`C2D_*`, always) and, as `PJSIP_HEADER(add,X-Teleforge-…)`, onto the INVITE
//! of the originated channel — only when that channel is PJSIP: on any other technology
//! (the one-leg `Local/<callee>@c2d-single`) Asterisk logs an `ERROR` per header and adds
//! nothing, and the dialplan adds the headers itself where it dials a PJSIP phone.

use crate::ami::{Action, ActionError, Channel, Originate};

/// How the callee's digits reach the dialplan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CalleeDigits {
    /// As the client sent them (`0820001234`).
    AsGiven,
    /// E.164 without `+` (`27820001234`).
    E164,
}

/// The dialplan names and timeouts an Originate uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dialplan<'a> {
    /// Channel technology of agents' endpoints (`PJSIP/<agent>`).
    pub agent_tech: &'a str,
    /// Context that dials the callee once the agent answered.
    pub outbound_context: &'a str,
    /// Context of one-leg calls, entered when the callee answered.
    pub direct_context: &'a str,
    /// Channel that reaches the callee of a one-leg call; `{callee}` is replaced.
    pub direct_channel: &'a str,
    /// How long the first phone rings, in milliseconds.
    pub ring_timeout_ms: u32,
    /// How the callee's digits reach the dialplan.
    pub callee_digits: CalleeDigits,
}

impl Dialplan<'static> {
    /// The names of the Asterisk integration kit (`host/asterisk/extensions.conf`).
    pub const DEFAULT: Self = Self {
        agent_tech: "PJSIP",
        outbound_context: "c2d-outbound",
        direct_context: "c2d-direct",
        direct_channel: "Local/{callee}@c2d-single",
        ring_timeout_ms: 20_000,
        callee_digits: CalleeDigits::AsGiven,
    };
}

/// The values of one accepted call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OriginateCall<'a> {
    /// `ChannelId`, also the `ActionID`.
    pub channel_id: &'a str,
    /// The agent's extension (the callee's number for a one-leg call).
    pub agent: &'a str,
    /// The callee as the client sent it.
    pub callee: &'a str,
    /// The callee in E.164, with or without `+`.
    pub callee_e164: &'a str,
    /// The caller ID for the callee.
    pub outbound_id: &'a str,
    /// The contact reference in use.
    pub contact_ref: &'a str,
    /// The recording reference.
    pub recording_ref: &'a str,
    /// `agent` equals `callee`.
    pub single_leg: bool,
}

/// How many of the Originate's variables are `C2D_*` (they come first; the rest are
/// `PJSIP_HEADER(add,…)`).
const C2D_VARIABLES: usize = 4;

/// Longest `direct_channel` after `{callee}` is filled in.
const DIRECT_CHANNEL_MAX_LEN: usize = 128;

/// Writes the call's Originate into `out`; returns the length.
pub fn write_originate(
    call: &OriginateCall<'_>,
    dialplan: &Dialplan<'_>,
    out: &mut [u8],
) -> Result<usize, ActionError> {
    let callee = match dialplan.callee_digits {
        CalleeDigits::AsGiven => call.callee,
        CalleeDigits::E164 => call
            .callee_e164
            .strip_prefix('+')
            .unwrap_or(call.callee_e164),
    };
    let all = [
        ("C2D_CONTACT_REF", call.contact_ref),
        ("C2D_RECORDING_REF", call.recording_ref),
        ("C2D_OUTBOUND_ID", call.outbound_id),
        ("C2D_CALLEE", callee),
        ("PJSIP_HEADER(add,X-Teleforge-Agent)", call.agent),
        ("PJSIP_HEADER(add,X-Teleforge-Callee)", callee),
        (
            "PJSIP_HEADER(add,X-Teleforge-Outbound-Id)",
            call.outbound_id,
        ),
        (
            "PJSIP_HEADER(add,X-Teleforge-Contact-Ref)",
            call.contact_ref,
        ),
        (
            "PJSIP_HEADER(add,X-Teleforge-Recording-Ref)",
            call.recording_ref,
        ),
    ];
    let mut direct = [0u8; DIRECT_CHANNEL_MAX_LEN];
    let (channel, context, exten, caller_id) = if call.single_leg {
        let resource = fill(dialplan.direct_channel, "{callee}", callee, &mut direct)
            .ok_or(ActionError::TooLong { header: "Channel" })?;
        let (tech, resource) = resource.split_once('/').unwrap_or(("PJSIP", resource));
        (
            Channel { tech, resource },
            dialplan.direct_context,
            "s",
            call.outbound_id,
        )
    } else {
        (
            Channel {
                tech: dialplan.agent_tech,
                resource: call.agent,
            },
            dialplan.outbound_context,
            callee,
            // What the agent's phone shows: whom it is about to call.
            callee,
        )
    };
    let count = if channel.tech.eq_ignore_ascii_case("PJSIP") {
        all.len()
    } else {
        C2D_VARIABLES
    };
    let variables = all.get(..count).unwrap_or(&all);
    Originate {
        action_id: call.channel_id,
        channel,
        context,
        exten,
        priority: 1,
        caller_id: Some(caller_id),
        timeout_ms: Some(dialplan.ring_timeout_ms),
        channel_id: Some(call.channel_id),
        other_channel_id: None,
        variables,
    }
    .write(out)
}

/// `template` with every `pattern` replaced by `with`, written into `out`.
fn fill<'o>(template: &str, pattern: &str, with: &str, out: &'o mut [u8]) -> Option<&'o str> {
    let mut len = 0usize;
    let mut rest = template;
    loop {
        let (head, tail) = match rest.split_once(pattern) {
            Some((head, tail)) => (head, Some(tail)),
            None => (rest, None),
        };
        for part in [head, if tail.is_some() { with } else { "" }] {
            let end = len.checked_add(part.len())?;
            out.get_mut(len..end)?.copy_from_slice(part.as_bytes());
            len = end;
        }
        match tail {
            Some(tail) => rest = tail,
            None => break,
        }
    }
    core::str::from_utf8(out.get(..len)?).ok()
}
