//! The webhook queue in Redis (keys and scripts: `crate::store::schema`): due calls, a
//! call's lease, settling its head, and a key's delivery state.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::store::schema;
use crate::store::target::Conn;

/// A call's head event, leased to this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claimed {
    /// The `webhook-id`.
    pub id: String,
    /// The CloudEvent JSON.
    pub body: String,
    /// This attempt's number, from 1.
    pub attempts: u32,
    /// When the first attempt was made (Redis time, ms).
    pub first_ms: u64,
    /// Now (Redis time, ms).
    pub now_ms: u64,
    /// The URL that answered `410` (empty: none).
    pub disabled_url: String,
}

/// How a delivery attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `2xx`: the event leaves the queue.
    Delivered,
    /// Tried again after the delay, in ms.
    Retry(u64),
    /// Given up: the event leaves the queue, counted `failed`.
    Failed,
    /// `410 Gone`: dropped, and the endpoint disabled.
    Gone,
}

impl Outcome {
    /// The script's name of the outcome.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retry(_) => "retry",
            Self::Failed => "failed",
            Self::Gone => "gone",
        }
    }
}

/// The Redis keys of one call's queue.
struct Keys {
    queue: String,
    lease: String,
    head: String,
    endpoint: String,
}

impl Keys {
    fn of(names: schema::WebhookKeys, member: &str) -> Self {
        let owner = member.split_once(':').map_or(member, |(o, _)| o);
        Self {
            queue: names.queue(member),
            lease: names.lease(member),
            head: names.head(member),
            endpoint: names.endpoint(owner),
        }
    }
}

/// The key names on `conn` (with Redis Cluster, all in one slot).
fn names(conn: &Conn) -> schema::WebhookKeys {
    schema::WebhookKeys {
        cluster: conn.is_cluster(),
    }
}

/// `script` invoked on `member`'s call: the keys and first argument that the claim and
/// settle scripts share (`KEYS[1..5]`, `ARGV[1]`).
fn on_member<'a>(
    script: &'a redis::Script,
    names: schema::WebhookKeys,
    member: &str,
) -> redis::ScriptInvocation<'a> {
    let keys = Keys::of(names, member);
    let mut invocation = script.prepare_invoke();
    invocation
        .key(names.due())
        .key(keys.queue)
        .key(keys.lease)
        .key(keys.head)
        .key(keys.endpoint)
        .arg(member);
    invocation
}

/// The scripts, made once.
#[derive(Clone, Debug)]
pub struct Scripts {
    due: Arc<redis::Script>,
    claim: Arc<redis::Script>,
    settle: Arc<redis::Script>,
}

impl Default for Scripts {
    fn default() -> Self {
        Self {
            due: Arc::new(redis::Script::new(&schema::webhook_due())),
            claim: Arc::new(redis::Script::new(&schema::webhook_claim())),
            settle: Arc::new(redis::Script::new(&schema::webhook_settle())),
        }
    }
}

impl Scripts {
    /// Up to `limit` due members, and the ms until the next one is due (`None`: nothing
    /// is queued for later).
    pub async fn due(
        &self,
        conn: &mut Conn,
        limit: usize,
    ) -> redis::RedisResult<(Vec<String>, Option<u64>)> {
        let mut answer: Vec<String> = self
            .due
            .key(names(conn).due())
            .arg(limit)
            .invoke_async(conn)
            .await?;
        let next = answer.pop().and_then(|n| n.parse::<u64>().ok());
        Ok((answer, next))
    }

    /// Takes `member`'s lease for `lease_ms` under `token`.
    pub async fn claim(
        &self,
        conn: &mut Conn,
        member: &str,
        lease_ms: u64,
        token: &str,
    ) -> redis::RedisResult<Option<Claimed>> {
        let answer: Option<(String, String, String, String, String)> =
            on_member(&self.claim, names(conn), member)
                .arg(lease_ms)
                .arg(token)
                .invoke_async(conn)
                .await?;
        Ok(
            answer.and_then(|(entry, attempts, first, now, disabled_url)| {
                let (id, body) = entry.split_once('\n')?;
                Some(Claimed {
                    id: id.to_string(),
                    body: body.to_string(),
                    attempts: attempts.parse().ok()?,
                    first_ms: first.parse().ok()?,
                    now_ms: now.parse().ok()?,
                    disabled_url,
                })
            }),
        )
    }

    /// Settles `member`'s head `id`; `false` when the lease was lost meanwhile.
    #[allow(clippy::too_many_arguments)]
    pub async fn settle(
        &self,
        conn: &mut Conn,
        member: &str,
        token: &str,
        id: &str,
        outcome: Outcome,
        error: &str,
        url: &str,
    ) -> redis::RedisResult<bool> {
        let delay = match outcome {
            Outcome::Retry(ms) => ms,
            _ => 0,
        };
        let done: i64 = on_member(&self.settle, names(conn), member)
            .arg(token)
            .arg(id)
            .arg(outcome.as_str())
            .arg(delay)
            .arg(error)
            .arg(url)
            .invoke_async(conn)
            .await?;
        Ok(done == 1)
    }
}

/// A key's delivery state, as `GET /click2dial/webhooks` answers it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Status {
    /// The endpoint URL (`null`: the key has none).
    pub url: Option<String>,
    /// `active`, `disabled` (the endpoint answered `410 Gone`: nothing is delivered to it
    /// until its URL changes in the configuration), or `none` (no endpoint).
    pub state: String,
    /// Events queued and not yet delivered nor given up, all of the key's calls.
    pub pending: u64,
    /// Events delivered (`2xx`).
    pub delivered: u64,
    /// Events given up: retried past `[webhooks] give_up_after_secs`, dropped while the
    /// endpoint was disabled, or over `max_pending_per_key`.
    pub failed: u64,
    /// Attempts that failed and were retried.
    pub retries: u64,
    /// The last failed attempt's reason (an HTTP status, a timeout, a refused target).
    pub last_error: Option<String>,
    /// When it happened, ms since the Unix epoch.
    pub last_error_at: Option<u64>,
    /// The last delivery, ms since the Unix epoch.
    pub last_success_at: Option<u64>,
}

impl Status {
    /// From the key's hash (`HGETALL`) and its configured URL.
    pub fn from_hash(url: Option<&str>, hash: &HashMap<String, String>) -> Self {
        let number = |field: &str| hash.get(field).and_then(|v| v.parse::<i64>().ok());
        let count = |field: &str| number(field).unwrap_or(0).max(0).unsigned_abs();
        let state = match url {
            None => "none",
            Some(url) if hash.get("disabled_url").map(String::as_str) == Some(url) => "disabled",
            Some(_) => "active",
        };
        Self {
            url: url.map(str::to_string),
            state: state.to_string(),
            pending: count("pending"),
            delivered: count("delivered"),
            failed: count("failed"),
            retries: count("retries"),
            last_error: hash.get("last_error").cloned(),
            last_error_at: number("last_error_at").map(i64::unsigned_abs),
            last_success_at: number("last_success_at").map(i64::unsigned_abs),
        }
    }
}

/// Reads `owner`'s delivery state.
pub async fn status(conn: &mut Conn, owner: &str, url: Option<&str>) -> redis::RedisResult<Status> {
    let hash: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(names(conn).endpoint(owner))
        .query_async(conn)
        .await?;
    Ok(Status::from_hash(url, &hash))
}
