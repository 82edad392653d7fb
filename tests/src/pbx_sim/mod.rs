//! The PBX simulator: an AMI server that speaks like the recorded Asterisk 22 transcripts.
//!
//! It answers `Login` (then `FullyBooted`), `Logoff` (`Goodbye`, then it closes), `Ping`
//! (`Ping: Pong` with a `Timestamp`), `CoreShowChannels` (the live channels, `channels.rs`),
//! `ListCommands` and `ShowDialPlan` (a PBX with the
//! click2dial kit loaded, `dialplan.rs`; [`Config::missing_contexts`] and
//! [`Config::denied_actions`] make it a misconfigured one) and `Originate` exactly as
//! Asterisk 22 does, with
//! Asterisk's errors for malformed Originates and for actions sent before logging in. Every
//! accepted Originate plays one recorded call: the frames of a transcript case, with the new
//! call's values put in place of the recorded ones (see `render.rs` for the table), on the
//! recorded timing scaled by [`Config::time_scale`]. Events go to every logged-in connection,
//! as Asterisk sends every event to every manager session allowed to read it.
//!
//! # Outcome of a call
//!
//! Exact overrides ([`Config::overrides`], `--outcome agent:1001=agent-busy`) win; then the
//! agent rules (an agent that never answers means the callee is never dialled); then the
//! callee rules; everything else is answered.
//!
//! | rule | outcome | events of |
//! |---|---|---|
//! | one-leg: `Local/<callee>@c2d-single` into `c2d-direct`/`s`, callee ends in `486` | `callee-busy` | `i2_one_leg_callee_busy` |
//! | one-leg, any other callee (outcomes not recorded one-leg play answered) | `answered` | `i_one_leg_success` |
//! | any other `Channel` technology than `PJSIP`, or agent `9999` | `agent-unavailable` | `f_originate_errors` (`f6`) |
//! | agent ends in `408` (e.g. `1408`) | `agent-no-answer` | `b_agent_noanswer` |
//! | agent ends in `486` (e.g. `1486`) | `agent-busy` | `c_agent_busy` |
//! | agent ends in `404` or `503` (e.g. `1404`, `1503`) | `agent-unavailable` | `f_originate_errors` (`f6`) |
//! | callee (`Exten`) ends in `486` | `callee-busy` | `d_callee_busy` |
//! | callee ends in `404` | `callee-not-found` | `d2_callee_notfound` |
//! | callee ends in `603` | `callee-declines` | `d3_callee_decline` |
//! | callee ends in `408` | `callee-no-answer` | `d4_callee_noanswer` |
//! | callee ends in `487` | `agent-hangs-up` (while the callee rings) | `d5_agent_hangs_up_while_callee_rings` |
//! | anything else | `answered` | `a_success` |
//!
//! The agent is the resource of `Channel: PJSIP/<agent>` (the part before any `@`).
//! An unavailable agent gets `OriginateResponse` `Response: Failure`, `Reason: 0`, no channel
//! events; its `Uniqueid` is the `ChannelId` when the Originate gave one (Asterisk's
//! `S_OR(channelid, "<unknown>")`, seen in `c_agent_busy`), else `<unknown>`. A `ChannelId`
//! that a live call already uses fails the same way. An Originate without `Priority` (no
//! dialplan target) or with `Application` gets the agent answered and hung up, as `f8`.
//!
//! # Timing
//!
//! Each frame is sent at its recorded offset from the Originate's answer, times
//! [`Config::time_scale`]. An agent who does not answer rings for the Originate's `Timeout`
//! (30 s when it is not positive). The 1 s delay before a failed login's answer is scaled too.
//!
//! # Calls from a softphone (FastAGI)
//!
//! [`Simulator::invite`] (or a line on the control listener, `--control`) plays a softphone's
//! INVITE to extension `c2d`: the simulator is then the Asterisk side of a FastAGI session
//! with [`Config::fastagi`] (`fastagi.rs`: the recorded environment, Asterisk's answers), and
//! runs the recorded dialplan on the variables the service set (`webrtc.rs`: AMI events as in
//! the recorded FastAGI calls, the recording written for a dialled call).
//!
//! # Recording
//!
//! At `MixMonitorStart` the simulator creates `<recordings_dir>/<C2D_RECORDING_REF>.wav`
//! (8 kHz mono 16-bit PCM, sizes 0 in the header), extends it as call time passes, and
//! completes it (exact length, RIFF sizes set) just before it sends the call's last `Hangup`.

mod action;
mod call;
mod channels;
mod control;
mod dialplan;
mod fastagi;
pub mod filter;
mod hub;
mod outcome;
mod render;
mod session;
mod single;
mod template;
mod wav;
mod webrtc;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tracing::warn;

pub use outcome::{Outcome, Override, ParseError, Party};
pub use webrtc::{Invite, InviteOutcome};

