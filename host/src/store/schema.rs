//! The Redis schema: every key the host reads or writes, the Lua scripts it runs, and how
//! long each key lives.
//!
//! | key | value | TTL | written by |
//! |---|---|---|---|
//! | `redis.call_key_template` (`teleforge:notifications:c2d:{contact_ref}`) | list of notification JSON | `redis.ttl_secs` | [`push_once`] |
//! | `redis.legacy_key` (`enigma:notifications:c2d`), when enabled | the same, all calls: the newest `redis.legacy_max_len` | none (its length is capped instead) | [`push_once`] |
//! | [`SENT_PREFIX`]`<ChannelId>:<sequence>` | `1`: the exactly-once mark | `redis.ttl_secs` | [`push_once`] |
//! | `redis.idempotency_prefix` + `<key id>:<contact_ref>` ([`claim_key`]) | claim JSON: fingerprint, first answer, pending | [`PENDING_TTL_SECS`], then `redis.idempotency_ttl_secs` | [`CLAIM_AND_STORE`], then [`ACCEPT_CLAIM`] (from the notifier's spool), or [`ADOPT_CLAIM`] by a host that follows the call |
//! | [`CALL_PREFIX`]`<ChannelId>` ([`call_key`]) | call record JSON | `redis.ttl_secs` | [`CLAIM_AND_STORE`] or `SET` |
//! | [`RECORDING_OWNER_PREFIX`]`<recording_ref>` ([`recording_owner_key`]) | the owning key's id | `recordings.owner_ttl_secs` | [`CLAIM_AND_STORE`] or `SET` |
//! | [`HISTORY_PREFIX`]`<key id>:<contact_ref>` ([`history_key`]) | list of the call's notification JSON, oldest first (at most [`HISTORY_MAX`]): the call resource | `redis.idempotency_ttl_secs` | [`push_once`] |
//! | [`CALLS_PREFIX`]`<key id>` ([`calls_key`]) | sorted set: the key's `contact_ref`s by creation time (ms), at most [`CALLS_MAX`] | `redis.idempotency_ttl_secs` | [`push_once`] |
//! | [`LIVE_PREFIX`]`<pbx>` ([`live_key`]) | sorted set: the `ChannelId`s of the PBX's calls in flight, scored by when a host started following them (Unix ms): a host starting later ends those the PBX no longer has | none (a member goes when its call is over) | `ZADD NX`, `ZREM` (cluster mode: [`LIVE_SET`]), from the notifier's spool |
//! | [`READY_PROBE_KEY`] | `1`: `/readyz`'s write | [`READY_PROBE_TTL_MS`] | `SET` |
//! | [`WEBHOOK_DUE`] | sorted set: one member per call with events to deliver (`<key id>:<ChannelId>`, [`webhook_member`]), scored by when its head is due (Redis `TIME`, ms) or, while a host holds it, when that host's lease ends | until its queue is empty | [`push_once_queue`], [`webhook_claim`], [`webhook_settle`] |
//! | [`WEBHOOK_QUEUE_PREFIX`]`<member>` | list of the call's events in order, each `<webhook-id>\n<CloudEvent JSON>` | until delivered or given up | the same |
//! | [`WEBHOOK_LEASE_PREFIX`]`<member>` | the token of the host delivering the call's head | `PX` the lease | [`webhook_claim`], [`webhook_settle`] |
//! | [`WEBHOOK_HEAD_PREFIX`]`<member>` | hash: `attempts`, `first` (ms) of the head event | until the head is settled | the same |
//! | [`WEBHOOK_ENDPOINT_PREFIX`]`<key id>` | hash: `pending`, `delivered`, `failed`, `retries`, `last_error`, `last_error_at`, `last_success_at`, `disabled_url` (the URL that answered `410`) | none | the same |
//!
//! ## Cluster
//!
//! With `[redis] cluster` every command and script names keys of one slot (Redis Cluster
//! refuses others with `CROSSSLOT`), by hash tags: a key's slot is that of the text between
//! its first `{` and `}`. The names above stay as they are with one server and Sentinel (a
//! rolling upgrade keeps every claim and mark). In cluster mode:
//!
//! | slot | keys | written by |
//! |---|---|---|
//! | the call's list `<list>` (`redis.call_key_template`, its name unchanged) | `<list>`; its marks [`SENT_PREFIX`]`{<list>}:<ChannelId>:<sequence>` ([`cluster_sent_key`]); the history [`HISTORY_PREFIX`]`{<list>}:<key id>:<contact_ref>` ([`cluster_history_key`]) | [`PUSH_CLUSTER`]: one atomic script per call and batch, the mark deciding |
//! | the legacy list (`redis.legacy_key`, unchanged): **one slot's load**, every call's notifications | `enigma:notifications:c2d`; its own marks [`LEGACY_SENT_PREFIX`]`{<legacy>}:<ChannelId>:<sequence>` | [`LEGACY_PUSH`], after the call's push |
//! | `{teleforge:c2d:webhook}` ([`WEBHOOK_TAG`]): one slot's load, every key's queue | [`WebhookKeys`]: the due set, each call's queue, lease and head, each key's state, and the queue's own marks `{teleforge:c2d:webhook}:sent:<ChannelId>:<sequence>` | [`webhook_enqueue_cluster`], after the call's push; [`webhook_due`], [`webhook_claim`], [`webhook_settle`] |
//! | [`live_key`] (name unchanged): one per PBX | the PBX's calls in flight | [`LIVE_SET`] |
//! | each its own | the claim, the call record, the recording owner, the key's index of calls [`calls_key`] (names unchanged) | the claim alone ([`CLAIM_AND_STORE`] with one key); then the record and the owner (`SET`); the index by [`INDEX_ADD`] (`ZADD`: a repeat changes nothing) |
//!
//! A notification is pushed in steps, each exactly once by its own mark and each retried
//! (by this host or by another one pushing the same event) until it succeeds: the call's
//! list and history, the legacy list, the index, the webhook queue. A host moves on to a
//! call's next notifications only once every step of the earlier ones succeeded, so each
//! list gets every event once and in order.

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

