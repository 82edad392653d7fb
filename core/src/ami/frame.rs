//! Framing of the byte stream Asterisk sends: one banner line, then messages that each end
//! at an empty line.
//!
//! The caller owns the buffer: it appends what it reads, calls [`Decoder::decode`] until that
//! answers `Ok(None)` ("incomplete: read more"), and drops the `len` bytes of each decoded
//! frame from the front once it is done with the frame. An error means the stream cannot be
//! trusted any more; close the connection.
//!
//! Lines end in `\r\n` and a message ends at the first `\r\n\r\n`. The recorded transcripts
//! never end a line or a message with a bare `\n`; the one bare `\n` they hold sits at the end
//! of a `Message` value (`…maximum of 149\n\r\n\r\n`), so a bare `\n` is never taken as a line
//! end. A message is at most [`MAX_MESSAGE_LEN`] bytes, so a caller buffer of that size
//! always suffices and a peer that never sends the empty line is cut off instead of growing
//! the buffer.

use core::fmt;

use super::message::Message;

/// The largest frame accepted, closing empty line included. The largest in the recorded
/// transcripts is about 1.3 KiB (a `Local` channel event).
pub const MAX_MESSAGE_LEN: usize = 8 * 1024;

/// The longest banner line accepted, `\r\n` included.
pub const MAX_BANNER_LEN: usize = 128;

/// How the banner line starts; the protocol version follows (`11.0.0` on Asterisk 22).
pub const BANNER_PREFIX: &str = "Asterisk Call Manager/";

/// One complete frame at the front of the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Frame<'a> {
    /// The banner; holds the version after [`BANNER_PREFIX`], e.g. `11.0.0`.
    Banner(&'a str),
    /// A response or an event.
    Message(Message<'a>),
}

/// A decoded frame and how many bytes it took from the front of the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Decoded<'a> {
    /// The frame, borrowing the buffer.
    pub frame: Frame<'a>,
    /// Bytes consumed, line ends included; never zero.
    pub len: usize,
}

/// Why the stream cannot be decoded. Both are fatal for the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DecodeError {
    /// The peer did not open with an `Asterisk Call Manager/<version>` line.
    NotAmi,
    /// [`MAX_MESSAGE_LEN`] bytes arrived without the empty line that ends a message.
    MessageTooLarge,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAmi => f.write_str("the peer is not an Asterisk manager interface"),
            Self::MessageTooLarge => write!(
                f,
                "AMI message longer than {MAX_MESSAGE_LEN} bytes without an empty line"
            ),
        }
    }
}

impl core::error::Error for DecodeError {}

/// The incremental decoder: remembers only whether the banner has been seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Decoder {
    expect_banner: bool,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder for a fresh connection to Asterisk: the banner comes first.
    pub const fn new() -> Self {
        Self {
            expect_banner: true,
        }
    }

    /// A decoder for a stream without a banner, e.g. the actions a client sends (which is
    /// how a PBX simulator reads them).
    pub const fn without_banner() -> Self {
        Self {
            expect_banner: false,
        }
    }

    /// Whether the next frame must be the banner.
    pub const fn expects_banner(&self) -> bool {
        self.expect_banner
    }

    /// Decodes the frame at the front of `buf`: `Ok(None)` when more bytes are needed
    /// (nothing is consumed), `Ok(Some(_))` with the frame and its length, or an error.
    pub fn decode<'a>(&mut self, buf: &'a [u8]) -> Result<Option<Decoded<'a>>, DecodeError> {
        if self.expect_banner {
            let Some((version, len)) = check_banner(buf)? else {
                return Ok(None);
            };
            self.expect_banner = false;
            return Ok(Some(Decoded {
                frame: Frame::Banner(version),
                len,
            }));
        }
        let Some((body, len)) = check_message(buf)? else {
            return Ok(None);
        };
        Ok(Some(Decoded {
            frame: Frame::Message(Message::new(body)),
            len,
        }))
    }
}

/// The banner's version and the line's length, `None` if incomplete.
fn check_banner(buf: &[u8]) -> Result<Option<(&str, usize)>, DecodeError> {
    let prefix = BANNER_PREFIX.as_bytes();
    let seen = buf.len().min(prefix.len());
    if buf.get(..seen) != prefix.get(..seen) {
        return Err(DecodeError::NotAmi);
    }
    let window = buf.get(..MAX_BANNER_LEN).unwrap_or(buf);
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= MAX_BANNER_LEN {
            Err(DecodeError::NotAmi)
        } else {
            Ok(None)
        };
    };
    let version = buf
        .get(prefix.len()..end)
        .and_then(|v| core::str::from_utf8(v).ok())
        .ok_or(DecodeError::NotAmi)?;
    Ok(Some((version.trim_ascii(), end.saturating_add(2))))
}

/// The message body (before the empty line) and the frame's length, `None` if incomplete.
fn check_message(buf: &[u8]) -> Result<Option<(&[u8], usize)>, DecodeError> {
    let window = buf.get(..MAX_MESSAGE_LEN).unwrap_or(buf);
    let Some(end) = find_blank_line(window) else {
        return if buf.len() >= MAX_MESSAGE_LEN {
            Err(DecodeError::MessageTooLarge)
        } else {
            Ok(None)
        };
    };
    Ok(Some((
        buf.get(..end).unwrap_or_default(),
        end.saturating_add(4),
    )))
}

