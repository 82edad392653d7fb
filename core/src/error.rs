//! One error type for every deployment: a stable machine code, the field it concerns, a human
//! message and the HTTP status, so the host and the appliance answer byte-for-byte alike.

use core::fmt;

/// Stable machine codes. The string forms are part of the public API: never rename one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ErrorCode {
    /// The body is not well-formed JSON, or not a JSON object.
    MalformedJson,
    /// The body is larger than [`crate::request::MAX_BODY_LEN`].
    BodyTooLarge,
    /// The request's content type is not JSON.
    UnsupportedMediaType,
    /// A required field is absent (or `null`).
    MissingField,
    /// `agent` breaks its rule.
    InvalidAgent,
    /// `callee` breaks its rule.
    InvalidCallee,
    /// `outbound_id` breaks its rule.
    InvalidOutboundId,
    /// `contact_ref` (or `call_ref`) breaks its rule.
    InvalidContactRef,
    /// `contact_ref` and the legacy `call_ref` are both given and differ.
    AmbiguousReference,
    /// The callee is well-formed but the dialling policy refuses it.
    CalleeNotAllowed,
    /// The caller ID is well-formed but not allowed for these credentials.
    OutboundIdNotAllowed,
    /// The agent is well-formed but outside the range allowed for these credentials.
    AgentNotAllowed,
    /// `outbound_id` is `tvc_<campaign>` and the PBX's dialplan has no such campaign.
    UnknownCampaign,
    /// The agent is well-formed but no configured PBX serves it (the host's `[[pbx]]`
    /// entries list their agents, and none is the default).
    UnknownAgent,
    /// A dial control (`agent_ring_timeout_secs`, `callee_ring_timeout_secs`,
    /// `max_duration_secs`, `record`) of the wrong type or out of its bounds.
    InvalidDialControl,
    /// Missing or bad credentials.
    Unauthorized,
    /// A configuration value that cannot be used (the appliance's admin endpoint; the
    /// message is [`crate::config::ConfigError`]'s, as the host's `check-config` prints it).
    InvalidConfig,
    /// Valid credentials without the scope this route needs.
    InsufficientScope,
    /// A request that is not valid HTTP for this service (no `Host`, a broken body
    /// encoding).
    BadRequest,
    /// The request head has more header lines or bytes than the service reads.
    HeadersTooLarge,
    /// The `contact_ref` was already used with a different payload.
    ContactRefConflict,
    /// Too many requests for these credentials.
    RateLimited,
    /// The PBX is not reachable; nothing was dialled.
    PbxUnavailable,
    /// A store the service needs (e.g. for idempotency) is unreachable; nothing was dialled.
    ServiceUnavailable,
    /// A recording reference outside the allowed charset or length.
    InvalidRecordingRef,
    /// No such resource.
    NotFound,
    /// The recording exists but is still being written (the call is in progress).
    RecordingInProgress,
    /// A `Range` header that selects nothing of the resource.
    RangeNotSatisfiable,
    /// The request took longer than the server's limit to arrive or to be answered.
    RequestTimeout,
    /// The route exists but not for this method.
    MethodNotAllowed,
    /// Something failed on the server's side; details are logged, not returned.
    Internal,
}

impl ErrorCode {
    /// The machine code as it appears in error bodies.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MalformedJson => "malformed_json",
            Self::BodyTooLarge => "body_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::MissingField => "missing_field",
            Self::InvalidAgent => "invalid_agent",
            Self::InvalidCallee => "invalid_callee",
            Self::InvalidOutboundId => "invalid_outbound_id",
            Self::InvalidContactRef => "invalid_contact_ref",
            Self::AmbiguousReference => "ambiguous_reference",
            Self::CalleeNotAllowed => "callee_not_allowed",
            Self::OutboundIdNotAllowed => "outbound_id_not_allowed",
            Self::AgentNotAllowed => "agent_not_allowed",
            Self::UnknownCampaign => "unknown_campaign",
            Self::UnknownAgent => "unknown_agent",
            Self::InvalidDialControl => "invalid_dial_control",
            Self::Unauthorized => "unauthorized",
            Self::InvalidConfig => "invalid_config",
            Self::InsufficientScope => "insufficient_scope",
            Self::BadRequest => "bad_request",
            Self::HeadersTooLarge => "headers_too_large",
            Self::ContactRefConflict => "contact_ref_conflict",
            Self::RateLimited => "rate_limited",
            Self::PbxUnavailable => "pbx_unavailable",
            Self::ServiceUnavailable => "service_unavailable",
            Self::InvalidRecordingRef => "invalid_recording_ref",
            Self::NotFound => "not_found",
            Self::RecordingInProgress => "recording_in_progress",
            Self::RangeNotSatisfiable => "range_not_satisfiable",
            Self::RequestTimeout => "request_timeout",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Internal => "internal_error",
        }
    }

    /// The HTTP status every deployment answers with.
    pub const fn status(self) -> u16 {
        match self {
            Self::MalformedJson | Self::InvalidRecordingRef | Self::BadRequest => 400,
            Self::Unauthorized => 401,
            Self::InsufficientScope => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::RequestTimeout => 408,
            Self::ContactRefConflict | Self::RecordingInProgress => 409,
            Self::BodyTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::RangeNotSatisfiable => 416,
            Self::HeadersTooLarge => 431,
            Self::MissingField
            | Self::InvalidAgent
            | Self::InvalidCallee
            | Self::InvalidOutboundId
            | Self::InvalidContactRef
            | Self::AmbiguousReference
            | Self::CalleeNotAllowed
            | Self::OutboundIdNotAllowed
            | Self::AgentNotAllowed
            | Self::UnknownCampaign
            | Self::UnknownAgent
            | Self::InvalidDialControl
            | Self::InvalidConfig => 422,
            Self::RateLimited => 429,
            Self::Internal => 500,
            Self::PbxUnavailable | Self::ServiceUnavailable => 503,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The request fields an error can point at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Field {
    /// `agent`
    Agent,
    /// `callee`
    Callee,
    /// `outbound_id`
    OutboundId,
    /// `contact_ref`
    ContactRef,
    /// `call_ref` (before v3.0.0)
    CallRef,
    /// `agent_ring_timeout_secs`
    AgentRingTimeout,
    /// `callee_ring_timeout_secs`
    CalleeRingTimeout,
    /// `max_duration_secs`
    MaxDuration,
    /// `record`
    Record,
}

impl Field {
    /// The JSON name of the field.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Callee => "callee",
            Self::OutboundId => "outbound_id",
            Self::ContactRef => "contact_ref",
            Self::CallRef => "call_ref",
            Self::AgentRingTimeout => "agent_ring_timeout_secs",
            Self::CalleeRingTimeout => "callee_ring_timeout_secs",
            Self::MaxDuration => "max_duration_secs",
            Self::Record => "record",
        }
    }
}

