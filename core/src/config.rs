//! The one check of the configuration both builds share: the dialplan names and the dialling
//! policy.
//!
//! The host runs it when it loads its file (`check-config` and start-up); the appliance's
//! `build.rs` runs it on the compiled-in file, so a bad value fails the firmware build and the
//! image carries none of this code. Both therefore refuse exactly the same values, with the
//! same message: [`ConfigError`]'s `Display` names the key (as written in the TOML file) and
//! says why.

use core::fmt;

use crate::decimal::Decimal;
use crate::originate::{CalleeDigits, Dialplan};
use crate::policy::DialPolicy;

/// Longest dialplan name accepted: an AMI header line is 1 KiB at most, and the appliance
/// writes the whole Originate into a fixed buffer.
pub const MAX_NAME_LEN: usize = 64;

/// Shortest ring timeout, in milliseconds: a phone that rings for less cannot be answered.
pub const MIN_RING_TIMEOUT_MS: u32 = 1_000;

/// Longest ring timeout, in milliseconds (an hour).
pub const MAX_RING_TIMEOUT_MS: u32 = 3_600_000;

/// Longest country code (ITU-T E.164).
pub const MAX_COUNTRY_CODE_LEN: usize = 3;

/// Longest denied prefix: an E.164 number has at most 15 digits.
pub const MAX_PREFIX_LEN: usize = 15;

/// A configuration value that cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The value is empty.
    Empty {
        /// Dotted key, e.g. `dialplan.agent_tech`.
        key: &'static str,
    },
    /// The value is longer than `max` bytes.
    TooLong {
        /// Dotted key.
        key: &'static str,
        /// The longest accepted.
        max: usize,
    },
    /// The value has a character an AMI header cannot carry: a blank, a control character,
    /// non-ASCII, or one of `,` `"` `\` (separators in Asterisk's application arguments).
    Character {
        /// Dotted key.
        key: &'static str,
    },
    /// The value does not have the required form.
    Form {
        /// Dotted key.
        key: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// A number outside its bounds.
    OutOfRange {
        /// Dotted key.
        key: &'static str,
        /// The smallest accepted.
        min: u32,
        /// The largest accepted.
        max: u32,
    },
    /// An entry of a list is not 1 to `max` digits.
    Digits {
        /// Dotted key of the list.
        key: &'static str,
        /// Index of the entry, from 0.
        index: usize,
        /// The most digits accepted.
        max: usize,
    },
}

impl ConfigError {
    /// The dotted key of the value.
    pub fn key(&self) -> &'static str {
        match *self {
            Self::Empty { key }
            | Self::TooLong { key, .. }
            | Self::Character { key }
            | Self::Form { key, .. }
            | Self::OutOfRange { key, .. }
            | Self::Digits { key, .. } => key,
        }
    }
}

impl ConfigError {
    /// The message (the host's `check-config` text), piece by piece: `Display` writes it, and
    /// so does the firmware's JSON writer, without `core::fmt`'s machinery for it.
    pub fn message(&self, mut put: impl FnMut(&str)) {
        put("invalid value for `");
        put(self.key());
        if let Self::Digits { index, .. } = *self {
            put("[");
            put(decimal(index).as_str());
            put("]");
        }
        put("`: ");
        self.reason(put);
    }

    /// What is wrong with the value (`must not be empty`, …), without its key: the end of
    /// [`ConfigError::message`], for a caller that names the key its own way.
    pub fn reason(&self, mut put: impl FnMut(&str)) {
        match *self {
            Self::Empty { .. } => put("must not be empty"),
            Self::TooLong { max, .. } => {
                put("longer than ");
                put(decimal(max).as_str());
                put(" characters");
            }
            Self::Character { .. } => {
                put("only printable ASCII without blanks, and none of , \" \\");
            }
            Self::Form { expected, .. } => {
                put("must be ");
                put(expected);
            }
            Self::OutOfRange { min, max, .. } => {
                put("must be ");
                put(Decimal::new(min.into()).as_str());
                put("-");
                put(Decimal::new(max.into()).as_str());
            }
            Self::Digits { max, .. } => {
                put("must be 1-");
                put(decimal(max).as_str());
                put(" digits");
            }
        }
    }
}

