//! The calls' notifications as the event streams read them (`GET
//! /click2dial/calls/{contact_ref}/events`, `crate::http::events`: Server-Sent Events for the
//! agent console and for integrators who would rather not poll Redis).
//!
//! The stream is fed where notifications are sent: [`crate::notify::Notifier::send`] publishes
//! each one to this [`Hub`] as it hands it to the Redis pusher. Every host follows every call
//! it saw start and computes the same notifications with the same sequence numbers, so every
//! host streams every such call, whichever host's push reached Redis first. Each message is
//! `event: <event>`, `id: <sequence>` (the per-call sequence number behind the push's
//! exactly-once mark) and `data: <notification JSON>`, the bytes this host hands to Redis.
//! (On another host than the one whose push won, the same notification's `timestamp` is that
//! host's reading of the same AMI event: it may differ by a few milliseconds.)
//!
//! A subscriber that arrives late first gets the call's earlier events from a small history
//! kept here per call, then the live ones. The history is not read back from the Redis list:
//! that list is a queue its consumer pops (`BRPOP`), so what is left in it says nothing
//! reliable about what was sent. The history snapshot and the live subscription are taken
//! under one lock (the lock [`Hub::publish`] holds), so nothing falls between them and
//! nothing is repeated; sequence numbers are checked anyway, and a client that reconnects
//! with `Last-Event-ID` gets only what came after that id.
//!
//! The stream closes when the call is over as its tracker sees it (its last notification
//! sent — `recording_ready` for a recorded call — and every channel gone), which the AMI
//! client reports with [`crate::notify::Notifier::call_over`]; a late subscriber to a call
//! that is over gets the history and the end at once. It also closes when the host shuts
//! down (the client reconnects elsewhere, with `Last-Event-ID`).
//!
//! Everything is bounded, and the notifier never waits for a subscriber: at most
//! [`MAX_EVENTS_PER_CALL`] events per call, [`MAX_CALLS`] calls remembered (a call that is
//! over is forgotten after [`RETAIN_ENDED`], or earlier when room is needed), at most
//! [`MAX_STREAMS`] open streams and [`MAX_STREAMS_PER_KEY`] per key (`503` beyond), and each stream reads a per-call broadcast
//! channel of [`CHANNEL_CAPACITY`]: a subscriber that falls that far behind is dropped.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::response::sse::Event;
use futures_util::stream::{self, Stream};
use tokio::sync::{broadcast, watch, OwnedSemaphorePermit, Semaphore};

/// Events kept per call (a call produces at most eight).
pub const MAX_EVENTS_PER_CALL: usize = 32;
/// Calls remembered, live or over.
pub const MAX_CALLS: usize = 4096;
/// How long a call that is over stays available to late subscribers.
pub const RETAIN_ENDED: Duration = Duration::from_secs(15 * 60);
/// Open event streams, all calls together.
pub const MAX_STREAMS: usize = 1024;
/// Open event streams of one key, so that one key cannot hold all of them.
pub const MAX_STREAMS_PER_KEY: usize = 128;
/// Messages a stream may fall behind its call before it is dropped.
pub const CHANNEL_CAPACITY: usize = 64;
/// Interval of the keep-alive comments.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// One notification as streamed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// Per-call sequence number, from 1.
    pub sequence: u32,
    /// The event name (`queued`, …).
    pub event: &'static str,
    /// The notification JSON.
    pub json: Arc<str>,
}

#[derive(Clone, Debug)]
enum Message {
    Event(Published),
    End,
}

/// What is known of one call.
struct CallLog {
    /// Tells this call from an earlier one under the same reference in the queues below.
    id: u64,
    events: Vec<Published>,
    ended_at: Option<Instant>,
    /// Made when the first subscriber comes: most calls are never watched.
    tx: Option<broadcast::Sender<Message>>,
}

/// The calls remembered, with their start and end order, so that forgetting one costs
/// O(1) however many are remembered (it happens on the AMI task, once per new call at full
/// capacity). Queue entries of calls already forgotten or replaced are skipped when met,
/// and the queues are compacted when such entries pile up behind a long call.
#[derive(Default)]
struct Calls {
    logs: HashMap<String, CallLog>,
    /// Calls in the order they started.
    started: VecDeque<(u64, String)>,
    /// Calls that are over, in the order they ended.
    ended: VecDeque<(u64, String, Instant)>,
    next_id: u64,
}

impl Calls {
    fn is_current(&self, id: u64, contact_ref: &str) -> bool {
        self.logs.get(contact_ref).is_some_and(|log| log.id == id)
    }

