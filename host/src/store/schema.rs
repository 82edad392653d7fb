//! The Redis schema: every key the host reads or writes, the Lua scripts it runs, and how
//! long each key lives.
//!
//! | key | value | TTL | written by |
//! |---|---|---|---|
//! | `redis.call_key_template` (`teleforge:notifications:c2d:{contact_ref}`) | list of notification JSON | `redis.ttl_secs` | [`PUSH_ONCE`] |
//! | `redis.legacy_key` (`enigma:notifications:c2d`), when enabled | the same, all calls | none | [`PUSH_ONCE`] |
//! | [`SENT_PREFIX`]`<ChannelId>:<sequence>` | `1`: the exactly-once mark | `redis.ttl_secs` | [`PUSH_ONCE`] |
//! | `redis.idempotency_prefix` + `<key id>:<contact_ref>` ([`claim_key`]) | claim JSON: fingerprint, first answer, pending | [`PENDING_TTL_SECS`], then `redis.idempotency_ttl_secs` | [`CLAIM_AND_STORE`], `SET XX` |
//! | [`CALL_PREFIX`]`<ChannelId>` ([`call_key`]) | call record JSON | `redis.ttl_secs` | [`CLAIM_AND_STORE`] or `SET` |
//! | [`RECORDING_OWNER_PREFIX`]`<recording_ref>` ([`recording_owner_key`]) | the owning key's id | `recordings.owner_ttl_secs` | [`CLAIM_AND_STORE`] or `SET` |
//! | [`WEBHOOK_DUE`] | sorted set: one member per call with events to deliver (`<key id>:<ChannelId>`, [`webhook_member`]), scored by when its head is due (Redis `TIME`, ms) or, while a host holds it, when that host's lease ends | until its queue is empty | [`PUSH_ONCE_QUEUE`], [`WEBHOOK_CLAIM`], [`WEBHOOK_SETTLE`] |
//! | [`WEBHOOK_QUEUE_PREFIX`]`<member>` | list of the call's events in order, each `<webhook-id>\n<CloudEvent JSON>` | until delivered or given up | the same |
//! | [`WEBHOOK_LEASE_PREFIX`]`<member>` | the token of the host delivering the call's head | `PX` the lease | [`WEBHOOK_CLAIM`], [`WEBHOOK_SETTLE`] |
//! | [`WEBHOOK_HEAD_PREFIX`]`<member>` | hash: `attempts`, `first` (ms) of the head event | until the head is settled | the same |
//! | [`WEBHOOK_ENDPOINT_PREFIX`]`<key id>` | hash: `pending`, `delivered`, `failed`, `retries`, `last_error`, `last_error_at`, `last_success_at`, `disabled_url` (the URL that answered `410`) | none | the same |

/// Key prefix of call records.
pub const CALL_PREFIX: &str = "teleforge:c2d:call:";

/// Key prefix of recording owners: `teleforge:c2d:recording:<recording_ref>` holds the id of
/// the key that may read the recording (`recordings.owner_ttl_secs`).
pub const RECORDING_OWNER_PREFIX: &str = "teleforge:c2d:recording:";

/// Key prefix of the notifications' exactly-once marks.
pub const SENT_PREFIX: &str = "teleforge:c2d:sent:";

/// The key of `channel_id`'s call record.
pub fn call_key(channel_id: &str) -> String {
    format!("{CALL_PREFIX}{channel_id}")
}

/// The key of `recording_ref`'s owner.
pub fn recording_owner_key(recording_ref: &str) -> String {
    format!("{RECORDING_OWNER_PREFIX}{recording_ref}")
}

/// The idempotency key of `owner`'s `contact_ref`: `<prefix><owner>:<contact_ref>`. Key ids
/// hold no `:`, so two keys never share a claim; an owner-less softphone call (no
/// `[fastagi] owner_key`) has the empty owner.
pub fn claim_key(prefix: &str, owner: &str, contact_ref: &str) -> String {
    format!("{prefix}{owner}:{contact_ref}")
}

