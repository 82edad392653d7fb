//! The one-line summary of an AMI message that `transcripts/<case>.summary.txt` holds: written
//! by the recorder (`tests/tests/asterisk_support/record.rs`, which includes this file) and
//! checked against every transcript by `ami_codec.rs`.

use click2dial_core::ami::{Kind, Message};

/// The keys the summary shows for events, in its order.
const SUMMARY_KEYS: [&str; 12] = [
    "Channel",
    "DestChannel",
    "Response",
    "Reason",
    "DialStatus",
    "Cause",
    "Cause-txt",
    "ChannelStateDesc",
    "BridgeUniqueid",
    "Application",
    "Variable",
    "Value",
];

/// `Response: <status> (<message>) [ActionID <id>]`, or `Event: <name>  <key>=<value> …`;
/// anything else as its debug form (no transcript has one, so a checker fails on it).
pub(crate) fn summary_line(m: &Message<'_>) -> String {
    match m.kind() {
        Kind::Response(_) => {
            let mut line = format!(
                "Response: {} ({})",
                m.get("Response").unwrap_or(""),
                m.message().unwrap_or("")
            );
            if let Some(id) = m.action_id() {
                line.push_str(&format!(" [ActionID {id}]"));
            }
            line
        }
        Kind::Event(name) => {
            let fields: Vec<String> = SUMMARY_KEYS
                .iter()
                .filter_map(|&k| {
                    m.get(k)
                        .filter(|v| !v.is_empty())
                        .map(|v| format!("{k}={v}"))
                })
                .collect();
            if fields.is_empty() {
                format!("Event: {name}")
            } else {
                format!("Event: {name}  {}", fields.join(" "))
            }
        }
        Kind::Other => format!("{m:?}"),
    }
}
