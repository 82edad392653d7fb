//! A call that an agent's softphone starts by sending an INVITE to extension `c2d`: the
//! dialplan of `core/tests/fixtures/agi/extensions-agi.conf` runs
//! `AGI(agi://<fastagi>/click2dial)`, then dials `C2D_CALLEE` when the service set
//! `C2D_DECISION=dial` and `C2D_CALLEE` matches `^[0-9]{10,11}$`, else hangs the caller up
//! with `C2D_REJECT_CAUSE` (21 when unset).
//!
//! AMI shows what the recorded FastAGI calls show (`core/tests/fixtures/ami/fastagi/`), with
//! the new call's values in place of the recorded ones: the agent's channel and the dialplan
//! up to `AGI` at once; an `AGIExecStart`, `AGIExecEnd` pair (with a `VarSet` for
//! `SET VARIABLE`) per command the service sends; then, on the recorded timing scaled by
//! [`super::Config::time_scale`], the rest of `a_valid_dial` (dial: the agent's channel dials
//! the carrier, answered, bridged, the agent hangs up; the recording is written to
//! `<recordings_dir>/<C2D_RECORDING_REF>.wav`), of `b_reject_invalid_callee` (rejected, also
//! when the service is down — `AGISTATUS=FAILURE` — as `f_service_down`), or of
//! `d_caller_cancel_service_idle` (the caller cancelled: `HangupRequest` cause 127 at once,
//! `Hangup` when the service closes). Dialled calls are always answered: other outcomes were
//! not recorded over FastAGI.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};
use tracing::{info, warn};

use crate::transcript::{lines, split_frames, summary_offsets};

use super::call::{is_safe_file_name, wait_until};
use super::fastagi::{environment, Channel, Session};
use super::hub::{Bytes, Shared};
use super::render::{as_recorded, now_secs_micros, substitute};
use super::template::RECORDED_MONITOR_DIR;
use super::wav::{Recorder, RATE};

/// How long the simulated Asterisk waits for a FastAGI connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A bound on a session, so a silent service cannot hold a test forever (Asterisk has none).
const SESSION_LIMIT: Duration = Duration::from_secs(60);

/// A softphone's INVITE to the click-to-dial extension.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Invite {
    /// The calling endpoint (`1002`): the channel's caller ID number.
    pub endpoint: String,
    /// SIP headers, e.g. `("X-Teleforge-Callee", "0820001234")`.
    pub headers: Vec<(String, String)>,
    /// The caller cancels while the service's command with this index (from 0) is in flight:
    /// Asterisk sends `HANGUP` before that command's reply.
    pub cancel_at: Option<usize>,
}

/// What became of an INVITE, known once the FastAGI session is over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InviteOutcome {
    /// The dialplan dials `C2D_CALLEE`; the call plays on. The agent channel's `Uniqueid`.
    Dial(String),
    /// The caller is hung up with this Q.850 cause; `C2D_REJECT_REASON`, if set.
    Reject {
        /// The cause.
        cause: u16,
        /// `C2D_REJECT_REASON`.
        reason: Option<String>,
    },
    /// The caller hung up during the AGI (or the service sent `HANGUP`). Its `Uniqueid`.
    Cancelled(String),
    /// No FastAGI service could be reached (`AGISTATUS=FAILURE`); the caller gets cause 21.
    AgiFailed,
}

impl std::fmt::Display for InviteOutcome {
    /// The control protocol's answer line (without `\n`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dial(id) => write!(f, "dial {id}"),
            Self::Reject { cause, reason } => write!(
                f,
                "reject cause={cause} reason={}",
                reason
                    .as_deref()
                    .filter(|r| !r.is_empty())
                    .unwrap_or("-")
                    .replace(' ', "%20")
            ),
            Self::Cancelled(id) => write!(f, "cancelled {id}"),
            Self::AgiFailed => f.write_str("agi-failed"),
        }
    }
}

/// One recorded frame: offset (ms) and exact lines.
#[derive(Clone, Debug)]
struct Frame {
    at_ms: u64,
    lines: Vec<(String, String)>,
}

