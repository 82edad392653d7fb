//! HTTP/1.1 for `POST /click2dial/calls`: httparse reads the head, the body is read into a
//! fixed buffer, core writes the JSON, and every answer closes the connection. Every error
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
use embassy_time::{with_timeout, Duration};
use embedded_io_async::{Read, Write};

use crate::api::{error_answer, App};
use crate::fmt::debug;
use body::BodyError;
use head::{HeadError, Route};

/// Longest request head (request line and headers).
pub const MAX_HEAD_LEN: usize = 1024;
/// The request buffer: a head, or a body of [`MAX_BODY_LEN`] with room to decode chunks; the
/// answer is written behind the body (the largest `202` body is about 600 bytes).
pub const REQUEST_BUF_LEN: usize = MAX_HEAD_LEN + MAX_BODY_LEN;
/// How long a closing connection waits for the client to close its side.
const LINGER: Duration = Duration::from_secs(1);

/// The buffers of one listener.
pub struct HttpBuffers {
    rx: [u8; 768],
    tx: [u8; 1024],
    request: [u8; REQUEST_BUF_LEN],
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
            tx: [0; 1024],
            request: [0; REQUEST_BUF_LEN],
        }
    }
}

/// One listener: accepts a connection on `http_port`, answers one request, closes; forever.
pub async fn serve(stack: Stack<'_>, app: &App<'_>, buffers: &mut HttpBuffers) -> ! {
    let port = app.config().http.http_port;
    let timeout = Duration::from_millis(app.config().http.request_timeout_ms.into());
    loop {
        let HttpBuffers { rx, tx, request } = &mut *buffers;
        let mut socket = TcpSocket::new(stack, rx, tx);
        socket.set_timeout(Some(timeout));
        if socket.accept(port).await.is_err() {
            continue;
        }
        match with_timeout(timeout, handle(&mut socket, app, request)).await {
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

/// Reads one request and answers it.
async fn handle<S: Read + Write>(
    stream: &mut S,
    app: &App<'_>,
    buf: &mut [u8],
) -> Result<(), Disconnected> {
    let mut filled = 0;
    let head = loop {
        let free = buf.get_mut(filled..MAX_HEAD_LEN).unwrap_or_default();
        if free.is_empty() {
            return respond(stream, 431, &[], false).await;
        }
        match stream.read(free).await {
            Ok(0) | Err(_) => return Err(Disconnected),
            Ok(n) => filled += n,
        }
        match head::parse(buf.get(..filled).unwrap_or_default()) {
            Ok(Some(head)) => break head,
            Ok(None) => {}
            Err(HeadError::Malformed) => return respond(stream, 400, &[], false).await,
            Err(HeadError::TooLarge) => return respond(stream, 431, &[], false).await,
        }
    };
    match head.route {
        Route::CreateCall => {}
        Route::MethodNotAllowed => {
            return respond_error(stream, &Error::METHOD_NOT_ALLOWED, buf).await
        }
        Route::NotFound => return respond_error(stream, &Error::NOT_FOUND, buf).await,
    }
    if let Err(e) = head.content_type {
        return respond_error(stream, &e, buf).await;
    }
    buf.copy_within(head.len..filled, 0);
    let have = filled - head.len;
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