fn decimal(n: usize) -> Decimal {
    Decimal::new(u64::try_from(n).unwrap_or(u64::MAX))
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut result = Ok(());
        self.message(|piece| {
            if result.is_ok() {
                result = f.write_str(piece);
            }
        });
        result
    }
}

impl core::error::Error for ConfigError {}

/// Checks a dialplan name, context, extension or channel technology: non-empty, at most
/// [`MAX_NAME_LEN`] bytes, printable ASCII without blanks and without `,` `"` `\`.
pub fn check_name(key: &'static str, value: &str) -> Result<(), ConfigError> {
    if value.is_empty() {
        return Err(ConfigError::Empty { key });
    }
    if value.len() > MAX_NAME_LEN {
        return Err(ConfigError::TooLong {
            key,
            max: MAX_NAME_LEN,
        });
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_graphic() && !matches!(b, b',' | b'"' | b'\\'))
    {
        return Err(ConfigError::Character { key });
    }
    Ok(())
}

/// Checks that every entry of `list` is 1 to `max` ASCII digits.
fn check_digits<S: AsRef<str>>(
    key: &'static str,
    list: &[S],
    max: usize,
) -> Result<(), ConfigError> {
    for (index, value) in list.iter().map(AsRef::as_ref).enumerate() {
        if value.is_empty() || value.len() > max || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConfigError::Digits { key, index, max });
        }
    }
    Ok(())
}

impl CalleeDigits {
    /// The value of `dialplan.callee_digits`: `as_given` or `e164`.
    pub fn from_config(value: &str) -> Result<Self, ConfigError> {
        match value {
            "as_given" => Ok(Self::AsGiven),
            "e164" => Ok(Self::E164),
            _ => Err(ConfigError::Form {
                key: "dialplan.callee_digits",
                expected: "\"as_given\" or \"e164\"",
            }),
        }
    }
}

impl Dialplan<'_> {
    /// Checks the `[dialplan]` values; the error names the key.
    pub fn check(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("dialplan.agent_tech", self.agent_tech),
            ("dialplan.outbound_context", self.outbound_context),
            ("dialplan.direct_context", self.direct_context),
            ("dialplan.direct_channel", self.direct_channel),
        ] {
            check_name(key, value)?;
        }
        if self.agent_tech.as_bytes().contains(&b'/') {
            return Err(ConfigError::Form {
                key: "dialplan.agent_tech",
                expected: "a channel technology such as PJSIP, without '/'",
            });
        }
        let well_formed = match crate::text::split_once(self.direct_channel, b'/') {
            Some((tech, resource)) => {
                // A byte window rather than `str::contains`, whose two-way searcher would
                // cost the appliance about 1.2 KB of flash (it runs this check at run time).
                !tech.is_empty()
                    && !resource.is_empty()
                    && resource.as_bytes().windows(8).any(|w| w == b"{callee}")
            }
            None => false,
        };
        if !well_formed {
            return Err(ConfigError::Form {
                key: "dialplan.direct_channel",
                expected: "<tech>/<resource> with {callee} in the resource, \
                           e.g. Local/{callee}@c2d-single",
            });
        }
        if !(MIN_RING_TIMEOUT_MS..=MAX_RING_TIMEOUT_MS).contains(&self.ring_timeout_ms) {
            return Err(ConfigError::OutOfRange {
                key: "dialplan.agent_ring_timeout_ms",
                min: MIN_RING_TIMEOUT_MS,
                max: MAX_RING_TIMEOUT_MS,
            });
        }
        Ok(())
    }
}

impl DialPolicy<'_> {
    /// Checks the `[policy]` values: country codes are 1–3 digits, denied prefixes 1–15
    /// digits (no `+`); the error names the key and the entry.
    pub fn check_config(&self) -> Result<(), ConfigError> {
        check_policy_lists(self.allowed_country_codes, self.denied_prefixes)
    }
}

/// `policy.allowed_country_codes` and `policy.denied_prefixes` as the file holds them (any
/// strings: the host's and the build script's `String`s, or `&str`).
fn check_policy_lists<S: AsRef<str>>(
    allowed_country_codes: &[S],
    denied_prefixes: &[S],
) -> Result<(), ConfigError> {
    check_digits(
        "policy.allowed_country_codes",
        allowed_country_codes,
        MAX_COUNTRY_CODE_LEN,
    )?;
    check_digits("policy.denied_prefixes", denied_prefixes, MAX_PREFIX_LEN)
}