impl Frame {
    fn get(&self, key: &str) -> Option<&str> {
        self.lines
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    fn event(&self) -> &str {
        self.get("Event").unwrap_or_default()
    }
}

/// The parts of a recorded FastAGI call.
#[derive(Debug)]
struct Recorded {
    /// From `Newchannel` to the `AGI` `Newexten`.
    pre: Vec<Frame>,
    /// The first `AGIExecStart`, `AGIExecEnd`, and a `VarSet` made by `SET VARIABLE`.
    exec_start: Option<Frame>,
    exec_end: Option<Frame>,
    var_set: Option<Frame>,
    /// `HangupRequest` of a caller who cancelled.
    hangup_request: Option<Frame>,
    /// From `VarSet AGISTATUS` to the last `Hangup`, offsets relative to the first.
    post: Vec<Frame>,
}

macro_rules! fastagi_case {
    ($name:literal) => {
        (
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../core/tests/fixtures/ami/fastagi/",
                $name,
                ".ami"
            ))
            .as_slice(),
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../core/tests/fixtures/ami/fastagi/",
                $name,
                ".ami-summary.txt"
            )),
        )
    };
}

impl Recorded {
    fn parse((server, summary): (&'static [u8], &'static str)) -> Self {
        let frames = split_frames(server, true);
        // The summary's first line is the banner's.
        let offsets: Vec<u64> = summary_offsets(summary).into_iter().skip(1).collect();
        assert_eq!(frames.len(), offsets.len(), "one summary line per frame");
        let frames: Vec<Frame> = frames
            .into_iter()
            .zip(offsets)
            .map(|(bytes, at_ms)| Frame {
                at_ms,
                lines: lines(bytes)
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            })
            .filter(|f| f.get("Event").is_some() && f.event() != "FullyBooted")
            .collect();
        let agi = frames
            .iter()
            .position(|f| f.event() == "Newexten" && f.get("Application") == Some("AGI"))
            .expect("the AGI runs");
        let status = frames
            .iter()
            .position(|f| f.event() == "VarSet" && f.get("Variable") == Some("AGISTATUS"))
            .expect("AGISTATUS is set");
        let last = frames
            .iter()
            .rposition(|f| f.event() == "Hangup")
            .expect("a hangup");
        let during = &frames[agi + 1..status];
        let find = |p: &dyn Fn(&Frame) -> bool| during.iter().find(|f| p(f)).cloned();
        let base = frames[status].at_ms;
        Self {
            pre: frames[..=agi].to_vec(),
            exec_start: find(&|f| f.event() == "AGIExecStart"),
            exec_end: find(&|f| f.event() == "AGIExecEnd"),
            var_set: find(&|f| f.event() == "VarSet"),
            hangup_request: find(&|f| f.event() == "HangupRequest"),
            post: frames[status..=last]
                .iter()
                .map(|f| Frame {
                    at_ms: f.at_ms - base,
                    ..f.clone()
                })
                .collect(),
        }
    }
}

struct Templates {
    dial: Recorded,
    reject: Recorded,
    cancel: Recorded,
}

fn templates() -> &'static Templates {
    static T: OnceLock<Templates> = OnceLock::new();
    T.get_or_init(|| Templates {
        dial: Recorded::parse(fastagi_case!("a_valid_dial")),
        reject: Recorded::parse(fastagi_case!("b_reject_invalid_callee")),
        cancel: Recorded::parse(fastagi_case!("d_caller_cancel_service_idle")),
    })
}

/// Q.850 cause texts as Asterisk's `ast_cause2str` gives them.
fn cause_text(cause: u16) -> &'static str {
    match cause {
        1 => "Unallocated (unassigned) number",
        16 => "Normal Clearing",
        17 => "User busy",
        18 => "No user responding",
        19 => "User alerting, no answer",
        21 => "Call Rejected",
        27 => "Destination out of order",
        34 => "Circuit/channel congestion",
        38 => "Network out of order",
        41 => "Temporary failure",
        42 => "Switching equipment congestion",
        127 => "Interworking, unspecified",
        _ => "Unknown",
    }
}

/// The recorded values of one case and the new call's, for substitution.
#[derive(Clone)]
struct Values {
    /// `(recorded, new)`, longest recorded first.
    pairs: Vec<(String, String)>,
    /// The channel's variables now: `ChanVariable: NAME=value` shows them.
    chan_vars: std::collections::HashMap<String, String>,
}

impl Values {
    fn new(mut pairs: Vec<(String, String)>) -> Self {
        pairs.retain(|(from, _)| !from.is_empty());
        pairs.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
        Self {
            pairs,
            chan_vars: std::collections::HashMap::new(),
        }
    }

