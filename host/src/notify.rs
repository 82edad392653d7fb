//! Notifications into Redis lists, through a bounded in-memory spool.
//!
//! One task owns the Redis connection and pushes notifications strictly in the order they
//! were handed over, so each call's list is in event order. While Redis is unreachable they
//! wait in the spool (a `VecDeque` in this process, `redis.spool_capacity` entries; about
//! 0.5 KiB each) and are pushed in order when Redis is back. Each push runs a Lua script
//! that first claims the notification's id with `SET NX`, so a push that Redis executed but
//! whose reply was lost is not repeated on retry: nothing lost, nothing duplicated. Only a
//! full spool drops (the oldest first, logged as an error).
//!
//! With Redis Sentinel (`[redis] sentinels`), a push also waits for the replica
//! (`WAIT 1`, at most [`REPLICA_ACK_WITHIN_MS`]) before its notifications leave the spool:
//! replication is asynchronous, so a notification the master had but had not yet sent to
//! its replica would otherwise be lost when the master dies and the replica takes over.
//! When the master dies before the replica has them, the push gets no answer and is sent
//! again, to the new master (the marks keep it once). When no replica acknowledges it, the
//! push leaves the spool only if the sentinels still name this master and know no replica
//! of it that is up (the new master after a failover, its old one dead); otherwise (a switch
//! to the replica with the old master still up and writable) it is pushed again, to the
//! master the sentinels name. An error that lost the master drops the connection; the next
//! attempt asks the sentinels for the new one (`crate::store::target`).
//!
//! With Redis Cluster (`[redis] cluster`), a call's keys are in its list's slot and the
//! legacy list and the webhook queue each in a slot of their own (`crate::store::schema`,
//! "Cluster"), so a batch is pushed in steps that run side by side: one script per call
//! (its marks, its list, its history), one for the legacy list and one for the webhook
//! queue (each with marks of its own), and the keys' indexes (`ZADD`). A batch leaves the
//! spool once every step succeeded; a step that failed (a node down, `TRYAGAIN` while a
//! slot moves and redis-rs's retries ran out) sends the batch again and the marks make the
//! steps that were applied no-ops. No pipeline: a cluster pipeline must stay in one slot.
//!
//! For a call whose key has a webhook, the same script also queues the notification's
//! CloudEvent for delivery (`crate::webhook`), so it is queued once, in order, with the
//! push.
//!
//! The same spool carries the idempotency claims of accepted calls ([`Notifier::accept`],
//! [`Acceptance`]): each is written in the pipeline of the notifications queued
//! with it (in cluster mode, a step of its own), so a create costs no round trip of its own
//! for it, and it waits out a Redis outage like a notification instead of being lost. Its
//! sender is told once it is in Redis ([`Notifier::accept`]): a create waits for that (with
//! a deadline), which keeps the creates from outrunning the pushes and the spool from
//! growing under load.
//!
//! [`Notifier::send`] is also where each notification is published to the call's event
//! streams ([`hub::Hub`]), before it waits for Redis: the streams carry the same
//! bytes, in the same order, whether or not Redis is up.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::RedisWrite;
use tokio::sync::{mpsc, oneshot, watch};

pub mod hub;

use crate::call::{Notification, Outbox};
use crate::metrics::Metrics;
use crate::store::idempotency::Acceptance;
use crate::store::schema;
use crate::store::target::{lost_master, Conn, Target};
use crate::webhook::Enqueue;
use hub::Hub;

/// Where notifications go.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where Redis is (`None`: nowhere, a malformed URL: everything stays spooled).
    pub target: Option<Target>,
    /// The deprecated shared list, when still written.
    pub legacy_key: Option<String>,
    /// The most entries the deprecated list keeps (the newest).
    pub legacy_max_len: u64,
    /// TTL of the per-call list and of the exactly-once marks.
    pub ttl_secs: u64,
    /// Spool size.
    pub spool_capacity: usize,
    /// Prefix of the exactly-once marks.
    pub sent_prefix: String,
    /// How long a call's history (its resource) and the key's index of calls are kept.
    pub history_ttl_secs: u64,
    /// Which keys' notifications are also queued for their webhook.
    pub webhooks: Option<Enqueue>,
    /// `redis.idempotency_prefix`, for the claims of the calls this host follows but did
    /// not place (`None`: they are left alone).
    pub claim_prefix: Option<String>,
}

