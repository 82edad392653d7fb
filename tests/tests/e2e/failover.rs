//! Everything at once (issue 15 item 4): two hosts with the same configuration behind a
//! (simulated) load balancer, Redis Sentinel (1 master, 1 replica, 3 sentinels) and two
//! PBX simulators as `[[pbx]]` east and west. During one run of calls spread over both
//! hosts and both PBXes' agents, the Redis master is SIGKILLed (the sentinels fail over);
//! while no master is reachable and its spool holds notifications, one host is SIGKILLed;
//! then west is stopped and started again on its address. A real consumer on the master at
//! the end reads every call's notification list and the shared list: every create answered
//! `202` was dialled once and notified once per event, in order, to a terminal event — the
//! answered call's whole sequence, or for a call in flight on west when it stopped
//! `failed`/`pbx_error` ("Several PBXes": "Calls in flight on it end `failed`/`pbx_error`")
//! — including the killed host's calls and spooled notifications, which the other host
//! pushes (README: "a host that dies mid-call loses none of the call's remaining events
//! while another host is alive"); every create answered `503` left nothing behind.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::support::sentinel::{Consumer, Deployment};
use crate::support::{call_body, eventually, two_pbxes, Host, Sim, ANSWERED};

/// Wall-clock seconds per recorded second: an answered call lasts about 2 s, so each
/// disruption finds calls in every phase.
const TIME_SCALE: &str = "0.2";

/// The pause between two creates (pacing only).
const PACE: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pbx {
    East,
    West,
}

/// A create answered `202`.
struct Created {
    contact_ref: String,
    pbx: Pbx,
    /// Which host (0 or 1) accepted it.
    host: usize,
    /// Created on west before its restart: it may have been in flight when west stopped.
    west_outage: bool,
    /// The request and its `202` body.
    body: String,
    answer: serde_json::Value,
}

/// The deployment and what the run did to it.
struct Run {
    redis: Deployment,
    east: Sim,
    west: Sim,
    /// West before its restart (stopped; its log still counts Originates).
    old_west: Option<Sim>,
    hosts: [Option<Host>; 2],
    created: Vec<Created>,
    refused: Vec<String>,
    /// Creates so far (the next `contact_ref`'s number).
    n: usize,
    recordings: tempfile::TempDir,
}

impl Run {
    fn start() -> Self {
        let redis = Deployment::start();
        let recordings = tempfile::tempdir().expect("tempdir");
        let east = Sim::start_scaled(recordings.path(), "127.0.0.1:0", None, TIME_SCALE);
        let west = Sim::start_scaled(recordings.path(), "127.0.0.1:0", None, TIME_SCALE);
        let file = recordings.path().join("click2dial.toml");
        std::fs::write(&file, two_pbxes(&east.address, &west.address, "")).expect("config");
        let vars = redis.host_vars();
        let vars = vars.each_ref().map(|(k, v)| (*k, v.as_str()));
        let hosts =
            [0, 1].map(|_| Some(Host::start_on_config(&vars, &file, recordings.path(), &[])));
        let run = Self {
            redis,
            east,
            west,
            old_west: None,
            hosts,
            created: Vec::new(),
            refused: Vec::new(),
            n: 0,
            recordings,
        };
        for host in run.hosts.iter().flatten() {
            let ready = || host.get("/readyz").json()["status"] == "ready";
            assert!(
                eventually(Duration::from_secs(20), ready),
                "{}",
                host.get("/readyz").json()
            );
        }
        run
    }

    fn survivor(&self) -> &Host {
        self.hosts[1].as_ref().expect("host 1 is never killed")
    }

