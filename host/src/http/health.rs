//! `/healthz` (the process answers) and `/readyz` (it can take calls: AMI logged in, the
//! PBX's check passed, Redis taking writes; per PBX with `[[pbx]]`), for probes and load
//! balancers. `/readyz` needs a key but is not rate-limited.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use click2dial_core::{Error, ErrorCode};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::calls::Calls;
use crate::http::error::{error_body_with, json_response};
use crate::pbx::Status;
use crate::store::gate::RedisHealth;

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
/// With `[[pbx]]` entries, `checks.pbx` has each one's word and each problem its
/// `pbx`; while Redis and at least one PBX can take calls the answer is `200` with
/// `"status":"degraded"` (`checks.ami`: `degraded`): the other PBXes' agents get `503`,
/// and every host behind a load balancer shares the same PBXes. A recordings directory
/// the host cannot read (`checks.recordings`: `unreadable`) makes it `degraded` too: calls
/// go on, recordings cannot be served.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Ready (`status`: `ready`), or with `[[pbx]]` entries some of them down (`degraded`: `problems` names them)", body = crate::http::openapi::Readiness),
        (status = 401, description = "Missing or bad API key", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "Not ready; `checks` names what failed, `problems` why", body = crate::http::openapi::Readiness),
    )
)]
async fn readyz(State(state): State<Calls>) -> Response {
    let listed = state.pbxes.listed();
    let statuses: Vec<(Arc<str>, Status)> = state
        .pbxes
        .iter()
        .map(|site| (site.name.clone(), site.pbx.status()))
        .collect();
    // Redis's word in `checks`, and its problem when it is not `ok`.
    let (redis_word, redis_problem) = match state.redis_health().await {
        RedisHealth::Ok => ("ok", None),
        RedisHealth::Down => (
            "down",
            Some(("redis_down", "Redis does not answer within 1 s".to_string())),
        ),
        RedisHealth::RefusesWrites(why) => (
            "refuses_writes",
            Some((
                "redis_refuses_writes",
                format!("Redis answers but refuses writes: {why}"),
            )),
        ),
    };
    let redis = redis_problem.is_none();
    let recordings_problem = recordings_problem(&state.config.recordings.dir).await;
    let ready = statuses.iter().filter(|(_, s)| *s == Status::Ready).count();
    let ami_word = match statuses.as_slice() {
        [(_, only)] => word(only),
        _ if ready == statuses.len() => "ok",
        _ if ready > 0 => "degraded",
        [(_, first), ..] => word(first),
        [] => "down",
    };
    let recordings_word = if recordings_problem.is_none() {
        "ok"
    } else {
        "unreadable"
    };
    let mut checks =
        serde_json::json!({"ami": ami_word, "redis": redis_word, "recordings": recordings_word});
    if listed {
        checks["pbx"] = statuses
            .iter()
            .map(|(name, status)| (name.to_string(), word(status).into()))
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    if ready == statuses.len() && redis && recordings_problem.is_none() {
        let body = serde_json::json!({"status": "ready", "checks": checks});
        return json_response(StatusCode::OK, body.to_string().into_bytes());
    }
    let mut problems = Vec::new();
    let mut sentences = Vec::new();
    for (name, status) in &statuses {
        let mut problem = |code: &str, message: &str| {
            let mut entry = serde_json::json!({"check": "ami", "code": code, "message": message});
            if listed {
                entry["pbx"] = name.to_string().into();
            }
            problems.push(entry);
        };
        let whose = if listed {
            format!("PBX {name:?}: ")
        } else {
            String::new()
        };
        match status {
            Status::Ready => {}
            Status::Down(why) => {
                let message = format!("the AMI session is not logged in: {why}");
                problem("ami_down", &message);
                sentences.push(format!("{whose}{message}"));
            }
            Status::Misconfigured(reasons) => {
                for reason in reasons.iter() {
                    problem(reason.code, &reason.message);
                }
                sentences.push(format!(
                    "{whose}the PBX is misconfigured: {}",
                    reasons
                        .iter()
                        .map(|r| r.message.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                ));
            }
        }
    }
    if let Some((code, message)) = redis_problem {
        problems.push(serde_json::json!({"check": "redis", "code": code, "message": message}));
        sentences.push(message);
    }
    if let Some(message) = recordings_problem {
        problems.push(serde_json::json!({
            "check": "recordings", "code": "recordings_unreadable", "message": message
        }));
        sentences.push(message);
    }
    if redis && ready > 0 {
        let body =
            serde_json::json!({"status": "degraded", "checks": checks, "problems": problems});
        return json_response(StatusCode::OK, body.to_string().into_bytes());
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

/// How long the recordings directory may take to open (a hung network mount: the looks
/// are bounded, `recording_file::LOOKS_AT_ONCE`).
const RECORDINGS_WITHIN: std::time::Duration = std::time::Duration::from_secs(1);

/// Why `dir` cannot be read, if it cannot: then no recording can be served, though calls
/// can still be placed (the answer is `degraded`, not `not_ready`).
async fn recordings_problem(dir: &std::path::Path) -> Option<String> {
    let why =
        crate::recording_file::unreadable_within(dir.to_path_buf(), RECORDINGS_WITHIN).await?;
    Some(format!(
        "recordings.dir {dir:?} cannot be read ({why}): no recording can be served; it must \
         be the directory the dialplan's MixMonitor writes, readable by the host's user \
         (group asterisk)"
    ))
}

/// A PBX's word in `checks`.
fn word(status: &Status) -> &'static str {
    match status {
        Status::Ready => "ok",
        Status::Down(_) => "down",
        Status::Misconfigured(_) => "misconfigured",
    }
}
