//! AGI commands, written into caller buffers.
//!
//! Asterisk splits a command line into arguments at spaces, honouring double quotes and
//! backslash escapes. Arguments are written bare when every byte is in a safe set (letters,
//! digits and `_ ( ) - . : + @ / ~`), and in double quotes otherwise (spaces, commas,
//! `${…}`), which reproduces what the recorded service sent byte for byte:
//! `GET VARIABLE CHANNEL(endpoint)`, `GET VARIABLE "PJSIP_HEADER(read,X-Teleforge-Callee)"`.
//! A value that cannot be sent without escaping — `"`, `\`, or any control byte (a newline
//! would end the command early) — is refused, so a broken command is never emitted.

use core::fmt;

use crate::decimal::Decimal;
use crate::error::BufferTooSmall;

/// The longest command line Asterisk reads (`AGI_BUF_LEN`), `\n` included.
pub const MAX_COMMAND_LEN: usize = 2048;

/// Why a command was not written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum CommandError {
    /// An argument holds `"`, `\` or a control byte (newline, NUL, …).
    UnsafeArgument,
    /// The command would be longer than [`MAX_COMMAND_LEN`].
    TooLong,
    /// The output buffer is too small; `required` bytes would have fitted.
    BufferTooSmall {
        /// The command's length.
        required: usize,
    },
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsafeArgument => {
                f.write_str("an AGI argument holds a quote, a backslash or a control byte")
            }
            Self::TooLong => write!(f, "AGI command longer than {MAX_COMMAND_LEN} bytes"),
            Self::BufferTooSmall { required } => {
                write!(f, "output buffer too small: {required} bytes needed")
            }
        }
    }
}

impl core::error::Error for CommandError {}

impl From<CommandError> for BufferTooSmall {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::BufferTooSmall { required } => BufferTooSmall {
                required: Some(required),
            },
            _ => BufferTooSmall { required: None },
        }
    }
}

/// The commands a click-to-dial service needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Command<'a> {
    /// `GET VARIABLE <name>`: a variable or a function (`PJSIP_HEADER(read,X-…)`).
    GetVariable(&'a str),
    /// `GET FULL VARIABLE <expression>`: `${…}` substitutions evaluated.
    GetFullVariable(&'a str),
    /// `SET VARIABLE <name> <value>`.
    SetVariable {
        /// The variable.
        name: &'a str,
        /// Its value.
        value: &'a str,
    },
    /// `VERBOSE <message> <level>`: a line in the Asterisk log.
    Verbose {
        /// The text.
        message: &'a str,
        /// Verbosity level (1–4).
        level: u8,
    },
    /// `CHANNEL STATUS`.
    ChannelStatus,
    /// `HANGUP`: hang up the AGI's own channel.
    Hangup,
}

impl Command<'_> {
    /// Writes the command and its `\n` into `out`; returns the length.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, CommandError> {
        let level;
        let (verb, args): (&str, [Option<&str>; 2]) = match *self {
            Self::GetVariable(name) => ("GET VARIABLE", [Some(name), None]),
            Self::GetFullVariable(expr) => ("GET FULL VARIABLE", [Some(expr), None]),
            Self::SetVariable { name, value } => ("SET VARIABLE", [Some(name), Some(value)]),
            Self::Verbose { message, level: l } => {
                level = Decimal::new(u64::from(l));
                ("VERBOSE", [Some(message), Some(level.as_str())])
            }
            Self::ChannelStatus => ("CHANNEL STATUS", [None, None]),
            Self::Hangup => ("HANGUP", [None, None]),
        };
        let mut required = verb.len().saturating_add(1);
        for arg in args.iter().flatten() {
            if !is_sendable(arg) {
                return Err(CommandError::UnsafeArgument);
            }
            let quotes = if needs_quotes(arg) { 2 } else { 0 };
            required = required
                .saturating_add(1)
                .saturating_add(quotes)
                .saturating_add(arg.len());
        }
        if required > MAX_COMMAND_LEN {
            return Err(CommandError::TooLong);
        }
        let mut w = Writer { out, at: 0 };
        w.put(verb.as_bytes())
            .ok_or(CommandError::BufferTooSmall { required })?;
        for arg in args.iter().flatten() {
            w.put(b" ")
                .ok_or(CommandError::BufferTooSmall { required })?;
            let quoted = needs_quotes(arg);
            let parts: [&[u8]; 3] = if quoted {
                [b"\"", arg.as_bytes(), b"\""]
            } else {
                [b"", arg.as_bytes(), b""]
            };
            for part in parts {
                w.put(part)
                    .ok_or(CommandError::BufferTooSmall { required })?;
            }
        }
        w.put(b"\n")
            .ok_or(CommandError::BufferTooSmall { required })?;
        Ok(w.at)
    }
}

/// Whether `value` can be one argument of a command: no `"`, `\` or control byte.
pub fn is_sendable(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b != b'"' && b != b'\\' && b >= 0x20 && b != 0x7f)
}

fn needs_quotes(value: &str) -> bool {
    value.is_empty()
        || !value.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'_' | b'(' | b')' | b'-' | b'.' | b':' | b'+' | b'@' | b'/' | b'~'
                )
        })
}

struct Writer<'o> {
    out: &'o mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Option<()> {
        let end = self.at.checked_add(bytes.len())?;
        self.out.get_mut(self.at..end)?.copy_from_slice(bytes);
        self.at = end;
        Some(())
    }
}
