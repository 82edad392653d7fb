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
                if ZA_PREMIUM_RATE_PREFIXES.iter().any(|p| nsn.starts_with(p)) {
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
