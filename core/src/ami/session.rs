//! The AMI session: one client's whole life with a PBX, over any number of connections.
//!
//! It logs in and checks the PBX ([`Preflight`]), keeps the session alive with `Ping`s that
//! must be answered before the next one is due, sends `Originate`s that must be answered in
//! time, checks the dialplan again (every [`Config::recheck_misconfigured_ms`] while it
//! misses something, every ping interval once ready, at once when Asterisk refuses an
//! Originate's extension), routes channel events to their call's key, lists the PBX's
//! channels when asked ([`Session::resync`], to re-synchronise the calls in flight after a
//! reconnect), and says when to connect again: after a doubling [`Backoff`] that starts over
//! after every login that passed the check.
//!
//! It contains no networking code and does not read a clock: the driver opens and closes the
//! connection, feeds what it received to [`Session::handle_input`], the time to
//! [`Session::handle_timeout`] when [`Session::poll_timeout`] is due, sends what
//! [`Session::poll_transmit`] writes, and acts on [`Session::poll_event`] until it returns
//! `None`. Times are milliseconds on the driver's monotonic clock.
//!
//! Received bytes go into a buffer the driver lends ([`MAX_MESSAGE_LEN`] bytes hold any
//! message). The login check reads them line by line (Asterisk's `ListCommands` answer
//! outgrows a message), then they are decoded as messages.

use core::fmt;

use super::action::{Action, ActionError, CoreShowChannels, Ping};
use super::frame::{DecodeError, Decoder, Frame, MAX_MESSAGE_LEN};
use super::message::{Kind, Message};
use super::preflight::{Checks, Outcome, Preflight, Text};
use super::value::ResponseStatus;
use crate::call::{ChannelEvent, ListedChannel, CHANNEL_ID_MAX_LEN};
use crate::originate::{write_originate, Dialplan, OriginateCall};

/// The longest line the login check reads.
pub const MAX_CHECK_LINE_LEN: usize = 4096;

/// A receive buffer of this size holds any message.
pub const RECEIVE_BUFFER_LEN: usize = MAX_MESSAGE_LEN;

/// The `ActionID` of every `Ping` (one is outstanding at a time).
pub const PING_ACTION_ID: &str = "c2d-ping";

/// The `ActionID` of every `Hangup` ([`Session::hangup`]); its answer is not awaited.
pub const HANGUP_ACTION_ID: &str = "c2d-hangup";

/// The `ActionID` of the `CoreShowChannels` of [`Session::resync`] (one runs at a time).
pub const SYNC_ACTION_ID: &str = "c2d-sync";

/// The `ActionID` prefix of the check's actions ([`Preflight`]).
const CHECK_ACTION_PREFIX: &str = "c2d-pf-";

/// What the session needs to know; times in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config<'a> {
    /// The login and what the check asks the PBX for.
    pub checks: Checks<'a>,
    /// How often a `Ping` is sent; each must be answered before the next is due.
    pub ping_interval_ms: u64,
    /// How long Asterisk may take to answer an `Originate` (it answers an asynchronous one
    /// at once), or the `Ping` of a [`Session::probe`]; past it the connection is given up.
    pub originate_answer_within_ms: u64,
    /// How often the dialplan is checked again while it misses something (never less
    /// often than the ping interval).
    pub recheck_misconfigured_ms: u64,
    /// The first reconnection delay.
    pub first_backoff_ms: u64,
    /// The longest reconnection delay.
    pub max_backoff_ms: u64,
}

/// Reconnection delays: doubling from the first, capped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    first_ms: u64,
    max_ms: u64,
    next_ms: u64,
}

impl Backoff {
    /// Delays from `first_ms`, doubling up to `max_ms`.
    pub const fn new(first_ms: u64, max_ms: u64) -> Self {
        Self {
            first_ms,
            max_ms,
            next_ms: first_ms,
        }
    }

    /// The delay before the next attempt; the one after is twice as long (up to the cap).
    pub fn next_delay(&mut self) -> u64 {
        let delay = self.next_ms;
        self.next_ms = delay.saturating_mul(2).min(self.max_ms);
        delay
    }

