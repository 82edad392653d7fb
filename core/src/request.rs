//! Zero-copy parsing of a create-call body into a [`CallRequest`] that borrows from it.
//!
//! The JSON is read by a small scanner here rather than by serde-json-core's deserializer,
//! which would also link its unescaping path (with the string-slicing panic and `char`
//! formatting it pulls in: about 6 KB of the appliance's flash) although no buffer is ever
//! given to it. The scanner accepts exactly what that deserializer did, used as before:
//! strings are borrowed, other top-level scalars are read as raw tokens (up to the `,`, `}` or
//! `]` that ends them) and checked against the JSON grammar here — that is how `agent` may be
//! an integer, how a numeric `callee` gets an error that says why, and how garbage after a key
//! is still a `400`. Inside arrays and objects of ignored fields, scalars are skipped with the
//! same leniency (anything up to the next `,`, `}` or `]`); their nesting depth is bounded.
//!
//! **Escapes.** Strings are borrowed as they appear in the body, escape sequences included.
//! Every valid value of the known fields is plain ASCII that JSON never needs to escape, and
//! `\` is in no field's charset, so the validators reject an escaped value (with a message
//! saying escapes are not accepted): an escape can never smuggle an unvalidated character
//! past them, and the happy path pays nothing for the check.
//! Keys are matched literally; a key containing an escape is refused (`400`), because a
//! standard parser could read it as a known field that this one would not see.

use crate::dial::{self, DialRequest};
use crate::error::{Error, ErrorCode, Field};
use crate::scan::{is_whitespace, Scanner};

/// The largest body accepted (`413` above).
pub const MAX_BODY_LEN: usize = 4096;

/// How deep arrays and objects may nest inside ignored fields.
pub const MAX_NESTING: u8 = 8;

/// A create-call request whose values borrow from the body. Shape-checked only: the field
/// rules are applied by [`crate::Validators::validate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallRequest<'a> {
    /// Agent extension (or the callee's number for a one-leg call); an integer agent is
    /// borrowed as its digits.
    pub agent: &'a str,
    /// Number to dial.
    pub callee: &'a str,
    /// Caller ID presented to the callee.
    pub outbound_id: &'a str,
    /// `contact_ref`, or the legacy `call_ref`; `None` when absent, `null` or empty.
    pub contact_ref: Option<&'a str>,
    /// Which of the two names carried the reference.
    pub contact_ref_field: Field,
    /// The dial controls, type-checked; their bounds come in validation.
    pub dial: DialRequest,
}

/// Parses a create-call body. Checks size, JSON syntax and each field's JSON type; the field
/// rules come after, in [`crate::Validators::validate`].
pub fn parse(body: &[u8]) -> Result<CallRequest<'_>, Error> {
    if body.len() > MAX_BODY_LEN {
        return Err(Error::BODY_TOO_LARGE);
    }
    // Strings stay borrowed from the body, escapes included.
    let mut raw = RawRequest::EMPTY;
    read_request(&mut Scanner::new(body), &mut raw).ok_or(Error::MALFORMED_JSON)?;
    raw.into_request()
}

/// The JSON shape of one top-level value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Value<'a> {
    Absent,
    Null,
    Str(&'a str),
    /// A non-negative integer, as its digits.
    Integer(&'a str),
    /// Any other number.
    Number,
    /// `true` or `false`.
    Bool(bool),
    /// An array or an object.
    Other,
}

#[derive(Debug)]
struct RawRequest<'a> {
    agent: Value<'a>,
    callee: Value<'a>,
    outbound_id: Value<'a>,
    contact_ref: Value<'a>,
    call_ref: Value<'a>,
    agent_ring_timeout: Value<'a>,
    callee_ring_timeout: Value<'a>,
    max_duration: Value<'a>,
    record: Value<'a>,
    duplicate: Option<Field>,
}

