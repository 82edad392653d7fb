//! `/healthz` (the process answers) and `/readyz` (it can take calls: AMI logged in and
//! Redis answering `PING`), for probes and load balancers.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use click2dial_core::{Error, ErrorCode};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::errors::{error_body, json_response};
use crate::state::AppState;

/// How long `/readyz` waits for Redis's `PONG`.
const REDIS_PING_TIMEOUT: Duration = Duration::from_secs(1);

/// `/healthz`, the only route that needs no API key.
pub fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz))
}

/// `/readyz`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(readyz))
}

/// Liveness: the process is up and serving HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "Alive", body = crate::openapi::Health))
)]
async fn healthz() -> Response {
    json_response(StatusCode::OK, br#"{"status":"ok"}"#.to_vec())
}

/// Readiness: `200` when the AMI session is logged in and Redis answers; otherwise `503`
/// with the contract's error body, and `checks` saying which one failed.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Ready", body = crate::openapi::Readiness),
        (status = 401, description = "Missing or bad API key", body = crate::openapi::ErrorBody),
        (status = 503, description = "Not ready; `checks` names what failed", body = crate::openapi::Readiness),
    )
)]
async fn readyz(State(state): State<AppState>) -> Response {
    let ami = state.pbx.is_ready();
    let redis = redis_answers(&state).await;
    let word = |ok: bool| if ok { "ok" } else { "down" };
    let checks = format!(
        r#""checks":{{"ami":"{}","redis":"{}"}}"#,
        word(ami),
        word(redis)
    );
    if ami && redis {
        return json_response(
            StatusCode::OK,
            format!(r#"{{"status":"ready",{checks}}}"#).into_bytes(),
        );
    }
    let message = match (ami, redis) {
        (false, false) => "not ready: the AMI session is not logged in and Redis does not answer",
        (false, true) => "not ready: the AMI session is not logged in",
        _ => "not ready: Redis does not answer",
    };
    let mut body = error_body(&Error::request(ErrorCode::ServiceUnavailable, message));
    // The contract's error object, plus `checks` next to it.
    body.pop();
    body.extend_from_slice(format!(r#","status":"not_ready",{checks}}}"#).as_bytes());
    json_response(StatusCode::SERVICE_UNAVAILABLE, body)
}

async fn redis_answers(state: &AppState) -> bool {
    let ping = async {
        let mut conn = state.redis().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .ok()
    };
    matches!(
        tokio::time::timeout(REDIS_PING_TIMEOUT, ping).await,
        Ok(Some(pong)) if pong == "PONG"
    )
}
