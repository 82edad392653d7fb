//! JSON answers and notifications, written into caller buffers so every deployment emits the same
//! bytes: serde-json-core's, by the one writer here (`Out`; the tests hold the two together).

use core::fmt;

#[cfg(test)]
use serde::ser::SerializeMap;
use serde::ser::{SerializeSeq, SerializeStruct};
use serde::{Serialize, Serializer};

use crate::config::ConfigError;
use crate::error::{BufferTooSmall, Error, ErrorCode};
use crate::template::Rendered;
use crate::time::Timestamp;
use crate::validate::{Call, Warnings};

/// Room for any error body.
pub const ERROR_BODY_MAX_LEN: usize = 320;

/// Writes `value` as JSON into `out`; returns the length.
#[cfg(test)]
fn write<T: Serialize>(value: &T, out: &mut [u8]) -> Result<usize, BufferTooSmall> {
    serde_json_core::to_slice(value, out).map_err(|_| BufferTooSmall { required: None })
}

/// The `202 Accepted` body.
#[derive(Clone, Copy, Debug)]
pub struct Accepted<'a> {
    /// The call.
    pub call: &'a Call<'a>,
    /// `recording_url`, on deployments that serve recordings.
    pub recording_url: Option<Rendered<'a, 'a>>,
    /// `notifications_key`, on deployments that push to Redis.
    pub notifications_key: Option<Rendered<'a, 'a>>,
}

impl Serialize for Accepted<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Accepted", 6)?;
        s.serialize_field("status", "queued")?;
        s.serialize_field("contact_ref", self.call.contact_ref.as_str())?;
        s.serialize_field("recording_ref", self.call.recording_ref.as_str())?;
        if let Some(url) = &self.recording_url {
            s.serialize_field("recording_url", url)?;
        }
        if let Some(key) = &self.notifications_key {
            s.serialize_field("notifications_key", key)?;
        }
        s.serialize_field("warnings", &WarningList(self.call.valid.warnings))?;
        s.end()
    }
}

struct WarningList(Warnings);

impl Serialize for WarningList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(None)?;
        for warning in self.0.iter() {
            seq.serialize_element(&CodeMessage {
                code: warning.code(),
                message: warning.message(),
            })?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct CodeMessage {
    code: &'static str,
    message: &'static str,
}

/// Writes the `202` body: the bytes serde-json-core writes for [`Accepted`], by the writer
/// below (`Out`).
pub fn write_accepted(accepted: &Accepted<'_>, out: &mut [u8]) -> Result<usize, BufferTooSmall> {
    let mut o = Out::new(out);
    accepted_fields(accepted, &mut o)
        .map(|()| o.len)
        .map_err(|_| BufferTooSmall { required: None })
}

fn accepted_fields(a: &Accepted<'_>, o: &mut Out<'_>) -> fmt::Result {
    o.raw(b"{\"status\":\"queued\"")?;
    o.field("contact_ref")?;
    o.string(a.call.contact_ref.as_str())?;
    o.field("recording_ref")?;
    o.string(a.call.recording_ref.as_str())?;
    if let Some(url) = &a.recording_url {
        o.field("recording_url")?;
        o.display(url)?;
    }
    if let Some(key) = &a.notifications_key {
        o.field("notifications_key")?;
        o.display(key)?;
    }
    o.field("warnings")?;
    o.raw(b"[")?;
    for (i, warning) in a.call.valid.warnings.iter().enumerate() {
        if i > 0 {
            o.raw(b",")?;
        }
        o.raw(b"{\"code\":")?;
        o.string(warning.code())?;
        o.field("message")?;
        o.string(warning.message())?;
        o.raw(b"}")?;
    }
    o.raw(b"]}")
}

/// A JSON writer into a caller's buffer for the two documents every call writes (the `202`
/// body and its notifications): the same bytes as serde-json-core (keys as they are,
/// strings escaped as its `push_char` does), but a run of characters that need no escape
/// is copied at once, where serde-json-core pushes each character on its own (about ten
/// times the work). `core/src/json.rs`'s tests hold the two to the same output.
struct Out<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl<'b> Out<'b> {
    fn new(buf: &'b mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    /// Appends `bytes` as they are.
    fn raw(&mut self, bytes: &[u8]) -> fmt::Result {
        let end = self.len.checked_add(bytes.len()).ok_or(fmt::Error)?;
        self.buf
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }

    /// `,"key":` (every field but the first, which the caller writes with the `{`).
    fn field(&mut self, key: &str) -> fmt::Result {
        self.raw(b",\"")?;
        self.raw(key.as_bytes())?;
        self.raw(b"\":")
    }

    /// `s` as a JSON string.
    fn string(&mut self, s: &str) -> fmt::Result {
        self.raw(b"\"")?;
        fmt::Write::write_str(self, s)?;
        self.raw(b"\"")
    }

    /// What `value` displays, as a JSON string.
    fn display(&mut self, value: &dyn fmt::Display) -> fmt::Result {
        self.raw(b"\"")?;
        fmt::write(self, format_args!("{value}"))?;
        self.raw(b"\"")
    }

    /// A number, as serde-json-core writes an unsigned integer.
    fn number(&mut self, n: u16) -> fmt::Result {
        self.raw(crate::decimal::Decimal::new(n.into()).as_str().as_bytes())
    }
}

impl fmt::Write for Out<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape(s, |piece| self.raw(piece.as_bytes()))
    }
}