/// The key `/readyz` writes (`SET … PX` [`READY_PROBE_TTL_MS`]) to learn that Redis takes
/// writes: a replica, a full `maxmemory` or a failing RDB save answer `PING` but refuse it.
pub const READY_PROBE_KEY: &str = "teleforge:c2d:ready-probe";

/// How long the readiness probe's key lives, in ms.
pub const READY_PROBE_TTL_MS: u64 = 10_000;

/// The most notifications a history keeps (a call has at most eight).
pub const HISTORY_MAX: usize = 32;

/// The most calls a key's index keeps (the oldest go first).
pub const CALLS_MAX: usize = 10_000;

/// Key prefix of the legacy list's own exactly-once marks (cluster mode).
pub const LEGACY_SENT_PREFIX: &str = "teleforge:c2d:sent-legacy:";

/// `{name}`: the hash tag that puts a key in `name`'s slot (Redis Cluster hashes what is
/// between a key's first `{` and the `}` after it; a list name, a `contact_ref`, holds none).
pub fn tag(name: &str) -> String {
    format!("{{{name}}}")
}

/// Cluster mode: the mark of notification `id` (`<ChannelId>:<sequence>`) in `list`'s slot.
pub fn cluster_sent_key(list: &str, id: &str) -> String {
    format!("{SENT_PREFIX}{{{list}}}:{id}")
}

/// Cluster mode: the legacy list's mark of notification `id`, in that list's slot.
pub fn cluster_legacy_sent_key(legacy: &str, id: &str) -> String {
    format!("{LEGACY_SENT_PREFIX}{{{legacy}}}:{id}")
}

/// Cluster mode: the history of `owner`'s call `contact_ref`, in its list's slot.
pub fn cluster_history_key(list: &str, owner: &str, contact_ref: &str) -> String {
    format!("{HISTORY_PREFIX}{{{list}}}:{owner}:{contact_ref}")
}

/// The history key of `owner`'s call `contact_ref`, as the call resource reads it: with
/// `cluster`, in the slot of the list `template` names (it holds no `{recording_ref}`
/// then: the configuration check refuses it).
pub fn history_key_on(cluster: bool, template: &str, owner: &str, contact_ref: &str) -> String {
    if !cluster {
        return history_key(owner, contact_ref);
    }
    let list = click2dial_core::template::Template::new(template)
        .map(|t| t.render(contact_ref, "").to_string())
        .unwrap_or_default();
    cluster_history_key(&list, owner, contact_ref)
}

