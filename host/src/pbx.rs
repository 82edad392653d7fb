//! The AMI client: a tokio driver around core's sans-IO codec and call state machine.
//!
//! One task owns the connection. It logs in and checks the PBX (core's
//! [`Preflight`]: the login, `FullyBooted`, the write privileges, the dialplan contexts and
//! the `tvc_` campaigns), then multiplexes
//! Originate requests, `Ping` keep-alives and incoming events; events are routed to each
//! call's [`CallTracker`] by `Linkedid` (`ActionID` for `OriginateResponse`; the Originate's
//! `ActionID` is its `ChannelId`), and every step of progress becomes a notification.
//!
//! When the connection is lost, calls in flight end with `failed`/`pbx_error`: their
//! channels may live on in Asterisk, but the events that would tell their outcome are gone,
//! and a notification that guessed would be worse than one that says so. The client then
//! reconnects with a doubling backoff (capped at `ami.max_backoff_secs`, back to its start
//! after every login that passed the check) and logs in again.
//!
//! A PBX that fails the check is `Misconfigured`, with a sentence per problem that says how
//! to fix it, logged once per login. A refused login, a missing `FullyBooted` or a missing
//! privilege ends the session (the next login checks again); a missing context keeps it,
//! and the dialplan part runs again every [`RECHECK_MISCONFIGURED`] (every ping interval
//! once ready, which also refreshes the campaigns), so a `dialplan reload` makes the host
//! ready without a restart.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use click2dial_core::ami::{
    Action, Checks, ContextCheck, Decoder, Frame, Kind, Message, Outcome, Ping, Preflight,
    ResponseStatus, MAX_MESSAGE_LEN,
};
use click2dial_core::call::{CallTracker, ChannelEvent, Mode, Progress};
use click2dial_core::json::{self, Event, Notification as NotificationJson};
use click2dial_core::originate::{write_originate, OriginateCall};
use click2dial_core::time::Timestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit};

use crate::metrics::Metrics;
use crate::notify::{Notification, Notifier};

/// Where and how to log in.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `host:port`
    pub address: String,
    /// `manager.conf` user.
    pub username: String,
    /// Its secret.
    pub secret: String,
    /// Keep-alive interval.
    pub ping_interval: Duration,
    /// Longest reconnection delay.
    pub max_backoff: Duration,
    /// Dialplan names and ring timeout of every Originate.
    pub dialplan: crate::config::Dialplan,
    /// The contexts the login check asks the PBX for.
    pub contexts: Vec<crate::config::PbxContext>,
}

/// How many `tvc_` campaigns the host keeps; with more, unknown ones are let through (the
/// dialplan refuses them) and a warning says so.
pub const MAX_CAMPAIGNS: usize = 256;

/// How long `FullyBooted` and every answer of the check may take.
const CHECK_WITHIN: Duration = Duration::from_secs(5);

/// How often the dialplan is checked again while it is missing something.
pub const RECHECK_MISCONFIGURED: Duration = Duration::from_secs(5);

/// Everything a notification carries besides the event itself. Stored in Redis before the
/// Originate is sent, so every host can follow the call (see [`crate::call_store`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CallRecord {
    /// `agent` equals `callee`.
    pub single_leg: bool,
    /// The agent's phone started the call (FastAGI); its channel's `Uniqueid` is the key.
    #[serde(default)]
    pub agent_initiated: bool,
    /// The id of the API key that owns the call (`[fastagi] owner_key` for a softphone's);
    /// only that key reads its events and recording.
    #[serde(default)]
    pub owner: String,
    /// Contact reference in use.
    pub contact_ref: String,
    /// Agent (or callee for a one-leg call).
    pub agent: String,
    /// Callee, E.164.
    pub callee_e164: String,
    /// Caller ID as given.
    pub outbound_id: String,
    /// Recording reference.
    pub recording_ref: String,
    /// Recording URL.
    pub recording_url: String,
    /// The per-call Redis list.
    pub notifications_key: String,
}

impl CallRecord {
    /// How the call's tracker follows it.
    pub fn mode(&self) -> Mode {
        if self.agent_initiated {
            Mode::AgentInitiated
        } else if self.single_leg {
            Mode::SingleLeg
        } else {
            Mode::TwoLeg
        }
    }
}