    /// The same, with the channel's variables as they are now.
    fn with_vars(&self, vars: &std::collections::HashMap<String, String>) -> Self {
        Self {
            chan_vars: vars.clone(),
            ..self.clone()
        }
    }

    /// `NAME=value` with the variable's current value (empty when unset).
    fn chan_variable(&self, value: &str) -> String {
        let name = value.split_once('=').map_or(value, |(n, _)| n);
        format!(
            "{name}={}",
            self.chan_vars.get(name).map_or("", String::as_str)
        )
    }

    /// One pass over `value`: each recorded value becomes the new one.
    fn apply(&self, value: &str) -> String {
        substitute(value, &self.pairs)
    }
}

fn render(frame: &Frame, values: &Values, edit: impl Fn(&str, &str) -> Option<String>) -> Bytes {
    let mut out = String::new();
    for (key, value) in &frame.lines {
        let value = if let Some(v) = edit(key, value) {
            v
        } else if key == "ChanVariable" && frame.get("Uniqueid") == frame.get("Linkedid") {
            // The agent's channel (its Uniqueid is the call's Linkedid): its variables now.
            values.chan_variable(value)
        } else if key == "SentNTP" {
            now_secs_micros()
        } else if as_recorded(key) {
            value.clone()
        } else {
            values.apply(value)
        };
        out.push_str(&format!("{key}: {value}\r\n"));
    }
    out.push_str("\r\n");
    Bytes::from(out.into_bytes())
}

fn privilege(frame: &Frame) -> &str {
    frame.get("Privilege").unwrap_or_default()
}

/// The recorded values of the agent's channel in `t`.
fn channel_pairs(t: &Recorded, channel: &Channel) -> Vec<(String, String)> {
    let first = &t.pre[0];
    let name = first.get("Channel").unwrap_or_default();
    let uid = first.get("Uniqueid").unwrap_or_default();
    let endpoint = first.get("CallerIDNum").unwrap_or_default();
    vec![
        (name.to_owned(), channel.name.clone()),
        (uid.to_owned(), channel.uniqueid.clone()),
        (
            format!("Agent {endpoint}"),
            format!("Agent {}", channel.endpoint),
        ),
        (endpoint.to_owned(), channel.endpoint.clone()),
        (RECORDED_MONITOR_DIR.to_owned(), String::new()),
    ]
}

