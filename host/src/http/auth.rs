//! The API-key layer: `Authorization: Bearer <key>`, looked up in [`Keys`] (what a key is
//! and may do: `crate::auth`), and the key's rate limit.

use std::sync::Arc;

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use click2dial_core::Error;
use futures_util::future::{ready, Either, Ready};
use tower::{Layer, Service};

use crate::auth::Keys;
use crate::http::error::ApiError;
use crate::http::ratelimit::{limit, RateLimits};
use crate::metrics::Metrics;

// The appliance answers with the same two errors (core's).
const MISSING: Error = Error::API_KEY_REQUIRED;
const INVALID: Error = Error::API_KEY_INVALID;

/// Layer: answers `401` unless the request carries a configured key, then, when it has
/// rate limits, `429` once the key is over its rate ([`crate::http::ratelimit`]); hands
/// the [`Caller`](crate::auth::Caller) to what follows as a request extension.
///
/// A plain tower layer, not `axum::middleware::from_fn`: both checks are synchronous, so a
/// request that passes goes on to the route's own future, with no boxed future, no clone
/// of the rest of the stack and no `Next` made for it.
#[derive(Clone, Debug)]
pub struct RequireKey {
    keys: Arc<Keys>,
    limits: Option<(Arc<RateLimits>, Metrics)>,
}

impl RequireKey {
    /// The key check alone (`/readyz`: a probe polling it must not use up the key's rate).
    pub fn new(keys: Arc<Keys>) -> Self {
        Self { keys, limits: None }
    }

    /// The key check, then the key's rate limit.
    pub fn limited(keys: Arc<Keys>, limits: Arc<RateLimits>, metrics: Metrics) -> Self {
        Self {
            keys,
            limits: Some((limits, metrics)),
        }
    }

    /// The refusal to answer with, or `None` with the caller in the request's extensions.
    fn refusal(&self, request: &mut Request) -> Option<Response> {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| click2dial_core::request::bearer_token(v.as_bytes()));
        let caller = match presented {
            None => return Some(unauthorized(MISSING, false)),
            Some(None) => return Some(unauthorized(INVALID, true)),
            Some(Some(token)) => self.keys.find(token),
        };
        let Some(caller) = caller else {
            tracing::info!("request with an unknown API key refused");
            return Some(unauthorized(INVALID, true));
        };
        tracing::Span::current().record("key", caller.id.as_str());
        if let Some((limits, metrics)) = &self.limits {
            if let Some(refused) = limit(limits, metrics, &caller) {
                return Some(refused);
            }
        }
        request.extensions_mut().insert(caller);
        None
    }
}

impl<S> Layer<S> for RequireKey {
    type Service = RequireKeyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireKeyService {
            inner,
            guard: self.clone(),
        }
    }
}

/// The service of [`RequireKey`].
#[derive(Clone, Debug)]
pub struct RequireKeyService<S> {
    inner: S,
    guard: RequireKey,
}

impl<S> Service<Request> for RequireKeyService<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        match self.guard.refusal(&mut request) {
            None => Either::Right(self.inner.call(request)),
            Some(refused) => Either::Left(ready(Ok(refused))),
        }
    }
}

fn unauthorized(error: Error, invalid_token: bool) -> Response {
    let challenge = if invalid_token {
        r#"Bearer realm="click2dial", error="invalid_token""#
    } else {
        r#"Bearer realm="click2dial""#
    };
    ApiError::new(error).challenge(challenge).into_response()
}