    /// Starts over from the first delay.
    pub fn reset(&mut self) {
        self.next_ms = self.first_ms;
    }
}

/// Why a connection ended (or must be closed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Down {
    /// The driver could not connect.
    Connect,
    /// The PBX closed the connection, or it broke.
    Closed,
    /// The driver is stopping.
    Shutdown,
    /// The PBX does not speak AMI as expected.
    Protocol(DecodeError),
    /// A line of the login check longer than [`MAX_CHECK_LINE_LEN`].
    LineTooLong,
    /// An action could not be written.
    Encode(ActionError),
    /// A `Ping` was not answered before the next one was due, or a probe's in time.
    PingTimeout,
    /// An `Originate` was not answered in time.
    OriginateTimeout,
    /// The listing of [`Session::resync`] was not complete in time.
    SyncTimeout,
    /// The check found a PBX that does not answer as an Asterisk should
    /// ([`Session::check`] says what).
    Check,
    /// The check found a configuration the session cannot go on with (a refused login, a
    /// missing privilege; [`Session::check`] says what).
    Misconfigured,
}

impl fmt::Display for Down {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect => f.write_str("could not connect"),
            Self::Closed => f.write_str("the PBX closed the connection"),
            Self::Shutdown => f.write_str("shutting down"),
            Self::Protocol(e) => write!(f, "AMI protocol: {e}"),
            Self::LineTooLong => write!(
                f,
                "AMI protocol: line longer than {MAX_CHECK_LINE_LEN} bytes"
            ),
            Self::Encode(e) => write!(f, "AMI protocol: {e}"),
            Self::PingTimeout => f.write_str("no answer to Ping"),
            Self::OriginateTimeout => f.write_str("no answer to Originate"),
            Self::SyncTimeout => f.write_str("no complete answer to CoreShowChannels"),
            Self::Check => f.write_str("the PBX check was not answered"),
            Self::Misconfigured => f.write_str("the PBX is misconfigured"),
        }
    }
}

impl core::error::Error for Down {}

/// Why an `Originate` was not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum OriginateError {
    /// Not logged in and checked; nothing was sent.
    NotConnected,
    /// As many Originates as the session keeps await their answer.
    Busy,
    /// The action could not be written (a value the codec refuses).
    Encode(ActionError),
}

impl fmt::Display for OriginateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotConnected => f.write_str("the PBX is not connected"),
            Self::Busy => f.write_str("too many originates await their answer"),
            Self::Encode(e) => write!(f, "the originate could not be encoded: {e}"),
        }
    }
}

impl core::error::Error for OriginateError {}

/// What the driver must act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'b> {
    /// A check finished: the login check (`login`), or a later dialplan check.
    /// [`Session::check`] has its problems and campaigns; [`Session::is_up`] says whether
    /// the session goes on.
    Checked {
        /// The check of a new connection.
        login: bool,
        /// How it ended.
        outcome: Outcome,
    },
    /// Asterisk answered the `Originate` sent with this `ActionID`.
    OriginateAnswered {
        /// The Originate's `ActionID` (its `ChannelId`).
        action_id: &'b str,
        /// `Some(reason)` when Asterisk refused it (`Response: Error`).
        refused: Option<&'b str>,
    },
    /// An event of a call, with the key that routes it ([`ChannelEvent::from_message`]).
    Channel {
        /// The call's `ChannelId`.
        key: &'b str,
        /// The event, reduced.
        event: ChannelEvent<'b>,
        /// The whole message.
        message: Message<'b>,
    },
    /// A channel listed by the `CoreShowChannels` of [`Session::resync`], with its call's
    /// key (its `Linkedid`).
    Listed {
        /// The call's `ChannelId`.
        key: &'b str,
        /// The channel, reduced.
        channel: ListedChannel<'b>,
    },
    /// The listing of [`Session::resync`] is over: `complete`, or refused by the PBX (the
    /// manager user may not run `CoreShowChannels`).
    Resynced {
        /// Every channel was listed.
        complete: bool,
    },
    /// Any other message received while logged in.
    Message(Message<'b>),
    /// The connection is over: the driver closes it (if it has not already), fails the
    /// calls it followed through it and connects again at [`Session::poll_timeout`].
    Down(Down),
}