/// An Originate to send, with the call it starts.
#[derive(Debug)]
pub struct OriginateRequest {
    /// `ChannelId`, also used as `ActionID`.
    pub channel_id: String,
    /// Two legs, or one.
    pub mode: Mode,
    /// The callee as the client sent it.
    pub callee: String,
    /// The call's values, for the Originate and the notifications.
    pub record: CallRecord,
    /// The call's place under `limits.max_calls_in_flight`, released when the call is over.
    pub slot: Option<OwnedSemaphorePermit>,
}

/// Why an Originate was not queued.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OriginateError {
    /// Not logged in to the PBX; nothing was sent.
    #[error("the PBX is not connected")]
    NotConnected,
    /// Asterisk answered `Response: Error`.
    #[error("the PBX refused the originate: {0}")]
    Refused(String),
    /// The action could not be written (a value the codec refuses).
    #[error("the originate could not be encoded: {0}")]
    Encode(String),
}

/// Connection state, as `/readyz` and the create-call handler see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Logged in, booted, and the check passed.
    Ready,
    /// Connecting, logging in, or waiting to retry; why.
    Down(Arc<str>),
    /// The PBX answers but cannot take calls as configured; what to fix.
    Misconfigured(Arc<[Reason]>),
}

/// One problem of a misconfigured PBX.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reason {
    /// Stable machine code (`core::ami::ProblemCode`).
    pub code: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// The campaigns the PBX knows (the extensions of `[dialplan] tvc_context`).
#[derive(Clone, Debug, Default)]
struct KnownCampaigns {
    /// `None` until a check has read the context.
    names: Option<HashSet<String>>,
    /// More than [`MAX_CAMPAIGNS`]: the set is incomplete.
    overflowed: bool,
}

enum Command {
    Originate {
        request: Box<OriginateRequest>,
        reply: oneshot::Sender<Result<(), OriginateError>>,
    },
    /// Follow a call the PBX started itself (FastAGI): nothing to send.
    Follow {
        request: Box<OriginateRequest>,
        reply: oneshot::Sender<Result<(), OriginateError>>,
    },
}

/// Handle to the AMI task.
#[derive(Clone, Debug)]
pub struct Pbx {
    tx: mpsc::Sender<Command>,
    status: watch::Receiver<Status>,
    /// Recording references of the calls this client follows.
    live_recordings: LiveRecordings,
    campaigns: Arc<RwLock<KnownCampaigns>>,
    tvc_context: Arc<str>,
}

/// Recording references of calls in flight (their recording is not complete yet).
type LiveRecordings = Arc<Mutex<HashSet<String>>>;

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

impl Pbx {
    /// Starts the AMI task.
    pub fn start(
        settings: Settings,
        notifier: Notifier,
        metrics: Metrics,
        call_store: Option<crate::call_store::CallStore>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(1024);
        let (status_tx, status) = watch::channel(Status::Down("connecting to the PBX".into()));
        let (adopt_tx, adopt_rx) = mpsc::unbounded_channel();
        let live_recordings = LiveRecordings::default();
        let campaigns = Arc::new(RwLock::new(KnownCampaigns::default()));
        let tvc_context: Arc<str> = settings.dialplan.tvc_context.as_str().into();
        let driver = Driver {
            campaigns: campaigns.clone(),
            epoch: Instant::now(),
            session_passed: false,
            recheck_now: false,
            settings,
            notifier,
            metrics,
            live_recordings: live_recordings.clone(),
            logins: 0,
            calls: HashMap::new(),
            adopting: HashMap::new(),
            adopt_tx,
            call_store,
        };
        tokio::spawn(run(driver, rx, adopt_rx, status_tx));
        Self {
            tx,
            status,
            live_recordings,
            campaigns,
            tvc_context,
        }
    }