    /// Starts a call's log (replacing an earlier call under the same reference).
    fn start(&mut self, contact_ref: &str) {
        if self.logs.remove(contact_ref).is_none() {
            self.make_room();
        }
        let id = self.next_id;
        self.next_id += 1;
        self.started.push_back((id, contact_ref.to_string()));
        self.logs.insert(
            contact_ref.to_string(),
            CallLog {
                id,
                events: Vec::new(),
                ended_at: None,
                tx: None,
            },
        );
    }

    /// Marks a call over; returns its channel, if anyone subscribed.
    fn end(&mut self, contact_ref: &str, now: Instant) -> Option<broadcast::Sender<Message>> {
        let log = self.logs.get_mut(contact_ref)?;
        if log.ended_at.is_some() {
            return None;
        }
        log.ended_at = Some(now);
        let (id, tx) = (log.id, log.tx.clone());
        self.ended.push_back((id, contact_ref.to_string(), now));
        tx
    }

    /// Forgets calls over for longer than [`RETAIN_ENDED`].
    fn sweep(&mut self, now: Instant) {
        while let Some((id, contact_ref, at)) = self.ended.pop_front() {
            if now.duration_since(at) < RETAIN_ENDED {
                self.ended.push_front((id, contact_ref, at));
                break;
            }
            if self.is_current(id, &contact_ref) {
                self.logs.remove(&contact_ref);
            }
        }
        self.compact();
    }

    /// Makes room for one more call: the call over longest goes first, else the oldest.
    fn make_room(&mut self) {
        while self.logs.len() >= MAX_CALLS {
            let victim = std::iter::from_fn(|| self.ended.pop_front().map(|(id, k, _)| (id, k)))
                .chain(std::iter::from_fn(|| self.started.pop_front()))
                .find(|(id, k)| self.logs.get(k).is_some_and(|log| log.id == *id));
            match victim {
                Some((_, contact_ref)) => {
                    self.logs.remove(&contact_ref);
                }
                None => return,
            }
        }
    }

    /// Drops queue entries of forgotten calls: those in front at once, the rest when they
    /// outnumber the calls remembered.
    fn compact(&mut self) {
        while let Some((id, contact_ref)) = self.started.pop_front() {
            if self.is_current(id, &contact_ref) {
                self.started.push_front((id, contact_ref));
                break;
            }
        }
        let logs = &self.logs;
        let current = |id: u64, k: &str| logs.get(k).is_some_and(|log| log.id == id);
        if self.started.len() > 2 * MAX_CALLS {
            self.started.retain(|(id, k)| current(*id, k));
        }
        if self.ended.len() > 2 * MAX_CALLS {
            self.ended.retain(|(id, k, _)| current(*id, k));
        }
    }
}

/// Why [`Hub::follow`] opened no stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Too many streams open, or the host is shutting down.
    Busy,
    /// No call of this key with this contact reference is known here.
    UnknownCall,
}

/// A late subscriber's start: the events so far, whether the call is over, and the live
/// channel from that point on.
struct Subscription {
    backlog: VecDeque<Published>,
    ended: bool,
    rx: broadcast::Receiver<Message>,
}

