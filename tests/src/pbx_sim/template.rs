//! Call templates: the frames of one recorded call, from the Originate's answer to the call's
//! last event, with their time offsets and the values that the recording used (so that the
//! renderer can put a new call's values in their place).

use std::sync::OnceLock;

use crate::transcript::{self, Case, RecordedFrame};

use super::outcome::Outcome;

/// What a frame is for the renderer beyond its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Rendered as recorded, values substituted.
    Plain,
    /// A `VarSet` of an Originate `Variable`: replaced by ones made from the new Originate's
    /// variables, after the agent's `AppDial2` `Newexten`.
    OriginateVariable,
    /// The agent's `NewCallerid`/`NewConnectedLine` that setting the Originate `CallerID`
    /// causes: left out when the Originate has none.
    CreationCallerId,
    /// The agent's `Newexten` that runs `Set(CALLERID(num)=…)`: a `NewCallerid` follows when
    /// that changes the number.
    SetCallerId,
    /// `MixMonitorStart` or the `MIXMONITOR_FILENAME` `VarSet`: left out without a recording
    /// reference.
    Recording,
    /// `OriginateResponse`: the answer of a synchronous Originate takes its place.
    OriginateResponse,
}

/// The parts of a frame that decide how its values are substituted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FrameInfo {
    /// `Event`.
    pub(crate) event: String,
    /// `Channel`, as recorded.
    pub(crate) channel: Option<String>,
    /// `DestChannel`, as recorded.
    pub(crate) dest_channel: Option<String>,
    /// `Variable` of a `VarSet`.
    pub(crate) variable: Option<String>,
    /// Whether the agent's `Set(CALLERID(num)=…)` has run before this frame.
    pub(crate) after_set_caller_id: bool,
}

/// One recorded frame of a template.
#[derive(Clone, Debug)]
pub(crate) struct TemplateFrame {
    /// Milliseconds after the Originate's answer.
    pub(crate) at_ms: u64,
    /// The exact `Key: value` lines.
    pub(crate) lines: Vec<(String, String)>,
    pub(crate) info: FrameInfo,
    pub(crate) role: Role,
}

/// The values the recorded call used, found in the recorded Originate and events.
#[derive(Clone, Debug, Default)]
pub(crate) struct Recorded {
    /// The Originate's `Channel`, e.g. `PJSIP/1001` (a failed `OriginateResponse` shows it).
    pub(crate) requested_channel: String,
    /// The resource after the technology: the agent's `DialString`.
    pub(crate) agent_dial: String,
    pub(crate) callee: String,
    pub(crate) context: String,
    pub(crate) caller_id: Option<String>,
    pub(crate) contact: Option<String>,
    pub(crate) recording: Option<String>,
    pub(crate) timeout_ms: Option<u64>,
    /// The agent channel's name, e.g. `PJSIP/1001-00000000`.
    pub(crate) agent_channel: Option<String>,
    /// The agent channel's `Uniqueid` (`<unknown>` when no channel was created).
    pub(crate) agent_uniqueid: String,
    pub(crate) carrier_channel: Option<String>,
    pub(crate) carrier_uniqueid: Option<String>,
    pub(crate) bridge_id: Option<String>,
}

/// Where the recordings directory was rewritten to in the transcripts.
pub(crate) const RECORDED_MONITOR_DIR: &str = "/var/spool/asterisk/monitor/click2dial";

/// The frames of one recorded call and what the renderer needs to know about them.
#[derive(Clone, Debug)]
pub(crate) struct Template {
    /// The case the frames come from.
    pub(crate) case: &'static str,
    pub(crate) frames: Vec<TemplateFrame>,
    pub(crate) recorded: Recorded,
    /// The agent's `AppDial2` `Newexten`: the Originate's `VarSet`s follow it.
    pub(crate) variables_after: Option<usize>,
    /// The first frame whose time is set by the Originate `Timeout` (agent no answer).
    pub(crate) ring_timeout_from: Option<usize>,
    /// `MixMonitorStart`.
    pub(crate) recording_start: Option<usize>,
    /// The last `Hangup`: the recording is complete before it is sent.
    pub(crate) last_hangup: Option<usize>,
    /// The first `BridgeEnter`: the callee is connected (a max duration counts from here).
    pub(crate) connected: Option<usize>,
    /// Of a cut template ([`Template::build_cut`]): the first frame of what Asterisk sent once
    /// the call was cut; the frames before it are the call up to the cut.
    pub(crate) cut_from: Option<usize>,
    /// The first frame after the first `BridgeEnter` that comes a second or more after the
    /// one before it: where the connected call's talk ends.
    pub(crate) talk_ends: Option<usize>,
}

