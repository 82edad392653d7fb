//! Calls in flight that this process did not see start: found in the PBX's channel list
//! (`CoreShowChannels`) after a login, and followed from their record and notification
//! history in Redis. A host that restarts (an upgrade, a crash) then carries on with the
//! calls it, or another host, left: each call's notifications go on from the last one
//! pushed, none twice, and the steps the list proves happened meanwhile are notified.
//!
//! Only calls this service originated are looked for (a `ChannelId` with the `c2d-` prefix
//! whose originated channel is listed); a softphone's call (FastAGI) is keyed by its
//! channel's `Uniqueid` and is not resumed.

use std::collections::HashMap;
use std::time::Instant;

use click2dial_core::ami::{ChannelState, Message};
use click2dial_core::call::{CallTracker, ChannelEvent, ListedChannel};
use click2dial_core::json::Event;
use click2dial_core::reference::CHANNEL_ID_PREFIX;

use super::{Driver, Found, LiveCall};
use crate::call::CallRecord;

/// One listed channel, kept until the listing is over.
#[derive(Clone, Debug)]
pub(super) struct Listed {
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

/// The channels of calls this host does not follow, by call, while a listing is read.
pub(super) type Sweep = HashMap<String, Vec<Listed>>;

impl Driver {
    /// A listed channel of a call this host does not follow: kept, if it may be one of
    /// this service's, until the listing is over.
    pub(super) fn swept(&mut self, key: &str, channel: &ListedChannel<'_>) {
        let Some(sweep) = self.sweep.as_mut() else {
            return;
        };
        if !key.starts_with(CHANNEL_ID_PREFIX) || self.adopting.contains_key(key) {
            return;
        }
        sweep.entry(key.to_string()).or_default().push(Listed {
            uniqueid: channel.uniqueid.to_string(),
            state: channel.state,
            bridge_id: channel.bridge_id.to_string(),
            dialled: channel.dialled,
        });
    }

    /// The listing is over: each swept call whose originated channel is listed is looked
    /// up in Redis (its events wait meanwhile, as for an adopted call).
    pub(super) fn resume_swept(&mut self, complete: bool) {
        let Some(sweep) = self.sweep.take() else {
            return;
        };
        let Some(store) = &self.call_store else {
            return;
        };
        if !complete {
            return;
        }
        for (key, channels) in sweep {
            let originated = channels.iter().any(|c| c.uniqueid == key);
            if !originated || self.calls.contains_key(&key) || self.adopting.contains_key(&key) {
                continue;
            }
            self.adopting.insert(key.clone(), Vec::new());
            let store = store.clone();
            let tx = self.adopt_tx.clone();
            tokio::spawn(async move {
                let found = match store.load(&key).await {
                    Some(record) => store
                        .notified(&key, &record)
                        .await
                        .map(|notified| (record, notified)),
                    None => None,
                };
                let _ = tx.send((key, Found::InFlight(found, channels)));
            });
        }
    }

    /// The record and history of a call in flight arrived (or not): its tracker resumes
    /// from them and the listing, then its buffered events are replayed.
    pub(super) fn resumed(
        &mut self,
        channel_id: &str,
        found: Option<(CallRecord, Vec<Event>)>,
        channels: &[Listed],
    ) {
        let Some(waiting) = self.adopting.remove(channel_id) else {
            return;
        };
        let Some((record, notified)) = found else {
            return; // Not a call of this service, or Redis is unreachable.
        };
        if self.calls.contains_key(channel_id) || notified.contains(&Event::RecordingReady) {
            return;
        }
        let now = self.now_ms();
        let timeouts = self.timeouts(&record);
        let Ok(mut tracker) =
            CallTracker::resume(channel_id, record.mode(), now, timeouts, &notified)
        else {
            return;
        };
        if record.call.controls.record {
            tracker.expect_recording();
        }
        for channel in channels {
            tracker.handle_listed(&channel.view());
        }
        tracker.handle_resynced(now);
        if let Ok(mut set) = self.live_recordings.lock() {
            set.insert(record.call.recording_ref.as_str().to_string());
        }
        tracing::info!(
            channel_id,
            notified = notified.len(),
            "following a call in flight found on the PBX"
        );
        self.metrics
            .call_resynchronised(&self.settings.name, "resumed");
        self.notifier.followed(
            &record.owner,
            record.call.contact_ref.as_str(),
            record.call.recording_ref.as_str(),
        );
        let mut call = LiveCall {
            tracker,
            record,
            sequence: u32::try_from(notified.len()).unwrap_or(u32::MAX),
            scheduled: None,
            _slot: None,
        };
        self.drain(&mut call, Instant::now());
        self.settle(channel_id.to_string(), call);
        for (bytes, _) in waiting {
            let message = Message::new(&bytes);
            if let Some((key, event)) = ChannelEvent::from_message(&message) {
                self.on_channel_event(key, &event);
            }
        }
    }
}
