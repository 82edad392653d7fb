//! RFC 3339 timestamps from a Unix time the caller reads from its own clock.

use core::fmt;

/// A UTC instant in milliseconds since the Unix epoch; displays as
/// `2026-11-27T06:26:24.123Z`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// From milliseconds since 1970-01-01T00:00:00Z.
    pub const fn from_unix_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// The text [`Display`](fmt::Display) writes, in a fixed buffer, for years up to 9999
    /// (`None` past them): the JSON writer's way to a timestamp without `core::fmt`.
    #[allow(clippy::arithmetic_side_effects)] // bounded as in `fmt`; digits are 0..=9
    pub(crate) fn rfc3339(self) -> Option<[u8; 24]> {
        let secs = self.0 / 1000;
        let (year, month, day) = civil_from_days(secs / 86_400);
        if year > 9999 {
            return None;
        }
        let rem = secs % 86_400;
        let mut text = *b"0000-00-00T00:00:00.000Z";
        for (at, width, value) in [
            (0, 4, year),
            (5, 2, month),
            (8, 2, day),
            (11, 2, rem / 3600),
            (14, 2, rem % 3600 / 60),
            (17, 2, rem % 60),
            (20, 3, self.0 % 1000),
        ] {
            let mut value = value;
            for i in (at..at + width).rev() {
                *text.get_mut(i)? = b'0' + (value % 10) as u8;
                value /= 10;
            }
        }
        Some(text)
    }
}

/// Year, month, day of a count of days since 1970-01-01 (proleptic Gregorian calendar;
/// the era-based algorithm from Howard Hinnant's "chrono-Compatible Low-Level Date
/// Algorithms"). `days` is at most `u64::MAX / 86_400_000`, far from any overflow.
#[allow(clippy::arithmetic_side_effects)]
const fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month, day)
}

impl fmt::Display for Timestamp {
    #[allow(clippy::arithmetic_side_effects)] // bounded: u64 millis / 86_400_000 fits the algorithm
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0 % 1000;
        let secs = self.0 / 1000;
        let (year, month, day) = civil_from_days(secs / 86_400);
        let rem = secs % 86_400;
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::Timestamp;
    use std::string::ToString;

    #[test]
    fn the_fixed_text_is_the_displayed_one_up_to_year_9999() {
        for millis in [
            0,
            1,
            999,
            86_399_999,
            1_795_764_384_123,
            951_782_400_000,
            253_402_300_799_999,
        ] {
            let t = Timestamp::from_unix_millis(millis);
            let text = t.rfc3339().expect("year up to 9999");
            assert_eq!(std::str::from_utf8(&text).expect("ascii"), t.to_string());
        }
        assert_eq!(
            Timestamp::from_unix_millis(253_402_300_800_000).rfc3339(),
            None
        );
        assert_eq!(Timestamp::from_unix_millis(u64::MAX).rfc3339(), None);
    }
}