impl Template {
    /// Builds the template of the Originate answered with `action_id` in `case`: the frames
    /// after its `Response` up to the next `Response`.
    ///
    /// # Panics
    /// If the embedded transcript does not hold that Originate (unit tests build every one).
    fn build(case: Case, action_id: &str) -> Self {
        Self::build_frames(case, action_id, |rest| {
            rest.iter()
                .take_while(|f| !f.bytes.starts_with(b"Response: "))
                .copied()
                .collect()
        })
    }

    /// Builds the template of a call that the recording cut: the host's `Hangup` (the frames
    /// after the Originate's answer, the `Hangup` answers left out; `cut_from` is the first
    /// after them) or Dial's `S()` (no `Response` in the call: `cut_from` is `talk_ends`).
    fn build_cut(case: Case, action_id: &str) -> Self {
        let mut responses_at = None;
        let mut template = Self::build_frames(case, action_id, |rest| {
            let mut call = Vec::new();
            for f in rest {
                if f.bytes.starts_with(b"Response: Goodbye") {
                    break;
                }
                if f.bytes.starts_with(b"Response: ") {
                    responses_at.get_or_insert(call.len());
                } else {
                    call.push(*f);
                }
            }
            call
        });
        template.cut_from = responses_at.or(template.talk_ends);
        assert!(template.cut_from.is_some(), "{}: no cut", case.name);
        template
    }

    fn build_frames(
        case: Case,
        action_id: &str,
        call_of: impl FnOnce(&[RecordedFrame]) -> Vec<RecordedFrame>,
    ) -> Self {
        let originate = case
            .actions()
            .into_iter()
            .find(|a| transcript::header(a, "ActionID") == Some(action_id))
            .unwrap_or_else(|| panic!("{}: no Originate {action_id}", case.name));
        let frames = case.frames();
        let answer = frames
            .iter()
            .position(|f| {
                f.bytes.starts_with(b"Response: ")
                    && transcript::header(f.bytes, "ActionID") == Some(action_id)
            })
            .unwrap_or_else(|| panic!("{}: no answer to {action_id}", case.name));
        let call = call_of(&frames[answer + 1..]);
        let recorded = recorded_values(originate, &call);
        let start = frames[answer].at_ms;
        let mut template = Self {
            case: case.name,
            frames: call
                .iter()
                .map(|f| TemplateFrame {
                    at_ms: f.at_ms - start,
                    lines: transcript::lines(f.bytes)
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect(),
                    info: FrameInfo::default(),
                    role: Role::Plain,
                })
                .collect(),
            recorded,
            variables_after: None,
            ring_timeout_from: None,
            recording_start: None,
            last_hangup: None,
            connected: None,
            cut_from: None,
            talk_ends: None,
        };
        template.classify();
        template
    }

    fn classify(&mut self) {
        let agent = self.recorded.agent_channel.clone();
        let is_agent = |c: &Option<String>| c.is_some() && *c == agent;
        let mut agent_dialled = false;
        let mut after_set = false;
        let mut in_variables = false;
        for i in 0..self.frames.len() {
            let frame = &mut self.frames[i];
            let get = |key: &str| {
                frame
                    .lines
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.clone())
            };
            let info = FrameInfo {
                event: get("Event").unwrap_or_default(),
                channel: get("Channel"),
                dest_channel: get("DestChannel"),
                variable: get("Variable"),
                after_set_caller_id: after_set,
            };
            let app = get("Application").unwrap_or_default();
            let on_agent = is_agent(&info.channel);
            let role = match info.event.as_str() {
                "Newexten" if on_agent && app == "AppDial2" => {
                    self.variables_after = Some(i);
                    in_variables = true;
                    Role::Plain
                }
                "VarSet" if on_agent && in_variables => Role::OriginateVariable,
                "NewCallerid" | "NewConnectedLine" if on_agent && !agent_dialled => {
                    Role::CreationCallerId
                }
                "Newexten"
                    if on_agent
                        && get("AppData").is_some_and(|d| d.starts_with("CALLERID(num)=")) =>
                {
                    after_set = true;
                    Role::SetCallerId
                }
                "MixMonitorStart" => {
                    self.recording_start = Some(i);
                    Role::Recording
                }
                "VarSet" if info.variable.as_deref() == Some("MIXMONITOR_FILENAME") => {
                    Role::Recording
                }
                "OriginateResponse" => Role::OriginateResponse,
                _ => Role::Plain,
            };
            if role != Role::OriginateVariable && i != self.variables_after.unwrap_or(usize::MAX) {
                in_variables = false;
            }
            if info.event == "DialBegin" && is_agent(&info.dest_channel) {
                agent_dialled = true;
            }
            if info.event == "Hangup" {
                self.last_hangup = Some(i);
            }
            if info.event == "BridgeEnter" && self.connected.is_none() {
                self.connected = Some(i);
            }
            frame.info = info;
            frame.role = role;
        }
        self.talk_ends = self.connected.and_then(|connected| {
            (connected + 1..self.frames.len())
                .find(|&i| self.frames[i].at_ms >= self.frames[i - 1].at_ms + 1000)
        });
    }

    /// When frame `index` is due, in call-time milliseconds after the Originate's answer, for
    /// an Originate whose agent may ring `ring_timeout_ms`.
    pub(crate) fn due_ms(&self, index: usize, ring_timeout_ms: u64) -> u64 {
        let at = self.frames[index].at_ms;
        match (self.ring_timeout_from, self.recorded.timeout_ms) {
            (Some(from), Some(recorded)) if index >= from => {
                let before = from.checked_sub(1).map_or(0, |i| self.frames[i].at_ms);
                (at + ring_timeout_ms).saturating_sub(recorded).max(before)
            }
            _ => at,
        }
    }
}

