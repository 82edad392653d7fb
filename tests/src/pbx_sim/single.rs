//! One-leg calls (agent == callee): the host originates `Channel: Local/<callee>@c2d-single`
//! into `Context: c2d-direct`, `Exten: s`. The kit's `[c2d-single]` (on the `;2` half)
//! dials the callee through the carrier; once the callee answers, `;1` runs `[c2d-direct]`
//! (MixMonitor) and `[c2d-direct-destination]` dials `PJSIP/1000`.
//!
//! The call replays `i_one_leg_success` or `i2_one_leg_callee_busy` (recorded on the real
//! Asterisk with the kit) with the new call's values put in place of the recorded ones, in
//! one pass over each value (longest recorded value first; a value that is only digits is
//! replaced only whole): the `Local` channel's name (`Local/<resource>-<counter>`, a counter
//! of its own as in Asterisk) and the `PJSIP/carrier-…`, `PJSIP/1000-…` names; the `;1`
//! half's `Uniqueid` (the `ChannelId`) and the `;2` half's (`<ChannelId>;2`), the generated
//! `Uniqueid`s of the carrier and phone legs; `BridgeUniqueid`s; the callee, the outbound
//! number, `C2D_CONTACT_REF`/`C2D_RECORDING_REF` values and the recordings directory;
//! `ActionID` and the `OriginateResponse`'s `Context`; RTCP `SentNTP`. The `VarSet`s of the
//! Originate's variables are the recorded ones (the host's four `C2D_*`), values substituted.

use super::hub::Ids;
use super::render::{as_recorded, now_secs_micros, substitute};
use super::template::{Template, TemplateFrame, RECORDED_MONITOR_DIR};

/// The kit's context of the `Local` channel that dials the callee.
pub(crate) const SINGLE_CONTEXT: &str = "c2d-single";

/// The callee of a one-leg Originate's `Local` resource `<callee>@c2d-single`, when it is one
/// the kit's `_X.` pattern takes (a digit, then at least one more digit).
pub(crate) fn callee_of(tech: &str, resource: &str) -> Option<String> {
    let (number, context) = resource.split_once('@')?;
    let digits = number.len() >= 2 && number.bytes().all(|b| b.is_ascii_digit());
    (tech.eq_ignore_ascii_case("Local") && context == SINGLE_CONTEXT && digits)
        .then(|| number.to_owned())
}

/// The new call's values of a one-leg call.
pub(crate) struct NewValues<'a> {
    pub(crate) action_id: Option<String>,
    /// `Local` resource, e.g. `0820001234@c2d-single`.
    pub(crate) resource: &'a str,
    pub(crate) callee: &'a str,
    /// The `;1` half's `Uniqueid`: the `ChannelId`, or a generated one.
    pub(crate) uniqueid: &'a str,
    /// Whether the Originate named it (`ChannelId`): `;2` is then `<ChannelId>;2`.
    pub(crate) named: bool,
    pub(crate) context: &'a str,
    pub(crate) outbound: &'a str,
    pub(crate) contact: Option<&'a str>,
    pub(crate) recording: Option<&'a str>,
    pub(crate) recordings_dir: &'a str,
}

/// How a recorded one-leg call's frames become the new call's.
pub(crate) struct OneLeg {
    action_id: Option<String>,
    context: String,
    /// `(recorded, new)`, longest recorded first.
    pairs: Vec<(String, String)>,
}

