//! Idempotent create-call on `contact_ref`, per key, backed by Redis.
//!
//! The first request with a `contact_ref` claims `<prefix><key id>:<contact_ref>` with
//! `SET NX`, storing a fingerprint of the payload, the `202` body it will answer and its
//! state: `pending` while its Originate is under way (with a short TTL,
//! [`PENDING_TTL_SECS`], so a host that dies mid-way does not hold the reference for a day),
//! then `accepted` (with `idempotency_ttl_secs`) once the PBX queued it. A repeat of an
//! accepted call gets that body back and dials nothing; a repeat of a pending one waits for
//! the outcome ([`crate::calls::admission`]), so it never answers `202` for a call the PBX then
//! refuses; a different payload is a `409`. When dialling fails, the claim is released so a
//! retry can dial.
//!
//! The acceptance ([`Acceptance`]) is not a round trip of the request: it is handed to the
//! notifier (`crate::notify`), which writes it with the call's first notifications, in the
//! same pipeline, and keeps it in its spool until Redis has it. A Redis that hiccups after
//! the Originate so delays it instead of losing it (a lost acceptance lets the claim expire
//! and a repeat dial the customer again), and a repeat that arrives before it lands waits
//! for it as for any pending claim.
//!
//! The claim and the call's record (see [`crate::store::call_store`]) go in one round trip: a Lua
//! script claims and, only when the claim is new, stores the record, so a repeat or a
//! conflicting request never overwrites the first call's record.

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use crate::store::schema::{ACCEPTED_TAIL, CLAIM_AND_STORE, PENDING_TAIL, PENDING_TTL_SECS};
use crate::store::target::Conn;

/// What the store says about a claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// First use of this `contact_ref`: go ahead and dial.
    New,
    /// The same call was already accepted: answer with this body, dial nothing.
    Repeat(String),
    /// The same call is being dialled by another request: its outcome is not known yet.
    Pending,
    /// The `contact_ref` was used for a different call.
    Conflict,
}

#[derive(Serialize, Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    fingerprint: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    answer: std::borrow::Cow<'a, str>,
    /// Records written before states existed were accepted ones.
    #[serde(default)]
    pending: bool,
}

/// A call record to store along with a new claim: its key, JSON and TTL.
#[derive(Clone, Copy, Debug)]
pub struct StoredRecord<'a> {
    /// `teleforge:c2d:call:<ChannelId>`.
    pub key: &'a str,
    /// The record's JSON.
    pub json: &'a str,
    /// Its TTL.
    pub ttl_secs: u64,
    /// `teleforge:c2d:recording:<recording_ref>`.
    pub owner_key: &'a str,
    /// The id of the key that owns the call.
    pub owner: &'a str,
    /// How long the owner is remembered.
    pub owner_ttl_secs: u64,
}

fn claim_script() -> &'static redis::Script {
    static SCRIPT: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| redis::Script::new(CLAIM_AND_STORE))
}

/// A claim of this host's, to be marked accepted once the PBX queued its call: the pending
/// record it was claimed with and the accepted one that replaces it
/// ([`ACCEPT_CLAIM`](crate::store::schema::ACCEPT_CLAIM)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acceptance {
    /// The claim's key.
    pub key: String,
    /// The pending record, as [`claim`] stored it.
    pub pending: String,
    /// The accepted record: what repeats are answered from.
    pub accepted: String,
    /// How long the accepted claim is kept (`redis.idempotency_ttl_secs`).
    pub ttl_secs: u64,
    /// When the claim was made (before its round trip): until [`CLAIM_SURELY_OURS`] later
    /// the pending claim cannot have expired, so it is still this attempt's.
    pub claimed_at: std::time::Instant,
}

/// How long after it was made a pending claim is surely still there ([`PENDING_TTL_SECS`],
/// with a margin for clocks): its acceptance may overwrite it with a plain `SET XX`. Later
/// (an acceptance held up in the spool), [`ACCEPT_CLAIM`](crate::store::schema::ACCEPT_CLAIM)
/// compares it first.
pub const CLAIM_SURELY_OURS: std::time::Duration =
    std::time::Duration::from_secs(PENDING_TTL_SECS / 2);

impl Acceptance {
    /// Whether the pending claim may still be another attempt's by now (it expired and
    /// was claimed again): then only the comparing script may accept it.
    pub fn needs_compare(&self) -> bool {
        self.claimed_at.elapsed() >= CLAIM_SURELY_OURS
    }

    /// The records of `fingerprint`'s claim under `key`, answering `answer`.
    pub fn new(key: String, fingerprint: &str, answer: &str, ttl_secs: u64) -> Self {
        let pending = record_json(fingerprint, answer, true);
        // `pending` is the record's last field: the accepted record is the pending one with
        // its last value changed, not a second serialisation of the answer.
        let accepted = match pending.strip_suffix(PENDING_TAIL) {
            Some(head) => {
                let mut accepted = String::with_capacity(pending.len() + 1);
                accepted.push_str(head);
                accepted.push_str(ACCEPTED_TAIL);
                accepted
            }
            None => record_json(fingerprint, answer, false),
        };
        Self {
            key,
            pending,
            accepted,
            ttl_secs: ttl_secs.max(1),
            claimed_at: std::time::Instant::now(),
        }
    }
}