/// Finds what the recorded call used: from the Originate's headers and the call's frames.
fn recorded_values(originate: &[u8], call: &[RecordedFrame]) -> Recorded {
    let get = |key: &str| transcript::header(originate, key).map(str::to_owned);
    let requested_channel = get("Channel").unwrap_or_default();
    let agent_dial = requested_channel
        .split_once('/')
        .map(|(_, r)| r.to_owned())
        .unwrap_or_default();
    let mut variables = Vec::new();
    for (k, v) in transcript::lines(originate) {
        if k == "Variable" {
            variables.extend(v.split(',').filter_map(|p| p.split_once('=')));
        }
    }
    let variable = |name: &str| {
        variables
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    };
    let newchannels: Vec<&RecordedFrame> = call
        .iter()
        .filter(|f| f.bytes.starts_with(b"Event: Newchannel\r\n"))
        .collect();
    let channel_of = |i: usize, key: &str| {
        newchannels
            .get(i)
            .and_then(|f| transcript::header(f.bytes, key))
            .map(str::to_owned)
    };
    Recorded {
        requested_channel,
        agent_dial,
        callee: get("Exten").unwrap_or_default(),
        context: get("Context").unwrap_or_default(),
        caller_id: get("CallerID"),
        contact: variable("C2D_CONTACT_REF"),
        recording: variable("C2D_RECORDING_REF"),
        timeout_ms: get("Timeout").and_then(|t| t.parse().ok()),
        agent_channel: channel_of(0, "Channel"),
        agent_uniqueid: channel_of(0, "Uniqueid").unwrap_or_else(|| "<unknown>".into()),
        carrier_channel: channel_of(1, "Channel"),
        carrier_uniqueid: channel_of(1, "Uniqueid"),
        bridge_id: call
            .iter()
            .find(|f| f.bytes.starts_with(b"Event: BridgeCreate\r\n"))
            .and_then(|f| transcript::header(f.bytes, "BridgeUniqueid"))
            .map(str::to_owned),
    }
}

/// Every template the simulator plays.
#[derive(Debug)]
pub(crate) struct Templates {
    outcomes: Vec<(Outcome, Template)>,
    /// An answered agent with no dialplan target (`f8-no-exten-no-app`).
    pub(crate) no_dialplan: Template,
    /// One-leg calls (`Local/<callee>@c2d-single` into `c2d-direct`): the callee answers
    /// (`i_one_leg_success`), the callee is busy (`i2_one_leg_callee_busy`).
    pub(crate) one_leg_answered: Template,
    pub(crate) one_leg_busy: Template,
    /// Two-leg calls cut on the real Asterisk: the host's `Hangup` while the agent's phone
    /// rings (`k_two_leg_hangup_ringing`) and once connected
    /// (`k2_two_leg_hangup_connected`), once the agent answered while the callee's phone
    /// rings (`k4_two_leg_hangup_dialling`); Dial's `S()` at the max duration
    /// (`k3_two_leg_max_duration`).
    pub(crate) cut_ringing: Template,
    pub(crate) cut_dialling: Template,
    pub(crate) cut_connected: Template,
    pub(crate) max_duration: Template,
    /// One-leg calls cut on the kit: the host's `Hangup` while the callee's phone rings
    /// (`j_hangup_ringing`) and once connected (`j2_hangup_connected`); Dial's `S()`
    /// (`j3_max_duration`).
    pub(crate) one_leg_cut_ringing: Template,
    pub(crate) one_leg_cut_connected: Template,
    pub(crate) one_leg_max_duration: Template,
}