impl OneLeg {
    /// The substitutions for `new`, with fresh channel names and ids from `ids`, for the
    /// frames of `template` and of the `cuts` recorded on the same kit (their `n`th PJSIP
    /// channel and `n`th bridge are the same new ones as `template`'s).
    pub(crate) fn new(
        ids: &Ids,
        template: &Template,
        cuts: &[&Template],
        new: &NewValues<'_>,
    ) -> Self {
        let recorded = &template.recorded;
        let recorded_callee = recorded
            .agent_dial
            .split_once('@')
            .map_or(recorded.agent_dial.as_str(), |(n, _)| n);
        let local = recorded
            .agent_channel
            .as_deref()
            .and_then(|c| c.strip_suffix(";1"))
            .unwrap_or_default();
        let second = if new.named {
            format!("{};2", new.uniqueid)
        } else {
            ids.uniqueid()
        };
        let mut pairs = vec![
            (local.to_owned(), ids.local_name(new.resource)),
            (format!("{};2", recorded.agent_uniqueid), second),
            (recorded.agent_uniqueid.clone(), new.uniqueid.to_owned()),
            (recorded_callee.to_owned(), new.callee.to_owned()),
            (
                recorded.caller_id.clone().unwrap_or_default(),
                new.outbound.to_owned(),
            ),
            (
                recorded.contact.clone().unwrap_or_default(),
                new.contact.unwrap_or_default().to_owned(),
            ),
            (
                recorded.recording.clone().unwrap_or_default(),
                new.recording.unwrap_or_default().to_owned(),
            ),
            (
                RECORDED_MONITOR_DIR.to_owned(),
                new.recordings_dir.to_owned(),
            ),
        ];
        // The new channels (name, Uniqueid) and bridges, in the order they are created.
        let mut channels: Vec<(String, String)> = Vec::new();
        let mut bridges: Vec<String> = Vec::new();
        for t in std::iter::once(template).chain(cuts.iter().copied()) {
            let (mut channel_n, mut bridge_n) = (0, 0);
            for frame in &t.frames {
                let get = |key: &str| {
                    frame
                        .lines
                        .iter()
                        .find(|(k, _)| k == key)
                        .map(|(_, v)| v.as_str())
                };
                match frame.info.event.as_str() {
                    "Newchannel" => {
                        let (Some(channel), Some(uniqueid)) = (get("Channel"), get("Uniqueid"))
                        else {
                            continue;
                        };
                        let Some(endpoint) = channel
                            .strip_prefix("PJSIP/")
                            .and_then(|c| c.rsplit_once('-'))
                            .map(|(e, _)| e)
                        else {
                            continue;
                        };
                        if channels.len() == channel_n {
                            channels.push((ids.channel_name(endpoint), ids.uniqueid()));
                        }
                        let (name, id) = &channels[channel_n];
                        pairs.push((channel.to_owned(), name.clone()));
                        pairs.push((uniqueid.to_owned(), id.clone()));
                        channel_n += 1;
                    }
                    "BridgeCreate" => {
                        if let Some(bridge) = get("BridgeUniqueid") {
                            if bridges.len() == bridge_n {
                                bridges.push(ids.uuid());
                            }
                            pairs.push((bridge.to_owned(), bridges[bridge_n].clone()));
                            bridge_n += 1;
                        }
                    }
                    _ => {}
                }
            }
        }
        pairs.retain(|(from, _)| !from.is_empty());
        pairs.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
        pairs.dedup();
        Self {
            action_id: new.action_id.clone(),
            context: new.context.to_owned(),
            pairs,
        }
    }

    /// One pass over `value`: each recorded value becomes the new one.
    fn apply(&self, value: &str) -> String {
        substitute(value, &self.pairs)
    }

    /// Renders one frame of the recorded call, closing empty line included.
    pub(crate) fn render(&self, frame: &TemplateFrame) -> Vec<u8> {
        let mut out = Vec::with_capacity(2048);
        let originate_response = frame.info.event == "OriginateResponse";
        for (key, value) in &frame.lines {
            let value = match key.as_str() {
                "ActionID" => match &self.action_id {
                    Some(id) => id.clone(),
                    None => continue,
                },
                "Context" if originate_response => self.context.clone(),
                "SentNTP" => now_secs_micros(),
                k if as_recorded(k) => value.clone(),
                _ => self.apply(value),
            };
            let key = if key.starts_with("ChanVariable(") {
                self.apply(key)
            } else {
                key.clone()
            };
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_leg_resources() {
        assert_eq!(
            callee_of("Local", "0820001234@c2d-single"),
            Some("0820001234".into())
        );
        assert_eq!(
            callee_of("local", "27820000486@c2d-single"),
            Some("27820000486".into())
        );
        for (tech, resource) in [
            ("PJSIP", "0820001234@c2d-single"),
            ("Local", "0820001234@c2d-other"),
            ("Local", "0820001234"),
            ("Local", "s@c2d-single"),
            ("Local", "1@c2d-single"),
        ] {
            assert_eq!(callee_of(tech, resource), None, "{tech}/{resource}");
        }
    }
}