/// The history of `owner`'s call `contact_ref`.
pub fn history_key(owner: &str, contact_ref: &str) -> String {
    [HISTORY_PREFIX, owner, ":", contact_ref].concat()
}

/// `owner`'s index of calls.
pub fn calls_key(owner: &str) -> String {
    [CALLS_PREFIX, owner].concat()
}

/// [`history_key`], to be written where it goes (e.g. a command's buffer, with redis-rs's
/// `RedisWrite::write_arg_fmt`) instead of allocated.
pub fn history_key_name<'a>(owner: &'a str, contact_ref: &'a str) -> KeyName<'a> {
    KeyName::new(HISTORY_PREFIX, owner, Some(contact_ref))
}

/// [`calls_key`], to be written where it goes.
pub fn calls_key_name(owner: &str) -> KeyName<'_> {
    KeyName::new(CALLS_PREFIX, owner, None)
}

/// A key name as [`std::fmt::Display`]: `prefix`, `name`, then `:` and `rest` when given.
/// The notifier writes its keys this way into the pipeline's buffer (several per
/// notification), where a `String` each would be allocated, grown and copied again.
#[derive(Clone, Copy, Debug)]
pub struct KeyName<'a> {
    prefix: &'a str,
    name: &'a str,
    rest: Option<&'a str>,
}

impl<'a> KeyName<'a> {
    /// `prefix` + `name` (+ `:` + `rest`).
    pub fn new(prefix: &'a str, name: &'a str, rest: Option<&'a str>) -> Self {
        Self { prefix, name, rest }
    }
}

impl std::fmt::Display for KeyName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.prefix)?;
        f.write_str(self.name)?;
        if let Some(rest) = self.rest {
            f.write_str(":")?;
            f.write_str(rest)?;
        }
        Ok(())
    }
}

/// The key of `channel_id`'s call record.
pub fn call_key(channel_id: &str) -> String {
    [CALL_PREFIX, channel_id].concat()
}

/// Key prefix of each PBX's calls in flight ([`live_key`]).
pub const LIVE_PREFIX: &str = "teleforge:c2d:live:";

/// The sorted set of the calls in flight on the PBX named `pbx` (`[[pbx]] name`,
/// `default` for the one `[ami]`).
pub fn live_key(pbx: &str) -> String {
    [LIVE_PREFIX, pbx].concat()
}

/// Cluster mode: adds calls to the calls in flight `KEYS[1]` and removes others, as the
/// plain `ZADD NX` and `ZREM` of one server do: `ARGV[1]` is how many to add, then each
/// add's score (when a host started following it, Unix ms) and `ChannelId`, then the
/// `ChannelId`s to remove. One per set and batch of the notifier's spool.
pub const LIVE_SET: &str = r"
local adds = tonumber(ARGV[1])
for i = 2, 2 * adds, 2 do
  redis.call('ZADD', KEYS[1], 'NX', ARGV[i], ARGV[i + 1])
end
for i = 2 * adds + 2, #ARGV do
  redis.call('ZREM', KEYS[1], ARGV[i])
end
return 0
";

/// The key of `recording_ref`'s owner.
pub fn recording_owner_key(recording_ref: &str) -> String {
    [RECORDING_OWNER_PREFIX, recording_ref].concat()
}

/// The idempotency key of `owner`'s `contact_ref`: `<prefix><owner>:<contact_ref>`. Key ids
/// hold no `:`, so two keys never share a claim; an owner-less softphone call (no
/// `[fastagi] owner_key`) has the empty owner.
pub fn claim_key(prefix: &str, owner: &str, contact_ref: &str) -> String {
    [prefix, owner, ":", contact_ref].concat()
}

/// How long a claim stays while its first Originate is under way; past it (the host that
/// claimed it died), the reference is free again.
pub const PENDING_TTL_SECS: u64 = 60;

/// [`PENDING_TAIL`], as a literal for `concat!` (the adoption script holds it).
macro_rules! pending_tail {
    () => {
        r#""pending":true}"#
    };
}

/// [`ACCEPTED_TAIL`], as a literal for `concat!`.
macro_rules! accepted_tail {
    () => {
        r#""pending":false}"#
    };
}

