//! Admitting a validated call, whichever way it arrived (REST or FastAGI): references,
//! the idempotency claim on `contact_ref`, a place under `limits.max_calls_in_flight`, and
//! the call's record for every host. What happens next differs: REST originates the call,
//! FastAGI tells the dialplan to dial it.

use click2dial_core::call::Mode;
use click2dial_core::fingerprint::Fingerprint;
use click2dial_core::json::{self, Accepted};
use click2dial_core::template::Rendered;
use click2dial_core::validate::Call;
use click2dial_core::values::CallValues;
use click2dial_core::{Error, ErrorCode};
use tokio::sync::OwnedSemaphorePermit;

use crate::call::CallRecord;
use crate::calls::Calls;
use crate::pbx::OriginateRequest;
use crate::store::idempotency::{self, Acceptance, Claim};
use crate::store::schema;

/// `503`: the idempotency store is down and the client gave a `contact_ref`.
pub const STORE_UNAVAILABLE: Error = Error::request(
    ErrorCode::ServiceUnavailable,
    "the idempotency store (Redis) is unreachable; nothing was dialled, retry later",
);

/// `503`: `limits.max_calls_in_flight` calls are in flight.
pub const TOO_MANY_CALLS: Error = Error::request(
    ErrorCode::ServiceUnavailable,
    "too many calls in flight; nothing was dialled, retry later",
);

/// A call that may be dialled now.
#[derive(Debug)]
pub struct Admitted {
    /// The key the call's tracker and stored record go by.
    pub channel_id: String,
    /// Two legs, one leg, or started by the agent's own channel.
    pub mode: Mode,
    /// The call's values, for the PBX and the notifications.
    pub record: CallRecord,
    /// The `202` body (also what a repeat of this call is answered with).
    pub answer: String,
    /// The idempotency claim, released with [`release`] when the call is not dialled and
    /// marked with [`accepted`] once it is.
    pub claim: Option<Acceptance>,
    /// The call's place under `limits.max_calls_in_flight`.
    pub slot: OwnedSemaphorePermit,
}

impl From<Box<Admitted>> for OriginateRequest {
    /// What the PBX client needs to dial (REST) or follow (FastAGI) an admitted call.
    fn from(admitted: Box<Admitted>) -> Self {
        Self {
            channel_id: admitted.channel_id,
            mode: admitted.mode,
            record: admitted.record,
            slot: Some(admitted.slot),
        }
    }
}

/// The outcome of [`admit`].
#[derive(Debug)]
pub enum Admission {
    /// Dial it.
    New(Box<Admitted>),
    /// The same call was accepted before: dial nothing; this was the first answer.
    Repeat(String),
}

/// Why a call was not admitted; nothing was dialled.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A rule, a conflict or an unreachable dependency.
    Error(Error),
    /// Too many calls in flight: retry in a few seconds.
    Busy,
    /// A request with the same `contact_ref` and payload is still being dialled after
    /// [`REPEAT_WAIT`]: its outcome is not known; retry in a few seconds.
    FirstPending,
}

/// How long a repeat waits for the outcome of the first attempt still under way.
pub const REPEAT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How often a waiting repeat looks at the claim again.
const REPEAT_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// `503`: the first request with this `contact_ref` is still being dialled.
pub const FIRST_PENDING: Error = Error::request(
    ErrorCode::ServiceUnavailable,
    "a request with this contact_ref is still being dialled and its outcome is not known yet; \
     nothing more was dialled, retry later",
);

impl From<Error> for Refusal {
    fn from(error: Error) -> Self {
        Self::Error(error)
    }
}

