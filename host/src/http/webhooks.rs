//! `GET /click2dial/webhooks`: the calling key's webhook delivery state (its endpoint, the
//! events pending, delivered and given up, the last error), read from Redis. A key sees
//! only its own.

use std::sync::Arc;

use axum::extract::State;
use axum::Extension;
use axum::Json;
use click2dial_core::{Error, ErrorCode};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Caller, Scope};
use crate::http::error::ApiError;
use crate::webhook::queue::{self, Status};
use crate::webhook::Webhooks;

/// `503`: Redis did not answer.
const STATE_UNAVAILABLE: Error = Error::request(
    ErrorCode::ServiceUnavailable,
    "the delivery state cannot be read now (Redis); retry later",
);

/// `/click2dial/webhooks`.
pub fn router(webhooks: Webhooks) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(webhook_state))
        .with_state(webhooks)
}

/// The calling key's webhook: endpoint, state, pending events, last error.
#[utoipa::path(
    get,
    path = "/click2dial/webhooks",
    tag = "webhooks",
    security(("api_key" = ["calls:read"])),
    responses(
        (status = 200, description = "The key's delivery state (`state: none` when the key \
            has no webhook)", body = Status),
        (status = 401, description = "Missing or bad API key", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The key lacks the scope calls:read (`insufficient_scope`)", body = crate::http::openapi::ErrorBody),
        (status = 429, description = "The key's rate limit; see Retry-After", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "Redis is unreachable", body = crate::http::openapi::ErrorBody),
    )
)]
async fn webhook_state(
    State(webhooks): State<Webhooks>,
    Extension(caller): Extension<Arc<Caller>>,
) -> Result<Json<Status>, ApiError> {
    caller.require(Scope::CallsRead)?;
    let owner = caller.owner();
    let url = webhooks.routes.get(owner).map(|r| r.url.as_str());
    let Some(mut conn) = webhooks.redis.connection().await else {
        return Err(ApiError::new(STATE_UNAVAILABLE).retry_after(1));
    };
    match webhooks
        .redis
        .op(queue::status(&mut conn, owner, url))
        .await
    {
        Some(status) => Ok(Json(status)),
        None => Err(ApiError::new(STATE_UNAVAILABLE).retry_after(1)),
    }
}