impl RawRequest<'_> {
    const EMPTY: Self = Self {
        agent: Value::Absent,
        callee: Value::Absent,
        outbound_id: Value::Absent,
        contact_ref: Value::Absent,
        call_ref: Value::Absent,
        agent_ring_timeout: Value::Absent,
        callee_ring_timeout: Value::Absent,
        max_duration: Value::Absent,
        record: Value::Absent,
        duplicate: None,
    };
}

const MESSAGE_DUPLICATE: &str = "the field appears more than once in the body";

impl<'a> RawRequest<'a> {
    fn into_request(self) -> Result<CallRequest<'a>, Error> {
        if let Some(field) = self.duplicate {
            return Err(Error::field(
                ErrorCode::MalformedJson,
                field,
                MESSAGE_DUPLICATE,
            ));
        }
        let agent = match self.agent {
            Value::Str(s) | Value::Integer(s) => s,
            Value::Absent | Value::Null => return Err(missing(Field::Agent)),
            Value::Number | Value::Bool(_) | Value::Other => {
                return Err(Error::field(
                    ErrorCode::InvalidAgent,
                    Field::Agent,
                    "agent must be a JSON string or a non-negative integer",
                ))
            }
        };
        let callee = number_string(self.callee, Field::Callee, ErrorCode::InvalidCallee)?;
        let outbound_id = number_string(
            self.outbound_id,
            Field::OutboundId,
            ErrorCode::InvalidOutboundId,
        )?;
        let contact_ref = reference(self.contact_ref, Field::ContactRef)?;
        let call_ref = reference(self.call_ref, Field::CallRef)?;
        let (contact_ref, contact_ref_field) = match (contact_ref, call_ref) {
            (Some(c), Some(l)) if c != l => {
                return Err(Error::field(
                    ErrorCode::AmbiguousReference,
                    Field::ContactRef,
                    "contact_ref and call_ref are both given and differ; send contact_ref only",
                ))
            }
            (Some(c), _) => (Some(c), Field::ContactRef),
            (None, Some(l)) => (Some(l), Field::CallRef),
            (None, None) => (None, Field::ContactRef),
        };
        let dial = DialRequest {
            agent_ring_timeout_secs: seconds(self.agent_ring_timeout, Field::AgentRingTimeout)?,
            callee_ring_timeout_secs: seconds(self.callee_ring_timeout, Field::CalleeRingTimeout)?,
            max_duration_secs: seconds(self.max_duration, Field::MaxDuration)?,
            record: match self.record {
                Value::Absent | Value::Null => None,
                Value::Bool(record) => Some(record),
                _ => return Err(dial::invalid(Field::Record)),
            },
        };
        Ok(CallRequest {
            agent,
            callee,
            outbound_id,
            contact_ref,
            contact_ref_field,
            dial,
        })
    }
}

const fn missing(field: Field) -> Error {
    Error::field(
        ErrorCode::MissingField,
        field,
        match field {
            Field::Agent => "agent is required",
            Field::Callee => "callee is required",
            Field::OutboundId => "outbound_id is required",
            _ => "contact_ref is required",
        },
    )
}

/// `callee` and `outbound_id` must be strings: as a number they would lose a leading `0`.
fn number_string<'a>(value: Value<'a>, field: Field, code: ErrorCode) -> Result<&'a str, Error> {
    match value {
        Value::Str(s) => Ok(s),
        Value::Absent | Value::Null => Err(missing(field)),
        Value::Integer(_) | Value::Number => Err(Error::field(
            code,
            field,
            match field {
                Field::OutboundId => "outbound_id must be a JSON string, not a number: a number loses the leading 0 of a national number",
                _ => "callee must be a JSON string, not a number: a number loses the leading 0 of a national number",
            },
        )),
        Value::Bool(_) | Value::Other => Err(Error::field(
            code,
            field,
            match field {
                Field::OutboundId => "outbound_id must be a JSON string",
                _ => "callee must be a JSON string",
            },
        )),
    }
}

