//! Rendering a template frame for a new call: every header keeps its recorded bytes except
//! the values that belong to the call, which are replaced by role.
//!
//! | recorded value | becomes |
//! |---|---|
//! | `ActionID` | the Originate's (the line is left out when it had none) |
//! | agent channel `PJSIP/1001-00000000`, carrier channel `PJSIP/carrier-00000001` | new names, counter per simulator (`%08x`, as Asterisk) |
//! | agent `Uniqueid` (= `ChannelId`), carrier `Uniqueid` `<epoch>.<n>` | the new `ChannelId` (or a generated id), a generated id |
//! | `BridgeUniqueid` | a random UUID |
//! | callee `0820001234` (`Exten`, `Extension`, `CallerIDNum` of the carrier, `DialString`, `AppData`, `DIALEDPEERNUMBER`) | the Originate's `Exten` |
//! | `27820001234` as the agent's `CallerIDNum`/`ConnectedLineNum` | the Originate's `CallerID` number (`<unknown>` without one); after `Set(CALLERID(num)=…)` the agent's `CallerIDNum` is the outbound number |
//! | `27820001234` as the carrier's `ConnectedLineNum`, in `CALLERID(num)=` | the outbound number: the Originate's `C2D_OUTBOUND_ID` variable, else the configured `C2D_OUTBOUND_CID` |
//! | `crm-42`, `rec-abc` | the `C2D_CONTACT_REF`, `C2D_RECORDING_REF` variables (empty when absent) |
//! | `/var/spool/asterisk/monitor/click2dial` | the simulator's recordings directory |
//! | `DialString: 1001`, failed `OriginateResponse` `Channel: PJSIP/1001` | the Originate's resource and `Channel` |
//! | `OriginateResponse` `Context`/`Exten`/`CallerIDNum`/`Uniqueid` | the Originate's values |
//! | RTCP `SentNTP` | the current time |
//!
//! Everything else (header order, `Privilege`, states, causes, RTCP statistics, `RTPAUDIOQOS`,
//! `BRIDGEPVTCALLID`, dial and answer times) is sent as recorded.

use std::time::{SystemTime, UNIX_EPOCH};

use super::hub::Ids;
use super::template::{FrameInfo, Recorded, Template, TemplateFrame, RECORDED_MONITOR_DIR};

/// What the agent's caller ID shows when none is set.
const UNKNOWN: &str = "<unknown>";

/// The values of one simulated call.
#[derive(Clone, Debug, Default)]
pub(crate) struct CallValues {
    pub(crate) action_id: Option<String>,
    /// The Originate's `Channel`, e.g. `PJSIP/1001`.
    pub(crate) requested_channel: String,
    /// The resource after the technology: `1001`.
    pub(crate) agent_dial: String,
    /// `PJSIP/1001-0000000a`.
    pub(crate) agent_channel: String,
    /// The `ChannelId`, a generated id, or `<unknown>` when no channel is created.
    pub(crate) agent_uniqueid: String,
    pub(crate) callee: String,
    pub(crate) context: String,
    /// The number of the Originate's `CallerID`.
    pub(crate) caller_id: Option<String>,
    /// The caller ID the dialplan sets for the callee leg.
    pub(crate) outbound: String,
    pub(crate) contact: Option<String>,
    pub(crate) recording: Option<String>,
    /// Every Originate variable, in the order sent.
    pub(crate) variables: Vec<(String, String)>,
    /// The recordings directory, as it appears in `MIXMONITOR_FILENAME`.
    pub(crate) recordings_dir: String,
    /// The carrier channel's name and `Uniqueid`, made when first needed.
    pub(crate) carrier: Option<(String, String)>,
    pub(crate) bridge_id: Option<String>,
}

impl CallValues {
    fn caller_id_or_unknown(&self) -> String {
        self.caller_id.clone().unwrap_or_else(|| UNKNOWN.into())
    }

    fn carrier(&mut self, ids: &Ids) -> &(String, String) {
        self.carrier
            .get_or_insert_with(|| (ids.channel_name("carrier"), ids.uniqueid()))
    }

    /// A recorded channel name replaced by this call's, other values unchanged.
    fn channel(&mut self, ids: &Ids, recorded: &Recorded, value: &str) -> Option<String> {
        if recorded.agent_channel.as_deref() == Some(value) {
            Some(self.agent_channel.clone())
        } else if recorded.carrier_channel.as_deref() == Some(value) {
            Some(self.carrier(ids).0.clone())
        } else {
            None
        }
    }