    /// One create for an agent of `pbx`, through the hosts a load balancer would pick: the
    /// next alive host in turn, the other alive one when it answers `503`. Returns the
    /// final status (`202` or `503`).
    fn create(&mut self, pbx: Pbx) -> u16 {
        let i = self.n;
        self.n += 1;
        let contact_ref = format!("fo-{i}");
        let agent = match pbx {
            Pbx::East => 1001 + i % 9,
            Pbx::West => 2001 + i % 9,
        };
        let body = call_body(&agent.to_string(), "0820001234", &contact_ref);
        for turn in 0..2 {
            let index = (i + turn) % 2;
            let Some(host) = self.hosts[index].as_ref() else {
                continue;
            };
            let (status, answer) = host.create_call(&body);
            match status {
                202 => {
                    let west_outage = pbx == Pbx::West && self.old_west.is_none();
                    self.created.push(Created {
                        contact_ref,
                        pbx,
                        host: index,
                        west_outage,
                        body,
                        answer,
                    });
                    std::thread::sleep(PACE);
                    return 202;
                }
                503 => {}
                _ => panic!("{contact_ref}: {status} {answer}"),
            }
        }
        self.refused.push(contact_ref);
        std::thread::sleep(PACE);
        503
    }

    /// `count` creates, east and west in turn.
    fn calls(&mut self, count: usize) {
        for k in 0..count {
            self.create(if k % 2 == 0 { Pbx::East } else { Pbx::West });
        }
    }

    /// Creates (east and west in turn) until one for `pbx` is accepted.
    fn until_accepted(&mut self, pbx: Pbx, within: Duration, what: &str) {
        let deadline = Instant::now() + within;
        loop {
            assert!(Instant::now() < deadline, "{what}: no create accepted");
            let other = if pbx == Pbx::East {
                Pbx::West
            } else {
                Pbx::East
            };
            if self.create(pbx) == 202 {
                return;
            }
            self.create(other);
        }
    }

    /// `/readyz` of the surviving host says `pbx` is `word`.
    fn pbx_is(&self, pbx: &str, word: &str) -> bool {
        self.survivor().get("/readyz").json()["checks"]["pbx"][pbx] == word
    }

    /// How many Originates for `contact_ref` the simulators (west before and after its
    /// restart too) accepted.
    fn originates_of(&self, contact_ref: &str) -> usize {
        [Some(&self.east), Some(&self.west), self.old_west.as_ref()]
            .into_iter()
            .flatten()
            .map(|sim| sim.originates_of(contact_ref))
            .sum()
    }
}

/// What the consumer found.
#[derive(Default, Debug)]
struct Count {
    notified: usize,
    pbx_errors: usize,
    lost: Vec<String>,
    duplicated: usize,
    /// What was left after a terminal event, per call.
    duplicates: Vec<String>,
}

fn key(contact_ref: &str) -> String {
    format!("teleforge:notifications:c2d:{contact_ref}")
}

/// Whether a call's notifications so far end it: the last answered event, or `failed`
/// (only `pbx_error` fails a call of this run).
fn ended(got: &[serde_json::Value]) -> bool {
    got.last()
        .is_some_and(|n| n["event"] == "recording_ready" || n["event"] == "failed")
}

/// Whether `got` is a whole, ordered, once-each sequence for `call`: the answered call's,
/// or — in flight on west when it stopped — a beginning of it then `failed`/`pbx_error`, or
/// everything up to `hangup` (west lost between the two hangups, its recording not found
/// whole: no `recording_ready`).
fn complete(call: &Created, got: &[serde_json::Value]) -> bool {
    let names: Vec<&str> = got
        .iter()
        .map(|n| n["event"].as_str().unwrap_or("?"))
        .collect();
    if names == ANSWERED {
        return true;
    }
    if !call.west_outage {
        return false;
    }
    let Some((last, before)) = names.split_last() else {
        return false;
    };
    let cut = before.len();
    let begins = cut < ANSWERED.len() && before == &ANSWERED[..cut];
    (*last == "failed" && got[cut]["cause"] == "pbx_error" && begins && cut <= 5)
        || (names == ANSWERED[..6])
}

/// Milliseconds since the Unix epoch of a notification's `timestamp`
/// (`2026-11-27T07:26:24.123Z`).
fn unix_ms(timestamp: &str) -> Option<u64> {
    let (date, time) = timestamp.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, ms) = time.split_once('.')?;
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, min, sec) = (t.next()??, t.next()??, t.next()??);
    // Days from the civil date (H. Hinnant's `days_from_civil`).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + min * 60 + sec;
    u64::try_from(secs * 1000 + ms.parse::<i64>().ok()?).ok()
}

