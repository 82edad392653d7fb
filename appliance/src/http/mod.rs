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

use click2dial_core::request::MAX_BODY_LEN;
use click2dial_core::Error;
use embassy_net::tcp::TcpSocket;
use embassy_net::Stack;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::mutex::Mutex;
use embassy_time::{with_timeout, Duration};
use embedded_io_async::{Read, Write};

use crate::api::{error_answer, App};
use crate::fmt::debug;
use body::BodyError;
use head::{HeadError, Route};

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
pub async fn serve(
    stack: Stack<'_>,
    app: &App<'_>,
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
        match with_timeout(timeout, handle(&mut socket, app, head, body)).await {
            Ok(Ok(())) => {}
            Ok(Err(Disconnected)) => debug!("client went away"),
            Err(_) => debug!("request timed out; closing"),
        }
        close(&mut socket).await;
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

/// Reads one request and answers it: the head into `head`, the body (and the answer) into
/// the shared body buffer.
async fn handle<S: Read + Write>(
    stream: &mut S,
    app: &App<'_>,
    head_buf: &mut [u8],
    shared: &SharedBody,
) -> Result<(), Disconnected> {
    let mut filled = 0;
    let head = loop {
        let free = head_buf.get_mut(filled..).unwrap_or_default();
        if free.is_empty() {
            return respond(stream, 431, &[], false).await;
        }
        match stream.read(free).await {
            Ok(0) | Err(_) => return Err(Disconnected),
            Ok(n) => filled += n,
        }
        match head::parse(head_buf.get(..filled).unwrap_or_default()) {
            Ok(Some(head)) => break head,
            Ok(None) => {}
            Err(HeadError::Malformed) => return respond(stream, 400, &[], false).await,
            Err(HeadError::TooLarge) => return respond(stream, 431, &[], false).await,
        }
    };
    // Answers without a body are written into the head buffer (an error body is at most
    // ERROR_BODY_MAX_LEN bytes).
    match head.route {
        Route::CreateCall => {}
        Route::MethodNotAllowed => {
            return respond_error(stream, &Error::METHOD_NOT_ALLOWED, head_buf).await
        }
        Route::NotFound => return respond_error(stream, &Error::NOT_FOUND, head_buf).await,
    }
    if let Err(e) = head.content_type {
        return respond_error(stream, &e, head_buf).await;
    }
    let mut guard = shared.0.lock().await;
    let buf: &mut [u8] = &mut *guard;
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
        Ok(len) => len,
        Err(BodyError::Unreadable) => {
            return respond_error(stream, &Error::BODY_TOO_LARGE, buf).await
        }
        Err(BodyError::Io) => return Err(Disconnected),
    };
    let (body, out) = buf.split_at_mut(len.min(buf.len()));
    let answer = app.create_call(body, out).await;
    respond(
        stream,
        answer.status,
        out.get(..answer.len).unwrap_or_default(),
        true,
    )
    .await
}

async fn respond_error<S: Write>(
    stream: &mut S,
    error: &Error,
    out: &mut [u8],
) -> Result<(), Disconnected> {
    let answer = error_answer(error, out);
    respond(
        stream,
        answer.status,
        out.get(..answer.len).unwrap_or_default(),
        true,
    )
    .await
}

async fn respond<S: Write>(
    stream: &mut S,
    status: u16,
    body: &[u8],
    json: bool,
) -> Result<(), Disconnected> {
    let mut head = [0u8; 160];
    let n = response::write_head(status, body.len(), json, &mut head);
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
