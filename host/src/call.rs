//! A call's values, as the host keeps them between the create and the last notification:
//! the [`CallRecord`] (stored in Redis for the other hosts), the [`Notification`]s it
//! becomes, and the [`Outbox`] they leave the PBX driver through.
//!
//! This module imports nothing from the crate: the PBX driver, the notifier and the
//! routes all meet here.

use std::time::Instant;

use click2dial_core::call::Mode;
use click2dial_core::dial::DialControls;

/// Everything a notification carries besides the event itself. Stored in Redis before the
/// Originate is sent, so every host can follow the call (see `crate::store::call_store`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CallRecord {
    /// `agent` equals `callee`.
    pub single_leg: bool,
    /// The agent's phone started the call (FastAGI); its channel's `Uniqueid` is the key.
    #[serde(default)]
    pub agent_initiated: bool,
    /// The id of the API key that owns the call (`[fastagi] owner_key` for a softphone's);
    /// only that key reads its events and recording.
    #[serde(default)]
    pub owner: String,
    /// Contact reference in use.
    pub contact_ref: String,
    /// Agent (or callee for a one-leg call).
    pub agent: String,
    /// Callee, E.164.
    pub callee_e164: String,
    /// Caller ID as given.
    pub outbound_id: String,
    /// Recording reference.
    pub recording_ref: String,
    /// Recording URL.
    pub recording_url: String,
    /// The per-call Redis list.
    pub notifications_key: String,
    /// Ring limits, longest duration, recording (records stored before they existed: the
    /// defaults).
    #[serde(default)]
    pub controls: DialControls,
}

impl CallRecord {
    /// How the call's tracker follows it.
    pub fn mode(&self) -> Mode {
        if self.agent_initiated {
            Mode::AgentInitiated
        } else if self.single_leg {
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
    /// The call's sequence number of this notification, from 1.
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
}