/// Where the session stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// No connection; the next one is due at this time.
    Disconnected { retry_at: u64 },
    /// Connected; the login check reads lines.
    Checking,
    /// Logged in, checked, taking calls (unless misconfigured).
    Up,
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    action_id: Text<CHANNEL_ID_MAX_LEN>,
    answer_by: u64,
}

/// The session (see the module notes). `C` bounds the campaigns kept, `P` the Originates
/// awaiting their answer.
#[derive(Debug)]
pub struct Session<'a, const C: usize, const P: usize> {
    buf: &'a mut [u8],
    inner: Inner<'a, C, P>,
}

/// Everything but the receive buffer, so events can borrow the buffer while the state
/// changes.
#[derive(Debug)]
struct Inner<'a, const C: usize, const P: usize> {
    config: Config<'a>,
    state: State,
    backoff: Backoff,
    now: u64,
    start: usize,
    end: usize,
    decoder: Decoder,
    check: Preflight<'a, C>,
    /// `check` is running (not yet reported).
    checking: bool,
    check_at_login: bool,
    recheck_run: u32,
    recheck_at: u64,
    recheck_now: bool,
    misconfigured: bool,
    next_ping: u64,
    ping_due: bool,
    ping_outstanding: bool,
    /// A probe's `Ping` must be answered by then.
    probe_by: Option<u64>,
    /// The `CoreShowChannels` of a resync is to be sent.
    sync_due: bool,
    /// The resync's listing must be complete by then.
    sync_by: Option<u64>,
    /// When bytes last came from the PBX on this connection (or it connected).
    heard_at: u64,
    pending: [Pending; P],
    pending_len: usize,
    down: Option<Down>,
}

impl<'a, const C: usize, const P: usize> Session<'a, C, P> {
    /// A session that connects at once, receiving into `buf` (at least
    /// [`MAX_MESSAGE_LEN`] bytes, or the longest message it can take is shorter).
    pub fn new(config: Config<'a>, buf: &'a mut [u8]) -> Self {
        Self {
            buf,
            inner: Inner::new(config),
        }
    }

    /// Whether the session is connected (checking or logged in).
    pub fn is_connected(&self) -> bool {
        self.inner.is_connected()
    }

    /// Whether the session is logged in and checked well enough to go on (it may still be
    /// misconfigured: see [`Session::is_ready`]).
    pub fn is_up(&self) -> bool {
        self.inner.state == State::Up
    }

    /// Whether calls can be placed: logged in and the last check found nothing wrong.
    pub fn is_ready(&self) -> bool {
        self.inner.is_ready()
    }

    /// Whether it is time to open a connection.
    pub fn wants_connect(&self, now: u64) -> bool {
        matches!(self.inner.state, State::Disconnected { retry_at } if now >= retry_at)
            && self.inner.down.is_none()
    }

    /// Asks the PBX for a sign of life: a `Ping` (unless one is outstanding) that must be
    /// answered within [`Config::originate_answer_within_ms`], or the connection is given
    /// up ([`Down::PingTimeout`]). A driver probes a PBX that has been silent for a while
    /// before it writes an `Originate`, so that a hung PBX is found before anything is
    /// dialled ([`Session::is_probing`] until the answer). Only while up.
    pub fn probe(&mut self, now: u64) {
        let s = &mut self.inner;
        s.now = now;
        if s.state != State::Up || s.probe_by.is_some() {
            return;
        }
        if !s.ping_outstanding {
            s.ping_due = true;
            s.ping_outstanding = true;
        }
        s.probe_by = Some(now.saturating_add(s.config.originate_answer_within_ms));
    }

    /// Whether a probe awaits its answer.
    pub fn is_probing(&self) -> bool {
        self.inner.probe_by.is_some()
    }

    /// Asks the PBX for every channel it has (`CoreShowChannels`), to re-synchronise the
    /// calls a lost connection left in flight: each listed channel comes as
    /// [`Event::Listed`], keyed like the calls' events, then [`Event::Resynced`]. The listing
    /// must be complete within [`Config::originate_answer_within_ms`], or the connection is
    /// given up ([`Down::SyncTimeout`]). Only while up, one at a time; the events are only
    /// routed by [`Session::poll_event`].
    pub fn resync(&mut self, now: u64) {
        let s = &mut self.inner;
        s.now = now;
        if s.state != State::Up || s.sync_by.is_some() {
            return;
        }
        s.sync_due = true;
        s.sync_by = Some(now.saturating_add(s.config.originate_answer_within_ms));
    }