/// What went wrong, in the form every deployment reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Error {
    /// Stable machine code.
    pub code: ErrorCode,
    /// The field concerned, when there is one.
    pub field: Option<Field>,
    /// A sentence for the person integrating the API.
    pub message: &'static str,
}

impl Error {
    /// An error about one field.
    pub const fn field(code: ErrorCode, field: Field, message: &'static str) -> Self {
        Self {
            code,
            field: Some(field),
            message,
        }
    }

    /// An error about the request as a whole.
    pub const fn request(code: ErrorCode, message: &'static str) -> Self {
        Self {
            code,
            field: None,
            message,
        }
    }

    /// The HTTP status for this error.
    pub const fn status(&self) -> u16 {
        self.code.status()
    }

    /// `413`, with the limit in the message.
    pub const BODY_TOO_LARGE: Self = Self::request(
        ErrorCode::BodyTooLarge,
        "the request body is larger than 4096 bytes",
    );
    /// `415`.
    pub const UNSUPPORTED_MEDIA_TYPE: Self = Self::request(
        ErrorCode::UnsupportedMediaType,
        "the request body must be JSON (Content-Type: application/json)",
    );
    /// `400` for a body that is not JSON.
    pub const MALFORMED_JSON: Self = Self::request(
        ErrorCode::MalformedJson,
        "the request body is not a well-formed JSON object",
    );
    /// `503` when the PBX is not logged in.
    pub const PBX_UNAVAILABLE: Self = Self::request(
        ErrorCode::PbxUnavailable,
        "the PBX is not reachable; nothing was dialled",
    );
    /// `409` for a reused `contact_ref`.
    pub const CONTACT_REF_CONFLICT: Self = Self::field(
        ErrorCode::ContactRefConflict,
        Field::ContactRef,
        "this contact_ref was already used for a call with different values",
    );
    /// `400` for a recording reference that cannot exist.
    pub const INVALID_RECORDING_REF: Self = Self::request(
        ErrorCode::InvalidRecordingRef,
        "a recording reference is 26 characters of a-z and 2-7",
    );
    /// `422` for a path's `{contact_ref}` that cannot be one.
    pub const INVALID_CONTACT_REF_IN_PATH: Self = Self::field(
        ErrorCode::InvalidContactRef,
        Field::ContactRef,
        "contact_ref may hold only letters, digits and . - _ ~ : (at most 230)",
    );
    /// `404`.
    pub const NOT_FOUND: Self = Self::request(ErrorCode::NotFound, "no such resource");
    /// `405`.
    pub const METHOD_NOT_ALLOWED: Self = Self::request(
        ErrorCode::MethodNotAllowed,
        "this method is not allowed on this resource",
    );
    /// `408`.
    pub const REQUEST_TIMEOUT: Self = Self::request(
        ErrorCode::RequestTimeout,
        "the request was not received and answered in time",
    );
    /// `401` without an `Authorization: Bearer` key.
    pub const API_KEY_REQUIRED: Self = Self::request(
        ErrorCode::Unauthorized,
        "an API key is required: Authorization: Bearer <key>",
    );
    /// `401` for a key that is not a configured one.
    pub const API_KEY_INVALID: Self =
        Self::request(ErrorCode::Unauthorized, "the API key is not valid");
    /// `500`; the details belong in the log.
    pub const INTERNAL: Self = Self::request(ErrorCode::Internal, "internal error");
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            Some(field) => write!(f, "{} ({}): {}", self.code, field.as_str(), self.message),
            None => write!(f, "{}: {}", self.code, self.message),
        }
    }
}

impl core::error::Error for Error {}

/// A caller's buffer was too small; `required` bytes would have fitted (when known).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BufferTooSmall {
    /// How many bytes the output needs, or `None` when the writer stopped before knowing.
    pub required: Option<usize>,
}

impl fmt::Display for BufferTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.required {
            Some(n) => write!(f, "output buffer too small: {n} bytes needed"),
            None => f.write_str("output buffer too small"),
        }
    }
}

impl core::error::Error for BufferTooSmall {}
