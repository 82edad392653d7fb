//! What every request's head must be before anything else looks at it: a sane request id,
//! a bounded head, exactly one `Host`.

use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::HeaderName;
use axum::response::{IntoResponse, Response};
use futures_util::future::{ready, Either, Ready};
use tower::{Layer, Service};

use crate::http::error::ApiError;

/// The request id header, set on every request (kept when the client sent a sane one) and
/// echoed on every answer.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Most header lines a request may have (`431 headers_too_large` beyond).
pub const MAX_HEADER_LINES: usize = 64;

/// Most bytes a request head may have: the request target plus every header line
/// (`431 headers_too_large` beyond).
pub const MAX_HEAD_BYTES: usize = 8 * 1024;

/// `431`: too many header lines or bytes.
const HEAD_TOO_LARGE: click2dial_core::Error = click2dial_core::Error::request(
    click2dial_core::ErrorCode::HeadersTooLarge,
    "the request head is too large (at most 64 header lines and 8 KiB)",
);

/// `400`: an HTTP/1.1 request without `Host` (RFC 9112 §3.2).
const NO_HOST: click2dial_core::Error = click2dial_core::Error::request(
    click2dial_core::ErrorCode::BadRequest,
    "an HTTP/1.1 request needs a Host header",
);

/// Layer: refuses a request head over [`MAX_HEADER_LINES`] or [`MAX_HEAD_BYTES`] (`431`)
/// and an HTTP/1.1 request without exactly one `Host` (`400`), before anything else looks at
/// it. A plain tower layer (not `axum::middleware::from_fn`): the check is synchronous, so
/// a request that passes goes on to the inner future, nothing is boxed.
#[derive(Clone, Copy, Debug)]
pub struct RequireHost;

impl<S> Layer<S> for RequireHost {
    type Service = RequireHostService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireHostService(inner)
    }
}

/// The service of [`RequireHost`].
#[derive(Clone, Debug)]
pub struct RequireHostService<S>(S);

impl<S> Service<Request> for RequireHostService<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match check_head(&request) {
            Ok(()) => Either::Right(self.0.call(request)),
            Err(error) => Either::Left(ready(Ok(error.into_response()))),
        }
    }
}

/// `Ok` for a head within the bounds with one `Host` (HTTP/1.1), else the refusal.
fn check_head(request: &Request) -> Result<(), ApiError> {
    let headers = request.headers();
    let uri = request.uri();
    // The length of `uri.to_string()`, without making it.
    let target_bytes = uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path().len()
        + uri.query().map_or(0, |q| q.len() + 1);
    let head_bytes = target_bytes
        + headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>();
    if headers.len() > MAX_HEADER_LINES || head_bytes > MAX_HEAD_BYTES {
        return Err(ApiError::new(HEAD_TOO_LARGE));
    }
    let hosts = headers.get_all(axum::http::header::HOST).iter().count();
    if request.version() == axum::http::Version::HTTP_11 && hosts != 1 {
        return Err(ApiError::new(NO_HOST));
    }
    Ok(())
}

/// Keeps a client's `X-Request-Id` only when it is 1–64 of `A-Za-z0-9._:-` (so it can be
/// logged as it is); otherwise a new one is made (`map_request`: nothing is boxed).
pub fn drop_odd_request_id(mut request: Request) -> Request {
    let sane = request.headers().get(REQUEST_ID).is_none_or(|v| {
        let b = v.as_bytes();
        (1..=64).contains(&b.len())
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"._:-".contains(c))
    });
    if !sane {
        request.headers_mut().remove(REQUEST_ID);
    }
    request
}
