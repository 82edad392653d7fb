//! The AMI client: one task keeps a logged-in session to the PBX and places the calls.
//!
//! It connects, logs in, waits for `FullyBooted`, then sends a `Ping` every
//! `ping_interval_secs` and one `Originate` per call, written by core's action writer with the
//! host's fields: `ActionID` = `ChannelId` = [`ChannelId::for_contact_ref`], the agent's
//! channel, the outbound context, the callee as `Exten` and `CallerID`, the ring timeout, and
//! the `C2D_*` and `PJSIP_HEADER(add,X-Teleforge-*)` variables. Events are decoded and
//! skipped: the appliance sends no notifications.
//!
//! When the connection is lost it reconnects after a doubling backoff (capped at
//! `max_backoff_secs`, reset by a successful login); meanwhile [`Pbx::is_ready`] is false and
//! the API answers `503`.

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use click2dial_core::ami::{
    Action, DecodeError, Decoder, Frame, Kind, Login, Ping, ResponseStatus, MAX_MESSAGE_LEN,
};
use click2dial_core::reference::{ChannelId, Reference};
use click2dial_core::validate::Call;
use embassy_futures::select::{select, select3, Either, Either3};
use embassy_net::tcp::{TcpReader, TcpSocket, TcpWriter};
use embassy_net::{Ipv4Address, Stack};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::mutex::Mutex;
use embassy_sync::signal::Signal;
use embassy_time::{with_timeout, Duration, Instant, Timer};

use crate::config::{Ami, Dialplan};
use crate::fmt::{debug, info, warn};
use click2dial_core::originate::{write_originate, OriginateCall};

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

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SessionError {
    /// The TCP connection could not be opened.
    Connect,
    /// The PBX closed the connection or it broke.
    Closed,
    /// The PBX refused the login.
    LoginRefused,
    /// The PBX does not speak AMI as expected.
    Protocol(DecodeError),
    /// An action could not be written.
    Encode,
    /// No answer to `Ping`, or no `FullyBooted` after login.
    Timeout,
}

/// A text value of at most `N` bytes, owned, so a call crosses from a listener to the AMI task
/// without borrowing the request.
#[derive(Clone, Copy)]
struct Text<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> Text<N> {
    fn new(value: &str) -> Option<Self> {
        let mut bytes = [0u8; N];
        bytes
            .get_mut(..value.len())?
            .copy_from_slice(value.as_bytes());
        Some(Self {
            bytes,
            len: value.len(),
        })
    }

    fn as_str(&self) -> &str {
        self.bytes
            .get(..self.len)
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or_default()
    }
}

/// What the AMI task needs to place one call.
#[derive(Clone, Copy)]
pub struct CallParams {
    agent: Text<16>,
    callee: Text<16>,
    callee_e164: Text<16>,
    outbound_id: Text<68>,
    contact_ref: Text<{ click2dial_core::validate::CONTACT_REF_MAX_LEN }>,
    recording_ref: Reference,
    single_leg: bool,
}

impl CallParams {
    /// Copies the values of a validated call; `None` if one is longer than any valid value.
    pub fn new(call: &Call<'_>) -> Option<Self> {
        let (cc, rest) = call.valid.callee.e164_parts();
        let mut e164 = [0u8; 16];
        let len = cc.len().checked_add(rest.len())?;
        e164.get_mut(..cc.len())?.copy_from_slice(cc.as_bytes());
        e164.get_mut(cc.len()..len)?
            .copy_from_slice(rest.as_bytes());
        Some(Self {
            agent: Text::new(call.valid.agent)?,
            callee: Text::new(call.valid.callee.as_str())?,
            callee_e164: Text::new(core::str::from_utf8(e164.get(..len)?).ok()?)?,
            outbound_id: Text::new(call.valid.outbound_id.as_str())?,
            contact_ref: Text::new(call.contact_ref.as_str())?,
            recording_ref: call.recording_ref,
            single_leg: call.valid.single_leg,
        })
    }

