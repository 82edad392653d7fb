//! One simulated call: its template played on the call-time clock, its events delivered to
//! every logged-in session, its recording written.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, Notify};
use tokio::time::{sleep, Instant};
use tracing::{info, warn};

use super::action::{Originate, DIRECT_CONTEXT};
use super::hub::{Bytes, CallGuard, Shared};
use super::outcome::{self, Outcome};
use super::render::CallValues;
use super::single::{self, NewValues, OneLeg};
use super::template::{templates, Role, Template, TemplateFrame};
use super::wav::{Recorder, RATE};

/// How often a recording in progress is extended while nothing else happens.
const RECORDING_TICK: Duration = Duration::from_millis(50);

/// Asterisk's ring time when the Originate's `Timeout` is not positive.
const DEFAULT_TIMEOUT_MS: u64 = 30_000;

/// A call ready to run.
pub(crate) struct Call {
    template: &'static Template,
    /// What the rules chose (the template may still be the no-dialplan or failure one).
    pub(crate) outcome: Outcome,
    values: CallValues,
    /// Set for a one-leg call: how its recorded frames become this call's.
    one_leg: Option<OneLeg>,
    ring_timeout_ms: u64,
    /// Whether the kit's `[c2d-record]` runs MixMonitor: not when the Originate carries
    /// `C2D_RECORD=no` (a call created with `record: false`).
    record: bool,
    /// Where the answer of a synchronous Originate goes.
    reply: Option<oneshot::Sender<Vec<u8>>>,
    /// The Originate's `C2D_MAX_DURATION_SECS`, in milliseconds: Dial's `S()` cuts the call
    /// that long after the callee answered.
    max_duration_ms: Option<u64>,
    /// Notified by the AMI `Hangup` of the call's first channel.
    hangup: Arc<Notify>,
    /// Whether the Originate's outcome was sent (an `OriginateResponse`, a synchronous
    /// answer): a cut never sends a second one.
    answered: bool,
    _guard: CallGuard,
}

/// What ends a call before its template does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cut {
    /// The AMI `Hangup` of the call's first channel.
    Hangup,
    /// Dial's `S()`: the call's max duration since the callee answered.
    MaxDuration,
}