/// The wall clock now, as [`unix_ms`] reads a notification's.
fn unix_ms_now() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970");
    u64::try_from(since.as_millis()).expect("ms fit")
}

#[test]
fn two_hosts_a_redis_failover_and_a_pbx_restart_lose_nothing() {
    let started = Instant::now();
    let mut run = Run::start();
    let setup = started.elapsed();

    // Both hosts, both PBXes.
    run.calls(10);

    // The Redis master killed with calls in flight: creates answer 503 on both hosts, and
    // each host spools the notifications of the calls it follows (all of them).
    let killed = Instant::now();
    run.redis.master.kill();
    while run.create(Pbx::East) == 202 {
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "no 503 without a master"
        );
    }
    // One host killed while its spool holds notifications: the other pushes them.
    let spooled = {
        let a = run.hosts[0].as_ref().expect("host 0");
        let mut depth = 0;
        let spooling = || {
            depth = a.spool_depth();
            depth > 0
        };
        assert!(
            eventually(Duration::from_secs(10), spooling),
            "host 0 spools"
        );
        depth
    };
    let host_killed_at = unix_ms_now();
    run.hosts[0] = None;
    run.until_accepted(Pbx::East, Duration::from_secs(30), "after the failover");
    let failover = killed.elapsed();
    let refused_without_master = run.refused.len();
    run.redis.replica_promoted();
    run.calls(6);

    // West stopped with calls in flight, then started again on its address.
    let west_address = run.west.address.clone();
    run.west.stop();
    assert!(
        eventually(Duration::from_secs(10), || run.pbx_is("west", "down")),
        "{}",
        run.survivor().get("/readyz").json()
    );
    run.calls(4);
    let fresh = Sim::start_scaled(run.recordings.path(), &west_address, None, TIME_SCALE);
    run.old_west = Some(std::mem::replace(&mut run.west, fresh));
    run.until_accepted(Pbx::West, Duration::from_secs(15), "west back");
    run.calls(6);

    // The consumer, on the master at the end, once the survivor has pushed everything.
    let host = run.survivor();
    assert!(
        eventually(Duration::from_secs(30), || host.spool_depth() == 0),
        "the spool empties"
    );
    let master = &run.redis.replica;
    assert!(
        master.replication_says("role:master"),
        "the replica is the master"
    );
    let mut conn = master.connection().expect("master");
    let mut got: HashMap<&str, Vec<serde_json::Value>> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for call in &run.created {
            let list = got.entry(&call.contact_ref).or_default();
            while !ended(list) {
                let popped: Option<String> = redis::cmd("RPOP")
                    .arg(key(&call.contact_ref))
                    .query(&mut conn)
                    .expect("RPOP");
                let Some(text) = popped else { break };
                list.push(serde_json::from_str(&text).expect("notification JSON"));
            }
        }
        if got.values().all(|l| ended(l)) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    let mut count = Count::default();
    for call in &run.created {
        let list = &got[call.contact_ref.as_str()];
        // Anything left after the terminal event is a duplicate (or worse).
        let rest = Consumer(master).len(&key(&call.contact_ref));
        count.duplicated += rest;
        if rest > 0 {
            let left: Vec<String> = redis::cmd("LRANGE")
                .arg(key(&call.contact_ref))
                .arg(0)
                .arg(-1)
                .query(&mut conn)
                .expect("LRANGE");
            count.duplicates.push(format!(
                "{}: {:?} then {left:?}",
                call.contact_ref,
                crate::support::events(list)
            ));
        }
        let mut names: Vec<&str> = list.iter().filter_map(|n| n["event"].as_str()).collect();
        names.sort_unstable();
        let total = names.len();
        names.dedup();
        count.duplicated += total - names.len();
        count.notified += list.len();
        if list.last().is_some_and(|n| n["cause"] == "pbx_error") {
            count.pbx_errors += 1;
        }
        if !complete(call, list) {
            count.lost.push(format!(
                "{} ({:?}, host {}): {:?}",
                call.contact_ref,
                call.pbx,
                call.host,
                crate::support::events(list)
            ));
        }
        assert_eq!(
            run.originates_of(&call.contact_ref),
            1,
            "{} dialled once",
            call.contact_ref
        );
    }

    // A client that repeats any accepted create at the end (its answer lost, say) gets the
    // first answer back and nothing is dialled again, whichever host and master took it.
    for call in &run.created {
        let (status, answer) = host.create_call(&call.body);
        assert_eq!(
            (status, &answer),
            (202, &call.answer),
            "{}: a repeat",
            call.contact_ref
        );
        assert_eq!(
            run.originates_of(&call.contact_ref),
            1,
            "{}",
            call.contact_ref
        );
    }

    // The shared list: each call's notifications once, in the same order; none of a
    // refused create's, nothing else.
    let shared: Vec<String> = redis::cmd("LRANGE")
        .arg("enigma:notifications:c2d")
        .arg(0)
        .arg(-1)
        .query(&mut conn)
        .expect("LRANGE");
    let mut by_call: HashMap<String, Vec<String>> = HashMap::new();
    for text in shared.iter().rev() {
        let n: serde_json::Value = serde_json::from_str(text).expect("notification JSON");
        let contact_ref = n["contact_ref"].as_str().unwrap_or("?").to_string();
        let event = n["event"].as_str().unwrap_or("?").to_string();
        by_call.entry(contact_ref).or_default().push(event);
    }
    for call in &run.created {
        let shared = by_call.remove(&call.contact_ref).unwrap_or_default();
        let own = crate::support::events(&got[call.contact_ref.as_str()]);
        count.duplicated += shared.len().saturating_sub(own.len());
        assert!(
            shared.len() > own.len() || shared == own,
            "{}: the shared list has {shared:?}, the call's list {own:?}",
            call.contact_ref
        );
    }
    assert!(
        by_call.is_empty(),
        "notifications of no accepted call: {by_call:?}"
    );

    // A refused create left nothing: no notification, nothing dialled.
    for contact_ref in &run.refused {
        assert_eq!(Consumer(master).len(&key(contact_ref)), 0, "{contact_ref}");
        assert_eq!(
            run.originates_of(contact_ref),
            0,
            "{contact_ref} not dialled"
        );
    }

    let killed_hosts = run.created.iter().filter(|c| c.host == 0).count();
    // Its calls whose end (as the PBX told it) came after it died: the other host ended them.
    let outlived = run
        .created
        .iter()
        .filter(|c| c.host == 0)
        .filter(|c| {
            got[c.contact_ref.as_str()]
                .last()
                .and_then(|n| n["timestamp"].as_str())
                .and_then(unix_ms)
                .is_some_and(|ended| ended > host_killed_at)
        })
        .count();
    eprintln!(
        "failover: created {} ({killed_hosts} by the killed host, {outlived} of them ended \
         after it, {spooled} notifications in its spool when killed), 503 {} ({refused_without_master} without a master, the \
         others west down), notified {} ({} calls ended pbx_error), lost {}, duplicated {}; \
         kill of the master to the next create accepted {failover:?}; setup {setup:?}, all \
         {:?}",
        run.created.len(),
        run.refused.len(),
        count.notified,
        count.pbx_errors,
        count.lost.len(),
        count.duplicated,
        started.elapsed()
    );
    assert!(
        outlived > 0,
        "none of the killed host's calls was still running when it died"
    );
    assert!(count.lost.is_empty(), "lost: {:#?}", count.lost);
    assert_eq!(count.duplicated, 0, "duplicated: {:#?}", count.duplicates);
    let ready = || host.get("/readyz").json()["status"] == "ready";
    assert!(
        eventually(Duration::from_secs(10), ready),
        "ready at the end"
    );
}
