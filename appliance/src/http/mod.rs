//! HTTP/1.1 for `POST /click2dial/calls`: httparse reads the head in the listener's own
//! buffer, the body is read into the one body buffer the listeners share ([`SharedBody`]),
//! core writes the JSON, and every answer closes the connection. Every error
//! answer is the contract's JSON body, as on the host, except `400`/`431` for a request that
//! is not HTTP at all (the host's HTTP layer answers those with empty bodies too).
//!
//! One connection per listener task: a board runs several [`serve`] tasks on the same port,
//! so connections that arrive while one listener is busy are still accepted. Each connection
//! gets `request_timeout_ms` from accept to answer; a slow or silent client is then
//! disconnected, so it cannot hold a listener for long.

mod body;
mod head;
mod response;

use click2dial_core::json;
use click2dial_core::request::MAX_BODY_LEN;
use click2dial_core::{Error, ErrorCode};
use core::cell::Cell;
use embassy_net::tcp::TcpSocket;
use embassy_net::Stack;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::mutex::{Mutex, MutexGuard};

use embassy_futures::select::{select, Either};
use embassy_time::{with_timeout, Duration, Instant, Timer};
use embedded_io_async::{Read, Write};

use crate::admin::{hash_matches, AdminApi, PutError, UpdateError, MAX_SETTINGS_LEN};
use crate::api::{error_answer, App};
use crate::fmt::debug;
use crate::settings::Refusal;
use body::BodyError;
use head::{Bearer, HeadError, Route};
use response::Extra;

/// Longest request head (request line and headers).
pub const MAX_HEAD_LEN: usize = 1024;
/// Room for the answer behind the body: the largest `202` body (every field at its longest,
/// both warnings) is 565 bytes (`tests::the_largest_answer_fits`), an error body at most
/// [`click2dial_core::json::ERROR_BODY_MAX_LEN`].
pub const ANSWER_ROOM: usize = 576;
/// The body buffer: a body of [`MAX_BODY_LEN`] (chunks are decoded in place, in the room the
/// answer takes afterwards), then the answer.
pub const BODY_BUF_LEN: usize = MAX_BODY_LEN + ANSWER_ROOM;
/// How long a closing connection waits for the client to close its side.
const LINGER: Duration = Duration::from_secs(1);
/// How long a firmware upload (`PUT /admin/update`) may take from the end of its head to the
/// answer, instead of `request_timeout_ms`. A connection idle for `request_timeout_ms` is
/// still dropped (the socket's timeout), so a stalled upload ends sooner.
pub const UPDATE_TIMEOUT: Duration = Duration::from_secs(120);

/// The buffers of one listener: its TCP windows and the request head. The largest answer
/// (about 700 bytes with its head) goes out through the 512-byte transmit window in two
/// rounds.
pub struct HttpBuffers {
    rx: [u8; 768],
    tx: [u8; 512],
    head: [u8; MAX_HEAD_LEN],
}

