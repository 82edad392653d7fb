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
//! | [`HISTORY_PREFIX`]`<key id>:<contact_ref>` ([`history_key`]) | list of the call's notification JSON, oldest first (at most [`HISTORY_MAX`]): the call resource | `redis.idempotency_ttl_secs` | [`PUSH_ONCE`] |
//! | [`CALLS_PREFIX`]`<key id>` ([`calls_key`]) | sorted set: the key's `contact_ref`s by creation time (ms), at most [`CALLS_MAX`] | `redis.idempotency_ttl_secs` | [`PUSH_ONCE`] |

/// Key prefix of call records.
pub const CALL_PREFIX: &str = "teleforge:c2d:call:";

/// Key prefix of recording owners: `teleforge:c2d:recording:<recording_ref>` holds the id of
/// the key that may read the recording (`recordings.owner_ttl_secs`).
pub const RECORDING_OWNER_PREFIX: &str = "teleforge:c2d:recording:";

/// Key prefix of the notifications' exactly-once marks.
pub const SENT_PREFIX: &str = "teleforge:c2d:sent:";

/// Key prefix of calls' histories, the stored form of `GET /click2dial/calls/{contact_ref}`.
pub const HISTORY_PREFIX: &str = "teleforge:c2d:history:";

/// Key prefix of each key's index of calls, for `GET /click2dial/calls`.
pub const CALLS_PREFIX: &str = "teleforge:c2d:calls:";

/// The most notifications a history keeps (a call has at most eight).
pub const HISTORY_MAX: usize = 32;

/// The most calls a key's index keeps (the oldest go first).
pub const CALLS_MAX: usize = 10_000;

/// The history of `owner`'s call `contact_ref`.
pub fn history_key(owner: &str, contact_ref: &str) -> String {
    format!("{HISTORY_PREFIX}{owner}:{contact_ref}")
}

/// `owner`'s index of calls.
pub fn calls_key(owner: &str) -> String {
    format!("{CALLS_PREFIX}{owner}")
}

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
/// (`KEYS[3]`, the mark); appends `ARGV[7]` (`{"at_ms":…,"channel":…,"notification":…}`,
/// `channel` the call's `ChannelId`) to the call's
/// history `KEYS[4]` (kept
/// `ARGV[4]` seconds, at most [`HISTORY_MAX`]); for a call's first notification (`ARGV[5]`
/// is its creation time in ms), adds `ARGV[6]` (its `contact_ref`) to the key's index
/// `KEYS[5]`, dropping entries older than `ARGV[4]` seconds and the oldest past
/// [`CALLS_MAX`].
pub const PUSH_ONCE: &str = r"
if redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[2]) then
  redis.call('LPUSH', KEYS[1], ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  if ARGV[3] == '1' then
    redis.call('LPUSH', KEYS[2], ARGV[1])
  end
  redis.call('RPUSH', KEYS[4], ARGV[7])
  redis.call('LTRIM', KEYS[4], 0, 31)
  redis.call('EXPIRE', KEYS[4], ARGV[4])
  if ARGV[5] ~= '' then
    local created = tonumber(ARGV[5])
    redis.call('ZADD', KEYS[5], created, ARGV[6])
    redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', '(' .. (created - 1000 * tonumber(ARGV[4])))
    redis.call('ZREMRANGEBYRANK', KEYS[5], 0, -10001)
    redis.call('EXPIRE', KEYS[5], ARGV[4])
  end
  return 1
end
return 0
";