impl Call {
    /// Plans the call that `originate` starts: the outcome by the configured rules, the
    /// template, and the call's names and ids. `reply` is set for a synchronous Originate.
    pub(crate) fn new(
        shared: &Arc<Shared>,
        originate: &Originate,
        reply: Option<oneshot::Sender<Vec<u8>>>,
    ) -> Self {
        let all = templates();
        // A one-leg call: `Local/<callee>@c2d-single` into the kit's direct context.
        let one_leg_callee = single::callee_of(&originate.tech, &originate.resource).filter(|_| {
            originate.context == DIRECT_CONTEXT
                && originate.priority == 1
                && !originate.application
                && shared.config.pbx().has_context(single::SINGLE_CONTEXT)
        });
        let outcome = match &one_leg_callee {
            Some(callee) => {
                let chosen = outcome::choose_one_leg(&shared.config.overrides, callee);
                if outcome::one_leg_playable(chosen) {
                    chosen
                } else {
                    warn!(
                        outcome = %chosen,
                        "not recorded for one-leg calls: the callee answers"
                    );
                    Outcome::Answered
                }
            }
            None => outcome::choose(
                &shared.config.overrides,
                &originate.tech,
                &originate.resource,
                &originate.exten,
            ),
        };
        let mut guard = shared.begin_call();
        let duplicate = outcome != Outcome::AgentUnavailable
            && originate
                .channel_id
                .as_deref()
                .is_some_and(|id| !guard.claim_channel_id(id));
        let unavailable = outcome == Outcome::AgentUnavailable || duplicate;
        let template = if unavailable {
            all.outcome(Outcome::AgentUnavailable)
        } else if one_leg_callee.is_some() {
            if outcome == Outcome::CalleeBusy {
                &all.one_leg_busy
            } else {
                &all.one_leg_answered
            }
        } else if !outcome.is_agent_side() && (originate.priority == 0 || originate.application) {
            &all.no_dialplan
        } else {
            all.outcome(outcome)
        };
        // PJSIP names a channel after the endpoint: `PJSIP/0820001234@carrier` → `carrier`.
        let endpoint = originate
            .resource
            .rsplit_once('@')
            .map_or(originate.resource.as_str(), |(_, e)| e);
        let (agent_channel, agent_uniqueid) = if unavailable {
            let id = originate.channel_id.clone();
            (String::new(), id.unwrap_or_else(|| "<unknown>".into()))
        } else if one_leg_callee.is_some() {
            // The Local channel's name is made with the other substitutions (`single.rs`).
            let id = match &originate.channel_id {
                Some(id) => id.clone(),
                None => shared.ids.uniqueid(),
            };
            (String::new(), id)
        } else {
            let name = shared.ids.channel_name(endpoint);
            let id = match &originate.channel_id {
                Some(id) => {
                    shared.ids.skip_uniqueid();
                    id.clone()
                }
                None => shared.ids.uniqueid(),
            };
            (name, id)
        };
        let variable = |name: &str| {
            originate
                .variables
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let values = CallValues {
            action_id: originate.action_id.clone(),
            requested_channel: originate.channel.clone(),
            agent_dial: originate.resource.clone(),
            agent_channel,
            agent_uniqueid,
            callee: originate.exten.clone(),
            context: originate.context.clone(),
            caller_id: originate.caller_id.clone(),
            outbound: variable("C2D_OUTBOUND_ID")
                .unwrap_or_else(|| shared.config.outbound_cid.clone()),
            contact: variable("C2D_CONTACT_REF").filter(|v| !v.is_empty()),
            recording: variable("C2D_RECORDING_REF").filter(|v| !v.is_empty()),
            variables: originate.variables.clone(),
            recordings_dir: shared.recordings_dir.display().to_string(),
            carrier: None,
            bridge_id: None,
        };
        let one_leg = match (&one_leg_callee, unavailable) {
            (Some(callee), false) => Some(OneLeg::new(
                &shared.ids,
                template,
                &[
                    &all.one_leg_cut_ringing,
                    &all.one_leg_cut_connected,
                    &all.one_leg_max_duration,
                ],
                &NewValues {
                    action_id: values.action_id.clone(),
                    resource: &originate.resource,
                    callee,
                    uniqueid: &values.agent_uniqueid,
                    named: originate.channel_id.is_some(),
                    context: &originate.context,
                    // The Originate's CallerID is outbound_id on a one-leg call.
                    outbound: &variable("C2D_OUTBOUND_ID")
                        .or_else(|| originate.caller_id.clone())
                        .unwrap_or_else(|| shared.config.outbound_cid.clone()),
                    contact: values.contact.as_deref(),
                    recording: values.recording.as_deref(),
                    recordings_dir: &values.recordings_dir,
                },
            )),
            _ => None,
        };
        let ring_timeout_ms = u64::try_from(originate.timeout_ms)
            .ok()
            .filter(|&t| t > 0)
            .unwrap_or(DEFAULT_TIMEOUT_MS);
        if duplicate {
            warn!(
                channel_id = originate.channel_id.as_deref(),
                "a live call already has this ChannelId: the Originate fails"
            );
        }
        Self {
            template,
            outcome: if duplicate {
                Outcome::AgentUnavailable
            } else {
                outcome
            },
            values,
            one_leg,
            ring_timeout_ms,
            record: variable("C2D_RECORD").as_deref() != Some("no"),
            reply,
            max_duration_ms: variable("C2D_MAX_DURATION_SECS")
                .and_then(|v| v.parse::<u64>().ok())
                .map(|secs| secs * 1000),
            hangup: Arc::clone(&guard.hangup),
            answered: false,
            _guard: guard,
        }
    }

    /// Plays the call to its end, or to a cut (the AMI `Hangup`, the max duration) and then
    /// what Asterisk sent once it cut a call in that state.
    pub(crate) async fn run(mut self, shared: Arc<Shared>) {
        let t = self.template;
        let start = Instant::now();
        let mut recorder: Option<Recorder> = None;
        let mut connected_at = None;
        let mut cut = None;
        for (i, frame) in t.frames.iter().enumerate() {
            if self.skips(frame) {
                continue;
            }
            let limit = connected_at
                .zip(self.max_duration_ms)
                .map(|(at, ms): (Instant, u64)| at + shared.scaled(ms));
            // With a max duration, the phones talk until it (as the real-PBX tests' phones
            // that would hang up after 30 s): the recorded end of the talk is not played.
            let held = limit.is_some() && t.talk_ends.is_some_and(|end| i >= end);
            let due = start + shared.scaled(t.due_ms(i, self.ring_timeout_ms));
            let due = (!held).then_some(due);
            if let Some(c) = self.wait(due, limit, &mut recorder).await {
                cut = Some(c);
                break;
            }
            if Some(i) == t.connected {
                connected_at = Some(Instant::now());
            }
            self.emit(&shared, t, i, &mut recorder);
        }
        if let Some(cut) = cut {
            self.play_cut(&shared, cut, connected_at.is_some(), recorder)
                .await;
        }
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(synchronous_answer(self.values.action_id.as_deref(), false));
        }
        info!(
            action_id = self.values.action_id.as_deref(),
            uniqueid = %self.values.agent_uniqueid,
            outcome = %self.outcome,
            case = t.case,
            cut = ?cut,
            "call ended"
        );
    }

