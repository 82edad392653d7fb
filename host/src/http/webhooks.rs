//! `GET /click2dial/webhooks`: the calling key's webhook delivery state (its endpoint, the
//! events pending, delivered and given up, the last error), read from Redis. A key sees
//! only its own.

use std::sync::Arc;

use axum::extract::State;
use axum::Extension;
use axum::Json;
use click2dial_core::{Error, ErrorCode};
use serde::Serialize;
use utoipa::ToSchema;
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

/// How deliveries are signed, for the description's `webhooks` entry and the README.
const SIGNING: &str = "Each notification of a call whose key has a `webhook` is POSTed to \
that endpoint as a CloudEvents 1.0 event in structured JSON mode (`content-type: \
application/cloudevents+json`), signed per Standard Webhooks: `webhook-id` (the \
CloudEvent's `id`: `<call id>:<sequence>`, the same on every retry — deduplicate on it), \
`webhook-timestamp` (Unix seconds of this attempt; refuse one far from your clock), and \
`webhook-signature`: `v1,<base64 of HMAC-SHA256(key, \"{webhook-id}.{webhook-timestamp}.{body}\")>` \
where the key is the base64 part of a `whsec_…` secret, decoded; with two secrets \
configured (rotation) there are two space-separated `v1,` signatures, the newest secret's \
first, and one valid signature is enough. Delivery is at least once and in order per call: \
a call's next event is sent only after its previous one was answered `2xx` (or given up). \
A `2xx` within the timeout (10 s by default) is success; `410 Gone` disables the endpoint; \
anything else — another status, a redirect (never followed), a timeout, a refused \
connection — is retried with an exponential backoff (5 s, 10 s, 20 s, … up to 1 h apart) \
for 3 days, then the event is dropped and counted `failed` (`GET /click2dial/webhooks`).";

/// The notification object, the CloudEvent's `data` (the same JSON the Redis lists hold).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct NotificationData {
    /// `queued`, `agent_ringing`, `agent_answered`, `callee_ringing`, `joined`,
    /// `hangup`, `failed`, `recording_ready`.
    #[schema(example = "joined")]
    event: String,
    /// The call's contact reference.
    contact_ref: String,
    /// The agent.
    agent: String,
    /// The callee, E.164.
    callee: String,
    /// The caller ID as given.
    outbound_id: String,
    /// The recording reference.
    recording_ref: String,
    /// Where the recording is served.
    recording_url: Option<String>,
    /// When it happened (RFC 3339, UTC, milliseconds).
    timestamp: String,
    /// Why, for `failed` and `hangup` (`callee_busy`, `normal_clearing`, …).
    cause: Option<String>,
    /// The Q.850 cause code, when the PBX gave one.
    q850: Option<u16>,
}

/// One webhook delivery's body: a CloudEvents 1.0 event (JSON format).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct WebhookEvent {
    /// `1.0`.
    #[schema(example = "1.0")]
    specversion: String,
    /// The `webhook-id`: `<call id>:<sequence>`, unique, the same on every retry.
    id: String,
    /// `<http.public_url>/click2dial/calls`.
    source: String,
    /// `org.camaraproject.click-to-dial.v0.status-changed` (`data.event` tells which).
    #[serde(rename = "type")]
    #[schema(example = "org.camaraproject.click-to-dial.v0.status-changed")]
    kind: String,
    /// The call's `contact_ref`.
    subject: String,
    /// The notification's `timestamp`.
    time: String,
    /// `application/json`.
    datacontenttype: String,
    /// The notification.
    data: NotificationData,
}

/// Adds the outgoing deliveries to the description: the OpenAPI 3.1 `webhooks` entry
/// `status-changed` (its headers, body and the answers that mean something) and the
/// event's schemas.
pub fn document(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::content::ContentBuilder;
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
    use utoipa::openapi::request_body::RequestBodyBuilder;
    use utoipa::openapi::response::Response;
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::{PathItem, PathsBuilder, Ref, Required};
    use utoipa::PartialSchema;

    let header = |name: &str, description: &str| {
        ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Header)
            .required(Required::True)
            .description(Some(description))
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .build()
    };
    let operation = OperationBuilder::new()
        .summary(Some("A call's notification, signed (Standard Webhooks)"))
        .description(Some(SIGNING))
        .tag("webhooks")
        .parameter(header(
            "webhook-id",
            "The event's id, the same on every retry",
        ))
        .parameter(header("webhook-timestamp", "Unix seconds of this attempt"))
        .parameter(header(
            "webhook-signature",
            "`v1,<base64 HMAC-SHA256>` per secret, space-separated",
        ))
        .request_body(Some(
            RequestBodyBuilder::new()
                .content(
                    "application/cloudevents+json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("WebhookEvent")))
                        .build(),
                )
                .required(Some(Required::True))
                .build(),
        ))
        .response(
            "2XX",
            Response::new("Received: the call's next event follows"),
        )
        .response(
            "410",
            Response::new("Gone: the endpoint is disabled until its URL changes"),
        )
        .response(
            "default",
            Response::new("Anything else (and no answer in time): retried with backoff"),
        )
        .build();
    doc.webhooks = Some(
        PathsBuilder::new()
            .path("status-changed", PathItem::new(HttpMethod::Post, operation))
            .build(),
    );
    let components = doc.components.get_or_insert_with(Default::default);
    components
        .schemas
        .insert("WebhookEvent".into(), WebhookEvent::schema());
    components
        .schemas
        .insert("NotificationData".into(), NotificationData::schema());
}