/// Claims `claim.key` with its pending record ([`PENDING_TTL_SECS`]); when the claim is new,
/// also stores `record` (in the same round trip, `EVALSHA`). `fingerprint` judges a claim
/// that is already there.
pub async fn claim(
    conn: &mut Conn,
    claim: &Acceptance,
    fingerprint: &str,
    record: Option<StoredRecord<'_>>,
) -> redis::RedisResult<Claim> {
    let mut invocation = claim_script().key(&claim.key);
    invocation.arg(&claim.pending).arg(PENDING_TTL_SECS);
    if let Some(record) = record {
        invocation
            .key(record.key)
            .arg(record.json)
            .arg(record.ttl_secs)
            .key(record.owner_key)
            .arg(record.owner)
            .arg(record.owner_ttl_secs.max(1));
    }
    let stored: Option<String> = invocation.invoke_async(conn).await?;
    let Some(stored) = stored else {
        return Ok(Claim::New);
    };
    Ok(judge(&stored, fingerprint))
}

/// A claim's stored JSON, written into a buffer it fits in: `serde_json::to_string`
/// starts with 128 bytes and grows by reallocation, and the answer (a JSON object, every
/// quote escaped) alone is longer than that.
fn record_json(fingerprint: &str, answer: &str, pending: bool) -> String {
    let record = Record {
        fingerprint: fingerprint.into(),
        answer: answer.into(),
        pending,
    };
    let mut json = Vec::with_capacity(fingerprint.len() + 2 * answer.len() + 64);
    if serde_json::to_writer(&mut json, &record).is_err() {
        return String::new();
    }
    String::from_utf8(json).unwrap_or_default()
}

fn judge(stored: &str, fingerprint: &str) -> Claim {
    match serde_json::from_str::<Record<'_>>(stored) {
        Ok(r) if r.fingerprint != fingerprint => Claim::Conflict,
        Ok(r) if r.pending => Claim::Pending,
        Ok(r) => Claim::Repeat(r.answer.into_owned()),
        Err(_) => Claim::Conflict,
    }
}

/// The claim as it stands now, for a repeat waiting on a pending one: `None` when it is
/// gone (its attempt failed and released it, or it expired).
pub async fn look(
    conn: &mut Conn,
    key: &str,
    fingerprint: &str,
) -> redis::RedisResult<Option<Claim>> {
    let stored: Option<String> = conn.get(key).await?;
    Ok(stored.map(|s| judge(&s, fingerprint)))
}

/// Releases a claim whose call was not dialled (and `also`, e.g. the call's record).
pub async fn release(conn: &mut Conn, key: &str, also: Option<&str>) -> redis::RedisResult<()> {
    match also {
        // Two slots in a cluster: redis-rs splits a `DEL` of several keys by slot.
        Some(other) => conn.del::<_, ()>(&[key, other]).await,
        None => conn.del::<_, ()>(key).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_what_serde_json_writes_and_reads_back() {
        let answer = "{\"status\":\"queued\",\"contact_ref\":\"crm-\\\"42\",\"x\":\"\u{e9}\u{1}\"}";
        for pending in [true, false] {
            let expected = serde_json::to_string(&Record {
                fingerprint: "fp".into(),
                answer: answer.into(),
                pending,
            })
            .expect("a record serializes");
            assert_eq!(record_json("fp", answer, pending), expected);
        }
        let accepted = record_json("fp", answer, false);
        assert_eq!(judge(&accepted, "fp"), Claim::Repeat(answer.to_string()));
        assert_eq!(
            judge(&record_json("fp", answer, true), "fp"),
            Claim::Pending
        );
        assert_eq!(judge(&accepted, "another"), Claim::Conflict);
    }

    #[test]
    fn an_acceptance_holds_the_records_serde_json_writes() {
        let answer = "{\"status\":\"queued\",\"contact_ref\":\"crm-\\\"42\",\"x\":\"\u{e9}\"}";
        let acceptance = Acceptance::new("k".into(), "fp", answer, 0);
        assert_eq!(acceptance.pending, record_json("fp", answer, true));
        assert_eq!(acceptance.accepted, record_json("fp", answer, false));
        assert_eq!(judge(&acceptance.pending, "fp"), Claim::Pending);
        assert_eq!(
            judge(&acceptance.accepted, "fp"),
            Claim::Repeat(answer.to_string())
        );
        assert_eq!(acceptance.ttl_secs, 1, "a zero TTL would make SET fail");
        // The tails the adoption script looks for and writes (schema::ADOPT_CLAIM).
        assert!(acceptance.pending.ends_with(PENDING_TAIL));
        assert!(acceptance.accepted.ends_with(ACCEPTED_TAIL));
        let script = crate::store::schema::ADOPT_CLAIM;
        assert!(script.contains(&format!("local tail = '{PENDING_TAIL}'")));
        assert!(script.contains(&format!(".. '{ACCEPTED_TAIL}', 'EX'")));
    }
}
