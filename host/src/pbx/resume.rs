//! Calls in flight that this process did not see start, found in the PBX's channel list
//! (`CoreShowChannels`) after a login and followed from their record and notification
//! history in Redis. A host that restarts (an upgrade, a crash) then carries on with the
//! calls it, or another host, left: each call's notifications go on from the last one
//! pushed, none twice, and the steps the list proves happened meanwhile are notified.
//!
//! A call is looked up when its first channel is in the list (the channel whose `Uniqueid`
//! is the call's `Linkedid`: the agent's channel of a call this service originated, its
//! `Uniqueid` being the `c2d-` `ChannelId`, or a softphone's channel that called `c2d`), at
//! most [`MAX_LOOKUPS`] per list: a call with no record in Redis is not this service's.
//! The driver (`pbx`) does the I/O: it keeps a [`Sweep`] while the list is read, looks the
//! calls up, and resumes each one's tracker, then [`apply_listing`] gives it the list.

use std::collections::{HashMap, HashSet};

use click2dial_core::ami::ChannelState;
use click2dial_core::call::{CallTracker, ListedChannel, Millis};

/// The most calls one list has looked up in Redis (one `GET` each; a PBX busy with other
/// traffic lists many); the calls listed after them are not looked up (the driver warns).
pub(crate) const MAX_LOOKUPS: usize = 1024;

/// One listed channel, kept until the list is over.
#[derive(Clone, Debug)]
pub(crate) struct Listed {
    uniqueid: String,
    state: ChannelState,
    bridge_id: String,
    dialled: bool,
}

impl Listed {
    fn view(&self) -> ListedChannel<'_> {
        ListedChannel {
            uniqueid: &self.uniqueid,
            state: self.state,
            bridge_id: &self.bridge_id,
            dialled: self.dialled,
        }
    }
}

/// The listed channels of calls the driver does not follow, by call.
#[derive(Debug, Default)]
pub(crate) struct Sweep {
    calls: HashMap<String, Vec<Listed>>,
    /// More than [`MAX_LOOKUPS`] calls were listed.
    overflowed: bool,
}

impl Sweep {
    /// Keeps a listed channel of the call `key`.
    pub(crate) fn keep(&mut self, key: &str, channel: &ListedChannel<'_>) {
        if self.calls.len() >= MAX_LOOKUPS && !self.calls.contains_key(key) {
            self.overflowed = true;
            return;
        }
        self.calls.entry(key.to_string()).or_default().push(Listed {
            uniqueid: channel.uniqueid.to_string(),
            state: channel.state,
            bridge_id: channel.bridge_id.to_string(),
            dialled: channel.dialled,
        });
    }

    /// Whether calls were left out ([`MAX_LOOKUPS`]).
    pub(crate) fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Every call the list showed that the driver does not follow (any of its channels).
    pub(crate) fn listed(&self) -> HashSet<String> {
        self.calls.keys().cloned().collect()
    }

    /// The calls whose originated channel (`Uniqueid` = `ChannelId`) is listed, with their
    /// channels.
    pub(crate) fn calls(self) -> impl Iterator<Item = (String, Vec<Listed>)> {
        self.calls
            .into_iter()
            .filter(|(key, channels)| channels.iter().any(|c| &c.uniqueid == key))
    }
}

/// Applies the call's listed `channels` to its resumed `tracker` at `now`.
pub(crate) fn apply_listing(tracker: &mut CallTracker, channels: &[Listed], now: Millis) {
    for channel in channels {
        tracker.handle_listed(&channel.view());
    }
    tracker.handle_resynced(now);
}
