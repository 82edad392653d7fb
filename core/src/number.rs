//! Classified phone numbers and caller IDs, and their E.164 form.
//!
//! South African numbering (ICASA): national prefix `0`, international prefix `00`, country
//! code `27`, 9-digit national significant number (NSN).

use core::fmt;

use crate::error::BufferTooSmall;

/// South Africa's country code.
pub const HOME_COUNTRY_CODE: &str = "27";

/// The longest E.164 number written by [`PhoneNumber::write_e164`]: `+` and 15 digits.
pub const E164_MAX_LEN: usize = 16;

/// Which of the accepted forms a number was given in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum NumberForm {
    /// `0` + 9-digit NSN, e.g. `0820001234`.
    National,
    /// `27` + 9-digit NSN without `+`, e.g. `27820001234`.
    International,
    /// `00 27` + 9-digit NSN, e.g. `0027820001234`.
    InternationalPrefixed,
    /// `00` + another country's number (11–14 digits in all), e.g. `004930123456`.
    Foreign,
}

/// A validated phone number, borrowed as the client sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhoneNumber<'a> {
    given: &'a str,
    form: NumberForm,
}

impl<'a> PhoneNumber<'a> {
    /// Wraps digits already validated for `form`. The validators are the only callers that
    /// can vouch for that; the constructor is crate-private.
    pub(crate) const fn new(given: &'a str, form: NumberForm) -> Self {
        Self { given, form }
    }

    /// The number exactly as given.
    pub const fn as_str(&self) -> &'a str {
        self.given
    }

    /// The form it was given in.
    pub const fn form(&self) -> NumberForm {
        self.form
    }

    /// The E.164 digits (without `+`) as two parts: a country-code prefix the given form
    /// omitted, and the given digits that follow it.
    pub fn e164_parts(&self) -> (&'static str, &'a str) {
        match self.form {
            NumberForm::National => (HOME_COUNTRY_CODE, self.given.get(1..).unwrap_or_default()),
            NumberForm::International => ("", self.given),
            NumberForm::InternationalPrefixed | NumberForm::Foreign => {
                ("", self.given.get(2..).unwrap_or_default())
            }
        }
    }

    /// Whether the number is in South Africa.
    pub fn is_home(&self) -> bool {
        self.form != NumberForm::Foreign
    }

    /// The 9-digit national significant number of a South African number.
    pub fn national_significant_number(&self) -> Option<&'a str> {
        match self.form {
            NumberForm::National => self.given.get(1..),
            NumberForm::International => self.given.get(2..),
            NumberForm::InternationalPrefixed => self.given.get(4..),
            NumberForm::Foreign => None,
        }
    }

    /// The length of the E.164 form, `+` included.
    pub fn e164_len(&self) -> usize {
        let (cc, rest) = self.e164_parts();
        1usize.saturating_add(cc.len()).saturating_add(rest.len())
    }

    /// Writes `+<digits>` into `out` and returns the length written.
    pub fn write_e164(&self, out: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let (cc, rest) = self.e164_parts();
        let len = self.e164_len();
        let dest = out.get_mut(..len).ok_or(BufferTooSmall {
            required: Some(len),
        })?;
        let (plus, digits) = dest.split_at_mut(1);
        let (cc_dest, rest_dest) = digits.split_at_mut(cc.len());
        plus.copy_from_slice(b"+");
        // The country code is empty or two digits: not worth a call to `memcpy`.
        match (cc_dest, cc.as_bytes()) {
            ([], []) => {}
            ([to_0, to_1], &[from_0, from_1]) => {
                *to_0 = from_0;
                *to_1 = from_1;
            }
            (cc_dest, cc) => cc_dest.copy_from_slice(cc),
        }
        copy_digits(rest_dest, rest.as_bytes());
        Ok(len)
    }

    /// The number in E.164 form, for formatting (`+27820001234`).
    pub const fn e164(&self) -> E164<'a> {
        E164(*self)
    }
}

/// Copies `from` into `to`, of the same length. The digits of a number are 8 to 16 bytes long,
/// which two overlapping 8-byte copies cover without a call to `memcpy`.
fn copy_digits(to: &mut [u8], from: &[u8]) {
    let len = from.len();
    if to.len() == len && (8..=16).contains(&len) {
        let tail = len.saturating_sub(8);
        if let (Some(to_head), Some(from_head)) = (to.get_mut(..8), from.get(..8)) {
            to_head.copy_from_slice(from_head);
        }
        if let (Some(to_tail), Some(from_tail)) = (to.get_mut(tail..), from.get(tail..)) {
            to_tail.copy_from_slice(from_tail);
        }
    } else {
        to.copy_from_slice(from);
    }
}

/// Displays a [`PhoneNumber`] in E.164 form; serialises as a JSON string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct E164<'a>(PhoneNumber<'a>);

impl fmt::Display for E164<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (cc, rest) = self.0.e164_parts();
        f.write_str("+")?;
        f.write_str(cc)?;
        f.write_str(rest)
    }
}

impl serde::Serialize for E164<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A validated caller ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboundId<'a> {
    /// `tvc_<campaign>`: a Verified Services campaign the PBX maps to a verified number.
    Campaign {
        /// The whole value, `tvc_` included.
        given: &'a str,
    },
    /// A South African number (national or `27…`).
    Number(PhoneNumber<'a>),
}

impl<'a> OutboundId<'a> {
    /// The value exactly as given.
    pub const fn as_str(&self) -> &'a str {
        match self {
            Self::Campaign { given } => given,
            Self::Number(n) => n.as_str(),
        }
    }

    /// The campaign name of a `tvc_` caller ID.
    pub fn campaign(&self) -> Option<&'a str> {
        match self {
            Self::Campaign { given } => given.get(4..),
            Self::Number(_) => None,
        }
    }

    /// The number of a numeric caller ID.
    pub const fn number(&self) -> Option<PhoneNumber<'a>> {
        match self {
            Self::Campaign { .. } => None,
            Self::Number(n) => Some(*n),
        }
    }
}