/// Notifications of the calls this host follows, for their event streams; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    calls: Arc<Mutex<Calls>>,
    streams: Arc<Semaphore>,
    per_key: Arc<Mutex<HashMap<String, usize>>>,
    closing: watch::Sender<bool>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hub")
    }
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    /// An empty hub.
    pub fn new() -> Self {
        Self {
            calls: Arc::default(),
            streams: Arc::new(Semaphore::new(MAX_STREAMS)),
            per_key: Arc::default(),
            closing: watch::channel(false).0,
        }
    }

    /// Records a call's notification and hands it to the call's subscribers; never waits.
    /// Sequence 1 starts a new call under this contact reference.
    pub fn publish(
        &self,
        owner: &str,
        contact_ref: &str,
        sequence: u32,
        event: &'static str,
        json: &str,
    ) {
        let key = call_key(owner, contact_ref);
        let Ok(mut calls) = self.calls.lock() else {
            return;
        };
        calls.sweep(Instant::now());
        if sequence == 1 || !calls.logs.contains_key(&key) {
            calls.start(&key);
        }
        let Some(log) = calls.logs.get_mut(&key) else {
            return;
        };
        if log.events.len() >= MAX_EVENTS_PER_CALL {
            tracing::warn!(contact_ref, sequence, "event history full: not kept");
            return;
        }
        let published = Published {
            sequence,
            event,
            json: Arc::from(json),
        };
        if let Some(tx) = &log.tx {
            // No receiver left is not an error: nobody is watching this call any more.
            let _ = tx.send(Message::Event(published.clone()));
        }
        log.events.push(published);
    }

    /// The call is over: its streams close after its last event.
    pub fn end(&self, owner: &str, contact_ref: &str) {
        let Ok(mut calls) = self.calls.lock() else {
            return;
        };
        if let Some(tx) = calls.end(&call_key(owner, contact_ref), Instant::now()) {
            let _ = tx.send(Message::End);
        }
    }

    /// A place for one more of `owner`'s streams, unless it has [`MAX_STREAMS_PER_KEY`].
    fn key_slot(&self, owner: &str) -> Option<KeySlot> {
        let mut map = self.per_key.lock().ok()?;
        let open = map.entry(owner.to_string()).or_insert(0);
        if *open >= MAX_STREAMS_PER_KEY {
            return None;
        }
        *open += 1;
        Some(KeySlot {
            per_key: self.per_key.clone(),
            owner: owner.to_string(),
        })
    }

    /// Closes every stream (shutdown); new ones are refused.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Opens a stream of `owner`'s call `contact_ref` that starts after sequence
    /// `resume_after`: [`Refused::Busy`] while closing or at [`MAX_STREAMS`] (or the key's
    /// [`MAX_STREAMS_PER_KEY`]), [`Refused::UnknownCall`] for a call not known here
    /// (another key's call is not known either).
    pub fn follow(
        &self,
        owner: &str,
        contact_ref: &str,
        resume_after: u32,
    ) -> Result<Follow, Refused> {
        if *self.closing.borrow() {
            return Err(Refused::Busy);
        }
        let Some(key_slot) = self.key_slot(owner) else {
            return Err(Refused::Busy);
        };
        let Ok(permit) = self.streams.clone().try_acquire_owned() else {
            return Err(Refused::Busy);
        };
        let Some(subscription) = self.subscribe(owner, contact_ref) else {
            return Err(Refused::UnknownCall);
        };
        Ok(Follow {
            backlog: subscription.backlog,
            ended: subscription.ended,
            rx: subscription.rx,
            last: resume_after,
            closing: self.closing.subscribe(),
            _permit: (permit, Some(key_slot)),
        })
    }

    /// The events of a call so far.
    pub fn history(&self, owner: &str, contact_ref: &str) -> Option<Vec<Published>> {
        let calls = self.calls.lock().ok()?;
        calls
            .logs
            .get(&call_key(owner, contact_ref))
            .map(|log| log.events.clone())
    }

    fn subscribe(&self, owner: &str, contact_ref: &str) -> Option<Subscription> {
        let mut calls = self.calls.lock().ok()?;
        let log = calls.logs.get_mut(&call_key(owner, contact_ref))?;
        let tx = log
            .tx
            .get_or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0);
        Some(Subscription {
            rx: tx.subscribe(),
            backlog: log.events.iter().cloned().collect(),
            ended: log.ended_at.is_some(),
        })
    }
}

/// The hub's name of a call: its owner's key id and its contact reference (neither holds
/// a newline), so two keys' calls under the same `contact_ref` are two calls.
fn call_key(owner: &str, contact_ref: &str) -> String {
    [owner, "\n", contact_ref].concat()
}

/// One stream's state: what is still to be sent from the history, then the live channel.
pub struct Follow {
    backlog: VecDeque<Published>,
    ended: bool,
    rx: broadcast::Receiver<Message>,
    /// The last sequence number sent (or the client's `Last-Event-ID`).
    last: u32,
    closing: watch::Receiver<bool>,
    _permit: (OwnedSemaphorePermit, Option<KeySlot>),
}

/// One of a key's open streams, given back when the stream ends.
struct KeySlot {
    per_key: Arc<Mutex<HashMap<String, usize>>>,
    owner: String,
}

impl Drop for KeySlot {
    fn drop(&mut self) {
        if let Ok(mut map) = self.per_key.lock() {
            if let Some(open) = map.get_mut(&self.owner) {
                *open -= 1;
                if *open == 0 {
                    map.remove(&self.owner);
                }
            }
        }
    }
}