    /// Whether a resync's listing is awaited.
    pub fn is_resyncing(&self) -> bool {
        self.inner.sync_by.is_some()
    }

    /// When bytes last came from the PBX on this connection (or it was opened).
    pub fn heard_at(&self) -> u64 {
        self.inner.heard_at
    }

    /// The last check (or the one running): its problems and campaigns.
    pub fn check(&self) -> &Preflight<'a, C> {
        &self.inner.check
    }

    /// A connection is open: the login check starts.
    pub fn handle_connected(&mut self, now: u64) {
        self.inner.connected(now);
    }

    /// The driver saw the connection end (or could not open it): [`Event::Down`] follows.
    pub fn handle_disconnected(&mut self, now: u64, why: Down) {
        self.inner.now = now;
        self.inner.close(why);
    }

    /// Takes received bytes; returns how many fit (poll events, then offer the rest).
    pub fn handle_input(&mut self, now: u64, bytes: &[u8]) -> usize {
        let s = &mut self.inner;
        s.now = now;
        if !s.is_connected() {
            return bytes.len();
        }
        if !bytes.is_empty() {
            s.heard_at = now;
        }
        if s.start > 0 && s.start <= s.end && s.end <= self.buf.len() {
            self.buf.copy_within(s.start..s.end, 0);
            s.end = s.end.saturating_sub(s.start);
            s.start = 0;
        }
        let free = self.buf.get_mut(s.end..).unwrap_or_default();
        let n = free.len().min(bytes.len());
        if let (Some(dst), Some(src)) = (free.get_mut(..n), bytes.get(..n)) {
            dst.copy_from_slice(src);
        }
        s.end = s.end.saturating_add(n);
        n
    }

    /// When [`Session::handle_timeout`] is due, if ever.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.inner.poll_timeout()
    }

    /// The time has come (or passed): pings, answer deadlines, checks.
    pub fn handle_timeout(&mut self, now: u64) {
        self.inner.handle_timeout(now);
    }

    /// Writes the next action to send into `out`; `None` when there is nothing to send.
    /// An action that cannot be written ends the connection ([`Down::Encode`]).
    pub fn poll_transmit(&mut self, out: &mut [u8]) -> Option<usize> {
        self.inner.poll_transmit(out)
    }

    /// Writes the call's `Originate` into `out` (its `ActionID` is its `ChannelId`) and
    /// expects its answer within [`Config::originate_answer_within_ms`].
    ///
    /// # Errors
    /// Not ready (a misconfigured PBX takes no calls), too many awaiting an answer, or a
    /// value the codec refuses.
    pub fn originate(
        &mut self,
        now: u64,
        call: &OriginateCall<'_>,
        dialplan: &Dialplan<'_>,
        out: &mut [u8],
    ) -> Result<usize, OriginateError> {
        self.inner.originate(now, call, dialplan, out)
    }

    /// Writes a `Hangup` of `channel` (its name or `Uniqueid`) with Q.850 `cause` into `out`.
    /// Its answer is not awaited: the channel's `Hangup` event says it happened (and
    /// `No such channel` is the answer when it is already gone, or not there yet).
    ///
    /// # Errors
    /// Not ready, or a channel the codec refuses.
    pub fn hangup(
        &mut self,
        channel: &str,
        cause: u16,
        out: &mut [u8],
    ) -> Result<usize, OriginateError> {
        if !self.is_ready() {
            return Err(OriginateError::NotConnected);
        }
        super::action::Hangup {
            action_id: HANGUP_ACTION_ID,
            channel,
            cause,
        }
        .write(out)
        .map_err(OriginateError::Encode)
    }

    /// The next thing to act on; call until `None` after every input and timeout, sending
    /// what [`Session::poll_transmit`] writes after each.
    pub fn poll_event(&mut self) -> Option<Event<'_>> {
        self.poll(true)
    }

    /// [`Session::poll_event`] for a client that follows no calls (the appliance): channel
    /// events come as [`Event::Message`], and the code that reads them is left out.
    pub fn poll_event_unrouted(&mut self) -> Option<Event<'_>> {
        self.poll(false)
    }

    #[inline(always)]
    fn poll(&mut self, route: bool) -> Option<Event<'_>> {
        let s = &mut self.inner;
        if let Some(down) = s.down.take() {
            return Some(Event::Down(down));
        }
        match s.state {
            State::Disconnected { .. } => None,
            State::Checking => s.poll_login(self.buf),
            State::Up => s.poll_up(self.buf, route),
        }
    }
}