/// The configuration check of both builds: the dialplan, then the policy's lists (as the
/// file holds them, so neither build copies them into a [`DialPolicy`] first; the policy's
/// `refuse_premium_rate` is a bool and cannot be wrong).
pub fn check<S: AsRef<str>>(
    dialplan: &Dialplan<'_>,
    allowed_country_codes: &[S],
    denied_prefixes: &[S],
) -> Result<(), ConfigError> {
    dialplan.check()?;
    check_policy_lists(allowed_country_codes, denied_prefixes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    fn with(change: impl FnOnce(&mut Dialplan<'static>)) -> Dialplan<'static> {
        let mut dialplan = Dialplan::DEFAULT;
        change(&mut dialplan);
        dialplan
    }

    #[test]
    fn good_dialplans_pass() {
        for dialplan in [
            Dialplan::DEFAULT,
            with(|d| d.direct_channel = "PJSIP/{callee}@trunk"),
            with(|d| d.direct_channel = "Local/0{callee}@ctx/n"),
            with(|d| d.agent_tech = "SIP"),
            with(|d| d.ring_timeout_ms = MIN_RING_TIMEOUT_MS),
            with(|d| d.ring_timeout_ms = MAX_RING_TIMEOUT_MS),
            with(|d| d.outbound_context = "a-context_with.all~printable!chars"),
        ] {
            assert_eq!(dialplan.check(), Ok(()), "{dialplan:?}");
        }
    }

    #[test]
    fn bad_dialplans_name_the_key() {
        let long = "c".repeat(MAX_NAME_LEN + 1);
        let long: &'static str = std::boxed::Box::leak(long.into_boxed_str());
        for (dialplan, error) in [
            (
                with(|d| d.agent_tech = ""),
                ConfigError::Empty {
                    key: "dialplan.agent_tech",
                },
            ),
            (
                with(|d| d.outbound_context = long),
                ConfigError::TooLong {
                    key: "dialplan.outbound_context",
                    max: MAX_NAME_LEN,
                },
            ),
            (
                with(|d| d.direct_context = "c2d direct"),
                ConfigError::Character {
                    key: "dialplan.direct_context",
                },
            ),
            (
                with(|d| d.outbound_context = "c2d,outbound"),
                ConfigError::Character {
                    key: "dialplan.outbound_context",
                },
            ),
            (
                with(|d| d.direct_context = "c2d\"direct"),
                ConfigError::Character {
                    key: "dialplan.direct_context",
                },
            ),
            (
                with(|d| d.direct_channel = "Local/{callee}@c\\2d"),
                ConfigError::Character {
                    key: "dialplan.direct_channel",
                },
            ),
            (
                with(|d| d.agent_tech = "PJSIP\n"),
                ConfigError::Character {
                    key: "dialplan.agent_tech",
                },
            ),
            (
                with(|d| d.agent_tech = "Täch"),
                ConfigError::Character {
                    key: "dialplan.agent_tech",
                },
            ),
            (
                with(|d| d.agent_tech = "PJSIP/"),
                ConfigError::Form {
                    key: "dialplan.agent_tech",
                    expected: "a channel technology such as PJSIP, without '/'",
                },
            ),
            (
                with(|d| d.direct_channel = "Local-no-slash"),
                direct_channel(),
            ),
            (
                with(|d| d.direct_channel = "Local/c2d-single"),
                direct_channel(),
            ),
            (with(|d| d.direct_channel = "/{callee}"), direct_channel()),
            (with(|d| d.direct_channel = "Local/"), direct_channel()),
            (with(|d| d.ring_timeout_ms = 0), ring_timeout()),
            (
                with(|d| d.ring_timeout_ms = MIN_RING_TIMEOUT_MS - 1),
                ring_timeout(),
            ),
            (
                with(|d| d.ring_timeout_ms = MAX_RING_TIMEOUT_MS + 1),
                ring_timeout(),
            ),
        ] {
            assert_eq!(dialplan.check(), Err(error), "{dialplan:?}");
            assert_eq!(check::<&str>(&dialplan, &[], &[]), Err(error));
        }
    }

    fn direct_channel() -> ConfigError {
        ConfigError::Form {
            key: "dialplan.direct_channel",
            expected: "<tech>/<resource> with {callee} in the resource, \
                       e.g. Local/{callee}@c2d-single",
        }
    }

    fn ring_timeout() -> ConfigError {
        ConfigError::OutOfRange {
            key: "dialplan.agent_ring_timeout_ms",
            min: MIN_RING_TIMEOUT_MS,
            max: MAX_RING_TIMEOUT_MS,
        }
    }

    #[test]
    fn policies() {
        let policy =
            |codes: &'static [&'static str], prefixes: &'static [&'static str]| DialPolicy {
                allowed_country_codes: codes,
                refuse_premium_rate: true,
                denied_prefixes: prefixes,
            };
        for good in [
            DialPolicy::SOUTH_AFRICA,
            policy(&["1", "44", "263"], &["2787", "123456789012345"]),
        ] {
            assert_eq!(good.check_config(), Ok(()));
            let (codes, prefixes) = (good.allowed_country_codes, good.denied_prefixes);
            assert_eq!(check(&Dialplan::DEFAULT, codes, prefixes), Ok(()));
        }
        let codes = |index| ConfigError::Digits {
            key: "policy.allowed_country_codes",
            index,
            max: MAX_COUNTRY_CODE_LEN,
        };
        let prefixes = |index| ConfigError::Digits {
            key: "policy.denied_prefixes",
            index,
            max: MAX_PREFIX_LEN,
        };
        for (bad, error) in [
            (policy(&["+44"], &[]), codes(0)),
            (policy(&["44", ""], &[]), codes(1)),
            (policy(&["1234"], &[]), codes(0)),
            (policy(&["4 4"], &[]), codes(0)),
            (policy(&[], &["2787", "+2786"]), prefixes(1)),
            (policy(&[], &[""]), prefixes(0)),
            (policy(&[], &["1234567890123456"]), prefixes(0)),
            (policy(&[], &["27-87"]), prefixes(0)),
        ] {
            assert_eq!(bad.check_config(), Err(error), "{bad:?}");
            let (codes, prefixes) = (bad.allowed_country_codes, bad.denied_prefixes);
            assert_eq!(check(&Dialplan::DEFAULT, codes, prefixes), Err(error));
        }
    }

    #[test]
    fn callee_digits_names() {
        assert_eq!(
            CalleeDigits::from_config("as_given"),
            Ok(CalleeDigits::AsGiven)
        );
        assert_eq!(CalleeDigits::from_config("e164"), Ok(CalleeDigits::E164));
        assert_eq!(
            CalleeDigits::from_config("E164").map_err(|e| e.key()),
            Err("dialplan.callee_digits")
        );
    }

    #[test]
    fn messages_name_the_key_and_the_reason() {
        for (error, message) in [
            (
                direct_channel(),
                "invalid value for `dialplan.direct_channel`: must be <tech>/<resource> with \
                 {callee} in the resource, e.g. Local/{callee}@c2d-single",
            ),
            (
                ring_timeout(),
                "invalid value for `dialplan.agent_ring_timeout_ms`: must be 1000-3600000",
            ),
            (
                ConfigError::Digits {
                    key: "policy.allowed_country_codes",
                    index: 2,
                    max: 3,
                },
                "invalid value for `policy.allowed_country_codes[2]`: must be 1-3 digits",
            ),
            (
                ConfigError::Empty {
                    key: "dialplan.agent_tech",
                },
                "invalid value for `dialplan.agent_tech`: must not be empty",
            ),
        ] {
            assert_eq!(error.to_string(), message);
            // The reason alone is the message's end, after the key.
            let mut reason = std::string::String::new();
            error.reason(|piece| reason.push_str(piece));
            assert!(message.ends_with(&std::format!("`: {reason}")), "{message}");
        }
    }

    #[test]
    fn the_error_body_carries_the_key_and_the_message() {
        let mut out = [0u8; crate::json::ERROR_BODY_MAX_LEN];
        let error = ConfigError::Form {
            key: "dialplan.callee_digits",
            expected: "\"as_given\" or \"e164\"",
        };
        let len = crate::json::write_config_error(&error, &mut out).unwrap();
        assert_eq!(
            core::str::from_utf8(&out[..len]).unwrap(),
            r#"{"error":{"code":"invalid_config","field":"dialplan.callee_digits","message":"invalid value for `dialplan.callee_digits`: must be \"as_given\" or \"e164\""}}"#
        );
        let longest = direct_channel();
        assert!(crate::json::write_config_error(&longest, &mut out).is_ok());
    }
}