/// Hands `s` to `put` in pieces, escaped as serde-json-core escapes: `\\`, `\"`, `\b`,
/// `\t`, `\n`, `\f`, `\r`, other control characters as `\u00XX` (upper-case hex);
/// everything else as it is, a run at a time.
fn escape(s: &str, mut put: impl FnMut(&str) -> fmt::Result) -> fmt::Result {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut from = 0;
    while let Some(i) = next_escape(bytes, from) {
        from = i.saturating_add(1);
        let b = bytes.get(i).copied().unwrap_or_default();
        let mut unicode = *b"\\u00XX";
        let sequence = match b {
            b'\\' => "\\\\",
            b'"' => "\\\"",
            0x08 => "\\b",
            0x09 => "\\t",
            0x0a => "\\n",
            0x0c => "\\f",
            0x0d => "\\r",
            _ => {
                unicode[4] = HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0');
                unicode[5] = HEX.get(usize::from(b & 0x0f)).copied().unwrap_or(b'0');
                core::str::from_utf8(&unicode).map_err(|_| fmt::Error)?
            }
        };
        // `i` is an ASCII byte's index, so a character boundary.
        put(s.get(start..i).ok_or(fmt::Error)?)?;
        put(sequence)?;
        start = from;
    }
    put(s.get(start..).ok_or(fmt::Error)?)
}

/// The index of the first byte at or after `from` that JSON must escape (a control
/// character, `"` or `\\`). Eight bytes are tested at once, as one word, and only a word
/// that holds such a byte is searched byte by byte: the strings a call writes are long runs
/// of plain characters.
fn next_escape(bytes: &[u8], from: usize) -> Option<usize> {
    let rest = bytes.get(from..)?;
    let mut skipped = 0usize;
    for word in rest.chunks_exact(8) {
        let w = u64::from_le_bytes(word.try_into().unwrap_or_default());
        if word_has_escape(w) {
            break;
        }
        skipped = skipped.saturating_add(8);
    }
    let at = rest
        .get(skipped..)?
        .iter()
        .position(|&b| b < 0x20 || b == b'"' || b == b'\\')?;
    Some(from.saturating_add(skipped).saturating_add(at))
}