    /// The Asterisk `ChannelId` (and `ActionID`) of this call.
    fn channel_id(&self) -> ChannelId {
        ChannelId::for_contact_ref(self.contact_ref.as_str())
    }

    /// Writes the call's Originate (core composes it, as for the host).
    fn write_originate(&self, dialplan: &Dialplan, out: &mut [u8]) -> Option<usize> {
        let id = self.channel_id();
        let call = OriginateCall {
            channel_id: id.as_str(),
            agent: self.agent.as_str(),
            callee: self.callee.as_str(),
            callee_e164: self.callee_e164.as_str(),
            outbound_id: self.outbound_id.as_str(),
            contact_ref: self.contact_ref.as_str(),
            recording_ref: self.recording_ref.as_str(),
            single_leg: self.single_leg,
        };
        write_originate(&call, dialplan, out).ok()
    }
}

struct Request {
    sequence: u32,
    call: CallParams,
}

struct Reply {
    sequence: u32,
    result: Result<(), OriginateError>,
}

/// The PBX as the listeners see it: a readiness flag and a one-call-at-a-time request slot.
pub struct Pbx {
    ready: AtomicBool,
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

/// Buffers of the AMI task: TCP windows, the frame buffer core's decoder needs (one message of
/// [`MAX_MESSAGE_LEN`] always fits), and room for one action.
pub struct AmiBuffers {
    rx: [u8; 1024],
    tx: [u8; 1024],
    frames: [u8; MAX_MESSAGE_LEN],
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
            rx: [0; 1024],
            tx: [0; 1024],
            frames: [0; MAX_MESSAGE_LEN],
            out: [0; 1536],
        }
    }
}

const LOGIN_ID: &str = "login";
const PING_ID: &str = "ping";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long Asterisk may take to answer an Originate before the session is given up.
const ORIGINATE_ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

impl Pbx {
    /// A PBX handle that is not connected yet.
    pub const fn new() -> Self {
        Self {
            ready: AtomicBool::new(false),
            requester: Mutex::new(()),
            request: Signal::new(),
            reply: Signal::new(),
            sequence: AtomicU32::new(0),
        }
    }

    /// Whether the session is logged in.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Sends an Originate and waits for Asterisk's answer. One call at a time: Asterisk
    /// answers an asynchronous Originate at once.
    pub async fn originate(&self, call: &CallParams) -> Result<(), OriginateError> {
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
        let max_backoff = Duration::from_secs(u64::from(ami.max_backoff_secs));
        let mut backoff = FIRST_BACKOFF;
        loop {
            stack.wait_config_up().await;
            let mut logged_in = false;
            let result = self
                .session(stack, ami, dialplan, buffers, &mut logged_in)
                .await;
            self.ready.store(false, Ordering::Release);
            warn!("AMI session ended: {}", result);
            if logged_in {
                backoff = FIRST_BACKOFF;
            }
            // Refuse calls while waiting; nothing is queued for later dialling.
            let until = Instant::now() + backoff;
            while let Either::Second(request) = select(Timer::at(until), self.request.wait()).await
            {
                self.answer(request.sequence, Err(OriginateError::NotConnected));
            }
            backoff = (backoff * 2).min(max_backoff);
        }
    }

    async fn session(
        &self,
        stack: Stack<'_>,
        ami: &Ami,
        dialplan: &Dialplan,
        buffers: &mut AmiBuffers,
        logged_in: &mut bool,
    ) -> SessionError {
        let AmiBuffers {
            rx,
            tx,
            frames,
            out,
        } = buffers;
        let mut socket = TcpSocket::new(stack, rx, tx);
        socket.set_timeout(Some(Duration::from_secs(
            u64::from(ami.ping_interval_secs).saturating_mul(2),
        )));
        let remote = (Ipv4Address::from(ami.address), ami.port);
        let connected = with_timeout(CONNECT_TIMEOUT, socket.connect(remote)).await;
        if !matches!(connected, Ok(Ok(()))) {
            socket.abort();
            return SessionError::Connect;
        }
        let error = self
            .logged_in_session(&mut socket, ami, dialplan, frames, out, logged_in)
            .await;
        socket.abort();
        let _ = with_timeout(Duration::from_millis(500), socket.flush()).await;
        error
    }