    fn uniqueid(&mut self, ids: &Ids, recorded: &Recorded, value: &str) -> Option<String> {
        if recorded.agent_uniqueid == value {
            Some(self.agent_uniqueid.clone())
        } else if recorded.carrier_uniqueid.as_deref() == Some(value) {
            Some(self.carrier(ids).1.clone())
        } else {
            None
        }
    }

    /// Replaces the recorded references, callee and directory inside a longer value.
    fn replace_inside(&self, recorded: &Recorded, value: &str) -> String {
        let patterns = [
            (Some(RECORDED_MONITOR_DIR), self.recordings_dir.as_str()),
            (
                recorded.contact.as_deref(),
                self.contact.as_deref().unwrap_or(""),
            ),
            (
                recorded.recording.as_deref(),
                self.recording.as_deref().unwrap_or(""),
            ),
            (Some(recorded.callee.as_str()), self.callee.as_str()),
        ];
        let patterns: Vec<(&str, &str)> = patterns
            .into_iter()
            .filter_map(|(from, to)| from.filter(|f| !f.is_empty()).map(|f| (f, to)))
            .collect();
        replace_all(value, &patterns)
    }

    /// The new value of one header, `None` to leave the line out.
    fn value(
        &mut self,
        ids: &Ids,
        recorded: &Recorded,
        info: &FrameInfo,
        key: &str,
        value: &str,
    ) -> Option<String> {
        if key == "ActionID" {
            return self.action_id.clone();
        }
        if info.event == "OriginateResponse" {
            match key {
                "Context" => return Some(self.context.clone()),
                "Exten" => return Some(self.callee.clone()),
                "CallerIDNum" => return Some(self.caller_id_or_unknown()),
                "Uniqueid" => return Some(self.agent_uniqueid.clone()),
                "Channel" if value == recorded.requested_channel => {
                    return Some(self.requested_channel.clone())
                }
                _ => {}
            }
        }
        if key.starts_with("ChanVariable") || key.starts_with("DestChanVariable") {
            return Some(match value.split_once('=') {
                Some((name, v)) => format!("{name}={}", self.reference(recorded, name, v)),
                None => value.to_owned(),
            });
        }
        let base = key.strip_prefix("Dest").unwrap_or(key);
        let new = match base {
            "SentNTP" => Some(now_secs_micros()),
            "BridgeUniqueid" if recorded.bridge_id.as_deref() == Some(value) => {
                Some(self.bridge_id.get_or_insert_with(|| ids.uuid()).clone())
            }
            "AppData" => Some(self.app_data(recorded, value)),
            "DialString" if value == recorded.agent_dial => Some(self.agent_dial.clone()),
            "DialString" => Some(self.replace_inside(recorded, value)),
            "Value" if info.event == "VarSet" => self.variable_value(ids, recorded, info, value),
            "CallerIDNum" | "ConnectedLineNum"
                if recorded.caller_id.as_deref().unwrap_or(UNKNOWN) == value =>
            {
                let subject = if key.starts_with("Dest") {
                    &info.dest_channel
                } else {
                    &info.channel
                };
                Some(if *subject == recorded.agent_channel || subject.is_none() {
                    if base == "CallerIDNum" && info.after_set_caller_id {
                        self.outbound.clone()
                    } else {
                        self.caller_id_or_unknown()
                    }
                } else if base == "CallerIDNum" && value == recorded.callee {
                    // The carrier's own number is the callee's (the recording's `CallerID`
                    // was the callee's number too, as the host sends it).
                    self.callee.clone()
                } else {
                    self.outbound.clone()
                })
            }
            "Uniqueid" | "Linkedid" => self.uniqueid(ids, recorded, value),
            "Channel" => self.channel(ids, recorded, value),
            "Context" if value == recorded.context && !value.is_empty() => {
                Some(self.context.clone())
            }
            "CallerIDNum" | "ConnectedLineNum" | "Exten" | "Extension"
                if value == recorded.callee && !value.is_empty() =>
            {
                Some(self.callee.clone())
            }
            _ => None,
        };
        Some(new.unwrap_or_else(|| value.to_owned()))
    }