impl<'a, const C: usize, const P: usize> Inner<'a, C, P> {
    fn new(config: Config<'a>) -> Self {
        Self {
            config,
            state: State::Disconnected { retry_at: 0 },
            backoff: Backoff::new(config.first_backoff_ms, config.max_backoff_ms),
            now: 0,
            start: 0,
            end: 0,
            decoder: Decoder::without_banner(),
            check: Preflight::dialplan(config.checks, 0, 0),
            checking: false,
            check_at_login: false,
            recheck_run: 0,
            recheck_at: 0,
            recheck_now: false,
            misconfigured: false,
            next_ping: 0,
            ping_due: false,
            ping_outstanding: false,
            probe_by: None,
            sync_due: false,
            sync_by: None,
            heard_at: 0,
            pending: [Pending {
                action_id: Text::EMPTY,
                answer_by: 0,
            }; P],
            pending_len: 0,
            down: None,
        }
    }

    fn is_connected(&self) -> bool {
        !matches!(self.state, State::Disconnected { .. })
    }

    fn is_ready(&self) -> bool {
        self.state == State::Up && !self.misconfigured
    }

    fn connected(&mut self, now: u64) {
        self.now = now;
        self.state = State::Checking;
        self.start = 0;
        self.end = 0;
        // The check reads the banner as a line.
        self.decoder = Decoder::without_banner();
        self.check = Preflight::login(self.config.checks, now);
        self.checking = true;
        self.check_at_login = true;
        self.recheck_run = 0;
        self.recheck_now = false;
        self.misconfigured = false;
        self.ping_due = false;
        self.ping_outstanding = false;
        self.probe_by = None;
        self.sync_due = false;
        self.sync_by = None;
        self.heard_at = now;
        self.pending_len = 0;
        self.down = None;
    }

    fn poll_timeout(&self) -> Option<u64> {
        match self.state {
            State::Disconnected { retry_at } => Some(retry_at),
            State::Checking => self.check.poll_timeout(),
            State::Up => {
                let check = if self.checking {
                    self.check.poll_timeout()
                } else if self.config.checks.contexts.is_empty() {
                    // Nothing to check again.
                    None
                } else {
                    Some(self.recheck_at)
                };
                let originate = self.pending().map(|p| p.answer_by).min();
                [
                    Some(self.next_ping),
                    check,
                    originate,
                    self.probe_by,
                    self.sync_by,
                ]
                .into_iter()
                .flatten()
                .min()
            }
        }
    }

    fn handle_timeout(&mut self, now: u64) {
        self.now = now;
        match self.state {
            State::Disconnected { .. } => {}
            State::Checking => self.check.handle_timeout(now),
            State::Up => {
                if self.pending().any(|p| now >= p.answer_by) {
                    return self.close(Down::OriginateTimeout);
                }
                if self.probe_by.is_some_and(|by| now >= by) {
                    return self.close(Down::PingTimeout);
                }
                if self.sync_by.is_some_and(|by| now >= by) {
                    return self.close(Down::SyncTimeout);
                }
                if now >= self.next_ping {
                    if self.ping_outstanding {
                        return self.close(Down::PingTimeout);
                    }
                    self.ping_due = true;
                    self.ping_outstanding = true;
                    self.next_ping = self
                        .next_ping
                        .saturating_add(self.config.ping_interval_ms)
                        .max(now.saturating_add(1));
                }
                if self.checking {
                    self.check.handle_timeout(now);
                }
            }
        }
    }

