//! The REST API: `POST /click2dial/calls` (and, from [`super::call_resource`], reading calls).

use std::sync::Arc;

use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::Extension;
use click2dial_core::call::Mode;
use click2dial_core::reference::ChannelId;
use click2dial_core::{request, Error, ErrorCode, Field};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Caller, Scope};
use crate::calls::admission::{self, Admission, Refusal};
use crate::calls::Calls;
use crate::http::error::{json_response, ApiError};
use crate::pbx::{OriginateError, OriginateRequest};

/// `/click2dial/calls`.
pub fn router(calls: Calls) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(create_call, super::call_resource::list_calls))
        .routes(routes!(
            super::call_resource::get_call,
            super::call_resource::end_call
        ))
        .with_state(calls)
}

/// Create a call: ring the agent, then dial the callee.
#[utoipa::path(
    post,
    path = "/click2dial/calls",
    tag = "calls",
    security(("api_key" = ["calls:create"])),
    request_body(content = crate::http::openapi::CreateCall, content_type = "application/json"),
    responses(
        (status = 202, description = "Queued to the PBX (or the first answer again, for a repeated contact_ref)", body = crate::http::openapi::Queued),
        (status = 400, description = "Malformed JSON", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "Missing or bad API key", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The key lacks the scope calls:create (`insufficient_scope`)", body = crate::http::openapi::ErrorBody),
        (status = 408, description = "The request did not arrive in time", body = crate::http::openapi::ErrorBody),
        (status = 409, description = "contact_ref already used with a different payload", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "Body larger than 4096 bytes", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "Not JSON", body = crate::http::openapi::ErrorBody),
        (status = 422, description = "A field breaks its rule, the dialling policy or the key's permissions; `unknown_campaign` (field `outbound_id`): the PBX's `[dialplan] tvc_context` has no extension for this `tvc_` campaign; `unknown_agent` (field `agent`): no configured PBX serves this agent", body = crate::http::openapi::ErrorBody),
        (status = 429, description = "The key's rate limit; see Retry-After", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "The agent's PBX unreachable or misconfigured (`pbx_unavailable`, the reason in `message`, `Retry-After`), Redis unreachable, too many calls in flight, or the first request with this contact_ref still being dialled after 5 s (`service_unavailable`, `Retry-After`); nothing was dialled", body = crate::http::openapi::ErrorBody),
    )
)]
async fn create_call(
    State(state): State<Calls>,
    Extension(caller): Extension<Arc<Caller>>,
    // The request itself, not a `HeaderMap` extractor (which clones every header) and the
    // body: one header is read, by reference.
    http_request: Request,
) -> Result<Response, ApiError> {
    caller.require(Scope::CallsCreate)?;
    let (head, body) = http_request.into_parts();
    request::check_content_type(head.headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()))?;
    drop(head);
    let bytes = to_bytes(body, request::MAX_BODY_LEN)
        .await
        .map_err(|e| body_error(&e))?;
    let parsed = request::parse(&bytes)?;
    let valid = state.validators.validate(&parsed, &state.policy())?;
    caller.check_call(valid.agent, valid.outbound_id.as_str())?;
    let site = state
        .pbxes
        .for_agent(valid.agent)
        .ok_or_else(|| unknown_agent(valid.agent))?;
    let pbx = &site.pbx;
    if let Some(why) = pbx.unavailable() {
        return Err(pbx_unavailable(why));
    }
    if let Some(campaign) = valid.outbound_id.campaign() {
        if let Some(context) = pbx.unknown_campaign(campaign) {
            return Err(ApiError::new(Error::field(
                ErrorCode::UnknownCampaign,
                Field::OutboundId,
                "",
            ))
            .with_message(format!(
                "campaign {campaign} is not in the PBX's dialplan context {context}: \
                 add `exten => {campaign},1,Return(<verified number>)` there and \
                 `dialplan reload`; nothing was dialled"
            )));
        }
    }
    let mut entropy = [0u8; 32];
    getrandom::fill(&mut entropy).map_err(|_| Error::INTERNAL)?;
    let call = valid.assign_references(&entropy);
    let channel_id = ChannelId::for_attempt(
        caller.owner(),
        call.contact_ref.as_str(),
        call.recording_ref.as_str(),
    )
    .to_string();
    let mode = if call.valid.single_leg {
        Mode::SingleLeg
    } else {
        Mode::TwoLeg
    };
    let admitted = match admission::admit(
        &state,
        &call,
        caller.owner(),
        channel_id,
        mode,
        &site.name,
    )
    .await?
    {
        Admission::New(admitted) => admitted,
        Admission::Repeat(first) => {
            return Ok(json_response(StatusCode::ACCEPTED, first.into_bytes()))
        }
    };
    // What is needed after the Originate is taken out of the admitted call (the PBX client
    // needs none of it), not copied; the references are copied inline, not allocated.
    let mut admitted = admitted;
    let contact_ref = admitted.record.call.contact_ref;
    let contact_ref = contact_ref.as_str();
    let recording_ref = admitted.record.call.recording_ref;
    let recording_ref = recording_ref.as_str();
    let claim = admitted.claim.take();
    let answer = std::mem::take(&mut admitted.answer);
    if let Err(e) = pbx.originate(OriginateRequest::from(admitted)).await {
        admission::release(&state, claim.as_ref().map(|c| c.key.as_str())).await;
        return match e {
            OriginateError::NotConnected => {
                Err(pbx_unavailable(pbx.unavailable().unwrap_or_else(|| {
                    Error::PBX_UNAVAILABLE.message.to_string()
                })))
            }
            OriginateError::Refused(reason) => {
                let context = if call.valid.single_leg {
                    &state.config.dialplan.direct_context
                } else {
                    &state.config.dialplan.outbound_context
                };
                tracing::error!(%reason, contact_ref, context, "PBX refused the originate");
                Err(pbx_unavailable(refused(&reason, context)))
            }
            OriginateError::Encode(reason) => Err(ApiError::new(Error::INTERNAL).cause(
                format_args!("originate could not be encoded for {contact_ref}: {reason}"),
            )),
        };
    }
    admission::accepted(&state, claim).await;
    tracing::info!(contact_ref, recording_ref, key = %caller.id, "call queued");
    Ok(json_response(StatusCode::ACCEPTED, answer.into_bytes()))
}

