//! The AMI client: a tokio driver of core's sans-IO [`Session`] and call state machine.
//!
//! One task owns the connection. The session logs in and checks the PBX (the login,
//! `FullyBooted`, the write privileges, the dialplan contexts and the `tvc_` campaigns),
//! pings it, expects every Originate to be answered in time, checks the dialplan again
//! (every [`RECHECK_MISCONFIGURED`] while it misses something, every ping interval once
//! ready, so a `dialplan reload` makes the host ready without a restart) and says when to
//! reconnect (a doubling backoff capped at `ami.max_backoff_secs`, back to its start after
//! every login that passed the check). This driver only moves bytes, turns the session's
//! events into the `/readyz` status, and follows calls: each call's [`CallTracker`] gets
//! the events the session keys to it, its deadlines come from the tracker's
//! `poll_timeout`, and every step of progress becomes a notification.
//!
//! A PBX that has sent nothing for [`PROBE_AFTER`] is probed (a `Ping`, answered within
//! the Originate answer deadline) before an Originate is written to it, so a PBX that hangs
//! with its socket open is found within that deadline without anything being dialled: the
//! creates that waited get `503`, and every later one at once until it is back.
//!
//! When the connection is lost, calls in flight wait: their channels may live on in
//! Asterisk. After the next login the session lists the PBX's channels (`CoreShowChannels`)
//! and each call's tracker goes on from what the listing shows (the steps it proves are
//! notified then); a call whose channels are gone ends with `pbx_error`, since the events
//! that would tell its outcome are lost and a notification that guessed would be worse than
//! one that says so. A call not re-synchronised within `limits.call_silence_secs` of the
//! loss ends the same way.
//!
//! The same list finds the calls this process does not follow (`pbx::resume`): listed ones
//! are followed from their record and history in Redis; the calls of Redis's set of this
//! PBX's calls in flight that it does not show (older than [`VANISHED_AFTER`], and missed
//! by a second list too) ended while no host followed them, and end with `pbx_error` too.
//! When Redis does not answer, or calls of the set are not listed, the channels are listed
//! again in [`LOOK_AGAIN_AFTER`].
//!
//! A PBX that fails the check is `Misconfigured`, with a sentence per problem that says how
//! to fix it, logged once per login. Times for the session and the trackers are monotonic
//! milliseconds on the driver's [`Clock`] (which reaches a day back, for the times in a
//! resumed call's history); notifications carry wall-clock timestamps.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use click2dial_core::ami::session::{self, Down, Event as SessionEvent};
use click2dial_core::ami::{Checks, ContextCheck, Message, Outcome, Preflight, Session};
use click2dial_core::call::{CallTracker, ChannelEvent, Mode, Progress, Timeouts};
use click2dial_core::json::{self, Event, Notification as NotificationJson};
use click2dial_core::originate::OriginateCall;
use click2dial_core::time::Timestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit};

use crate::call::{CallRecord, Notification, Outbox};
use crate::clock::{millis, Clock};
use crate::metrics::Metrics;
use crate::store::call_store::CallStore;

mod resume;

/// Where and how to log in.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The PBX's name (`[[pbx]] name`, `default` for `[ami]` alone): the `pbx` label of its
    /// metrics and a field of its log lines.
    pub name: Arc<str>,
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
    /// How long a call that is not joined may go without any AMI event before it fails
    /// (`pbx_error`) and its slot is returned, and how long a call waits for a lost
    /// connection to re-synchronise it (core's `call::Timeouts::silence_ms`).
    pub call_silence: Duration,
    /// `[recordings] dir`: a call that ended unseen says `recording_ready` when its file
    /// there is whole ([`RECORDING_LOOKS`]).
    pub recordings_dir: std::path::PathBuf,
}

/// How many `tvc_` campaigns the host keeps; with more, unknown ones are let through (the
/// dialplan refuses them) and a warning says so.
pub const MAX_CAMPAIGNS: usize = 256;

/// How long `FullyBooted` and every answer of the check may take.
const CHECK_WITHIN: Duration = Duration::from_secs(5);

/// How often the dialplan is checked again while it is missing something.
pub const RECHECK_MISCONFIGURED: Duration = Duration::from_secs(5);

