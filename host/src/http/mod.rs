//! The HTTP side: one router per area, each with the narrow service it needs as its state
//! (`State<Calls>`, `State<Recordings>`, …), merged by [`routes`] and wrapped in the layers
//! every request goes through by [`app`]. The areas depend on services and on the shared
//! `error.rs` and `openapi.rs`, never on each other nor on this file.

pub mod auth;
pub mod call_resource;
pub mod calls;
pub mod console;
pub mod error;
pub mod events;
pub mod head;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod ratelimit;
pub mod recordings;
pub mod server;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::Router;
use tower_http::classify::ServerErrorsFailureClass;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa::openapi::OpenApi;

use crate::services::Services;
use head::REQUEST_ID;

/// The routes and the OpenAPI description generated from them: `/healthz` without a key,
/// `/readyz` behind [`auth::RequireKey::new`] only (a probe polling it must not use up the
/// key's rate), everything else behind [`auth::RequireKey::limited`] (the key, then its rate).
pub fn routes(services: &Services, rendered: openapi::Rendered) -> (Router, OpenApi) {
    let calls = &services.calls;
    let recordings = recordings::Recordings {
        validators: calls.validators.clone(),
        owners: calls.call_store.clone(),
        pbxes: calls.pbxes.clone(),
        dir: services.config.recordings.dir.clone(),
        abandoned_after: Duration::from_secs(services.config.recordings.abandoned_after_secs),
    };
    let streams = events::Streams {
        hub: services.notifier.hub().clone(),
        validators: calls.validators.clone(),
    };
    let figures = metrics::Figures {
        metrics: services.metrics.clone(),
        notifier: services.notifier.clone(),
        calls: calls.clone(),
    };
    let rate_limits = Arc::new(ratelimit::RateLimits::new(
        &services.config.auth.keys,
        &services.config.limits,
    ));
    let (public, public_doc) = health::public_router().split_for_parts();
    let (probe, probe_doc) = health::router(calls.clone()).split_for_parts();
    let (protected, mut doc) = openapi::base()
        .merge(calls::router(calls.clone()))
        .merge(events::router(streams))
        .merge(recordings::router(recordings))
        .merge(metrics::router(figures))
        .merge(webhooks::router(services.webhooks.clone()))
        .merge(openapi::router(rendered))
        .split_for_parts();
    doc.merge(public_doc);
    doc.merge(probe_doc);
    webhooks::document(&mut doc);
    let protected = protected.route_layer(auth::RequireKey::limited(
        services.keys.clone(),
        rate_limits,
        services.metrics.clone(),
    ));
    let probe = probe.route_layer(auth::RequireKey::new(services.keys.clone()));
    (
        public
            .merge(console::router())
            .merge(probe)
            .merge(protected),
        doc,
    )
}

/// The whole HTTP application.
pub fn app(services: Services) -> Router {
    let rendered = openapi::Rendered::default();
    let (routes, doc) = routes(&services, rendered.clone());
    let _ = rendered
        .0
        .set(doc.to_json().unwrap_or_default().into_bytes());
    let timeout = Duration::from_secs(services.config.http.request_timeout_secs);
    // One composed layer over the routes, not one `Router::layer` per middleware: axum
    // clones a route's whole stack for every request, and each `Router::layer` adds a boxed
    // service to it (an allocation per layer per request). Outermost first.
    let middleware = tower::ServiceBuilder::new()
        .map_request(head::drop_odd_request_id)
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
        .layer(crate::metrics::CountRequests(services.metrics.clone()))
        .map_response(error::json_errors)
        .layer(head::RequireHost)
        // The body limit's answers, in axum's body type for the layers above.
        .map_response(axum::response::IntoResponse::into_response)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(RequestBodyLimitLayer::new(
            click2dial_core::request::MAX_BODY_LEN,
        ));
    routes.fallback(error::not_found).layer(middleware)
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