/// Plays one INVITE: the FastAGI session with the service at `fastagi`, then the dialplan.
pub(crate) async fn invite(
    shared: Arc<Shared>,
    fastagi: Option<SocketAddr>,
    invite: Invite,
) -> InviteOutcome {
    let guard = shared.begin_call();
    let channel = Channel {
        name: shared.ids.channel_name(&invite.endpoint),
        uniqueid: shared.ids.uniqueid(),
        endpoint: invite.endpoint.clone(),
        headers: invite.headers.clone(),
    };
    let t = templates();
    let dir = shared.recordings_dir.display().to_string();
    // The agent's channel had other names in each recorded case: all become this one.
    let mut base: Vec<(String, String)> = [&t.dial, &t.reject, &t.cancel]
        .into_iter()
        .flat_map(|r| channel_pairs(r, &channel))
        .collect();
    base.dedup();
    for pair in &mut base {
        if pair.0 == RECORDED_MONITOR_DIR {
            pair.1.clone_from(&dir);
        }
    }
    let values = Values::new(base.clone());
    for frame in &t.dial.pre {
        shared.broadcast(privilege(frame), render(frame, &values, |_, _| None));
    }
    let mut session = Session::new(channel.clone());
    let status = match fastagi {
        Some(addr) => run_session(&shared, addr, &mut session, invite.cancel_at, &values).await,
        None => "FAILURE",
    };
    let values = values.with_vars(&session.variables);
    let var = |name: &str| session.variables.get(name).cloned();
    let callee = var("C2D_CALLEE").unwrap_or_default();
    let dial = status == "SUCCESS"
        && var("C2D_DECISION").as_deref() == Some("dial")
        && (10..=11).contains(&callee.len())
        && callee.bytes().all(|b| b.is_ascii_digit());
    let outcome = if status == "HANGUP" {
        InviteOutcome::Cancelled(channel.uniqueid.clone())
    } else if dial {
        InviteOutcome::Dial(channel.uniqueid.clone())
    } else if status == "FAILURE" {
        InviteOutcome::AgiFailed
    } else {
        InviteOutcome::Reject {
            cause: var("C2D_REJECT_CAUSE")
                .and_then(|c| c.parse().ok())
                .unwrap_or(21),
            reason: var("C2D_REJECT_REASON"),
        }
    };
    info!(uniqueid = %channel.uniqueid, %outcome, "INVITE to c2d handled");
    let outbound = var("C2D_OUTBOUND_CID").unwrap_or_else(|| shared.config.outbound_cid.clone());
    let contact = var("C2D_CONTACT_REF").unwrap_or_default();
    let recording_ref = var("C2D_RECORDING_REF").unwrap_or_default();
    let post_shared = Arc::clone(&shared);
    let result = outcome.clone();
    tokio::spawn(async move {
        let _guard = guard;
        match result {
            InviteOutcome::Dial(_) => {
                let recorded = &t.dial.post;
                let carrier = recorded
                    .iter()
                    .find(|f| f.event() == "DialBegin")
                    .map(|f| {
                        (
                            f.get("DestChannel").unwrap_or_default().to_owned(),
                            f.get("DestUniqueid").unwrap_or_default().to_owned(),
                        )
                    })
                    .unwrap_or_default();
                let bridge = recorded
                    .iter()
                    .find_map(|f| f.get("BridgeUniqueid"))
                    .unwrap_or_default()
                    .to_owned();
                let mut pairs = base;
                pairs.extend([
                    (carrier.0, post_shared.ids.channel_name("carrier")),
                    (carrier.1, post_shared.ids.uniqueid()),
                    (bridge, post_shared.ids.uuid()),
                    ("0820001234".into(), callee.clone()),
                    ("27820001234".into(), outbound),
                    ("crm-77".into(), contact),
                    ("rec-a_valid_dial".into(), recording_ref.clone()),
                ]);
                let recording = Some(recording_ref).filter(|r| is_safe_file_name(r));
                let values = Values::new(pairs).with_vars(&session.variables);
                play_dial(&post_shared, recorded, &values, recording).await;
            }
            rejected @ (InviteOutcome::Reject { .. } | InviteOutcome::AgiFailed) => {
                // The recorded dialplan hangs up with 21 when the service left no cause.
                let cause = match rejected {
                    InviteOutcome::Reject { cause, .. } => cause,
                    _ => 21,
                };
                play_reject(
                    &post_shared,
                    &t.reject.post,
                    &values,
                    &session,
                    status,
                    cause,
                    &outbound,
                )
                .await;
            }
            InviteOutcome::Cancelled(_) => {
                let cause = if session.hung_up_by_service { 16 } else { 127 };
                play(&post_shared, &t.cancel.post, |frame| {
                    render(frame, &values, |key, value| match (frame.event(), key) {
                        ("Hangup", "Cause") => Some(cause.to_string()),
                        ("Hangup", "Cause-txt") => Some(cause_text(cause).to_owned()),
                        (_, "AppData") if value.starts_with("c2d hangup:") => Some(format!(
                            "c2d hangup: cause={cause} AGISTATUS=HANGUP DIALSTATUS="
                        )),
                        _ => None,
                    })
                })
                .await;
            }
        }
    });
    outcome
}

