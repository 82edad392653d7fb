//! A zero-copy view of one AMI message: ordered `Key: value` headers, lookup by key, and the
//! typed fields the call state machine needs.
//!
//! **Lines.** A line ends at `\r\n` only; a bare `\n` is part of the line (one recorded
//! `Message` value ends in a stray `\n`). Keys compare ASCII-case-insensitively, as Asterisk
//! compares them. Keys and values are trimmed of ASCII whitespace at both ends: Asterisk
//! itself skips the blanks before a value when it reads headers, `AccountCode: ` carries a
//! trailing blank, and the stray `\n` above must not reach callers.
//!
//! **Malformed lines are skipped, not fatal.** A line without a colon, with an empty key, or
//! whose key or value is not UTF-8 is left out of [`Message::headers`] and counted by
//! [`Message::skipped_lines`]. Asterisk ignores such lines in what it reads too, and the frame
//! boundary never depends on them; rejecting the whole message instead would let one odd
//! `CallerIDName` from a SIP peer cost the `Hangup` event that carries it.

use super::value::{parse_u16, ChannelState, DialStatus, ResponseStatus};

/// One message: the bytes of a frame without its closing empty line.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    bytes: &'a [u8],
}

/// One `Key: value` header, both trimmed, borrowed from the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Header<'a> {
    /// The key as sent (compare it with [`Header::is`]).
    pub key: &'a str,
    /// The value, trimmed; empty for `AccountCode: `.
    pub value: &'a str,
}

impl Header<'_> {
    /// Whether the key is `key`, ignoring ASCII case.
    pub fn is(&self, key: &str) -> bool {
        self.key.eq_ignore_ascii_case(key)
    }
}

/// What a message is, from its first well-formed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Kind<'a> {
    /// The answer to an action (`Response:` first); correlate it by `ActionID`.
    Response(ResponseStatus),
    /// An event (`Event:` first), with its name, e.g. `Hangup`.
    Event(&'a str),
    /// Neither: Asterisk always writes `Response` or `Event` first, so this is a peer fault.
    Other,
}

/// A channel variable reported in an event, from `ChanVariable: NAME=value` or
/// `ChanVariable(<channel>): NAME=value` (the form `OriginateResponse` uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ChanVariable<'a> {
    /// The channel named in the key, for the parenthesised form.
    pub channel: Option<&'a str>,
    /// The variable name (before the first `=`).
    pub name: &'a str,
    /// The value (after the first `=`); empty while the variable is unset.
    pub value: &'a str,
}