impl Settings {
    /// Whether Redis is Sentinel's master, which can move.
    fn follows_failovers(&self) -> bool {
        self.target.as_ref().is_some_and(Target::follows_failovers)
    }

    /// Whether a push to `master` that no replica acknowledged may leave the spool
    /// ([`Target::unreplicated_write_stands`]).
    async fn target_keeps_unreplicated(&self, master: &str) -> bool {
        match &self.target {
            Some(target) => target.unreplicated_write_stands(master).await,
            None => true,
        }
    }
}

/// Notifications pushed per round trip.
const BATCH: usize = 64;

/// With Sentinel, how long a push waits for the replica to acknowledge it (`WAIT`), in
/// milliseconds.
pub const REPLICA_ACK_WITHIN_MS: u64 = 250;

/// What the spool holds: a notification, or an accepted call's idempotency claim.
#[derive(Debug)]
enum Outgoing {
    Notification(Notification),
    Acceptance(Acceptance, oneshot::Sender<()>),
    /// A followed call's claim ([`schema::ADOPT_CLAIM`]): its key and recording reference.
    Adoption {
        key: String,
        recording_ref: String,
    },
    /// A call in flight since `since_ms` (Unix ms) added to its PBX's set
    /// ([`schema::live_key`] `key`), or removed (`None`: it is over).
    Live {
        key: String,
        channel_id: String,
        since_ms: Option<u64>,
    },
}

impl Outgoing {
    fn notification(&self) -> Option<&Notification> {
        match self {
            Self::Notification(n) => Some(n),
            Self::Acceptance(..) | Self::Adoption { .. } | Self::Live { .. } => None,
        }
    }
}

/// Hands notifications to the pushing task.
#[derive(Clone, Debug)]
pub struct Notifier {
    tx: mpsc::UnboundedSender<Outgoing>,
    claim_prefix: Option<Arc<str>>,
    spooled: Arc<AtomicUsize>,
    drained: watch::Receiver<bool>,
    hub: Hub,
}

