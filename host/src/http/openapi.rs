//! `/openapi.json`: the OpenAPI 3.1 description, generated (utoipa) from the same route
//! registrations that build the router, so a route cannot be served without being described.
//! The types here only describe bodies that `core` writes.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::OpenApi;
use utoipa::{Modify, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::json_response;

/// The create-call body (v3.0.0 on; `call_ref` is the pre-v3 name of `contact_ref`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CreateCall {
    /// 3–4 digit extension, or the callee's number for a one-leg call (string or integer).
    #[schema(example = "1001")]
    agent: String,
    /// `0`+9 digits, `27`+9 digits, or `00`+11–14 digits.
    #[schema(example = "0820001234")]
    callee: String,
    /// `27`+9 digits (recommended), `0`+9 digits (warning), or `tvc_<campaign>`.
    #[schema(example = "27820001234")]
    outbound_id: String,
    /// Letters, digits and `. - _ ~ :`; truncated past 230; generated when absent.
    #[schema(example = "crm-42")]
    contact_ref: Option<String>,
    /// Deprecated name of `contact_ref`.
    #[schema(deprecated)]
    call_ref: Option<String>,
    /// How long the agent's phone rings (for a one-leg call: the callee's), 5–120 s;
    /// default `[dialplan] ring_timeout_ms`. Out of bounds: `422 invalid_dial_control`.
    #[schema(example = 20, minimum = 5, maximum = 120)]
    agent_ring_timeout_secs: Option<u16>,
    /// How long the callee's phone rings, 5–120 s; default the PBX's `C2D_CALLEE_RING_SECS`.
    #[schema(example = 30, minimum = 5, maximum = 120)]
    callee_ring_timeout_secs: Option<u16>,
    /// Longest the call may last once the callee answered, 10–86400 s; the PBX hangs it up
    /// then and the `hangup` notification has cause `max_duration`. Default: no limit.
    #[schema(example = 600, minimum = 10, maximum = 86400)]
    max_duration_secs: Option<u32>,
    /// Whether the call is recorded (default `true`). A call with `false` has no
    /// `recording_url` and no `recording_ready` notification.
    #[schema(example = true)]
    record: Option<bool>,
}

/// A warning attached to an accepted call.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Warning {
    /// e.g. `outbound_id_national`, `contact_ref_truncated`.
    code: String,
    /// For people.
    message: String,
}

/// The `202` answer.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Queued {
    /// Always `queued`.
    #[schema(example = "queued")]
    status: String,
    /// The contact reference in use.
    contact_ref: String,
    /// 26 characters of a-z and 2-7.
    recording_ref: String,
    /// Where the recording will be served (absent for a call created with `record: false`).
    recording_url: Option<String>,
    /// The Redis list with this call's notifications.
    notifications_key: String,
    /// Warnings.
    warnings: Vec<Warning>,
}

/// The error object.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// Stable machine code, e.g. `invalid_callee`.
    code: String,
    /// The request field concerned, when there is one.
    field: Option<String>,
    /// For people.
    message: String,
}

/// Every error answer.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    /// What went wrong.
    error: ErrorDetail,
}

/// `/healthz`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Health {
    /// `ok`.
    status: String,
}

/// What `/readyz` checked.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Checks {
    /// `ok`; `down` (not logged in: connecting, refused, lost); or `misconfigured` (the PBX
    /// answers but failed the login check: see `problems`). With `[[pbx]]` entries: `ok` (all),
    /// `degraded` (some), else the first PBX's word.
    ami: String,
    /// `ok`; `down` (no answer within 1 s); or `refuses_writes` (it answers but refuses a
    /// write: a replica, a full `maxmemory`, a failing RDB save; see `problems`).
    redis: String,
    /// With `[[pbx]]` entries: each PBX's name and word (`ok`, `down`,
    /// `misconfigured`).
    pbx: Option<std::collections::BTreeMap<String, String>>,
    /// `ok`; or `unreadable` (`recordings.dir` cannot be opened: recordings are not served,
    /// calls go on, the status is `degraded`).
    recordings: String,
}

/// One reason `/readyz` is not ready.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Problem {
    /// `ami`, `redis` or `recordings`.
    check: String,
    /// Stable code: `ami_down`, `ami_login_failed`, `ami_not_fully_booted`,
    /// `ami_permission_missing`, `dialplan_context_missing`, `dialplan_extension_missing`,
    /// `ami_unexpected_answer`, `redis_down`, `redis_refuses_writes`,
    /// `recordings_unreadable`.
    code: String,
    /// What is wrong and how to fix it.
    message: String,
    /// With `[[pbx]]` entries: the PBX concerned (`check` `ami`).
    pbx: Option<String>,
}

/// `/readyz`: `status` is `ready`, `degraded` (`[[pbx]]` entries, some down; or the
/// recordings directory unreadable) or `not_ready` (then with the error object too).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Readiness {
    /// `ready`, `degraded` or `not_ready`.
    status: String,
    /// Each dependency.
    checks: Checks,
    /// When not ready.
    error: Option<ErrorDetail>,
    /// When not ready or degraded: each reason, in the order found.
    problems: Option<Vec<Problem>>,
}

/// The bearer scheme every operation but `/healthz` requires.
struct BearerKeys;

impl Modify for BearerKeys {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.description = Some(
            "An API key from the configuration ([[auth.keys]]). Each operation lists the \
             scope it needs as the security requirement's role (OpenAPI 3.1): \
             `calls:create`, `calls:read`, `recordings:read`, `metrics:read`; a key has \
             the first three unless its `scopes` say otherwise, and a missing scope is \
             `403 insufficient_scope`. A call, its events, its recording and its \
             idempotency record belong to the key that created it: any other key gets \
             `404`, as for a reference that does not exist."
                .into(),
        );
        components.add_security_scheme("api_key", SecurityScheme::Http(http));
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "click2dial", description = "Click-to-dial for Asterisk PBXes"),
    modifiers(&BearerKeys),
    components(schemas(ErrorBody, Queued, CreateCall, Health, Readiness, Problem))
)]
struct ApiDoc;

/// A router with the description's metadata, to which the areas' routers are merged.
pub fn base() -> OpenApiRouter {
    OpenApiRouter::with_openapi(<ApiDoc as utoipa::OpenApi>::openapi())
}

/// `/openapi.json`, answered with what `rendered` holds once the whole description is
/// known (it is made from the routes, this one included).
pub fn router(rendered: Rendered) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(openapi_json))
        .with_state(rendered)
}

/// The rendered description, set once the routes are merged: the route's state, not an
/// extension added to every request.
#[derive(Clone, Debug, Default)]
pub struct Rendered(pub Arc<std::sync::OnceLock<Vec<u8>>>);

/// This description.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "OpenAPI 3.1 description", content_type = "application/json"),
        (status = 401, description = "Missing or bad API key", body = ErrorBody),
    )
)]
async fn openapi_json(State(rendered): State<Rendered>) -> Response {
    json_response(
        StatusCode::OK,
        rendered.0.get().cloned().unwrap_or_else(|| b"{}".to_vec()),
    )
}
