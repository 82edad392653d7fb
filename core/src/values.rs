//! The values of one accepted call, owned and inline: what every deployment keeps of a call
//! once its request body is gone, to originate it, follow it and answer for it. One shape for
//! the appliance's AMI task and the host's stored call record.

use crate::dial::DialControls;
use crate::originate::OriginateCall;
use crate::reference::Reference;
use crate::text::Text;
use crate::validate::{Call, CONTACT_REF_MAX_LEN};

/// Longest `agent`: an extension (3-4 digits) or, for a one-leg call, the callee's number.
pub const AGENT_MAX_LEN: usize = CALLEE_MAX_LEN;
/// Longest valid `callee` (`00` and 14 digits).
pub const CALLEE_MAX_LEN: usize = 16;
/// Longest callee in E.164 with its `+`.
pub const E164_MAX_LEN: usize = 16;
/// Longest valid `outbound_id` (`tvc_` and 64 characters).
pub const OUTBOUND_ID_MAX_LEN: usize = 68;

/// One accepted call's values. Its serde form is the host's stored call record's (flattened
/// into it): `callee` may be absent in records stored before it was kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CallValues {
    /// The agent's extension (the callee's number for a one-leg call).
    pub agent: Text<AGENT_MAX_LEN>,
    /// The callee as the client sent it.
    #[serde(default)]
    pub callee: Text<CALLEE_MAX_LEN>,
    /// The callee in E.164, with `+`.
    pub callee_e164: Text<E164_MAX_LEN>,
    /// The caller ID for the callee.
    pub outbound_id: Text<OUTBOUND_ID_MAX_LEN>,
    /// The contact reference in use.
    pub contact_ref: Text<CONTACT_REF_MAX_LEN>,
    /// The recording reference.
    pub recording_ref: Reference,
    /// `agent` equals `callee`.
    pub single_leg: bool,
    /// Ring limits, longest duration, recording (absent in records stored before they
    /// existed: the defaults).
    #[serde(default)]
    pub controls: DialControls,
}

impl CallValues {
    /// A copy of a validated call's values; `None` only if one is longer than any valid
    /// value (never, for a call core validated).
    pub fn new(call: &Call<'_>) -> Option<Self> {
        let valid = &call.valid;
        let (cc, rest) = valid.callee.e164_parts();
        Some(Self {
            agent: Text::new(valid.agent)?,
            callee: Text::new(valid.callee.as_str())?,
            callee_e164: Text::new_from_parts(&["+", cc, rest])?,
            outbound_id: Text::new(valid.outbound_id.as_str())?,
            contact_ref: Text::new(call.contact_ref.as_str())?,
            recording_ref: call.recording_ref,
            single_leg: valid.single_leg,
            controls: valid.controls,
        })
    }

    /// The call's Originate, under `channel_id` (also its `ActionID`).
    pub fn originate<'a>(&'a self, channel_id: &'a str) -> OriginateCall<'a> {
        OriginateCall {
            channel_id,
            agent: self.agent.as_str(),
            callee: self.callee.as_str(),
            callee_e164: self.callee_e164.as_str(),
            outbound_id: self.outbound_id.as_str(),
            contact_ref: self.contact_ref.as_str(),
            recording_ref: self.recording_ref.as_str(),
            single_leg: self.single_leg,
            controls: self.controls,
        }
    }
}
