//! The AMI client: an embassy driver of core's sans-IO [`Session`], as the host's is a tokio
//! one.
//!
//! The session logs in and checks the PBX (the login, `FullyBooted`, the write privileges),
//! sends a `Ping` every `ping_interval_secs` and one `Originate` per call, written by core's
//! action writer with the host's fields: `ActionID` = `ChannelId` =
//! [`ChannelId::for_contact_ref`], the agent's channel, the outbound context, the callee as
//! `Exten` and `CallerID`, the ring timeout, and the `C2D_*` and
//! `PJSIP_HEADER(add,X-Teleforge-*)` variables. Every ping and Originate must be answered in
//! time. Events are skipped: the appliance sends no notifications.
//!
//! When the connection is lost the session says when to connect again (a doubling backoff,
//! capped at `max_backoff_secs`, back to its start after a login that passed the check);
//! meanwhile [`Pbx::state`] is not [`State::Ready`] and the API answers `503`.

use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};

use click2dial_core::ami::session::{self, Down, Event};
use click2dial_core::ami::{Checks, DecodeError, ProblemCode, Session};
use click2dial_core::reference::ChannelId;
use click2dial_core::values::CallValues;
use embassy_futures::select::{select, select3, Either, Either3};
use embassy_net::tcp::{TcpSocket, TcpWriter};
use embassy_net::{Ipv4Address, Stack};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::mutex::Mutex;
use embassy_sync::signal::Signal;
use embassy_time::{with_timeout, Duration, Instant, Timer};

use crate::config::{Ami, Dialplan};
use crate::fmt::{debug, info, warn};

/// Why an Originate was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum OriginateError {
    /// Not logged in to the PBX; nothing was sent.
    NotConnected,
    /// Asterisk answered `Response: Error`.
    Refused,
    /// The action could not be written (a value the codec refuses).
    Encode,
}

struct Request {
    sequence: u32,
    call: CallValues,
}

struct Reply {
    sequence: u32,
    result: Result<(), OriginateError>,
}

/// Whether the PBX takes calls, as the API answers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Not connected, or the connection was lost.
    Unreachable,
    /// The last login or check failed: a wrong username or secret, a missing privilege
    /// (the log names it). Stays so until a check passes.
    Refused,
    /// Logged in and checked.
    Ready,
}

/// The PBX as the listeners see it: its [`State`] and a one-call-at-a-time request slot.
pub struct Pbx {
    state: AtomicU8,
    /// The last failed check's problems, one bit per [`ProblemCode::ALL`] entry.
    problems: AtomicU8,
    requester: Mutex<CriticalSectionRawMutex, ()>,
    request: Signal<CriticalSectionRawMutex, Request>,
    reply: Signal<CriticalSectionRawMutex, Reply>,
    sequence: AtomicU32,
}

impl Default for Pbx {
    fn default() -> Self {
        Self::new()
    }
}

/// The frame buffer: the longest message the appliance takes from the PBX. Its own answers
/// are under 200 bytes and the login check reads `ListCommands` line by line; the rest is
/// events the appliance skips, which Asterisk keeps to a few hundred bytes (a `Newexten` with
/// a long `AppData` stays under 2 KiB). A longer message ends the connection as one over
/// core's [`click2dial_core::ami::MAX_MESSAGE_LEN`] (8 KiB, what the host keeps) does, and the
/// session reconnects.
pub const FRAME_LEN: usize = 4096;

/// Buffers of the AMI task: TCP windows, the frame buffer, and room for one action (the
/// longest `Originate`, with a 230-byte `contact_ref` twice, is about 1.2 KiB).
pub struct AmiBuffers {
    rx: [u8; 512],
    tx: [u8; 512],
    frames: [u8; FRAME_LEN],
    out: [u8; 1536],
}

impl Default for AmiBuffers {
    fn default() -> Self {
        Self::new()
    }
}

