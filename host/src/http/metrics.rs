//! `GET /metrics`: the registry (`crate::metrics`) with the gauges read when asked.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;

use crate::auth::{Caller, Scope};
use crate::calls::Calls;
use crate::http::error::ApiError;
use crate::metrics::Metrics;
use crate::notify::Notifier;

/// What `/metrics` reads: the registry, the spool's depth, the calls in flight.
#[derive(Clone, Debug)]
pub struct Figures {
    /// The registry.
    pub metrics: Metrics,
    /// The notifier (its spool's depth).
    pub notifier: Notifier,
    /// The calls service (the calls in flight).
    pub calls: Calls,
}

/// `GET /metrics`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    security(("api_key" = ["metrics:read"])),
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String),
        (status = 401, description = "Missing or bad API key", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The key lacks the scope metrics:read (`insufficient_scope`)", body = crate::http::openapi::ErrorBody),
    )
)]
pub async fn metrics(
    State(state): State<Figures>,
    Extension(caller): Extension<Arc<Caller>>,
) -> Result<Response, ApiError> {
    caller.require(Scope::MetricsRead)?;
    let text = state
        .metrics
        .encode(state.notifier.spool_depth(), state.calls.calls_in_flight());
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// `/metrics`.
pub fn router(figures: Figures) -> utoipa_axum::router::OpenApiRouter {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(metrics))
        .with_state(figures)
}