/// How long a claim stays while its first Originate is under way; past it (the host that
/// claimed it died), the reference is free again.
pub const PENDING_TTL_SECS: u64 = 60;

/// Claims `KEYS[1]` with `ARGV[1]` (pending) for `ARGV[2]` seconds; when the claim is new and a
/// record key `KEYS[2]` is given, stores the call record `ARGV[3]` there for `ARGV[4]`
/// seconds. Answers nil for a new claim, else the claim already stored (it exists: the
/// script runs atomically, so it cannot expire between the `SET NX` and the `GET`).
pub const CLAIM_AND_STORE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  if #KEYS > 1 then
    redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])
    redis.call('SET', KEYS[3], ARGV[5], 'EX', ARGV[6])
  end
  return false
end
return redis.call('GET', KEYS[1])
";

/// Pushes `KEYS[1]` (per-call list) and optionally `KEYS[2]` (legacy list) once per id
/// (`KEYS[3]`, the mark).
pub const PUSH_ONCE: &str = r"
if redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[2]) then
  redis.call('LPUSH', KEYS[1], ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  if ARGV[3] == '1' then
    redis.call('LPUSH', KEYS[2], ARGV[1])
  end
  return 1
end
return 0
";

/// The calls with webhook events to deliver, scored by when each is due.
pub const WEBHOOK_DUE: &str = "teleforge:c2d:webhook:due";
/// Key prefix of a call's queue of webhook events.
pub const WEBHOOK_QUEUE_PREFIX: &str = "teleforge:c2d:webhook:queue:";
/// Key prefix of a call's delivery lease.
pub const WEBHOOK_LEASE_PREFIX: &str = "teleforge:c2d:webhook:lease:";
/// Key prefix of a call's head event's attempts.
pub const WEBHOOK_HEAD_PREFIX: &str = "teleforge:c2d:webhook:head:";
/// Key prefix of a key's delivery state.
pub const WEBHOOK_ENDPOINT_PREFIX: &str = "teleforge:c2d:webhook:endpoint:";

/// The webhook queue member of `owner`'s call `channel_id` (key ids hold no `:`).
pub fn webhook_member(owner: &str, channel_id: &str) -> String {
    format!("{owner}:{channel_id}")
}

/// The key of `owner`'s delivery state.
pub fn webhook_endpoint_key(owner: &str) -> String {
    format!("{WEBHOOK_ENDPOINT_PREFIX}{owner}")
}

/// Redis's clock in milliseconds, for the webhook scripts (every host reads the same one).
const NOW_MS: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function ms(x) return string.format('%d', x) end
";

/// [`PUSH_ONCE`], and, when the mark is new, the event queued for the key's webhook:
/// `KEYS[4]` the call's queue, `KEYS[5]` [`WEBHOOK_DUE`], `KEYS[6]` the key's state;
/// `ARGV[4]` the entry, `ARGV[5]` the member, `ARGV[6]` the endpoint URL (not queued while
/// it is the disabled one), `ARGV[7]` the key's most pending events. Every host pushes
/// every notification and only the first push is applied, so each event is queued once,
/// in the call's order.
pub fn push_once_queue() -> String {
    format!(
        "{NOW_MS}{}",
        r"
if redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[2]) then
  redis.call('LPUSH', KEYS[1], ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  if ARGV[3] == '1' then
    redis.call('LPUSH', KEYS[2], ARGV[1])
  end
  if redis.call('HGET', KEYS[6], 'disabled_url') == ARGV[6] then
    redis.call('HINCRBY', KEYS[6], 'failed', 1)
    return 1
  end
  if tonumber(redis.call('HGET', KEYS[6], 'pending') or '0') >= tonumber(ARGV[7]) then
    redis.call('HINCRBY', KEYS[6], 'failed', 1)
    redis.call('HSET', KEYS[6], 'last_error', 'queue full (webhooks.max_pending_per_key): event dropped', 'last_error_at', ms(now))
    return 1
  end
  redis.call('RPUSH', KEYS[4], ARGV[4])
  redis.call('HINCRBY', KEYS[6], 'pending', 1)
  redis.call('ZADD', KEYS[5], 'NX', ms(now), ARGV[5])
  return 1
end
return 0
"
    )
}

/// Due calls: `ARGV[1]` at most; answers `{members…, next}` where `next` is the ms until
/// the earliest call not yet due (`-1`: none).
pub fn webhook_due() -> String {
    format!(
        "{NOW_MS}{}",
        r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ms(now), 'LIMIT', 0, tonumber(ARGV[1]))
local later = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ms(now), '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
if later[2] then
  table.insert(due, ms(tonumber(later[2]) - now))
else
  table.insert(due, '-1')
end
return due
"
    )
}