    /// Whether `frame` is left out of this call.
    fn skips(&self, frame: &TemplateFrame) -> bool {
        // A one-leg call replays its recorded variables and caller ID events.
        let generic = self.one_leg.is_none();
        match frame.role {
            Role::OriginateVariable => generic,
            Role::CreationCallerId => generic && self.values.caller_id.is_none(),
            Role::Recording => self.values.recording.is_none() || !self.record,
            _ => false,
        }
    }

    /// Waits until `due` (`None`: until a cut); a cut first (the `Hangup` action, the
    /// `limit` of the max duration) ends the wait.
    async fn wait(
        &self,
        due: Option<Instant>,
        limit: Option<Instant>,
        recorder: &mut Option<Recorder>,
    ) -> Option<Cut> {
        let until = match (due, limit) {
            (Some(due), Some(limit)) => Some(due.min(limit)),
            (due, limit) => due.or(limit),
        };
        let Some(until) = until else {
            self.hangup.notified().await;
            return Some(Cut::Hangup);
        };
        tokio::select! {
            () = wait_until(until, recorder) => (Some(until) == limit && limit != due).then_some(Cut::MaxDuration),
            () = self.hangup.notified() => Some(Cut::Hangup),
        }
    }

    /// Sends frame `i` of `t`: the answer of a synchronous Originate, the recording started
    /// or completed, the rendered event to every session.
    fn emit(
        &mut self,
        shared: &Arc<Shared>,
        t: &'static Template,
        i: usize,
        recorder: &mut Option<Recorder>,
    ) {
        let frame = &t.frames[i];
        if frame.role == Role::OriginateResponse {
            if std::mem::replace(&mut self.answered, true) {
                return;
            }
            if let Some(reply) = self.reply.take() {
                let success = frame
                    .lines
                    .iter()
                    .any(|(k, v)| k == "Response" && v == "Success");
                let _ = reply.send(synchronous_answer(
                    self.values.action_id.as_deref(),
                    success,
                ));
                return;
            }
        }
        if Some(i) == t.recording_start && self.record {
            *recorder = self.start_recording(shared);
        }
        if Some(i) == t.last_hangup {
            if let Some(recorder) = recorder.take() {
                // The template's call time; after a cut, the call time reached.
                let samples = if std::ptr::eq(t, self.template) {
                    self.recorded_samples()
                } else {
                    recorder.due_samples()
                };
                finish_recording(recorder, samples);
            }
        }
        let privilege = frame
            .lines
            .iter()
            .find(|(k, _)| k == "Privilege")
            .map_or("", |(_, v)| v.as_str());
        let rendered = match &self.one_leg {
            Some(one_leg) => one_leg.render(frame),
            None => self.values.render(&shared.ids, t, frame),
        };
        shared.broadcast(privilege, bytes(rendered));
        if self.one_leg.is_some() {
            return;
        }
        if Some(i) == t.variables_after {
            for event in self.values.render_variables(&shared.ids, t, frame) {
                shared.broadcast("dialplan,all", bytes(event));
            }
        }
        if frame.role == Role::SetCallerId {
            if let Some(event) = self.values.render_caller_id_change(&shared.ids, t, frame) {
                shared.broadcast("call,all", bytes(event));
            }
        }
    }