/// An Originate to send, with the call it starts.
#[derive(Debug)]
pub struct OriginateRequest {
    /// `ChannelId`, also used as `ActionID`.
    pub channel_id: String,
    /// Two legs, or one.
    pub mode: Mode,
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
    /// End a channel (`DELETE /click2dial/calls/{contact_ref}`).
    Hangup {
        channel: String,
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
    /// `the PBX`, or `the PBX "east"` when several are configured: for the clients' messages.
    described: Arc<str>,
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
        notifier: Arc<dyn Outbox>,
        metrics: Metrics,
        call_store: Option<CallStore>,
    ) -> Self {
        metrics.pbx_configured(&settings.name);
        let (tx, rx) = mpsc::channel(1024);
        let (status_tx, status) = watch::channel(Status::Down("connecting to the PBX".into()));
        let (adopt_tx, adopt_rx) = mpsc::unbounded_channel();
        let (looked_tx, looked_rx) = mpsc::unbounded_channel();
        let live_recordings = LiveRecordings::default();
        let campaigns = Arc::new(RwLock::new(KnownCampaigns::default()));
        let tvc_context: Arc<str> = settings.dialplan.tvc_context.as_str().into();
        let described: Arc<str> = if &*settings.name == crate::config::pbxes::IMPLICIT_NAME {
            "the PBX".into()
        } else {
            format!("the PBX {:?}", &*settings.name).into()
        };
        let driver = Driver {
            campaigns: campaigns.clone(),
            clock: Clock::start(),
            originates: Vec::new(),
            lost: None,
            settings,
            notifier,
            metrics,
            live_recordings: live_recordings.clone(),
            logins: 0,
            calls: HashMap::default(),
            timers: BinaryHeap::new(),
            pending: HashMap::default(),
            held: Vec::new(),
            adopting: HashMap::default(),
            adopt_tx,
            sweep: None,
            look_again_at: None,
            suspects: HashSet::new(),
            checking: HashMap::default(),
            looked_tx,
            call_store,
        };
        // Every line the driver logs names its PBX: the span is at the highest level, so a
        // filter that keeps a line (`RUST_LOG=warn`) keeps the span too.
        let span = tracing::error_span!("pbx", name = %driver.settings.name);
        tokio::spawn(tracing::Instrument::instrument(
            run(
                driver,
                Inbox {
                    commands: rx,
                    found: adopt_rx,
                    looked: looked_rx,
                },
                status_tx,
            ),
            span,
        ));
        Self {
            tx,
            status,
            live_recordings,
            campaigns,
            tvc_context,
            described,
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
                "{} is not reachable ({why}); nothing was dialled",
                self.described
            )),
            Status::Misconfigured(reasons) => Some(format!(
                "{} cannot take calls: {}; nothing was dialled",
                self.described,
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

    /// Asks the PBX to end `channel` (its name or `Uniqueid`; a call's originated channel
    /// has its `ChannelId`) as a normal clearing; the rest of the call follows it (the
    /// dialplan hangs up the other leg). `Ok` once written: the channel's `Hangup` event
    /// tells that it happened.
    pub async fn hang_up(&self, channel: &str) -> Result<(), OriginateError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Command::Hangup {
                channel: channel.to_string(),
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

/// How long Asterisk may take to answer an Originate before the connection is given up.
pub const ORIGINATE_ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// A PBX silent this long is probed (a `Ping` it must answer within
/// [`ORIGINATE_ANSWER_WITHIN`]) before an Originate is written to it: a hung PBX is found
/// before anything is dialled, and the creates that wait for the probe get `503` when it
/// goes unanswered.
pub const PROBE_AFTER: Duration = Duration::from_secs(1);

/// The most Originates awaiting Asterisk's answer at once (it answers each at once).
const MAX_PENDING: usize = 1024;

/// The most Originates written to the PBX in one write.
const ORIGINATE_BATCH: usize = 32;

/// The first reconnection delay.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

type AmiSession<'a> = Session<'a, MAX_CAMPAIGNS, MAX_PENDING>;

/// Where an Originate's outcome goes.
type Reply = oneshot::Sender<Result<(), OriginateError>>;

/// What a lookup in Redis found for a call to follow.
enum Found {
    /// Another host's call that is starting: its record.
    Started(Option<CallRecord>),
    /// A call in flight that the PBX listed after a login: what Redis has of it, and its
    /// listed channels.
    InFlight(InFlightLookup, Vec<resume::Listed>),
    /// A call in the store's set of the PBX's calls in flight that the list after a login
    /// did not show: what Redis has of it.
    Vanished(InFlightLookup),
    /// The calls of the set that the list did not show for the first time (each is judged
    /// only if the next list, [`LOOK_AGAIN_AFTER`] later, does not show it either), and
    /// whether it did not show younger ones ([`VANISHED_AFTER`]): both are looked for again.
    Unlisted { suspects: Vec<String>, young: bool },
    /// Redis did not answer the read of the set of calls in flight: list the channels and
    /// look again in [`LOOK_AGAIN_AFTER`].
    LookAgain,
}

/// A call that ended unseen (its channels gone while no event said how) may still have a
/// whole recording: the PBX ended it and MixMonitor closed the file while nobody watched.
/// Its file is looked at this many times, [`RECORDING_LOOK_EVERY`] apart (a call that just
/// ended may have its file closed a moment later), each look within
/// [`RECORDING_LOOK_WITHIN`] (a network mount may hang); `recording_ready` follows a look
/// that finds it whole (core's `handle_recording_whole`).
pub const RECORDING_LOOKS: u32 = 2;

/// The time between two looks at a recording ([`RECORDING_LOOKS`]).
pub const RECORDING_LOOK_EVERY: Duration = Duration::from_secs(2);

/// How long one look at a recording may take ([`RECORDING_LOOKS`]).
pub const RECORDING_LOOK_WITHIN: Duration = Duration::from_secs(1);

/// What Redis has of a call in flight the PBX listed: its record and the notifications
/// already pushed (each with its Unix time); `Ok(None)`: not a call of this service;
/// `Err`: Redis did not answer ([`LOOK_AGAIN_AFTER`]).
type InFlightLookup = Result<Option<(CallRecord, Vec<(Event, u64)>)>, ()>;

/// When Redis did not answer the lookup of a call in flight the PBX listed (a host started
/// before its Redis), how long until the channels are listed and looked up again.
pub const LOOK_AGAIN_AFTER: Duration = Duration::from_secs(5);

/// A call in the store's set of calls in flight for less than this is not ended by a list
/// that does not show it: its Originate may still wait in Asterisk for a thread to make its
/// channel.
pub const VANISHED_AFTER: Duration = Duration::from_secs(10);

/// What Redis has of the call in flight `key` ([`InFlightLookup`]).
async fn look_up(store: &CallStore, key: &str) -> InFlightLookup {
    match store.load(key).await? {
        Some(record) => store
            .notified(key, &record)
            .await
            .map(|notified| Some((record, notified)))
            .ok_or(()),
        None => Ok(None),
    }
}

/// A call in flight.
struct LiveCall {
    tracker: CallTracker,
    record: CallRecord,
    /// The deadline in [`Driver::timers`] for this call, if any.
    scheduled: Option<u64>,
    /// Released (dropped) with the call.
    _slot: Option<OwnedSemaphorePermit>,
}

/// The hasher of the driver's maps, whose keys are channel ids and linked ids: made by the
/// hosts (random references) or by the PBX, never chosen by an API client, so a fast hasher
/// (seeded per process) needs no defence against keys built to collide; SipHash cost about
/// 2k instructions per create here.
type IdHasher = foldhash::fast::RandomState;

/// State that outlives one connection.
struct Driver {
    settings: Settings,
    notifier: Arc<dyn Outbox>,
    metrics: Metrics,
    live_recordings: LiveRecordings,
    logins: u64,
    calls: HashMap<String, LiveCall, IdHasher>,
    /// The calls' deadlines (core's `poll_timeout`), soonest first; an entry that is not
    /// its call's `scheduled` any more is skipped.
    timers: BinaryHeap<Reverse<(u64, String)>>,
    /// Replies to the Originates written and not answered yet.
    pending: HashMap<String, oneshot::Sender<Result<(), OriginateError>>, IdHasher>,
    /// Originates not written yet: they wait for the answer to a probe of a silent PBX.
    held: Vec<(Box<OriginateRequest>, Reply)>,
    /// Calls of other hosts being adopted: their events wait here, in order, until the
    /// call's record arrives from Redis.
    adopting: HashMap<String, Vec<(Vec<u8>, Instant)>, IdHasher>,
    adopt_tx: mpsc::UnboundedSender<(String, Found)>,
    /// The channels of calls this host does not follow, while a listing after a login is
    /// read (see `resume`).
    sweep: Option<resume::Sweep>,
    /// When to list the channels again, for calls in flight whose lookup Redis did not
    /// answer.
    look_again_at: Option<u64>,
    /// Calls of Redis's set of calls in flight that the last list did not show: ended
    /// unseen if the next one does not show them either.
    suspects: HashSet<String>,
    /// Calls that ended unseen, while their recording is looked at ([`RECORDING_LOOKS`]).
    checking: HashMap<String, LiveCall, IdHasher>,
    /// Where the looks report whether each recording is whole (read whether the PBX is
    /// connected or not).
    looked_tx: mpsc::UnboundedSender<(String, bool)>,
    call_store: Option<CallStore>,
    campaigns: Arc<RwLock<KnownCampaigns>>,
    /// The monotonic clock of the session and the calls.
    clock: Clock,
    /// The bytes of a batch of Originates, reused from one batch to the next.
    originates: Vec<u8>,
    /// Why the connection ended, in words, when the driver saw it (an I/O error).
    lost: Option<String>,
}

/// What the driver task hears besides the PBX.
struct Inbox {
    /// The API's commands (Originate, follow, hang up).
    commands: mpsc::Receiver<Command>,
    /// Redis's answers about calls to follow ([`Found`]).
    found: mpsc::UnboundedReceiver<(String, Found)>,
    /// Whether the recording of a call that ended unseen is whole ([`RECORDING_LOOKS`]).
    looked: mpsc::UnboundedReceiver<(String, bool)>,
}

/// Drives core's [`Session`] over TCP: connects when it says so, refusing calls meanwhile.
async fn run(mut driver: Driver, mut inbox: Inbox, status: watch::Sender<Status>) {
    let settings = driver.settings.clone();
    let contexts: Vec<ContextCheck<'_>> = settings
        .contexts
        .iter()
        .map(|c| ContextCheck {
            context: &c.context,
            extension: c.extension.as_deref(),
            campaigns: c.campaigns,
        })
        .collect();
    let config = session::Config {
        checks: Checks {
            username: &settings.username,
            secret: &settings.secret,
            contexts: &contexts,
            booted_within_ms: millis(CHECK_WITHIN),
            answer_within_ms: millis(CHECK_WITHIN),
            lists_channels: true,
        },
        ping_interval_ms: millis(settings.ping_interval),
        originate_answer_within_ms: millis(ORIGINATE_ANSWER_WITHIN),
        recheck_misconfigured_ms: millis(RECHECK_MISCONFIGURED),
        first_backoff_ms: millis(FIRST_BACKOFF),
        max_backoff_ms: millis(settings.max_backoff),
    };
    let mut buf = vec![0u8; session::RECEIVE_BUFFER_LEN];
    let mut session = Box::new(AmiSession::new(config, &mut buf));
    let mut out = vec![0u8; 8192];
    loop {
        // Refuse originates while waiting; nothing is queued for later dialling.
        while !session.wants_connect(driver.now_ms()) {
            // Calls a lost connection left keep their deadlines meanwhile.
            let calls_at = driver.timers.peek().map(|Reverse((at, _))| *at);
            let at = session.poll_timeout().into_iter().chain(calls_at).min();
            let at = driver.instant(at.unwrap_or(0));
            tokio::select! {
                () = tokio::time::sleep_until(at) => driver.on_call_timers(),
                Some((channel_id, whole)) = inbox.looked.recv() => {
                    driver.recording_looked_at(&channel_id, whole);
                }
                command = inbox.commands.recv() => match command {
                    Some(
                        Command::Originate { reply, .. }
                        | Command::Follow { reply, .. }
                        | Command::Hangup { reply, .. },
                    ) => {
                        let _ = reply.send(Err(OriginateError::NotConnected));
                    }
                    None => return,
                },
            }
        }
        let connect = TcpStream::connect(&settings.address);
        let stream = match tokio::time::timeout(Duration::from_secs(5), connect).await {
            Ok(Ok(stream)) => stream,
            failed => {
                driver.lost = Some(match failed {
                    Ok(Err(e)) => format!("connect: {e}"),
                    _ => "timed out waiting for TCP connect".into(),
                });
                session.handle_disconnected(driver.now_ms(), Down::Connect);
                let _ = driver.act(&mut session, None, &mut out, &status).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        session.handle_connected(driver.now_ms());
        let stop = driver
            .connection(&mut session, stream, &mut inbox, &status, &mut out)
            .await;
        if stop {
            return;
        }
    }
}

/// The channel variable whose `VarSet` to `dial` starts a FastAGI call (core's
/// `agi::Script` sets it; every host sees it on AMI and may adopt the call).
pub const DECISION_VARIABLE: &str = "C2D_DECISION";

/// The call a message shows the FastAGI service deciding to dial: the `VarSet` of
/// `C2D_DECISION=dial` on the agent's channel, which starts the call (its `Uniqueid` is the
/// call's `Linkedid`). The deciding host stores the call's record before it sets the
/// variable, so the other hosts can load it when they see this.
fn dialplan_decided_to_dial<'a>(message: &Message<'a>) -> Option<&'a str> {
    // The event name is the first header: the cheap test first (most messages are not this).
    if message.event() != Some("VarSet") {
        return None;
    }
    let uniqueid = message.uniqueid()?;
    (message.get("Variable") == Some(DECISION_VARIABLE)
        && message.get("Value") == Some("dial")
        && message.get("Linkedid") == Some(uniqueid))
    .then_some(uniqueid)
}

impl Driver {
    /// Milliseconds since the driver started: the monotonic clock of the session and calls.
    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// A time on that clock as a tokio instant.
    fn instant(&self, at: u64) -> tokio::time::Instant {
        self.clock.instant(at)
    }

    /// A time on that clock as Unix milliseconds, for the notifications' timestamps.
    fn wall(&self, at: u64) -> u64 {
        self.clock.wall(at)
    }

    /// One connection: bytes in, actions out, commands, timers; returns whether to stop
    /// (every handle to the client is gone).
    async fn connection(
        &mut self,
        session: &mut AmiSession<'_>,
        stream: TcpStream,
        inbox: &mut Inbox,
        status: &watch::Sender<Status>,
        out: &mut [u8],
    ) -> bool {
        let (mut read, mut write) = stream.into_split();
        let mut chunk = vec![0u8; 16 * 1024];
        // One timer for the session's and the calls' deadlines, moved only when the earliest
        // changes: not two timers made, registered and cancelled at every turn of the loop.
        let timer = tokio::time::sleep(Duration::from_secs(3600));
        tokio::pin!(timer);
        let mut timer_at: Option<u64> = None;
        loop {
            if !self.act(session, Some(&mut write), out, status).await {
                return false;
            }
            if !self.held.is_empty() && !session.is_probing() {
                // The PBX answered the probe: what waited for it is written now.
                let held = std::mem::take(&mut self.held);
                self.send_originates(session, &mut write, out, held).await;
                continue;
            }
            let session_at = session.poll_timeout();
            let calls_at = self.timers.peek().map(|Reverse((at, _))| *at);
            let next = session_at
                .into_iter()
                .chain(calls_at)
                .chain(self.look_again_at)
                .min();
            if let Some(at) = next.filter(|at| timer_at != Some(*at)) {
                timer.as_mut().reset(self.instant(at));
                timer_at = Some(at);
            }
            tokio::select! {
                read = read.read(&mut chunk) => {
                    let now = self.now_ms();
                    let n = match read {
                        Ok(n) => n,
                        Err(e) => {
                            self.lost = Some(format!("connect: {e}"));
                            0
                        }
                    };
                    if n == 0 {
                        session.handle_disconnected(now, Down::Closed);
                        continue;
                    }
                    let mut rest = chunk.get(..n).unwrap_or_default();
                    while !rest.is_empty() {
                        let taken = session.handle_input(now, rest);
                        rest = rest.get(taken..).unwrap_or_default();
                        if !self.act(session, Some(&mut write), out, status).await {
                            return false;
                        }
                    }
                }
                Some((channel_id, whole)) = inbox.looked.recv() => {
                    self.recording_looked_at(&channel_id, whole);
                }
                Some((channel_id, found)) = inbox.found.recv() => match found {
                    Found::Started(record) => self.adopted(&channel_id, record),
                    Found::InFlight(found, listed) => self.resumed(&channel_id, found, &listed),
                    Found::Vanished(found) => self.vanished(&channel_id, found),
                    Found::Unlisted { suspects, young } => {
                        if young || !suspects.is_empty() {
                            self.look_again_later(false, None);
                        }
                        self.suspects = suspects.into_iter().collect();
                    }
                    Found::LookAgain => self.look_again_later(true, None),
                },
                command = inbox.commands.recv() => match command {
                    Some(Command::Originate { request, reply }) => {
                        // The Originates queued meanwhile go out with this one, in one write
                        // (a write to the PBX costs more than encoding a few Originates).
                        let mut batch = Vec::new();
                        let mut next = Some((request, reply));
                        while let Some((request, reply)) = next.take() {
                            let now = self.now_ms();
                            let silent =
                                now.saturating_sub(session.heard_at()) > millis(PROBE_AFTER);
                            if session.is_ready() && (silent || session.is_probing()) {
                                session.probe(now);
                                self.held.push((request, reply));
                            } else {
                                batch.push((request, reply));
                            }
                            if batch.len() >= ORIGINATE_BATCH {
                                break;
                            }
                            match inbox.commands.try_recv() {
                                Ok(Command::Originate { request, reply }) => {
                                    next = Some((request, reply));
                                }
                                Ok(Command::Follow { request, reply }) => {
                                    self.follow(*request, reply);
                                }
                                Ok(Command::Hangup { channel, reply }) => {
                                    let result = hang_up(session, &mut write, out, &channel).await;
                                    let _ = reply.send(result);
                                }
                                Err(_) => {}
                            }
                        }
                        self.send_originates(session, &mut write, out, batch).await;
                    }
                    Some(Command::Hangup { channel, reply }) => {
                        let _ = reply.send(hang_up(session, &mut write, out, &channel).await);
                    }
                    Some(Command::Follow { request, reply }) => self.follow(*request, reply),
                    None => {
                        // Originates written but not answered reached the PBX.
                        for (_, reply) in self.pending.drain() {
                            let _ = reply.send(Ok(()));
                        }
                        return true;
                    }
                },
                () = &mut timer, if next.is_some() => {
                    timer_at = None;
                    let now = self.now_ms();
                    if session_at.is_some_and(|at| at <= now) {
                        session.handle_timeout(now);
                    }
                    self.on_call_timers();
                    if self.look_again_at.is_some_and(|at| at <= now) {
                        self.look_again(session, now);
                    }
                }
            }
        }
    }

    /// Follows a call the PBX started itself (FastAGI): nothing to send.
    fn follow(&mut self, request: OriginateRequest, reply: Reply) {
        let channel_id = request.channel_id.clone();
        self.track(request);
        self.metrics.call_started(&self.settings.name);
        if let Some(mut call) = self.calls.remove(&channel_id) {
            self.drain(&mut call, Instant::now());
            self.settle(channel_id, call);
        }
        let _ = reply.send(Ok(()));
    }

    /// Writes Originates, in order, in one write; each reply waits for Asterisk's answer.
    async fn send_originates(
        &mut self,
        session: &mut AmiSession<'_>,
        write: &mut tokio::net::tcp::OwnedWriteHalf,
        out: &mut [u8],
        batch: Vec<(Box<OriginateRequest>, Reply)>,
    ) {
        if batch.is_empty() {
            return;
        }
        let now = self.now_ms();
        // One buffer for every batch, kept between them: an allocation of a kilobyte or more
        // per create made glibc consolidate its free lists each time.
        let mut bytes = std::mem::take(&mut self.originates);
        bytes.clear();
        let mut written = Vec::with_capacity(batch.len());
        for (request, reply) in batch {
            let call = originate_call(&request);
            match session.originate(now, &call, &self.settings.dialplan.names(), out) {
                Ok(n) => {
                    bytes.extend_from_slice(out.get(..n).unwrap_or_default());
                    written.push((request, reply));
                }
                Err(e) => {
                    let _ = reply.send(Err(match e {
                        session::OriginateError::Encode(e) => OriginateError::Encode(e.to_string()),
                        _ => OriginateError::NotConnected,
                    }));
                }
            }
        }
        if bytes.is_empty() {
            self.originates = bytes;
            return;
        }
        let wrote = write.write_all(&bytes).await;
        self.originates = bytes;
        if let Err(e) = wrote {
            for (_, reply) in written {
                let _ = reply.send(Err(OriginateError::NotConnected));
            }
            self.lost = Some(format!("connect: {e}"));
            session.handle_disconnected(now, Down::Closed);
            return;
        }
        for (request, reply) in written {
            self.pending.insert(request.channel_id.clone(), reply);
            self.track(*request);
        }
    }

    /// Sends what the session has to send and acts on what it says, until it has nothing
    /// more; `false` once the connection is over.
    async fn act(
        &mut self,
        session: &mut AmiSession<'_>,
        mut write: Option<&mut tokio::net::tcp::OwnedWriteHalf>,
        out: &mut [u8],
        status: &watch::Sender<Status>,
    ) -> bool {
        let read_at = Instant::now();
        loop {
            while let Some(n) = session.poll_transmit(out) {
                let Some(write) = write.as_mut() else { break };
                if let Err(e) = write.write_all(out.get(..n).unwrap_or_default()).await {
                    self.lost = Some(format!("connect: {e}"));
                    session.handle_disconnected(self.now_ms(), Down::Closed);
                }
            }
            let Some(event) = session.poll_event() else {
                return true;
            };
            match event {
                SessionEvent::Checked { login, outcome } => {
                    self.checked(session.check(), outcome, status, login);
                    if login && session.is_up() {
                        tracing::info!(address = %self.settings.address, "AMI logged in");
                        self.metrics
                            .ami_logged_in(&self.settings.name, self.logins == 0);
                        self.logins += 1;
                        // Every login lists the PBX's channels: the calls a lost connection
                        // left go on from it, and calls in flight this host does not follow
                        // (it restarted, or missed their start) are found in it.
                        if self.call_store.is_some() {
                            self.sweep = Some(resume::Sweep::default());
                            self.look_again_at = None;
                        }
                        if self.sweep.is_some() || self.calls.values().any(|c| c.tracker.is_lost())
                        {
                            session.resync(self.now_ms());
                        }
                    }
                }
                SessionEvent::OriginateAnswered { action_id, refused } => {
                    self.answered(action_id, refused);
                }
                SessionEvent::Channel {
                    key,
                    event,
                    message,
                } => {
                    // A call this host follows needs no adopting: skip reading the message
                    // again for that.
                    if self.calls.contains_key(key) || !self.adopt_or_buffer(&message, read_at) {
                        self.on_channel_event(key, &event);
                    }
                }
                SessionEvent::Listed { key, channel } => match self.calls.get_mut(key) {
                    Some(call) => call.tracker.handle_listed(&channel),
                    None => {
                        if let Some(sweep) = self.sweep.as_mut() {
                            sweep.keep(key, &channel);
                        }
                    }
                },
                SessionEvent::Resynced { complete } => {
                    self.resynced(complete);
                    self.resume_swept(complete);
                }
                SessionEvent::Message(message) => {
                    self.adopt_or_buffer(&message, read_at);
                }
                SessionEvent::Down(why) => {
                    self.down(why, status);
                    return false;
                }
            }
        }
    }

    /// The connection is over: calls in flight wait to be re-synchronised after the next
    /// login (see the module notes).
    fn down(&mut self, why: Down, status: &watch::Sender<Status>) {
        self.metrics.ami_down(&self.settings.name);
        let lost = self.lost.take();
        // Misconfigured (or a check that was not answered) stays what /readyz says while
        // waiting to log in again.
        if !matches!(why, Down::Misconfigured | Down::Check) {
            let why = lost.unwrap_or_else(|| why.to_string());
            tracing::warn!(error = %why, address = %self.settings.address, "AMI connection lost");
            let _ = status.send(Status::Down(why.into()));
        }
        // Originates that waited for a probe were not written: nothing was dialled (`503`).
        for (_, reply) in self.held.drain(..) {
            let _ = reply.send(Err(OriginateError::NotConnected));
        }
        // Originates written but not answered: the HTTP side answers 202 (the request
        // reached the PBX); the listing after the next login tells whether the call started.
        for (_, reply) in self.pending.drain() {
            let _ = reply.send(Ok(()));
        }
        self.lose_all();
    }

    /// Acts on a finished check: the status, the campaigns, the log (at every login, and
    /// when a later check finds something else). The session decides whether it goes on.
    fn checked(
        &mut self,
        preflight: &Preflight<'_, MAX_CAMPAIGNS>,
        outcome: Outcome,
        status: &watch::Sender<Status>,
        at_login: bool,
    ) {
        let address = &self.settings.address;
        let usable = match outcome {
            Outcome::Passed => true,
            Outcome::Failed { session_usable } => session_usable,
        };
        if preflight.problems().any(|p| !p.code.is_configuration()) {
            let why: Vec<String> = preflight.problems().map(ToString::to_string).collect();
            if at_login {
                let why = why.join("; ");
                tracing::warn!(error = %why, %address, "AMI connection lost");
                let _ = status.send(Status::Down(why.into()));
                return;
            }
            tracing::warn!(%address, problem = %why.join("; "), "PBX dialplan check not answered");
            return;
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
            return;
        }
        if at_login || before != Status::Misconfigured(reasons.clone()) {
            for reason in reasons.iter() {
                tracing::error!(%address, code = reason.code, "PBX misconfigured: {}", reason.message);
            }
        }
        let _ = status.send(Status::Misconfigured(reasons));
    }

    /// Asterisk answered an Originate.
    fn answered(&mut self, action_id: &str, refused: Option<&str>) {
        let Some(reply) = self.pending.remove(action_id) else {
            return;
        };
        match refused {
            None => {
                self.metrics.call_started(&self.settings.name);
                if let Some(mut call) = self.calls.remove(action_id) {
                    self.drain(&mut call, Instant::now());
                    self.settle(action_id.to_string(), call);
                }
                let _ = reply.send(Ok(()));
            }
            Some(reason) => {
                // Nothing was dialled: forget the call without notifications.
                if let Some(call) = self.calls.remove(action_id) {
                    self.forget(call);
                }
                let _ = reply.send(Err(OriginateError::Refused(reason.to_string())));
            }
        }
    }

    /// The deadlines of a call: the configured silence, the call's own longest duration.
    fn timeouts(&self, record: &CallRecord) -> Timeouts {
        Timeouts {
            silence_ms: millis(self.settings.call_silence),
            max_duration_ms: record
                .call
                .controls
                .max_duration_secs
                .map(|secs| u64::from(secs) * 1000),
            ..Timeouts::DEFAULT
        }
    }

    /// A tracker for a call with `record`'s deadlines, that knows whether the kit's dialplan
    /// records it: new, or resumed after the `notified` events an earlier process pushed;
    /// `None` for a `ChannelId` too long to track.
    fn tracker(
        &self,
        channel_id: &str,
        mode: Mode,
        record: &CallRecord,
        notified: Option<&[Event]>,
    ) -> Option<CallTracker> {
        let (now, timeouts) = (self.now_ms(), self.timeouts(record));
        let mut tracker = match notified {
            None => CallTracker::with_timeouts(channel_id, mode, now, timeouts),
            Some(notified) => CallTracker::resume(channel_id, mode, now, timeouts, notified),
        }
        .ok()?;
        if record.call.controls.record {
            tracker.expect_recording();
        }
        Some(tracker)
    }

    fn track(&mut self, request: OriginateRequest) {
        match self.tracker(&request.channel_id, request.mode, &request.record, None) {
            Some(tracker) => {
                let call = LiveCall {
                    tracker,
                    record: request.record,
                    scheduled: None,
                    _slot: request.slot,
                };
                if let Ok(mut set) = self.live_recordings.lock() {
                    set.insert(call.record.call.recording_ref.as_str().to_string());
                }
                let since = self.wall(self.now_ms());
                self.notifier
                    .in_flight(&self.settings.name, &request.channel_id, Some(since));
                // `queued` waits for Asterisk's acceptance (or the call's first event).
                self.settle(request.channel_id, call);
            }
            None => {
                tracing::error!(channel_id = %request.channel_id, "ChannelId too long to track")
            }
        }
    }

    fn on_channel_event(&mut self, key: &str, event: &ChannelEvent<'_>) {
        let Some(mut call) = self.calls.remove(key) else {
            return;
        };
        call.tracker.handle_event(self.now_ms(), event);
        self.drain(&mut call, Instant::now());
        self.settle(key.to_string(), call);
    }

    /// Keeps a call that is not over, with its next deadline scheduled; forgets it otherwise.
    fn settle(&mut self, id: String, mut call: LiveCall) {
        if call.tracker.is_finished() {
            if call.tracker.gave_up() && call.record.call.controls.record {
                return self.look_at_recording(id, call);
            }
            return self.forget(call);
        }
        if let Some(at) = call.tracker.poll_timeout() {
            // Deadlines mostly move later: the entry already scheduled wakes the call,
            // which then schedules its next one; an earlier deadline gets its own entry.
            if call.scheduled.is_none_or(|scheduled| at < scheduled) {
                self.timers.push(Reverse((at, id.clone())));
                call.scheduled = Some(at);
            }
        }
        self.calls.insert(id, call);
    }

    /// The calls whose deadline has come.
    fn on_call_timers(&mut self) {
        let now = self.now_ms();
        while self
            .timers
            .peek()
            .is_some_and(|Reverse((at, _))| *at <= now)
        {
            let Some(Reverse((at, id))) = self.timers.pop() else {
                break;
            };
            let Some(mut call) = self.calls.remove(&id) else {
                continue;
            };
            if call.scheduled == Some(at) {
                call.scheduled = None;
                call.tracker.handle_timeout(now);
                self.drain(&mut call, Instant::now());
            }
            self.settle(id, call);
        }
    }

    /// Every call waits to be re-synchronised (or for its deadline).
    fn lose_all(&mut self) {
        self.adopting.clear();
        self.sweep = None;
        let now = self.now_ms();
        let ids: Vec<String> = self.calls.keys().cloned().collect();
        for id in ids {
            if let Some(mut call) = self.calls.remove(&id) {
                call.tracker.handle_pbx_lost(now);
                self.drain(&mut call, Instant::now());
                self.settle(id, call);
            }
        }
    }

    /// The listing after a login is over: each call that the lost connection left goes on
    /// from it, or ends (`complete` is false when the PBX refused the listing).
    fn resynced(&mut self, complete: bool) {
        let now = self.now_ms();
        let ids: Vec<String> = self
            .calls
            .iter()
            .filter(|(_, call)| call.tracker.is_lost())
            .map(|(id, _)| id.clone())
            .collect();
        let mut going_on = 0usize;
        for id in &ids {
            let Some(mut call) = self.calls.remove(id) else {
                continue;
            };
            if complete {
                call.tracker.handle_resynced(now);
            } else {
                call.tracker.handle_resync_failed(now);
            }
            self.drain(&mut call, Instant::now());
            let goes_on = !call.tracker.is_finished();
            going_on += usize::from(goes_on);
            self.metrics.call_resynchronised(
                &self.settings.name,
                if goes_on { "going_on" } else { "ended" },
            );
            self.settle(id.clone(), call);
        }
        if ids.is_empty() {
            return;
        }
        let address = &self.settings.address;
        if complete {
            tracing::info!(%address, calls = ids.len(), going_on, "calls in flight re-synchronised");
        } else {
            tracing::warn!(
                %address,
                calls = ids.len(),
                "the PBX refused CoreShowChannels: calls in flight end with pbx_error; \
                 give the manager user write = reporting (the kit has \
                 write = originate,call,reporting)"
            );
        }
    }

    /// The list after a login is over: each call in flight it shows that this host does not
    /// follow is looked up in Redis (its events wait meanwhile, as for an adopted call).
    fn resume_swept(&mut self, complete: bool) {
        let (Some(sweep), Some(store)) = (self.sweep.take(), &self.call_store) else {
            return;
        };
        if !complete {
            return;
        }
        let overflowed = sweep.overflowed();
        if overflowed {
            tracing::warn!(
                address = %self.settings.address,
                "the PBX lists more than {} calls: calls in flight listed after them are not \
                 looked for, and calls that ended unseen are not looked for either",
                resume::MAX_LOOKUPS
            );
        }
        let listed = sweep.listed();
        for (key, channels) in sweep.calls() {
            if self.calls.contains_key(&key) || self.adopting.contains_key(&key) {
                continue;
            }
            self.adopting.insert(key.clone(), Vec::new());
            let store = store.clone();
            let tx = self.adopt_tx.clone();
            tokio::spawn(async move {
                let found = look_up(&store, &key).await;
                let _ = tx.send((key, Found::InFlight(found, channels)));
            });
        }
        if !overflowed {
            // The calls followed here are not the list's to judge.
            let mut known = listed;
            known.extend(self.calls.keys().chain(self.adopting.keys()).cloned());
            self.find_vanished(known);
        }
    }

    /// Looks for the calls in the store's set of this PBX's calls in flight that the list
    /// did not show (`listed`: every call it showed, and those followed here): they ended
    /// while no host followed them (every host was down), and each is ended as a lost call
    /// whose channels are gone
    /// ([`Found::Vanished`]). Only calls in the set since [`VANISHED_AFTER`] before now, and
    /// only once a second list, [`LOOK_AGAIN_AFTER`] after the one that first missed them,
    /// misses them too ([`Found::Unlisted`]): a host still following a call that just ended
    /// has taken it out of the set by then.
    fn find_vanished(&self, listed: HashSet<String>) {
        let Some(store) = self.call_store.clone() else {
            return;
        };
        let pbx = self.settings.name.to_string();
        let before = self
            .wall(self.now_ms())
            .saturating_sub(millis(VANISHED_AFTER));
        let suspected = self.suspects.clone();
        let tx = self.adopt_tx.clone();
        tokio::spawn(async move {
            let Ok(calls) = store.in_flight(&pbx, resume::MAX_LOOKUPS).await else {
                let _ = tx.send((String::new(), Found::LookAgain));
                return;
            };
            let (mut suspects, mut young) = (Vec::new(), false);
            for (key, since) in calls.into_iter().filter(|(id, _)| !listed.contains(id)) {
                if since > before {
                    young = true;
                } else if suspected.contains(&key) {
                    let found = look_up(&store, &key).await;
                    let _ = tx.send((key, Found::Vanished(found)));
                } else {
                    suspects.push(key);
                }
            }
            let _ = tx.send((String::new(), Found::Unlisted { suspects, young }));
        });
    }

    /// A call the list did not show, from the store's set of calls in flight: unless it
    /// is followed here after all, it is resumed with no channel (it ends `failed` or
    /// `hangup`, `pbx_error`, as a lost call whose channels are gone); a call whose record
    /// is gone (or its notifications all pushed) leaves the set.
    fn vanished(&mut self, channel_id: &str, found: InFlightLookup) {
        if self.calls.contains_key(channel_id) || self.adopting.contains_key(channel_id) {
            return;
        }
        self.adopting.insert(channel_id.to_string(), Vec::new());
        self.resumed(channel_id, found, &[]);
    }

    /// Schedules [`Driver::look_again`] in [`LOOK_AGAIN_AFTER`], unless it is scheduled:
    /// Redis did not answer a lookup (of `channel_id`, or of the set of calls in flight),
    /// or calls of the set were not listed (young ones, or ones to look for once more).
    fn look_again_later(&mut self, redis_down: bool, channel_id: Option<&str>) {
        if self.look_again_at.is_some() {
            return;
        }
        let secs = LOOK_AGAIN_AFTER.as_secs();
        if redis_down {
            tracing::warn!(
                channel_id,
                "Redis did not answer the lookup of the calls in flight: the channels are \
                 listed and looked up again in {secs} s"
            );
        } else {
            tracing::debug!("calls in flight not listed: looked for again in {secs} s");
        }
        self.look_again_at = Some(self.now_ms().saturating_add(millis(LOOK_AGAIN_AFTER)));
    }

    /// Lists the channels again (once up, and no list awaited), for the calls in flight
    /// whose lookup Redis did not answer: they are looked up again as at a login.
    fn look_again(&mut self, session: &mut AmiSession<'_>, now: u64) {
        self.look_again_at = None;
        if self.call_store.is_none() || !session.is_up() || self.sweep.is_some() {
            return;
        }
        self.sweep = Some(resume::Sweep::default());
        session.resync(now);
    }

    /// The record and history of a call in flight arrived (or not): it is followed from
    /// them and its listed `channels` (none for a call that vanished: it ends), then its
    /// buffered events are replayed.
    fn resumed(&mut self, channel_id: &str, found: InFlightLookup, channels: &[resume::Listed]) {
        // A listed call has its first channel listed; a vanished one none.
        let vanished = channels.is_empty();
        let Some(waiting) = self.adopting.remove(channel_id) else {
            return;
        };
        let Ok(found) = found else {
            self.look_again_later(true, Some(channel_id));
            return;
        };
        let Some((record, history)) = found else {
            // Not a call of this service (a vanished one's record expired).
            if vanished {
                self.notifier
                    .in_flight(&self.settings.name, channel_id, None);
            }
            return;
        };
        let notified: Vec<Event> = history.iter().map(|(event, _)| *event).collect();
        if self.calls.contains_key(channel_id) {
            return;
        }
        // Its recording_ready was pushed, or it vanished after its end was (a host died
        // before the set was told) and it records nothing: nothing is left to notify. One
        // that records is followed on: its recording is looked at.
        let ended = notified
            .iter()
            .any(|e| matches!(e, Event::Hangup | Event::Failed));
        let ended_before = vanished && ended;
        if notified.contains(&Event::RecordingReady)
            || (ended_before && !record.call.controls.record)
        {
            self.notifier
                .in_flight(&self.settings.name, channel_id, None);
            return;
        }
        let Some(mut tracker) = self.tracker(channel_id, record.mode(), &record, Some(&notified))
        else {
            return;
        };
        // The call's start and bridge as its history has them (its deadlines count from
        // them), then the list.
        for (event, at_ms) in history {
            tracker.notified_at(event, self.clock.from_wall(at_ms));
        }
        resume::apply_listing(&mut tracker, channels, self.now_ms());
        if ended_before {
            tracing::info!(
                channel_id,
                "a call whose end was pushed, and not its recording_ready, is gone from the \
                 PBX: its recording is looked at"
            );
            return self.follow_found(channel_id, tracker, record, waiting);
        }
        if vanished {
            tracing::info!(
                channel_id,
                notified = notified.len(),
                "a call in flight ended while no host followed it: ended with pbx_error"
            );
        } else {
            tracing::info!(
                channel_id,
                notified = notified.len(),
                "following a call in flight found on the PBX"
            );
        }
        self.metrics.call_resynchronised(
            &self.settings.name,
            if vanished { "ended" } else { "resumed" },
        );
        self.follow_found(channel_id, tracker, record, waiting);
    }

    /// Another host's call: every host sees every AMI event, so each follows every
    /// click2dial call it saw start (its originated channel's `Newchannel`), from the record
    /// the originating host stored in Redis. All hosts then compute the same notifications
    /// with the same sequence numbers (each event's own, [`Event::sequence`]: a host that
    /// missed some numbers the others alike), and the push script's `SET NX` mark lets only
    /// the first copy of each through; if the originating host dies, the others carry on.
    /// Returns whether the message was taken (buffered until the record arrives).
    fn adopt_or_buffer(&mut self, message: &Message<'_>, read_at: Instant) -> bool {
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
        let bytes = message.as_bytes().to_vec();
        if let Some(waiting) = self.adopting.get_mut(key) {
            waiting.push((bytes, read_at));
            return true;
        }
        if !starts {
            return false;
        }
        let key = key.to_string();
        self.adopting.insert(key.clone(), vec![(bytes, read_at)]);
        let store = store.clone();
        let tx = self.adopt_tx.clone();
        tokio::spawn(async move {
            let record = store.load(&key).await.ok().flatten();
            let _ = tx.send((key, Found::Started(record)));
        });
        true
    }

    /// The record of a call being adopted arrived (or not): replay its buffered events.
    fn adopted(&mut self, channel_id: &str, record: Option<CallRecord>) {
        let Some(waiting) = self.adopting.remove(channel_id) else {
            return;
        };
        let Some(record) = record else {
            return; // Not a call of this service, or Redis is unreachable.
        };
        if self.calls.contains_key(channel_id) {
            return;
        }
        let Some(tracker) = self.tracker(channel_id, record.mode(), &record, None) else {
            return;
        };
        tracing::debug!(channel_id, "following a call placed by another host");
        self.follow_found(channel_id, tracker, record, waiting);
    }

    /// Follows a call another process placed (adopted, or resumed): its recording is
    /// pending, its idempotency claim marked accepted, then the events that `waiting`
    /// buffered meanwhile are replayed.
    fn follow_found(
        &mut self,
        channel_id: &str,
        tracker: CallTracker,
        record: CallRecord,
        waiting: Vec<(Vec<u8>, Instant)>,
    ) {
        if let Ok(mut set) = self.live_recordings.lock() {
            set.insert(record.call.recording_ref.as_str().to_string());
        }
        self.notifier.followed(
            &record.owner,
            record.call.contact_ref.as_str(),
            record.call.recording_ref.as_str(),
        );
        let mut call = LiveCall {
            tracker,
            record,
            scheduled: None,
            _slot: None,
        };
        self.drain(&mut call, Instant::now());
        self.settle(channel_id.to_string(), call);
        for (bytes, _) in waiting {
            let message = Message::new(&bytes);
            if let Some((key, event)) = ChannelEvent::from_message(&message) {
                self.on_channel_event(key, &event);
            }
        }
    }

    /// Holds a call that ended unseen while its recording is looked at, off the driver
    /// ([`RECORDING_LOOKS`]).
    fn look_at_recording(&mut self, id: String, call: LiveCall) {
        let dir = self.settings.recordings_dir.clone();
        let recording_ref = call.record.call.recording_ref.as_str().to_string();
        let tx = self.looked_tx.clone();
        self.checking.insert(id.clone(), call);
        tokio::spawn(async move {
            let mut whole = false;
            for look in 0..RECORDING_LOOKS {
                if look > 0 {
                    tokio::time::sleep(RECORDING_LOOK_EVERY).await;
                }
                whole = crate::recording_file::is_whole_within(
                    dir.clone(),
                    recording_ref.clone(),
                    RECORDING_LOOK_WITHIN,
                )
                .await;
                if whole {
                    break;
                }
            }
            let _ = tx.send((id, whole));
        });
    }

    /// The recording of a call that ended unseen was looked at: `recording_ready` when it is
    /// whole; the call is over either way.
    fn recording_looked_at(&mut self, channel_id: &str, whole: bool) {
        let Some(mut call) = self.checking.remove(channel_id) else {
            return;
        };
        if whole {
            call.tracker.handle_recording_whole(self.now_ms());
            self.drain(&mut call, Instant::now());
            tracing::info!(
                channel_id,
                "the recording of a call that ended unseen is whole: recording_ready"
            );
        }
        self.forget(call);
    }

    /// Drops a call that is over: its recording is no longer pending, its slot is free.
    fn forget(&self, call: LiveCall) {
        if let Ok(mut set) = self.live_recordings.lock() {
            set.remove(call.record.call.recording_ref.as_str());
        }
        self.notifier
            .in_flight(&self.settings.name, call.tracker.channel_id(), None);
        self.notifier
            .call_over(&call.record.owner, call.record.call.contact_ref.as_str());
    }

    fn drain(&self, call: &mut LiveCall, since: Instant) {
        while let Some(progress) = call.tracker.poll_progress() {
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
        // Read once: the timestamp and the history's `at_ms` are the same instant (two reads
        // of the wall clock can differ by a millisecond).
        let at_ms = self.wall(progress.at);
        let notification = NotificationJson {
            event: progress.event,
            contact_ref: record.call.contact_ref.as_str(),
            agent: record.call.agent.as_str(),
            callee: &record.call.callee_e164,
            outbound_id: record.call.outbound_id.as_str(),
            recording_ref: record.call.recording_ref.as_str(),
            recording_url: Some(&record.recording_url),
            timestamp: Timestamp::from_unix_millis(at_ms),
            cause: progress.cause,
            q850: progress.q850,
        };
        let mut buf = [0u8; 2048];
        match json::write_notification(&notification, &mut buf) {
            Ok(n) => self.notifier.send(Notification {
                id: notification_id(call.tracker.channel_id(), progress.event.sequence()),
                owner: record.owner.clone(),
                contact_ref: record.call.contact_ref.as_str().to_string(),
                sequence: progress.event.sequence(),
                event: progress.event.as_str(),
                call_key: record.notifications_key.clone(),
                json: std::str::from_utf8(&buf[..n]).map_or_else(
                    |_| String::from_utf8_lossy(&buf[..n]).into_owned(),
                    str::to_owned,
                ),
                at_ms,
                since,
            }),
            Err(e) => tracing::error!(error = %e, "notification does not fit its buffer"),
        }
    }
}

/// A notification's id, `<ChannelId>:<sequence>`, in one allocation of the right size.
fn notification_id(channel_id: &str, sequence: u32) -> String {
    let mut id = String::with_capacity(channel_id.len() + 11);
    id.push_str(channel_id);
    id.push(':');
    let _ = std::fmt::Write::write_fmt(&mut id, format_args!("{sequence}"));
    id
}

/// Writes a `Hangup` of `channel` (normal clearing); its effect shows in the channel's
/// events.
async fn hang_up(
    session: &mut AmiSession<'_>,
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    out: &mut [u8],
    channel: &str,
) -> Result<(), OriginateError> {
    match session.hangup(channel, 16, out) {
        Ok(n) => write
            .write_all(out.get(..n).unwrap_or_default())
            .await
            .map_err(|_| OriginateError::NotConnected),
        Err(session::OriginateError::Encode(e)) => Err(OriginateError::Encode(e.to_string())),
        Err(_) => Err(OriginateError::NotConnected),
    }
}

/// The Originate of a request, as core writes it.
fn originate_call(request: &OriginateRequest) -> OriginateCall<'_> {
    request.record.call.originate(&request.channel_id)
}

#[cfg(test)]
mod tests {
    #[test]
    fn notification_ids() {
        assert_eq!(super::notification_id("c2d-abc", 1), "c2d-abc:1");
        assert_eq!(
            super::notification_id("c2d-abc", u32::MAX),
            "c2d-abc:4294967295"
        );
    }
}
