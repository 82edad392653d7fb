//! Call records in Redis, so that every host can follow every call.
//!
//! The host that accepts a create-call stores the call's [`CallRecord`] under
//! `teleforge:c2d:call:<ChannelId>` (with the notification TTL) before it sends the
//! Originate (for a call with a `contact_ref`, in the same round trip as its idempotency
//! claim: [`crate::store::idempotency::claim`]). Every host sees every AMI event; a host that sees a click2dial call start
//! which it did not place loads the record and follows the call too (see
//! `crate::pbx`). Duplicate notifications are stopped by the push script's marks. With Redis
//! Cluster the record and the owner are in two slots: two `SET`s, not one transaction.

use std::time::Duration;

use click2dial_core::json::Event;

use crate::call::CallRecord;
use crate::store::schema::{
    call_key, cluster_history_key, history_key, live_key, recording_owner_key, HISTORY_MAX,
};
use crate::store::target::{Link, Target};

/// Reads and writes call records; cheap to clone.
#[derive(Clone)]
pub struct CallStore {
    link: Link,
    ttl_secs: u64,
}

impl std::fmt::Debug for CallStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallStore")
    }
}

impl CallStore {
    /// A store on `target` (`None`: no store); connects on first use.
    pub fn new(target: Option<Target>, ttl_secs: u64) -> Option<Self> {
        Some(Self {
            link: Link::new(Some(target?)),
            ttl_secs,
        })
    }

    /// How long records are kept.
    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    /// Stores the record of a call about to be originated, and its recording's owner (for
    /// `owner_ttl_secs`), in one transaction; `false` when Redis is unreachable (the call
    /// then has only this host to follow it, and its recording no owner: `404`).
    pub async fn save(&self, channel_id: &str, record: &CallRecord, owner_ttl_secs: u64) -> bool {
        let Some(mut conn) = self.link.get().await else {
            return false;
        };
        let Ok(json) = serde_json::to_string(record) else {
            return false;
        };
        let mut record_set = redis::cmd("SET");
        record_set
            .arg(call_key(channel_id))
            .arg(json)
            .arg("EX")
            .arg(self.ttl_secs);
        let mut owner_set = redis::cmd("SET");
        owner_set
            .arg(recording_owner_key(record.call.recording_ref.as_str()))
            .arg(&record.owner)
            .arg("EX")
            .arg(owner_ttl_secs.max(1));
        let saved = if conn.is_cluster() {
            // Two slots: two commands side by side (each `SET` may be repeated harmlessly).
            let mut other = conn.clone();
            let (a, b) = tokio::join!(
                record_set.query_async::<()>(&mut conn),
                owner_set.query_async::<()>(&mut other)
            );
            a.and(b)
        } else {
            redis::pipe()
                .atomic()
                .add_command(record_set)
                .ignore()
                .add_command(owner_set)
                .ignore()
                .query_async::<()>(&mut conn)
                .await
        };
        self.link.check(saved).await.is_ok()
    }

    /// The id of the key that owns `recording_ref`'s recording (`Ok(None)`: none, or it was
    /// forgotten); `Err` when Redis does not answer within `within`.
    pub async fn recording_owner(
        &self,
        recording_ref: &str,
        within: Duration,
    ) -> Result<Option<String>, ()> {
        let get = async {
            let mut conn = self.link.get().await.ok_or(())?;
            let owner = redis::cmd("GET")
                .arg(recording_owner_key(recording_ref))
                .query_async::<Option<String>>(&mut conn)
                .await;
            self.link.check(owner).await.map_err(|_| ())
        };
        tokio::time::timeout(within, get).await.map_err(|_| ())?
    }

    /// The notifications of the call `channel_id` already pushed, oldest first, each with
    /// its time (Unix milliseconds), from its history (entries of an earlier call with the
    /// same `contact_ref` left out); `None` when Redis does not answer.
    pub async fn notified(
        &self,
        channel_id: &str,
        record: &CallRecord,
    ) -> Option<Vec<(Event, u64)>> {
        let mut conn = self.link.get().await?;
        let (owner, contact_ref) = (&record.owner, record.call.contact_ref.as_str());
        let key = if conn.is_cluster() {
            cluster_history_key(&record.notifications_key, owner, contact_ref)
        } else {
            history_key(owner, contact_ref)
        };
        let entries = redis::cmd("LRANGE")
            .arg(key)
            .arg(0)
            .arg(HISTORY_MAX - 1)
            .query_async::<Vec<String>>(&mut conn)
            .await;
        let entries = self.link.check(entries).await.ok()?;
        Some(
            entries
                .iter()
                .filter_map(|entry| serde_json::from_str::<serde_json::Value>(entry).ok())
                .filter(|entry| entry["channel"] == channel_id)
                .filter_map(|entry| {
                    let event = Event::from_name(entry["notification"]["event"].as_str()?)?;
                    Some((event, entry["at_ms"].as_u64().unwrap_or(0)))
                })
                .collect(),
        )
    }

    /// The oldest calls in flight on the PBX named `pbx`
    /// ([`crate::store::schema::live_key`]), at most `max`, each with when a host started
    /// following it (Unix ms); `Err` when Redis does not answer.
    pub async fn in_flight(&self, pbx: &str, max: usize) -> Result<Vec<(String, u64)>, ()> {
        let mut conn = self.link.get().await.ok_or(())?;
        let calls = redis::cmd("ZRANGEBYSCORE")
            .arg(live_key(pbx))
            .arg("-inf")
            .arg("+inf")
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(0)
            .arg(max)
            .query_async::<Vec<(String, f64)>>(&mut conn)
            .await;
        let calls = self.link.check(calls).await.map_err(|_| ())?;
        // Scores are whole milliseconds, well inside f64's exact integers.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Ok(calls
            .into_iter()
            .map(|(id, since)| (id, since as u64))
            .collect())
    }

    /// The record of a call (`Ok(None)`: none was stored, or it cannot be read); `Err` when
    /// Redis does not answer.
    pub async fn load(&self, channel_id: &str) -> Result<Option<CallRecord>, ()> {
        let mut conn = self.link.get().await.ok_or(())?;
        let json = redis::cmd("GET")
            .arg(call_key(channel_id))
            .query_async::<Option<String>>(&mut conn)
            .await;
        let json = self.link.check(json).await.map_err(|_| ())?;
        Ok(json.and_then(|json| serde_json::from_str(&json).ok()))
    }
}