/// Whether any byte of `w` is below 0x20, `"` or `\\`. The bit tricks answer exactly
/// whether such a byte exists (not which one): `(x - 0x01..) & !x & 0x80..` is non-zero
/// exactly when some byte of `x` is zero, and `(x - n·0x01..) & !x & 0x80..` exactly when
/// some byte is below `n` (for `n` ≤ 0x80).
fn word_has_escape(w: u64) -> bool {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    let below = |x: u64, n: u64| x.wrapping_sub(ONES.wrapping_mul(n)) & !x & HIGHS;
    let control = below(w, 0x20);
    let quote = below(w ^ ONES.wrapping_mul(u64::from(b'"')), 1);
    let backslash = below(w ^ ONES.wrapping_mul(u64::from(b'\\')), 1);
    control | quote | backslash != 0
}

/// Writes `{"error":{"code":…,"field":…,"message":…}}` (`field` only when there is one): the
/// bytes serde-json-core writes for it (the tests hold the two together), by the writer
/// below (`Out`).
pub fn write_error(error: &Error, out: &mut [u8]) -> Result<usize, BufferTooSmall> {
    let mut o = Out::new(out);
    error_head(&mut o, error.code.as_str(), error.field.map(|f| f.as_str()))
        .and_then(|()| o.string(error.message))
        .and_then(|()| o.raw(b"}}"))
        .map(|()| o.len)
        .map_err(|_| BufferTooSmall { required: None })
}

/// `{"error":{"code":<code>,` then `"field":<field>,` when there is one, then `"message":`.
fn error_head(o: &mut Out<'_>, code: &str, field: Option<&str>) -> fmt::Result {
    o.raw(b"{\"error\":{\"code\":")?;
    o.string(code)?;
    if let Some(field) = field {
        o.field("field")?;
        o.string(field)?;
    }
    o.field("message")
}

/// Writes a refused configuration value as an error body:
/// `{"error":{"code":"invalid_config","field":<dotted key>,"message":<the host's check-config
/// message>}}` (`422`). The message is [`ConfigError`]'s `Display`, so it is the host's text
/// for the same mistake.
pub fn write_config_error(error: &ConfigError, out: &mut [u8]) -> Result<usize, BufferTooSmall> {
    let mut o = Out::new(out);
    error_head(&mut o, ErrorCode::InvalidConfig.as_str(), Some(error.key()))
        .and_then(|()| o.raw(b"\""))
        .and_then(|()| {
            let mut result = Ok(());
            error.message(|piece| {
                if result.is_ok() {
                    result = fmt::Write::write_str(&mut o, piece);
                }
            });
            result
        })
        .and_then(|()| o.raw(b"\"}}"))
        .map(|()| o.len)
        .map_err(|_| BufferTooSmall { required: None })
}

/// Notification events, in the order of a normal call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Event {
    /// The call was accepted and handed to the PBX.
    Queued,
    /// The agent's phone rings.
    AgentRinging,
    /// The agent answered.
    AgentAnswered,
    /// The callee's phone rings.
    CalleeRinging,
    /// Agent and callee are bridged.
    Joined,
    /// The call ended after being joined.
    Hangup,
    /// The call could not proceed; see the cause.
    Failed,
    /// The recording file is complete.
    RecordingReady,
}

impl Event {
    /// Every event, in the order of a normal call.
    pub const ALL: [Self; 8] = [
        Self::Queued,
        Self::AgentRinging,
        Self::AgentAnswered,
        Self::CalleeRinging,
        Self::Joined,
        Self::Hangup,
        Self::Failed,
        Self::RecordingReady,
    ];