impl<'a> Message<'a> {
    /// Views `bytes` as one message. Never fails: see the module notes for what is skipped.
    pub const fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// The raw bytes, without the closing empty line.
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The well-formed headers, in order, duplicates included.
    pub fn headers(&self) -> Headers<'a> {
        Headers {
            lines: Lines { rest: self.bytes },
        }
    }

    /// How many lines [`headers`](Self::headers) leaves out (empty or malformed ones).
    pub fn skipped_lines(&self) -> usize {
        Lines { rest: self.bytes }
            .filter(|line| parse_line(line).is_none())
            .count()
    }

    /// The value of the first header named `key` (ASCII-case-insensitive).
    pub fn get(&self, key: &str) -> Option<&'a str> {
        let name = key.as_bytes();
        let plain = |b: &u8| *b != b':' && !b.is_ascii_whitespace();
        match (name.first(), name.last()) {
            (Some(first), Some(last)) if plain(first) && plain(last) && !name.contains(&b':') => {
                // A line holds the header exactly when it is blanks, `key`, blanks, `:`: the
                // first colon then follows the key, and the trimmed text before it is the
                // key. Other lines are passed over at their first bytes, without looking for
                // their colon.
                Lines { rest: self.bytes }.find_map(|line| {
                    let start = line.iter().position(|b| !b.is_ascii_whitespace())?;
                    let rest = line.get(start..)?;
                    if !rest.get(..name.len())?.eq_ignore_ascii_case(name) {
                        return None;
                    }
                    let rest = rest.get(name.len()..)?.trim_ascii_start();
                    let value = rest.strip_prefix(b":")?.trim_ascii();
                    core::str::from_utf8(value).ok()
                })
            }
            _ => self.get_by_colon(key),
        }
    }

    /// [`get`](Self::get) for any `key`: the text before each line's first colon, trimmed.
    fn get_by_colon(&self, key: &str) -> Option<&'a str> {
        // As `headers().find(|h| h.is(key))`, without checking that every line before the
        // one sought is UTF-8: a key equal to `key` but for ASCII case is UTF-8 as `key` is,
        // so only the value of a matching line needs the check.
        Lines { rest: self.bytes }.find_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            let name = line.get(..colon)?.trim_ascii();
            if name.is_empty() || !name.eq_ignore_ascii_case(key.as_bytes()) {
                return None;
            }
            core::str::from_utf8(line.get(colon.saturating_add(1)..)?.trim_ascii()).ok()
        })
    }

    /// Every value of the headers named `key`, in order.
    pub fn get_all<'k>(&self, key: &'k str) -> Values<'a, 'k> {
        Values {
            headers: self.headers(),
            key,
        }
    }

    /// Response, event or neither, decided by the first well-formed header.
    pub fn kind(&self) -> Kind<'a> {
        match self.headers().next() {
            Some(h) if h.is("Response") => Kind::Response(ResponseStatus::parse(h.value)),
            Some(h) if h.is("Event") => Kind::Event(h.value),
            _ => Kind::Other,
        }
    }

    /// The event name, when this is an event.
    pub fn event(&self) -> Option<&'a str> {
        match self.kind() {
            Kind::Event(name) => Some(name),
            _ => None,
        }
    }

    /// Whether this is the event `name` (ASCII-case-insensitive).
    pub fn is_event(&self, name: &str) -> bool {
        self.event().is_some_and(|e| e.eq_ignore_ascii_case(name))
    }

    /// The `Response` header, in an action's answer or in an `OriginateResponse` event.
    pub fn response(&self) -> Option<ResponseStatus> {
        self.get("Response").map(ResponseStatus::parse)
    }

    /// `ActionID`: which action this answers (also set on `OriginateResponse`).
    pub fn action_id(&self) -> Option<&'a str> {
        self.get("ActionID")
    }

    /// `Message`: the human-readable text of a response, e.g. `Authentication failed`.
    pub fn message(&self) -> Option<&'a str> {
        self.get("Message")
    }

    /// `Channel`, e.g. `PJSIP/1001-00000000` (just `PJSIP/1001` in a failed `OriginateResponse`).
    pub fn channel(&self) -> Option<&'a str> {
        self.get("Channel")
    }

    /// `Uniqueid` of the channel; the agent channel's is the Originate `ChannelId`.
    pub fn uniqueid(&self) -> Option<&'a str> {
        self.get("Uniqueid")
    }

    /// `Linkedid`: shared by every channel of one call (the Originate `ChannelId`).
    pub fn linkedid(&self) -> Option<&'a str> {
        self.get("Linkedid")
    }

    /// `ChannelState` of the channel.
    pub fn channel_state(&self) -> Option<ChannelState> {
        self.get("ChannelState").map(ChannelState::parse)
    }

    /// `DestChannel`: the dialled channel in `DialBegin`/`DialState`/`DialEnd`.
    pub fn dest_channel(&self) -> Option<&'a str> {
        self.get("DestChannel")
    }

    /// `DestUniqueid`: the dialled channel's `Uniqueid`.
    pub fn dest_uniqueid(&self) -> Option<&'a str> {
        self.get("DestUniqueid")
    }

    /// `DestLinkedid`: the dialled channel's `Linkedid`.
    pub fn dest_linkedid(&self) -> Option<&'a str> {
        self.get("DestLinkedid")
    }

    /// `DestChannelState` of the dialled channel.
    pub fn dest_channel_state(&self) -> Option<ChannelState> {
        self.get("DestChannelState").map(ChannelState::parse)
    }

    /// `DialStatus` of `DialState`/`DialEnd`.
    pub fn dial_status(&self) -> Option<DialStatus> {
        self.get("DialStatus").map(DialStatus::parse)
    }

    /// `Cause`: the Q.850 hangup cause (`None` when absent or not a number).
    pub fn cause(&self) -> Option<u16> {
        self.get("Cause").and_then(parse_u16)
    }

    /// `Cause-txt`, e.g. `User busy`.
    pub fn cause_txt(&self) -> Option<&'a str> {
        self.get("Cause-txt")
    }

    /// `TechCause`: the technology's own cause, e.g. the SIP status `486`.
    pub fn tech_cause(&self) -> Option<u16> {
        self.get("TechCause").and_then(parse_u16)
    }

    /// `Reason` of `OriginateResponse`: the last control frame seen (`4` answered, `3` rang
    /// out, `0` when the channel failed or was refused).
    pub fn reason(&self) -> Option<u16> {
        self.get("Reason").and_then(parse_u16)
    }

    /// `BridgeUniqueid` of the bridge events.
    pub fn bridge_uniqueid(&self) -> Option<&'a str> {
        self.get("BridgeUniqueid")
    }

    /// The `ChanVariable` headers, plain or parenthesised.
    pub fn chan_variables(&self) -> ChanVariables<'a, 'static> {
        self.chan_variables_with("ChanVariable")
    }

    /// The `DestChanVariable` headers of the dialled channel.
    pub fn dest_chan_variables(&self) -> ChanVariables<'a, 'static> {
        self.chan_variables_with("DestChanVariable")
    }

    /// Variable headers under another key, e.g. `LocalOneChanVariable`.
    pub fn chan_variables_with<'k>(&self, key: &'k str) -> ChanVariables<'a, 'k> {
        ChanVariables {
            headers: self.headers(),
            key,
        }
    }

    /// The value of the first `ChanVariable` named `name` (names are case-sensitive).
    pub fn chan_variable(&self, name: &str) -> Option<&'a str> {
        self.chan_variables()
            .find(|v| v.name == name)
            .map(|v| v.value)
    }
}