    /// Sends what the real Asterisk sent once it cut a call in the same state (the frames of
    /// the cut template from its `cut_from`, at their recorded spacing).
    async fn play_cut(
        &mut self,
        shared: &Arc<Shared>,
        cut: Cut,
        connected: bool,
        mut recorder: Option<Recorder>,
    ) {
        let t = cut_template(cut, self.one_leg.is_some(), connected, self.answered);
        let Some(from) = t.cut_from else { return };
        let start = Instant::now();
        for i in from..t.frames.len() {
            if self.skips(&t.frames[i]) {
                continue;
            }
            let due = start + shared.scaled(t.frames[i].at_ms - t.frames[from].at_ms);
            wait_until(due, &mut recorder).await;
            self.emit(shared, t, i, &mut recorder);
        }
        if let Some(recorder) = recorder {
            let samples = recorder.due_samples();
            finish_recording(recorder, samples);
        }
    }

    /// The samples of the template's call time from `MixMonitorStart` to the last `Hangup`.
    fn recorded_samples(&self) -> u64 {
        let t = self.template;
        let (Some(from), Some(to)) = (t.recording_start, t.last_hangup) else {
            return 0;
        };
        let call_ms = t.due_ms(to, self.ring_timeout_ms) - t.due_ms(from, self.ring_timeout_ms);
        call_ms * u64::from(RATE) / 1000
    }

    fn start_recording(&self, shared: &Shared) -> Option<Recorder> {
        let reference = self.values.recording.as_deref()?;
        if !is_safe_file_name(reference) {
            warn!(
                reference,
                "recording reference is not a plain file name: not written"
            );
            return None;
        }
        let path: PathBuf = shared.recordings_dir.join(format!("{reference}.wav"));
        match Recorder::create(&path, shared.config.time_scale) {
            Ok(recorder) => {
                info!(path = %path.display(), "recording started");
                Some(recorder)
            }
            Err(e) => {
                warn!(path = %path.display(), error = %e, "cannot create the recording");
                None
            }
        }
    }
}

/// Completes a recording of `samples`.
fn finish_recording(recorder: Recorder, samples: u64) {
    let path = recorder.path().to_owned();
    match recorder.finish(samples) {
        Ok(path) => info!(path = %path.display(), samples, "recording complete"),
        Err(e) => warn!(path = %path.display(), error = %e, "cannot complete the recording"),
    }
}

/// The recording of what Asterisk sent once it cut a call in that state: one-leg or two-leg;
/// connected (the callee answered), answered (the agent did: its `OriginateResponse` was
/// sent) or ringing. A one-leg call answered but not yet connected is played as connected
/// (not recorded).
fn cut_template(cut: Cut, one_leg: bool, connected: bool, answered: bool) -> &'static Template {
    let all = templates();
    match (cut, one_leg) {
        (Cut::MaxDuration, false) => &all.max_duration,
        (Cut::MaxDuration, true) => &all.one_leg_max_duration,
        (Cut::Hangup, false) if connected => &all.cut_connected,
        (Cut::Hangup, false) if answered => &all.cut_dialling,
        (Cut::Hangup, false) => &all.cut_ringing,
        (Cut::Hangup, true) if connected || answered => &all.one_leg_cut_connected,
        (Cut::Hangup, true) => &all.one_leg_cut_ringing,
    }
}

fn bytes(frame: Vec<u8>) -> Bytes {
    Bytes::from(frame)
}

/// Sleeps until `due`, extending a recording in progress on the way.
pub(crate) async fn wait_until(due: Instant, recorder: &mut Option<Recorder>) {
    loop {
        let now = Instant::now();
        if now >= due {
            return;
        }
        let step = if recorder.is_some() {
            (due - now).min(RECORDING_TICK)
        } else {
            due - now
        };
        sleep(step).await;
        if let Some(r) = recorder {
            if let Err(e) = r.catch_up() {
                warn!(path = %r.path().display(), error = %e, "recording stopped");
                *recorder = None;
            }
        }
    }
}

/// What a synchronous Originate answers once the outcome is known (no `OriginateResponse`
/// event is sent for it).
fn synchronous_answer(action_id: Option<&str>, success: bool) -> Vec<u8> {
    if success {
        super::session::response("Success", action_id, "Originate successfully queued")
    } else {
        super::session::response("Error", action_id, "Originate failed")
    }
}

/// Letters, digits and `. - _ ~ :`, not starting with a dot: the contract's reference
/// characters, and never a path.
pub(crate) fn is_safe_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~:-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert!(is_safe_file_name("rec-abc"));
        assert!(is_safe_file_name("a1b2c3d4e5f6g7h8i9j0k1l2m3"));
        for bad in ["", "../x", "a/b", ".hidden", "a b"] {
            assert!(!is_safe_file_name(bad), "{bad}");
        }
    }
}