    /// The event named `name` in notifications.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == name)
    }

    /// The event's number in a call's order, `1` (`queued`) to `7` (`recording_ready`):
    /// a notification's sequence number. It is the event's, not a count of what was said
    /// before it, so every host that follows a call numbers its events alike, even one
    /// that missed some of them (a call's events are each said at most once, in this
    /// order; `hangup` and `failed`, which end a call, share `6`). Numbers of the steps a
    /// call skipped are left out.
    pub const fn sequence(self) -> u32 {
        match self {
            Self::Queued => 1,
            Self::AgentRinging => 2,
            Self::AgentAnswered => 3,
            Self::CalleeRinging => 4,
            Self::Joined => 5,
            Self::Hangup | Self::Failed => 6,
            Self::RecordingReady => 7,
        }
    }

    /// The event name in notifications.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::AgentRinging => "agent_ringing",
            Self::AgentAnswered => "agent_answered",
            Self::CalleeRinging => "callee_ringing",
            Self::Joined => "joined",
            Self::Hangup => "hangup",
            Self::Failed => "failed",
            Self::RecordingReady => "recording_ready",
        }
    }
}

/// Why a call failed or ended. Its serde name is [`Cause::as_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Cause {
    /// The agent did not answer in time.
    AgentNoAnswer,
    /// The agent's line was busy.
    AgentBusy,
    /// The agent's endpoint is not registered or not reachable.
    AgentUnavailable,
    /// The callee did not answer in time.
    CalleeNoAnswer,
    /// The callee's line was busy.
    CalleeBusy,
    /// The callee declined.
    CalleeRejected,
    /// The number does not exist.
    CalleeNotFound,
    /// The callee's line could not be reached (trunk unavailable or congested).
    CalleeUnavailable,
    /// The agent hung up before the callee answered.
    AgentHungUp,
    /// A normal end of a joined call.
    NormalClearing,
    /// A joined call reached the longest duration it was created with
    /// (`max_duration_secs`) and the PBX hung it up.
    MaxDuration,
    /// The PBX failed or the connection to it was lost.
    PbxError,
}

impl Cause {
    /// Every cause.
    pub const ALL: [Self; 12] = [
        Self::AgentNoAnswer,
        Self::AgentBusy,
        Self::AgentUnavailable,
        Self::CalleeNoAnswer,
        Self::CalleeBusy,
        Self::CalleeRejected,
        Self::CalleeNotFound,
        Self::CalleeUnavailable,
        Self::AgentHungUp,
        Self::NormalClearing,
        Self::MaxDuration,
        Self::PbxError,
    ];

    /// The cause of a joined call's end, from its Q.850 code: network and resource
    /// failures are the PBX's; everything else is a normal end.
    pub const fn joined_call_end(q850: u16) -> Self {
        match q850 {
            27 | 34 | 38 | 41 | 42 | 44 | 47 => Self::PbxError,
            _ => Self::NormalClearing,
        }
    }

    /// The cause name in notifications.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AgentNoAnswer => "agent_no_answer",
            Self::MaxDuration => "max_duration",
            Self::AgentBusy => "agent_busy",
            Self::AgentUnavailable => "agent_unavailable",
            Self::CalleeNoAnswer => "callee_no_answer",
            Self::CalleeBusy => "callee_busy",
            Self::CalleeRejected => "callee_rejected",
            Self::CalleeNotFound => "callee_not_found",
            Self::CalleeUnavailable => "callee_unavailable",
            Self::AgentHungUp => "agent_hung_up",
            Self::NormalClearing => "normal_clearing",
            Self::PbxError => "pbx_error",
        }
    }
}

/// One notification object, as pushed to the Redis lists.
#[derive(Clone, Copy)]
pub struct Notification<'a> {
    /// What happened.
    pub event: Event,
    /// The call's contact reference.
    pub contact_ref: &'a str,
    /// The agent.
    pub agent: &'a str,
    /// The callee in E.164 form: a [`crate::number::E164`], or text a caller kept.
    pub callee: &'a dyn fmt::Display,
    /// The caller ID as given.
    pub outbound_id: &'a str,
    /// The recording reference.
    pub recording_ref: &'a str,
    /// Where the recording will be served, when the deployment serves recordings: a
    /// rendered [`crate::template::Template`], or text a caller kept.
    pub recording_url: Option<&'a dyn fmt::Display>,
    /// When it happened.
    pub timestamp: Timestamp,
    /// Why, for `failed` and `hangup`.
    pub cause: Option<Cause>,
    /// The Q.850 cause code, where the PBX gave one.
    pub q850: Option<u16>,
}

