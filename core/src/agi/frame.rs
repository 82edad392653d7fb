//! Framing of the byte stream Asterisk sends to a FastAGI service: one environment block,
//! then one reply per command, with `HANGUP` lines in between.
//!
//! The caller owns the buffer: it appends what it reads, calls [`Decoder::decode`] until that
//! answers `Ok(None)` ("incomplete: read more"), and drops the `len` bytes of each decoded
//! frame from the front once it is done with the frame. An error means the stream cannot be
//! trusted any more; close the connection.
//!
//! Every line Asterisk sends ends in `\n` (a `\r` before it is tolerated and dropped). The
//! environment is `agi_<name>: <value>` lines ended by an empty line; a reply is one line
//! (`200 result=1 (value)`, `510 …`, `511 …`), or, for `520-`, every line up to and
//! including the one that starts with `520 ` — the usage text in between can hold anything,
//! even a line that looks like `200 result=1 (x)`. `HANGUP` is a frame of its own and may
//! arrive between a command and its reply.

use core::fmt;

/// The largest environment block accepted, closing empty line included. The recorded ones
/// are about 600 bytes.
pub const MAX_ENV_LEN: usize = 4096;

/// The largest reply accepted, line ends included. A `GET VARIABLE` value is at most about
/// 1 KiB in Asterisk; the longest usage texts (`520-`) are about 2 KiB.
pub const MAX_REPLY_LEN: usize = 8192;

/// How every environment line starts.
pub const ENV_PREFIX: &str = "agi_";

/// One complete frame at the front of the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Frame<'a> {
    /// The environment block, first in every session.
    Environment(Environment<'a>),
    /// The reply to the command sent last.
    Reply(Reply<'a>),
    /// The channel hung up (or the AGI ended); not a reply: keep waiting for the reply.
    Hangup,
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

/// Why the stream cannot be decoded. All are fatal for the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DecodeError {
    /// The session did not open with `agi_<name>: <value>` lines.
    NotAgi,
    /// [`MAX_ENV_LEN`] or [`MAX_REPLY_LEN`] bytes arrived without the end of the frame.
    TooLarge,
    /// A line that is no reply Asterisk sends (`200 result=` without a number, no status
    /// code, bytes that are not UTF-8).
    Malformed,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotAgi => "the peer did not send an AGI environment",
            Self::TooLarge => "AGI frame longer than the limit",
            Self::Malformed => "malformed AGI reply",
        })
    }
}

impl core::error::Error for DecodeError {}

/// The `agi_*` variables Asterisk sends first, borrowed from the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Environment<'a> {
    /// The lines, each ending in `\n`, without the closing empty line.
    block: &'a str,
}

impl<'a> Environment<'a> {
    /// Every `(name, value)` in the order sent; names keep their `agi_` prefix.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.block.split_terminator('\n').filter_map(|line| {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let (name, value) = line.split_once(':')?;
            Some((name, value.strip_prefix(' ').unwrap_or(value)))
        })
    }

    /// The value of `name` (e.g. `"agi_uniqueid"`); empty values (`agi_accountcode: `) are
    /// `Some("")`.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// How many variables there are (22 from Asterisk 22).
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether the block held no variable.
    pub fn is_empty(&self) -> bool {
        self.block.is_empty()
    }

    /// `agi_request`: `agi://127.0.0.1:4573/click2dial`.
    pub fn request(&self) -> Option<&'a str> {
        self.get("agi_request")
    }

    /// `agi_network_script`: the path of the request URL (`click2dial`).
    pub fn network_script(&self) -> Option<&'a str> {
        self.get("agi_network_script")
    }

    /// `agi_channel`: `PJSIP/1002-00000002`.
    pub fn channel(&self) -> Option<&'a str> {
        self.get("agi_channel")
    }

    /// `agi_uniqueid`: the channel's `Uniqueid` (its `Linkedid` too, for a call it started).
    pub fn uniqueid(&self) -> Option<&'a str> {
        self.get("agi_uniqueid")
    }

    /// `agi_callerid`: the caller ID number (`unknown` when there is none).
    pub fn callerid(&self) -> Option<&'a str> {
        self.get("agi_callerid")
    }

    /// `agi_calleridname`.
    pub fn calleridname(&self) -> Option<&'a str> {
        self.get("agi_calleridname")
    }

    /// `agi_context`.
    pub fn context(&self) -> Option<&'a str> {
        self.get("agi_context")
    }

    /// `agi_extension`.
    pub fn extension(&self) -> Option<&'a str> {
        self.get("agi_extension")
    }

    /// `agi_version`: the Asterisk version (`22.10.1`).
    pub fn version(&self) -> Option<&'a str> {
        self.get("agi_version")
    }
}