/// A reference is optional: absent, `null` and `""` all mean "generate one".
fn reference(value: Value<'_>, field: Field) -> Result<Option<&str>, Error> {
    match value {
        Value::Absent | Value::Null | Value::Str("") => Ok(None),
        Value::Str(s) => Ok(Some(s)),
        Value::Integer(_) | Value::Number | Value::Bool(_) | Value::Other => Err(Error::field(
            ErrorCode::InvalidContactRef,
            field,
            match field {
                Field::CallRef => "call_ref must be a JSON string",
                _ => "contact_ref must be a JSON string",
            },
        )),
    }
}

/// A dial control in seconds: a non-negative JSON integer (saturated at `u64::MAX`), or
/// absent/`null` for the default.
fn seconds(value: Value<'_>, field: Field) -> Result<Option<u64>, Error> {
    match value {
        Value::Absent | Value::Null => Ok(None),
        Value::Integer(digits) => Ok(Some(digits.bytes().fold(0u64, |n, d| {
            n.saturating_mul(10)
                .saturating_add(u64::from(d.wrapping_sub(b'0')))
        }))),
        _ => Err(dial::invalid(field)),
    }
}

/// The top-level object, into `raw`; then nothing but whitespace.
fn read_request<'a>(s: &mut Scanner<'a>, raw: &mut RawRequest<'a>) -> Option<()> {
    s.eat(b'{')?;
    let mut first = true;
    while let Some(key) = s.next_key(&mut first)? {
        s.eat(b':')?;
        let value = value(s)?;
        let (slot, field) = match key {
            "agent" => (&mut raw.agent, Field::Agent),
            "callee" => (&mut raw.callee, Field::Callee),
            "outbound_id" => (&mut raw.outbound_id, Field::OutboundId),
            "contact_ref" => (&mut raw.contact_ref, Field::ContactRef),
            "call_ref" => (&mut raw.call_ref, Field::CallRef),
            "agent_ring_timeout_secs" => (&mut raw.agent_ring_timeout, Field::AgentRingTimeout),
            "callee_ring_timeout_secs" => (&mut raw.callee_ring_timeout, Field::CalleeRingTimeout),
            "max_duration_secs" => (&mut raw.max_duration, Field::MaxDuration),
            "record" => (&mut raw.record, Field::Record),
            // An escaped key could name a known field for a standard JSON parser (a
            // gateway, a log reader) while this one ignores it: refuse the body.
            _ if key.as_bytes().contains(&b'\\') => return None,
            _ => continue,
        };
        if !matches!(slot, Value::Absent) && raw.duplicate.is_none() {
            raw.duplicate = Some(field);
        }
        *slot = value;
    }
    s.eat(b'}')?;
    match s.peek() {
        None => Some(()),
        Some(_) => None,
    }
}

/// Skips a scalar other than a string: anything up to the `,`, `}` or `]` after it (left
/// unread). Returns the token, trailing whitespace included.
fn scalar<'a>(s: &mut Scanner<'a>) -> Option<&'a [u8]> {
    s.token(|b| matches!(b, b',' | b'}' | b']'))
}

/// The value of a top-level member. Strings come back borrowed, other scalars checked
/// against the JSON grammar; arrays and objects are skipped.
fn value<'a>(s: &mut Scanner<'a>) -> Option<Value<'a>> {
    match s.peek()? {
        b'"' => s.string().map(Value::Str),
        b'[' | b'{' => skip(s, 0).map(|()| Value::Other),
        b',' | b'}' | b']' => None,
        _ => classify_scalar(core::str::from_utf8(trim_end(scalar(s)?)).ok()?),
    }
}

