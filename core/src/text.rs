//! A string held inline in a fixed-size buffer: values that outlive the buffer they were read
//! from (a request body, an AMI message) without allocating. The one inline string type of
//! the core, the appliance and the host's call values.

use core::fmt;

use arrayvec::ArrayString;

/// Up to `N` bytes of UTF-8, inline: an [`ArrayString`], which hands its string out without
/// checking its bytes again, made only by copying whole characters in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Text<const N: usize>(ArrayString<N>);

impl<const N: usize> Text<N> {
    /// The empty string.
    pub const EMPTY: Self = Self(ArrayString::new_const());

    /// A copy of `value`, or `None` when it is longer than `N` bytes.
    pub fn new(value: &str) -> Option<Self> {
        ArrayString::from(value).ok().map(Self)
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
        for part in parts {
            let room = N.saturating_sub(text.0.len());
            let cut = part
                .get(..floor_char_boundary(part, room))
                .unwrap_or_default();
            if text.0.try_push_str(cut).is_err() || cut.len() < part.len() {
                break;
            }
        }
        text
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Whether the string is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The largest character boundary of `s` at or below `at`.
fn floor_char_boundary(s: &str, at: usize) -> usize {
    let mut n = at.min(s.len());
    while !s.is_char_boundary(n) {
        n = n.saturating_sub(1);
    }
    n
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
    use std::borrow::ToOwned;
    use std::format;

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

    proptest::proptest! {
        /// What is kept is the longest whole-character prefix of the parts that fits.
        #[test]
        fn from_parts_keeps_the_longest_prefix_that_fits(a in ".{0,6}", b in ".{0,6}") {
            let whole = format!("{a}{b}");
            let text = Text::<8>::from_parts(&[&a, &b]);
            let mut expected = whole.len().min(8);
            while !whole.is_char_boundary(expected) {
                expected -= 1;
            }
            proptest::prop_assert_eq!(text.as_str(), &whole[..expected]);
            proptest::prop_assert_eq!(
                Text::<8>::new_from_parts(&[&a, &b]).map(|t| t.as_str().to_owned()),
                (whole.len() <= 8).then_some(whole.clone())
            );
            proptest::prop_assert_eq!(Text::<8>::new(&whole).is_some(), whole.len() <= 8);
        }
    }
}