    /// A `C2D_CONTACT_REF`/`C2D_RECORDING_REF` value (any inheritance prefix) of this call.
    fn reference(&self, recorded: &Recorded, name: &str, value: &str) -> String {
        let pick = |rec: &Option<String>, new: &Option<String>| {
            (rec.as_deref() == Some(value) && !value.is_empty())
                .then(|| new.clone().unwrap_or_default())
        };
        let new = if name.ends_with("C2D_CONTACT_REF") {
            pick(&recorded.contact, &self.contact)
        } else if name.ends_with("C2D_RECORDING_REF") {
            pick(&recorded.recording, &self.recording)
        } else {
            None
        };
        new.unwrap_or_else(|| value.to_owned())
    }

    fn variable_value(
        &mut self,
        ids: &Ids,
        recorded: &Recorded,
        info: &FrameInfo,
        value: &str,
    ) -> Option<String> {
        let name = info.variable.as_deref().unwrap_or("");
        match name {
            "MIXMONITOR_FILENAME" | "DIALEDPEERNUMBER" => {
                Some(self.replace_inside(recorded, value))
            }
            "BRIDGEPEER" | "DIALEDPEERNAME" => self.channel(ids, recorded, value),
            _ if name.ends_with("C2D_CONTACT_REF") || name.ends_with("C2D_RECORDING_REF") => {
                Some(self.reference(recorded, name, value))
            }
            _ => None,
        }
    }

    fn app_data(&self, recorded: &Recorded, value: &str) -> String {
        if value.starts_with("CALLERID(num)=") {
            return format!("CALLERID(num)={}", self.outbound);
        }
        let replaced = self.replace_inside(recorded, value);
        match replaced.strip_prefix("1?MixMonitor(") {
            // ExecIf's condition is the length test of C2D_RECORDING_REF.
            Some(rest) if self.recording.is_none() => format!("0?MixMonitor({rest}"),
            _ => replaced,
        }
    }

    fn key(&mut self, ids: &Ids, recorded: &Recorded, key: &str) -> String {
        if let Some(channel) = key
            .strip_prefix("ChanVariable(")
            .and_then(|k| k.strip_suffix(')'))
        {
            if let Some(new) = self.channel(ids, recorded, channel) {
                return format!("ChanVariable({new})");
            }
        }
        key.to_owned()
    }

    /// Renders `lines` of a frame described by `info`, closing empty line included.
    fn render_lines(
        &mut self,
        ids: &Ids,
        recorded: &Recorded,
        info: &FrameInfo,
        lines: &[(String, String)],
        out: &mut Vec<u8>,
    ) {
        for (key, value) in lines {
            if let Some(value) = self.value(ids, recorded, info, key, value) {
                let key = self.key(ids, recorded, key);
                push_line(out, &key, &value);
            }
        }
    }

    /// Renders one template frame.
    pub(crate) fn render(
        &mut self,
        ids: &Ids,
        template: &Template,
        frame: &TemplateFrame,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        self.render_lines(ids, &template.recorded, &frame.info, &frame.lines, &mut out);
        out.extend_from_slice(b"\r\n");
        out
    }

    /// The `VarSet` events that setting the Originate's variables on the agent channel causes,
    /// made from `frame` (the agent's `AppDial2` `Newexten`). Asterisk sets them in the reverse
    /// of the order sent; a dialplan function such as `PJSIP_HEADER(add,…)` causes none. Each
    /// event's `ChanVariable` lines show the variables set so far.
    pub(crate) fn render_variables(
        &mut self,
        ids: &Ids,
        template: &Template,
        frame: &TemplateFrame,
    ) -> Vec<Vec<u8>> {
        let block = channel_block(&frame.lines);
        let info = FrameInfo {
            event: "VarSet".into(),
            ..frame.info.clone()
        };
        let variables: Vec<(String, String)> = self
            .variables
            .iter()
            .rev()
            .filter(|(name, _)| !name.contains('('))
            .cloned()
            .collect();
        let mut set: Vec<&(String, String)> = Vec::new();
        let mut events = Vec::new();
        for variable in &variables {
            set.push(variable);
            let mut out = Vec::with_capacity(1024);
            push_line(&mut out, "Event", "VarSet");
            push_line(&mut out, "Privilege", "dialplan,all");
            for (key, value) in block {
                if key == "ChanVariable" {
                    let name = value.split_once('=').map_or(value.as_str(), |(n, _)| n);
                    let now = set
                        .iter()
                        .rev()
                        .find(|(n, _)| n == name)
                        .map_or("", |(_, v)| v.as_str());
                    push_line(&mut out, key, &format!("{name}={now}"));
                } else if let Some(value) = self.value(ids, &template.recorded, &info, key, value) {
                    push_line(&mut out, key, &value);
                }
            }
            push_line(&mut out, "Variable", &variable.0);
            push_line(&mut out, "Value", &variable.1);
            out.extend_from_slice(b"\r\n");
            events.push(out);
        }
        events
    }