    fn poll_transmit(&mut self, out: &mut [u8]) -> Option<usize> {
        let written = match self.state {
            State::Disconnected { .. } => return None,
            State::Checking => self.check.poll_transmit(out),
            State::Up => {
                if self.ping_due {
                    self.ping_due = false;
                    Ping {
                        action_id: PING_ACTION_ID,
                    }
                    .write(out)
                    .map(Some)
                } else if self.sync_due {
                    self.sync_due = false;
                    CoreShowChannels {
                        action_id: SYNC_ACTION_ID,
                    }
                    .write(out)
                    .map(Some)
                } else {
                    self.maybe_recheck();
                    if self.checking {
                        self.check.poll_transmit(out)
                    } else {
                        Ok(None)
                    }
                }
            }
        };
        match written {
            Ok(n) => n,
            Err(e) => {
                self.close(Down::Encode(e));
                None
            }
        }
    }

    fn originate(
        &mut self,
        now: u64,
        call: &OriginateCall<'_>,
        dialplan: &Dialplan<'_>,
        out: &mut [u8],
    ) -> Result<usize, OriginateError> {
        self.now = now;
        if !self.is_ready() {
            return Err(OriginateError::NotConnected);
        }
        if call.channel_id.len() > CHANNEL_ID_MAX_LEN {
            return Err(OriginateError::Encode(ActionError::TooLong {
                header: "ActionID",
            }));
        }
        let Some(slot) = self.pending.get_mut(self.pending_len) else {
            return Err(OriginateError::Busy);
        };
        let n = write_originate(call, dialplan, out).map_err(OriginateError::Encode)?;
        *slot = Pending {
            action_id: Text::from_parts(&[call.channel_id]),
            answer_by: now.saturating_add(self.config.originate_answer_within_ms),
        };
        self.pending_len = self.pending_len.saturating_add(1);
        Ok(n)
    }

