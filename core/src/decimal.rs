//! Unsigned integers as decimal text, without allocation: for header values and channel
//! variables written into caller buffers.

use core::fmt;

/// The decimal digits of a `u64`, held inline (at most 20).
#[derive(Clone, Copy)]
pub struct Decimal {
    buf: [u8; 20],
    start: u8,
}

impl Decimal {
    /// `n` in decimal.
    pub fn new(mut n: u64) -> Self {
        let mut buf = [b'0'; 20];
        let mut start = buf.len();
        while let Some(i) = start.checked_sub(1) {
            if let Some(d) = buf.get_mut(i) {
                // `n % 10` is below 10.
                *d = b'0'.saturating_add(u8::try_from(n % 10).unwrap_or(0));
            }
            start = i;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        Self {
            buf,
            start: u8::try_from(start).unwrap_or(0),
        }
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        self.buf
            .get(usize::from(self.start)..)
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("0")
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Decimal;

    #[test]
    fn writes_every_magnitude() {
        for (n, text) in [
            (0, "0"),
            (7, "7"),
            (10, "10"),
            (120, "120"),
            (86_400, "86400"),
            (u64::MAX, "18446744073709551615"),
        ] {
            assert_eq!(Decimal::new(n).as_str(), text);
        }
    }
}
