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
use crate::decimal::Decimal;
use crate::dial::DialControls;

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
    /// The call's dial controls.
    pub controls: DialControls,
}

/// The most variables an Originate carries: seven `C2D_*` and five headers.
const MAX_VARIABLES: usize = 12;

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
    let controls = &call.controls;
    let callee_ring = controls
        .callee_ring_timeout_secs
        .map(|s| Decimal::new(s.into()));
    let max_duration = controls.max_duration_secs.map(|s| Decimal::new(s.into()));
    // The dial controls reach the dialplan only when given, so a call without them sends
    // what it always did.
    let c2d = [
        Some(("C2D_CONTACT_REF", call.contact_ref)),
        Some(("C2D_RECORDING_REF", call.recording_ref)),
        Some(("C2D_OUTBOUND_ID", call.outbound_id)),
        Some(("C2D_CALLEE", callee)),
        callee_ring
            .as_ref()
            .map(|secs| ("C2D_CALLEE_RING_SECS", secs.as_str())),
        max_duration
            .as_ref()
            .map(|secs| ("C2D_MAX_DURATION_SECS", secs.as_str())),
        (!controls.record).then_some(("C2D_RECORD", "no")),
    ];
    let headers = [
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
        let (tech, resource) =
            crate::text::split_once(resource, b'/').unwrap_or(("PJSIP", resource));
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
    let with_headers = channel.tech.eq_ignore_ascii_case("PJSIP");
    let mut all = [("", ""); MAX_VARIABLES];
    let mut count = 0usize;
    let chosen = c2d
        .into_iter()
        .flatten()
        .chain(headers.into_iter().filter(|_| with_headers));
    for (slot, variable) in all.iter_mut().zip(chosen) {
        *slot = variable;
        count = count.saturating_add(1);
    }
    let variables = all.get(..count).unwrap_or(&all);
    // The first phone rings for the caller's limit: the agent's, or for a one-leg call the
    // callee's (the only phone).
    let first_ring_secs = if call.single_leg {
        controls.callee_ring_timeout_secs
    } else {
        controls.agent_ring_timeout_secs
    };
    let timeout_ms = first_ring_secs.map_or(dialplan.ring_timeout_ms, |secs| {
        u32::from(secs).saturating_mul(1000)
    });
    Originate {
        action_id: call.channel_id,
        channel,
        context,
        exten,
        priority: 1,
        caller_id: Some(caller_id),
        timeout_ms: Some(timeout_ms),
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
        let at = crate::text::find(rest, pattern);
        let (head, tail) = match at
            .and_then(|i| Some((rest.get(..i)?, rest.get(i.checked_add(pattern.len())?..)?)))
        {
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
