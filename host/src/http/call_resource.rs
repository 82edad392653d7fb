//! The call as a resource: `GET /click2dial/calls/{contact_ref}` and `GET /click2dial/calls`
//! (issue 14). A call's notifications are kept, in order, in its history in Redis (written
//! with each notification by the push script, `store::schema`), for as long as its
//! idempotency record; the answer folds them with core's [`CallStatus`], so it survives a
//! host restart and every host answers alike. Only the key that created a call sees it: a
//! foreign `contact_ref` is `404`, as an unknown one.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use click2dial_core::json::{Cause, Event};
use click2dial_core::status::{CallStatus, Reason, State as CallState};
use click2dial_core::time::Timestamp;
use click2dial_core::{Error, ErrorCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Caller, Scope};
use crate::calls::Calls;
use crate::http::error::ApiError;
use crate::pbx::Pbx;
use crate::store::schema;

/// The most calls one page of `GET /click2dial/calls` holds.
pub const PAGE_MAX: usize = 100;

const NO_SUCH_CALL: Error = Error::request(
    ErrorCode::NotFound,
    "no call of this key with this contact_ref (or it ended longer ago than the idempotency TTL)",
);

/// One phone of a call.
#[derive(Serialize, ToSchema)]
pub struct LegView {
    /// The agent's extension, or the callee in E.164.
    number: String,
    /// The phone rang.
    rung: bool,
    /// The phone answered.
    answered: bool,
    /// Why this phone's part failed (`agent_busy`, `callee_no_answer`, …), when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    cause: Option<String>,
}

/// The call's recording.
#[derive(Serialize, ToSchema)]
pub struct RecordingView {
    /// 26 characters of a-z and 2-7.
    recording_ref: String,
    /// Where it is served (absent for a call created with `record: false`).
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    /// The file is complete.
    ready: bool,
}

/// A call, as `GET /click2dial/calls/{contact_ref}` answers.
#[derive(Serialize, ToSchema)]
pub struct CallView {
    /// The call's contact reference.
    contact_ref: String,
    /// `initiating`, `callingCaller`, `callingCallee`, `connected`, `disconnected`, `failed`
    /// (CAMARA ClickToDial).
    #[schema(example = "connected")]
    state: String,
    /// Why it is `disconnected` or `failed`: `hangUp`, `maxDuration`, `callerBusy`,
    /// `callerNoAnswer`, `callerFailure`, `callerAbandon`, `calleeBusy`, `calleeNoAnswer`,
    /// `calleeFailure`, `other`.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// The agent's phone.
    agent: LegView,
    /// The callee's phone.
    callee: LegView,
    /// The caller ID the callee saw requested.
    outbound_id: String,
    /// When the call was accepted (RFC 3339, UTC).
    created_at: String,
    /// When agent and callee were connected.
    #[serde(skip_serializing_if = "Option::is_none")]
    connected_at: Option<String>,
    /// When the call ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    ended_at: Option<String>,
    /// Seconds connected (so far, for a connected call).
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_secs: Option<u64>,
    /// The recording.
    recording: RecordingView,
}