impl Follow {
    /// The stream's events, the history first; it ends with the call, or when the hub
    /// closes.
    pub fn into_stream(self) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
        stream::unfold(self, |mut follow| async move {
            let event = follow.next().await?;
            Some((Ok(event), follow))
        })
    }

    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(published) = self.backlog.pop_front() {
                if published.sequence <= self.last {
                    continue;
                }
                self.last = published.sequence;
                return Some(
                    Event::default()
                        .event(published.event)
                        .id(published.sequence.to_string())
                        .data(&*published.json),
                );
            }
            if self.ended || *self.closing.borrow() {
                return None;
            }
            tokio::select! {
                _ = self.closing.changed() => return None,
                message = self.rx.recv() => match message {
                    Ok(Message::Event(published)) => self.backlog.push_back(published),
                    Ok(Message::End) => self.ended = true,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "event stream fell behind: closed");
                        return None;
                    }
                    // The call was forgotten (room was needed).
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(follow: &Follow) -> Vec<u32> {
        follow.backlog.iter().map(|p| p.sequence).collect()
    }

    fn follow(hub: &Hub, contact_ref: &str) -> Follow {
        let s = hub.subscribe("k", contact_ref).expect("known call");
        Follow {
            backlog: s.backlog,
            ended: s.ended,
            rx: s.rx,
            last: 0,
            closing: hub.closing.subscribe(),
            _permit: (
                hub.streams.clone().try_acquire_owned().expect("permit"),
                None,
            ),
        }
    }

    async fn drain(mut follow: Follow) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(e) = tokio::time::timeout(Duration::from_secs(1), follow.next())
            .await
            .expect("ends")
        {
            out.push(format!("{e:?}"));
        }
        out
    }

    #[tokio::test]
    async fn late_subscribers_get_history_then_live_events_then_the_end() {
        let hub = Hub::new();
        assert!(hub.subscribe("k", "crm-1").is_none());
        hub.publish("k", "crm-1", 1, "queued", r#"{"event":"queued"}"#);
        hub.publish(
            "k",
            "crm-1",
            2,
            "agent_ringing",
            r#"{"event":"agent_ringing"}"#,
        );
        let late = follow(&hub, "crm-1");
        assert_eq!(events(&late), [1, 2]);
        hub.publish("k", "crm-1", 3, "failed", r#"{"event":"failed"}"#);
        hub.end("k", "crm-1");
        let got = drain(late).await;
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[2].contains("failed"), "{got:?}");
        // After the end: everything at once, then the end.
        assert_eq!(drain(follow(&hub, "crm-1")).await.len(), 3);
        // A new call under the same reference starts over.
        hub.publish("k", "crm-1", 1, "queued", r#"{"event":"queued"}"#);
        let again = follow(&hub, "crm-1");
        assert_eq!(events(&again), [1]);
        assert!(!again.ended);
    }

    #[tokio::test]
    async fn closing_ends_streams() {
        let hub = Hub::new();
        hub.publish("k", "crm-2", 1, "queued", "{}");
        let f = follow(&hub, "crm-2");
        hub.close();
        assert_eq!(drain(f).await.len(), 1);
    }

    #[test]
    fn memory_is_bounded() {
        let hub = Hub::new();
        for i in 0..MAX_CALLS + 10 {
            hub.publish("k", &format!("c{i}"), 1, "queued", "{}");
            if i == 5 {
                hub.end("k", "c5");
            }
        }
        let calls = hub.calls.lock().expect("lock");
        assert_eq!(calls.logs.len(), MAX_CALLS);
        assert!(
            !calls.logs.contains_key(&call_key("k", "c5")),
            "the call over goes first"
        );
        assert!(calls
            .logs
            .contains_key(&call_key("k", &format!("c{}", MAX_CALLS + 9))));
        drop(calls);
        for s in 1..=(MAX_EVENTS_PER_CALL as u32 + 5) {
            hub.publish("k", "c0x", s, "queued", "{}");
        }
        assert_eq!(
            hub.history("k", "c0x").map(|h| h.len()),
            Some(MAX_EVENTS_PER_CALL)
        );
    }

    #[test]
    fn churn_keeps_live_calls_and_bounded_queues() {
        let hub = Hub::new();
        hub.publish("k", "long", 1, "queued", "{}");
        for i in 0..5 * MAX_CALLS {
            let contact_ref = format!("short-{i}");
            hub.publish("k", &contact_ref, 1, "queued", "{}");
            hub.end("k", &contact_ref);
        }
        let calls = hub.calls.lock().expect("lock");
        assert_eq!(calls.logs.len(), MAX_CALLS);
        assert!(
            calls.logs.contains_key(&call_key("k", "long")),
            "calls over go first"
        );
        assert!(
            calls.started.len() <= 2 * MAX_CALLS + 1,
            "{}",
            calls.started.len()
        );
        assert!(
            calls.ended.len() <= 2 * MAX_CALLS + 1,
            "{}",
            calls.ended.len()
        );
        let newest = format!("short-{}", 5 * MAX_CALLS - 1);
        assert!(calls.logs.contains_key(&call_key("k", &newest)));
    }
}
