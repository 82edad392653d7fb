//! The HTTP `Range` header of a file download (RFC 9110 §14.2), reduced to what a server
//! of recordings serves: one range of bytes.
//!
//! An unknown unit (`items=0-1`), several ranges or a malformed value are ignored: the
//! whole file is served, as RFC 9110 allows. A byte range that selects nothing of the file
//! is [`RangeAsk::Unsatisfiable`] (`416`). Whatever part it asks for lies inside the file.
//!
//! ```
//! use click2dial_core::range::{ask, RangeAsk};
//!
//! assert_eq!(ask(Some(b"bytes=0-1023"), 100), RangeAsk::Part(0, 99));
//! assert_eq!(ask(Some(b"bytes=-10"), 100), RangeAsk::Part(90, 99));
//! assert_eq!(ask(Some(b"items=0-1"), 100), RangeAsk::Whole);
//! assert_eq!(ask(Some(b"bytes=100-"), 100), RangeAsk::Unsatisfiable);
//! ```

/// What a `Range` header asks of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RangeAsk {
    /// No range, or one this server ignores (another unit, several ranges, bad syntax):
    /// the whole file.
    Whole,
    /// Bytes `start..=end`, with `start <= end < len`.
    Part(u64, u64),
    /// A range of bytes that selects nothing of the file: `416`.
    Unsatisfiable,
}

/// Reads a `Range` header value for a file of `len` bytes: one `bytes` range (`a-b`, `a-`,
/// or the suffix `-n`) is served, clipped to the file; anything else gets the whole file.
pub fn ask(value: Option<&[u8]>, len: u64) -> RangeAsk {
    let Some(value) = value.and_then(|v| core::str::from_utf8(v).ok()) else {
        return RangeAsk::Whole;
    };
    let Some((unit, spec)) = value.trim().split_once('=') else {
        return RangeAsk::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let Some(last_byte) = len.checked_sub(1) else {
        // An empty file has no byte to serve: a well-formed byte range is unsatisfiable.
        return match (first.trim(), last.trim()) {
            ("", suffix) if number(suffix).is_some() => RangeAsk::Unsatisfiable,
            (start, end) if number(start).is_some() && ordered(start, end) => {
                RangeAsk::Unsatisfiable
            }
            _ => RangeAsk::Whole,
        };
    };
    match (first.trim(), last.trim()) {
        ("", suffix) => match number(suffix) {
            Some(0) => RangeAsk::Unsatisfiable,
            Some(n) => RangeAsk::Part(len.saturating_sub(n), last_byte),
            None => RangeAsk::Whole,
        },
        (start, end) => {
            let Some(start) = number(start) else {
                return RangeAsk::Whole;
            };
            let end = if end.is_empty() {
                u64::MAX
            } else {
                match number(end) {
                    Some(end) if end >= start => end,
                    _ => return RangeAsk::Whole,
                }
            };
            if start > last_byte {
                RangeAsk::Unsatisfiable
            } else {
                RangeAsk::Part(start, end.min(last_byte))
            }
        }
    }
}

/// A non-empty run of ASCII digits that fits a `u64`.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `start-end` with `end` absent, or a number not below `start` (both checked numbers).
fn ordered(start: &str, end: &str) -> bool {
    end.is_empty() || matches!((number(start), number(end)), (Some(a), Some(b)) if b >= a)
}
