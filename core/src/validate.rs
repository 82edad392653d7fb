//! Field rules, checked by walking DFAs that `build.rs` compiled from the patterns there.
//!
//! Each value is walked once, byte by byte, through its field's DFA, which validates it at one
//! table lookup per byte. The form of an accepted number follows from its leading digits,
//! because the patterns of each field start differently; debug builds check that it is the
//! pattern the DFA matched.

use core::fmt;

use crate::dfa::{self, Table};
use crate::error::{Error, ErrorCode, Field};
use crate::number::{NumberForm, OutboundId, PhoneNumber};
use crate::policy::DialPolicy;
use crate::reference::{ContactRef, Reference, REFERENCE_ENTROPY_LEN};
use crate::request::CallRequest;

/// Longest `contact_ref` kept; longer ones are truncated, not rejected.
pub const CONTACT_REF_MAX_LEN: usize = 230;

/// The validator tables could not be loaded. Kept for callers of [`Validators::new`]: since
/// the tables are constants checked when core is compiled, it no longer happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LoadError;

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the embedded validator tables could not be loaded")
    }
}

impl core::error::Error for LoadError {}

/// All field validators. Load once at start-up ([`Validators::new`] checks every table) and
/// share: validation itself only reads.
#[derive(Clone, Debug)]
pub struct Validators {
    agent: &'static Table,
    callee: &'static Table,
    outbound_id: &'static Table,
    contact_ref: &'static Table,
    recording_ref: &'static Table,
}

/// Callee pattern order in `build.rs`.
#[cfg(debug_assertions)]
const CALLEE_FORMS: [NumberForm; 4] = [
    NumberForm::National,
    NumberForm::International,
    NumberForm::InternationalPrefixed,
    NumberForm::Foreign,
];

/// The form of a callee the DFA accepted. The callee patterns of `build.rs` start differently
/// (`0[1-9]`, `27`, `0027`, `00` and never `27` after it), so the leading digits say which one
/// matched, for less than the DFA's pattern lookup; debug builds check that both agree.
fn callee_form(value: &[u8]) -> NumberForm {
    match value {
        [b'2', ..] => NumberForm::International,
        [b'0', b'0', b'2', b'7', ..] => NumberForm::InternationalPrefixed,
        [b'0', b'0', ..] => NumberForm::Foreign,
        _ => NumberForm::National,
    }
}

/// The pattern index (in `build.rs` order) of a caller ID the DFA accepted, from its first
/// byte: `tvc_`, `0[1-9]`, `27`. Debug builds check it against the DFA's.
fn outbound_id_pattern(value: &[u8]) -> usize {
    match value {
        [b't', ..] => 0,
        [b'0', ..] => 1,
        _ => 2,
    }
}

impl Validators {
    /// The validators over the tables `build.rs` compiled (checked when core was compiled,
    /// so this never fails; the `Result` is kept for its callers).
    pub fn new() -> Result<Self, LoadError> {
        Ok(Self {
            agent: &dfa::AGENT,
            callee: &dfa::CALLEE,
            outbound_id: &dfa::OUTBOUND_ID,
            contact_ref: &dfa::CONTACT_REF,
            recording_ref: &dfa::RECORDING_REF,
        })
    }

    /// Classifies a callee, or `None` when it has none of the accepted forms.
    pub fn callee<'a>(&self, value: &'a str) -> Option<PhoneNumber<'a>> {
        let bytes = value.as_bytes();
        if !self.callee.is_full_match(bytes) {
            return None;
        }
        let form = callee_form(bytes);
        #[cfg(debug_assertions)]
        debug_assert_eq!(
            self.callee
                .full_match(bytes)
                .and_then(|p| CALLEE_FORMS.get(p)),
            Some(&form),
            "{value}"
        );
        Some(PhoneNumber::new(value, form))
    }

    /// Classifies a caller ID, or `None` when it has none of the accepted forms.
    pub fn outbound_id<'a>(&self, value: &'a str) -> Option<OutboundId<'a>> {
        let bytes = value.as_bytes();
        if !self.outbound_id.is_full_match(bytes) {
            return None;
        }
        let pattern = outbound_id_pattern(bytes);
        #[cfg(debug_assertions)]
        debug_assert_eq!(self.outbound_id.full_match(bytes), Some(pattern), "{value}");
        Some(match pattern {
            0 => OutboundId::Campaign { given: value },
            1 => OutboundId::Number(PhoneNumber::new(value, NumberForm::National)),
            _ => OutboundId::Number(PhoneNumber::new(value, NumberForm::International)),
        })
    }

    /// Whether `value` is a 3–4 digit extension.
    pub fn is_extension(&self, value: &str) -> bool {
        self.agent.is_full_match(value.as_bytes())
    }

    /// Whether every character of `value` is allowed in a contact reference (any length).
    pub fn is_contact_ref_charset(&self, value: &str) -> bool {
        self.contact_ref.is_full_match(value.as_bytes())
    }

    /// Whether `value` can be a recording reference; check before touching any file system.
    pub fn is_recording_ref(&self, value: &str) -> bool {
        self.recording_ref.is_full_match(value.as_bytes())
    }

    /// Applies the field rules and the dialling policy to a parsed request.
    ///
    /// Fields are checked in the order `agent`, `callee`, `outbound_id`, `contact_ref`, then
    /// the policy; the first failure is returned. An `agent` equal to `callee` defers to the
    /// callee's rule and makes a one-leg call.
    pub fn validate<'a>(
        &self,
        request: &CallRequest<'a>,
        policy: &DialPolicy<'_>,
    ) -> Result<ValidCall<'a>, Error> {
        let single_leg = request.agent == request.callee;
        if !single_leg && !self.is_extension(request.agent) {
            return Err(refused(
                request.agent,
                ErrorCode::InvalidAgent,
                Field::Agent,
                "agent must be a 3-4 digit extension, or the same value as callee",
            ));
        }
        let callee = self.callee(request.callee).ok_or_else(|| refused(
            request.callee,
            ErrorCode::InvalidCallee,
            Field::Callee,
            "callee must be 0 and 9 digits (0820001234), 27 and 9 digits (27820001234), or 00 and 11-14 digits (0027820001234)",
        ))?;
        let outbound_id = self.outbound_id(request.outbound_id).ok_or_else(|| refused(
            request.outbound_id,
            ErrorCode::InvalidOutboundId,
            Field::OutboundId,
            "outbound_id must be tvc_<campaign> (1-64 of A-Z a-z 0-9 _ -), 0 and 9 digits, or 27 and 9 digits",
        ))?;
        let mut warnings = Warnings::NONE;
        if outbound_id.number().map(|n| n.form()) == Some(NumberForm::National) {
            warnings = warnings.with(Warning::OutboundIdNational);
        }
        let contact_ref = match request.contact_ref {
            None => None,
            Some(given) => {
                if !self.is_contact_ref_charset(given) {
                    return Err(refused(
                        given,
                        ErrorCode::InvalidContactRef,
                        request.contact_ref_field,
                        "contact_ref may hold only letters, digits and . - _ ~ :",
                    ));
                }
                match given.get(..CONTACT_REF_MAX_LEN) {
                    Some(kept) if kept.len() < given.len() => {
                        warnings = warnings.with(Warning::ContactRefTruncated);
                        Some(kept)
                    }
                    _ => Some(given),
                }
            }
        };
        policy.check(&callee)?;
        Ok(ValidCall {
            agent: request.agent,
            callee,
            outbound_id,
            contact_ref,
            single_leg,
            warnings,
        })
    }
}