impl core::fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut list = f.debug_list();
        for header in self.headers() {
            list.entry(&(header.key, header.value));
        }
        list.finish()
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Message<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        match self.kind() {
            Kind::Response(status) => defmt::write!(f, "Response({})", status),
            Kind::Event(name) => defmt::write!(f, "Event({=str})", name),
            Kind::Other => defmt::write!(f, "Other"),
        }
    }
}

/// Iterator over the well-formed headers of a [`Message`].
#[derive(Clone, Debug)]
pub struct Headers<'a> {
    lines: Lines<'a>,
}

impl<'a> Iterator for Headers<'a> {
    type Item = Header<'a>;

    fn next(&mut self) -> Option<Header<'a>> {
        self.lines.by_ref().find_map(parse_line)
    }
}

/// Iterator over the values of every header with one key; see [`Message::get_all`].
#[derive(Clone, Debug)]
pub struct Values<'a, 'k> {
    headers: Headers<'a>,
    key: &'k str,
}

impl<'a> Iterator for Values<'a, '_> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let key = self.key;
        self.headers.find(|h| h.is(key)).map(|h| h.value)
    }
}

/// Iterator over channel variables; see [`Message::chan_variables`]. A header without `=` in
/// its value is skipped.
#[derive(Clone, Debug)]
pub struct ChanVariables<'a, 'k> {
    headers: Headers<'a>,
    key: &'k str,
}

impl<'a> Iterator for ChanVariables<'a, '_> {
    type Item = ChanVariable<'a>;

    fn next(&mut self) -> Option<ChanVariable<'a>> {
        let key = self.key;
        self.headers.find_map(|h| {
            let channel = variable_key(h.key, key)?;
            let (name, value) = crate::text::split_once(h.value, b'=')?;
            Some(ChanVariable {
                channel,
                name,
                value,
            })
        })
    }
}

/// `Some(None)` for `key`, `Some(Some(channel))` for `key(channel)`, `None` otherwise.
fn variable_key<'a>(header_key: &'a str, key: &str) -> Option<Option<&'a str>> {
    let (head, tail) = header_key.split_at_checked(key.len())?;
    if !head.eq_ignore_ascii_case(key) {
        return None;
    }
    if tail.is_empty() {
        return Some(None);
    }
    tail.strip_prefix('(')?.strip_suffix(')').map(Some)
}

