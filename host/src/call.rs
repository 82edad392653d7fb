//! A call's values, as the host keeps them between the create and the last notification:
//! the [`CallRecord`] (stored in Redis for the other hosts), the [`Notification`]s it
//! becomes, and the [`Outbox`] they leave the PBX driver through.
//!
//! This module imports nothing from the crate: the PBX driver, the notifier and the
//! routes all meet here.

use std::time::Instant;

use click2dial_core::call::Mode;
use click2dial_core::values::CallValues;

/// Everything a notification carries besides the event itself. Stored in Redis before the
/// Originate is sent, so every host can follow the call (see `crate::store::call_store`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CallRecord {
    /// The call's values, as core keeps them (agent, callee, caller ID, references, dial
    /// controls): a value the call gains is added there, not here.
    #[serde(flatten)]
    pub call: CallValues,
    /// The agent's phone started the call (FastAGI); its channel's `Uniqueid` is the key.
    #[serde(default)]
    pub agent_initiated: bool,
    /// The id of the API key that owns the call (`[fastagi] owner_key` for a softphone's);
    /// only that key reads its events and recording.
    #[serde(default)]
    pub owner: String,
    /// Recording URL.
    pub recording_url: String,
    /// The per-call Redis list.
    pub notifications_key: String,
    /// The name of the PBX that carries the call (where `DELETE` sends its `Hangup`);
    /// absent in records stored before several PBXes could be configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pbx: Option<String>,
}

impl CallRecord {
    /// How the call's tracker follows it.
    pub fn mode(&self) -> Mode {
        if self.agent_initiated {
            Mode::AgentInitiated
        } else if self.call.single_leg {
            Mode::SingleLeg
        } else {
            Mode::TwoLeg
        }
    }
}

/// One notification on its way to Redis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// Unique id (`<ChannelId>:<sequence>`): the exactly-once key.
    pub id: String,
    /// The key that owns the call (its event streams).
    pub owner: String,
    /// The call's contact reference (its event streams).
    pub contact_ref: String,
    /// The event's sequence number in the call ([`click2dial_core::json::Event::sequence`]).
    pub sequence: u32,
    /// The event name.
    pub event: &'static str,
    /// The per-call list.
    pub call_key: String,
    /// The JSON object.
    pub json: String,
    /// When it happened, in Unix milliseconds (the `timestamp` of the JSON).
    pub at_ms: u64,
    /// When the AMI event behind it was read (for the latency histogram).
    pub since: Instant,
}

/// Where the PBX driver hands a call's notifications: made by whoever starts the driver
/// (the notifier, in the service; a recorder, in a test), so the driver knows nothing of
/// Redis or of event streams.
pub trait Outbox: Send + Sync + 'static {
    /// One notification, in the call's order; never blocks.
    fn send(&self, notification: Notification);

    /// The call under `owner`'s `contact_ref` is over: no notification follows.
    fn call_over(&self, owner: &str, contact_ref: &str);

    /// A call another host placed is followed here, so the PBX has it: its idempotency
    /// claim, when still pending, is to be marked accepted (the host that placed it may
    /// have died before it could). Nothing by default (an outbox without a store).
    fn followed(&self, owner: &str, contact_ref: &str, recording_ref: &str) {
        let _ = (owner, contact_ref, recording_ref);
    }

    /// The call `channel_id` on the PBX named `pbx` is in flight since `since_ms` (Unix ms:
    /// a host places or decides it), or over (`None`): the store's set of each PBX's calls
    /// in flight, which a host that starts later checks against the PBX's channels.
    /// Nothing by default (an outbox without a store).
    fn in_flight(&self, pbx: &str, channel_id: &str, since_ms: Option<u64>) {
        let _ = (pbx, channel_id, since_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::CallRecord;

    /// A record stored by a host before the call values moved to core (no `callee`, no
    /// `controls`) is still read by the others: they follow calls across an upgrade.
    #[test]
    fn records_stored_before_still_load_and_new_ones_round_trip() {
        let old = r#"{"single_leg":false,"agent_initiated":false,"owner":"e2e","contact_ref":"crm-42","agent":"1001","callee_e164":"+27820001234","outbound_id":"27820001234","recording_ref":"aaaqeayeaudaocajbifqydiob4","recording_url":"http://x/r","notifications_key":"teleforge:notifications:c2d:crm-42"}"#;
        let record: CallRecord = serde_json::from_str(old).expect("an old record loads");
        assert_eq!(record.call.agent.as_str(), "1001");
        assert_eq!(record.call.callee_e164.as_str(), "+27820001234");
        assert_eq!(
            record.call.recording_ref.as_str(),
            "aaaqeayeaudaocajbifqydiob4"
        );
        assert!(record.call.callee.is_empty());
        assert!(record.call.controls.is_default());
        assert_eq!(record.pbx, None, "no PBX named: the agent's PBX carries it");
        let json = serde_json::to_string(&record).expect("serialises");
        let again: CallRecord = serde_json::from_str(&json).expect("round trip");
        assert_eq!(again, record);
        let named = CallRecord {
            pbx: Some("east".into()),
            ..record
        };
        let json = serde_json::to_string(&named).expect("serialises");
        assert!(json.contains(r#""pbx":"east""#), "{json}");
        assert_eq!(
            serde_json::from_str::<CallRecord>(&json).expect("loads"),
            named
        );
        // A recording reference that cannot be one is refused, not stored half-read.
        let bad = old.replace("aaaqeayeaudaocajbifqydiob4", "../../etc/passwd");
        assert!(serde_json::from_str::<CallRecord>(&bad).is_err());
    }
}