/// `400`: the body could not be read (e.g. a malformed chunked encoding).
pub const UNREADABLE_BODY: Error = Error::request(
    ErrorCode::BadRequest,
    "the request body could not be read (malformed transfer encoding)",
);

/// Why a body could not be read: too long (`413`) or broken on the wire (`400`).
fn body_error(error: &axum::Error) -> Error {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return Error::BODY_TOO_LARGE;
        }
        source = e.source();
    }
    UNREADABLE_BODY
}

/// How long a client should wait before trying again while Redis does not answer.
const REDIS_RETRY_AFTER_SECS: u64 = 2;

/// How long a client should wait before trying again while the PBX cannot take calls.
const PBX_RETRY_AFTER_SECS: u64 = 10;

/// `422 unknown_agent`: no configured PBX serves `agent` (no `[[pbx]]` entry lists it and
/// none is the default).
fn unknown_agent(agent: &str) -> ApiError {
    ApiError::new(Error::field(ErrorCode::UnknownAgent, Field::Agent, "")).with_message(format!(
        "agent {agent} is served by no configured PBX: add it to the agents of a [[pbx]] \
             entry, or make one the default; nothing was dialled"
    ))
}

/// `503 pbx_unavailable` saying why, with `Retry-After`.
fn pbx_unavailable(why: String) -> ApiError {
    ApiError::new(Error::PBX_UNAVAILABLE)
        .with_message(why)
        .retry_after(PBX_RETRY_AFTER_SECS)
}

impl From<Refusal> for ApiError {
    /// A call not admitted: `503`s (Redis, the cap on calls, a first attempt still under
    /// way) say when to try again.
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Error(error) if error.status() == 503 => {
                ApiError::new(error).retry_after(REDIS_RETRY_AFTER_SECS)
            }
            Refusal::Error(error) => ApiError::new(error),
            Refusal::Busy => ApiError::new(admission::TOO_MANY_CALLS).retry_after(5),
            Refusal::FirstPending => ApiError::new(admission::FIRST_PENDING).retry_after(2),
        }
    }
}

/// The client's sentence for an Originate Asterisk answered with `Response: Error`.
fn refused(reason: &str, context: &str) -> String {
    let reason = reason.trim();
    if reason.starts_with("Extension does not exist") {
        format!(
            "the PBX refused the call ({reason}): its dialplan has no extension for this \
             callee in context {context}; #include the click2dial extensions.conf kit and \
             `dialplan reload`; nothing was dialled"
        )
    } else {
        format!("the PBX refused the call ({reason}); nothing was dialled")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;

    fn answer(refusal: Refusal) -> (u16, Option<String>) {
        let response = ApiError::from(refusal).into_response();
        let retry = response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap_or_default().to_string());
        (response.status().as_u16(), retry)
    }

    #[test]
    fn a_refused_admission_says_when_to_try_again() {
        let secs = |s: &str| Some(s.to_string());
        assert_eq!(answer(Refusal::Busy), (503, secs("5")));
        assert_eq!(answer(Refusal::FirstPending), (503, secs("2")));
        assert_eq!(
            answer(Refusal::Error(admission::STORE_UNAVAILABLE)),
            (503, secs("2"))
        );
        assert_eq!(
            answer(Refusal::Error(Error::CONTACT_REF_CONFLICT)),
            (409, None)
        );
    }
}