/// Skips a value nested `depth` levels inside a top-level member, refusing arrays and
/// objects nested deeper than [`MAX_NESTING`].
fn skip(s: &mut Scanner<'_>, depth: u8) -> Option<()> {
    let open = s.peek()?;
    let inner = depth.saturating_add(1);
    let mut first = true;
    match open {
        b'"' => s.string().map(drop),
        b'[' | b'{' if depth >= MAX_NESTING => None,
        b'[' => {
            s.advance();
            while s.next_element(&mut first)? {
                skip(s, inner)?;
            }
            s.eat(b']')
        }
        b'{' => {
            s.advance();
            while s.next_key(&mut first)?.is_some() {
                s.eat(b':')?;
                skip(s, inner)?;
            }
            s.eat(b'}')
        }
        b',' | b'}' | b']' => None,
        _ => scalar(s).map(drop),
    }
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let n = bytes.iter().take_while(|&&b| is_whitespace(b)).count();
    bytes.get(n..).unwrap_or_default()
}

fn trim_end(bytes: &[u8]) -> &[u8] {
    let n = bytes
        .iter()
        .rev()
        .take_while(|&&b| is_whitespace(b))
        .count();
    bytes
        .get(..bytes.len().saturating_sub(n))
        .unwrap_or_default()
}

/// Classifies a top-level scalar token by the JSON grammar.
fn classify_scalar(token: &str) -> Option<Value<'_>> {
    match token {
        "null" => return Some(Value::Null),
        "true" => return Some(Value::Bool(true)),
        "false" => return Some(Value::Bool(false)),
        _ => {}
    }
    let bytes = token.as_bytes();
    let (integer, rest) = json_number_prefix(bytes)?;
    if !rest.is_empty() {
        return None;
    }
    Some(if integer {
        Value::Integer(token)
    } else {
        Value::Number
    })
}

/// Checks a JSON number; returns whether it is a non-negative integer, and what follows it.
fn json_number_prefix(bytes: &[u8]) -> Option<(bool, &[u8])> {
    let (negative, rest) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, bytes),
    };
    let rest = match rest.split_first() {
        Some((b'0', rest)) => rest,
        Some((b'1'..=b'9', rest)) => skip_digits(rest),
        _ => return None,
    };
    let mut plain = !negative;
    let rest = match rest.split_first() {
        Some((b'.', frac)) => {
            plain = false;
            at_least_one_digit(frac)?
        }
        _ => rest,
    };
    let rest = match rest.split_first() {
        Some((b'e' | b'E', exp)) => {
            plain = false;
            let exp = match exp.split_first() {
                Some((b'+' | b'-', e)) => e,
                _ => exp,
            };
            at_least_one_digit(exp)?
        }
        _ => rest,
    };
    Some((plain, rest))
}

fn skip_digits(bytes: &[u8]) -> &[u8] {
    let n = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    bytes.get(n..).unwrap_or_default()
}

fn at_least_one_digit(bytes: &[u8]) -> Option<&[u8]> {
    match bytes.first() {
        Some(b) if b.is_ascii_digit() => Some(skip_digits(bytes)),
        _ => None,
    }
}

/// The key of an `Authorization: Bearer <key>` header's value (the scheme in any case, the
/// key trimmed of blanks), or `None` for another scheme or no key.
pub fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let scheme = value.get(..7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let key = value.get(7..)?.trim_ascii();
    (!key.is_empty()).then_some(key)
}

/// Checks a request's `Content-Type`: `application/json`, any case, parameters allowed
/// (`; charset=utf-8`). A missing header is refused too: the body's type is unknown.
pub fn check_content_type(value: Option<&[u8]>) -> Result<(), Error> {
    let value = value.ok_or(Error::UNSUPPORTED_MEDIA_TYPE)?;
    let essence = value.split(|&b| b == b';').next().unwrap_or_default();
    let essence = trim_end(trim_start(essence));
    if essence.eq_ignore_ascii_case(b"application/json") {
        Ok(())
    } else {
        Err(Error::UNSUPPORTED_MEDIA_TYPE)
    }
}