impl Default for HttpBuffers {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpBuffers {
    /// Zeroed buffers (for a `static`).
    pub const fn new() -> Self {
        Self {
            rx: [0; 768],
            tx: [0; 512],
            head: [0; MAX_HEAD_LEN],
        }
    }
}

/// The body buffer all listeners share: a listener holds it from the end of a head to the
/// end of its answer, so bodies are read and answered one at a time (each within the
/// listener's `request_timeout_ms`), while heads are read concurrently. One buffer instead
/// of one per listener saves 2 × [`BODY_BUF_LEN`] of RAM.
pub struct SharedBody(Mutex<CriticalSectionRawMutex, [u8; BODY_BUF_LEN]>);

impl Default for SharedBody {
    fn default() -> Self {
        Self::new()
    }
}

impl SharedBody {
    /// A zeroed buffer (for a `static`).
    pub const fn new() -> Self {
        Self(Mutex::new([0; BODY_BUF_LEN]))
    }
}

/// One listener: accepts a connection on `http_port`, answers one request, closes; forever.
pub async fn serve<A: AdminApi>(
    stack: Stack<'_>,
    app: &App<'_>,
    admin: &A,
    buffers: &mut HttpBuffers,
    body: &SharedBody,
) -> ! {
    let port = app.config().http.http_port;
    let timeout = Duration::from_millis(app.config().http.request_timeout_ms.into());
    loop {
        let HttpBuffers { rx, tx, head } = &mut *buffers;
        let mut socket = TcpSocket::new(stack, rx, tx);
        socket.set_timeout(Some(timeout));
        if socket.accept(port).await.is_err() {
            continue;
        }
        let deadline = Cell::new(Instant::now() + timeout);
        let request = handle(&mut socket, app, admin, head, body, &deadline);
        // The deadline a route can move (the upload's) only where there is such a route.
        let outcome = if A::ENABLED {
            match select(request, expiry(&deadline)).await {
                Either::First(outcome) => Some(outcome),
                Either::Second(()) => None,
            }
        } else {
            with_timeout(timeout, request).await.ok()
        };
        let then = match outcome {
            Some(Ok(then)) => then,
            Some(Err(Disconnected)) => {
                debug!("client went away");
                Then::Serve
            }
            None => {
                debug!("request timed out; closing");
                Then::Serve
            }
        };
        close(&mut socket).await;
        if then == Then::Reboot {
            admin.reboot();
        }
    }
}

/// Ends when `deadline` has passed (a route may move it while the request runs).
async fn expiry(deadline: &Cell<Instant>) {
    loop {
        let at = deadline.get();
        Timer::at(at).await;
        if deadline.get() <= at {
            return;
        }
    }
}

/// Closes after the answer: FIN, then wait (bounded) for the client's FIN so the answer is not
/// cut by a reset, then drop the connection.
async fn close(socket: &mut TcpSocket<'_>) {
    socket.close();
    let _ = with_timeout(LINGER, async {
        let mut sink = [0u8; 64];
        while let Ok(1..) = socket.read(&mut sink).await {}
    })
    .await;
    socket.abort();
    let _ = with_timeout(LINGER, socket.flush()).await;
}

/// The connection failed; nothing more can be said on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Disconnected;

/// What the listener does once the connection is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Then {
    Serve,
    /// `POST /admin/reboot` was answered.
    Reboot,
}

/// `401` without an admin key.
const ADMIN_KEY_REQUIRED: Error = Error::request(
    ErrorCode::Unauthorized,
    "an admin key is required: Authorization: Bearer <admin key>",
);
/// `401` for a key that is not the admin key.
const ADMIN_KEY_INVALID: Error =
    Error::request(ErrorCode::Unauthorized, "the admin key is not valid");
/// `413` for a configuration body over [`MAX_SETTINGS_LEN`].
const SETTINGS_TOO_LARGE: Error = Error::request(
    ErrorCode::BodyTooLarge,
    "the configuration is larger than 1024 bytes",
);

/// `Ok` when the request carries the key whose hash `matches` accepts.
fn authorize(
    bearer: Bearer,
    matches: impl FnOnce(&[u8; 32]) -> bool,
    missing: Error,
    invalid: Error,
) -> Result<(), Error> {
    match bearer {
        Bearer::Absent => Err(missing),
        Bearer::KeyHash(hash) if matches(&hash) => Ok(()),
        _ => Err(invalid),
    }
}

/// Where an answer's body is.
#[derive(Clone, Copy)]
enum Body {
    Empty,
    /// The first bytes of the head buffer.
    Head(usize),
    /// `start..end` of the shared body buffer.
    Shared(usize, usize),
    Static(&'static [u8]),
}

/// An answer, sent once by [`handle`] (one call site of the writing code, whatever the
/// route: each `await` on it inlines a copy of its state machine).
struct Reply {
    status: u16,
    body: Body,
    extra: Extra,
    then: Then,
}

impl Reply {
    const fn json(status: u16, body: Body) -> Self {
        Self {
            status,
            body,
            extra: Extra::None,
            then: Then::Serve,
        }
    }