    /// The connection state now.
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// Why no call can be placed now (a sentence for the client), or `None` when ready.
    pub fn unavailable(&self) -> Option<String> {
        match &*self.status.borrow() {
            Status::Ready => None,
            Status::Down(why) => Some(format!(
                "the PBX is not reachable ({why}); nothing was dialled"
            )),
            Status::Misconfigured(reasons) => Some(format!(
                "the PBX cannot take calls: {}; nothing was dialled",
                reasons
                    .iter()
                    .map(|r| r.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
        }
    }

    /// The campaign context when the PBX is known not to have `campaign` there; `None`
    /// when it has it, or when that cannot be known (not checked yet, too many campaigns).
    pub fn unknown_campaign(&self, campaign: &str) -> Option<&str> {
        let known = self.campaigns.read().ok()?;
        let names = known.names.as_ref()?;
        (!known.overflowed && !names.contains(campaign)).then_some(&*self.tvc_context)
    }

    /// Whether `recording_ref` belongs to a call in flight that this client follows: its
    /// recording has not been reported complete (`recording_ready`) yet.
    pub fn recording_pending(&self, recording_ref: &str) -> bool {
        self.live_recordings
            .lock()
            .map(|set| set.contains(recording_ref))
            .unwrap_or(false)
    }

    /// Whether the PBX is logged in.
    pub fn is_ready(&self) -> bool {
        matches!(*self.status.borrow(), Status::Ready)
    }

    /// Waits until the PBX is logged in or `timeout` passes.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let mut status = self.status.clone();
        tokio::time::timeout(timeout, status.wait_for(|s| matches!(s, Status::Ready)))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Sends an Originate and waits for Asterisk's answer.
    pub async fn originate(&self, request: OriginateRequest) -> Result<(), OriginateError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Command::Originate {
                request: Box::new(request),
                reply,
            })
            .await
            .map_err(|_| OriginateError::NotConnected)?;
        answer.await.unwrap_or(Err(OriginateError::NotConnected))
    }

    /// Follows a call that the PBX's dialplan places itself (the FastAGI path): the
    /// tracker starts now (`queued`), and the call's events are routed to it by
    /// `request.channel_id`, the `Linkedid` of its channels. Fails when the PBX is not
    /// connected, because the call's events would be missed.
    pub async fn follow(&self, request: OriginateRequest) -> Result<(), OriginateError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Command::Follow {
                request: Box::new(request),
                reply,
            })
            .await
            .map_err(|_| OriginateError::NotConnected)?;
        answer.await.unwrap_or(Err(OriginateError::NotConnected))
    }
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A call in flight.
struct LiveCall {
    tracker: CallTracker,
    record: CallRecord,
    sequence: u32,
    /// Released (dropped) with the call.
    _slot: Option<OwnedSemaphorePermit>,
}

/// State that outlives one connection.
struct Driver {
    settings: Settings,
    notifier: Notifier,
    metrics: Metrics,
    live_recordings: LiveRecordings,
    logins: u64,
    calls: HashMap<String, LiveCall>,
    /// Calls of other hosts being adopted: their events wait here, in order, until the
    /// call's record arrives from Redis.
    adopting: HashMap<String, Vec<(Vec<u8>, Instant)>>,
    adopt_tx: mpsc::UnboundedSender<(String, Option<CallRecord>)>,
    call_store: Option<crate::call_store::CallStore>,
    campaigns: Arc<RwLock<KnownCampaigns>>,
    /// The check's clock starts here.
    epoch: Instant,
    /// The current session passed the login check (the backoff starts over after it).
    session_passed: bool,
    /// Check the dialplan again at once (Asterisk refused an Originate's extension).
    recheck_now: bool,
}

async fn run(
    mut driver: Driver,
    mut rx: mpsc::Receiver<Command>,
    mut adopt_rx: mpsc::UnboundedReceiver<(String, Option<CallRecord>)>,
    status: watch::Sender<Status>,
) {
    const FIRST_BACKOFF: Duration = Duration::from_millis(250);
    let mut backoff = FIRST_BACKOFF;
    loop {
        driver.session_passed = false;
        let result = driver.session(&mut rx, &mut adopt_rx, &status).await;
        driver.metrics.ami_down();
        if driver.session_passed {
            backoff = FIRST_BACKOFF;
        }
        match result {
            Ok(()) => return,
            // Misconfigured stays what /readyz says while waiting to log in again.
            Err(SessionError::Misconfigured) => {}
            Err(e) => {
                tracing::warn!(error = %e, address = %driver.settings.address, "AMI connection lost");
                let _ = status.send(Status::Down(e.to_string().into()));
            }
        }
        driver.fail_all();
        // Refuse originates while waiting; nothing is queued for later dialling.
        let sleep = tokio::time::sleep(backoff);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => break,
                command = rx.recv() => match command {
                    Some(Command::Originate { reply, .. } | Command::Follow { reply, .. }) => {
                        let _ = reply.send(Err(OriginateError::NotConnected));
                    }
                    None => return,
                },
            }
        }
        backoff = (backoff * 2).min(driver.settings.max_backoff);
    }
}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("connect: {0}")]
    Io(#[from] std::io::Error),
    #[error("the PBX closed the connection")]
    Closed,
    #[error("AMI protocol: {0}")]
    Protocol(String),
    #[error("no answer to Ping")]
    PingTimeout,
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error("the PBX is misconfigured")]
    Misconfigured,
    #[error("{0}")]
    Check(String),
}

