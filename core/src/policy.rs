//! The dialling policy (toll-fraud guard): which well-formed callees may be dialled.
//!
//! A plain value, so a deployment builds it from its configuration (or uses
//! [`DialPolicy::SOUTH_AFRICA`]) and the same checks run everywhere before anything is dialled.

use crate::error::{Error, ErrorCode, Field};
use crate::number::PhoneNumber;

/// South African premium-rate ranges, as prefixes of the national significant number
/// (nationally `086[2-9]…` and `09[0-2]…`; libphonenumber's ZA metadata).
pub const ZA_PREMIUM_RATE_PREFIXES: &[&str] = &[
    "862", "863", "864", "865", "866", "867", "868", "869", "90", "91", "92",
];

/// The first two digits of every premium-rate prefix, as a set of two-digit numbers (bit
/// `10 * first + second`): a national significant number whose first two digits are not in it
/// cannot start with any prefix of [`ZA_PREMIUM_RATE_PREFIXES`], and skips the list.
const PREMIUM_RATE_PAIRS: u128 = digit_pairs(ZA_PREMIUM_RATE_PREFIXES);

/// The set of two-digit starts of `prefixes`; a one-digit prefix covers all ten of its pairs,
/// a prefix that does not start with digits can never match a number and adds none.
const fn digit_pairs(mut prefixes: &[&str]) -> u128 {
    let mut set = 0u128;
    while let [prefix, rest @ ..] = prefixes {
        match prefix.as_bytes() {
            [first @ b'0'..=b'9', second @ b'0'..=b'9', ..] => {
                set |= pair_bit(*first, *second);
            }
            [first @ b'0'..=b'9'] => {
                let mut second = b'0';
                while second <= b'9' {
                    set |= pair_bit(*first, second);
                    second = second.wrapping_add(1);
                }
            }
            _ => {}
        }
        prefixes = rest;
    }
    set
}

/// The bit of two ASCII digits in a [`digit_pairs`] set.
const fn pair_bit(first: u8, second: u8) -> u128 {
    let pair = first
        .wrapping_sub(b'0')
        .wrapping_mul(10)
        .wrapping_add(second.wrapping_sub(b'0'));
    match 1u128.checked_shl(pair as u32) {
        Some(bit) => bit,
        None => 0,
    }
}

/// Whether a national significant number starts with a premium-rate prefix.
fn is_premium_rate(nsn: &str) -> bool {
    match nsn.as_bytes() {
        [first @ b'0'..=b'9', second @ b'0'..=b'9', ..]
            if PREMIUM_RATE_PAIRS & pair_bit(*first, *second) == 0 =>
        {
            false
        }
        _ => ZA_PREMIUM_RATE_PREFIXES.iter().any(|p| nsn.starts_with(p)),
    }
}

/// Which callees may be dialled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DialPolicy<'p> {
    /// Country codes (digits, e.g. `"44"`) that `00`-prefixed numbers may be dialled in,
    /// besides South Africa. Country codes are prefix-free, so a prefix match is exact.
    pub allowed_country_codes: &'p [&'p str],
    /// Refuse South African premium-rate ranges ([`ZA_PREMIUM_RATE_PREFIXES`]).
    pub refuse_premium_rate: bool,
    /// Extra refused ranges, as prefixes of the E.164 digits (without `+`), e.g. `"2787"`.
    pub denied_prefixes: &'p [&'p str],
}

impl DialPolicy<'static> {
    /// The default: South African numbers only, premium-rate ranges refused.
    pub const SOUTH_AFRICA: Self = Self {
        allowed_country_codes: &[],
        refuse_premium_rate: true,
        denied_prefixes: &[],
    };
}

impl Default for DialPolicy<'static> {
    fn default() -> Self {
        Self::SOUTH_AFRICA
    }
}

impl DialPolicy<'_> {
    /// Checks a well-formed callee against the policy.
    pub fn check(&self, callee: &PhoneNumber<'_>) -> Result<(), Error> {
        let (cc, rest) = callee.e164_parts();
        let starts_with = |prefix: &str| {
            let head = prefix.get(..cc.len().min(prefix.len())).unwrap_or_default();
            let tail = prefix.get(head.len()..).unwrap_or_default();
            cc.starts_with(head) && rest.starts_with(tail)
        };
        if !callee.is_home()
            && !self
                .allowed_country_codes
                .iter()
                .any(|code| !code.is_empty() && starts_with(code))
        {
            return Err(Error::field(
                ErrorCode::CalleeNotAllowed,
                Field::Callee,
                "calls to this country are not allowed by the dialling policy",
            ));
        }
        if self.refuse_premium_rate {
            if let Some(nsn) = callee.national_significant_number() {
                if is_premium_rate(nsn) {
                    return Err(Error::field(
                        ErrorCode::CalleeNotAllowed,
                        Field::Callee,
                        "premium-rate numbers are not allowed by the dialling policy",
                    ));
                }
            }
        }
        if self
            .denied_prefixes
            .iter()
            .any(|p| !p.is_empty() && starts_with(p))
        {
            return Err(Error::field(
                ErrorCode::CalleeNotAllowed,
                Field::Callee,
                "this number range is refused by the dialling policy",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two-digit pre-check never hides a premium-rate prefix: it agrees with the plain
    /// list scan on every start of a number.
    #[test]
    fn premium_rate_pre_check_agrees_with_the_list() {
        for n in 0..100_000u32 {
            let digits = std::format!("{n:05}");
            for len in 0..=digits.len() {
                let nsn = &digits[..len];
                let listed = ZA_PREMIUM_RATE_PREFIXES.iter().any(|p| nsn.starts_with(p));
                assert_eq!(is_premium_rate(nsn), listed, "{nsn}");
            }
        }
        assert_eq!(digit_pairs(&["9"]).count_ones(), 10);
        assert_eq!(digit_pairs(&["x1", ""]), 0);
    }
}