impl Notifier {
    /// Starts the pushing task.
    pub fn start(settings: Settings, metrics: Metrics) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let spooled = Arc::new(AtomicUsize::new(0));
        let (drained_tx, drained) = watch::channel(true);
        let claim_prefix = settings.claim_prefix.as_deref().map(Arc::from);
        tokio::spawn(run(settings, rx, spooled.clone(), drained_tx, metrics));
        Self {
            tx,
            claim_prefix,
            spooled,
            drained,
            hub: Hub::new(),
        }
    }

    /// The calls' event streams.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Publishes a notification to the call's event streams and queues it for Redis; never
    /// blocks.
    pub fn send(&self, notification: Notification) {
        self.hub.publish(
            &notification.owner,
            &notification.contact_ref,
            notification.sequence,
            notification.event,
            &notification.json,
        );
        self.spool(Outgoing::Notification(notification));
    }

    /// Queues the acceptance of a claim whose call the PBX queued; never blocks. The answer
    /// comes once Redis has it (no answer: the notifier is gone).
    pub fn accept(&self, acceptance: Acceptance) -> oneshot::Receiver<()> {
        let (done, written) = oneshot::channel();
        self.spool(Outgoing::Acceptance(acceptance, done));
        written
    }

    fn spool(&self, outgoing: Outgoing) {
        self.spooled.fetch_add(1, Ordering::SeqCst);
        if self.tx.send(outgoing).is_err() {
            self.spooled.fetch_sub(1, Ordering::SeqCst);
            tracing::error!("notification task is gone; notification dropped");
        }
    }

    /// The call under `contact_ref` is over: no notification follows; its event streams end.
    pub fn call_over(&self, owner: &str, contact_ref: &str) {
        self.hub.end(owner, contact_ref);
    }

    /// Notifications (and claim acceptances) not yet in Redis.
    pub fn spool_depth(&self) -> usize {
        self.spooled.load(Ordering::SeqCst)
    }

    /// Waits until every queued notification and acceptance is in Redis, or `timeout`
    /// passes; returns whether the spool is empty.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let mut drained = self.drained.clone();
        let wait = async {
            loop {
                if self.spool_depth() == 0 {
                    return;
                }
                if drained.changed().await.is_err() {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(timeout, wait).await;
        self.spool_depth() == 0
    }
}

impl Outbox for Notifier {
    fn send(&self, notification: Notification) {
        Notifier::send(self, notification);
    }

    fn call_over(&self, owner: &str, contact_ref: &str) {
        Notifier::call_over(self, owner, contact_ref);
    }

    fn followed(&self, owner: &str, contact_ref: &str, recording_ref: &str) {
        let Some(prefix) = &self.claim_prefix else {
            return;
        };
        self.spool(Outgoing::Adoption {
            key: schema::claim_key(prefix, owner, contact_ref),
            recording_ref: recording_ref.to_string(),
        });
    }

    fn in_flight(&self, pbx: &str, channel_id: &str, since_ms: Option<u64>) {
        self.spool(Outgoing::Live {
            key: schema::live_key(pbx),
            channel_id: channel_id.to_string(),
            since_ms,
        });
    }
}

async fn run(
    settings: Settings,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    spooled: Arc<AtomicUsize>,
    drained: watch::Sender<bool>,
    metrics: Metrics,
) {
    let script = redis::Script::new(&schema::push_once());
    let queue_script = redis::Script::new(&schema::push_once_queue());
    // The claim scripts are the cluster steps' own: one of each, whichever way they run.
    let cluster_scripts = ClusterScripts::default();
    let (accept_script, adopt_script) = (&cluster_scripts.accept, &cluster_scripts.adopt);
    let hashes = Hashes {
        push: script.get_hash().to_string(),
        queue: queue_script.get_hash().to_string(),
        accept: accept_script.get_hash().to_string(),
        adopt: adopt_script.get_hash().to_string(),
    };
    let mut script_loaded = false;
    let follows_failovers = settings.follows_failovers();
    let mut spool: VecDeque<Outgoing> = VecDeque::new();
    // The connection and the address it reaches.
    let mut connection: Option<(Conn, String)> = None;
    let mut retry = Duration::from_millis(100);
    loop {
        if spool.is_empty() {
            let _ = drained.send(true);
            match rx.recv().await {
                Some(n) => spool.push_back(n),
                None => return,
            }
        }
        while let Ok(n) = rx.try_recv() {
            spool.push_back(n);
        }
        while spool.len() > settings.spool_capacity {
            match spool.pop_front() {
                Some(Outgoing::Notification(lost)) => {
                    tracing::error!(id = %lost.id, key = %lost.call_key, "spool full: notification dropped");
                }
                Some(Outgoing::Adoption { key, .. }) => {
                    tracing::warn!(%key, "spool full: a followed call's claim left pending");
                }
                Some(Outgoing::Live { channel_id, .. }) => {
                    tracing::warn!(
                        %channel_id,
                        "spool full: the store's list of calls in flight not updated"
                    );
                }
                Some(Outgoing::Acceptance(lost, _)) => {
                    tracing::error!(
                        key = %lost.key,
                        "spool full: claim acceptance dropped (the claim expires in {} s)",
                        schema::PENDING_TTL_SECS
                    );
                }
                None => break,
            }
            spooled.fetch_sub(1, Ordering::SeqCst);
        }
        let _ = drained.send(false);
        if connection.is_none() {
            connection = connect(settings.target.as_ref()).await;
            script_loaded = false;
        }
        let Some((conn, master)) = connection.as_mut() else {
            wait_or_receive(&mut rx, &mut spool, retry).await;
            retry = (retry * 2).min(Duration::from_secs(2));
            continue;
        };
        if !script_loaded && conn.is_cluster() {
            // The cluster steps' scripts load themselves on `NOSCRIPT` (EVALSHA, then EVAL).
            script_loaded = true;
        }
        if !script_loaded {
            // EVALSHA in a pipeline needs the script in Redis's cache (empty after a restart).
            let loaded = match script.prepare_invoke().load_async(conn).await {
                Ok(_) if settings.webhooks.is_some() => {
                    queue_script.prepare_invoke().load_async(conn).await
                }
                other => other,
            };
            let loaded = match loaded {
                Ok(_) => accept_script.prepare_invoke().load_async(conn).await,
                other => other,
            };
            let loaded = match loaded {
                Ok(_) => adopt_script.prepare_invoke().load_async(conn).await,
                other => other,
            };
            match loaded {
                Ok(_) => script_loaded = true,
                Err(e) => {
                    tracing::warn!(error = %e, spooled = spool.len(), "Redis unreachable; spooling");
                    if follows_failovers && lost_master(&e) {
                        connection = None;
                    }
                    wait_or_receive(&mut rx, &mut spool, retry).await;
                    retry = (retry * 2).min(Duration::from_secs(2));
                    continue;
                }
            }
        }
        let batch = spool.len().min(BATCH);
        let pushed = if conn.is_cluster() {
            push_cluster(&cluster_scripts, conn, &settings, spool.range(..batch))
                .await
                .map(|queued| (queued, None))
        } else {
            push(&hashes, conn, &settings, spool.range(..batch)).await
        };
        match pushed {
            Ok((_, Some(0))) if !settings.target_keeps_unreplicated(master).await => {
                tracing::warn!(
                    spooled = spool.len(),
                    "no replica has the push and the sentinels name another master, or a \
                     replica that is up: pushing it again"
                );
                connection = None;
                wait_or_receive(&mut rx, &mut spool, retry).await;
                retry = (retry * 2).min(Duration::from_secs(2));
            }
            Ok((queued, _)) => {
                if let (true, Some(webhooks)) = (queued, &settings.webhooks) {
                    webhooks.wake.notify_one();
                }
                for pushed in spool.drain(..batch) {
                    match pushed {
                        Outgoing::Notification(n) => metrics.notification_pushed(n.since.elapsed()),
                        // The create waiting for it may have stopped waiting.
                        Outgoing::Acceptance(_, done) => drop(done.send(())),
                        Outgoing::Adoption { .. } | Outgoing::Live { .. } => {}
                    }
                }
                spooled.fetch_sub(batch, Ordering::SeqCst);
                retry = Duration::from_millis(100);
            }
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                script_loaded = false;
            }
            Err(e) => {
                tracing::warn!(error = %e, spooled = spool.len(), "Redis push failed; spooling");
                if follows_failovers && lost_master(&e) {
                    connection = None;
                }
                wait_or_receive(&mut rx, &mut spool, retry).await;
                retry = (retry * 2).min(Duration::from_secs(2));
            }
        }
    }
}

