//! Fuzzes the `Range` header of recordings (`click2dial_core::range`) against a file length
//! taken from the input: it never panics, a part it asks for lies inside the file, and it
//! agrees with a plain reading of the rules (one `bytes` range; anything else is the whole
//! file; a well-formed range that selects nothing is unsatisfiable).
//!
//! Input: eight bytes of file length (little-endian; the top bits are dropped so lengths
//! near the end of `u64` and small ones both come up), then the header value.
#![no_main]

use click2dial_core::range::{ask, RangeAsk};
use libfuzzer_sys::fuzz_target;

/// The rules written out plainly, with big integers where the core saturates.
fn reference(value: &[u8], len: u64) -> RangeAsk {
    let Ok(value) = std::str::from_utf8(value) else {
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
    let number = |s: &str| -> Option<u128> {
        let v = (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u128>().ok())
            .flatten()?;
        (v <= u128::from(u64::MAX)).then_some(v)
    };
    let len = u128::from(len);
    let (first, last) = (first.trim(), last.trim());
    let (start, end) = if first.is_empty() {
        let Some(n) = number(last) else {
            return RangeAsk::Whole;
        };
        if n == 0 || len == 0 {
            return RangeAsk::Unsatisfiable;
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let Some(start) = number(first) else {
            return RangeAsk::Whole;
        };
        let end = if last.is_empty() {
            u128::MAX
        } else {
            match number(last) {
                Some(end) if end >= start => end,
                _ => return RangeAsk::Whole,
            }
        };
        if start >= len {
            return RangeAsk::Unsatisfiable;
        }
        (start, end.min(len - 1))
    };
    RangeAsk::Part(start as u64, end as u64)
}

fuzz_target!(|data: &[u8]| {
    let Some((len, value)) = data.split_first_chunk::<8>() else {
        return;
    };
    let raw = u64::from_le_bytes(*len);
    // The first byte's top bit picks a huge length; otherwise a small one.
    let len = if raw & 0x80 != 0 { raw } else { raw % 4096 };
    let got = ask(Some(value), len);
    if let RangeAsk::Part(start, end) = got {
        assert!(start <= end && end < len, "{start}-{end} of {len}");
    }
    assert_eq!(
        got,
        reference(value, len),
        "{:?} of {len}",
        String::from_utf8_lossy(value)
    );
});