/// The `ActionID` (= `ChannelId`) of the recorded one-leg and cut Originates: the host's
/// for contact `crm-42`.
const ONE_LEG_ACTION_ID: &str = "c2d-oacxmqkrhrsl63ywyav6eykpgq";

impl Templates {
    fn build() -> Self {
        use crate::transcript::*;
        let sources = [
            (Outcome::Answered, A_SUCCESS, "orig-a_success"),
            (
                Outcome::AgentNoAnswer,
                B_AGENT_NOANSWER,
                "orig-b_agent_noanswer",
            ),
            (Outcome::AgentBusy, C_AGENT_BUSY, "orig-c_agent_busy"),
            (
                Outcome::AgentUnavailable,
                F_ORIGINATE_ERRORS,
                "f6-unknown-endpoint-async",
            ),
            (Outcome::CalleeBusy, D_CALLEE_BUSY, "orig-d_callee_busy"),
            (
                Outcome::CalleeNotFound,
                D2_CALLEE_NOTFOUND,
                "orig-d2_callee_notfound",
            ),
            (
                Outcome::CalleeDeclines,
                D3_CALLEE_DECLINE,
                "orig-d3_callee_decline",
            ),
            (
                Outcome::CalleeNoAnswer,
                D4_CALLEE_NOANSWER,
                "orig-d4_callee_noanswer",
            ),
            (
                Outcome::AgentHangsUp,
                D5_AGENT_HANGS_UP,
                "orig-d5_agent_hangs_up_while_callee_rings",
            ),
        ];
        let outcomes = sources
            .into_iter()
            .map(|(outcome, case, id)| {
                let mut template = Template::build(case, id);
                if outcome == Outcome::AgentNoAnswer {
                    // The agent's Hangup (cause 19) comes when the Originate Timeout expires.
                    template.ring_timeout_from = template.last_hangup;
                }
                (outcome, template)
            })
            .collect();
        Self {
            outcomes,
            no_dialplan: Template::build(F_ORIGINATE_ERRORS, "f8-no-exten-no-app"),
            one_leg_answered: Template::build(I_ONE_LEG_SUCCESS, ONE_LEG_ACTION_ID),
            one_leg_busy: Template::build(I2_ONE_LEG_CALLEE_BUSY, ONE_LEG_ACTION_ID),
            cut_ringing: Template::build_cut(K_TWO_LEG_HANGUP_RINGING, ONE_LEG_ACTION_ID),
            cut_connected: Template::build_cut(K2_TWO_LEG_HANGUP_CONNECTED, ONE_LEG_ACTION_ID),
            cut_dialling: Template::build_cut(K4_TWO_LEG_HANGUP_DIALLING, ONE_LEG_ACTION_ID),
            max_duration: Template::build_cut(K3_TWO_LEG_MAX_DURATION, ONE_LEG_ACTION_ID),
            one_leg_cut_ringing: Template::build_cut(J_HANGUP_RINGING, ONE_LEG_ACTION_ID),
            one_leg_cut_connected: Template::build_cut(J2_HANGUP_CONNECTED, ONE_LEG_ACTION_ID),
            one_leg_max_duration: Template::build_cut(J3_MAX_DURATION, ONE_LEG_ACTION_ID),
        }
    }

    /// The template of `outcome`.
    pub(crate) fn outcome(&self, outcome: Outcome) -> &Template {
        self.outcomes
            .iter()
            .find(|(o, _)| *o == outcome)
            .map(|(_, t)| t)
            .expect("every outcome has a template")
    }
}