/// The end of a pending claim's record (its last field, `pending`). An acceptance changes
/// only this tail, into [`ACCEPTED_TAIL`]: in Rust (`idempotency::Acceptance::new`) and in
/// Lua ([`ADOPT_CLAIM`]).
pub const PENDING_TAIL: &str = pending_tail!();
/// The end of an accepted claim's record.
pub const ACCEPTED_TAIL: &str = accepted_tail!();

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

/// Marks the pending claim `KEYS[1]` accepted: only while it still holds `ARGV[1]` (the
/// pending record this host stored, whose answer names references no other attempt has),
/// it becomes `ARGV[2]` (the accepted record) for `ARGV[3]` seconds. Answers 1 when it did,
/// 0 when the claim is gone, is another attempt's or was already accepted (sent again after
/// a lost reply, it changes nothing).
pub const ACCEPT_CLAIM: &str = r"
local stored = redis.call('GET', KEYS[1])
if stored == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
";

/// Marks the pending claim `KEYS[1]` accepted for a host that follows its call but did not
/// place it (the host that did may have died before it could): only while the claim is
/// pending and its answer names the followed call's recording reference `ARGV[1]`, it
/// becomes the same record with `"pending":false` (as [`ACCEPT_CLAIM`] would write it) for
/// `ARGV[2]` seconds. Answers 1 when it did, else 0.
pub const ADOPT_CLAIM: &str = concat!(
    r#"
local stored = redis.call('GET', KEYS[1])
if not stored then return 0 end
local tail = '"#,
    pending_tail!(),
    r#"'
if string.sub(stored, -#tail) ~= tail then return 0 end
local ok, record = pcall(cjson.decode, stored)
if not ok or type(record) ~= 'table' or type(record.answer) ~= 'string' then return 0 end
local ok2, answer = pcall(cjson.decode, record.answer)
if not ok2 or type(answer) ~= 'table' or answer.recording_ref ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], string.sub(stored, 1, -#tail - 1) .. '"#,
    accepted_tail!(),
    r#"', 'EX', ARGV[2])
return 1
"#
);

/// What a push does once its mark is new: `LPUSH`es `ARGV[1]` to `KEYS[1]` (per-call list,
/// `ARGV[2]` seconds) and, when `ARGV[3]` is not `0`, to `KEYS[2]` (legacy list, cut to its
/// newest `ARGV[3]` entries: nothing pops it when its consumers are gone); appends
/// `ARGV[7]` (`{"at_ms":…,"channel":…,"notification":…}`, `channel` the call's `ChannelId`)
/// to the call's history `KEYS[4]` (kept `ARGV[4]` seconds, at most [`HISTORY_MAX`]); for a
/// call's first notification (`ARGV[5]` is its creation time in ms), adds `ARGV[6]` (its
/// `contact_ref`) to the key's index `KEYS[5]`, dropping entries older than `ARGV[4]`
/// seconds and the oldest past [`CALLS_MAX`].
const PUSH_APPLY: &str = r"
  redis.call('LPUSH', KEYS[1], ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  local legacy_max = tonumber(ARGV[3])
  if legacy_max > 0 and redis.call('LPUSH', KEYS[2], ARGV[1]) > legacy_max then
    redis.call('LTRIM', KEYS[2], 0, legacy_max - 1)
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
";

/// Pushes a notification once per id (`KEYS[3]`, the mark, `ARGV[2]` seconds): the keys and
/// arguments of the push's body (the list, the history and the calls' index).
pub fn push_once() -> String {
    format!(
        "if redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[2]) then\n{PUSH_APPLY}  return 1\nend\nreturn 0\n"
    )
}

/// Cluster mode: pushes a call's notifications (its list `KEYS[1]`, its history `KEYS[2]`,
/// one mark per notification `KEYS[3..]`, all in the list's slot), in order, each once:
/// `ARGV[1]` the list's and marks' TTL, `ARGV[2]` the history's, then per notification
/// its JSON and its history entry. Answers how many were new.
pub const PUSH_CLUSTER: &str = r"
local applied = 0
for i = 3, #KEYS do
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[1]) then
    local a = 3 + (i - 3) * 2
    redis.call('LPUSH', KEYS[1], ARGV[a])
    redis.call('RPUSH', KEYS[2], ARGV[a + 1])
    applied = applied + 1
  end
end
if applied > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  redis.call('LTRIM', KEYS[2], 0, 31)
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end
return applied
";

/// Cluster mode: the legacy list `KEYS[1]` gets notifications, in order, each once by its
/// mark (`KEYS[2..]`, in the list's slot, `ARGV[1]` seconds): `ARGV[i]` for `KEYS[i]`; then
/// it keeps its newest `ARGV[#KEYS + 1]` entries, as in [`push_once`].
pub const LEGACY_PUSH: &str = r"
local length = 0
for i = 2, #KEYS do
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[1]) then
    length = redis.call('LPUSH', KEYS[1], ARGV[i])
  end