impl Serialize for Notification<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Notification", 10)?;
        s.serialize_field("event", self.event.as_str())?;
        s.serialize_field("contact_ref", self.contact_ref)?;
        s.serialize_field("agent", self.agent)?;
        s.serialize_field("callee", &Text(self.callee))?;
        s.serialize_field("outbound_id", self.outbound_id)?;
        s.serialize_field("recording_ref", self.recording_ref)?;
        if let Some(url) = self.recording_url {
            s.serialize_field("recording_url", &Text(url))?;
        }
        s.serialize_field("timestamp", &self.timestamp)?;
        if let Some(cause) = self.cause {
            s.serialize_field("cause", cause.as_str())?;
        }
        if let Some(q850) = self.q850 {
            s.serialize_field("q850", &q850)?;
        }
        s.end()
    }
}

/// Serialises any `Display` as a JSON string, escaped, without allocating.
struct Text<'a>(&'a dyn fmt::Display);

impl Serialize for Text<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self.0)
    }
}

/// Writes one notification object: the bytes serde-json-core writes for [`Notification`],
/// by the writer below (`Out`).
pub fn write_notification(
    notification: &Notification<'_>,
    out: &mut [u8],
) -> Result<usize, BufferTooSmall> {
    let mut o = Out::new(out);
    notification_fields(notification, &mut o)
        .map(|()| o.len)
        .map_err(|_| BufferTooSmall { required: None })
}