/// The templates, built from the embedded transcripts on first use.
pub(crate) fn templates() -> &'static Templates {
    static TEMPLATES: OnceLock<Templates> = OnceLock::new();
    TEMPLATES.get_or_init(Templates::build)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(t: &Template) -> Vec<(String, Role)> {
        t.frames
            .iter()
            .filter(|f| f.role != Role::Plain)
            .map(|f| (f.info.event.clone(), f.role))
            .collect()
    }

    #[test]
    fn answered_call_is_classified() {
        let t = templates().outcome(Outcome::Answered);
        assert_eq!(
            t.recorded.agent_channel.as_deref(),
            Some("PJSIP/1001-00000000")
        );
        assert_eq!(t.recorded.agent_uniqueid, "c2d-a_success-7244a9c1");
        assert_eq!(t.recorded.carrier_uniqueid.as_deref(), Some("1795757651.1"));
        assert_eq!(t.recorded.contact.as_deref(), Some("crm-42"));
        assert_eq!(t.recorded.recording.as_deref(), Some("rec-abc"));
        assert_eq!(t.recorded.caller_id.as_deref(), Some("27820001234"));
        let r = |e: &str, role| (e.to_owned(), role);
        assert_eq!(
            roles(t),
            [
                r("VarSet", Role::OriginateVariable),
                r("VarSet", Role::OriginateVariable),
                r("NewCallerid", Role::CreationCallerId),
                r("NewConnectedLine", Role::CreationCallerId),
                r("OriginateResponse", Role::OriginateResponse),
                r("Newexten", Role::SetCallerId),
                r("VarSet", Role::Recording),
                r("MixMonitorStart", Role::Recording),
            ]
        );
        assert_eq!(t.variables_after, Some(1));
        let last = t.last_hangup.unwrap();
        assert_eq!(last, t.frames.len() - 1);
        assert_eq!(t.frames[last].at_ms, 9571 - 552);
        assert!(t.frames[..5].iter().all(|f| !f.info.after_set_caller_id));
        assert!(t.frames[last].info.after_set_caller_id);
    }

    #[test]
    fn every_template_builds() {
        let all = templates();
        for outcome in Outcome::ALL {
            let t = all.outcome(outcome);
            assert!(!t.frames.is_empty(), "{outcome}");
            assert_eq!(
                t.recording_start.is_some(),
                !outcome.is_agent_side(),
                "{outcome}: recorded only once the agent answered"
            );
        }
        let unavailable = all.outcome(Outcome::AgentUnavailable);
        assert_eq!(unavailable.frames.len(), 1);
        assert_eq!(unavailable.recorded.agent_uniqueid, "<unknown>");
        assert_eq!(all.no_dialplan.frames.len(), 15);
        assert_eq!(all.no_dialplan.variables_after, Some(1));
    }

    #[test]
    fn cut_templates_start_after_the_cut() {
        let all = templates();
        let first = |t: &Template| {
            let f = &t.frames[t.cut_from.expect("a cut")];
            let variable = f.info.variable.clone().unwrap_or_default();
            (f.info.event.clone(), variable)
        };
        let e = |event: &str, variable: &str| (event.to_owned(), variable.to_owned());
        assert_eq!(first(&all.cut_ringing), e("DialEnd", ""));
        assert_eq!(first(&all.cut_dialling), e("DialEnd", ""));
        assert_eq!(first(&all.cut_connected), e("VarSet", "BRIDGEPEER"));
        assert_eq!(first(&all.max_duration), e("VarSet", "BRIDGEPEER"));
        assert_eq!(first(&all.one_leg_cut_ringing), e("DialEnd", ""));
        // Dial's S(3): 3 s after the callee answered.
        for t in [&all.max_duration, &all.one_leg_max_duration] {
            let talk = t.frames[t.cut_from.unwrap()].at_ms - t.frames[t.connected.unwrap()].at_ms;
            assert!((2_900..3_100).contains(&talk), "{}: {talk} ms", t.case);
        }
        // Each cut ends with a Hangup, after which the recording is complete.
        for t in [&all.cut_ringing, &all.cut_dialling, &all.cut_connected] {
            assert!(t.last_hangup.unwrap() >= t.cut_from.unwrap(), "{}", t.case);
        }
        // The answered template's talk: its first frame a second or more after the bridge
        // (an RTCP report, 3.5 s on).
        let answered = all.outcome(Outcome::Answered);
        let end = &answered.frames[answered.talk_ends.unwrap()];
        let connected = &answered.frames[answered.connected.unwrap()];
        assert_eq!(end.info.event, "RTCPSent");
        assert_eq!(end.at_ms - connected.at_ms, 3_493);
    }

    #[test]
    fn agent_ring_time_follows_the_originate_timeout() {
        let t = templates().outcome(Outcome::AgentNoAnswer);
        let from = t.ring_timeout_from.unwrap();
        assert_eq!(t.recorded.timeout_ms, Some(10_000));
        assert_eq!(t.due_ms(from, 10_000), t.frames[from].at_ms);
        assert_eq!(t.due_ms(from, 20_000), t.frames[from].at_ms + 10_000);
        assert_eq!(t.due_ms(from - 1, 20_000), t.frames[from - 1].at_ms);
        // A tiny timeout never moves a frame before the one it follows.
        assert!(t.due_ms(from, 1) >= t.frames[from - 1].at_ms);
        assert!(t.due_ms(from, 1) < 10);
    }
}