/// Runs the FastAGI session; returns `AGISTATUS`.
async fn run_session(
    shared: &Arc<Shared>,
    addr: SocketAddr,
    session: &mut Session,
    cancel_at: Option<usize>,
    values: &Values,
) -> &'static str {
    let Ok(Ok(stream)) = timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await else {
        return "FAILURE";
    };
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let thread = 139_932_789_704_384u64 + u64::from(rand_u16(shared));
    let env = environment(&session.channel, &addr.to_string(), "click2dial", thread);
    if write.write_all(&env).await.is_err() {
        return "FAILURE";
    }
    let t = templates();
    let deadline = Instant::now() + SESSION_LIMIT;
    let mut index = 0usize;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = tokio::time::timeout_at(deadline, reader.read_until(b'\n', &mut line)).await;
        let Ok(Ok(n)) = read else { break };
        if n == 0 || !line.ends_with(b"\n") {
            break;
        }
        let text = String::from_utf8_lossy(&line[..n - 1]).into_owned();
        let text = text.trim_end_matches('\r');
        if cancel_at == Some(index) && !session.dead {
            session.dead = true;
            if let Some(frame) = &t.cancel.hangup_request {
                shared.broadcast(privilege(frame), render(frame, values, |_, _| None));
            }
            if write.write_all(b"HANGUP\n").await.is_err() {
                break;
            }
        }
        index += 1;
        let before = values.with_vars(&session.variables);
        let answer = session.answer(text);
        let after = values.with_vars(&session.variables);
        let id = rand_u16(shared).to_string();
        if let Some(frame) = &t.dial.exec_start {
            shared.broadcast(
                privilege(frame),
                render(frame, &before, |key, _| match key {
                    "CommandId" => Some(id.clone()),
                    "Command" => Some(text.to_owned()),
                    _ => None,
                }),
            );
        }
        if let (Some(frame), Some((name, value))) = (&t.dial.var_set, &answer.set) {
            shared.broadcast(
                privilege(frame),
                render(frame, &after, |key, _| match key {
                    "Variable" => Some(name.clone()),
                    "Value" => Some(value.clone()),
                    _ => None,
                }),
            );
        }
        if let Some(frame) = &t.dial.exec_end {
            shared.broadcast(
                privilege(frame),
                render(frame, &after, |key, _| match key {
                    "CommandId" => Some(id.clone()),
                    "Command" => Some(text.to_owned()),
                    "ResultCode" => Some(answer.code.to_string()),
                    "Result" => Some(answer.result.to_owned()),
                    _ => None,
                }),
            );
        }
        if write.write_all(answer.bytes.as_bytes()).await.is_err() {
            break;
        }
    }
    // The AGI ends: Asterisk says HANGUP (AGISIGHUP) and closes.
    let _ = write.write_all(b"HANGUP\n").await;
    let _ = write.shutdown().await;
    if session.dead {
        "HANGUP"
    } else {
        "SUCCESS"
    }
}

fn rand_u16(shared: &Shared) -> u16 {
    let uuid = shared.ids.uuid();
    u16::from_str_radix(&uuid[..4], 16).unwrap_or(0)
}

/// Sends `frames` on their offsets from now.
async fn play(shared: &Arc<Shared>, frames: &[Frame], mut render: impl FnMut(&Frame) -> Bytes) {
    let start = Instant::now();
    let mut recorder = None;
    for frame in frames {
        wait_until(start + shared.scaled(frame.at_ms), &mut recorder).await;
        shared.broadcast(privilege(frame), render(frame));
    }
}

#[allow(clippy::too_many_arguments)]
async fn play_reject(
    shared: &Arc<Shared>,
    frames: &[Frame],
    values: &Values,
    session: &Session,
    status: &str,
    cause: u16,
    outbound: &str,
) {
    let var = |n: &str| session.variables.get(n).cloned().unwrap_or_default();
    let goto = "0?dial".to_owned();
    play(shared, frames, |frame| {
        render(frame, values, |key, value| match (frame.event(), key) {
            ("VarSet", "Value") if frame.get("Variable") == Some("AGISTATUS") => {
                Some(status.to_owned())
            }
            ("Hangup", "Cause") => Some(cause.to_string()),
            ("Hangup", "Cause-txt") => Some(cause_text(cause).to_owned()),
            ("Newexten", "AppData") => Some(match frame.get("Application") {
                Some("Hangup") => cause.to_string(),
                Some("GotoIf") => goto.clone(),
                _ if value.starts_with("AGISTATUS=") => format!(
                    "AGISTATUS={status} C2D_DECISION={} C2D_CALLEE={} CID={} REC={}",
                    var("C2D_DECISION"),
                    var("C2D_CALLEE"),
                    session
                        .variables
                        .get("C2D_OUTBOUND_CID")
                        .map_or(outbound, |v| v.as_str()),
                    var("C2D_RECORDING_REF"),
                ),
                _ if value.starts_with("c2d hangup:") => {
                    format!("c2d hangup: cause={cause} AGISTATUS={status} DIALSTATUS=")
                }
                _ => return None,
            }),
            _ => None,
        })
    })
    .await;
}