async fn connect(target: Option<&Target>) -> Option<(Conn, String)> {
    match target?.connect_to_master().await {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "Redis unreachable");
            None
        }
    }
}

/// Sleeps `delay` while still accepting new notifications into the spool.
async fn wait_or_receive(
    rx: &mut mpsc::UnboundedReceiver<Outgoing>,
    spool: &mut VecDeque<Outgoing>,
    delay: Duration,
) {
    let sleep = tokio::time::sleep(delay);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            () = &mut sleep => return,
            n = rx.recv() => match n {
                Some(n) => spool.push_back(n),
                None => return,
            },
        }
    }
}

/// A batch's changes to one set of calls in flight: the calls to add (each with when it
/// started, Unix ms), then those to remove, in the batch's order (a call added and removed
/// in one batch ends removed).
struct LiveChanges<'a> {
    key: &'a str,
    adds: Vec<(&'a str, u64)>,
    removes: Vec<&'a str>,
}

impl<'a> LiveChanges<'a> {
    /// The batch's changes, one per set (one per PBX).
    fn of(batch: impl Iterator<Item = &'a Outgoing>) -> Vec<Self> {
        let mut sets: Vec<Self> = Vec::new();
        for outgoing in batch {
            let Outgoing::Live {
                key,
                channel_id,
                since_ms,
            } = outgoing
            else {
                continue;
            };
            let at = match sets.iter().position(|set| set.key == key) {
                Some(at) => at,
                None => {
                    sets.push(Self {
                        key,
                        adds: Vec::new(),
                        removes: Vec::new(),
                    });
                    sets.len() - 1
                }
            };
            if let Some(set) = sets.get_mut(at) {
                match since_ms {
                    Some(since) => set.adds.push((channel_id, *since)),
                    None => set.removes.push(channel_id),
                }
            }
        }
        sets
    }

