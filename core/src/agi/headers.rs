//! The `X-Teleforge-*` values of a softphone's INVITE, held inline, and their path into the
//! same validated call as a REST request.
//!
//! [`Headers::request`] shapes them into a [`CallRequest`] and [`Headers::validate`] runs
//! [`Validators::validate`] (field rules and dialling policy) on it: no rule is repeated here.
//! What is specific to a call the agent's own phone starts:
//!
//! - the agent is the PJSIP endpoint Asterisk matched the INVITE to (`CHANNEL(endpoint)`:
//!   by its authentication or its source address), never a value the phone writes itself
//!   (`From`, hence `CALLERID(num)`, or any header). A call without an endpoint (empty, or a
//!   channel that is not PJSIP) is refused ([`NO_ENDPOINT`]). An `X-Teleforge-Agent` header
//!   is optional; when present it must equal the endpoint ([`AGENT_MISMATCH`] otherwise), so
//!   a softphone cannot place calls in another agent's name;
//! - a call where agent equals callee (a REST one-leg call) cannot be started from a phone:
//!   `invalid_agent`;
//! - a missing `X-Teleforge-Callee` or `X-Teleforge-Outbound-Id` is `missing_field`, as in
//!   REST; a missing or empty `X-Teleforge-Contact-Ref` means "generate one";
//! - a value longer than this module keeps (longer than any valid value; Asterisk returns at
//!   most about 1 KiB) is refused as `invalid_<field>`.
//!
//! Every refusal carries the Q.850 cause the caller's phone gets ([`q850_cause`]):
//!
//! | error codes | cause |
//! |---|---|
//! | request refused: `missing_field`, `invalid_*`, `*_not_allowed`, `contact_ref_conflict`, `ambiguous_reference`, `unauthorized` | 21 call rejected |
//! | `rate_limited` | 34 no circuit/channel available (try again later) |
//! | `pbx_unavailable`, `service_unavailable`, `request_timeout`, `internal_error` | 41 temporary failure |
//! | anything else | 21 call rejected |

use crate::error::{Error, ErrorCode, Field};
use crate::policy::DialPolicy;
use crate::request::CallRequest;
use crate::validate::{ValidCall, Validators};

use crate::text::Text;

/// Room for the callee, outbound ID, agent and caller number values.
pub const SHORT_VALUE_MAX_LEN: usize = 128;

/// Room for the contact reference value (Asterisk's `GET VARIABLE` limit).
pub const CONTACT_REF_VALUE_MAX_LEN: usize = 1024;

/// The call does not come from a PJSIP endpoint: `CHANNEL(endpoint)` is empty or unreadable
/// (a channel of another technology), or too long to be an agent.
pub const NO_ENDPOINT: Error = Error::field(
    ErrorCode::InvalidAgent,
    Field::Agent,
    "the caller is not an authenticated PJSIP endpoint (CHANNEL(endpoint) is empty)",
);

/// The phone's `X-Teleforge-Agent` names another agent than the endpoint it authenticated as.
pub const AGENT_MISMATCH: Error = Error::field(
    ErrorCode::InvalidAgent,
    Field::Agent,
    "X-Teleforge-Agent must be the calling PJSIP endpoint",
);

/// What the script reads from the channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Header {
    /// `X-Teleforge-Callee`
    Callee,
    /// `X-Teleforge-Outbound-Id`
    OutboundId,
    /// `X-Teleforge-Contact-Ref`
    ContactRef,
    /// `X-Teleforge-Agent` (optional): the agent the phone claims to be.
    Agent,
    /// `CHANNEL(endpoint)`: the caller's PJSIP endpoint, which is the agent.
    Endpoint,
}

impl Header {
    /// In the order the script asks for them: the endpoint first, since without one the
    /// call is refused and the headers are not read.
    pub const ALL: [Self; 5] = [
        Self::Endpoint,
        Self::Callee,
        Self::OutboundId,
        Self::ContactRef,
        Self::Agent,
    ];

