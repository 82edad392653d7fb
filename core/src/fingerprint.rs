//! What makes two create-calls with the same `contact_ref` the same call, for idempotency:
//! one definition for every deployment. A repeat with the same fingerprint gets the first
//! answer; a different one is a `409`.

use core::fmt;

use crate::decimal::Decimal;

use crate::validate::Call;

/// The fingerprint of a call: `agent|callee (E.164)|outbound_id|contact_ref`, followed, when
/// any dial control is not the default, by `|<agent ring>|<callee ring>|<max duration>|<record>`
/// (`-` for a default). Every value comes from a validated charset without `|`, so the join is
/// unambiguous; a call without dial controls keeps the form stored before they existed.
#[derive(Clone, Copy, Debug)]
pub struct Fingerprint<'c>(&'c Call<'c>);

impl<'c> Fingerprint<'c> {
    /// The fingerprint of `call`.
    pub fn of(call: &'c Call<'c>) -> Self {
        Self(call)
    }

    /// 64-bit FNV-1a of the text: for stores that keep a fixed-size digest (the appliance's
    /// table) instead of the text. Needs no formatting machinery (firmware).
    pub fn hash64(&self) -> u64 {
        let mut hasher = Fnv1a(0xcbf2_9ce4_8422_2325);
        self.parts(|part| hasher.add(part));
        hasher.0
    }

    /// The text, part by part.
    fn parts(&self, mut emit: impl FnMut(&str)) {
        let call = self.0;
        let valid = &call.valid;
        let (cc, rest) = valid.callee.e164_parts();
        for part in [
            valid.agent,
            "|+",
            cc,
            rest,
            "|",
            valid.outbound_id.as_str(),
            "|",
            call.contact_ref.as_str(),
        ] {
            emit(part);
        }
        let controls = &valid.controls;
        if controls.is_default() {
            return;
        }
        for value in [
            controls.agent_ring_timeout_secs.map(u32::from),
            controls.callee_ring_timeout_secs.map(u32::from),
            controls.max_duration_secs,
        ] {
            emit("|");
            match value {
                Some(secs) => emit(Decimal::new(secs.into()).as_str()),
                None => emit("-"),
            }
        }
        emit(if controls.record { "|1" } else { "|0" });
    }
}

impl fmt::Display for Fingerprint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut result = Ok(());
        self.parts(|part| {
            if result.is_ok() {
                result = f.write_str(part);
            }
        });
        result
    }
}

struct Fnv1a(u64);

impl Fnv1a {
    fn add(&mut self, text: &str) {
        for &b in text.as_bytes() {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::string::ToString;

    use super::Fingerprint;
    use crate::{request, DialPolicy, Validators};

    fn print(body: &str) -> (std::string::String, u64) {
        let parsed = request::parse(body.as_bytes()).unwrap();
        let valid = Validators::new()
            .unwrap()
            .validate(&parsed, &DialPolicy::SOUTH_AFRICA)
            .unwrap();
        let call = valid.assign_references(&[7; 32]);
        let print = Fingerprint::of(&call);
        (print.to_string(), print.hash64())
    }

    #[test]
    fn without_controls_it_is_the_form_stored_before() {
        let (text, _) = print(
            r#"{"agent":"1001","callee":"0820001234","outbound_id":"27820001234","contact_ref":"crm-42"}"#,
        );
        assert_eq!(text, "1001|+27820001234|27820001234|crm-42");
    }

    #[test]
    fn controls_make_another_call_and_the_digest_follows_the_text() {
        let (plain, plain_hash) = print(
            r#"{"agent":"1001","callee":"0820001234","outbound_id":"27820001234","contact_ref":"crm-42"}"#,
        );
        let (with, with_hash) = print(
            r#"{"agent":"1001","callee":"0820001234","outbound_id":"27820001234","contact_ref":"crm-42","max_duration_secs":600,"record":false}"#,
        );
        assert_eq!(with, "1001|+27820001234|27820001234|crm-42|-|-|600|0");
        assert_ne!(plain_hash, with_hash);
        // FNV-1a of the text, computed independently.
        let fnv = |s: &str| {
            s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
            })
        };
        assert_eq!(plain_hash, fnv(&plain));
        assert_eq!(with_hash, fnv(&with));
    }
}