end
local legacy_max = tonumber(ARGV[#KEYS + 1])
if length > legacy_max then
  redis.call('LTRIM', KEYS[1], 0, legacy_max - 1)
end
return 0
";

/// Cluster mode: adds calls to a key's index `KEYS[1]` (`ARGV[1]` the TTL in seconds, then
/// pairs of creation time in ms and `contact_ref`), as [`push_once`] does; a repeat
/// changes nothing.
pub const INDEX_ADD: &str = r"
for i = 2, #ARGV, 2 do
  local created = tonumber(ARGV[i])
  redis.call('ZADD', KEYS[1], created, ARGV[i + 1])
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (created - 1000 * tonumber(ARGV[1])))
end
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -10001)
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 0
";

/// The hash tag of every webhook key in cluster mode: the whole queue is one slot's load.
pub const WEBHOOK_TAG: &str = "{teleforge:c2d:webhook}";

/// The webhook queue's key names: as in the table above, or, in cluster mode, all under
/// [`WEBHOOK_TAG`] (`{teleforge:c2d:webhook}:due`, `…:queue:<member>`, …), one slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WebhookKeys {
    /// Whether Redis is a cluster.
    pub cluster: bool,
}

impl WebhookKeys {
    fn name(self, prefix: &str, rest: &str) -> String {
        if self.cluster {
            let part = prefix
                .strip_prefix("teleforge:c2d:webhook:")
                .unwrap_or(prefix);
            format!("{WEBHOOK_TAG}:{part}{rest}")
        } else {
            format!("{prefix}{rest}")
        }
    }

    /// The due set.
    pub fn due(self) -> String {
        if self.cluster {
            format!("{WEBHOOK_TAG}:due")
        } else {
            WEBHOOK_DUE.to_string()
        }
    }

    /// A call's queue.
    pub fn queue(self, member: &str) -> String {
        self.name(WEBHOOK_QUEUE_PREFIX, member)
    }

    /// A call's lease.
    pub fn lease(self, member: &str) -> String {
        self.name(WEBHOOK_LEASE_PREFIX, member)
    }

    /// A call's head's attempts.
    pub fn head(self, member: &str) -> String {
        self.name(WEBHOOK_HEAD_PREFIX, member)
    }

    /// `owner`'s delivery state.
    pub fn endpoint(self, owner: &str) -> String {
        self.name(WEBHOOK_ENDPOINT_PREFIX, owner)
    }

    /// Cluster mode: the queue's own mark of notification `id`.
    pub fn sent(self, id: &str) -> String {
        format!("{WEBHOOK_TAG}:sent:{id}")
    }
}