/// Admits `call` under `channel_id` (REST: derived from `contact_ref`; FastAGI: the agent
/// channel's `Uniqueid`), to be carried by the PBX named `pbx` (kept in its record). On
/// success the call holds a slot, its claim, and its record is in Redis for the other hosts.
/// With a `contact_ref`, the claim and the record are one round trip to Redis (the record is
/// stored only when the claim is new).
pub async fn admit(
    state: &Calls,
    call: &Call<'_>,
    owner: &str,
    channel_id: String,
    mode: Mode,
    pbx: &str,
) -> Result<Admission, Refusal> {
    let contact_ref = call.contact_ref.as_str();
    let recording_ref = call.recording_ref.as_str();
    let recording_url = state.recording_url.render(contact_ref, recording_ref);
    let notifications_key = state
        .notifications_key
        .as_ref()
        .ok_or(Error::INTERNAL)?
        .render(contact_ref, recording_ref);
    let answer = accepted_body(
        call,
        // A call created with `record: false` has no recording to fetch.
        call.valid.controls.record.then_some(recording_url),
        notifications_key,
    )?;
    let record = CallRecord {
        call: CallValues::new(call).ok_or(Error::INTERNAL)?,
        agent_initiated: mode == Mode::AgentInitiated,
        owner: owner.to_string(),
        recording_url: text(recording_url, 256),
        notifications_key: text(notifications_key, 128),
        pbx: Some(pbx.to_string()),
    };

    let print = text(Fingerprint::of(call), 256);
    let claim = (!call.contact_ref.is_generated()).then(|| {
        Acceptance::new(
            schema::claim_key(&state.config.redis.idempotency_prefix, owner, contact_ref),
            &print,
            &answer,
            state.config.redis.idempotency_ttl_secs,
        )
    });
    let owner_key = schema::recording_owner_key(recording_ref);
    let owner_ttl_secs = state.config.recordings.owner_ttl_secs;
    // The record goes to Redis with the claim, in one round trip, when there is a claim.
    let mut record_key = None;
    if let Some(acceptance) = &claim {
        let key = acceptance.key.as_str();
        let mut conn = state.redis().await.ok_or(STORE_UNAVAILABLE)?;
        // With Redis Cluster the record's keys are in other slots than the claim's: the
        // claim alone decides, and the record follows it (below, as without a claim).
        let with_record = state
            .call_store
            .as_ref()
            .filter(|_| !conn.is_cluster())
            .and_then(|store| {
                // Written into a buffer the record fits in, not grown from serde_json's
                // 128 bytes by reallocation.
                let mut json = Vec::with_capacity(1024);
                serde_json::to_writer(&mut json, &record).ok()?;
                let json = String::from_utf8(json).ok()?;
                Some((schema::call_key(&channel_id), json, store.ttl_secs()))
            });
        let stored = with_record
            .as_ref()
            .map(|(key, json, ttl_secs)| idempotency::StoredRecord {
                key,
                json,
                ttl_secs: *ttl_secs,
                owner_key: &owner_key,
                owner,
                owner_ttl_secs,
            });
        let deadline = tokio::time::Instant::now() + REPEAT_WAIT;
        // A repeat of a call still being dialled waits for its outcome: the first answer
        // once the PBX queued it, or, when the attempt failed and released the claim, a
        // claim of its own (and so the same outcome a retry would get).
        let mut claimed = state
            .redis_op(idempotency::claim(&mut conn, acceptance, &print, stored))
            .await
            .ok_or(STORE_UNAVAILABLE)?;
        while claimed == Claim::Pending {
            if tokio::time::Instant::now() >= deadline {
                tracing::info!(contact_ref, "repeat gave up waiting for the first attempt");
                return Err(Refusal::FirstPending);
            }
            tokio::time::sleep(REPEAT_POLL).await;
            claimed = match state
                .redis_op(idempotency::look(&mut conn, key, &print))
                .await
                .ok_or(STORE_UNAVAILABLE)?
            {
                Some(claimed) => claimed,
                None => state
                    .redis_op(idempotency::claim(&mut conn, acceptance, &print, stored))
                    .await
                    .ok_or(STORE_UNAVAILABLE)?,
            };
        }
        match claimed {
            Claim::New => record_key = with_record.as_ref().map(|(key, _, _)| key.clone()),
            Claim::Repeat(first) => {
                tracing::info!(contact_ref, "repeated create-call answered from the first");
                return Ok(Admission::Repeat(first));
            }
            Claim::Conflict => return Err(Error::CONTACT_REF_CONFLICT.into()),
            Claim::Pending => return Err(Refusal::FirstPending),
        }
    }

    let Ok(slot) = state.call_slots.clone().try_acquire_owned() else {
        // Nothing is dialled: neither the claim nor the record stored with it stays.
        let claim_key = claim.as_ref().map(|c| c.key.as_str());
        release_keys(state, claim_key, record_key.as_deref()).await;
        tracing::warn!(
            limit = state.config.limits.max_calls_in_flight,
            "call refused: too many calls in flight"
        );
        return Err(Refusal::Busy);
    };
    // Before anything is dialled: every other host must be able to follow this call.
    if record_key.is_none() {
        if let Some(store) = &state.call_store {
            let save = store.save(&channel_id, &record, owner_ttl_secs);
            if !tokio::time::timeout(crate::store::gate::REDIS_WITHIN, save)
                .await
                .unwrap_or(false)
            {
                tracing::warn!(
                    contact_ref,
                    "call record not stored: only this host follows the call"
                );
            }
        }
    }
    Ok(Admission::New(Box::new(Admitted {
        channel_id,
        mode,
        record,
        answer,
        claim,
        slot,
    })))
}