    /// The expression `GET VARIABLE` reads.
    pub const fn variable(self) -> &'static str {
        match self {
            Self::Callee => "PJSIP_HEADER(read,X-Teleforge-Callee)",
            Self::OutboundId => "PJSIP_HEADER(read,X-Teleforge-Outbound-Id)",
            Self::ContactRef => "PJSIP_HEADER(read,X-Teleforge-Contact-Ref)",
            Self::Agent => "PJSIP_HEADER(read,X-Teleforge-Agent)",
            Self::Endpoint => "CHANNEL(endpoint)",
        }
    }

    /// The request field the value becomes.
    pub const fn field(self) -> Field {
        match self {
            Self::Callee => Field::Callee,
            Self::OutboundId => Field::OutboundId,
            Self::ContactRef => Field::ContactRef,
            Self::Agent | Self::Endpoint => Field::Agent,
        }
    }
}

/// One value as Asterisk answered it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Value<'a> {
    /// `200 result=0`, or no `200` at all.
    Absent,
    /// `200 result=1 (<value>)`.
    Given(&'a str),
    /// Longer than this module keeps.
    TooLong,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot<const N: usize> {
    Absent,
    Given(Text<N>),
    TooLong,
}

impl<const N: usize> Slot<N> {
    fn new(value: Option<&str>) -> Self {
        match value {
            None => Self::Absent,
            Some(v) => Text::new(v).map_or(Self::TooLong, Self::Given),
        }
    }

    fn get(&self) -> Value<'_> {
        match self {
            Self::Absent => Value::Absent,
            Self::Given(t) => Value::Given(t.as_str()),
            Self::TooLong => Value::TooLong,
        }
    }
}

/// The values the script read, copied out of the receive buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Headers {
    callee: Slot<SHORT_VALUE_MAX_LEN>,
    outbound_id: Slot<SHORT_VALUE_MAX_LEN>,
    contact_ref: Slot<CONTACT_REF_VALUE_MAX_LEN>,
    agent: Slot<SHORT_VALUE_MAX_LEN>,
    endpoint: Slot<SHORT_VALUE_MAX_LEN>,
}

impl Default for Headers {
    fn default() -> Self {
        Self::new()
    }
}

/// A refused call: the error (as REST reports it) and the Q.850 cause for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Rejection {
    /// Stable code, field and message.
    pub error: Error,
    /// What the dialplan hangs up the caller with.
    pub cause: u8,
}

impl From<Error> for Rejection {
    fn from(error: Error) -> Self {
        Self {
            error,
            cause: q850_cause(error.code),
        }
    }
}

/// The Q.850 cause a refused call is hung up with (table in the module docs).
pub const fn q850_cause(code: ErrorCode) -> u8 {
    match code {
        ErrorCode::RateLimited => 34,
        ErrorCode::PbxUnavailable
        | ErrorCode::ServiceUnavailable
        | ErrorCode::RequestTimeout
        | ErrorCode::Internal => 41,
        _ => 21,
    }
}

impl Headers {
    /// No value read yet: every header absent.
    pub const fn new() -> Self {
        Self {
            callee: Slot::Absent,
            outbound_id: Slot::Absent,
            contact_ref: Slot::Absent,
            agent: Slot::Absent,
            endpoint: Slot::Absent,
        }
    }

    /// Headers with the given values (as a test or a simulator would build them).
    pub fn with(mut self, header: Header, value: Option<&str>) -> Self {
        self.set(header, value);
        self
    }

    /// Records the value Asterisk answered for `header` (`None`: not set).
    pub fn set(&mut self, header: Header, value: Option<&str>) {
        match header {
            Header::Callee => self.callee = Slot::new(value),
            Header::OutboundId => self.outbound_id = Slot::new(value),
            Header::ContactRef => self.contact_ref = Slot::new(value),
            Header::Agent => self.agent = Slot::new(value),
            Header::Endpoint => self.endpoint = Slot::new(value),
        }
    }