    /// `error`'s JSON, written at `start` of `buf` (`shared`: the shared body buffer).
    #[inline(never)]
    fn error(error: &Error, buf: &mut [u8], start: usize, shared: bool) -> Self {
        let out = buf.get_mut(start..).unwrap_or_default();
        let answer = error_answer(error, out);
        let end = start + answer.len;
        let body = if shared {
            Body::Shared(start, end)
        } else {
            Body::Head(end)
        };
        Self::json(answer.status, body)
    }
}

type Guard<'s> = MutexGuard<'s, CriticalSectionRawMutex, [u8; BODY_BUF_LEN]>;

/// Reads one request and answers it: the head into `head`, the body (and the answer) into
/// the shared body buffer.
async fn handle<S: Read + Write, A: AdminApi>(
    stream: &mut S,
    app: &App<'_>,
    admin: &A,
    head_buf: &mut [u8],
    shared: &SharedBody,
    deadline: &Cell<Instant>,
) -> Result<Then, Disconnected> {
    let mut guard = None;
    let reply = answer(stream, app, admin, head_buf, shared, &mut guard, deadline).await?;
    let body = match reply.body {
        Body::Empty => None,
        Body::Head(end) => head_buf.get(..end),
        Body::Shared(start, end) => guard.as_deref().and_then(|b| b.get(start..end)),
        Body::Static(bytes) => Some(bytes),
    };
    let json = !matches!(reply.body, Body::Empty);
    respond(
        stream,
        reply.status,
        body.unwrap_or_default(),
        json,
        reply.extra,
    )
    .await?;
    Ok(reply.then)
}

/// The answer to one request; takes the shared body buffer into `guard` when it needs it.
async fn answer<'s, S: Read + Write, A: AdminApi>(
    stream: &mut S,
    app: &App<'_>,
    admin: &A,
    head_buf: &mut [u8],
    shared: &'s SharedBody,
    guard: &mut Option<Guard<'s>>,
    deadline: &Cell<Instant>,
) -> Result<Reply, Disconnected> {
    let bare = |status| Ok(Reply::json(status, Body::Empty));
    let mut filled = 0;
    let head = loop {
        let free = head_buf.get_mut(filled..).unwrap_or_default();
        if free.is_empty() {
            return bare(431);
        }
        match stream.read(free).await {
            Ok(0) | Err(_) => return Err(Disconnected),
            Ok(n) => filled += n,
        }
        match head::parse(head_buf.get(..filled).unwrap_or_default()) {
            Ok(Some(head)) => break head,
            Ok(None) => {}
            Err(HeadError::Malformed) => return bare(400),
            Err(HeadError::TooLarge) => return bare(431),
        }
    };
    // Answers without a body are written into the head buffer (an error body is at most
    // ERROR_BODY_MAX_LEN bytes).
    let route = head.route;
    let early = |e: &Error, head_buf: &mut [u8]| Ok(Reply::error(e, head_buf, 0, false));
    match route {
        Route::MethodNotAllowed(methods) => {
            let mut reply = Reply::error(&Error::METHOD_NOT_ALLOWED, head_buf, 0, false);
            reply.extra = Extra::Allow(methods);
            return Ok(reply);
        }
        Route::NotFound => return early(&Error::NOT_FOUND, head_buf),
        _ => {}
    }
    // Credentials before anything else: a client without them never gets the body buffer.
    let auth = if route.is_admin() {
        authorize(
            head.bearer,
            |p| admin.authorized(p),
            ADMIN_KEY_REQUIRED,
            ADMIN_KEY_INVALID,
        )
    } else {
        match &app.config().auth.api_key_hash {
            Some(expected) => authorize(
                head.bearer,
                |p| hash_matches(p, expected),
                Error::API_KEY_REQUIRED,
                Error::API_KEY_INVALID,
            ),
            None => Ok(()),
        }
    };
    if let Err(e) = auth {
        let mut reply = Reply::error(&e, head_buf, 0, false);
        reply.extra = Extra::Challenge;
        return Ok(reply);
    }
    match route {
        Route::Reboot => {
            let mut reply = Reply::json(202, Body::Static(br#"{"status":"rebooting"}"#));
            reply.then = Then::Reboot;
            return Ok(reply);
        }
        Route::FactoryReset => {
            return match admin.factory_reset().await {
                Ok(()) => Ok(Reply::json(
                    200,
                    Body::Static(br#"{"status":"erased","effective":"after POST /admin/reboot"}"#),
                )),
                Err(_) => early(&Error::INTERNAL, head_buf),
            };
        }
        _ => {}
    }
    let buf: &mut [u8] = &mut **guard.insert(shared.0.lock().await);
    match route {
        Route::GetConfig => {
            return Ok(match admin.write_config(app.config(), buf) {
                Some(len) => Reply::json(200, Body::Shared(0, len)),
                None => Reply::error(&Error::INTERNAL, buf, 0, true),
            });
        }
        Route::Status if A::ENABLED => {
            return Ok(match crate::admin::write_status(app.pbx(), buf) {
                Some(len) => Reply::json(200, Body::Shared(0, len)),
                None => Reply::error(&Error::INTERNAL, buf, 0, true),
            });
        }
        Route::UpdateStatus if A::ENABLED => {
            return Ok(match admin.write_update_status(buf).await {
                Some(len) => Reply::json(200, Body::Shared(0, len)),
                None => Reply::error(&Error::INTERNAL, buf, 0, true),
            });
        }
        Route::Update if A::ENABLED => {
            let early = head_buf.get(head.len..filled).unwrap_or_default();
            return put_update(stream, admin, head, early, buf, deadline).await;
        }
        _ => {}
    }
    if let Err(e) = head.content_type {
        return Ok(Reply::error(&e, buf, 0, true));
    }
    let settings = route == Route::PutConfig;
    let too_large = if settings {
        SETTINGS_TOO_LARGE
    } else {
        Error::BODY_TOO_LARGE
    };
    if settings
        && matches!(head.framing, head::Framing::Length(len) if len > MAX_SETTINGS_LEN as u64)
    {
        return Ok(Reply::error(&too_large, buf, 0, true));
    }
    let early = head_buf.get(head.len..filled).unwrap_or_default();
    let have = early.len();
    if let Some(dest) = buf.get_mut(..have) {
        dest.copy_from_slice(early);
    }
    let will_read = match head.framing {
        head::Framing::Length(len) => len > have as u64 && len <= MAX_BODY_LEN as u64,
        head::Framing::Chunked => true,
    };
    if head.expect_continue && will_read {
        write_all(stream, response::CONTINUE).await?;
    }
    let len = match body::read(stream, head.framing, buf, have).await {
        Ok(len) if !settings || len <= MAX_SETTINGS_LEN => len,
        Ok(_) | Err(BodyError::Unreadable) => return Ok(Reply::error(&too_large, buf, 0, true)),
        Err(BodyError::Io) => return Err(Disconnected),
    };
    if settings {
        return Ok(put_config(admin, buf, len).await);
    }
    let (body, out) = buf.split_at_mut(len.min(buf.len()));
    let answer = app.create_call(body, out).await;
    Ok(Reply::json(
        answer.status,
        Body::Shared(len, len + answer.len),
    ))
}

/// `PUT /admin/config` with the body at `buf[..len]` (at most [`MAX_SETTINGS_LEN`]); the rest
/// of `buf` is the store's work buffer and then the answer's.
async fn put_config<A: AdminApi>(admin: &A, buf: &mut [u8], len: usize) -> Reply {
    let (body, rest) = buf.split_at_mut(MAX_SETTINGS_LEN.min(buf.len()));
    let body = body.get(..len).unwrap_or_default();
    let error = match admin.put(body, rest).await {
        Ok(()) => {
            let body = br#"{"status":"stored","effective":"after POST /admin/reboot"}"#;
            return Reply::json(200, Body::Static(body));
        }
        Err(PutError::Refused(Refusal::Json)) => Error::MALFORMED_JSON,
        Err(PutError::Refused(Refusal::Config(e))) => {
            if let Ok(n) = json::write_config_error(&e, rest) {
                let start = MAX_SETTINGS_LEN;
                return Reply::json(422, Body::Shared(start, start + n));
            }
            Error::INTERNAL
        }
        Err(PutError::Store(_)) => Error::INTERNAL,
    };
    Reply::error(&error, buf, 0, true)
}

/// `PUT /admin/update`: the image streamed into the DFU partition, its signature checked and
/// the update marked ([`crate::update`]). Length, key and state are checked before the body
/// is read (and before `100 Continue`); the upload then has [`UPDATE_TIMEOUT`].
async fn put_update<S: Read + Write, A: AdminApi>(
    stream: &mut S,
    admin: &A,
    head: head::Head,
    early: &[u8],
    buf: &mut [u8],
    deadline: &Cell<Instant>,
) -> Result<Reply, Disconnected> {
    let result = match head.framing {
        head::Framing::Length(len) => match admin.update_check(len).await {
            Ok(()) => {
                deadline.set(Instant::now() + UPDATE_TIMEOUT);
                if head.expect_continue {
                    write_all(stream, response::CONTINUE).await?;
                }
                admin.update(stream, len, early, buf).await
            }
            Err(e) => Err(e),
        },
        head::Framing::Chunked => Err(UpdateError::Framing),
    };
    let error = match result {
        Ok(()) => {
            let body = br#"{"status":"marked","effective":"after POST /admin/reboot"}"#;
            return Ok(Reply::json(202, Body::Static(body)));
        }
        Err(UpdateError::Io) => return Err(Disconnected),
        Err(e) => update_refused(e),
    };
    Ok(Reply::error(&error, buf, 0, true))
}

/// The answer to an update refused with `e`: what the operator must change.
fn update_refused(e: UpdateError) -> Error {
    let (code, message) = match e {
        UpdateError::NoKey => (
            ErrorCode::ServiceUnavailable,
            "no update key is provisioned: the device takes no update",
        ),
        UpdateError::TooLarge => (
            ErrorCode::BodyTooLarge,
            "the image is larger than the update partition",
        ),
        UpdateError::Framing => (
            ErrorCode::BadRequest,
            "an update is the image followed by its 64-byte Ed25519 signature, sent with \
             Content-Length",
        ),
        UpdateError::Pending => (
            ErrorCode::BadRequest,
            "an update is already marked or on trial: POST /admin/reboot first",
        ),
        UpdateError::Truncated => (
            ErrorCode::BadRequest,
            "the body ended before its Content-Length: nothing was marked",
        ),
        UpdateError::Signature => (
            ErrorCode::BadRequest,
            "the signature does not verify against the fleet key: nothing was marked",
        ),
        UpdateError::Flash | UpdateError::Io => return Error::INTERNAL,
    };
    Error::request(code, message)
}

async fn respond<S: Write>(
    stream: &mut S,
    status: u16,
    body: &[u8],
    json: bool,
    extra: Extra,
) -> Result<(), Disconnected> {
    let mut head = [0u8; 192];
    let n = response::write_head(status, body.len(), json, extra, &mut head);
    write_all(stream, head.get(..n).unwrap_or_default()).await?;
    write_all(stream, body).await?;
    stream.flush().await.map_err(|_| Disconnected)
}

async fn write_all<S: Write>(stream: &mut S, bytes: &[u8]) -> Result<(), Disconnected> {
    stream.write_all(bytes).await.map_err(|_| Disconnected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use click2dial_core::json::{self, Accepted};
    use click2dial_core::{request, DialPolicy, Validators};

    const POLICY: DialPolicy<'static> = DialPolicy {
        allowed_country_codes: &["44"],
        ..DialPolicy::SOUTH_AFRICA
    };

    /// The longest `202` bodies: every field at its longest, with each warning.
    #[test]
    fn the_largest_answer_fits() {
        let validators = Validators::new().unwrap();
        let contact_ref = "c".repeat(300);
        let campaign = std::format!("tvc_{}", "x".repeat(64));
        let mut longest = 0;
        for (callee, outbound_id) in [
            ("0027820001234", campaign.as_str()),
            ("0044444444444444", campaign.as_str()),
            ("0044444444444444", "0820001234"),
            ("0820001234", campaign.as_str()),
        ] {
            let body = std::format!(
                r#"{{"agent":"1001","callee":"{callee}","outbound_id":"{outbound_id}","contact_ref":"{contact_ref}"}}"#
            );
            let parsed = request::parse(body.as_bytes()).unwrap();
            let valid = validators.validate(&parsed, &POLICY).unwrap();
            let call = valid.assign_references(&[0xff; 32]);
            let mut out = [0u8; 2048];
            let accepted = Accepted {
                call: &call,
                recording_url: None,
                notifications_key: None,
            };
            longest = longest.max(json::write_accepted(&accepted, &mut out).unwrap());
        }
        assert_eq!(longest, 565, "update ANSWER_ROOM's comment");
        assert!(longest <= ANSWER_ROOM);
        assert!(json::ERROR_BODY_MAX_LEN <= ANSWER_ROOM.min(MAX_HEAD_LEN));
    }
}
