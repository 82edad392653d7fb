//! click2dial-host: the Linux service next to the PBX.
//!
//! Only I/O and operations live here: every rule, the AMI protocol and the call state
//! machine are in `click2dial-core`, shared with the appliance firmware.

pub mod admission;
pub mod api;
pub mod auth;
pub mod call_store;
pub mod config;
pub mod console;
pub mod errors;
pub mod events;
pub mod fastagi;
pub mod health;
pub mod idempotency;
pub mod metrics;
pub mod notify;
pub mod openapi;
pub mod pbx;
pub mod ratelimit;
pub mod recordings;
pub mod server;
pub mod state;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderName, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::Response;
use axum::{Extension, Router};
use tower_http::classify::ServerErrorsFailureClass;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa::openapi::OpenApi;

pub use state::AppState;

/// The request id header, set on every request (kept when the client sent a sane one) and
/// echoed on every answer.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The routes and the OpenAPI description generated from them: `/healthz` without a key,
/// `/readyz` behind [`auth::require_key`] only (a probe polling it must not use up the
/// key's rate), everything else behind [`auth::require_key`] and [`ratelimit::limit`].
pub fn routes(state: &AppState) -> (Router<AppState>, OpenApi) {
    let (public, public_doc) = health::public_router().split_for_parts();
    let (probe, probe_doc) = health::router().split_for_parts();
    let (protected, mut doc) = openapi::base()
        .merge(api::router())
        .merge(events::router())
        .merge(recordings::router())
        .merge(metrics::router())
        .merge(openapi::router())
        .split_for_parts();
    doc.merge(public_doc);
    doc.merge(probe_doc);
    let protected = protected
        .route_layer(from_fn_with_state(
            (state.rate_limits.clone(), state.metrics.clone()),
            ratelimit::limit,
        ))
        .route_layer(from_fn_with_state(state.keys.clone(), auth::require_key));
    let probe = probe.route_layer(from_fn_with_state(state.keys.clone(), auth::require_key));
    (
        public
            .merge(console::router())
            .merge(probe)
            .merge(protected),
        doc,
    )
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let (routes, doc) = routes(&state);
    let rendered = openapi::Rendered(Arc::new(doc.to_json().unwrap_or_default().into_bytes()));
    let timeout = Duration::from_secs(state.config.http.request_timeout_secs);
    // One composed layer over the routes, not one `Router::layer` per middleware: axum
    // clones a route's whole stack for every request, and each `Router::layer` adds a boxed
    // service to it (an allocation per layer per request). Outermost first.
    let middleware = tower::ServiceBuilder::new()
        .layer(from_fn(drop_odd_request_id))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    let id = request
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    // Never the headers: they carry the API key.
                    tracing::info_span!(
                        "request",
                        method = %request.method(),
                        path = %request.uri().path(),
                        request_id = %id,
                        key = tracing::field::Empty,
                    )
                })
                .on_request(())
                .on_response(DefaultOnResponse::new().level(Level::DEBUG))
                .on_failure(log_failure),
        )
        .layer(from_fn_with_state(
            state.metrics.clone(),
            metrics::count_requests,
        ))
        .layer(from_fn(errors::json_errors))
        .layer(from_fn(require_host))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(RequestBodyLimitLayer::new(
            click2dial_core::request::MAX_BODY_LEN,
        ))
        .layer(Extension(rendered));
    routes
        .fallback(errors::not_found)
        .layer(middleware)
        .with_state(state)
}

/// A server error's log line: `error`, except `503`, whose causes (the PBX down or
/// misconfigured, Redis down, no call slot) are logged once where they change, and which
/// `/readyz` answers to every probe while not ready: `debug`, like any other answer.
fn log_failure(failure: ServerErrorsFailureClass, latency: Duration, _span: &tracing::Span) {
    match failure {
        ServerErrorsFailureClass::StatusCode(StatusCode::SERVICE_UNAVAILABLE) => {
            tracing::debug!(?latency, "service unavailable");
        }
        failure => tracing::error!(%failure, ?latency, "response failed"),
    }
}

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

/// Middleware: refuses a request head over [`MAX_HEADER_LINES`] or [`MAX_HEAD_BYTES`]
/// (`431`) and an HTTP/1.1 request without exactly one `Host` (`400`), before anything else
/// looks at it.
async fn require_host(request: Request, next: Next) -> Response {
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
        return axum::response::IntoResponse::into_response(errors::ApiError(HEAD_TOO_LARGE));
    }
    let hosts = headers.get_all(axum::http::header::HOST).iter().count();
    if request.version() == axum::http::Version::HTTP_11 && hosts != 1 {
        return axum::response::IntoResponse::into_response(errors::ApiError(NO_HOST));
    }
    next.run(request).await
}

/// Keeps a client's `X-Request-Id` only when it is 1–64 of `A-Za-z0-9._:-` (so it can be
/// logged as it is); otherwise a new one is made.
async fn drop_odd_request_id(mut request: Request, next: Next) -> Response {
    let sane = request.headers().get(REQUEST_ID).is_none_or(|v| {
        let b = v.as_bytes();
        (1..=64).contains(&b.len())
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"._:-".contains(c))
    });
    if !sane {
        request.headers_mut().remove(REQUEST_ID);
    }
    next.run(request).await
}

/// Starts the background tasks (notifier, AMI client) and builds the state.
pub fn start(config: config::Config) -> Result<AppState, String> {
    let validators = click2dial_core::Validators::new().map_err(|e| format!("validators: {e}"))?;
    let metrics = metrics::Metrics::new();
    let notifier = notify::Notifier::start(
        notify::Settings {
            url: config.redis.url.clone(),
            legacy_key: config
                .redis
                .legacy_key_enabled
                .then(|| config.redis.legacy_key.clone()),
            ttl_secs: config.redis.ttl_secs,
            spool_capacity: config.redis.spool_capacity,
            sent_prefix: "teleforge:c2d:sent:".into(),
        },
        metrics.clone(),
    );
    let call_store = call_store::CallStore::new(&config.redis.url, config.redis.ttl_secs);
    let pbx = pbx::Pbx::start(
        pbx::Settings {
            address: config.ami.address.clone(),
            username: config.ami.username.clone(),
            secret: config.ami.secret.clone(),
            ping_interval: Duration::from_secs(config.ami.ping_interval_secs),
            max_backoff: Duration::from_secs(config.ami.max_backoff_secs.max(1)),
            dialplan: config.dialplan.clone(),
            contexts: config.pbx_contexts(),
            call_silence: Duration::from_secs(config.limits.call_silence_secs.max(1)),
        },
        notifier.clone(),
        metrics.clone(),
        call_store.clone(),
    );
    if config.auth.keys.is_empty() {
        tracing::warn!(
            "no API keys configured ([[auth.keys]]): every request but /healthz is refused"
        );
    }
    AppState::new(config, validators, pbx, notifier, metrics, call_store)
}