    /// The plain commands (one server, Sentinel): `ZADD NX` of the adds (a call already
    /// there keeps its first score), then `ZREM` of the removes.
    fn commands(&self) -> impl Iterator<Item = redis::Cmd> {
        let add = (!self.adds.is_empty()).then(|| {
            let mut cmd = redis::Cmd::with_capacity(3 + 2 * self.adds.len(), self.bytes());
            cmd.arg("ZADD").arg(self.key).arg("NX");
            for (id, since) in &self.adds {
                cmd.arg(*since).arg(*id);
            }
            cmd
        });
        let remove = (!self.removes.is_empty()).then(|| {
            let mut cmd = redis::Cmd::with_capacity(2 + self.removes.len(), self.bytes());
            cmd.arg("ZREM").arg(self.key);
            for id in &self.removes {
                cmd.arg(*id);
            }
            cmd
        });
        add.into_iter().chain(remove)
    }

    /// [`schema::LIVE_SET`]'s arguments (cluster mode): how many adds, each add's score and
    /// id, then the removes.
    fn script_args(&self) -> Vec<String> {
        let mut args = Vec::with_capacity(1 + 2 * self.adds.len() + self.removes.len());
        args.push(self.adds.len().to_string());
        for (id, since) in &self.adds {
            args.push(since.to_string());
            args.push((*id).to_string());
        }
        args.extend(self.removes.iter().map(|id| (*id).to_string()));
        args
    }

    /// About the bytes of a command's arguments.
    fn bytes(&self) -> usize {
        let ids = self.adds.iter().map(|(id, _)| id.len() + 24);
        self.key.len()
            + 16
            + ids
                .chain(self.removes.iter().map(|id| id.len()))
                .sum::<usize>()
    }
}

/// The scripts' SHA1s.
struct Hashes {
    push: String,
    queue: String,
    accept: String,
    adopt: String,
}