/// How the simulator behaves.
#[derive(Clone, Debug)]
pub struct Config {
    /// The manager user (`[c2d]` in the recorded `manager.conf`); compared ignoring case.
    pub username: String,
    /// Its secret.
    pub secret: String,
    /// Where recordings are written; created if missing.
    pub recordings_dir: PathBuf,
    /// Wall-clock seconds per second of recorded call time: 1.0 is real time, 0.01 plays a
    /// 10 s call in 100 ms. Must be positive.
    pub time_scale: f64,
    /// The dialplan contexts an Originate may target (`c2d-outbound` in the recording); any
    /// other gets "Extension does not exist.".
    pub contexts: Vec<String>,
    /// The callee leg's caller ID when the Originate has no `C2D_OUTBOUND_ID` variable (the
    /// recorded dialplan's global `C2D_OUTBOUND_CID`).
    pub outbound_cid: String,
    /// Exact-match outcome rules that win over the default ones.
    pub overrides: Vec<Override>,
    /// The FastAGI service that the `c2d` extension's `AGI(agi://…/click2dial)` reaches;
    /// `None`: every INVITE fails its AGI (`AGISTATUS=FAILURE`).
    pub fastagi: Option<std::net::SocketAddr>,
    /// Contexts of the kit's dialplan that are not loaded: `ShowDialPlan` says
    /// `Did not find context …` and an Originate into one gets "Extension does not exist.".
    pub missing_contexts: Vec<String>,
    /// Actions the manager user may not run: `ListCommands` leaves them out and they are
    /// answered `Permission denied`.
    pub denied_actions: Vec<String>,
    /// Callees (`Exten`) whose Originate is answered `Response: Error` (`Extension does not
    /// exist.`) after [`Config::refusal_delay`]: a PBX that refuses a call slowly.
    pub refused_callees: Vec<String>,
    /// How long such a refusal takes.
    pub refusal_delay: std::time::Duration,
    /// Callees (`Exten`) whose Originate is queued (and answered `Success`) only after
    /// [`Config::queue_delay`]: a PBX slow to answer.
    pub slow_callees: Vec<String>,
    /// How long such an Originate waits.
    pub queue_delay: std::time::Duration,
    /// The manager user's event filters (`manager.conf`'s `eventfilter(...)` lines, read by
    /// [`filter::read`]): only events that pass them reach its sessions. None: every event.
    pub event_filters: Vec<filter::EventFilter>,
}

impl Default for Config {
    /// The recorded setup: user `c2d`, secret `secret`, context `c2d-outbound`, real time.
    fn default() -> Self {
        Self {
            username: "c2d".into(),
            secret: "secret".into(),
            recordings_dir: PathBuf::from("recordings"),
            time_scale: 1.0,
            contexts: vec!["c2d-outbound".into()],
            outbound_cid: "27820001234".into(),
            overrides: Vec::new(),
            fastagi: None,
            missing_contexts: Vec::new(),
            denied_actions: Vec::new(),
            refused_callees: Vec::new(),
            refusal_delay: std::time::Duration::ZERO,
            slow_callees: Vec::new(),
            queue_delay: std::time::Duration::ZERO,
            event_filters: Vec::new(),
        }
    }
}

impl Config {
    /// The dialplan and manager user this configuration simulates.
    pub(crate) fn pbx(&self) -> dialplan::Pbx<'_> {
        dialplan::Pbx {
            missing_contexts: &self.missing_contexts,
            denied_actions: &self.denied_actions,
        }
    }
}

/// One simulated PBX: its connections share the counters and the calls in progress.
#[derive(Clone)]
pub struct Simulator {
    shared: Arc<hub::Shared>,
}

impl Simulator {
    /// A simulator for `config`; creates the recordings directory.
    ///
    /// # Errors
    /// When the directory cannot be created or `time_scale` is not positive.
    pub fn new(config: Config) -> io::Result<Self> {
        if !(config.time_scale.is_finite() && config.time_scale > 0.0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "time scale must be a positive number",
            ));
        }
        std::fs::create_dir_all(&config.recordings_dir)?;
        let dir = std::fs::canonicalize(&config.recordings_dir)?;
        Ok(Self {
            shared: Arc::new(hub::Shared::new(config, dir)),
        })
    }

    /// Accepts and serves connections until the task is dropped.
    ///
    /// # Errors
    /// Never in practice: accept errors are logged and retried.
    pub async fn serve(&self, listener: TcpListener) -> io::Result<()> {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(session::serve(Arc::clone(&self.shared), stream));
                }
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Serves the control protocol (see `tests/README.md`) until the task is dropped.
    pub async fn serve_control(&self, listener: TcpListener) {
        control::serve(Arc::clone(&self.shared), listener).await;
    }

    /// Plays a softphone's INVITE to the click-to-dial extension: the FastAGI session with
    /// [`Config::fastagi`], then the dialplan. Resolves when the session is over; a dialled
    /// call plays on (see [`Simulator::idle`]).
    pub async fn invite(&self, invite: Invite) -> InviteOutcome {
        let fastagi = self.shared.config.fastagi;
        webrtc::invite(Arc::clone(&self.shared), fastagi, invite).await
    }

    /// How many calls are in progress.
    pub fn active_calls(&self) -> usize {
        self.shared.active_calls()
    }

    /// Resolves once no call is in progress (every event of every call has been queued to
    /// the sessions).
    pub async fn idle(&self) {
        self.shared.idle().await;
    }

    /// The recordings directory, absolute.
    pub fn recordings_dir(&self) -> &std::path::Path {
        &self.shared.recordings_dir
    }
}

/// Runs a simulator for `config` on `listener` until the task is dropped.
///
/// # Errors
/// When the simulator cannot be set up (see [`Simulator::new`]).
pub async fn run(config: Config, listener: TcpListener) -> io::Result<()> {
    Simulator::new(config)?.serve(listener).await
}