/// The longest line the login check reads.
const MAX_LINE: usize = 4096;

/// Bytes from the socket, decoded frame by frame in place: each frame is decoded once,
/// borrowing the buffer, and handled before the next read.
struct Reader {
    stream: tokio::net::tcp::OwnedReadHalf,
    buf: Vec<u8>,
    start: usize,
    decoder: Decoder,
}

impl Reader {
    /// Reads what the socket has (at least one byte).
    async fn fill(&mut self) -> Result<(), SessionError> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.len() > MAX_MESSAGE_LEN * 2 {
            return Err(SessionError::Protocol("message too large".into()));
        }
        // `read_buf` appends to the vector only what was read: cancel-safe (`select!`).
        self.buf.reserve(4096);
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            return Err(SessionError::Closed);
        }
        Ok(())
    }

    /// The next complete line in the buffer, without its `\r\n` (the login check reads
    /// lines: Asterisk's `ListCommands` answer can outgrow a frame).
    fn next_line(&mut self) -> Result<Option<&[u8]>, SessionError> {
        let rest = self.buf.get(self.start..).unwrap_or_default();
        match rest.windows(2).position(|w| w == b"\r\n") {
            Some(end) => {
                self.start += end + 2;
                Ok(rest.get(..end))
            }
            None if rest.len() > MAX_LINE => Err(SessionError::Protocol(format!(
                "AMI line longer than {MAX_LINE} bytes"
            ))),
            None => Ok(None),
        }
    }

    /// The next complete frame in the buffer, decoded where it lies, with its bytes, if
    /// there is one.
    fn next_frame(&mut self) -> Result<Option<(Frame<'_>, &[u8])>, SessionError> {
        let rest = &self.buf[self.start..];
        match self.decoder.decode(rest) {
            Ok(Some(decoded)) => {
                self.start += decoded.len;
                Ok(Some((
                    decoded.frame,
                    rest.get(..decoded.len).unwrap_or_default(),
                )))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(SessionError::Protocol(e.to_string())),
        }
    }
}

/// The call a message shows the FastAGI service deciding to dial: the `VarSet` of
/// `C2D_DECISION=dial` on the agent's channel, which starts the call (its `Uniqueid` is the
/// call's `Linkedid`). The deciding host stores the call's record before it sets the
/// variable, so the other hosts can load it when they see this.
fn dialplan_decided_to_dial<'a>(message: &Message<'a>) -> Option<&'a str> {
    let uniqueid = message.uniqueid()?;
    (message.event() == Some("VarSet")
        && message.get("Variable") == Some(crate::fastagi::DECISION_VARIABLE)
        && message.get("Value") == Some("dial")
        && message.get("Linkedid") == Some(uniqueid))
    .then_some(uniqueid)
}