    fn poll_login(&mut self, buf: &[u8]) -> Option<Event<'static>> {
        loop {
            if let Some(outcome) = self.check.outcome() {
                self.login_checked(outcome);
                return Some(Event::Checked {
                    login: true,
                    outcome,
                });
            }
            let rest = buf.get(self.start..self.end).unwrap_or_default();
            let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
                if rest.len() > MAX_CHECK_LINE_LEN || self.start == 0 && self.end == buf.len() {
                    self.close(Down::LineTooLong);
                    return self.down.take().map(Event::Down);
                }
                return None;
            };
            let line = rest.get(..end).unwrap_or_default();
            self.check.handle_line(self.now, line);
            self.start = self.start.saturating_add(end).saturating_add(2);
        }
    }

    fn login_checked(&mut self, outcome: Outcome) {
        self.checking = false;
        let now = self.now;
        if self.check.problems().any(|p| !p.code.is_configuration()) {
            return self.close(Down::Check);
        }
        if !usable(outcome) {
            return self.close(Down::Misconfigured);
        }
        self.backoff.reset();
        self.state = State::Up;
        self.misconfigured = outcome != Outcome::Passed;
        self.next_ping = now.saturating_add(self.config.ping_interval_ms);
        self.recheck_at = now.saturating_add(self.recheck_interval());
    }

    fn recheck_interval(&self) -> u64 {
        if self.misconfigured {
            self.config
                .recheck_misconfigured_ms
                .min(self.config.ping_interval_ms)
        } else {
            self.config.ping_interval_ms
        }
    }

    fn maybe_recheck(&mut self) {
        let due = self.now >= self.recheck_at || self.recheck_now;
        if self.checking || !due || self.config.checks.contexts.is_empty() {
            return;
        }
        self.recheck_now = false;
        self.recheck_run = self.recheck_run.wrapping_add(1);
        self.check = Preflight::dialplan(self.config.checks, self.recheck_run, self.now);
        self.checking = true;
        self.check_at_login = false;
    }

    #[inline(always)]
    fn poll_up<'b>(&mut self, buf: &'b [u8], route: bool) -> Option<Event<'b>> {
        loop {
            if self.checking {
                if let Some(outcome) = self.check.outcome() {
                    self.rechecked(outcome);
                    return Some(Event::Checked {
                        login: false,
                        outcome,
                    });
                }
            }
            let window = buf.get(self.start..self.end).unwrap_or_default();
            let decoded = match self.decoder.decode(window) {
                Ok(Some(decoded)) => decoded,
                Ok(None) => return None,
                Err(e) => {
                    self.close(Down::Protocol(e));
                    return self.down.take().map(Event::Down);
                }
            };
            self.start = self.start.saturating_add(decoded.len);
            let Frame::Message(message) = decoded.frame else {
                continue;
            };
            if self.checking {
                self.check.handle_message(self.now, &message);
            }
            let action_id = message.action_id();
            if action_id.is_some_and(|id| id.starts_with(CHECK_ACTION_PREFIX)) {
                continue;
            }
            if route && action_id == Some(SYNC_ACTION_ID) {
                if let Some(event) = self.sync_message(&message) {
                    return Some(event);
                }
                continue;
            }
            if let Kind::Response(status) = message.kind() {
                let Some(action_id) = action_id else {
                    continue;
                };
                if action_id == PING_ACTION_ID {
                    self.ping_outstanding = false;
                    self.probe_by = None;
                    continue;
                }
                let Some(i) = self
                    .pending
                    .get(..self.pending_len)
                    .unwrap_or_default()
                    .iter()
                    .position(|p| p.action_id.as_str() == action_id)
                else {
                    continue;
                };
                let last = self.pending_len.saturating_sub(1);
                self.pending.swap(i, last);
                self.pending_len = last;
                let refused = (status != ResponseStatus::Success)
                    .then(|| message.message().unwrap_or("no reason"));
                // The dialplan changed under the client: look again at once.
                self.recheck_now |=
                    refused.is_some_and(|r| r.starts_with("Extension does not exist"));
                return Some(Event::OriginateAnswered { action_id, refused });
            }
            if !route {
                return Some(Event::Message(message));
            }
            return Some(match ChannelEvent::from_message(&message) {
                Some((key, event)) => Event::Channel {
                    key,
                    event,
                    message,
                },
                None => Event::Message(message),
            });
        }
    }

    /// A message of the resync's listing: a listed channel, or its end.
    fn sync_message<'b>(&mut self, message: &Message<'b>) -> Option<Event<'b>> {
        self.sync_by?;
        let end = match message.kind() {
            Kind::Response(ResponseStatus::Success) => return None,
            Kind::Response(_) => Event::Resynced { complete: false },
            Kind::Event(_) => {
                if let Some((key, channel)) = ListedChannel::from_message(message) {
                    return Some(Event::Listed { key, channel });
                }
                if !message.is_event("CoreShowChannelsComplete") {
                    return None;
                }
                Event::Resynced { complete: true }
            }
            _ => return None,
        };
        self.sync_by = None;
        Some(end)
    }

    fn rechecked(&mut self, outcome: Outcome) {
        self.checking = false;
        if !self.check.problems().any(|p| !p.code.is_configuration()) {
            if !usable(outcome) {
                return self.close(Down::Misconfigured);
            }
            self.misconfigured = outcome != Outcome::Passed;
        }
        self.recheck_at = self.now.saturating_add(self.recheck_interval());
    }

    fn pending(&self) -> impl Iterator<Item = &Pending> {
        self.pending
            .get(..self.pending_len)
            .unwrap_or_default()
            .iter()
    }

    fn close(&mut self, why: Down) {
        if !self.is_connected() {
            if why == Down::Connect {
                let retry_at = self.now.saturating_add(self.backoff.next_delay());
                self.state = State::Disconnected { retry_at };
                self.down = Some(why);
            }
            return;
        }
        let retry_at = self.now.saturating_add(self.backoff.next_delay());
        self.state = State::Disconnected { retry_at };
        self.down = Some(why);
        self.checking = false;
        self.pending_len = 0;
        self.probe_by = None;
        self.sync_due = false;
        self.sync_by = None;
        self.start = 0;
        self.end = 0;
    }
}

/// Whether the session can go on after a check with this outcome.
fn usable(outcome: Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Passed
            | Outcome::Failed {
                session_usable: true
            }
    )
}
