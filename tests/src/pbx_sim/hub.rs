//! State shared by every connection and call of one simulator: event delivery to the
//! logged-in sessions, id counters, and which calls are in progress.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch, Notify};

use super::channels::Channels;
use super::Config;

/// One rendered frame, shared by every session it is sent to.
pub(crate) type Bytes = Arc<[u8]>;

/// Which events a session asked for with the `Events` header of its `Login`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum EventMask {
    /// No `Events` header, or `on`.
    All,
    /// `off`.
    None,
    /// A list of classes, e.g. `call,system`.
    Classes(Vec<String>),
}

impl EventMask {
    /// Reads an `Events` header as Asterisk's `set_eventmask` does.
    pub(crate) fn parse(value: &str) -> Self {
        let value = value.trim();
        let is = |words: &[&str]| words.iter().any(|w| value.eq_ignore_ascii_case(w));
        if value.is_empty() || is(&["on", "yes", "true", "y", "t", "1"]) {
            Self::All
        } else if is(&["off", "no", "false", "n", "f", "0"]) {
            Self::None
        } else {
            Self::Classes(
                value
                    .split(',')
                    .map(|c| c.trim().to_ascii_lowercase())
                    .collect(),
            )
        }
    }

    /// Whether an event whose `Privilege` is `privilege` (e.g. `call,all`) passes.
    pub(crate) fn allows(&self, privilege: &str) -> bool {
        match self {
            Self::All => true,
            Self::None => false,
            Self::Classes(classes) => privilege
                .split(',')
                .filter(|c| *c != "all")
                .any(|c| classes.iter().any(|k| k == c)),
        }
    }
}

struct Subscriber {
    id: u64,
    mask: EventMask,
    tx: mpsc::UnboundedSender<Bytes>,
}

/// Channel names and ids, made like Asterisk makes them.
#[derive(Debug)]
pub(crate) struct Ids {
    channel_index: AtomicU32,
    local_index: AtomicU32,
    unique_int: AtomicU64,
    random: RandomState,
    draws: AtomicU64,
}

impl Ids {
    fn new() -> Self {
        Self {
            channel_index: AtomicU32::new(0),
            local_index: AtomicU32::new(0),
            unique_int: AtomicU64::new(0),
            random: RandomState::new(),
            draws: AtomicU64::new(0),
        }
    }

    /// `PJSIP/<endpoint>-<8 hex digits>`, from one counter for every channel.
    pub(crate) fn channel_name(&self, endpoint: &str) -> String {
        let n = self.channel_index.fetch_add(1, Ordering::Relaxed);
        format!("PJSIP/{endpoint}-{n:08x}")
    }

    /// `Local/<resource>-<8 hex digits>` (the halves add `;1`, `;2`), from the counter of
    /// Local channels (Asterisk's `core_local` has its own, as the one-leg recordings show).
    pub(crate) fn local_name(&self, resource: &str) -> String {
        let n = self.local_index.fetch_add(1, Ordering::Relaxed);
        format!("Local/{resource}-{n:08x}")
    }

    /// A `Uniqueid` of a channel that the Originate did not name: `<epoch>.<n>`.
    pub(crate) fn uniqueid(&self) -> String {
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let n = self.unique_int.fetch_add(1, Ordering::Relaxed);
        format!("{epoch}.{n}")
    }

    /// Counts a channel whose `Uniqueid` the Originate named (Asterisk's counter moves anyway).
    pub(crate) fn skip_uniqueid(&self) {
        self.unique_int.fetch_add(1, Ordering::Relaxed);
    }

    fn random_u64(&self) -> u64 {
        let mut h = self.random.build_hasher();
        h.write_u64(self.draws.fetch_add(1, Ordering::Relaxed));
        h.finish()
    }

    /// A random (version 4) UUID, as Asterisk gives bridges.
    pub(crate) fn uuid(&self) -> String {
        let (a, b) = (self.random_u64(), self.random_u64());
        let a = (a & !0xf000) | 0x4000;
        let b = (b & !(0b11 << 62)) | (0b10 << 62);
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }
}

/// Everything the connections and calls of one simulator share.
pub(crate) struct Shared {
    pub(crate) config: Config,
    /// The recordings directory, absolute.
    pub(crate) recordings_dir: PathBuf,
    pub(crate) ids: Ids,
    started: Instant,
    subscribers: Mutex<Vec<Subscriber>>,
    next_subscriber: AtomicU64,
    active: watch::Sender<usize>,
    /// The `Uniqueid` of each live call's first channel, and what hangs that call up.
    live_channel_ids: Mutex<HashMap<String, Arc<Notify>>>,
    /// Every live channel, as the events sent tell them (`CoreShowChannels`).
    pub(crate) channels: Channels,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn new(config: Config, recordings_dir: PathBuf) -> Self {
        Self {
            config,
            recordings_dir,
            ids: Ids::new(),
            started: Instant::now(),
            subscribers: Mutex::new(Vec::new()),
            next_subscriber: AtomicU64::new(0),
            active: watch::Sender::new(0),
            live_channel_ids: Mutex::new(HashMap::new()),
            channels: Channels::default(),
        }
    }

    /// Call time scaled to wall-clock time.
    pub(crate) fn scaled(&self, ms: u64) -> Duration {
        Duration::from_secs_f64(ms as f64 / 1000.0 * self.config.time_scale)
    }