    async fn logged_in_session(
        &self,
        socket: &mut TcpSocket<'_>,
        ami: &Ami,
        dialplan: &Dialplan,
        frames: &mut [u8],
        out: &mut [u8],
        logged_in: &mut bool,
    ) -> SessionError {
        let (mut reader, mut writer) = socket.split();
        let mut frames = Frames::new(frames);
        let login = Login {
            action_id: LOGIN_ID,
            username: ami.username,
            secret: ami.secret,
        };
        let Ok(n) = login.write(out) else {
            return SessionError::Encode;
        };
        if let Err(e) = write_all(&mut writer, out.get(..n).unwrap_or_default()).await {
            return e;
        }
        let handshake = async {
            let mut accepted = false;
            loop {
                while let Some(step) = frames.next(|frame| match frame {
                    Frame::Message(m) => match m.kind() {
                        Kind::Response(status) if m.action_id() == Some(LOGIN_ID) => {
                            Handshake::LoginAnswer(status == ResponseStatus::Success)
                        }
                        Kind::Event(name) if name.eq_ignore_ascii_case("FullyBooted") => {
                            Handshake::Booted
                        }
                        _ => Handshake::Other,
                    },
                    Frame::Banner(_) => Handshake::Other,
                })? {
                    match step {
                        Handshake::LoginAnswer(true) => accepted = true,
                        Handshake::LoginAnswer(false) => return Err(SessionError::LoginRefused),
                        Handshake::Booted if accepted => return Ok(()),
                        Handshake::Booted | Handshake::Other => {}
                    }
                }
                frames.fill(&mut reader).await?;
            }
        };
        match with_timeout(LOGIN_TIMEOUT, handshake).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return e,
            Err(_) => return SessionError::Timeout,
        }
        info!("AMI logged in");
        *logged_in = true;
        self.ready.store(true, Ordering::Release);