/// A `200` reply: `200 result=<n>[ (<value>)][ <rest>]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Success<'a> {
    /// `result`: for `GET VARIABLE` 1 when set, 0 when not.
    pub result: i64,
    /// What stood between the first `(` and the last `)`; may hold spaces and parentheses.
    pub value: Option<&'a str>,
    /// Anything after the value (`endpos=1234`); empty when none.
    pub rest: &'a str,
}

/// The reply to one command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Reply<'a> {
    /// `200 result=…`
    Success(Success<'a>),
    /// `510 Invalid or unknown command`: the text after the code.
    InvalidCommand(&'a str),
    /// `511 Command Not Permitted on a dead channel or intercept routine`.
    DeadChannel(&'a str),
    /// `520-…` … `520 End of proper usage.`: the usage lines in between (empty for a
    /// one-line `520 `).
    Usage(&'a str),
    /// Any other status code, with the text after it.
    Other {
        /// The status code.
        code: u16,
        /// The text after the code.
        text: &'a str,
    },
}

impl Reply<'_> {
    /// The `200` part, if the command succeeded.
    pub fn success(&self) -> Option<&Success<'_>> {
        match self {
            Self::Success(s) => Some(s),
            _ => None,
        }
    }
}

/// The incremental decoder: remembers only whether the environment has been seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Decoder {
    expect_env: bool,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder for a fresh FastAGI connection: the environment comes first.
    pub const fn new() -> Self {
        Self { expect_env: true }
    }

    /// A decoder for the replies only (the environment was read elsewhere).
    pub const fn without_environment() -> Self {
        Self { expect_env: false }
    }

    /// Whether the next frame must be the environment.
    pub const fn expects_environment(&self) -> bool {
        self.expect_env
    }

    /// Decodes the frame at the front of `buf`: `Ok(None)` when more bytes are needed
    /// (nothing is consumed), `Ok(Some(_))` with the frame and its length, or an error.
    pub fn decode<'a>(&mut self, buf: &'a [u8]) -> Result<Option<Decoded<'a>>, DecodeError> {
        if self.expect_env {
            let Some((env, len)) = check_environment(buf)? else {
                return Ok(None);
            };
            self.expect_env = false;
            return Ok(Some(Decoded {
                frame: Frame::Environment(env),
                len,
            }));
        }
        let Some((frame, len)) = check_reply(buf)? else {
            return Ok(None);
        };
        Ok(Some(Decoded { frame, len }))
    }
}

/// The first complete line of `buf` (without its line end) and its length with the `\n`.
fn line(buf: &[u8]) -> Option<(&[u8], usize)> {
    let end = buf.iter().position(|&b| b == b'\n')?;
    let text = buf.get(..end)?;
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    Some((text, end.checked_add(1)?))
}