/// Takes the lease of a due call (`KEYS[1]` [`WEBHOOK_DUE`], `KEYS[2]` its queue,
/// `KEYS[3]` its lease, `KEYS[4]` its head's attempts, `KEYS[5]` the key's state;
/// `ARGV[1]` the member, `ARGV[2]` the lease in ms, `ARGV[3]` the token): its score moves
/// to the lease's end, so no other host takes it meanwhile. Answers nil (not due, held,
/// or empty), else `{entry, attempts, first, now, disabled_url}`.
pub fn webhook_claim() -> String {
    format!(
        "{NOW_MS}{}",
        r"
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) > now then return false end
if not redis.call('SET', KEYS[3], ARGV[3], 'NX', 'PX', ARGV[2]) then return false end
local head = redis.call('LINDEX', KEYS[2], 0)
if not head then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('DEL', KEYS[3], KEYS[4])
  return false
end
redis.call('ZADD', KEYS[1], ms(now + tonumber(ARGV[2])), ARGV[1])
local attempts = redis.call('HINCRBY', KEYS[4], 'attempts', 1)
redis.call('HSETNX', KEYS[4], 'first', ms(now))
local first = redis.call('HGET', KEYS[4], 'first')
local disabled = redis.call('HGET', KEYS[5], 'disabled_url') or ''
return {head, tostring(attempts), first, ms(now), disabled}
"
    )
}

/// Settles a claimed head, if the lease `ARGV[2]` is still held (same keys as
/// [`webhook_claim`]; `ARGV[1]` the member, `ARGV[3]` the event's id, `ARGV[4]` the outcome
/// — `delivered`, `retry` (due again in `ARGV[5]` ms), `failed` (dropped), `gone` (dropped
/// and the endpoint `ARGV[7]` disabled) — and `ARGV[6]` the error). Answers 1, or 0 when
/// the lease was lost (another host has the call: nothing is changed).
pub fn webhook_settle() -> String {
    format!(
        "{NOW_MS}{}",
        r"
if redis.call('GET', KEYS[3]) ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[3])
local outcome = ARGV[4]
if outcome ~= 'delivered' then
  redis.call('HSET', KEYS[5], 'last_error', ARGV[6], 'last_error_at', ms(now))
end
if outcome == 'gone' then
  redis.call('HSET', KEYS[5], 'disabled_url', ARGV[7])
  outcome = 'failed'
end
if outcome == 'retry' then
  redis.call('HINCRBY', KEYS[5], 'retries', 1)
  redis.call('ZADD', KEYS[1], ms(now + tonumber(ARGV[5])), ARGV[1])
  return 1
end
local head = redis.call('LINDEX', KEYS[2], 0)
if head and string.sub(head, 1, #ARGV[3] + 1) == ARGV[3] .. '\n' then
  redis.call('LPOP', KEYS[2])
  redis.call('HINCRBY', KEYS[5], 'pending', -1)
  if outcome == 'delivered' then
    redis.call('HINCRBY', KEYS[5], 'delivered', 1)
    redis.call('HSET', KEYS[5], 'last_success_at', ms(now))
  else
    redis.call('HINCRBY', KEYS[5], 'failed', 1)
  end
end
redis.call('DEL', KEYS[4])
if redis.call('LLEN', KEYS[2]) > 0 then
  redis.call('ZADD', KEYS[1], ms(now), ARGV[1])
else
  redis.call('ZREM', KEYS[1], ARGV[1])
end
return 1
"
    )
}
