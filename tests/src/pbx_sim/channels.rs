//! The channels the simulated PBX has now, as its own events tell them, and the
//! `CoreShowChannels` answer that lists them as Asterisk 22's `manager.c` does (recorded in
//! `core/tests/fixtures/ami/queries/`, connected and ringing): `Channels will follow`,
//! one `CoreShowChannel` per channel with the action's `ActionID`, the channel's snapshot
//! headers, `Application`, `ApplicationData`, `Duration`, `BridgeId`, then
//! `CoreShowChannelsComplete` with `ListItems`.
//!
//! Every event a call sends passes through [`Channels::observe`] before the event filters
//! (they choose what a manager user reads, not what the PBX has).

use std::sync::Mutex;
use std::time::Instant;

use click2dial_core::ami::Message;

/// The headers of a channel snapshot, in the order Asterisk writes them.
const SNAPSHOT: [&str; 14] = [
    "Channel",
    "ChannelState",
    "ChannelStateDesc",
    "CallerIDNum",
    "CallerIDName",
    "ConnectedLineNum",
    "ConnectedLineName",
    "Language",
    "AccountCode",
    "Context",
    "Exten",
    "Priority",
    "Uniqueid",
    "Linkedid",
];

struct Channel {
    uniqueid: String,
    /// The snapshot headers of the channel's last event (`ChanVariable`s included).
    snapshot: Vec<(String, String)>,
    application: String,
    data: String,
    bridge_id: String,
    created: Instant,
}

/// The live channels, oldest first.
#[derive(Default)]
pub(crate) struct Channels {
    live: Mutex<Vec<Channel>>,
}

/// The snapshot headers of `message` (those of its own channel, not the `Dest` ones).
fn snapshot(message: &Message<'_>) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = SNAPSHOT
        .iter()
        .filter_map(|key| Some(((*key).to_owned(), message.get(key)?.to_owned())))
        .collect();
    headers.extend(
        message
            .get_all("ChanVariable")
            .map(|v| ("ChanVariable".to_owned(), v.to_owned())),
    );
    headers
}

impl Channels {
    /// Follows the PBX's channels through one event it sends.
    pub(crate) fn observe(&self, frame: &[u8]) {
        let message = Message::new(frame);
        let Some(name) = message.event() else {
            return;
        };
        let mut live = self
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let find = |live: &[Channel], id: Option<&str>| -> Option<usize> {
            let id = id?;
            live.iter().position(|c| c.uniqueid == id)
        };
        match name {
            "Newchannel" => {
                let Some(uniqueid) = message.uniqueid() else {
                    return;
                };
                live.push(Channel {
                    uniqueid: uniqueid.to_owned(),
                    snapshot: snapshot(&message),
                    application: String::new(),
                    data: String::new(),
                    bridge_id: String::new(),
                    created: Instant::now(),
                });
                return;
            }
            "Hangup" => {
                if let Some(i) = find(&live, message.uniqueid()) {
                    live.remove(i);
                }
                return;
            }
            "Newexten" => {
                // The dialplan application the channel runs now.
                if let Some(i) = find(&live, message.uniqueid()) {
                    live[i].application = message.get("Application").unwrap_or("").to_owned();
                    live[i].data = message.get("AppData").unwrap_or("").to_owned();
                }
            }
            // A channel app_dial dials runs no dialplan: Asterisk shows it as `AppDial`. (The
            // dial API's, an Originate ringing the agent, has its `Newexten`.)
            "DialBegin" if message.uniqueid().is_some() => {
                if let Some(i) = find(&live, message.dest_uniqueid()) {
                    live[i].application = "AppDial".to_owned();
                    live[i].data = "(Outgoing Line)".to_owned();
                }
            }
            "BridgeEnter" => {
                if let Some(i) = find(&live, message.uniqueid()) {
                    live[i].bridge_id = message.bridge_uniqueid().unwrap_or("").to_owned();
                }
            }
            "BridgeLeave" => {
                if let Some(i) = find(&live, message.uniqueid()) {
                    live[i].bridge_id.clear();
                }
            }
            _ => {}
        }
        if let Some(i) = find(&live, message.uniqueid()) {
            if message.get("Channel").is_some() {
                live[i].snapshot = snapshot(&message);
            }
        }
    }

    /// The answer to `CoreShowChannels` with `action_id`, and how many channels it lists.
    pub(crate) fn list(&self, action_id: Option<&str>) -> (Vec<u8>, usize) {
        let id_line = action_id.map_or_else(String::new, |id| format!("ActionID: {id}\r\n"));
        let mut out = format!(
            "Response: Success\r\n{id_line}EventList: start\r\nMessage: Channels will follow\r\n\r\n"
        );
        let live = self
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Asterisk walks a hashed container, in no order a client may rely on; newest first
        // here, as the recording happens to list them.
        for channel in live.iter().rev() {
            out.push_str("Event: CoreShowChannel\r\n");
            out.push_str(&id_line);
            for (key, value) in &channel.snapshot {
                out.push_str(&format!("{key}: {value}\r\n"));
            }
            let secs = channel.created.elapsed().as_secs();
            out.push_str(&format!(
                "Application: {}\r\nApplicationData: {}\r\nDuration: {:02}:{:02}:{:02}\r\nBridgeId: {}\r\n\r\n",
                channel.application,
                channel.data,
                secs / 3600,
                secs / 60 % 60,
                secs % 60,
                channel.bridge_id
            ));
        }
        out.push_str(&format!(
            "Event: CoreShowChannelsComplete\r\n{id_line}EventList: Complete\r\nListItems: {}\r\n\r\n",
            live.len()
        ));
        (out.into_bytes(), live.len())
    }
}
