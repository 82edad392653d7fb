//! `GET /click2dial/calls/{contact_ref}/events`: a call's notifications as Server-Sent
//! Events, read from the [`Hub`] (what is kept, for how long, and why: `crate::notify::hub`).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use click2dial_core::{Error, ErrorCode, Validators};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Caller, Scope};
use crate::http::error::ApiError;
use crate::notify::hub::{Hub, Refused, KEEP_ALIVE};

/// What the event streams need: the hub, and the validators for the path.
#[derive(Clone, Debug)]
pub struct Streams {
    /// The calls' notifications.
    pub hub: Hub,
    /// The field validators.
    pub validators: Arc<Validators>,
}

/// `404`: no call with this contact reference is known here.
const UNKNOWN_CALL: Error = Error::request(
    ErrorCode::NotFound,
    "no call with this contact_ref is known to this host (or it ended too long ago)",
);

/// `503`: [`crate::notify::hub::MAX_STREAMS`] streams are open.
const TOO_MANY_STREAMS: Error = Error::request(
    ErrorCode::ServiceUnavailable,
    "too many event streams are open; retry later",
);

/// `/click2dial/calls/{contact_ref}/events`.
pub fn router(streams: Streams) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(call_events))
        .with_state(streams)
}

/// The `{contact_ref}` segment, as sent (never percent-decoded: a contact reference needs
/// no escaping, so an escape is refused like any character outside the charset).
fn raw_contact_ref(request: &Request) -> &str {
    let path = request.uri().path();
    path.strip_prefix("/click2dial/calls/")
        .and_then(|rest| rest.strip_suffix("/events"))
        .unwrap_or_default()
}

/// A call's notifications, live, as Server-Sent Events.
#[utoipa::path(
    get,
    path = "/click2dial/calls/{contact_ref}/events",
    tag = "calls",
    security(("api_key" = ["calls:read"])),
    params(
        ("contact_ref" = String, Path, description = "The contact_ref of the 202 answer"),
        ("Last-Event-ID" = Option<u32>, Header, description = "Resume after this sequence number"),
    ),
    responses(
        (status = 200, description = "text/event-stream: one message per notification, \
            `event: <event>`, `id: <sequence>`, `data: <the notification JSON>`, earlier \
            events first, keep-alive comments every 15 s; the stream ends when the call is over",
            content_type = "text/event-stream", body = String),
        (status = 401, description = "Missing or bad API key", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The key lacks the scope calls:read (`insufficient_scope`)", body = crate::http::openapi::ErrorBody),
        (status = 404, description = "No call of this key with this contact_ref is known to this host (another key's call is not found either)", body = crate::http::openapi::ErrorBody),
        (status = 422, description = "Not a contact_ref (letters, digits and . - _ ~ :, at most 230)", body = crate::http::openapi::ErrorBody),
        (status = 429, description = "The key's rate limit; see Retry-After", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "Too many streams open, or the host is shutting down", body = crate::http::openapi::ErrorBody),
    )
)]
async fn call_events(
    State(streams): State<Streams>,
    Extension(caller): Extension<Arc<Caller>>,
    request: Request,
) -> Result<Response, ApiError> {
    caller.require(Scope::CallsRead)?;
    let contact_ref = streams
        .validators
        .contact_ref_in_path(raw_contact_ref(&request))?;
    let resume_after = request
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(0);
    // Another key's call is not found, exactly like a call nobody made.
    let follow = match streams
        .hub
        .follow(caller.owner(), contact_ref, resume_after)
    {
        Ok(follow) => follow,
        Err(Refused::Busy) => return Err(ApiError::new(TOO_MANY_STREAMS).retry_after(1)),
        Err(Refused::UnknownCall) => return Err(UNKNOWN_CALL.into()),
    };
    let mut response = Sse::new(follow.into_stream())
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
        .into_response();
    // Proxies must not buffer the stream.
    response
        .headers_mut()
        .insert("x-accel-buffering", header::HeaderValue::from_static("no"));
    Ok(response)
}