/// Where the first `\r\n\r\n` starts. Looks only at line feeds, so a caller that decodes
/// after every small read rescans cheaply.
fn find_blank_line(buf: &[u8]) -> Option<usize> {
    buf.iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'\n')
        .find_map(|(lf, _)| {
            let start = lf.checked_sub(3)?;
            (buf.get(start..lf) == Some(b"\r\n\r".as_slice())).then_some(start)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use std::vec;

    fn decode_one(
        decoder: &mut Decoder,
        bytes: &[u8],
    ) -> Result<Option<(usize, std::string::String)>, DecodeError> {
        Ok(decoder.decode(bytes)?.map(|d| {
            let text = match d.frame {
                Frame::Banner(v) => std::format!("banner {v}"),
                Frame::Message(m) => std::format!("{m:?}"),
            };
            (d.len, text)
        }))
    }

    #[rstest]
    #[case(b"", Ok(None))]
    #[case(b"Asterisk", Ok(None))]
    #[case(b"Asterisk Call Manager/11.0.0", Ok(None))]
    #[case(b"Asterisk Call Manager/11.0.0\r", Ok(None))]
    #[case(b"Asterisk Call Manager/11.0.0\r\n", Ok(Some((30, "banner 11.0.0".into()))))]
    #[case(b"Asterisk Call Manager/11.0.0\r\nResponse", Ok(Some((30, "banner 11.0.0".into()))))]
    #[case(b"Asterisk Call Manager/\r\n", Ok(Some((24, "banner ".into()))))]
    #[case(b"SSH-2.0-OpenSSH\r\n", Err(DecodeError::NotAmi))]
    #[case(b"A", Ok(None))]
    #[case(b"B", Err(DecodeError::NotAmi))]
    #[case(b"Asterisk Call Manager/11.0.0\n", Ok(None))]
    #[case(b"Asterisk Call Manager/\xff\r\n", Err(DecodeError::NotAmi))]
    #[case(b"Response: Success\r\n\r\n", Err(DecodeError::NotAmi))]
    fn banner(
        #[case] bytes: &[u8],
        #[case] want: Result<Option<(usize, std::string::String)>, DecodeError>,
    ) {
        assert_eq!(decode_one(&mut Decoder::new(), bytes), want);
    }

    #[test]
    fn banner_length_is_bounded() {
        let mut long = std::vec::Vec::from(BANNER_PREFIX.as_bytes());
        long.resize(MAX_BANNER_LEN - 2, b'1');
        long.extend_from_slice(b"\r\n");
        assert!(matches!(Decoder::new().decode(&long), Ok(Some(d)) if d.len == MAX_BANNER_LEN));
        long.insert(BANNER_PREFIX.len(), b'1');
        assert_eq!(Decoder::new().decode(&long), Err(DecodeError::NotAmi));
        assert_eq!(Decoder::new().decode(&long[..MAX_BANNER_LEN - 1]), Ok(None));
    }

    #[rstest]
    #[case(b"", Ok(None))]
    #[case(b"Response: Success", Ok(None))]
    #[case(b"Response: Success\r\n", Ok(None))]
    #[case(b"Response: Success\r\n\r", Ok(None))]
    #[case(b"Response: Success\n\n", Ok(None))]
    #[case(b"Response: Success\r\n\r\n", Ok(Some((21, r#"[("Response", "Success")]"#.into()))))]
    #[case(b"A: 1\r\n\r\nB: 2\r\n\r\n", Ok(Some((8, r#"[("A", "1")]"#.into()))))]
    #[case(b"\r\n\r\n", Ok(Some((4, "[]".into()))))]
    #[case(b"Message: x\n\r\n\r\n", Ok(Some((15, r#"[("Message", "x")]"#.into()))))]
    fn message(
        #[case] bytes: &[u8],
        #[case] want: Result<Option<(usize, std::string::String)>, DecodeError>,
    ) {
        assert_eq!(decode_one(&mut Decoder::without_banner(), bytes), want);
    }

    #[test]
    fn message_length_is_bounded() {
        let mut frame = vec![b'x'; MAX_MESSAGE_LEN - 4];
        frame.extend_from_slice(b"\r\n\r\n");
        let mut decoder = Decoder::without_banner();
        assert!(matches!(decoder.decode(&frame), Ok(Some(d)) if d.len == MAX_MESSAGE_LEN));
        frame.insert(0, b'x');
        assert_eq!(decoder.decode(&frame), Err(DecodeError::MessageTooLarge));
        assert_eq!(
            decoder.decode(&frame[..MAX_MESSAGE_LEN]),
            Err(DecodeError::MessageTooLarge)
        );
        assert_eq!(decoder.decode(&frame[..MAX_MESSAGE_LEN - 1]), Ok(None));
    }

    #[test]
    fn banner_then_messages() {
        let mut decoder = Decoder::new();
        assert!(decoder.expects_banner());
        let bytes = b"Asterisk Call Manager/11.0.0\r\nResponse: Success\r\n\r\n";
        let first = decoder.decode(bytes).unwrap().unwrap();
        assert_eq!(first.frame, Frame::Banner("11.0.0"));
        assert!(!decoder.expects_banner());
        let second = decoder.decode(&bytes[first.len..]).unwrap().unwrap();
        assert_eq!(second.len, bytes.len() - first.len);
        assert!(matches!(second.frame, Frame::Message(m) if m.get("response") == Some("Success")));
    }

    #[test]
    fn errors_display() {
        assert_eq!(
            std::format!("{}", DecodeError::MessageTooLarge),
            "AMI message longer than 8192 bytes without an empty line"
        );
    }
}
