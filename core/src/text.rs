//! A string held inline in a fixed-size buffer: values that outlive the buffer they were read
//! from (a request body, an AMI message) without allocating. The one inline string type of
//! the core, the appliance and the host's call values.

use core::fmt;

/// Up to `N` bytes of UTF-8, inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Text<const N: usize> {
    bytes: [u8; N],
    len: u16,
}

impl<const N: usize> Text<N> {
    /// The empty string.
    pub const EMPTY: Self = Self {
        bytes: [0; N],
        len: 0,
    };

    /// A copy of `value`, or `None` when it is longer than `N` bytes.
    pub fn new(value: &str) -> Option<Self> {
        let mut text = Self::EMPTY;
        text.len = copy_whole(&mut text.bytes, value)?;
        Some(text)
    }

    /// `parts` one after the other, or `None` when they are longer than `N` bytes together.
    pub fn new_from_parts(parts: &[&str]) -> Option<Self> {
        let total = parts
            .iter()
            .try_fold(0usize, |n, part| n.checked_add(part.len()))?;
        (total <= N).then(|| Self::from_parts(parts))
    }

    /// `parts` one after the other; what does not fit is cut at a character boundary.
    pub fn from_parts(parts: &[&str]) -> Self {
        let mut text = Self::EMPTY;
        text.len = copy_cut(&mut text.bytes, parts);
        text
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        str_of(&self.bytes, self.len)
    }

    /// Whether the string is empty.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// `s` split around the first `sep`, an ASCII byte: `str::split_once` with a `char`, without
/// the `char` searcher (and its panic paths) in the firmware, which splits this way in the
/// AMI codec, the Originate, the config check, the admin API and the HTTP head.
pub fn split_once(s: &str, sep: u8) -> Option<(&str, &str)> {
    debug_assert!(sep.is_ascii());
    let at = s.bytes().position(|b| b == sep)?;
    Some((s.get(..at)?, s.get(at.checked_add(1)?..)?))
}

/// The offset of the first `needle` in `haystack`, by comparing a window at each byte: the
/// needles are short (`{callee}`), and `str::find`'s two-way searcher costs the firmware
/// about 1 KB of flash.
pub fn find(haystack: &str, needle: &str) -> Option<usize> {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    (0..=h.len().checked_sub(n.len())?).find(|&i| h.get(i..).is_some_and(|w| w.starts_with(n)))
}

// The work is done on slices, once for every `N`: the firmware carries one copy of each.

/// Copies `value` to the start of `buf`; its length, or `None` when it does not fit.
fn copy_whole(buf: &mut [u8], value: &str) -> Option<u16> {
    buf.get_mut(..value.len())?
        .copy_from_slice(value.as_bytes());
    u16::try_from(value.len()).ok()
}

/// Copies `parts` one after the other into `buf`, cut at a character boundary; the length.
fn copy_cut(buf: &mut [u8], parts: &[&str]) -> u16 {
    let mut len = 0usize;
    for part in parts {
        let room = buf.len().saturating_sub(len);
        let mut n = part.len().min(room);
        while !part.is_char_boundary(n) {
            n = n.saturating_sub(1);
        }
        let end = len.saturating_add(n);
        if let (Some(dst), Some(src)) = (buf.get_mut(len..end), part.get(..n)) {
            dst.copy_from_slice(src.as_bytes());
            len = end;
        }
        if n < part.len() {
            break;
        }
    }
    u16::try_from(len).unwrap_or(0)
}

/// The first `len` bytes of `buf` as text (only whole characters are ever copied in).
fn str_of(buf: &[u8], len: u16) -> &str {
    buf.get(..usize::from(len))
        .and_then(|b| core::str::from_utf8(b).ok())
        .unwrap_or_default()
}

impl<const N: usize> Default for Text<N> {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl<const N: usize> fmt::Debug for Text<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> fmt::Display for Text<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(feature = "defmt")]
impl<const N: usize> defmt::Format for Text<N> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "{=str}", self.as_str())
    }
}

impl<const N: usize> serde::Serialize for Text<N> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de, const N: usize> serde::Deserialize<'de> for Text<N> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<const N: usize>;
        impl<const N: usize> serde::de::Visitor<'_> for Visitor<N> {
            type Value = Text<N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a string of at most {N} bytes")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text<N>, E> {
                Text::new(v).ok_or_else(|| E::invalid_length(v.len(), &self))
            }
        }
        deserializer.deserialize_str(Visitor::<N>)
    }
}

#[cfg(test)]
mod tests {
    use super::{find, split_once, Text};

    #[test]
    fn split_once_and_find_agree_with_str() {
        for s in [
            "",
            "a",
            "a/b",
            "/b",
            "a/",
            "a/b/c",
            "{callee}",
            "x{callee}y{callee}",
            "é/ü",
        ] {
            assert_eq!(split_once(s, b'/'), s.split_once('/'), "{s:?}");
            for needle in ["", "{callee}", "/", "b/c", "é"] {
                assert_eq!(find(s, needle), s.find(needle), "{s:?} {needle:?}");
            }
        }
    }

    #[test]
    fn new_refuses_what_does_not_fit() {
        assert_eq!(Text::<4>::new("1001").unwrap().as_str(), "1001");
        assert!(Text::<4>::new("10010").is_none());
        assert!(Text::<4>::new("").unwrap().is_empty());
    }

    #[test]
    fn from_parts_cuts_at_a_character_boundary() {
        assert_eq!(Text::<8>::from_parts(&["ab", "cd"]).as_str(), "abcd");
        assert_eq!(Text::<3>::from_parts(&["ab", "cd"]).as_str(), "abc");
        // "é" is two bytes: it does not fit in the one byte left.
        assert_eq!(Text::<3>::from_parts(&["ab", "é"]).as_str(), "ab");
    }
}