/// The raw lines of a message, split at `\r\n` only.
#[derive(Clone, Debug)]
struct Lines<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        // The first `\r` followed by `\n` (a bare `\r` or `\n` belongs to the line).
        let mut from = 0usize;
        while let Some(cr) = self
            .rest
            .get(from..)
            .and_then(|rest| memchr::memchr(b'\r', rest))
        {
            let at = from.saturating_add(cr);
            if self.rest.get(at.saturating_add(1)) == Some(&b'\n') {
                let line = self.rest.get(..at);
                self.rest = self.rest.get(at.saturating_add(2)..).unwrap_or_default();
                return line;
            }
            from = at.saturating_add(1);
        }
        Some(core::mem::take(&mut self.rest))
    }
}

/// `Key: value` → a header; `None` for a line to skip.
fn parse_line(line: &[u8]) -> Option<Header<'_>> {
    let colon = line.iter().position(|&b| b == b':')?;
    let key = line.get(..colon)?.trim_ascii();
    let value = line.get(colon.saturating_add(1)..)?.trim_ascii();
    if key.is_empty() {
        return None;
    }
    Some(Header {
        key: core::str::from_utf8(key).ok()?,
        value: core::str::from_utf8(value).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use std::vec::Vec;

    fn pairs<'a>(m: &Message<'a>) -> Vec<(&'a str, &'a str)> {
        m.headers().map(|h| (h.key, h.value)).collect()
    }

    /// `get` skips the UTF-8 check of lines it does not return: it must still answer as
    /// the first well-formed header with the key does.
    #[rstest]
    #[case(&b"Event: Hangup\r\nUniqueid: 1.2\r\nCause: 16"[..])]
    #[case(&b"uniqueid: \xff\r\nUniqueid: 2\r\nUNIQUEID: 3"[..])]
    #[case(&b"Uniqueid\xff: 1\r\n: 2\r\nUniqueid:4\r"[..])]
    #[case(&b"A: x\rUniqueid: 5\r\nUniqueid: 6\n\r\n\r\nB: \r\n"[..])]
    #[case(&b"\r\r\nUniqueid :  7 \r\n\xc3\xa9: 8\r\nCause: \xc3\xa9"[..])]
    #[case(&b""[..])]
    fn get_answers_as_the_headers_do(#[case] bytes: &[u8]) {
        let m = Message::new(bytes);
        for key in [
            "Uniqueid", "uniqueid", "Cause", "Event", "A", "B", "", "\u{e9}", "Missing",
        ] {
            assert_eq!(
                m.get(key),
                m.headers().find(|h| h.is(key)).map(|h| h.value),
                "{key}"
            );
        }
    }

    proptest::proptest! {
        /// The same for messages made of the bytes that matter (blanks, colons, line ends,
        /// the keys' letters in both cases, a byte that is not UTF-8) and for keys that
        /// `get` has to answer the slow way (blanks at an end, a colon, nothing).
        #[test]
        fn get_answers_as_the_headers_do_for_any_bytes(
            bytes in proptest::collection::vec(proptest::sample::select(
                &b"AaBbXx: \t\r\n\xff\xc3\xa9"[..]), 0..64),
            key in proptest::sample::select(&["A", "a", "AB", "x", "Ab", " A", "A ", "A:B", ":", "", "\u{e9}"][..]),
        ) {
            let m = Message::new(&bytes);
            proptest::prop_assert_eq!(m.get(key), m.headers().find(|h| h.is(key)).map(|h| h.value));
        }
    }

    #[rstest]
    #[case(b"Response: Success", &[("Response", "Success")])]
    #[case(b"AccountCode: ", &[("AccountCode", "")])]
    #[case(b"AccountCode:", &[("AccountCode", "")])]
    #[case(b"Message: Uniqueid length exceeds maximum of 149\n", &[("Message", "Uniqueid length exceeds maximum of 149")])]
    #[case(b"AppData: (Outgoing Line): x", &[("AppData", "(Outgoing Line): x")])]
    #[case(b"Value:      minrtt=0;", &[("Value", "minrtt=0;")])]
    #[case(b"Key: a\nb", &[("Key", "a\nb")])]
    #[case(b"no colon", &[])]
    #[case(b": no key", &[])]
    #[case(b"", &[])]
    #[case(b"\r\nA: 1\r\n\r\nB: 2", &[("A", "1"), ("B", "2")])]
    #[case(b"Name: caf\xc3\xa9", &[("Name", "caf\u{e9}")])]
    #[case(b"Name: \xff\xfe\r\nCause: 16", &[("Cause", "16")])]
    #[case(b"A: 1\r\nA: 2\r\na: 3", &[("A", "1"), ("A", "2"), ("a", "3")])]
    #[case(b"A: 1\r", &[("A", "1")])]
    fn header_lines(#[case] bytes: &[u8], #[case] want: &[(&str, &str)]) {
        assert_eq!(pairs(&Message::new(bytes)), want);
    }

    #[rstest]
    #[case(b"no colon\r\nA: 1", 1)]
    #[case(b"A: 1\r\nB: 2", 0)]
    #[case(b"Name: \xff\r\n: x\r\nA: 1", 2)]
    fn skipped(#[case] bytes: &[u8], #[case] want: usize) {
        assert_eq!(Message::new(bytes).skipped_lines(), want);
    }

    #[test]
    fn lookup_is_case_insensitive_and_first_wins() {
        let m = Message::new(b"Event: Hangup\r\nuniqueid: u1\r\nUNIQUEID: u2\r\nCause: 17");
        assert_eq!(m.get("UniqueID"), Some("u1"));
        assert_eq!(m.get_all("Uniqueid").collect::<Vec<_>>(), ["u1", "u2"]);
        assert_eq!(m.get("Missing"), None);
        assert_eq!(m.cause(), Some(17));
    }

    #[rstest]
    #[case(
        b"Response: Success\r\nActionID: a",
        Kind::Response(ResponseStatus::Success)
    )]
    #[case(b"Response: Goodbye", Kind::Response(ResponseStatus::Goodbye))]
    #[case(
        b"Event: OriginateResponse\r\nResponse: Failure",
        Kind::Event("OriginateResponse")
    )]
    #[case(b"event: Hangup", Kind::Event("Hangup"))]
    #[case(b"ActionID: a\r\nResponse: Success", Kind::Other)]
    #[case(b"garbage\r\nEvent: Hangup", Kind::Event("Hangup"))]
    #[case(b"", Kind::Other)]
    fn kinds(#[case] bytes: &[u8], #[case] want: Kind<'static>) {
        assert_eq!(Message::new(bytes).kind(), want);
    }

    #[test]
    fn chan_variables_both_forms() {
        let m = Message::new(
            b"Event: OriginateResponse\r\n\
              ChanVariable(PJSIP/1001-00000000): C2D_CONTACT_REF=crm-42\r\n\
              ChanVariable: C2D_RECORDING_REF=a=b\r\n\
              ChanVariable: NOEQUALS\r\n\
              ChanVariableX: X=1\r\n\
              DestChanVariable: D=2\r\n\
              ChanVariable(unclosed: U=3",
        );
        let got: Vec<_> = m.chan_variables().collect();
        assert_eq!(
            got,
            [
                ChanVariable {
                    channel: Some("PJSIP/1001-00000000"),
                    name: "C2D_CONTACT_REF",
                    value: "crm-42"
                },
                ChanVariable {
                    channel: None,
                    name: "C2D_RECORDING_REF",
                    value: "a=b"
                },
            ]
        );
        assert_eq!(m.chan_variable("C2D_RECORDING_REF"), Some("a=b"));
        assert_eq!(m.chan_variable("c2d_recording_ref"), None);
        assert_eq!(m.dest_chan_variables().count(), 1);
    }

    #[test]
    fn non_ascii_key_prefix_does_not_split_a_char() {
        let m = Message::new("ChanVariabl\u{e9}: A=1".as_bytes());
        assert_eq!(m.chan_variables().count(), 0);
    }

    #[test]
    fn debug_lists_headers() {
        let m = Message::new(b"Event: Hangup\r\nCause: 16");
        assert_eq!(
            std::format!("{m:?}"),
            r#"[("Event", "Hangup"), ("Cause", "16")]"#
        );
    }
}
