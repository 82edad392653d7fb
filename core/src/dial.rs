//! Per-call dial controls: how long each phone may ring, how long the call may last once
//! connected, and whether it is recorded. Optional in the create-call body; checked here for
//! every deployment, so the host and the appliance accept and refuse the same values.
//!
//! | field | type | bounds | default |
//! |---|---|---|---|
//! | `agent_ring_timeout_secs` | integer | 5–120 | the host's `[dialplan] ring_timeout_ms` |
//! | `callee_ring_timeout_secs` | integer | 5–120 | the PBX's `C2D_CALLEE_RING_SECS` (30) |
//! | `max_duration_secs` | integer | 10–86400 | none (the call's 24 h limit) |
//! | `record` | boolean | | `true` |
//!
//! `null` means the default. Any other type, a fraction, a negative number or a value out of
//! bounds is `422 invalid_dial_control` naming the field.

use crate::error::{Error, ErrorCode, Field};

/// The inclusive bounds of a control, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Smallest accepted value.
    pub min: u32,
    /// Largest accepted value.
    pub max: u32,
}

impl Bounds {
    const fn holds(self, value: u64) -> bool {
        value >= self.min as u64 && value <= self.max as u64
    }
}

/// Bounds of `agent_ring_timeout_secs` and `callee_ring_timeout_secs`.
pub const RING_TIMEOUT_SECS: Bounds = Bounds { min: 5, max: 120 };

/// Bounds of `max_duration_secs`: the longest is core's call limit ([`crate::call::MAX_CALL_MS`]).
pub const MAX_DURATION_SECS: Bounds = Bounds {
    min: 10,
    max: 86_400,
};

/// The controls as the body gave them, type-checked but not yet bounded: numbers are the
/// body's integers (saturated at `u64::MAX`), `None` when absent or `null`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DialRequest {
    /// `agent_ring_timeout_secs`
    pub agent_ring_timeout_secs: Option<u64>,
    /// `callee_ring_timeout_secs`
    pub callee_ring_timeout_secs: Option<u64>,
    /// `max_duration_secs`
    pub max_duration_secs: Option<u64>,
    /// `record`
    pub record: Option<bool>,
}

/// A call's dial controls, within their bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(default)]
pub struct DialControls {
    /// How long the agent's phone (the callee's, for a one-leg call) rings; `None`: the
    /// deployment's default.
    pub agent_ring_timeout_secs: Option<u16>,
    /// How long the callee's phone rings; `None`: the PBX's default.
    pub callee_ring_timeout_secs: Option<u16>,
    /// How long the call may last once the callee answered; `None`: no limit of its own.
    pub max_duration_secs: Option<u32>,
    /// Whether the call is recorded.
    pub record: bool,
}

impl DialControls {
    /// No control given: every default.
    pub const DEFAULT: Self = Self {
        agent_ring_timeout_secs: None,
        callee_ring_timeout_secs: None,
        max_duration_secs: None,
        record: true,
    };

    /// Whether every control is the default.
    pub fn is_default(&self) -> bool {
        *self == Self::DEFAULT
    }
}

impl Default for DialControls {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl DialRequest {
    /// Applies the bounds; the first control out of bounds is the error.
    pub fn validate(&self) -> Result<DialControls, Error> {
        Ok(DialControls {
            agent_ring_timeout_secs: ring(self.agent_ring_timeout_secs, Field::AgentRingTimeout)?,
            callee_ring_timeout_secs: ring(
                self.callee_ring_timeout_secs,
                Field::CalleeRingTimeout,
            )?,
            max_duration_secs: match self.max_duration_secs {
                None => None,
                Some(secs) if MAX_DURATION_SECS.holds(secs) => u32::try_from(secs).ok(),
                Some(_) => return Err(invalid(Field::MaxDuration)),
            },
            record: self.record.unwrap_or(true),
        })
    }
}

fn ring(value: Option<u64>, field: Field) -> Result<Option<u16>, Error> {
    match value {
        None => Ok(None),
        Some(secs) if RING_TIMEOUT_SECS.holds(secs) => Ok(u16::try_from(secs).ok()),
        Some(_) => Err(invalid(field)),
    }
}

/// The `422` for a control of the wrong type or out of bounds.
pub const fn invalid(field: Field) -> Error {
    Error::field(
        ErrorCode::InvalidDialControl,
        field,
        match field {
            Field::AgentRingTimeout => {
                "agent_ring_timeout_secs must be a whole number of seconds from 5 to 120"
            }
            Field::CalleeRingTimeout => {
                "callee_ring_timeout_secs must be a whole number of seconds from 5 to 120"
            }
            Field::MaxDuration => {
                "max_duration_secs must be a whole number of seconds from 10 to 86400"
            }
            _ => "record must be true or false",
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(agent: Option<u64>, callee: Option<u64>, max: Option<u64>) -> DialRequest {
        DialRequest {
            agent_ring_timeout_secs: agent,
            callee_ring_timeout_secs: callee,
            max_duration_secs: max,
            record: None,
        }
    }

    #[test]
    fn nothing_given_is_the_default() {
        let controls = DialRequest::default().validate().unwrap();
        assert!(controls.is_default());
        assert!(controls.record);
    }

    #[test]
    fn bounds_are_inclusive() {
        for secs in [5, 120] {
            let c = request(Some(secs), Some(secs), None).validate().unwrap();
            assert_eq!(c.agent_ring_timeout_secs, Some(secs as u16));
            assert_eq!(c.callee_ring_timeout_secs, Some(secs as u16));
        }
        for secs in [10, 86_400] {
            let c = request(None, None, Some(secs)).validate().unwrap();
            assert_eq!(c.max_duration_secs, Some(secs as u32));
        }
    }

    #[test]
    fn out_of_bounds_names_the_field() {
        for (req, field) in [
            (request(Some(4), None, None), Field::AgentRingTimeout),
            (request(Some(121), None, None), Field::AgentRingTimeout),
            (request(None, Some(0), None), Field::CalleeRingTimeout),
            (
                request(None, Some(u64::MAX), None),
                Field::CalleeRingTimeout,
            ),
            (request(None, None, Some(9)), Field::MaxDuration),
            (request(None, None, Some(86_401)), Field::MaxDuration),
        ] {
            let error = req.validate().unwrap_err();
            assert_eq!(error.code, ErrorCode::InvalidDialControl);
            assert_eq!(error.status(), 422);
            assert_eq!(error.field, Some(field));
            assert!(error.message.starts_with(field.as_str()), "{error}");
        }
    }

    #[test]
    fn the_first_bad_control_wins() {
        let error = request(Some(1), Some(1), Some(1)).validate().unwrap_err();
        assert_eq!(error.field, Some(Field::AgentRingTimeout));
    }
}
