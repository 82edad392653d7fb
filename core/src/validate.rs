//! Field rules, checked by walking DFAs that `build.rs` compiled from the patterns there.
//!
//! Each value is walked once, byte by byte, through its field's DFA, which validates it at one
//! table lookup per byte. The form of an accepted number follows from its leading digits,
//! because the patterns of each field start differently; debug builds check that it is the
//! pattern the DFA matched.

use core::fmt;

use regex_automata::{
    dfa::{dense::DFA, Automaton},
    util::primitives::StateID,
    Anchored,
};

use crate::dial::DialControls;
use crate::error::{Error, ErrorCode, Field};
use crate::number::{NumberForm, OutboundId, PhoneNumber};
use crate::policy::DialPolicy;
use crate::reference::{ContactRef, Reference, REFERENCE_ENTROPY_LEN};
use crate::request::CallRequest;

/// Longest `contact_ref` kept; longer ones are truncated, not rejected.
pub const CONTACT_REF_MAX_LEN: usize = 230;

/// Serialised DFA bytes with the `u32` alignment `DFA::from_bytes` needs.
#[repr(C)]
struct Aligned<B: ?Sized> {
    _align: [u32; 0],
    bytes: B,
}

macro_rules! embedded_dfa {
    ($name:literal) => {{
        static TABLE: &Aligned<[u8]> = &Aligned {
            _align: [],
            bytes: *include_bytes!(concat!(env!("OUT_DIR"), "/", $name, ".dfa")),
        };
        &TABLE.bytes
    }};
}

/// The byte walked after a value to see its match: `"`, which ends a JSON string and is in no
/// field's charset.
const END: u8 = b'"';

/// One field's DFA, deserialised zero-copy from the image, with its anchored start state.
#[derive(Clone, Debug)]
struct FieldDfa {
    dfa: DFA<&'static [u32]>,
    start: StateID,
}

impl FieldDfa {
    fn load(bytes: &'static [u8]) -> Result<Self, LoadError> {
        let (dfa, _) = DFA::from_bytes(bytes).map_err(|_| LoadError)?;
        let start = dfa.universal_start_state(Anchored::Yes).ok_or(LoadError)?;
        Ok(Self { dfa, start })
    }

    /// One transition, without the bounds check of `next_state`: about 1.5 % of the
    /// parse-validate-normalise path (callgrind), the largest single saving left in the walk.
    #[inline(always)]
    #[allow(unsafe_code)]
    fn step(&self, state: StateID, byte: u8) -> StateID {
        // SAFETY: `next_state_unchecked` needs a valid state ID. `state` is `self.start`, which
        // the DFA returned, or the result of a previous `step` on the same DFA; `DFA::from_bytes`
        // validated every transition of the table when it was loaded, so the transitions of a
        // valid state lead to valid states, whatever the byte.
        unsafe { self.dfa.next_state_unchecked(state, byte) }
    }

    /// Walks all of `input`; whether one of the patterns matches it whole.
    #[inline]
    fn is_full_match(&self, input: &[u8]) -> bool {
        self.dfa.is_match_state(self.walk(input))
    }

    /// Walks all of `input`; returns the index of the pattern that matches it whole.
    #[cfg(debug_assertions)]
    fn full_match(&self, input: &[u8]) -> Option<usize> {
        let state = self.walk(input);
        self.dfa
            .is_match_state(state)
            .then(|| self.dfa.match_pattern(state, 0).as_usize())
    }

    /// Walks all of `input` and one more byte; the state says what matched `input` whole.
    #[inline]
    fn walk(&self, input: &[u8]) -> StateID {
        // The dead state loops to itself, so the walk needs no per-byte exit; inputs are
        // bounded by the 4 KiB body limit. Four bytes per round: the loop's own bookkeeping
        // is paid once per four transitions.
        let mut state = self.start;
        let mut quads = input.chunks_exact(4);
        for quad in &mut quads {
            if let [a, b, c, d] = *quad {
                state = self.step(state, a);
                state = self.step(state, b);
                state = self.step(state, c);
                state = self.step(state, d);
            }
        }
        for &byte in quads.remainder() {
            state = self.step(state, byte);
        }
        // Matches are reported one transition late. Any byte's transition reports the same
        // matches as the end-of-input one when no pattern looks around (`build.rs` checks),
        // and is cheaper to take.
        self.step(state, END)
    }
}

/// The embedded DFAs could not be deserialised (a build for a target of the wrong
/// endianness, or a corrupted image).
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
    agent: FieldDfa,
    callee: FieldDfa,
    outbound_id: FieldDfa,
    contact_ref: FieldDfa,
    recording_ref: FieldDfa,
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
    /// Deserialises and checks the embedded DFAs.
    pub fn new() -> Result<Self, LoadError> {
        Ok(Self {
            agent: FieldDfa::load(embedded_dfa!("agent"))?,
            callee: FieldDfa::load(embedded_dfa!("callee"))?,
            outbound_id: FieldDfa::load(embedded_dfa!("outbound_id"))?,
            contact_ref: FieldDfa::load(embedded_dfa!("contact_ref"))?,
            recording_ref: FieldDfa::load(embedded_dfa!("recording_ref"))?,
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
    /// Fields are checked in the order `agent`, `callee`, `outbound_id`, `contact_ref`, the
    /// dial controls, then the policy; the first failure is returned. An `agent` equal to `callee` defers to the
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
        let controls = request.dial.validate()?;
        policy.check(&callee)?;
        Ok(ValidCall {
            agent: request.agent,
            callee,
            outbound_id,
            contact_ref,
            single_leg,
            controls,
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
    /// How long the phones ring, how long the call may last, whether it is recorded.
    pub controls: DialControls,
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