    /// The value read for `header`.
    pub fn get(&self, header: Header) -> Value<'_> {
        match header {
            Header::Callee => self.callee.get(),
            Header::OutboundId => self.outbound_id.get(),
            Header::ContactRef => self.contact_ref.get(),
            Header::Agent => self.agent.get(),
            Header::Endpoint => self.endpoint.get(),
        }
    }

    /// The caller's PJSIP endpoint: the agent; `None` when empty, unreadable or too long.
    pub fn endpoint(&self) -> Option<&str> {
        match self.get(Header::Endpoint) {
            Value::Given(e) if !e.is_empty() => Some(e),
            _ => None,
        }
    }

    /// The agent an `X-Teleforge-Agent` header claims; `None` without one (or empty).
    pub fn claimed_agent(&self) -> Option<&str> {
        match self.get(Header::Agent) {
            Value::Given(a) if !a.is_empty() => Some(a),
            _ => None,
        }
    }

    /// The create-call request these headers make, shape-checked only (the module docs say
    /// how the agent is found); field rules come in [`Headers::validate`].
    pub fn request(&self) -> Result<CallRequest<'_>, Error> {
        let agent = self.endpoint().ok_or(NO_ENDPOINT)?;
        match self.get(Header::Agent) {
            Value::Given(claimed) if !claimed.is_empty() && claimed != agent => {
                return Err(AGENT_MISMATCH)
            }
            Value::TooLong => return Err(AGENT_MISMATCH),
            _ => {}
        }
        let required = |header: Header| match self.get(header) {
            Value::Given(v) => Ok(v),
            Value::Absent => Err(missing(header)),
            Value::TooLong => Err(too_long(header.field())),
        };
        let callee = required(Header::Callee)?;
        let outbound_id = required(Header::OutboundId)?;
        let contact_ref = match self.get(Header::ContactRef) {
            Value::Absent | Value::Given("") => None,
            Value::Given(v) => Some(v),
            Value::TooLong => return Err(too_long(Field::ContactRef)),
        };
        Ok(CallRequest {
            agent,
            callee,
            outbound_id,
            contact_ref,
            contact_ref_field: Field::ContactRef,
            // A softphone's call dials from the dialplan: the site's defaults apply.
            dial: crate::dial::DialRequest::default(),
        })
    }

    /// The same validated call a REST request with these values gives, or why not.
    pub fn validate<'a>(
        &'a self,
        validators: &Validators,
        policy: &DialPolicy<'_>,
    ) -> Result<ValidCall<'a>, Rejection> {
        let request = self.request()?;
        let valid = validators.validate(&request, policy)?;
        if valid.single_leg {
            return Err(Error::field(
                ErrorCode::InvalidAgent,
                Field::Agent,
                "the calling endpoint cannot be the callee",
            )
            .into());
        }
        Ok(valid)
    }
}

const fn missing(header: Header) -> Error {
    Error::field(
        ErrorCode::MissingField,
        header.field(),
        match header {
            Header::Callee => "the X-Teleforge-Callee header is required",
            Header::OutboundId => "the X-Teleforge-Outbound-Id header is required",
            Header::ContactRef => "the X-Teleforge-Contact-Ref header is required",
            Header::Agent | Header::Endpoint => NO_ENDPOINT.message,
        },
    )
}

const fn too_long(field: Field) -> Error {
    let code = match field {
        Field::Agent => ErrorCode::InvalidAgent,
        Field::Callee => ErrorCode::InvalidCallee,
        Field::OutboundId => ErrorCode::InvalidOutboundId,
        Field::ContactRef | Field::CallRef => ErrorCode::InvalidContactRef,
        Field::AgentRingTimeout | Field::CalleeRingTimeout | Field::MaxDuration | Field::Record => {
            ErrorCode::InvalidDialControl
        }
    };
    Error::field(code, field, "the header is longer than any valid value")
}
