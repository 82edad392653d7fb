//! Every error answer is the contract's JSON body (`core::json::write_error`), including the
//! ones written by layers that know nothing about it (routing, timeouts, body limits, file
//! serving): [`json_errors`] rewrites those.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use click2dial_core::json;
use click2dial_core::{Error, ErrorCode};

/// Every error a route answers with: what core says about it (code, field, status) and
/// what HTTP adds once, here — a message made at run time, `Retry-After`, a
/// `WWW-Authenticate` challenge, and a cause that is logged, never sent.
#[derive(Debug)]
pub struct ApiError {
    error: Error,
    message: Option<String>,
    retry_after: Option<u64>,
    challenge: Option<&'static str>,
    cause: Option<String>,
}

impl ApiError {
    /// `error` as core says it: its status, code, field and message.
    pub const fn new(error: Error) -> Self {
        Self {
            error,
            message: None,
            retry_after: None,
            challenge: None,
            cause: None,
        }
    }

    /// With `message` in place of core's (the PBX's state, a campaign's name).
    #[must_use]
    pub fn with_message(mut self, message: String) -> Self {
        self.message = Some(message);
        self
    }

    /// With `Retry-After: <secs>` (at least 1).
    #[must_use]
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// With a `WWW-Authenticate` challenge.
    #[must_use]
    pub fn challenge(mut self, challenge: &'static str) -> Self {
        self.challenge = Some(challenge);
        self
    }

    /// With the internal cause, logged (at `error`) when the answer is made and never sent.
    #[must_use]
    pub fn cause(mut self, cause: impl std::fmt::Display) -> Self {
        self.cause = Some(cause.to_string());
        self
    }

    /// Core's error.
    pub fn error(&self) -> &Error {
        &self.error
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self::new(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(cause) = &self.cause {
            tracing::error!(%cause, code = self.error.code.as_str(), "request failed");
        }
        let status =
            StatusCode::from_u16(self.error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = match &self.message {
            Some(message) => error_body_with(&self.error, message),
            None => error_body(&self.error),
        };
        let mut response = json_response(status, body);
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after {
            let (name, value) = retry_after(secs);
            headers.insert(name, value);
        }
        if let Some(challenge) = self.challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
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
fn retry_after(secs: u64) -> (header::HeaderName, HeaderValue) {
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

/// An error answer (4xx/5xx) that is not JSON gets the contract's JSON body for its
/// status; its other headers (`Allow`, `Content-Range`, …) are kept (`map_response`:
/// nothing is boxed).
pub fn json_errors(response: Response) -> Response {
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
    ApiError::new(Error::NOT_FOUND)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn parts(error: ApiError) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let response = error.into_response();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("body").to_bytes().to_vec();
        (parts.status, parts.headers, bytes)
    }

    #[tokio::test]
    async fn the_answer_is_cores_body_and_what_http_adds() {
        let (status, headers, body) = parts(ApiError::new(Error::NOT_FOUND)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, error_body(&Error::NOT_FOUND));
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert!(headers.get(header::RETRY_AFTER).is_none());

        let error = ApiError::new(Error::PBX_UNAVAILABLE)
            .with_message("the PBX is \"down\"".into())
            .retry_after(0)
            .challenge("Bearer realm=\"click2dial\"")
            .cause("never sent");
        let (status, headers, body) = parts(error).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers[header::RETRY_AFTER], "1", "at least one second");
        assert_eq!(
            headers[header::WWW_AUTHENTICATE],
            "Bearer realm=\"click2dial\""
        );
        let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(json["error"]["code"], "pbx_unavailable");
        assert_eq!(json["error"]["message"], "the PBX is \"down\"");
        assert!(!String::from_utf8_lossy(&body).contains("never sent"));
    }
}