/// Cluster mode: queues notifications for their keys' webhooks, in order, each once by the
/// queue's own mark: `KEYS[1]` the due set, then per notification its mark, its call's
/// queue and its key's state (all [`WebhookKeys`], one slot); `ARGV[1]` the marks' TTL,
/// `ARGV[2]` the most pending events per key, then per notification the entry, the member
/// and the endpoint URL; as [`push_once_queue`] does.
pub fn webhook_enqueue_cluster() -> String {
    format!(
        "{NOW_MS}{}",
        r"
local function queue(mark, q, endpoint, entry, member, url)
  if not redis.call('SET', mark, '1', 'NX', 'EX', ARGV[1]) then return end
  if redis.call('HGET', endpoint, 'disabled_url') == url then
    redis.call('HINCRBY', endpoint, 'failed', 1)
    return
  end
  if tonumber(redis.call('HGET', endpoint, 'pending') or '0') >= tonumber(ARGV[2]) then
    redis.call('HINCRBY', endpoint, 'failed', 1)
    redis.call('HSET', endpoint, 'last_error', 'queue full (webhooks.max_pending_per_key): event dropped', 'last_error_at', ms(now))
    return
  end
  redis.call('RPUSH', q, entry)
  redis.call('HINCRBY', endpoint, 'pending', 1)
  redis.call('ZADD', KEYS[1], 'NX', ms(now), member)
end
local n = (#KEYS - 1) / 3
for i = 0, n - 1 do
  queue(KEYS[2 + 3 * i], KEYS[3 + 3 * i], KEYS[4 + 3 * i], ARGV[3 + 3 * i], ARGV[4 + 3 * i], ARGV[5 + 3 * i])
end
return 1
"
    )
}

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

/// [`push_once`], and, when the mark is new, the event queued for the key's webhook:
/// `KEYS[6]` the call's queue, `KEYS[7]` [`WEBHOOK_DUE`], `KEYS[8]` the key's state;
/// `ARGV[8]` the entry, `ARGV[9]` the member, `ARGV[10]` the endpoint URL (not queued while
/// it is the disabled one), `ARGV[11]` the key's most pending events. Every host pushes
/// every notification and only the first push is applied, so each event is queued once,
/// in the call's order.
pub fn push_once_queue() -> String {
    format!(
        "{NOW_MS}if redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[2]) then\n{PUSH_APPLY}{QUEUE_APPLY}  return 1\nend\nreturn 0\n"
    )
}

/// The webhook part of [`push_once_queue`].
const QUEUE_APPLY: &str = r"
  if redis.call('HGET', KEYS[8], 'disabled_url') == ARGV[10] then
    redis.call('HINCRBY', KEYS[8], 'failed', 1)
    return 1
  end
  if tonumber(redis.call('HGET', KEYS[8], 'pending') or '0') >= tonumber(ARGV[11]) then
    redis.call('HINCRBY', KEYS[8], 'failed', 1)
    redis.call('HSET', KEYS[8], 'last_error', 'queue full (webhooks.max_pending_per_key): event dropped', 'last_error_at', ms(now))
    return 1
  end
  redis.call('RPUSH', KEYS[6], ARGV[8])
  redis.call('HINCRBY', KEYS[8], 'pending', 1)
  redis.call('ZADD', KEYS[7], 'NX', ms(now), ARGV[9])
";

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

#[cfg(test)]
mod tests {
    use super::*;
    use redis::cluster_routing::{Route, SlotAddr};

    fn slot(key: &str) -> Route {
        Route::with_key(key, SlotAddr::Master)
    }

    /// Every key a cluster step names is in one slot (Redis Cluster would answer
    /// `CROSSSLOT`), and the contract's list names are untouched.
    #[test]
    fn cluster_keys_of_one_step_share_a_slot() {
        let list = "teleforge:notifications:c2d:crm-42";
        let id = "c2d-abc:3";
        for key in [
            cluster_sent_key(list, id),
            cluster_history_key(list, "crm", "crm-42"),
            history_key_on(
                true,
                "teleforge:notifications:c2d:{contact_ref}",
                "crm",
                "crm-42",
            ),
        ] {
            assert_eq!(slot(&key), slot(list), "{key}");
        }
        let legacy = "enigma:notifications:c2d";
        assert_eq!(slot(&cluster_legacy_sent_key(legacy, id)), slot(legacy));
        let keys = WebhookKeys { cluster: true };
        let due = slot(&keys.due());
        for key in [
            keys.queue("crm:c2d-abc"),
            keys.lease("crm:c2d-abc"),
            keys.head("crm:c2d-abc"),
            keys.endpoint("crm"),
            keys.sent(id),
        ] {
            assert_eq!(slot(&key), due, "{key}");
        }
        // One server and Sentinel keep the names they had.
        assert_eq!(
            history_key_on(
                false,
                "teleforge:notifications:c2d:{contact_ref}",
                "crm",
                "crm-42"
            ),
            "teleforge:c2d:history:crm:crm-42"
        );
        let single = WebhookKeys { cluster: false };
        assert_eq!(single.due(), WEBHOOK_DUE);
        assert_eq!(single.queue("m"), format!("{WEBHOOK_QUEUE_PREFIX}m"));
        assert_eq!(single.endpoint("crm"), webhook_endpoint_key("crm"));
        assert_eq!(keys.queue("m"), "{teleforge:c2d:webhook}:queue:m");
    }
}