/// The `202` body. Not in [`admit`] itself: its buffer would be part of the create's
/// future, copied whole each time the future moves (into its box, through the layers).
fn accepted_body(
    call: &Call<'_>,
    recording_url: Option<Rendered<'_, '_>>,
    notifications_key: Rendered<'_, '_>,
) -> Result<String, Error> {
    let mut buf = [0u8; 2048];
    let n = json::write_accepted(
        &Accepted {
            call,
            recording_url,
            notifications_key: Some(notifications_key),
        },
        &mut buf,
    )
    .map_err(|_| Error::INTERNAL)?;
    // Core writes UTF-8: check it the fast way (the lossy one walks it in chunks).
    let written = buf.get(..n).unwrap_or_default();
    Ok(std::str::from_utf8(written).map_or_else(
        |_| String::from_utf8_lossy(written).into_owned(),
        str::to_owned,
    ))
}

/// `value` as a `String` made with room for `capacity` bytes, not grown from empty by
/// reallocation (`to_string` starts with nothing and doubles).
fn text(value: impl std::fmt::Display, capacity: usize) -> String {
    let mut out = String::with_capacity(capacity);
    let _ = std::fmt::Write::write_fmt(&mut out, format_args!("{value}"));
    out
}

/// The PBX queued the call: repeats get its first answer from now on. The acceptance goes
/// with the notifications (see [`idempotency`]). While the notifier keeps up, the create
/// does not wait for it; once more than [`SPOOL_BACKLOG`] items wait to be pushed, it waits
/// until its acceptance is in Redis, at most [`crate::store::gate::REDIS_WITHIN`]: creates
/// then go no faster than their notifications are pushed, and the spool does not grow
/// under a load Redis cannot take. Past the deadline the acceptance stays in the spool and
/// the call is answered (it was dialled).
pub async fn accepted(state: &Calls, claim: Option<Acceptance>) {
    let Some(claim) = claim else {
        return;
    };
    let written = state.notifier.accept(claim);
    if state.notifier.spool_depth() <= SPOOL_BACKLOG {
        return;
    }
    if tokio::time::timeout(crate::store::gate::REDIS_WITHIN, written)
        .await
        .is_err()
    {
        tracing::warn!("idempotency claim not yet marked accepted: it waits in the spool");
    }
}

/// How many notifications and acceptances may wait to be pushed before a create waits for
/// its own ([`accepted`]): one of the notifier's batches, so that a waiting create is
/// behind one push at most.
pub const SPOOL_BACKLOG: usize = 64;

/// Releases the idempotency claim of a call that was not dialled, so a retry can dial.
pub async fn release(state: &Calls, claim_key: Option<&str>) {
    release_keys(state, claim_key, None).await;
}

/// Releases the claim and, when given, the record stored with it.
async fn release_keys(state: &Calls, claim_key: Option<&str>, record_key: Option<&str>) {
    if let (Some(key), Some(mut conn)) = (claim_key, state.redis().await) {
        let _ = state
            .redis_op(idempotency::release(&mut conn, key, record_key))
            .await;
    }
}
