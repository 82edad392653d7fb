//! Idempotent create-call on `contact_ref`, backed by Redis.
//!
//! The first request with a `contact_ref` claims `<prefix><contact_ref>` with `SET NX EX`,
//! storing a fingerprint of the payload and the `202` body it will answer. A repeat with the
//! same fingerprint gets that body back and dials nothing; a different payload is a `409`.
//! When dialling fails after the claim (PBX down), the claim is released so a retry can dial.

use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

/// What the store says about a claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// First use of this `contact_ref`: go ahead and dial.
    New,
    /// The same call was already accepted: answer with this body, dial nothing.
    Repeat(String),
    /// The `contact_ref` was used for a different call.
    Conflict,
}

#[derive(Serialize, Deserialize)]
struct Record {
    fingerprint: String,
    answer: String,
}

/// The payload fields that make two requests "the same call".
pub fn fingerprint(agent: &str, callee_e164: &str, outbound_id: &str, contact_ref: &str) -> String {
    // Fields are from validated charsets that exclude '|', so the join is unambiguous.
    format!("{agent}|{callee_e164}|{outbound_id}|{contact_ref}")
}

/// Claims `key` for `fingerprint`, remembering `answer`.
pub async fn claim(
    conn: &mut ConnectionManager,
    key: &str,
    fingerprint: &str,
    answer: &str,
    ttl_secs: u64,
) -> redis::RedisResult<Claim> {
    let record = serde_json::to_string(&Record {
        fingerprint: fingerprint.to_string(),
        answer: answer.to_string(),
    })
    .unwrap_or_default();
    let set: Option<String> = redis::cmd("SET")
        .arg(key)
        .arg(&record)
        .arg("NX")
        .arg("EX")
        .arg(ttl_secs)
        .query_async(conn)
        .await?;
    if set.is_some() {
        return Ok(Claim::New);
    }
    let stored: Option<String> = conn.get(key).await?;
    let Some(stored) = stored else {
        // Expired between SET and GET: claim again.
        return Box::pin(claim(conn, key, fingerprint, answer, ttl_secs)).await;
    };
    Ok(match serde_json::from_str::<Record>(&stored) {
        Ok(r) if r.fingerprint == fingerprint => Claim::Repeat(r.answer),
        _ => Claim::Conflict,
    })
}

/// Releases a claim whose call was not dialled.
pub async fn release(conn: &mut ConnectionManager, key: &str) -> redis::RedisResult<()> {
    conn.del::<_, ()>(key).await
}