fn check_environment(buf: &[u8]) -> Result<Option<(Environment<'_>, usize)>, DecodeError> {
    let prefix = ENV_PREFIX.as_bytes();
    let seen = buf.len().min(prefix.len());
    if buf.get(..seen) != prefix.get(..seen) && buf.first() != Some(&b'\n') {
        return Err(DecodeError::NotAgi);
    }
    let mut at = 0usize;
    loop {
        let rest = buf.get(at..).unwrap_or_default();
        let Some((text, len)) = line(rest) else {
            return if buf.len() >= MAX_ENV_LEN {
                Err(DecodeError::TooLarge)
            } else {
                Ok(None)
            };
        };
        let next = at.checked_add(len).ok_or(DecodeError::TooLarge)?;
        if next > MAX_ENV_LEN {
            return Err(DecodeError::TooLarge);
        }
        if text.is_empty() {
            let block = buf.get(..at).ok_or(DecodeError::NotAgi)?;
            let block = core::str::from_utf8(block).map_err(|_| DecodeError::NotAgi)?;
            return Ok(Some((Environment { block }, next)));
        }
        let is_variable = text.starts_with(prefix)
            && text
                .iter()
                .position(|&b| b == b':')
                .is_some_and(|colon| colon > prefix.len());
        if !is_variable {
            return Err(DecodeError::NotAgi);
        }
        at = next;
    }
}

fn check_reply(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, DecodeError> {
    let Some((first, len)) = line(buf) else {
        return if buf.len() >= MAX_REPLY_LEN {
            Err(DecodeError::TooLarge)
        } else {
            Ok(None)
        };
    };
    if len > MAX_REPLY_LEN {
        return Err(DecodeError::TooLarge);
    }
    let first = core::str::from_utf8(first).map_err(|_| DecodeError::Malformed)?;
    if first == "HANGUP" {
        return Ok(Some((Frame::Hangup, len)));
    }
    if first.starts_with("520-") {
        return check_usage(buf, len);
    }
    let (code, text) = status(first)?;
    let reply = match code {
        200 => Reply::Success(success(text)?),
        510 => Reply::InvalidCommand(text),
        511 => Reply::DeadChannel(text),
        520 => Reply::Usage(""),
        _ => Reply::Other { code, text },
    };
    Ok(Some((Frame::Reply(reply), len)))
}

/// `NNN` then a space (or nothing): the code and the text after the space.
fn status(line: &str) -> Result<(u16, &str), DecodeError> {
    let (code, text) = match line.split_once(' ') {
        Some((code, text)) => (code, text),
        None => (line, ""),
    };
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DecodeError::Malformed);
    }
    let code = code.parse().map_err(|_| DecodeError::Malformed)?;
    Ok((code, text))
}

/// `result=<n>[ (<value>)][ <rest>]`
fn success(text: &str) -> Result<Success<'_>, DecodeError> {
    let after = text.strip_prefix("result=").ok_or(DecodeError::Malformed)?;
    let (number, tail) = match after.split_once(' ') {
        Some((number, tail)) => (number, tail),
        None => (after, ""),
    };
    let result = number.parse().map_err(|_| DecodeError::Malformed)?;
    let (value, rest) = match tail.strip_prefix('(') {
        Some(inner) => match inner.rfind(')') {
            Some(close) => (
                inner.get(..close),
                inner.get(close.saturating_add(1)..).unwrap_or_default(),
            ),
            None => return Err(DecodeError::Malformed),
        },
        None => (None, tail),
    };
    Ok(Success {
        result,
        value,
        rest: rest.trim_start_matches(' '),
    })
}

/// The rest of a `520-` reply: lines up to one that starts with `520 `.
fn check_usage(buf: &[u8], first_len: usize) -> Result<Option<(Frame<'_>, usize)>, DecodeError> {
    let mut at = first_len;
    loop {
        let rest = buf.get(at..).unwrap_or_default();
        let Some((text, len)) = line(rest) else {
            return if buf.len() >= MAX_REPLY_LEN {
                Err(DecodeError::TooLarge)
            } else {
                Ok(None)
            };
        };
        let next = at.checked_add(len).ok_or(DecodeError::TooLarge)?;
        if next > MAX_REPLY_LEN {
            return Err(DecodeError::TooLarge);
        }
        if text.starts_with(b"520 ") {
            let usage = buf.get(first_len..at).unwrap_or_default();
            let usage = usage.strip_suffix(b"\n").unwrap_or(usage);
            let usage = usage.strip_suffix(b"\r").unwrap_or(usage);
            let usage = core::str::from_utf8(usage).map_err(|_| DecodeError::Malformed)?;
            return Ok(Some((Frame::Reply(Reply::Usage(usage)), next)));
        }
        at = next;
    }
}