/// Pushes notifications in order, in one pipeline (one round trip; with Sentinel, ending
/// with the replica's `WAIT`); answers whether any was also queued for a webhook, and with
/// Sentinel how many replicas acknowledged the push. A pipeline cut short, or pushed again,
/// is harmless: the marks make the already-applied ones no-ops.
///
/// Each command is made with room for its arguments, and the keys and the history entry
/// are written straight into it (redis-rs's `write_arg_fmt`): no `String` per argument.
async fn push<'a>(
    hashes: &Hashes,
    conn: &mut Conn,
    settings: &Settings,
    batch: impl ExactSizeIterator<Item = &'a Outgoing> + Clone,
) -> redis::RedisResult<(bool, Option<u64>)> {
    let batch_again = batch.clone();
    let legacy = settings.legacy_key.as_deref();
    let mut pipe = redis::Pipeline::with_capacity(batch.len() + 1);
    let mut queued = false;
    for outgoing in batch {
        let n = match outgoing {
            Outgoing::Notification(n) => n,
            Outgoing::Acceptance(a, _) => {
                pipe.add_command(accept_command(&hashes.accept, a)).ignore();
                continue;
            }
            Outgoing::Adoption { key, recording_ref } => {
                pipe.cmd("EVALSHA")
                    .arg(&hashes.adopt)
                    .arg(1)
                    .arg(key)
                    .arg(recording_ref)
                    .arg(settings.history_ttl_secs.max(1))
                    .ignore();
                continue;
            }
            Outgoing::Live { .. } => continue, // Below, one command per set.
        };
        let webhook = settings
            .webhooks
            .as_ref()
            .and_then(|w| Some((w, w.entry(&n.owner, &n.id, &n.contact_ref, &n.json)?)));
        let mut cmd = redis::Cmd::with_capacity(PUSH_ARGS, command_len(n, settings));
        cmd.arg("EVALSHA");
        match &webhook {
            Some(_) => cmd.arg(&hashes.queue).arg(8),
            None => cmd.arg(&hashes.push).arg(5),
        };
        cmd.arg(&n.call_key).arg(legacy.unwrap_or(&n.call_key));
        cmd.write_arg_fmt(schema::KeyName::new(&settings.sent_prefix, &n.id, None));
        cmd.write_arg_fmt(schema::history_key_name(&n.owner, &n.contact_ref));
        cmd.write_arg_fmt(schema::calls_key_name(&n.owner));
        if let Some((_, (member, _, _))) = &webhook {
            cmd.write_arg_fmt(schema::KeyName::new(
                schema::WEBHOOK_QUEUE_PREFIX,
                member,
                None,
            ));
            cmd.arg(schema::WEBHOOK_DUE)
                .arg(schema::webhook_endpoint_key(&n.owner));
        }
        cmd.arg(&n.json)
            .arg(settings.ttl_secs)
            .arg(if legacy.is_some() {
                settings.legacy_max_len
            } else {
                0
            })
            .arg(settings.history_ttl_secs);
        // The call's creation time, for the key's index: with its first notification only.
        if n.sequence == 1 {
            cmd.arg(n.at_ms);
        } else {
            cmd.arg("");
        }
        cmd.arg(&n.contact_ref);
        cmd.write_arg_fmt(HistoryEntry(n));
        if let Some((w, (member, entry, url))) = webhook {
            queued = true;
            cmd.arg(entry).arg(member).arg(url).arg(w.max_pending);
        }
        pipe.add_command(cmd).ignore();
    }
    for live in LiveChanges::of(batch_again) {
        for cmd in live.commands() {
            pipe.add_command(cmd).ignore();
        }
    }
    if settings.follows_failovers() {
        pipe.cmd("WAIT").arg(1).arg(REPLICA_ACK_WITHIN_MS);
    }
    let acked = pipe.query_async::<Vec<u64>>(conn).await?;
    Ok((queued, acked.first().copied()))
}

/// The write that accepts `a`: a plain `SET XX` while its pending claim is surely still
/// there ([`Acceptance::needs_compare`]; cheaper for Redis than a script), else `EVALSHA`
/// of [`schema::ACCEPT_CLAIM`] (`hash`), which compares it first.
fn accept_command(hash: &str, a: &Acceptance) -> redis::Cmd {
    let mut cmd = redis::Cmd::with_capacity(
        7,
        hash.len() + a.key.len() + a.pending.len() + a.accepted.len() + 32,
    );
    if a.needs_compare() {
        cmd.arg("EVALSHA")
            .arg(hash)
            .arg(1)
            .arg(&a.key)
            .arg(&a.pending)
            .arg(&a.accepted)
            .arg(a.ttl_secs);
    } else {
        cmd.arg("SET")
            .arg(&a.key)
            .arg(&a.accepted)
            .arg("XX")
            .arg("EX")
            .arg(a.ttl_secs);
    }
    cmd
}

/// The most arguments of one push (`EVALSHA`, the script, the key count, 8 keys, 11
/// arguments), so that a command's list of them is made once.
const PUSH_ARGS: usize = 22;