    /// Whole seconds since the simulator started (`Uptime`, `LastReload`).
    pub(crate) fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Whether the event `frame` passes the manager user's event filters.
    pub(crate) fn passes_filters(&self, frame: &[u8]) -> bool {
        super::filter::passes_frame(&self.config.event_filters, frame)
    }

    /// Delivers `frame` to every logged-in session whose mask lets `privilege` through and
    /// whose user's event filters pass it (the PBX's channels follow it first).
    pub(crate) fn broadcast(&self, privilege: &str, frame: Bytes) {
        self.channels.observe(&frame);
        if !self.passes_filters(&frame) {
            return;
        }
        lock(&self.subscribers)
            .retain(|s| !s.mask.allows(privilege) || s.tx.send(Arc::clone(&frame)).is_ok());
    }

    /// Starts delivering events to a session; they stop when the guard is dropped.
    pub(crate) fn subscribe(
        self: &Arc<Self>,
        mask: EventMask,
        tx: mpsc::UnboundedSender<Bytes>,
    ) -> Subscription {
        let id = self.next_subscriber.fetch_add(1, Ordering::Relaxed);
        lock(&self.subscribers).push(Subscriber { id, mask, tx });
        Subscription {
            shared: Arc::clone(self),
            id,
        }
    }

    /// Asks the live call whose first channel has `Uniqueid` `id` to hang up (the AMI
    /// `Hangup` action); `false` when no live call has it.
    pub(crate) fn request_hangup(&self, id: &str) -> bool {
        match lock(&self.live_channel_ids).get(id) {
            Some(signal) => {
                signal.notify_one();
                true
            }
            None => false,
        }
    }

    /// Marks a call in progress until the guard is dropped.
    pub(crate) fn begin_call(self: &Arc<Self>) -> CallGuard {
        self.active.send_modify(|n| *n += 1);
        CallGuard {
            shared: Arc::clone(self),
            channel_id: None,
            hangup: Arc::new(Notify::new()),
        }
    }

    /// How many calls are in progress.
    pub(crate) fn active_calls(&self) -> usize {
        *self.active.borrow()
    }

    /// Resolves once no call is in progress.
    pub(crate) async fn idle(&self) {
        let mut rx = self.active.subscribe();
        // The sender lives as long as `self`: the wait cannot fail.
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

/// Event delivery to one session; dropping it stops the delivery.
pub(crate) struct Subscription {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        lock(&self.shared.subscribers).retain(|s| s.id != self.id);
    }
}

/// A call in progress.
pub(crate) struct CallGuard {
    shared: Arc<Shared>,
    channel_id: Option<String>,
    /// Notified by [`Shared::request_hangup`].
    pub(crate) hangup: Arc<Notify>,
}

impl CallGuard {
    /// Reserves `id` as the `Uniqueid` of the call's first channel until the call ends;
    /// `false` when a live call already uses it (Asterisk refuses a second channel with the
    /// same `Uniqueid`).
    pub(crate) fn claim_channel_id(&mut self, id: &str) -> bool {
        let mut live = lock(&self.shared.live_channel_ids);
        if live.contains_key(id) {
            return false;
        }
        live.insert(id.to_owned(), Arc::clone(&self.hangup));
        drop(live);
        self.channel_id = Some(id.to_owned());
        true
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if let Some(id) = &self.channel_id {
            lock(&self.shared.live_channel_ids).remove(id);
        }
        self.shared.active.send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_masks() {
        assert!(EventMask::parse("").allows("call,all"));
        assert!(EventMask::parse("on").allows("system,all"));
        assert!(!EventMask::parse("off").allows("call,all"));
        let calls = EventMask::parse("call, dialplan");
        assert!(calls.allows("call,all") && calls.allows("dialplan,all"));
        assert!(!calls.allows("system,all") && !calls.allows("reporting,all"));
    }

    #[test]
    fn ids_look_like_asterisks() {
        let ids = Ids::new();
        assert_eq!(ids.channel_name("1001"), "PJSIP/1001-00000000");
        assert_eq!(ids.channel_name("carrier"), "PJSIP/carrier-00000001");
        ids.skip_uniqueid();
        let uid = ids.uniqueid();
        assert!(uid.ends_with(".1") && uid.len() > 10, "{uid}");
        let uuid = ids.uuid();
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4");
        assert!("89ab".contains(&uuid[19..20]), "{uuid}");
        assert_ne!(uuid, ids.uuid());
    }

    #[test]
    fn a_channel_id_is_claimed_while_its_call_lives() {
        let shared = Arc::new(Shared::new(Config::default(), PathBuf::from(".")));
        let mut first = shared.begin_call();
        assert!(first.claim_channel_id("c2d-1"));
        let mut second = shared.begin_call();
        assert!(!second.claim_channel_id("c2d-1"));
        assert_eq!(shared.active_calls(), 2);
        drop(first);
        assert!(!shared.request_hangup("c2d-2"));
        assert!(second.claim_channel_id("c2d-1"));
        assert!(shared.request_hangup("c2d-1"));
        drop(second);
        assert!(!shared.request_hangup("c2d-1"));
        assert_eq!(shared.active_calls(), 0);
    }
}