impl AmiBuffers {
    /// Zeroed buffers (for a `static`).
    pub const fn new() -> Self {
        Self {
            rx: [0; 512],
            tx: [0; 512],
            frames: [0; FRAME_LEN],
            out: [0; 1536],
        }
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the login, `FullyBooted` and each answer of the check may take.
const CHECK_WITHIN_MS: u64 = 10_000;
/// How long Asterisk may take to answer an Originate before the session is given up.
const ORIGINATE_ANSWER_WITHIN_MS: u64 = 5_000;
const FIRST_BACKOFF_MS: u64 = 250;

/// The session: no campaigns kept, one Originate at a time.
type AmiSession<'a> = Session<'a, 0, 1>;

fn now_ms() -> u64 {
    Instant::now().as_millis()
}

impl Pbx {
    /// A PBX handle that is not connected yet.
    pub const fn new() -> Self {
        Self {
            state: AtomicU8::new(State::Unreachable as u8),
            problems: AtomicU8::new(0),
            requester: Mutex::new(()),
            request: Signal::new(),
            reply: Signal::new(),
            sequence: AtomicU32::new(0),
        }
    }

    /// Whether the PBX takes calls, and if not why.
    pub fn state(&self) -> State {
        match self.state.load(Ordering::Acquire) {
            s if s == State::Ready as u8 => State::Ready,
            s if s == State::Refused as u8 => State::Refused,
            _ => State::Unreachable,
        }
    }

    /// What the last failed check found, while [`State::Refused`] (none otherwise).
    pub fn problems(&self) -> impl Iterator<Item = ProblemCode> {
        let bits = self.problems.load(Ordering::Acquire);
        ProblemCode::ALL
            .into_iter()
            .enumerate()
            .filter(move |(i, _)| bits & (1 << i) != 0)
            .map(|(_, code)| code)
    }

    fn set_state(&self, state: State) {
        if state != State::Refused {
            self.problems.store(0, Ordering::Release);
        }
        self.state.store(state as u8, Ordering::Release);
    }

    /// A connection ended: a PBX that took calls is unreachable; one that refused this
    /// device stays refused until a check passes.
    fn connection_lost(&self) {
        if self.state() == State::Ready {
            self.set_state(State::Unreachable);
        }
    }

    /// Sends an Originate and waits for Asterisk's answer. One call at a time: Asterisk
    /// answers an asynchronous Originate at once.
    pub async fn originate(&self, call: &CallValues) -> Result<(), OriginateError> {
        let _turn = self.requester.lock().await;
        let sequence = self
            .sequence
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1);
        self.reply.reset();
        self.request.signal(Request {
            sequence,
            call: *call,
        });
        loop {
            let reply = self.reply.wait().await;
            if reply.sequence == sequence {
                return reply.result;
            }
        }
    }

    fn answer(&self, sequence: u32, result: Result<(), OriginateError>) {
        self.reply.signal(Reply { sequence, result });
    }

    /// The AMI task: never returns.
    pub async fn run(
        &self,
        stack: Stack<'_>,
        ami: &Ami,
        dialplan: &Dialplan,
        buffers: &mut AmiBuffers,
    ) -> ! {
        let AmiBuffers {
            rx,
            tx,
            frames,
            out,
        } = buffers;
        let config = session::Config {
            checks: Checks {
                username: ami.username,
                secret: ami.secret,
                contexts: &[],
                booted_within_ms: CHECK_WITHIN_MS,
                answer_within_ms: CHECK_WITHIN_MS,
                lists_channels: false,
            },
            ping_interval_ms: u64::from(ami.ping_interval_secs).saturating_mul(1000),
            originate_answer_within_ms: ORIGINATE_ANSWER_WITHIN_MS,
            recheck_misconfigured_ms: CHECK_WITHIN_MS,
            first_backoff_ms: FIRST_BACKOFF_MS,
            max_backoff_ms: u64::from(ami.max_backoff_secs).saturating_mul(1000),
        };
        let mut session = AmiSession::new(config, frames);
        loop {
            // Refuse calls while waiting; nothing is queued for later dialling.
            while !session.wants_connect(now_ms()) {
                let until = Instant::from_millis(session.poll_timeout().unwrap_or(0));
                if let Either::Second(request) = select(Timer::at(until), self.request.wait()).await
                {
                    self.answer(request.sequence, Err(OriginateError::NotConnected));
                }
            }
            stack.wait_config_up().await;
            let mut socket = TcpSocket::new(stack, &mut rx[..], &mut tx[..]);
            socket.set_timeout(Some(Duration::from_secs(
                u64::from(ami.ping_interval_secs).saturating_mul(2),
            )));
            let remote = (Ipv4Address::from(ami.address), ami.port);
            if matches!(
                with_timeout(CONNECT_TIMEOUT, socket.connect(remote)).await,
                Ok(Ok(()))
            ) {
                session.handle_connected(now_ms());
                self.connection(&mut session, &mut socket, dialplan, out)
                    .await;
            } else {
                self.set_state(State::Unreachable);
                session.handle_disconnected(now_ms(), Down::Connect);
                while let Some(event) = session.poll_event_unrouted() {
                    if let Event::Down(why) = event {
                        warn!("AMI session ended: {}", why);
                    }
                }
            }
            self.connection_lost();
            socket.abort();
            let _ = with_timeout(Duration::from_millis(500), socket.flush()).await;
        }
    }

    /// One connection, until the session says it is over.
    async fn connection(
        &self,
        session: &mut AmiSession<'_>,
        socket: &mut TcpSocket<'_>,
        dialplan: &Dialplan,
        out: &mut [u8],
    ) {
        let (mut reader, mut writer) = socket.split();
        // The call whose Originate awaits Asterisk's answer.
        let mut pending: Option<u32> = None;
        let mut chunk = [0u8; 256];
        loop {
            if !self.act(session, &mut writer, out, &mut pending).await {
                return;
            }
            let deadline = session
                .poll_timeout()
                .map_or(Instant::MAX, Instant::from_millis);
            let request = async {
                if pending.is_some() {
                    core::future::pending::<Request>().await
                } else {
                    self.request.wait().await
                }
            };
            match select3(reader.read(&mut chunk), request, Timer::at(deadline)).await {
                Either3::First(Ok(n)) if n > 0 => {
                    let mut rest = chunk.get(..n).unwrap_or_default();
                    while !rest.is_empty() {
                        let taken = session.handle_input(now_ms(), rest);
                        rest = rest.get(taken..).unwrap_or_default();
                        if !self.act(session, &mut writer, out, &mut pending).await {
                            return;
                        }
                        if taken == 0 {
                            // The frame buffer is full and holds no whole message.
                            let why = Down::Protocol(DecodeError::MessageTooLarge);
                            session.handle_disconnected(now_ms(), why);
                        }
                    }
                }
                Either3::First(_) => session.handle_disconnected(now_ms(), Down::Closed),
                Either3::Second(request) => {
                    let id = ChannelId::for_contact_ref(request.call.contact_ref.as_str());
                    let call = request.call.originate(id.as_str());
                    match session.originate(now_ms(), &call, dialplan, out) {
                        Ok(n) => {
                            debug!("Originate {}", id.as_str());
                            pending = Some(request.sequence);
                            if write_all(&mut writer, out.get(..n).unwrap_or_default())
                                .await
                                .is_err()
                            {
                                session.handle_disconnected(now_ms(), Down::Closed);
                            }
                        }
                        Err(session::OriginateError::Encode(_)) => {
                            self.answer(request.sequence, Err(OriginateError::Encode));
                        }
                        Err(_) => self.answer(request.sequence, Err(OriginateError::NotConnected)),
                    }
                }
                Either3::Third(()) => session.handle_timeout(now_ms()),
            }
        }
    }

    /// Sends what the session has to send and acts on what it says; `false` once the
    /// connection is over.
    async fn act(
        &self,
        session: &mut AmiSession<'_>,
        writer: &mut TcpWriter<'_>,
        out: &mut [u8],
        pending: &mut Option<u32>,
    ) -> bool {
        loop {
            while let Some(n) = session.poll_transmit(out) {
                if write_all(writer, out.get(..n).unwrap_or_default())
                    .await
                    .is_err()
                {
                    session.handle_disconnected(now_ms(), Down::Closed);
                }
            }
            match session.poll_event_unrouted() {
                None => break,
                Some(Event::Checked { outcome, .. }) => {
                    if session.is_ready() {
                        info!("AMI logged in");
                    } else {
                        warn!("PBX check: {}", outcome);
                        // What is wrong, by the codes the host's /readyz gives.
                        let mut bits = 0u8;
                        for problem in session.check().problems() {
                            warn!(
                                "PBX problem: {=str} {=str}",
                                problem.code.as_str(),
                                problem.subject()
                            );
                            if let Some(i) =
                                ProblemCode::ALL.iter().position(|c| *c == problem.code)
                            {
                                bits |= 1 << i;
                            }
                        }
                        self.problems.store(bits, Ordering::Release);
                        self.set_state(State::Refused);
                    }
                }
                Some(Event::OriginateAnswered { refused, .. }) => {
                    if let Some(sequence) = pending.take() {
                        let result = refused.map_or(Ok(()), |_| Err(OriginateError::Refused));
                        self.answer(sequence, result);
                    }
                }
                Some(Event::Down(why)) => {
                    warn!("AMI session ended: {}", why);
                    // An Originate written but not answered may have been queued: as the
                    // host does, the listener answers 202 (the request reached the PBX).
                    if let Some(sequence) = pending.take() {
                        self.answer(sequence, Ok(()));
                    }
                    return false;
                }
                Some(_) => {}
            }
        }
        if session.is_ready() {
            self.set_state(State::Ready);
        } else {
            self.connection_lost();
        }
        true
    }
}

async fn write_all(writer: &mut TcpWriter<'_>, mut bytes: &[u8]) -> Result<(), ()> {
    while !bytes.is_empty() {
        match writer.write(bytes).await {
            Ok(0) | Err(_) => return Err(()),
            Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use click2dial_core::{request, DialPolicy, Validators};

    use crate::config::CalleeDigits;

    const DIALPLAN: Dialplan = Dialplan::DEFAULT;

    fn originate(body: &str, dialplan: &Dialplan) -> std::string::String {
        let validators = Validators::new().unwrap();
        let parsed = request::parse(body.as_bytes()).unwrap();
        let valid = validators
            .validate(&parsed, &DialPolicy::SOUTH_AFRICA)
            .unwrap();
        let call = valid.assign_references(&[7; 32]);
        let mut out = [0u8; 1536];
        let params = CallValues::new(&call).unwrap();
        let id = ChannelId::for_contact_ref(params.contact_ref.as_str());
        let n = click2dial_core::originate::write_originate(
            &params.originate(id.as_str()),
            dialplan,
            &mut out,
        )
        .unwrap();
        std::string::String::from_utf8(out[..n].to_vec()).unwrap()
    }

    #[test]
    fn two_leg_originate_has_the_hosts_fields() {
        let text = originate(
            r#"{"agent":"1001","callee":"0027820001234","outbound_id":"27820001234","contact_ref":"crm-42"}"#,
            &Dialplan {
                callee_digits: CalleeDigits::E164,
                ..DIALPLAN
            },
        );
        let id = ChannelId::for_contact_ref("crm-42");
        assert!(text.starts_with(&std::format!(
            "Action: Originate\r\nActionID: {id}\r\nChannel: PJSIP/1001\r\nContext: c2d-outbound\r\nExten: 27820001234\r\nPriority: 1\r\nCallerID: 27820001234\r\nTimeout: 20000\r\nAsync: true\r\nChannelId: {id}\r\nVariable: C2D_CONTACT_REF=crm-42\r\n"
        )), "{text}");
        assert!(text.contains("Variable: PJSIP_HEADER(add,X-Teleforge-Callee)=27820001234\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
    }

    #[test]
    fn one_leg_originate_goes_through_the_direct_channel() {
        let text = originate(
            r#"{"agent":"0820001234","callee":"0820001234","outbound_id":"tvc_spring","contact_ref":"one"}"#,
            &DIALPLAN,
        );
        assert!(text.contains("Channel: Local/0820001234@c2d-single\r\nContext: c2d-direct\r\nExten: s\r\nPriority: 1\r\nCallerID: tvc_spring\r\n"), "{text}");
    }
}
