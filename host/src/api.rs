//! The REST API: `POST /click2dial/calls`.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use click2dial_core::call::Mode;
use click2dial_core::json::{self, Accepted};
use click2dial_core::reference::ChannelId;
use click2dial_core::template::Template;
use click2dial_core::{request, Error, ErrorCode, ValidCall};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
pub use crate::errors::ApiError;
use crate::errors::{json_response, retry_after};
use crate::idempotency::{self, Claim};
use crate::pbx::{CallRecord, OriginateError, OriginateRequest};
use crate::state::AppState;

/// `/click2dial/calls`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_call))
}

/// `503`: the idempotency store is down and the client gave a `contact_ref`.
const STORE_UNAVAILABLE: Error = Error::request(
    ErrorCode::ServiceUnavailable,
    "the idempotency store (Redis) is unreachable; nothing was dialled, retry later",
);

/// `503`: `limits.max_calls_in_flight` calls are in flight.
const TOO_MANY_CALLS: Error = Error::request(
    ErrorCode::ServiceUnavailable,
    "too many calls in flight; nothing was dialled, retry later",
);

/// Create a call: ring the agent, then dial the callee.
#[utoipa::path(
    post,
    path = "/click2dial/calls",
    tag = "calls",
    security(("api_key" = [])),
    request_body(content = crate::openapi::CreateCall, content_type = "application/json"),
    responses(
        (status = 202, description = "Queued to the PBX (or the first answer again, for a repeated contact_ref)", body = crate::openapi::Queued),
        (status = 400, description = "Malformed JSON", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing or bad API key", body = crate::openapi::ErrorBody),
        (status = 408, description = "The request did not arrive in time", body = crate::openapi::ErrorBody),
        (status = 409, description = "contact_ref already used with a different payload", body = crate::openapi::ErrorBody),
        (status = 413, description = "Body larger than 4096 bytes", body = crate::openapi::ErrorBody),
        (status = 415, description = "Not JSON", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field breaks its rule, the dialling policy or the key's permissions", body = crate::openapi::ErrorBody),
        (status = 429, description = "The key's rate limit; see Retry-After", body = crate::openapi::ErrorBody),
        (status = 503, description = "PBX or Redis unreachable, or too many calls in flight; nothing was dialled", body = crate::openapi::ErrorBody),
    )
)]
async fn create_call(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    request::check_content_type(headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()))?;
    let bytes = to_bytes(body, request::MAX_BODY_LEN)
        .await
        .map_err(|_| Error::BODY_TOO_LARGE)?;
    let parsed = request::parse(&bytes)?;
    let valid = state.validators.validate(&parsed, &state.policy())?;
    caller.check_call(valid.agent, valid.outbound_id.as_str())?;
    if !state.pbx.is_ready() {
        return Err(Error::PBX_UNAVAILABLE.into());
    }
    let mut entropy = [0u8; 32];
    getrandom::fill(&mut entropy).map_err(|_| Error::INTERNAL)?;
    let call = valid.assign_references(&entropy);
    let contact_ref = call.contact_ref.as_str();
    let recording_ref = call.recording_ref.as_str();
    let recording_url = state
        .recording_url
        .render(contact_ref, recording_ref)
        .to_string();
    let notifications_key = Template::new(&state.config.redis.call_key_template)
        .map_err(|_| Error::INTERNAL)?
        .render(contact_ref, recording_ref)
        .to_string();
    let mut buf = [0u8; 2048];
    let n = json::write_accepted(
        &Accepted {
            call: &call,
            recording_url: Some(state.recording_url.render(contact_ref, recording_ref)),
            notifications_key: Some(
                Template::new(&state.config.redis.call_key_template)
                    .map_err(|_| Error::INTERNAL)?
                    .render(contact_ref, recording_ref),
            ),
        },
        &mut buf,
    )
    .map_err(|_| Error::INTERNAL)?;
    let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
    let callee_e164 = call.valid.callee.e164().to_string();

    let claim_key = (!call.contact_ref.is_generated())
        .then(|| format!("{}{}", state.config.redis.idempotency_prefix, contact_ref));
    if let Some(key) = &claim_key {
        let print = idempotency::fingerprint(
            call.valid.agent,
            &callee_e164,
            call.valid.outbound_id.as_str(),
            contact_ref,
        );
        let mut conn = state.redis().await.ok_or(STORE_UNAVAILABLE)?;
        let claim = idempotency::claim(
            &mut conn,
            key,
            &print,
            &answer,
            state.config.redis.idempotency_ttl_secs,
        )
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "idempotency store failed");
            STORE_UNAVAILABLE
        })?;
        match claim {
            Claim::New => {}
            Claim::Repeat(first) => {
                tracing::info!(contact_ref, "repeated create-call answered from the first");
                return Ok(json_response(StatusCode::ACCEPTED, first.into_bytes()));
            }
            Claim::Conflict => return Err(Error::CONTACT_REF_CONFLICT.into()),
        }
    }

    let Ok(slot) = state.call_slots.clone().try_acquire_owned() else {
        if let (Some(key), Some(mut conn)) = (&claim_key, state.redis().await) {
            let _ = idempotency::release(&mut conn, key).await;
        }
        tracing::warn!(
            limit = state.config.limits.max_calls_in_flight,
            "create-call refused: too many calls in flight"
        );
        let mut response = ApiError(TOO_MANY_CALLS).into_response();
        let (name, value) = retry_after(5);
        response.headers_mut().insert(name, value);
        return Ok(response);
    };
    let channel_id = ChannelId::for_contact_ref(contact_ref).to_string();
    let originate = originate_request(
        &call.valid,
        channel_id,
        CallRecord {
            single_leg: call.valid.single_leg,
            contact_ref: contact_ref.to_string(),
            agent: call.valid.agent.to_string(),
            callee_e164,
            outbound_id: call.valid.outbound_id.as_str().to_string(),
            recording_ref: recording_ref.to_string(),
            recording_url,
            notifications_key,
        },
        slot,
    );
    // Before the Originate: every other host must be able to follow this call.
    if let Some(store) = &state.call_store {
        if !store.save(&originate.channel_id, &originate.record).await {
            tracing::warn!(
                contact_ref,
                "call record not stored: only this host follows the call"
            );
        }
    }
    if let Err(e) = state.pbx.originate(originate).await {
        if let (Some(key), Some(mut conn)) = (&claim_key, state.redis().await) {
            let _ = idempotency::release(&mut conn, key).await;
        }
        return Err(match e {
            OriginateError::NotConnected => Error::PBX_UNAVAILABLE,
            OriginateError::Refused(reason) => {
                tracing::error!(%reason, contact_ref, "PBX refused the originate");
                Error::PBX_UNAVAILABLE
            }
            OriginateError::Encode(reason) => {
                tracing::error!(%reason, contact_ref, "originate could not be encoded");
                Error::INTERNAL
            }
        }
        .into());
    }
    tracing::info!(contact_ref, recording_ref, key = %caller.id, "call queued");
    Ok(json_response(StatusCode::ACCEPTED, answer.into_bytes()))
}

/// The Originate request for a validated call; core composes the action itself.
fn originate_request(
    valid: &ValidCall<'_>,
    channel_id: String,
    record: CallRecord,
    slot: tokio::sync::OwnedSemaphorePermit,
) -> OriginateRequest {
    OriginateRequest {
        channel_id,
        mode: if valid.single_leg {
            Mode::SingleLeg
        } else {
            Mode::TwoLeg
        },
        callee: valid.callee.as_str().to_string(),
        record,
        slot: Some(slot),
    }
}