/// About the bytes of one push's arguments: the JSON twice (the notification and its
/// history entry), the call's list twice, and room for the keys, the ids and the numbers.
fn command_len(n: &Notification, settings: &Settings) -> usize {
    2 * n.json.len()
        + 2 * n.call_key.len()
        + 4 * (n.id.len() + n.owner.len() + n.contact_ref.len())
        + settings.sent_prefix.len()
        + 256
}

/// A notification's entry in its call's history: `{"at_ms":…,"channel":…,"notification":…}`.
fn history_entry(n: &Notification) -> String {
    HistoryEntry(n).to_string()
}

/// [`history_entry`], to be written where it goes.
struct HistoryEntry<'a>(&'a Notification);

impl std::fmt::Display for HistoryEntry<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0;
        let channel = n.id.rsplit_once(':').map_or("", |(channel, _)| channel);
        write!(
            f,
            r#"{{"at_ms":{},"channel":"{channel}","notification":{}}}"#,
            n.at_ms, n.json
        )
    }
}

/// The cluster steps' scripts (`crate::store::schema`, "Cluster").
#[derive(Clone)]
struct ClusterScripts {
    push: Arc<redis::Script>,
    legacy: Arc<redis::Script>,
    index: Arc<redis::Script>,
    webhook: Arc<redis::Script>,
    accept: Arc<redis::Script>,
    adopt: Arc<redis::Script>,
    live: Arc<redis::Script>,
}

impl Default for ClusterScripts {
    fn default() -> Self {
        Self {
            push: Arc::new(redis::Script::new(schema::PUSH_CLUSTER)),
            legacy: Arc::new(redis::Script::new(schema::LEGACY_PUSH)),
            index: Arc::new(redis::Script::new(schema::INDEX_ADD)),
            webhook: Arc::new(redis::Script::new(&schema::webhook_enqueue_cluster())),
            accept: Arc::new(redis::Script::new(schema::ACCEPT_CLAIM)),
            adopt: Arc::new(redis::Script::new(schema::ADOPT_CLAIM)),
            live: Arc::new(redis::Script::new(schema::LIVE_SET)),
        }
    }
}

/// One step of a cluster push: a script, its keys and arguments (all in one slot).
struct Step {
    script: Arc<redis::Script>,
    keys: Vec<String>,
    args: Vec<String>,
}

