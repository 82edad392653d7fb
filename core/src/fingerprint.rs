//! What makes two create-calls with the same `contact_ref` the same call, for idempotency:
//! one definition for every deployment. A repeat with the same fingerprint gets the first
//! answer; a different one is a `409`.

use core::fmt::{self, Write};

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
    /// table) instead of the text.
    pub fn hash64(&self) -> u64 {
        let mut hasher = Fnv1a(0xcbf2_9ce4_8422_2325);
        // Writing to the hasher cannot fail.
        let _ = write!(hasher, "{self}");
        hasher.0
    }
}

impl fmt::Display for Fingerprint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let call = self.0;
        let valid = &call.valid;
        write!(
            f,
            "{}|{}|{}|{}",
            valid.agent,
            valid.callee.e164(),
            valid.outbound_id.as_str(),
            call.contact_ref.as_str()
        )?;
        let controls = &valid.controls;
        if controls.is_default() {
            return Ok(());
        }
        for value in [
            controls.agent_ring_timeout_secs.map(u32::from),
            controls.callee_ring_timeout_secs.map(u32::from),
            controls.max_duration_secs,
        ] {
            match value {
                Some(secs) => write!(f, "|{secs}")?,
                None => f.write_str("|-")?,
            }
        }
        f.write_str(if controls.record { "|1" } else { "|0" })
    }
}

struct Fnv1a(u64);

impl Write for Fnv1a {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        Ok(())
    }
}