fn notification_fields(n: &Notification<'_>, o: &mut Out<'_>) -> fmt::Result {
    o.raw(b"{\"event\":")?;
    o.string(n.event.as_str())?;
    o.field("contact_ref")?;
    o.string(n.contact_ref)?;
    o.field("agent")?;
    o.string(n.agent)?;
    o.field("callee")?;
    o.display(n.callee)?;
    o.field("outbound_id")?;
    o.string(n.outbound_id)?;
    o.field("recording_ref")?;
    o.string(n.recording_ref)?;
    if let Some(url) = n.recording_url {
        o.field("recording_url")?;
        o.display(url)?;
    }
    o.field("timestamp")?;
    match n.timestamp.rfc3339() {
        Some(text) => {
            o.raw(b"\"")?;
            o.raw(&text)?;
            o.raw(b"\"")?;
        }
        None => o.display(&n.timestamp)?,
    }
    if let Some(cause) = n.cause {
        o.field("cause")?;
        o.string(cause.as_str())?;
    }
    if let Some(q850) = n.q850 {
        o.field("q850")?;
        o.number(q850)?;
    }
    o.raw(b"}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Field;

    /// serde-json-core's bytes for the error bodies, which [`write_error`] and
    /// [`write_config_error`] write by hand.
    struct ErrorBody<'e>(&'e Error);

    impl Serialize for ErrorBody<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut outer = serializer.serialize_map(Some(1))?;
            outer.serialize_entry("error", &ErrorFields(self.0))?;
            outer.end()
        }
    }

    struct ErrorFields<'e>(&'e Error);

    impl Serialize for ErrorFields<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let e = self.0;
            let mut s = serializer.serialize_struct("Error", 3)?;
            s.serialize_field("code", e.code.as_str())?;
            if let Some(field) = e.field {
                s.serialize_field("field", field.as_str())?;
            }
            s.serialize_field("message", e.message)?;
            s.end()
        }
    }

    struct ConfigErrorBody<'e>(&'e ConfigError);

    impl Serialize for ConfigErrorBody<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut outer = serializer.serialize_map(Some(1))?;
            outer.serialize_entry("error", &ConfigErrorFields(self.0))?;
            outer.end()
        }
    }

    struct ConfigErrorFields<'e>(&'e ConfigError);

    impl Serialize for ConfigErrorFields<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut s = serializer.serialize_struct("Error", 3)?;
            s.serialize_field("code", ErrorCode::InvalidConfig.as_str())?;
            s.serialize_field("field", self.0.key())?;
            s.serialize_field("message", &Text(self.0))?;
            s.end()
        }
    }

    fn escaped(b: u8) -> bool {
        b < 0x20 || b == b'"' || b == b'\\'
    }

    #[test]
    fn a_word_has_an_escape_exactly_when_one_of_its_bytes_needs_one() {
        for filler in [b'a', b' ', 0x21, 0x5b, 0x7f, 0x80, 0xff] {
            for b in 0..=u8::MAX {
                for at in 0..8 {
                    let mut bytes = [filler; 8];
                    bytes[at] = b;
                    let expected = bytes.iter().any(|&x| escaped(x));
                    assert_eq!(
                        word_has_escape(u64::from_le_bytes(bytes)),
                        expected,
                        "{bytes:02x?}"
                    );
                }
            }
        }
        // Words of mixed bytes (xorshift), against the byte-by-byte answer.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let expected = x.to_le_bytes().iter().any(|&b| escaped(b));
            assert_eq!(word_has_escape(x), expected, "{x:016x}");
        }
    }

    #[test]
    fn next_escape_finds_the_first_byte_to_escape_from_any_start() {
        let text = b"plain text of some length\"with\\escapes\n and\x01 more plain tail";
        let mut all: [u8; 80] = [b'.'; 80];
        all[..text.len()].copy_from_slice(text);
        for len in 0..=all.len() {
            let bytes = &all[..len];
            for from in 0..=len + 1 {
                let expected = bytes
                    .get(from..)
                    .and_then(|rest| rest.iter().position(|&b| escaped(b)))
                    .map(|at| from + at);
                assert_eq!(next_escape(bytes, from), expected, "len {len} from {from}");
            }
        }
    }

    #[test]
    fn error_bodies_are_serde_json_cores_bytes() {
        let errors = [
            Error::MALFORMED_JSON,
            Error::BODY_TOO_LARGE,
            Error::NOT_FOUND,
            Error::INTERNAL,
            Error::CONTACT_REF_CONFLICT,
            Error::INVALID_CONTACT_REF_IN_PATH,
            Error::field(
                ErrorCode::InvalidAgent,
                Field::Agent,
                "a \"quoted\" \\ one\n\u{1}",
            ),
        ];
        for e in &errors {
            let (mut ours, mut theirs) = ([0u8; 512], [0u8; 512]);
            let n = write_error(e, &mut ours).unwrap();
            let m = write(&ErrorBody(e), &mut theirs).unwrap();
            assert_eq!(ours.get(..n), theirs.get(..m), "{e:?}");
            assert!(write_error(e, &mut ours[..n - 1]).is_err());
        }
    }

    #[test]
    fn config_error_bodies_are_serde_json_cores_bytes() {
        let key = "dialplan.agent_tech";
        let errors = [
            ConfigError::Empty { key },
            ConfigError::TooLong { key, max: 64 },
            ConfigError::Character { key },
            ConfigError::Form {
                key,
                expected: "a \"form\"",
            },
            ConfigError::OutOfRange {
                key,
                min: 1,
                max: 4_000_000_000,
            },
            ConfigError::Digits {
                key: "policy.denied_prefixes",
                index: 7,
                max: 15,
            },
        ];
        for e in &errors {
            let (mut ours, mut theirs) = ([0u8; 512], [0u8; 512]);
            let n = write_config_error(e, &mut ours).unwrap();
            let m = write(&ConfigErrorBody(e), &mut theirs).unwrap();
            assert_eq!(ours.get(..n), theirs.get(..m), "{e:?}");
            assert!(write_config_error(e, &mut ours[..n - 1]).is_err());
        }
    }
}