/// Pushes notifications in order to a Redis Cluster, in steps that each stay in one slot
/// and run side by side (see the module's documentation); answers whether any was also
/// queued for a webhook. `Err` when a step failed: the whole batch is pushed again, and
/// the marks make the applied steps no-ops.
async fn push_cluster<'a>(
    scripts: &ClusterScripts,
    conn: &Conn,
    settings: &Settings,
    batch: impl Iterator<Item = &'a Outgoing> + Clone,
) -> redis::RedisResult<bool> {
    let mut steps: Vec<Step> = Vec::new();
    // Each claim in its own slot.
    for outgoing in batch.clone() {
        match outgoing {
            Outgoing::Acceptance(a, _) => steps.push(Step {
                script: scripts.accept.clone(),
                keys: vec![a.key.clone()],
                args: vec![
                    a.pending.clone(),
                    a.accepted.clone(),
                    a.ttl_secs.to_string(),
                ],
            }),
            Outgoing::Adoption { key, recording_ref } => steps.push(Step {
                script: scripts.adopt.clone(),
                keys: vec![key.clone()],
                args: vec![
                    recording_ref.clone(),
                    settings.history_ttl_secs.max(1).to_string(),
                ],
            }),
            Outgoing::Live { .. } | Outgoing::Notification(_) => {}
        }
    }
    // Each set of calls in flight in one step.
    for live in LiveChanges::of(batch.clone()) {
        steps.push(Step {
            script: scripts.live.clone(),
            keys: vec![live.key.to_string()],
            args: live.script_args(),
        });
    }
    let batch: Vec<&Notification> = batch.filter_map(Outgoing::notification).collect();
    // Each call's notifications, in order: (list, owner, contact_ref) → its step.
    let mut calls: Vec<((&str, &str, &str), usize)> = Vec::new();
    for n in &batch {
        let call = (
            n.call_key.as_str(),
            n.owner.as_str(),
            n.contact_ref.as_str(),
        );
        let at = match calls.iter().find(|(c, _)| *c == call) {
            Some((_, at)) => *at,
            None => {
                steps.push(Step {
                    script: scripts.push.clone(),
                    keys: vec![
                        n.call_key.clone(),
                        schema::cluster_history_key(&n.call_key, &n.owner, &n.contact_ref),
                    ],
                    args: vec![
                        settings.ttl_secs.to_string(),
                        settings.history_ttl_secs.to_string(),
                    ],
                });
                calls.push((call, steps.len() - 1));
                steps.len() - 1
            }
        };
        if let Some(step) = steps.get_mut(at) {
            step.keys.push(schema::cluster_sent_key(&n.call_key, &n.id));
            step.args.push(n.json.clone());
            step.args.push(history_entry(n));
        }
    }
    if let Some(legacy) = &settings.legacy_key {
        let mut step = Step {
            script: scripts.legacy.clone(),
            keys: vec![legacy.clone()],
            args: vec![settings.ttl_secs.to_string()],
        };
        for n in &batch {
            step.keys
                .push(schema::cluster_legacy_sent_key(legacy, &n.id));
            step.args.push(n.json.clone());
        }
        step.args.push(settings.legacy_max_len.to_string());
        steps.push(step);
    }
    // The keys' indexes: a call's first notification adds it.
    let mut indexes: Vec<(&str, usize)> = Vec::new();
    for n in batch.iter().filter(|n| n.sequence == 1) {
        let at = match indexes.iter().find(|(owner, _)| *owner == n.owner) {
            Some((_, at)) => *at,
            None => {
                steps.push(Step {
                    script: scripts.index.clone(),
                    keys: vec![schema::calls_key(&n.owner)],
                    args: vec![settings.history_ttl_secs.to_string()],
                });
                indexes.push((n.owner.as_str(), steps.len() - 1));
                steps.len() - 1
            }
        };
        if let Some(step) = steps.get_mut(at) {
            step.args.push(n.at_ms.to_string());
            step.args.push(n.contact_ref.clone());
        }
    }
    let mut queued = false;
    if let Some(webhooks) = &settings.webhooks {
        let keys = schema::WebhookKeys { cluster: true };
        let mut step = Step {
            script: scripts.webhook.clone(),
            keys: vec![keys.due()],
            args: vec![
                settings.ttl_secs.to_string(),
                webhooks.max_pending.to_string(),
            ],
        };
        for n in &batch {
            if let Some((member, entry, url)) =
                webhooks.entry(&n.owner, &n.id, &n.contact_ref, &n.json)
            {
                let owner = member.split_once(':').map_or(member.as_str(), |(o, _)| o);
                step.keys.push(keys.sent(&n.id));
                step.keys.push(keys.queue(&member));
                step.keys.push(keys.endpoint(owner));
                step.args.push(entry);
                step.args.push(member.clone());
                step.args.push(url.to_string());
                queued = true;
            }
        }
        if queued {
            steps.push(step);
        }
    }
    let mut running = tokio::task::JoinSet::new();
    for step in steps {
        let mut conn = conn.clone();
        running.spawn(async move {
            let mut invocation = step.script.prepare_invoke();
            for key in &step.keys {
                invocation.key(key);
            }
            for arg in &step.args {
                invocation.arg(arg);
            }
            invocation.invoke_async::<redis::Value>(&mut conn).await
        });
    }
    let mut failed = None;
    while let Some(done) = running.join_next().await {
        match done {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => failed = Some(e),
            Err(e) => {
                failed = Some(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "a push step did not finish",
                    e.to_string(),
                )));
            }
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(queued),
    }
}