/// Plays the dialled call, writing its recording from `MixMonitorStart` to the last `Hangup`.
async fn play_dial(
    shared: &Arc<Shared>,
    frames: &[Frame],
    values: &Values,
    recording: Option<String>,
) {
    let start = Instant::now();
    let mut recorder: Option<Recorder> = None;
    let mixmonitor = frames
        .iter()
        .find(|f| f.event() == "MixMonitorStart")
        .map(|f| f.at_ms);
    let last = frames.len().saturating_sub(1);
    for (i, frame) in frames.iter().enumerate() {
        wait_until(start + shared.scaled(frame.at_ms), &mut recorder).await;
        if frame.event() == "MixMonitorStart" {
            if let Some(reference) = &recording {
                let path: PathBuf = shared.recordings_dir.join(format!("{reference}.wav"));
                match Recorder::create(&path, shared.config.time_scale) {
                    Ok(r) => recorder = Some(r),
                    Err(e) => {
                        warn!(path = %path.display(), error = %e, "cannot create the recording")
                    }
                }
            }
        }
        if i == last {
            if let (Some(r), Some(from)) = (recorder.take(), mixmonitor) {
                let samples = (frame.at_ms - from) * u64::from(RATE) / 1000;
                if let Err(e) = r.finish(samples) {
                    warn!(error = %e, "cannot complete the recording");
                }
            }
        }
        shared.broadcast(privilege(frame), render(frame, values, |_, _| None));
    }
}

/// Parses a control line: `invite <endpoint> [<Header>=<value>]… [cancel=<n>]`; values are
/// percent-decoded (`%20` for a space).
pub(crate) fn parse_invite(line: &str) -> Result<Invite, String> {
    let mut words = line.split_whitespace();
    match words.next() {
        Some("invite") => {}
        Some(other) => return Err(format!("unknown command {other:?}")),
        None => return Err("empty line".into()),
    }
    let endpoint = words.next().ok_or("invite needs an endpoint")?.to_owned();
    let mut invite = Invite {
        endpoint,
        ..Invite::default()
    };
    for word in words {
        let (name, value) = word
            .split_once('=')
            .ok_or_else(|| format!("{word:?} is not <name>=<value>"))?;
        if name == "cancel" {
            invite.cancel_at = Some(value.parse().map_err(|_| format!("bad cancel {value:?}"))?);
        } else {
            invite
                .headers
                .push((name.to_owned(), percent_decode(value)?));
        }
    }
    Ok(invite)
}

fn percent_decode(value: &str) -> Result<String, String> {
    let bytes = value.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad escape in {value:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{value:?} is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_split_where_the_agi_runs() {
        let t = templates();
        assert_eq!(t.dial.pre.len(), 4);
        assert!(
            t.dial.exec_start.is_some() && t.dial.exec_end.is_some() && t.dial.var_set.is_some()
        );
        assert_eq!(t.dial.post.first().map(Frame::event), Some("VarSet"));
        assert_eq!(t.dial.post.last().map(Frame::event), Some("Hangup"));
        assert!(t.cancel.hangup_request.is_some());
        assert_eq!(t.reject.post.len(), 7);
        assert_eq!(t.cancel.post.len(), 4);
    }

    #[test]
    fn control_lines() {
        let i =
            parse_invite("invite 1002 X-Teleforge-Callee=0820001234 X-A=a%20b cancel=2").unwrap();
        assert_eq!(i.endpoint, "1002");
        assert_eq!(
            i.headers,
            [
                ("X-Teleforge-Callee".to_owned(), "0820001234".to_owned()),
                ("X-A".into(), "a b".into())
            ]
        );
        assert_eq!(i.cancel_at, Some(2));
        assert!(parse_invite("call 1002").is_err());
        assert!(parse_invite("invite").is_err());
        assert!(parse_invite("invite 1002 novalue").is_err());
        assert_eq!(
            InviteOutcome::Reject {
                cause: 21,
                reason: Some("invalid_callee".into())
            }
            .to_string(),
            "reject cause=21 reason=invalid_callee"
        );
    }

    #[test]
    fn substitution_is_one_pass_and_whole_for_numbers() {
        let v = Values::new(vec![
            ("1002".into(), "1003".into()),
            ("PJSIP/1002-00000002".into(), "PJSIP/1003-00000009".into()),
        ]);
        assert_eq!(v.apply("PJSIP/1002-00000002"), "PJSIP/1003-00000009");
        assert_eq!(
            v.apply("create-call from 1002 callerid=1002"),
            "create-call from 1003 callerid=1003"
        );
        assert_eq!(v.apply("1002"), "1003");
        assert_eq!(v.apply("10020"), "10020");
    }
}
