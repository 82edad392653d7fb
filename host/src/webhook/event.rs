//! The CloudEvents 1.0 envelope (JSON format) around a notification.
//!
//! ```json
//! {"specversion":"1.0","id":"<webhook-id>","source":"<http.public_url>/click2dial/calls",
//!  "type":"org.camaraproject.click-to-dial.v0.status-changed","subject":"<contact_ref>",
//!  "time":"<the notification's timestamp>","datacontenttype":"application/json",
//!  "data":{<the notification object, as pushed to Redis>}}
//! ```
//!
//! The envelope is made once, when the notification is queued, and stored: every retry
//! sends the same bytes under the same `webhook-id`.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The CloudEvents `type` of every notification (CAMARA ClickToDial's); `data.event` tells
/// which.
pub const EVENT_TYPE: &str = "org.camaraproject.click-to-dial.v0.status-changed";

/// The CloudEvents `specversion`.
pub const SPEC_VERSION: &str = "1.0";

#[derive(Serialize)]
struct Envelope<'a> {
    specversion: &'static str,
    id: &'a str,
    source: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    subject: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    time: Option<&'a str>,
    datacontenttype: &'static str,
    data: &'a RawValue,
}

#[derive(Deserialize)]
struct Stamp<'a> {
    #[serde(borrow)]
    timestamp: Option<&'a str>,
}

/// The event's body for notification `json` (an object) with id `id`, or `None` when
/// `json` is not JSON (which core never writes).
pub fn envelope(id: &str, source: &str, contact_ref: &str, json: &str) -> Option<String> {
    let data: &RawValue = serde_json::from_str(json).ok()?;
    let time = serde_json::from_str::<Stamp<'_>>(json)
        .ok()
        .and_then(|s| s.timestamp);
    serde_json::to_string(&Envelope {
        specversion: SPEC_VERSION,
        id,
        source,
        kind: EVENT_TYPE,
        subject: contact_ref,
        time,
        datacontenttype: "application/json",
        data,
    })
    .ok()
}

/// The `source` of a deployment's events: `<public_url>/click2dial/calls`.
pub fn source(public_url: &str) -> String {
    format!("{}/click2dial/calls", public_url.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_the_notification_as_it_is() {
        let json =
            r#"{"event":"queued","contact_ref":"crm-1","timestamp":"2026-12-03T10:00:00.000Z"}"#;
        let body = envelope("c:1", "http://h/click2dial/calls", "crm-1", json).unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["id"], "c:1");
        assert_eq!(v["type"], EVENT_TYPE);
        assert_eq!(v["subject"], "crm-1");
        assert_eq!(v["time"], "2026-12-03T10:00:00.000Z");
        assert_eq!(v["datacontenttype"], "application/json");
        assert!(body.ends_with(&format!(r#""data":{json}}}"#)), "{body}");
        assert!(envelope("c:1", "s", "r", "not json").is_none());
    }
}
