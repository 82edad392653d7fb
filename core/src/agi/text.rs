//! A string held inline in a fixed-size buffer, so values outlive the receive buffer
//! without allocating.

/// Up to `N` bytes of UTF-8, inline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Text<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> Default for Text<N> {
    fn default() -> Self {
        Self::EMPTY
    }
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
        text.bytes
            .get_mut(..value.len())?
            .copy_from_slice(value.as_bytes());
        text.len = value.len();
        Some(text)
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        self.bytes
            .get(..self.len)
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or_default()
    }
}