/// A page of calls.
#[derive(Serialize, ToSchema)]
pub struct CallPage {
    /// Newest first.
    calls: Vec<CallView>,
    /// Pass as `before` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// The filters of `GET /click2dial/calls`.
#[derive(Deserialize, IntoParams)]
pub struct ListQuery {
    /// Only calls in this state (`connected`, `failed`, …).
    state: Option<String>,
    /// At most this many (1–100, default 20).
    limit: Option<usize>,
    /// The `next` of the previous page.
    before: Option<String>,
}

#[derive(Deserialize)]
struct Entry {
    at_ms: u64,
    /// The call's `ChannelId` (its originated channel's `Uniqueid`).
    #[serde(default)]
    channel: String,
    /// Absent in the entry `DELETE` writes ([`DELETED`]).
    #[serde(default)]
    notification: serde_json::Value,
    /// The client asked to end the call (`DELETE`).
    #[serde(default)]
    deleted: bool,
}

/// The history entry `DELETE` appends before it asks the PBX to hang up: the call's end
/// that follows was asked for, so its reason is `hangUp` whatever the PBX reports.
const DELETED: &str = r#"{"at_ms":0,"deleted":true}"#;

/// The call's view from its history (oldest first); `None` when empty.
fn fold(contact_ref: &str, history: &[String], now_ms: u64) -> Option<CallView> {
    fold_with_channel(contact_ref, history, now_ms).map(|(view, _)| view)
}

/// [`fold`], with the call's `ChannelId`.
fn fold_with_channel(
    contact_ref: &str,
    history: &[String],
    now_ms: u64,
) -> Option<(CallView, String)> {
    let entries: Vec<Entry> = history
        .iter()
        .filter_map(|e| serde_json::from_str(e).ok())
        .collect();
    let first = entries.iter().find(|e| !e.deleted)?;
    let mut status = CallStatus::new(first.at_ms);
    let mut deleted = false;
    for entry in &entries {
        if entry.deleted {
            deleted = !status.state.is_final();
            continue;
        }
        let n = &entry.notification;
        let Some(event) = n["event"].as_str().and_then(Event::from_name) else {
            continue;
        };
        let cause: Option<Cause> = serde_json::from_value(n["cause"].clone()).ok();
        status.apply(event, cause, entry.at_ms);
    }
    if deleted && status.state.is_final() {
        // Ended because the client asked: not a failure of either phone.
        status.reason = Some(Reason::HangUp);
        status.agent.cause = None;
        status.callee.cause = None;
    }
    let n = &first.notification;
    let text = |key: &str| n[key].as_str().unwrap_or_default().to_string();
    let leg = |number: String, leg: click2dial_core::status::Leg| LegView {
        number,
        rung: leg.rung,
        answered: leg.answered,
        cause: leg.cause.map(|c| c.as_str().to_string()),
    };
    let at = |ms: u64| Timestamp::from_unix_millis(ms).to_string();
    let view = CallView {
        contact_ref: contact_ref.to_string(),
        state: status.state.as_str().to_string(),
        reason: status.reason.map(|r| r.as_str().to_string()),
        agent: leg(text("agent"), status.agent),
        callee: leg(text("callee"), status.callee),
        outbound_id: text("outbound_id"),
        created_at: at(status.created_ms),
        connected_at: status.connected_ms.map(at),
        ended_at: status.ended_ms.map(at),
        duration_secs: status.connected_for_ms(now_ms).map(|ms| ms / 1000),
        recording: RecordingView {
            recording_ref: text("recording_ref"),
            url: n["recording_url"].as_str().map(str::to_string),
            ready: status.recording_ready,
        },
    };
    Some((view, first.channel.clone()))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn unavailable() -> ApiError {
    ApiError::new(Error::request(
        ErrorCode::ServiceUnavailable,
        "the call store is unreachable; retry later",
    ))
    .retry_after(2)
}

/// The `{contact_ref}` segment, as sent (never percent-decoded, as for its events).
fn raw_contact_ref(request: &Request) -> &str {
    request
        .uri()
        .path()
        .strip_prefix("/click2dial/calls/")
        .unwrap_or_default()
}

/// A call of the calling key: its state, each phone's outcome, its times and recording.
#[utoipa::path(
    get,
    path = "/click2dial/calls/{contact_ref}",
    tag = "calls",
    security(("api_key" = ["calls:read"])),
    params(("contact_ref" = String, Path, description = "The contact_ref of the 202 answer")),
    responses(
        (status = 200, description = "The call", body = CallView),
        (status = 401, description = "Missing or bad API key", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The key lacks the scope calls:read", body = crate::http::openapi::ErrorBody),
        (status = 404, description = "No call of this key with this contact_ref (another key's call is not found either)", body = crate::http::openapi::ErrorBody),
        (status = 422, description = "Not a contact_ref", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "Redis unreachable (`service_unavailable`, Retry-After)", body = crate::http::openapi::ErrorBody),
    )
)]
pub async fn get_call(
    State(calls): State<Calls>,
    Extension(caller): Extension<Arc<Caller>>,
    request: Request,
) -> Result<Response, ApiError> {
    caller.require(Scope::CallsRead)?;
    let contact_ref = checked_contact_ref(&request, &calls)?;
    let history = history(&calls, caller.owner(), &contact_ref).await?;
    let view = fold(&contact_ref, &history, now_ms()).ok_or(ApiError::new(NO_SUCH_CALL))?;
    Ok(Json(view).into_response())
}

/// The `{contact_ref}` segment, checked.
fn checked_contact_ref(request: &Request, calls: &Calls) -> Result<String, ApiError> {
    Ok(calls
        .validators
        .contact_ref_in_path(raw_contact_ref(request))?
        .to_string())
}

/// `owner`'s call's history, oldest first (empty: no such call).
async fn history(calls: &Calls, owner: &str, contact_ref: &str) -> Result<Vec<String>, ApiError> {
    let mut conn = calls.redis().await.ok_or_else(unavailable)?;
    let key = history_key(calls, &conn, owner, contact_ref);
    calls
        .redis_op(
            redis::cmd("LRANGE")
                .arg(key)
                .arg(0)
                .arg(schema::HISTORY_MAX - 1)
                .query_async(&mut conn),
        )
        .await
        .ok_or_else(unavailable)
}

/// The key of `owner`'s call's history on `conn` (with Redis Cluster, in its list's slot).
fn history_key(
    calls: &Calls,
    conn: &crate::store::target::Conn,
    owner: &str,
    contact_ref: &str,
) -> String {
    schema::history_key_on(
        conn.is_cluster(),
        &calls.config.redis.call_key_template,
        owner,
        contact_ref,
    )
}

/// How long `DELETE` waits for the call to end before it answers `202`.
const END_WITHIN: Duration = Duration::from_secs(10);

/// How often `DELETE` asks the PBX again while the call goes on (a channel that did not
/// exist yet when it first asked, a PBX that reconnected).
const ASK_AGAIN_EVERY: Duration = Duration::from_secs(2);

/// End a call of the calling key: the PBX hangs up its channels (both legs of a connected
/// call, the ringing phone of one not yet connected); the call ends `disconnected` (it was
/// connected) or `failed` (it was not), with reason `hangUp`. Idempotent: a call already
/// over is answered as it is.
#[utoipa::path(
    delete,
    path = "/click2dial/calls/{contact_ref}",
    tag = "calls",
    security(("api_key" = ["calls:create"])),
    params(("contact_ref" = String, Path, description = "The contact_ref of the 202 answer")),
    responses(
        (status = 200, description = "The call is over (now, or it already was): its final state", body = CallView),
        (status = 202, description = "The PBX was asked to end it and it has not ended within 10 s: its state so far", body = CallView),
        (status = 401, description = "Missing or bad API key", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The key lacks the scope calls:create", body = crate::http::openapi::ErrorBody),
        (status = 404, description = "No call of this key with this contact_ref (another key's call is not found either)", body = crate::http::openapi::ErrorBody),
        (status = 422, description = "Not a contact_ref", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "Redis or the PBX unreachable (`service_unavailable`/`pbx_unavailable`, Retry-After)", body = crate::http::openapi::ErrorBody),
    )
)]
pub async fn end_call(
    State(calls): State<Calls>,
    Extension(caller): Extension<Arc<Caller>>,
    request: Request,
) -> Result<Response, ApiError> {
    caller.require(Scope::CallsCreate)?;
    let contact_ref = checked_contact_ref(&request, &calls)?;
    let deadline = tokio::time::Instant::now() + END_WITHIN;
    let mut asked: Option<tokio::time::Instant> = None;
    let mut carrier: Option<Pbx> = None;
    loop {
        let history = history(&calls, caller.owner(), &contact_ref).await?;
        let (view, channel) = fold_with_channel(&contact_ref, &history, now_ms())
            .ok_or(ApiError::new(NO_SUCH_CALL))?;
        if is_final(&view.state) {
            return Ok(Json(view).into_response());
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok((StatusCode::ACCEPTED, Json(view)).into_response());
        }
        // One mark per call, however many DELETEs come: the history stays bounded.
        if asked.is_none() && !history.iter().any(|e| e.as_str() == DELETED) {
            let mut conn = calls.redis().await.ok_or_else(unavailable)?;
            calls
                .redis_op(
                    redis::cmd("RPUSH")
                        .arg(history_key(&calls, &conn, caller.owner(), &contact_ref))
                        .arg(DELETED)
                        .query_async::<()>(&mut conn),
                )
                .await
                .ok_or_else(unavailable)?;
        }
        if asked.is_none_or(|at| now >= at + ASK_AGAIN_EVERY) {
            if carrier.is_none() {
                carrier = Some(carrying_pbx(&calls, &channel, &view.agent.number).await?);
            }
            let pbx = carrier.as_ref().ok_or_else(unavailable)?;
            pbx.hang_up(&channel).await.map_err(|e| {
                tracing::debug!(%channel, error = %e, "hangup not sent");
                ApiError::new(Error::PBX_UNAVAILABLE).retry_after(2)
            })?;
            asked = Some(now);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The PBX that carries the call on `channel`: the one its stored record names, else (a
/// record stored before several PBXes, or none) the one that serves its agent.
async fn carrying_pbx(calls: &Calls, channel: &str, agent: &str) -> Result<Pbx, ApiError> {
    let record = match &calls.call_store {
        Some(store) => tokio::time::timeout(crate::store::gate::REDIS_WITHIN, store.load(channel))
            .await
            .ok()
            .and_then(|loaded| loaded.ok().flatten()),
        None => None,
    };
    calls
        .pbxes
        .carrying(record.and_then(|r| r.pbx).as_deref(), agent)
        .map(|site| site.pbx.clone())
        .ok_or_else(|| {
            ApiError::new(Error::PBX_UNAVAILABLE)
                .with_message(format!(
                    "no configured PBX carries this call (agent {agent}); nothing was hung up"
                ))
                .retry_after(2)
        })
}

fn is_final(state: &str) -> bool {
    state == CallState::Disconnected.as_str() || state == CallState::Failed.as_str()
}

/// The calling key's calls, newest first, optionally in one state; paginated.
#[utoipa::path(
    get,
    path = "/click2dial/calls",
    tag = "calls",
    security(("api_key" = ["calls:read"])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of calls", body = CallPage),
        (status = 401, description = "Missing or bad API key", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The key lacks the scope calls:read", body = crate::http::openapi::ErrorBody),
        (status = 422, description = "A bad state, limit or before", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "Redis unreachable (`service_unavailable`, Retry-After)", body = crate::http::openapi::ErrorBody),
    )
)]
pub async fn list_calls(
    State(calls): State<Calls>,
    Extension(caller): Extension<Arc<Caller>>,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    caller.require(Scope::CallsRead)?;
    const STATES: [&str; 6] = [
        "initiating",
        "callingCaller",
        "callingCallee",
        "connected",
        "disconnected",
        "failed",
    ];
    let bad = |message: &'static str| ApiError::new(Error::request(ErrorCode::BadRequest, message));
    if query.state.as_deref().is_some_and(|s| !STATES.contains(&s)) {
        return Err(bad("state must be initiating, callingCaller, callingCallee, connected, disconnected or failed"));
    }
    let limit = query.limit.unwrap_or(20);
    if !(1..=PAGE_MAX).contains(&limit) {
        return Err(bad("limit must be from 1 to 100"));
    }
    // `before` is `<created ms>:<contact_ref>` of the last call of the previous page.
    let before: Option<(u64, String)> = match query.before.as_deref() {
        None => None,
        Some(cursor) => {
            let (ms, r) = cursor
                .split_once(':')
                .and_then(|(ms, r)| Some((ms.parse::<u64>().ok()?, r)))
                .ok_or_else(|| bad("before must be the next of a previous page"))?;
            Some((ms, r.to_string()))
        }
    };
    let mut conn = calls.redis().await.ok_or_else(unavailable)?;
    let index = schema::calls_key(caller.owner());
    let max = before
        .as_ref()
        .map_or("+inf".to_string(), |(ms, _)| ms.to_string());
    // Scan newest first, a bounded number of entries per page (a state filter may skip many).
    let scanned: Vec<(String, u64)> = calls
        .redis_op(
            redis::cmd("ZREVRANGEBYSCORE")
                .arg(&index)
                .arg(&max)
                .arg("-inf")
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(0)
                .arg(PAGE_MAX * 5)
                .query_async(&mut conn),
        )
        .await
        .ok_or_else(unavailable)?;
    let now = now_ms();
    let mut page = Vec::new();
    let mut next = None;
    // Same-score entries come in one order every time; the cursor's own entry is skipped
    // along with those before it.
    let mut at_cursor = before.is_some();
    for (contact_ref, created) in scanned {
        if let Some((ms, last)) = &before {
            if created > *ms {
                continue;
            }
            if created == *ms && at_cursor {
                at_cursor = contact_ref != *last;
                continue;
            }
        }
        if page.len() == limit {
            break;
        }
        let key = history_key(&calls, &conn, caller.owner(), &contact_ref);
        let history: Vec<String> = calls
            .redis_op(
                redis::cmd("LRANGE")
                    .arg(key)
                    .arg(0)
                    .arg(schema::HISTORY_MAX - 1)
                    .query_async(&mut conn),
            )
            .await
            .ok_or_else(unavailable)?;
        let Some(view) = fold(&contact_ref, &history, now) else {
            continue;
        };
        if query.state.as_deref().is_some_and(|s| s != view.state) {
            continue;
        }
        next = Some(format!("{created}:{contact_ref}"));
        page.push(view);
    }
    if page.len() < limit {
        next = None;
    }
    Ok(Json(CallPage { calls: page, next }).into_response())
}