        let ping_interval = Duration::from_secs(u64::from(ami.ping_interval_secs));
        let mut next_ping = Instant::now() + ping_interval;
        let mut ping_outstanding = false;
        // The call whose Originate awaits Asterisk's answer: sequence, ActionID, deadline.
        let mut pending: Option<(u32, ChannelId, Instant)> = None;
        let error = loop {
            let answered = loop {
                let pending_id = pending.map(|(_, id, _)| id);
                let step = frames.next(|frame| match frame {
                    Frame::Message(m) => match (m.kind(), m.action_id()) {
                        (Kind::Response(_), Some(PING_ID)) => Step::Pong,
                        (Kind::Response(status), Some(id))
                            if pending_id.is_some_and(|p| p.as_str() == id) =>
                        {
                            Step::Answer(status == ResponseStatus::Success)
                        }
                        _ => Step::Other,
                    },
                    Frame::Banner(_) => Step::Other,
                });
                match step {
                    Ok(Some(Step::Pong)) => ping_outstanding = false,
                    Ok(Some(Step::Answer(ok))) => break Ok(Some(ok)),
                    Ok(Some(Step::Other)) => {}
                    Ok(None) => break Ok(None),
                    Err(e) => break Err(e),
                }
            };
            match answered {
                Ok(Some(ok)) => {
                    if let Some((sequence, _, _)) = pending.take() {
                        let result = if ok {
                            Ok(())
                        } else {
                            Err(OriginateError::Refused)
                        };
                        self.answer(sequence, result);
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => break e,
            }
            let deadline = match pending {
                Some((_, _, answer_by)) => answer_by.min(next_ping),
                None => next_ping,
            };
            let request = async {
                if pending.is_some() {
                    core::future::pending::<Request>().await
                } else {
                    self.request.wait().await
                }
            };
            match select3(frames.fill(&mut reader), request, Timer::at(deadline)).await {
                Either3::First(Ok(())) => {}
                Either3::First(Err(e)) => break e,
                Either3::Second(request) => {
                    let Some(n) = request.call.write_originate(dialplan, out) else {
                        self.answer(request.sequence, Err(OriginateError::Encode));
                        continue;
                    };
                    let id = request.call.channel_id();
                    debug!("Originate {}", id.as_str());
                    pending = Some((
                        request.sequence,
                        id,
                        Instant::now() + ORIGINATE_ANSWER_TIMEOUT,
                    ));
                    if let Err(e) = write_all(&mut writer, out.get(..n).unwrap_or_default()).await {
                        break e;
                    }
                }
                Either3::Third(()) => {
                    if pending.is_some_and(|(_, _, by)| Instant::now() >= by) {
                        break SessionError::Timeout;
                    }
                    if Instant::now() >= next_ping {
                        if ping_outstanding {
                            break SessionError::Timeout;
                        }
                        let Ok(n) = (Ping { action_id: PING_ID }).write(out) else {
                            break SessionError::Encode;
                        };
                        if let Err(e) =
                            write_all(&mut writer, out.get(..n).unwrap_or_default()).await
                        {
                            break e;
                        }
                        ping_outstanding = true;
                        next_ping += ping_interval;
                    }
                }
            }
        };
        // An Originate written but not answered may have been queued: as the host does, the
        // listener answers 202 (the request reached the PBX).
        if let Some((sequence, _, _)) = pending {
            self.answer(sequence, Ok(()));
        }
        error
    }
}

enum Handshake {
    LoginAnswer(bool),
    Booted,
    Other,
}

enum Step {
    Pong,
    Answer(bool),
    Other,
}

/// Bytes from the socket, decoded frame by frame with core's [`Decoder`].
struct Frames<'b> {
    buf: &'b mut [u8],
    start: usize,
    end: usize,
    decoder: Decoder,
}

impl<'b> Frames<'b> {
    fn new(buf: &'b mut [u8]) -> Self {
        Self {
            buf,
            start: 0,
            end: 0,
            decoder: Decoder::new(),
        }
    }

    /// Decodes the next buffered frame and hands it to `f`; `None` when more bytes are needed.
    fn next<R>(&mut self, f: impl FnOnce(Frame<'_>) -> R) -> Result<Option<R>, SessionError> {
        let window = self.buf.get(self.start..self.end).unwrap_or_default();
        match self.decoder.decode(window) {
            Ok(Some(decoded)) => {
                let len = decoded.len;
                let result = f(decoded.frame);
                self.start = self.start.saturating_add(len);
                Ok(Some(result))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(SessionError::Protocol(e)),
        }
    }

    /// Moves undecoded bytes to the front and reads more.
    async fn fill(&mut self, reader: &mut TcpReader<'_>) -> Result<(), SessionError> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let free = self.buf.get_mut(self.end..).unwrap_or_default();
        if free.is_empty() {
            return Err(SessionError::Protocol(DecodeError::MessageTooLarge));
        }
        match reader.read(free).await {
            Ok(0) | Err(_) => Err(SessionError::Closed),
            Ok(n) => {
                self.end += n;
                Ok(())
            }
        }
    }
}

async fn write_all(writer: &mut TcpWriter<'_>, mut bytes: &[u8]) -> Result<(), SessionError> {
    while !bytes.is_empty() {
        match writer.write(bytes).await {
            Ok(0) | Err(_) => return Err(SessionError::Closed),
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
        let n = CallParams::new(&call)
            .unwrap()
            .write_originate(dialplan, &mut out)
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