    /// The `NewCallerid` that `Set(CALLERID(num)=<outbound>)` causes on the agent channel when
    /// it changes the number, made from `frame` (that `Newexten`).
    pub(crate) fn render_caller_id_change(
        &mut self,
        ids: &Ids,
        template: &Template,
        frame: &TemplateFrame,
    ) -> Option<Vec<u8>> {
        if self.caller_id.as_deref() == Some(self.outbound.as_str()) {
            return None;
        }
        let info = FrameInfo {
            event: "NewCallerid".into(),
            after_set_caller_id: true,
            ..frame.info.clone()
        };
        let mut out = Vec::with_capacity(1024);
        push_line(&mut out, "Event", "NewCallerid");
        push_line(&mut out, "Privilege", "call,all");
        let block = channel_block(&frame.lines);
        self.render_lines(ids, &template.recorded, &info, block, &mut out);
        push_line(
            &mut out,
            "CID-CallingPres",
            "0 (Presentation Allowed, Not Screened)",
        );
        out.extend_from_slice(b"\r\n");
        Some(out)
    }
}

/// The lines every channel event shares: from `Channel` to the last `ChanVariable`.
fn channel_block(lines: &[(String, String)]) -> &[(String, String)] {
    let start = lines
        .iter()
        .position(|(k, _)| k == "Channel")
        .unwrap_or(lines.len());
    let end = lines
        .iter()
        .rposition(|(k, _)| k == "ChanVariable" || k == "Linkedid")
        .map_or(start, |i| i + 1);
    &lines[start..end.max(start)]
}

fn push_line(out: &mut Vec<u8>, key: &str, value: &str) {
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Replaces every occurrence of the patterns in one left-to-right pass (the first pattern that
/// matches at a position wins), so a replacement is never replaced again.
pub(crate) fn replace_all<S: AsRef<str>>(value: &str, patterns: &[(S, S)]) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    'scan: while !rest.is_empty() {
        for (from, to) in patterns {
            if let Some(after) = rest.strip_prefix(from.as_ref()) {
                out.push_str(to.as_ref());
                rest = after;
                continue 'scan;
            }
        }
        let c = rest.chars().next().expect("not empty");
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// [`replace_all`] of a recorded value by the new call's, except that a value made only of
/// digits is replaced only whole, so a number never changes inside another.
pub(crate) fn substitute(value: &str, pairs: &[(String, String)]) -> String {
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return pairs
            .iter()
            .find(|(from, _)| from == value)
            .map_or_else(|| value.to_owned(), |(_, to)| to.clone());
    }
    replace_all(value, pairs)
}

/// Keys whose values are sent as recorded (RTCP statistics), with every `Report…` key.
pub(crate) fn as_recorded(key: &str) -> bool {
    const AS_RECORDED: &[&str] = &[
        "To",
        "From",
        "MES",
        "SSRC",
        "PT",
        "ReportCount",
        "SentRTP",
        "SentPackets",
        "SentOctets",
    ];
    AS_RECORDED.contains(&key) || key.starts_with("Report")
}

/// `<seconds>.<microseconds>` of the wall clock, as Asterisk writes timestamps.
pub(crate) fn now_secs_micros() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:06}", now.as_secs(), now.subsec_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_all_is_one_pass() {
        assert_eq!(
            replace_all(
                "C2D call to 0820001234 contact=crm-42 rec=rec-abc",
                &[
                    ("crm-42", "rec-abc"),
                    ("rec-abc", "R"),
                    ("0820001234", "0820000486"),
                ]
            ),
            "C2D call to 0820000486 contact=rec-abc rec=R"
        );
        assert_eq!(replace_all("", &[("a", "b")]), "");
        assert_eq!(replace_all("é-x", &[("x", "y")]), "é-y");
    }

    #[test]
    fn timestamps_have_six_decimals() {
        let ts = now_secs_micros();
        let (secs, micros) = ts.split_once('.').unwrap();
        assert!(secs.len() >= 10 && micros.len() == 6, "{ts}");
    }
}
