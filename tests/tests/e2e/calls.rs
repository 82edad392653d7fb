//! End to end: a real `redis-server`, the PBX simulator speaking recorded Asterisk AMI, and
//! the `click2dial-host` binary, all over loopback sockets.

use std::time::Duration;

use crate::support::{self, calls_and_events, events, world, Sim, ANSWERED, ANSWERED_UNSEEN};
use click2dial_core::reference::ChannelId;

fn body(agent: &str, callee: &str, contact_ref: &str) -> String {
    format!(
        r#"{{"agent":"{agent}","callee":"{callee}","outbound_id":"27820001234","contact_ref":"{contact_ref}"}}"#
    )
}

#[test]
fn answered_call_reaches_redis_in_order_with_its_recording() {
    let w = world(&[]);
    let (status, answer) = w
        .host
        .create_call_when_ready(&body("1001", "0820001234", "crm-42"));
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["status"], "queued");
    assert_eq!(answer["contact_ref"], "crm-42");
    assert_eq!(
        answer["notifications_key"],
        "teleforge:notifications:c2d:crm-42"
    );
    let recording_ref = answer["recording_ref"]
        .as_str()
        .expect("recording_ref")
        .to_string();
    assert_eq!(recording_ref.len(), 26);
    assert_eq!(
        answer["recording_url"],
        format!("http://127.0.0.1:1/click2dial/recordings/{recording_ref}")
    );
    assert_eq!(answer["warnings"], serde_json::json!([]));

    let key = "teleforge:notifications:c2d:crm-42";
    let got = w
        .redis
        .follow(key, &["recording_ready", "failed"], Duration::from_secs(20));
    assert_eq!(events(&got), ANSWERED);
    for n in &got {
        assert_eq!(n["contact_ref"], "crm-42");
        assert_eq!(n["agent"], "1001");
        assert_eq!(n["callee"], "+27820001234");
        assert_eq!(n["outbound_id"], "27820001234");
        assert_eq!(n["recording_ref"], recording_ref.as_str());
        assert!(n["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
    assert_eq!(got[5]["cause"], "normal_clearing");
    assert_eq!(got[5]["q850"], 16);

    let mut conn = w.redis.connection().expect("redis");
    let ttl: i64 = redis::cmd("TTL").arg(key).query(&mut conn).expect("TTL");
    // Popped empty lists vanish; the legacy list keeps its copy.
    assert!(ttl == -2 || ttl > 0, "per-call list has a TTL ({ttl})");
    let legacy = w.redis.drain("enigma:notifications:c2d");
    let legacy: Vec<_> = legacy
        .into_iter()
        .filter(|n| n["contact_ref"] == "crm-42")
        .collect();
    assert_eq!(
        events(&legacy),
        ANSWERED,
        "the deprecated list gets the same, in order"
    );

    let wav = w.sim.recordings.join(format!("{recording_ref}.wav"));
    let bytes = std::fs::read(&wav).expect("the PBX wrote the recording");
    assert_eq!(&bytes[..4], b"RIFF");
    assert_eq!(&bytes[8..12], b"WAVE");
    // Over, the call left the store's set of calls in flight.
    assert!(
        support::eventually(Duration::from_secs(5), || in_flight(&w).is_empty()),
        "{:?}",
        in_flight(&w)
    );
}

#[test]
fn the_deprecated_list_keeps_only_its_newest_entries() {
    // Nothing pops the shared list once its consumers are gone, and it has no TTL: its
    // length is capped instead (`redis.legacy_max_len`), dropping the oldest.
    let w = world(&[("C2D_REDIS__LEGACY_MAX_LEN", "3")]);
    for i in 0..3 {
        let contact_ref = format!("legacy-{i}");
        let (status, answer) =
            w.host
                .create_call_when_ready(&body("1404", "0820001234", &contact_ref));
        assert_eq!(status, 202, "{answer}");
        // One call after the other: queued, then failed (agent_unavailable).
        let key = format!("teleforge:notifications:c2d:{contact_ref}");
        let got = w.redis.follow(&key, &["failed"], Duration::from_secs(20));
        assert_eq!(events(&got), ["queued", "failed"], "{contact_ref}");
    }
    // Six pushed, the newest three kept, oldest first as BRPOP gives them.
    let kept = calls_and_events(&w.redis.drain("enigma:notifications:c2d"));
    let expected = [
        ("legacy-1", "failed"),
        ("legacy-2", "queued"),
        ("legacy-2", "failed"),
    ]
    .map(|(c, e)| (c.to_string(), e.to_string()));
    assert_eq!(kept, expected);
}

#[test]
fn every_outcome_ends_with_its_cause_even_when_calls_overlap() {
    let w = world(&[]);
    let cases = [
        ("1486", "0820001234", "agent_busy", Some(17)),
        ("1408", "0820001234", "agent_no_answer", Some(19)),
        ("1404", "0820001234", "agent_unavailable", None),
        ("1001", "0820000486", "callee_busy", Some(17)),
        ("1001", "0820000404", "callee_not_found", Some(1)),
        ("1001", "0820000603", "callee_rejected", Some(21)),
        ("1001", "0820000408", "callee_no_answer", None),
        ("1001", "0820000487", "agent_hung_up", Some(16)),
    ];
    // All at once: events of overlapping calls must be told apart by Linkedid.
    for (i, (agent, callee, _, _)) in cases.iter().enumerate() {
        let (status, answer) =
            w.host
                .create_call_when_ready(&body(agent, callee, &format!("case-{i}")));
        assert_eq!(status, 202, "{answer}");
    }
    for (i, (agent, callee, cause, q850)) in cases.iter().enumerate() {
        let key = format!("teleforge:notifications:c2d:case-{i}");
        let got = w
            .redis
            .follow(&key, &["failed", "hangup"], Duration::from_secs(30));
        let last = got
            .last()
            .unwrap_or_else(|| panic!("{agent}/{callee}: no events"));
        assert_eq!(got[0]["event"], "queued", "{agent}/{callee}");
        assert_eq!(
            last["event"],
            "failed",
            "{agent}/{callee}: {:?}",
            events(&got)
        );
        assert_eq!(
            last["cause"],
            *cause,
            "{agent}/{callee}: {:?}",
            events(&got)
        );
        match q850 {
            Some(code) => assert_eq!(last["q850"], *code, "{agent}/{callee}"),
            None => assert!(last.get("q850").is_none(), "{agent}/{callee}: {last}"),
        }
    }
}

#[test]
fn a_repeated_post_returns_the_first_answer_and_dials_once() {
    let w = world(&[]);
    let request = body("1001", "0820001234", "crm-idem");
    let (first_status, first) = w.host.create_call_when_ready(&request);
    assert_eq!(first_status, 202, "{first}");
    let (second_status, second) = w.host.create_call(&request);
    assert_eq!(second_status, 202);
    assert_eq!(first, second, "the same answer, same recording_ref");

    let (conflict, error) = w.host.create_call(&body("1001", "0820009999", "crm-idem"));
    assert_eq!(conflict, 409, "{error}");
    assert_eq!(error["error"]["code"], "contact_ref_conflict");
    // The call's record (stored with the claim) is still the first call's.
    let record_key = format!(
        "teleforge:c2d:call:{}",
        ChannelId::for_attempt(
            "e2e",
            "crm-idem",
            first["recording_ref"].as_str().unwrap_or_default()
        )
    );
    let record: Option<String> = redis::cmd("GET")
        .arg(&record_key)
        .query(&mut w.redis.connection().expect("redis"))
        .expect("GET");
    let record: serde_json::Value =
        serde_json::from_str(&record.expect("the record is stored")).expect("JSON");
    assert_eq!(record["callee_e164"], "+27820001234", "{record}");
    assert_eq!(record["recording_ref"], first["recording_ref"], "{record}");

    let key = "teleforge:notifications:c2d:crm-idem";
    let got = w
        .redis
        .follow(key, &["recording_ready"], Duration::from_secs(20));
    assert_eq!(events(&got), ANSWERED, "one call, one sequence");
    std::thread::sleep(Duration::from_millis(500));
    assert!(w.redis.drain(key).is_empty(), "no second call was dialled");
}

#[test]
fn notifications_wait_while_redis_is_down_and_arrive_in_order_once() {
    let mut w = world(&[]);
    // Callee no answer: about 1.6 s of simulated ringing at the test time scale.
    let (status, answer) = w
        .host
        .create_call_when_ready(&body("1001", "0820000408", "crm-outage"));
    assert_eq!(status, 202, "{answer}");
    w.redis.stop();
    std::thread::sleep(Duration::from_secs(4));
    w.redis.restart();
    let key = "teleforge:notifications:c2d:crm-outage";
    let got = w
        .redis
        .follow(key, &["recording_ready"], Duration::from_secs(20));
    assert_eq!(
        events(&got),
        [
            "queued",
            "agent_ringing",
            "agent_answered",
            "callee_ringing",
            "failed",
            "recording_ready"
        ]
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(w.redis.drain(key).is_empty(), "nothing duplicated");
}

/// A PBX that stops (a restart): creates get `503` meanwhile, and once it is back the host
/// logs in again by itself and lists its channels: the call in flight is not among them
/// (a restarted Asterisk has none), so it ends `failed`/`pbx_error`.
#[test]
fn pbx_outage_fails_calls_in_flight_refuses_new_ones_and_recovers() {
    let mut w = world(&[]);
    let (status, _) = w
        .host
        .create_call_when_ready(&body("1001", "0820000408", "crm-inflight"));
    assert_eq!(status, 202);
    std::thread::sleep(Duration::from_millis(300));
    let address = w.sim.address.clone();
    w.sim.stop();

    let (status, error) = w
        .host
        .create_call(&body("1001", "0820001234", "crm-while-down"));
    assert_eq!(status, 503);
    assert_eq!(error["error"]["code"], "pbx_unavailable");

    // The PBX comes back on the same address; the host logs in again by itself.
    let recordings = w.sim.recordings.clone();
    w.sim = Sim::start(&recordings, &address);
    let got = w.redis.follow(
        "teleforge:notifications:c2d:crm-inflight",
        &["failed"],
        Duration::from_secs(10),
    );
    let last = got.last().expect("events");
    assert_eq!(last["event"], "failed");
    assert_eq!(last["cause"], "pbx_error");
    assert!(
        w.sim
            .log_text()
            .contains("channels listed action=\"CoreShowChannels\" channels=0"),
        "the host listed the channels after logging in again: {}",
        w.sim.log_text()
    );
    let (status, answer) = w
        .host
        .create_call_when_ready(&body("1001", "0820001234", "crm-after"));
    assert_eq!(status, 202, "{answer}");
    let got = w.redis.follow(
        "teleforge:notifications:c2d:crm-after",
        &["recording_ready"],
        Duration::from_secs(20),
    );
    assert_eq!(events(&got), ANSWERED);
    // The refused call left no idempotency record behind: it can be retried.
    let (status, _) = w
        .host
        .create_call(&body("1001", "0820001234", "crm-while-down"));
    assert_eq!(status, 202);
}

/// Redis, a simulator playing calls as long as recorded, and a host that reaches the
/// simulator through a [`Cutter`](support::cutter::Cutter), so a test can cut the AMI
/// connection while the call goes on in the PBX.
fn world_behind_a_cutter() -> (support::World, support::cutter::Cutter) {
    let recordings = tempfile::tempdir().expect("tempdir");
    let redis = support::Redis::start();
    let sim = Sim::start_scaled(recordings.path(), "127.0.0.1:0", None, "1");
    let cutter = support::cutter::Cutter::start(&sim.address);
    let host = support::Host::start(&redis, &cutter.address, recordings.path(), &[]);
    let world = support::World {
        redis,
        sim,
        host,
        recordings,
    };
    (world, cutter)
}

/// A call of agent 1001 that `disrupt` interrupts once `at` is notified. Checks what any
/// such call must show after it (`hangup` `normal_clearing`, the announced recording
/// served, nothing pushed twice, dialled once) and returns every notification, oldest first.
fn disrupted_call(
    w: &mut support::World,
    contact_ref: &str,
    at: &str,
    disrupt: impl FnOnce(&mut support::World),
) -> Vec<serde_json::Value> {
    let (status, answer) = w
        .host
        .create_call_when_ready(&body("1001", "0820001234", contact_ref));
    assert_eq!(status, 202, "{answer}");
    let key = format!("teleforge:notifications:c2d:{contact_ref}");
    let mut got = w.redis.follow(&key, &[at], Duration::from_secs(10));
    assert_eq!(events(&got).last().map(String::as_str), Some(at));
    disrupt(w);
    got.extend(
        w.redis
            .follow(&key, &["recording_ready"], Duration::from_secs(25)),
    );
    let hangup = got.iter().find(|n| n["event"] == "hangup");
    assert_eq!(
        hangup.map(|n| n["cause"].clone()),
        Some("normal_clearing".into()),
        "{got:#?}"
    );
    let recording_ref = answer["recording_ref"].as_str().expect("recording_ref");
    let fetched = w
        .host
        .get(&format!("/click2dial/recordings/{recording_ref}"));
    assert_eq!(fetched.status, 200, "the announced recording is served");
    assert!(fetched.body.starts_with(b"RIFF"), "a WAV file");
    std::thread::sleep(Duration::from_millis(500));
    assert!(w.redis.drain(&key).is_empty(), "nothing pushed twice");
    assert_eq!(w.sim.originates_of(contact_ref), 1, "dialled once");
    got
}

/// `click2dial_calls_resynchronised_total` for `outcome`, as `/metrics` shows it.
fn resynchronised(w: &support::World, outcome: &str) -> String {
    let metrics = String::from_utf8(w.host.get("/metrics").body).expect("utf-8");
    let series =
        format!("click2dial_calls_resynchronised_total{{pbx=\"default\",outcome=\"{outcome}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .unwrap_or("absent")
        .to_string()
}

/// The spec's "re-synchronise the calls in flight": the AMI connection is cut while the call
/// is connected, and the call goes on in the PBX. The host logs in again, lists the PBX's
/// channels, finds the call's, and follows it to its real end: the notifications are those
/// of any answered call, each once, and the recording is ready.
#[test]
fn a_call_in_flight_survives_a_cut_ami_connection() {
    let (mut w, cutter) = world_behind_a_cutter();
    let got = disrupted_call(&mut w, "crm-blip", "joined", |_| cutter.cut(Duration::ZERO));
    assert_eq!(events(&got), ANSWERED, "{got:#?}");
    assert_eq!(cutter.relayed(), 2, "logged in again once");
    assert!(
        w.sim
            .log_text()
            .contains("channels listed action=\"CoreShowChannels\" channels=2"),
        "{}",
        w.sim.log_text()
    );
    // One list per login, and no more: the call followed here is not the list's to judge
    // against Redis's set of calls in flight (nor looked for again).
    assert_eq!(
        w.sim.log_text().matches("channels listed").count(),
        2,
        "{}",
        w.sim.log_text()
    );
    assert_eq!(resynchronised(&w, "going_on"), "1");
}

/// Cut while the agent's phone rings, and kept out for 3 s: the agent answers and the
/// callee is joined while the host cannot see it. The listing after the login proves
/// `agent_answered` and `joined` (notified then, once each); `callee_ringing` it cannot
/// prove, so it is not claimed. The kit records before it dials the callee, so the
/// recording is ready after the end.
#[test]
fn steps_missed_during_a_cut_are_notified_from_the_listing() {
    let (mut w, cutter) = world_behind_a_cutter();
    let got = disrupted_call(&mut w, "crm-blackout", "agent_ringing", |_| {
        cutter.cut(Duration::from_secs(3))
    });
    assert_eq!(events(&got), ANSWERED_UNSEEN, "{got:#?}");
}

/// A single host killed (SIGKILL: no flush, no goodbye) while its call is connected, and a
/// new one started: at its login the new host lists the PBX's channels, finds the call's,
/// loads its record and notification history from Redis and follows it to its end. The
/// consumer gets every notification of an answered call, each once; nothing is dialled
/// again.
#[test]
fn a_restarted_host_resumes_the_calls_in_flight() {
    let mut w = support::world_scaled("1", &[]);
    let got = disrupted_call(&mut w, "crm-upgrade", "joined", |w| {
        w.host.sigkill();
        w.restart_host(&[]);
    });
    assert_eq!(events(&got), ANSWERED, "{got:#?}");
    assert_eq!(resynchronised(&w, "resumed"), "1");
    // The call resource folds the same history: the call is over.
    let call = w.host.get("/click2dial/calls/crm-upgrade");
    assert_eq!(call.status, 200);
    assert_eq!(call.json()["state"], "disconnected", "{}", call.json());
}

/// A lone host killed while its call is connected, and a new one started while Redis is
/// down too (a whole machine restarting, Redis last): the new host's login lists the call
/// but cannot look it up. It lists and looks again every 5 s (`LOOK_AGAIN_AFTER`), so once
/// Redis is back it follows the call to its end. (Before, nothing looked again until the
/// next AMI login: the consumer never got the call's `hangup`.) The call is kept talking by
/// its `max_duration_secs`, which the PBX cuts.
#[test]
fn a_restarted_host_looks_its_calls_up_again_once_redis_is_back() {
    let mut w = support::world_scaled("1", &[]);
    let body =
        body("1001", "0820001234", "crm-redis-late").replace('}', r#","max_duration_secs":20}"#);
    let (status, answer) = w.host.create_call_when_ready(&body);
    assert_eq!(status, 202, "{answer}");
    let key = "teleforge:notifications:c2d:crm-redis-late";
    let mut got = w.redis.follow(key, &["joined"], Duration::from_secs(10));
    w.host.sigkill();
    w.redis.stop();
    w.restart_host(&[]);
    let lists = |w: &support::World| {
        w.sim
            .log_text()
            .matches("channels listed action=\"CoreShowChannels\" channels=2")
            .count()
    };
    assert!(
        support::eventually(Duration::from_secs(10), || lists(&w) >= 1),
        "the new host listed the call: {}",
        w.sim.log_text()
    );
    std::thread::sleep(Duration::from_secs(1));
    w.redis.restart();
    got.extend(
        w.redis
            .follow(key, &["recording_ready", "failed"], Duration::from_secs(40)),
    );
    assert_eq!(events(&got), ANSWERED, "{got:#?}");
    let hangup = got.iter().find(|n| n["event"] == "hangup").unwrap();
    assert_eq!(hangup["cause"], "max_duration", "{hangup}");
    assert!(lists(&w) >= 2, "listed again: {}", w.sim.log_text());
    assert_eq!(resynchronised(&w, "resumed"), "1");
    std::thread::sleep(Duration::from_millis(500));
    assert!(w.redis.drain(key).is_empty(), "nothing pushed twice");
    assert_eq!(w.sim.originates_of("crm-redis-late"), 1, "dialled once");
}

/// The calls in flight the store lists for the default PBX (`teleforge:c2d:live:default`).
fn in_flight(w: &support::World) -> Vec<String> {
    let mut conn = w.redis.connection().expect("redis");
    redis::cmd("ZRANGE")
        .arg("teleforge:c2d:live:default")
        .arg(0)
        .arg(-1)
        .query(&mut conn)
        .expect("ZRANGE")
}

/// A lone host killed while two calls are connected, and both end before a new host
/// starts (the gap of an upgrade): the PBX no longer lists them, but the store's set of the
/// PBX's calls in flight still has them, so the new host ends them: `hangup` `pbx_error` (how
/// they ended is not known). The calls are less than 10 s in the set at the new host's
/// login, too young to be judged (`VANISHED_AFTER`), so they are looked for again every 5 s
/// (`LOOK_AGAIN_AFTER`) and judged once two lists in a row miss them. Then each one's
/// recording is looked at: the first's is whole (the PBX closed it), and `recording_ready`
/// follows, as the spec says of a complete file; the second's is cut short (its sizes 0, as
/// a PBX that died mid-call leaves it) and claims nothing. Before, the consumer never heard
/// of the calls again; then, of neither recording.
#[test]
fn a_call_that_ended_while_no_host_ran_is_ended_by_the_next_one() {
    let mut w = support::world_scaled("1", &[]);
    let mut recording_refs = Vec::new();
    for contact_ref in ["crm-gap", "crm-gap-cut"] {
        let (status, answer) =
            w.host
                .create_call_when_ready(&body("1001", "0820001234", contact_ref));
        assert_eq!(status, 202, "{answer}");
        recording_refs.push(answer["recording_ref"].as_str().expect("ref").to_string());
    }
    let (key, cut_key) = (
        "teleforge:notifications:c2d:crm-gap",
        "teleforge:notifications:c2d:crm-gap-cut",
    );
    let mut got = w.redis.follow(key, &["joined"], Duration::from_secs(10));
    let mut cut = w
        .redis
        .follow(cut_key, &["joined"], Duration::from_secs(10));
    assert_eq!(
        in_flight(&w).len(),
        2,
        "the store lists the calls in flight"
    );
    w.host.sigkill();
    assert!(
        support::eventually(Duration::from_secs(20), || w
            .sim
            .log_text()
            .matches("recording complete")
            .count()
            == 2),
        "the calls ended: {}",
        w.sim.log_text()
    );
    // The second file as a PBX that died mid-call leaves it: RIFF size 0.
    let cut_file = w
        .recordings
        .path()
        .join(format!("{}.wav", recording_refs[1]));
    let mut bytes = std::fs::read(&cut_file).expect("the second recording");
    bytes[4..8].copy_from_slice(&[0; 4]);
    std::fs::write(&cut_file, bytes).expect("cut it short");
    w.restart_host(&[]);
    got.extend(
        w.redis
            .follow(key, &["recording_ready"], Duration::from_secs(30)),
    );
    cut.extend(
        w.redis
            .follow(cut_key, &["hangup"], Duration::from_secs(10)),
    );
    assert_eq!(events(&got), ANSWERED, "{got:#?}");
    assert_eq!(events(&cut), support::JOINED_THEN_LOST, "{cut:#?}");
    for notifications in [&got, &cut] {
        let hangup = notifications
            .iter()
            .find(|n| n["event"] == "hangup")
            .unwrap();
        assert_eq!(hangup["cause"], "pbx_error", "{hangup}");
    }
    let recording = w
        .host
        .get(&format!("/click2dial/recordings/{}", recording_refs[0]));
    assert_eq!(recording.status, 200, "the whole recording is served");
    assert_eq!(&recording.body[..4], b"RIFF");
    assert!(
        support::eventually(Duration::from_secs(5), || in_flight(&w).is_empty()),
        "the calls left the set: {:?}",
        in_flight(&w)
    );
    assert_eq!(resynchronised(&w, "ended"), "2");
    // Two looks at the cut file, 2 s apart (RECORDING_LOOKS): then nothing more.
    std::thread::sleep(Duration::from_secs(3));
    assert!(w.redis.drain(key).is_empty(), "nothing more");
    assert!(
        w.redis.drain(cut_key).is_empty(),
        "no recording_ready for a recording cut short"
    );
    for contact_ref in ["crm-gap", "crm-gap-cut"] {
        let call = w.host.get(&format!("/click2dial/calls/{contact_ref}"));
        assert_eq!(call.status, 200);
        assert_eq!(call.json()["state"], "disconnected", "{}", call.json());
    }
}

/// Calls a host left in Redis's set of calls in flight (it died before it could remove
/// them): a call that is over (not recorded: its `hangup` was its last notification), and
/// one whose record is gone. The next host's login finds neither on the PBX; both leave the
/// set, and nothing is notified again (nor counted as ended unseen).
#[test]
fn calls_left_in_the_set_of_calls_in_flight_leave_it_unnotified() {
    let mut w = world(&[]);
    let request = body("1001", "0820001234", "crm-left").replace('}', r#","record":false}"#);
    let (status, answer) = w.host.create_call_when_ready(&request);
    assert_eq!(status, 202, "{answer}");
    let key = "teleforge:notifications:c2d:crm-left";
    let got = w.redis.follow(key, &["joined"], Duration::from_secs(10));
    let placed = in_flight(&w);
    assert_eq!(placed.len(), 1, "{got:#?}");
    let got = w.redis.follow(key, &["hangup"], Duration::from_secs(20));
    assert_eq!(events(&got), ["hangup"]);
    assert!(support::eventually(Duration::from_secs(5), || in_flight(
        &w
    )
    .is_empty()));
    let mut conn = w.redis.connection().expect("redis");
    let _: () = redis::cmd("ZADD")
        .arg("teleforge:c2d:live:default")
        .arg(1)
        .arg(&placed[0])
        .arg(1)
        .arg("c2d-gone")
        .query(&mut conn)
        .expect("ZADD");
    w.restart_host(&[]);
    assert!(
        support::eventually(Duration::from_secs(10), || in_flight(&w).is_empty()),
        "{:?}",
        in_flight(&w)
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(w.redis.drain(key).is_empty(), "nothing notified again");
    assert_eq!(resynchronised(&w, "ended"), "absent");
}

/// A host that died after it pushed a recorded call's `hangup` and before its
/// `recording_ready` (made here by taking `recording_ready` out of the call's history and
/// marks, and the call back into the set of calls in flight): the next host finds the call
/// gone from the PBX, its end pushed, its recording whole, and pushes `recording_ready`,
/// once, without counting it as ended unseen. Before, the call just left the set.
#[test]
fn a_call_whose_host_died_before_its_recording_ready_gets_it_from_the_next_host() {
    let mut w = world(&[]);
    let (status, answer) =
        w.host
            .create_call_when_ready(&body("1001", "0820001234", "crm-late-rec"));
    assert_eq!(status, 202, "{answer}");
    let key = "teleforge:notifications:c2d:crm-late-rec";
    let mut got = w.redis.follow(key, &["joined"], Duration::from_secs(10));
    let placed = in_flight(&w);
    assert_eq!(placed.len(), 1, "{got:#?}");
    got.extend(
        w.redis
            .follow(key, &["recording_ready"], Duration::from_secs(20)),
    );
    assert_eq!(events(&got), ANSWERED);
    assert!(support::eventually(Duration::from_secs(5), || in_flight(
        &w
    )
    .is_empty()));
    let mut conn = w.redis.connection().expect("redis");
    let history = "teleforge:c2d:history:e2e:crm-late-rec";
    let last: String = redis::cmd("RPOP")
        .arg(history)
        .query(&mut conn)
        .expect("RPOP");
    assert!(last.contains("recording_ready"), "{last}");
    let _: () = redis::cmd("DEL")
        .arg(format!("teleforge:c2d:sent:{}:7", placed[0]))
        .query(&mut conn)
        .expect("DEL");
    let _: () = redis::cmd("ZADD")
        .arg("teleforge:c2d:live:default")
        .arg(1)
        .arg(&placed[0])
        .query(&mut conn)
        .expect("ZADD");
    w.restart_host(&[]);
    let again = w
        .redis
        .follow(key, &["recording_ready"], Duration::from_secs(15));
    assert_eq!(events(&again), ["recording_ready"], "{again:#?}");
    assert!(
        support::eventually(Duration::from_secs(5), || in_flight(&w).is_empty()),
        "{:?}",
        in_flight(&w)
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(w.redis.drain(key).is_empty(), "once");
    assert_eq!(resynchronised(&w, "ended"), "absent");
}

/// A PBX that does not come back: the call in flight waits for it no longer than
/// `limits.call_silence_secs` (here 2 s) after the connection was lost, then ends
/// `failed`/`pbx_error`, and its slot under `max_calls_in_flight` (here 1) is free again.
#[test]
fn a_call_in_flight_waits_for_a_lost_pbx_no_longer_than_the_silence_limit() {
    let mut w = world(&[
        ("C2D_LIMITS__CALL_SILENCE_SECS", "2"),
        ("C2D_LIMITS__MAX_CALLS_IN_FLIGHT", "1"),
    ]);
    let (status, answer) = w
        .host
        .create_call_when_ready(&body("1001", "0820000408", "crm-gone"));
    assert_eq!(status, 202, "{answer}");
    let key = "teleforge:notifications:c2d:crm-gone";
    let mut got = w
        .redis
        .follow(key, &["agent_ringing"], Duration::from_secs(10));
    let address = w.sim.address.clone();
    w.sim.stop();
    let lost = std::time::Instant::now();
    got.extend(w.redis.follow(key, &["failed"], Duration::from_secs(10)));
    let waited = lost.elapsed();
    let last = got.last().expect("events");
    assert_eq!(
        (&last["event"], &last["cause"]),
        (&"failed".into(), &"pbx_error".into())
    );
    assert!(
        waited >= Duration::from_millis(1_500),
        "waited {waited:?} for the PBX"
    );
    // The slot came back: once a PBX is there again, a new call is taken.
    let recordings = w.sim.recordings.clone();
    w.sim = Sim::start(&recordings, &address);
    let (status, answer) =
        w.host
            .create_call_when_ready(&body("1001", "0820001234", "crm-after-gone"));
    assert_eq!(status, 202, "{answer}");
}

#[test]
fn sigterm_flushes_and_exits_cleanly() {
    let w = world(&[]);
    let (status, _) = w
        .host
        .create_call_when_ready(&body("1001", "0820001234", "crm-term"));
    assert_eq!(status, 202);
    let exit = w.host.terminate();
    assert!(exit.success(), "{exit:?}");
    let got = w.redis.drain("teleforge:notifications:c2d:crm-term");
    assert_eq!(
        got.first().map(|n| n["event"].clone()),
        Some("queued".into())
    );
}

#[test]
fn every_refusal_is_answered_over_http_before_anything_is_dialled() {
    let w = world(&[]);
    // Wait until the PBX is up, so a 503 cannot hide the answers below.
    let (status, _) = w
        .host
        .create_call_when_ready(&body("1001", "0820001234", "crm-ready"));
    assert_eq!(status, 202);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{}/click2dial/calls", w.host.url);
    let cases: [(&str, String, u16, &str); 6] = [
        (
            "text/plain",
            body("1001", "0820001234", "r1"),
            415,
            "unsupported_media_type",
        ),
        (
            "application/json",
            "{\"agent\":".into(),
            400,
            "malformed_json",
        ),
        (
            "application/json",
            format!("{{\"x\":\"{}\"}}", "y".repeat(5000)),
            413,
            "body_too_large",
        ),
        (
            "application/json",
            r#"{"callee":"0820001234","outbound_id":"27820001234"}"#.into(),
            422,
            "missing_field",
        ),
        (
            "application/json",
            body("1001", "0820001234", "bad ref"),
            422,
            "invalid_contact_ref",
        ),
        (
            "application/json",
            body("1001", "0900001234", "r2"),
            422,
            "callee_not_allowed",
        ),
    ];
    for (content_type, request, status, code) in cases {
        let mut response = agent
            .post(&url)
            .header("content-type", content_type)
            .header("authorization", format!("Bearer {}", support::TEST_KEY))
            .send(request.as_str())
            .expect("HTTP");
        assert_eq!(response.status().as_u16(), status, "{code}");
        let text = response.body_mut().read_to_string().expect("body");
        let json: serde_json::Value = serde_json::from_str(&text).expect("JSON error body");
        assert_eq!(json["error"]["code"], code);
    }
    std::thread::sleep(Duration::from_millis(300));
    for contact_ref in ["r1", "r2"] {
        let id = contact_ref.to_string();
        assert_eq!(w.sim.originates_of(&id), 0, "{contact_ref} was not dialled");
    }
    let ready = "crm-ready".to_string();
    assert_eq!(w.sim.originates_of(&ready), 1, "{}", w.sim.log_text());
}

/// `record: false` through the host and the simulator: the `202` promises no recording, the
/// notifications end at `hangup` with no `recording_ready`, and no file is written; a repeat
/// with other dial controls is another call (`409`).
#[test]
fn a_call_created_with_record_false_is_not_recorded() {
    let w = world(&[]);
    let with_controls = |controls: &str| {
        format!(
            r#"{{"agent":"1001","callee":"0820001234","outbound_id":"27820001234","contact_ref":"crm-no-rec",{controls}}}"#
        )
    };
    let (status, answer) = w
        .host
        .create_call_when_ready(&with_controls(r#""record":false"#));
    assert_eq!(status, 202, "{answer}");
    assert!(answer.get("recording_url").is_none(), "{answer}");
    let recording_ref = answer["recording_ref"].as_str().expect("ref").to_string();
    let key = "teleforge:notifications:c2d:crm-no-rec";
    let got = w
        .redis
        .follow(key, &["hangup", "failed"], Duration::from_secs(20));
    assert_eq!(events(&got), ANSWERED[..ANSWERED.len() - 1]);
    // The same request again is a repeat; other controls with the same contact_ref are not.
    let (status, again) = w.host.create_call(&with_controls(r#""record":false"#));
    assert_eq!(
        (status, &again["recording_ref"]),
        (202, &answer["recording_ref"])
    );
    let (status, conflict) = w.host.create_call(&with_controls(r#""record":true"#));
    assert_eq!(status, 409, "{conflict}");
    std::thread::sleep(Duration::from_secs(1));
    let late = w.redis.follow(key, &[], Duration::from_millis(300));
    assert!(late.is_empty(), "{late:#?}");
    let wav = w.recordings.path().join(format!("{recording_ref}.wav"));
    assert!(!wav.exists(), "{} was written", wav.display());
}
