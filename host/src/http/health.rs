//! `/healthz` (the process answers) and `/readyz` (it can take calls: AMI logged in, the
//! PBX's check passed, Redis answering `PING`), for probes and load balancers. `/readyz`
//! needs a key but is not rate-limited.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use click2dial_core::{Error, ErrorCode};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::calls::Calls;
use crate::http::error::{error_body_with, json_response};
use crate::pbx::Status;

/// `/healthz`, the only route that needs no API key.
pub fn public_router() -> OpenApiRouter {
    OpenApiRouter::new().routes(routes!(healthz))
}

/// `/readyz`: the PBX client's status and Redis, from the calls service.
pub fn router(calls: Calls) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(readyz))
        .with_state(calls)
}

/// Liveness: the process is up and serving HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "Alive", body = crate::http::openapi::Health))
)]
async fn healthz() -> Response {
    json_response(StatusCode::OK, br#"{"status":"ok"}"#.to_vec())
}

/// Readiness: `200` when the AMI session is logged in, the PBX passed the login check and
/// Redis answers; otherwise `503` with the contract's error body, `checks` saying which
/// failed (`ami`: `down` or `misconfigured`) and `problems` saying why and how to fix it.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Ready", body = crate::http::openapi::Readiness),
        (status = 401, description = "Missing or bad API key", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "Not ready; `checks` names what failed, `problems` why", body = crate::http::openapi::Readiness),
    )
)]
async fn readyz(State(state): State<Calls>) -> Response {
    let ami = state.pbx.status();
    let redis = state.redis_ping().await;
    let ami_word = match ami {
        Status::Ready => "ok",
        Status::Down(_) => "down",
        Status::Misconfigured(_) => "misconfigured",
    };
    let checks = serde_json::json!({"ami": ami_word, "redis": if redis { "ok" } else { "down" }});
    if ami == Status::Ready && redis {
        let body = serde_json::json!({"status": "ready", "checks": checks});
        return json_response(StatusCode::OK, body.to_string().into_bytes());
    }
    let mut problems = Vec::new();
    let mut sentences = Vec::new();
    match &ami {
        Status::Ready => {}
        Status::Down(why) => {
            let message = format!("the AMI session is not logged in: {why}");
            problems
                .push(serde_json::json!({"check": "ami", "code": "ami_down", "message": message}));
            sentences.push(message);
        }
        Status::Misconfigured(reasons) => {
            for reason in reasons.iter() {
                problems.push(serde_json::json!(
                    {"check": "ami", "code": reason.code, "message": reason.message}
                ));
            }
            sentences.push(format!(
                "the PBX is misconfigured: {}",
                reasons
                    .iter()
                    .map(|r| r.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
    }
    if !redis {
        let message = "Redis does not answer PING within 1 s";
        problems
            .push(serde_json::json!({"check": "redis", "code": "redis_down", "message": message}));
        sentences.push(message.to_string());
    }
    let message = format!("not ready: {}", sentences.join("; "));
    let mut body = error_body_with(&Error::request(ErrorCode::ServiceUnavailable, ""), &message);
    // The contract's error object, plus `status`, `checks` and `problems` next to it.
    body.pop();
    let rest = serde_json::json!({"status": "not_ready", "checks": checks, "problems": problems});
    let rest = rest.to_string();
    body.push(b',');
    body.extend_from_slice(rest.get(1..).unwrap_or("}").as_bytes());
    json_response(StatusCode::SERVICE_UNAVAILABLE, body)
}
