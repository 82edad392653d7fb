//! Every error answer is the contract's JSON body (`core::json::write_error`), including the
//! ones written by layers that know nothing about it (routing, timeouts, body limits, file
//! serving): [`json_errors`] rewrites those.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use click2dial_core::json;
use click2dial_core::{Error, ErrorCode};

/// An error answered as the contract's JSON body.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json_response(status, error_body(&self.0))
    }
}

/// The JSON bytes of `error`.
pub fn error_body(error: &Error) -> Vec<u8> {
    let mut buf = [0u8; json::ERROR_BODY_MAX_LEN];
    match json::write_error(error, &mut buf) {
        Ok(n) => buf.get(..n).unwrap_or_default().to_vec(),
        Err(_) => br#"{"error":{"code":"internal_error","message":"internal error"}}"#.to_vec(),
    }
}

/// An error whose message is made at run time (the PBX's state, a campaign's name): the
/// code, field and status stay core's; `Retry-After` when given.
#[derive(Debug)]
pub struct Detailed {
    /// Code, field and status.
    pub error: Error,
    /// Replaces `error.message`.
    pub message: String,
    /// Seconds for `Retry-After`.
    pub retry_after: Option<u64>,
}

impl IntoResponse for Detailed {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = json_response(status, error_body_with(&self.error, &self.message));
        if let Some(secs) = self.retry_after {
            let (name, value) = retry_after(secs);
            response.headers_mut().insert(name, value);
        }
        response
    }
}

/// The JSON bytes of `error` with `message` in place of its own: core writes the body with
/// an empty message (`…"message":""}}`), the message goes between the quotes.
pub fn error_body_with(error: &Error, message: &str) -> Vec<u8> {
    let mut body = error_body(&Error {
        message: "",
        ..*error
    });
    let empty = br#""message":""}}"#;
    if body.ends_with(empty) {
        body.truncate(body.len() - 4);
        body.extend_from_slice(&serde_json::to_vec(message).unwrap_or_else(|_| b"\"\"".to_vec()));
        body.extend_from_slice(b"}}");
    }
    body
}

/// A response with a JSON body.
pub fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A `Retry-After: <secs>` header value.
pub fn retry_after(secs: u64) -> (header::HeaderName, HeaderValue) {
    (header::RETRY_AFTER, HeaderValue::from(secs.max(1)))
}

/// The error a bare status from a layer stands for.
fn for_status(status: StatusCode) -> Error {
    match status {
        StatusCode::NOT_FOUND => Error::NOT_FOUND,
        StatusCode::METHOD_NOT_ALLOWED => Error::METHOD_NOT_ALLOWED,
        StatusCode::REQUEST_TIMEOUT => Error::REQUEST_TIMEOUT,
        StatusCode::PAYLOAD_TOO_LARGE => Error::BODY_TOO_LARGE,
        StatusCode::RANGE_NOT_SATISFIABLE => Error::request(
            ErrorCode::RangeNotSatisfiable,
            "the Range header selects no part of the recording (one range of bytes is served)",
        ),
        StatusCode::BAD_REQUEST => Error::request(ErrorCode::MalformedJson, "bad request"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => Error::UNSUPPORTED_MEDIA_TYPE,
        StatusCode::SERVICE_UNAVAILABLE => Error::request(
            ErrorCode::ServiceUnavailable,
            "the service is unavailable; retry later",
        ),
        _ => Error::INTERNAL,
    }
}

/// Middleware: an error answer (4xx/5xx) that is not JSON gets the contract's JSON body for
/// its status; its other headers (`Allow`, `Content-Range`, …) are kept.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return response;
    }
    if status.is_server_error() {
        tracing::error!(%status, "a layer answered an error");
    }
    let (mut parts, _) = response.into_parts();
    let error = for_status(status);
    let body = error_body(&error);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // An error answer is never cached as if it were the resource.
    parts.headers.remove(header::ETAG);
    parts.headers.remove(header::LAST_MODIFIED);
    Response::from_parts(parts, Body::from(body))
}

/// Fallback for unknown paths: `404 not_found`.
pub async fn not_found() -> ApiError {
    ApiError(Error::NOT_FOUND)
}