/// The error for a value its DFA rejected. `\` is in no charset, so a value carrying a JSON
/// escape lands here; it gets a message saying why instead of the rule's.
fn refused(value: &str, code: ErrorCode, field: Field, rule: &'static str) -> Error {
    let message = if value.as_bytes().contains(&b'\\') {
        "JSON escape sequences are not accepted in this field: every valid value is plain ASCII"
    } else {
        rule
    };
    Error::field(code, field, message)
}

/// A request that passed every rule and the dialling policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValidCall<'a> {
    /// The agent's extension, or the callee's number for a one-leg call.
    pub agent: &'a str,
    /// The number to dial.
    pub callee: PhoneNumber<'a>,
    /// The caller ID for the callee leg.
    pub outbound_id: OutboundId<'a>,
    /// The client's reference, truncated to [`CONTACT_REF_MAX_LEN`]; `None` when absent.
    pub contact_ref: Option<&'a str>,
    /// `agent` equals `callee`: the PBX dials the callee first and connects it to the
    /// configured direct destination.
    pub single_leg: bool,
    /// What the `202` answer warns about.
    pub warnings: Warnings,
}

impl<'a> ValidCall<'a> {
    /// Adds the recording reference (always generated) and a contact reference when the
    /// client sent none, from `entropy` that the caller drew from a CSPRNG.
    pub fn assign_references(self, entropy: &[u8; 2 * REFERENCE_ENTROPY_LEN]) -> Call<'a> {
        let (recording, contact) = entropy.split_at(REFERENCE_ENTROPY_LEN);
        let recording_ref = Reference::from_entropy(recording);
        let contact_ref = match self.contact_ref {
            Some(given) => ContactRef::Given(given),
            None => ContactRef::Generated(Reference::from_entropy(contact)),
        };
        Call {
            valid: self,
            contact_ref,
            recording_ref,
        }
    }
}

/// A valid call with its references: everything needed to originate it and to answer `202`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call<'a> {
    /// The validated request.
    pub valid: ValidCall<'a>,
    /// The contact reference in use (given, truncated, or generated).
    pub contact_ref: ContactRef<'a>,
    /// The recording reference; the PBX records to `<recording_ref>.wav`.
    pub recording_ref: Reference,
}

/// A warning in the `202` answer: the call goes ahead, but something deserves attention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Warning {
    /// A national caller ID: accepted, but providers often reject it.
    OutboundIdNational,
    /// `contact_ref` was longer than 230 characters and was truncated.
    ContactRefTruncated,
}

impl Warning {
    const ALL: [Self; 2] = [Self::OutboundIdNational, Self::ContactRefTruncated];

    /// Stable machine code.
    pub const fn code(self) -> &'static str {
        match self {
            Self::OutboundIdNational => "outbound_id_national",
            Self::ContactRefTruncated => "contact_ref_truncated",
        }
    }

    /// A sentence for the integrator.
    pub const fn message(self) -> &'static str {
        match self {
            Self::OutboundIdNational => "a national outbound_id (0...) is accepted, but providers often reject it; use 27...",
            Self::ContactRefTruncated => "contact_ref was longer than 230 characters and was truncated to 230",
        }
    }

    const fn bit(self) -> u8 {
        match self {
            Self::OutboundIdNational => 1,
            Self::ContactRefTruncated => 2,
        }
    }
}

/// A set of [`Warning`]s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Warnings(u8);

impl Warnings {
    /// No warning.
    pub const NONE: Self = Self(0);

    /// This set and `warning`.
    #[must_use]
    pub const fn with(self, warning: Warning) -> Self {
        Self(self.0 | warning.bit())
    }

    /// Whether `warning` is in the set.
    pub const fn contains(self, warning: Warning) -> bool {
        self.0 & warning.bit() != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The warnings in a stable order.
    pub fn iter(self) -> impl Iterator<Item = Warning> {
        Warning::ALL.into_iter().filter(move |w| self.contains(*w))
    }
}