/// Decodes a message kept aside while its call is adopted (it is complete, so this cannot
/// need more bytes).
fn with_message<R>(bytes: &[u8], f: impl FnOnce(&Message<'_>) -> R) -> Option<R> {
    match Decoder::without_banner().decode(bytes) {
        Ok(Some(Decoded {
            frame: Frame::Message(m),
            ..
        })) => Some(f(&m)),
        _ => None,
    }
}

use click2dial_core::ami::Decoded;

/// `d` in whole milliseconds.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Driver {
    /// Milliseconds since the driver started: the check's clock.
    fn now_ms(&self) -> u64 {
        millis(self.epoch.elapsed())
    }

    /// When the dialplan is checked again: soon while it is missing something, with the
    /// ping otherwise (which also keeps the campaigns fresh).
    fn recheck_interval(&self, status: &watch::Sender<Status>) -> Duration {
        match &*status.borrow() {
            Status::Misconfigured(_) => RECHECK_MISCONFIGURED.min(self.settings.ping_interval),
            _ => self.settings.ping_interval,
        }
    }

    /// Acts on a finished check: the status, the campaigns, the log (at every login, and
    /// when a later check finds something else). An error ends the session.
    fn checked(
        &mut self,
        preflight: &Preflight<'_, MAX_CAMPAIGNS>,
        outcome: Outcome,
        status: &watch::Sender<Status>,
        at_login: bool,
    ) -> Result<(), SessionError> {
        let address = &self.settings.address;
        let usable = match outcome {
            Outcome::Passed => true,
            Outcome::Failed { session_usable } => session_usable,
        };
        if preflight.problems().any(|p| !p.code.is_configuration()) {
            let why: Vec<String> = preflight.problems().map(ToString::to_string).collect();
            if at_login {
                return Err(SessionError::Check(why.join("; ")));
            }
            tracing::warn!(%address, problem = %why.join("; "), "PBX dialplan check not answered");
            return Ok(());
        }
        let tvc_context = &self.settings.dialplan.tvc_context;
        let campaigns_missing = preflight.problems().any(|p| {
            p.code == click2dial_core::ami::ProblemCode::ContextMissing
                && p.subject() == tvc_context
        });
        // Without ShowDialPlan (usable is false) nothing was read: keep what is known.
        if usable || campaigns_missing {
            let found = preflight.campaigns();
            if found.overflowed() && at_login {
                tracing::warn!(
                    context = %tvc_context,
                    "more than {MAX_CAMPAIGNS} campaigns: unknown ones are not refused by the host"
                );
            }
            if let Ok(mut known) = self.campaigns.write() {
                known.names = Some(found.iter().map(str::to_string).collect());
                known.overflowed = found.overflowed();
            }
        }
        if at_login && usable {
            self.session_passed = true;
        }
        let reasons: Arc<[Reason]> = preflight
            .problems()
            .map(|p| Reason {
                code: p.code.as_str(),
                message: p.to_string(),
            })
            .collect();
        let before = status.borrow().clone();
        if reasons.is_empty() {
            if at_login || before != Status::Ready {
                tracing::info!(%address, campaigns = preflight.campaigns().len(), "PBX check passed: ready");
            }
            let _ = status.send(Status::Ready);
            return Ok(());
        }
        if at_login || before != Status::Misconfigured(reasons.clone()) {
            for reason in reasons.iter() {
                tracing::error!(%address, code = reason.code, "PBX misconfigured: {}", reason.message);
            }
        }
        let _ = status.send(Status::Misconfigured(reasons));
        if usable {
            Ok(())
        } else {
            Err(SessionError::Misconfigured)
        }
    }

    async fn session(
        &mut self,
        rx: &mut mpsc::Receiver<Command>,
        adopt_rx: &mut mpsc::UnboundedReceiver<(String, Option<CallRecord>)>,
        status: &watch::Sender<Status>,
    ) -> Result<(), SessionError> {
        let stream = tokio::time::timeout(
            Duration::from_secs(5),
            TcpStream::connect(&self.settings.address),
        )
        .await
        .map_err(|_| SessionError::Timeout("TCP connect"))??;
        stream.set_nodelay(true)?;
        let (read, mut write) = stream.into_split();
        let mut reader = Reader {
            stream: read,
            buf: Vec::with_capacity(MAX_MESSAGE_LEN),
            start: 0,
            // The check reads the banner as a line.
            decoder: Decoder::without_banner(),
        };
        let mut out = vec![0u8; 8192];
        // Owned here, not borrowed from `self`: the checks live through the session.
        let contexts_owned = self.settings.contexts.clone();
        let (username, secret) = (self.settings.username.clone(), self.settings.secret.clone());
        let contexts: Vec<ContextCheck<'_>> = contexts_owned
            .iter()
            .map(|c| ContextCheck {
                context: &c.context,
                extension: c.extension.as_deref(),
                campaigns: c.campaigns,
            })
            .collect();
        let checks = Checks {
            username: &username,
            secret: &secret,
            contexts: &contexts,
            booted_within_ms: millis(CHECK_WITHIN),
            answer_within_ms: millis(CHECK_WITHIN),
        };
        let mut preflight = Box::new(Preflight::<MAX_CAMPAIGNS>::login(checks, self.now_ms()));
        let outcome = loop {
            while let Some(n) = preflight
                .poll_transmit(&mut out)
                .map_err(|e| SessionError::Protocol(e.to_string()))?
            {
                write.write_all(&out[..n]).await?;
            }
            if let Some(outcome) = preflight.outcome() {
                break outcome;
            }
            if let Some(line) = reader.next_line()? {
                preflight.handle_line(self.now_ms(), line);
                continue;
            }
            let deadline = preflight.poll_timeout().unwrap_or(u64::MAX);
            let wait = Duration::from_millis(deadline.saturating_sub(self.now_ms()));
            match tokio::time::timeout(wait, reader.fill()).await {
                Ok(filled) => filled?,
                Err(_) => preflight.handle_timeout(self.now_ms()),
            }
        };
        self.checked(&preflight, outcome, status, true)?;
        tracing::info!(address = %self.settings.address, "AMI logged in");
        self.metrics.ami_logged_in(self.logins == 0);
        self.logins += 1;
        let mut recheck_run: u32 = 0;
        let mut recheck: Option<Box<Preflight<'_, MAX_CAMPAIGNS>>> = None;
        let mut recheck_at = Instant::now() + self.recheck_interval(status);

        let mut pending: HashMap<String, oneshot::Sender<Result<(), OriginateError>>> =
            HashMap::new();
        let mut ping = tokio::time::interval(self.settings.ping_interval);
        ping.tick().await;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut ping_outstanding: Option<u64> = None;
        let mut ping_seq: u64 = 0;
        let mut read_at = Instant::now();
        let result = loop {
            // Every complete frame read so far, each decoded once where it lies.
            let handled = loop {
                match reader.next_frame() {
                    Ok(Some((Frame::Message(m), bytes))) => {
                        if let Some(check) = recheck.as_mut() {
                            check.handle_message(self.now_ms(), &m);
                        }
                        if !self.adopt_or_buffer(&m, bytes, read_at) {
                            self.on_message(&m, read_at, &mut pending, &mut ping_outstanding);
                        }
                    }
                    Ok(Some((Frame::Banner(_), _))) => {}
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                }
            };
            if let Err(e) = handled {
                break Err(e);
            }
            if let Some(check) = recheck.as_mut() {
                check.handle_timeout(self.now_ms());
                if let Some(outcome) = check.outcome() {
                    if let Err(e) = self.checked(check, outcome, status, false) {
                        break Err(e);
                    }
                    recheck = None;
                    recheck_at = Instant::now() + self.recheck_interval(status);
                } else {
                    // The answer to one context's ShowDialPlan makes the next one due.
                    while let Some(n) = check
                        .poll_transmit(&mut out)
                        .map_err(|e| SessionError::Protocol(e.to_string()))?
                    {
                        write.write_all(&out[..n]).await?;
                    }
                }
            }
            if recheck.is_none() && (Instant::now() >= recheck_at || self.recheck_now) {
                self.recheck_now = false;
                recheck_run = recheck_run.wrapping_add(1);
                let mut check = Box::new(Preflight::dialplan(checks, recheck_run, self.now_ms()));
                while let Some(n) = check
                    .poll_transmit(&mut out)
                    .map_err(|e| SessionError::Protocol(e.to_string()))?
                {
                    write.write_all(&out[..n]).await?;
                }
                recheck = Some(check);
            }
            tokio::select! {
                filled = reader.fill() => {
                    read_at = Instant::now();
                    if let Err(e) = filled {
                        break Err(e);
                    }
                }
                Some((channel_id, record)) = adopt_rx.recv() => {
                    self.adopted(&channel_id, record, &mut pending, &mut ping_outstanding);
                }
                command = rx.recv() => {
                    let (request, reply) = match command {
                        Some(Command::Originate { request, reply }) => (request, reply),
                        Some(Command::Follow { request, reply }) => {
                            let channel_id = request.channel_id.clone();
                            self.track(*request);
                            self.metrics.call_started();
                            if let Some(mut call) = self.calls.remove(&channel_id) {
                                self.drain(&mut call, Instant::now());
                                self.calls.insert(channel_id, call);
                            }
                            let _ = reply.send(Ok(()));
                            continue;
                        }
                        None => break Ok(()),
                    };
                    match self.send_originate(&request, &mut out) {
                        Ok(n) => {
                            if let Err(e) = write.write_all(&out[..n]).await {
                                let _ = reply.send(Err(OriginateError::NotConnected));
                                break Err(e.into());
                            }
                            pending.insert(request.channel_id.clone(), reply);
                            self.track(*request);
                        }
                        Err(e) => { let _ = reply.send(Err(e)); }
                    }
                }
                _ = ping.tick() => {
                    if ping_outstanding.is_some() {
                        break Err(SessionError::PingTimeout);
                    }
                    ping_seq += 1;
                    let id = format!("ping-{ping_seq}");
                    let n = Ping { action_id: &id }.write(&mut out).map_err(|e| SessionError::Protocol(e.to_string()))?;
                    write.write_all(&out[..n]).await?;
                    ping_outstanding = Some(ping_seq);
                }
                _ = tick.tick() => self.on_tick(),
            }
        };
        // Originates written but not answered: the call's tracker reports pbx_error; the
        // HTTP side answers 202 (the request reached the PBX) and the notification follows.
        for (_, reply) in pending.drain() {
            let _ = reply.send(Ok(()));
        }
        result
    }

    fn send_originate(
        &self,
        request: &OriginateRequest,
        out: &mut [u8],
    ) -> Result<usize, OriginateError> {
        let record = &request.record;
        let call = OriginateCall {
            channel_id: &request.channel_id,
            agent: &record.agent,
            callee: &request.callee,
            callee_e164: &record.callee_e164,
            outbound_id: &record.outbound_id,
            contact_ref: &record.contact_ref,
            recording_ref: &record.recording_ref,
            single_leg: record.single_leg,
        };
        write_originate(&call, &self.settings.dialplan.names(), out)
            .map_err(|e| OriginateError::Encode(e.to_string()))
    }

    fn track(&mut self, request: OriginateRequest) {
        let now = unix_millis();
        match CallTracker::new(&request.channel_id, request.mode, now) {
            Ok(tracker) => {
                let call = LiveCall {
                    tracker,
                    record: request.record,
                    sequence: 0,
                    _slot: request.slot,
                };
                if let Ok(mut set) = self.live_recordings.lock() {
                    set.insert(call.record.recording_ref.clone());
                }
                // `queued` waits for Asterisk's acceptance (or the call's first event).
                self.calls.insert(request.channel_id, call);
            }
            Err(_) => {
                tracing::error!(channel_id = %request.channel_id, "ChannelId too long to track")
            }
        }
    }

    fn on_message(
        &mut self,
        message: &Message<'_>,
        read_at: Instant,
        pending: &mut HashMap<String, oneshot::Sender<Result<(), OriginateError>>>,
        ping_outstanding: &mut Option<u64>,
    ) {
        match message.kind() {
            Kind::Response(status) => {
                let Some(action_id) = message.action_id() else {
                    return;
                };
                if action_id.starts_with("ping-") {
                    *ping_outstanding = None;
                    return;
                }
                if let Some(reply) = pending.remove(action_id) {
                    if status == ResponseStatus::Success {
                        self.metrics.call_started();
                        if let Some(mut call) = self.calls.remove(action_id) {
                            self.drain(&mut call, Instant::now());
                            self.calls.insert(action_id.to_string(), call);
                        }
                        let _ = reply.send(Ok(()));
                    } else {
                        let reason = message.message().unwrap_or("no reason").to_string();
                        // The dialplan changed under the host: look again at once.
                        self.recheck_now |= reason.starts_with("Extension does not exist");
                        // Nothing was dialled: forget the call without notifications.
                        if let Some(call) = self.calls.remove(action_id) {
                            self.forget(call);
                        }
                        let _ = reply.send(Err(OriginateError::Refused(reason)));
                    }
                }
            }
            Kind::Event(_) => {
                let Some((key, event)) = ChannelEvent::from_message(message) else {
                    return;
                };
                let Some(mut call) = self.calls.remove(key) else {
                    return;
                };
                call.tracker.handle_event(unix_millis(), &event);
                self.drain(&mut call, read_at);
                if call.tracker.is_finished() {
                    self.forget(call);
                } else {
                    self.calls.insert(key.to_string(), call);
                }
            }
            Kind::Other => {}
        }
    }

    fn on_tick(&mut self) {
        let now = unix_millis();
        let ids: Vec<String> = self.calls.keys().cloned().collect();
        for id in ids {
            if let Some(mut call) = self.calls.remove(&id) {
                call.tracker.handle_timeout(now);
                self.drain(&mut call, Instant::now());
                if call.tracker.is_finished() {
                    self.forget(call);
                } else {
                    self.calls.insert(id, call);
                }
            }
        }
    }

    fn fail_all(&mut self) {
        self.adopting.clear();
        let now = unix_millis();
        let calls: Vec<(String, LiveCall)> = self.calls.drain().collect();
        for (_, mut call) in calls {
            call.tracker.handle_pbx_lost(now);
            self.drain(&mut call, Instant::now());
            self.forget(call);
        }
    }

    /// Another host's call: every host sees every AMI event, so each follows every
    /// click2dial call it saw start (its originated channel's `Newchannel`), from the record
    /// the originating host stored in Redis. All hosts then compute the same notifications
    /// with the same sequence numbers, and the push script's `SET NX` mark lets only the
    /// first copy of each through; if the originating host dies, the others carry on.
    /// Returns whether the message was taken (buffered until the record arrives).
    fn adopt_or_buffer(&mut self, message: &Message<'_>, bytes: &[u8], read_at: Instant) -> bool {
        let Some(store) = &self.call_store else {
            return false;
        };
        let (key, starts) = if let Some(key) = dialplan_decided_to_dial(message) {
            (key, true)
        } else {
            let Some((key, event)) = ChannelEvent::from_message(message) else {
                return false;
            };
            let starts = matches!(event, ChannelEvent::Newchannel { uniqueid } if uniqueid == key)
                && key.starts_with(click2dial_core::reference::CHANNEL_ID_PREFIX);
            (key, starts)
        };
        if self.calls.contains_key(key) {
            return false;
        }
        if let Some(waiting) = self.adopting.get_mut(key) {
            waiting.push((bytes.to_vec(), read_at));
            return true;
        }
        if !starts {
            return false;
        }
        let key = key.to_string();
        self.adopting
            .insert(key.clone(), vec![(bytes.to_vec(), read_at)]);
        let store = store.clone();
        let tx = self.adopt_tx.clone();
        tokio::spawn(async move {
            let record = store.load(&key).await;
            let _ = tx.send((key, record));
        });
        true
    }

    /// The record of a call being adopted arrived (or not): replay its buffered events.
    fn adopted(
        &mut self,
        channel_id: &str,
        record: Option<CallRecord>,
        pending: &mut HashMap<String, oneshot::Sender<Result<(), OriginateError>>>,
        ping_outstanding: &mut Option<u64>,
    ) {
        let Some(waiting) = self.adopting.remove(channel_id) else {
            return;
        };
        let Some(record) = record else {
            return; // Not a call of this service, or Redis is unreachable.
        };
        if self.calls.contains_key(channel_id) {
            return;
        }
        let Ok(tracker) = CallTracker::new(channel_id, record.mode(), unix_millis()) else {
            return;
        };
        if let Ok(mut set) = self.live_recordings.lock() {
            set.insert(record.recording_ref.clone());
        }
        tracing::debug!(channel_id, "following a call placed by another host");
        self.calls.insert(
            channel_id.to_string(),
            LiveCall {
                tracker,
                record,
                sequence: 0,
                _slot: None,
            },
        );
        for (bytes, read_at) in waiting {
            with_message(&bytes, |m| {
                self.on_message(m, read_at, pending, ping_outstanding)
            });
        }
    }

    /// Drops a call that is over: its recording is no longer pending, its slot is free.
    fn forget(&self, call: LiveCall) {
        if let Ok(mut set) = self.live_recordings.lock() {
            set.remove(&call.record.recording_ref);
        }
        self.notifier
            .call_over(&call.record.owner, &call.record.contact_ref);
    }

    fn drain(&self, call: &mut LiveCall, since: Instant) {
        while let Some(progress) = call.tracker.poll_progress() {
            call.sequence += 1;
            self.notify(call, progress, since);
        }
    }

    fn notify(&self, call: &LiveCall, progress: Progress, since: Instant) {
        if matches!(progress.event, Event::Hangup | Event::Failed) {
            self.metrics.call_ended(
                progress.event.as_str(),
                progress.cause.map_or("none", |c| c.as_str()),
            );
        }
        let record = &call.record;
        let notification = NotificationJson {
            event: progress.event,
            contact_ref: &record.contact_ref,
            agent: &record.agent,
            callee: &record.callee_e164,
            outbound_id: &record.outbound_id,
            recording_ref: &record.recording_ref,
            recording_url: Some(&record.recording_url),
            timestamp: Timestamp::from_unix_millis(progress.at),
            cause: progress.cause,
            q850: progress.q850,
        };
        let mut buf = [0u8; 2048];
        match json::write_notification(&notification, &mut buf) {
            Ok(n) => self.notifier.send(Notification {
                id: format!("{}:{}", call.tracker.channel_id(), call.sequence),
                owner: record.owner.clone(),
                contact_ref: record.contact_ref.clone(),
                sequence: call.sequence,
                event: progress.event.as_str(),
                call_key: record.notifications_key.clone(),
                json: String::from_utf8_lossy(&buf[..n]).into_owned(),
                since,
            }),
            Err(e) => tracing::error!(error = %e, "notification does not fit its buffer"),
        }
    }
}
