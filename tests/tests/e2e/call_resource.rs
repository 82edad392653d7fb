//! `GET /click2dial/calls/{contact_ref}` and `GET /click2dial/calls` through the host's port:
//! the call's state and reason (CAMARA names), each phone's outcome, its times, its
//! recording; only for the key that made it; kept in Redis, so a restarted host answers
//! the same.

use std::time::Duration;

use crate::support::{self, auth_keys, events, hash_key, world, Host, ANSWERED, TEST_KEY};

fn body(agent: &str, contact_ref: &str) -> String {
    format!(
        r#"{{"agent":"{agent}","callee":"0820001234","outbound_id":"27820001234","contact_ref":"{contact_ref}"}}"#
    )
}

fn get(host: &Host, key: &str, path: &str) -> support::Answer {
    host.request("GET", path, Some(key), &[], None)
}

/// Waits for the call's last notification (`recording_ready` or `failed`).
fn finish(w: &support::World, contact_ref: &str, last: &[&str]) -> Vec<serde_json::Value> {
    w.redis.follow(
        &format!("teleforge:notifications:c2d:{contact_ref}"),
        last,
        Duration::from_secs(20),
    )
}

const OTHER: &str = "c2d_other_0123456789abcdef0123456789abcdef0";
const NO_READ: &str = "c2d_noread_0123456789abcdef0123456789abcdef";

fn keys() -> String {
    auth_keys(&[
        &format!(r#"{{id="other",hash="{}"}}"#, hash_key(OTHER)),
        &format!(
            r#"{{id="noread",hash="{}",scopes=["calls:create"]}}"#,
            hash_key(NO_READ)
        ),
    ])
}

#[test]
fn an_answered_call_reads_back_disconnected_with_each_phones_outcome() {
    let mut w = world(&[("C2D_AUTH__KEYS", keys().as_str())]);
    let (status, answer) = w.host.create_call_when_ready(&body("1001", "res-answered"));
    assert_eq!(status, 202, "{answer}");
    let got = finish(&w, "res-answered", &["recording_ready", "failed"]);
    assert_eq!(events(&got), ANSWERED);

    let call = get(&w.host, TEST_KEY, "/click2dial/calls/res-answered");
    assert_eq!(call.status, 200, "{:?}", call.json());
    let call = call.json();
    assert_eq!(call["contact_ref"], "res-answered");
    assert_eq!(call["state"], "disconnected");
    assert_eq!(call["reason"], "hangUp");
    assert_eq!(call["agent"]["number"], "1001");
    assert_eq!(call["callee"]["number"], "+27820001234");
    assert_eq!(call["outbound_id"], "27820001234");
    for leg in ["agent", "callee"] {
        assert_eq!(call[leg]["rung"], true, "{call}");
        assert_eq!(call[leg]["answered"], true, "{call}");
        assert!(call[leg].get("cause").is_none(), "{call}");
    }
    assert_eq!(call["created_at"], got[0]["timestamp"]);
    assert_eq!(call["connected_at"], got[4]["timestamp"]);
    assert_eq!(call["ended_at"], got[5]["timestamp"]);
    assert!(call["duration_secs"].is_u64(), "{call}");
    assert_eq!(call["recording"]["recording_ref"], answer["recording_ref"]);
    assert_eq!(call["recording"]["url"], answer["recording_url"]);
    assert_eq!(call["recording"]["ready"], true);

    // Another key, an unknown reference: the same 404. A bad one: 422. No read scope: 403.
    let foreign = get(&w.host, OTHER, "/click2dial/calls/res-answered");
    let unknown = get(&w.host, TEST_KEY, "/click2dial/calls/res-nobody");
    assert_eq!((foreign.status, unknown.status), (404, 404));
    assert_eq!(foreign.body, unknown.body);
    assert_eq!(foreign.code(), "not_found");
    let bad = get(&w.host, TEST_KEY, "/click2dial/calls/a%20b");
    assert_eq!(
        (bad.status, bad.code().as_str()),
        (422, "invalid_contact_ref")
    );
    let scope = get(&w.host, NO_READ, "/click2dial/calls/res-answered");
    assert_eq!(
        (scope.status, scope.code().as_str()),
        (403, "insufficient_scope")
    );

    // DELETE of a call that is over answers its final state and asks the PBX nothing;
    // another key's DELETE is 404.
    let ended = w.host.request(
        "DELETE",
        "/click2dial/calls/res-answered",
        Some(TEST_KEY),
        &[],
        None,
    );
    assert_eq!(ended.status, 200, "{:?}", ended.json());
    assert_eq!(ended.json()["state"], "disconnected");
    let foreign = w.host.request(
        "DELETE",
        "/click2dial/calls/res-answered",
        Some(OTHER),
        &[],
        None,
    );
    assert_eq!(foreign.status, 404);

    // A restarted host reads it back from Redis.
    let before = get(&w.host, TEST_KEY, "/click2dial/calls/res-answered").body;
    w.restart_host(&[("C2D_AUTH__KEYS", keys().as_str())]);
    assert!(support::eventually(Duration::from_secs(20), || w
        .host
        .get("/readyz")
        .status
        == 200));
    let after = get(&w.host, TEST_KEY, "/click2dial/calls/res-answered");
    assert_eq!(after.status, 200);
    let (mut a, mut b): (serde_json::Value, serde_json::Value) =
        (serde_json::from_slice(&before).unwrap(), after.json());
    // Only a live call's duration moves; this one is over.
    a.as_object_mut().unwrap().remove("duration_secs");
    b.as_object_mut().unwrap().remove("duration_secs");
    assert_eq!(a, b);
}

#[test]
fn a_failed_call_names_the_phone_and_camaras_reason() {
    let w = world(&[]);
    // Agent 1486 is busy (the simulator's rule for the recorded case).
    let (status, answer) = w.host.create_call_when_ready(&body("1486", "res-busy"));
    assert_eq!(status, 202, "{answer}");
    let got = finish(&w, "res-busy", &["failed"]);
    assert_eq!(events(&got).last().map(String::as_str), Some("failed"));
    let call = get(&w.host, TEST_KEY, "/click2dial/calls/res-busy").json();
    assert_eq!(call["state"], "failed", "{call}");
    assert_eq!(call["reason"], "callerBusy", "{call}");
    assert_eq!(call["agent"]["cause"], "agent_busy", "{call}");
    assert_eq!(call["callee"]["rung"], false, "{call}");
    assert!(call.get("connected_at").is_none() && call.get("duration_secs").is_none());
}

#[test]
fn a_key_lists_its_own_calls_newest_first_by_page_and_state() {
    let w = world(&[("C2D_AUTH__KEYS", keys().as_str())]);
    for (agent, contact_ref) in [("1001", "list-1"), ("1486", "list-2"), ("1001", "list-3")] {
        let (status, answer) = w.host.create_call_when_ready(&body(agent, contact_ref));
        assert_eq!(status, 202, "{answer}");
        finish(&w, contact_ref, &["recording_ready", "failed"]);
    }
    let refs = |page: &serde_json::Value| -> Vec<String> {
        page["calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["contact_ref"].as_str().unwrap().to_string())
            .collect()
    };
    let first = get(&w.host, TEST_KEY, "/click2dial/calls?limit=2");
    assert_eq!(first.status, 200);
    let first = first.json();
    assert_eq!(refs(&first), ["list-3", "list-2"]);
    let next = first["next"].as_str().expect("a next page").to_string();
    let second = get(
        &w.host,
        TEST_KEY,
        &format!("/click2dial/calls?limit=2&before={next}"),
    )
    .json();
    assert_eq!(refs(&second), ["list-1"]);
    assert!(second.get("next").is_none(), "{second}");
    let failed = get(&w.host, TEST_KEY, "/click2dial/calls?state=failed").json();
    assert_eq!(refs(&failed), ["list-2"]);
    // Another key has none of them.
    let other = get(&w.host, OTHER, "/click2dial/calls").json();
    assert_eq!(refs(&other), Vec::<String>::new());
    for bad in ["state=ringing", "limit=0", "limit=101", "before=nonsense"] {
        let answer = get(&w.host, TEST_KEY, &format!("/click2dial/calls?{bad}"));
        assert_eq!(answer.status, 400, "{bad}: {:?}", answer.json());
    }
}

/// A world whose simulator plays calls as long as recorded.
fn real_time_world() -> support::World {
    support::world_scaled("1", &[])
}

fn delete(host: &Host, contact_ref: &str) -> support::Answer {
    let path = format!("/click2dial/calls/{contact_ref}");
    host.request("DELETE", &path, Some(TEST_KEY), &[], None)
}

/// The simulator's log line of a call that its `Hangup` (`cut`) ended.
fn sim_ended(w: &support::World, cut: &str) -> bool {
    support::eventually(Duration::from_secs(10), || {
        w.sim
            .log_text()
            .lines()
            .any(|l| l.contains("call ended") && l.contains(&format!("cut=Some({cut})")))
    })
}

/// As `asterisk_e2e`'s `delete_ends_a_connected_call`: the PBX hangs up both legs, the answer
/// is the final state (`disconnected`, `hangUp`), `hangup` (normal clearing) and
/// `recording_ready` follow, a repeat answers the same.
#[test]
fn delete_ends_a_connected_call() {
    let w = real_time_world();
    let (status, answer) = w.host.create_call_when_ready(&body("1001", "res-delete"));
    assert_eq!(status, 202, "{answer}");
    let so_far = finish(&w, "res-delete", &["joined", "failed"]);
    assert_eq!(events(&so_far).last().map(String::as_str), Some("joined"));
    let live = get(&w.host, TEST_KEY, "/click2dial/calls/res-delete").json();
    assert_eq!(live["state"], "connected", "{live}");

    let ended = delete(&w.host, "res-delete");
    assert_eq!(ended.status, 200, "{:?}", ended.json());
    let ended = ended.json();
    assert_eq!(ended["state"], "disconnected", "{ended}");
    assert_eq!(ended["reason"], "hangUp", "{ended}");
    let rest = finish(&w, "res-delete", &["recording_ready"]);
    assert_eq!(events(&rest), ["hangup", "recording_ready"], "{rest:#?}");
    assert_eq!(rest[0]["cause"], "normal_clearing");
    assert!(sim_ended(&w, "Hangup"), "{}", w.sim.log_text());
    let again = delete(&w.host, "res-delete");
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["state"], "disconnected");
}

/// As `asterisk_e2e`'s `delete_cancels_a_ringing_call`: the agent's phone rings (1408 never
/// answers), the `DELETE` ends the call before it was connected: `failed`, `hangUp`, no
/// phone's failure.
#[test]
fn delete_cancels_a_ringing_call() {
    let w = real_time_world();
    let (status, answer) = w
        .host
        .create_call_when_ready(&body("1408", "res-delete-ringing"));
    assert_eq!(status, 202, "{answer}");
    let so_far = finish(&w, "res-delete-ringing", &["agent_ringing", "failed"]);
    assert_eq!(events(&so_far), ["queued", "agent_ringing"], "{so_far:#?}");
    let ended = delete(&w.host, "res-delete-ringing");
    assert_eq!(ended.status, 200, "{:?}", ended.json());
    support::assert_hung_up_before_connected(&ended.json());
    let all = finish(&w, "res-delete-ringing", &["failed"]);
    assert_eq!(events(&all).last().map(String::as_str), Some("failed"));
    assert!(sim_ended(&w, "Hangup"), "{}", w.sim.log_text());
}

/// As `asterisk_e2e`'s `max_duration_hangs_up_a_connected_call`: the simulated phones talk
/// on; the PBX cuts the call at its 10 s; the host names the cause `max_duration`.
#[test]
fn max_duration_ends_a_connected_call() {
    let w = real_time_world();
    let body = body("1001", "res-max").replace('}', r#","max_duration_secs":10}"#);
    let (status, answer) = w.host.create_call_when_ready(&body);
    assert_eq!(status, 202, "{answer}");
    let got = w.redis.follow(
        "teleforge:notifications:c2d:res-max",
        &["recording_ready", "failed"],
        Duration::from_secs(40),
    );
    assert_eq!(events(&got), ANSWERED, "{got:#?}");
    let hangup = got.iter().find(|n| n["event"] == "hangup").unwrap();
    assert_eq!(hangup["cause"], "max_duration", "{hangup}");
    assert_eq!(hangup["q850"], 16, "{hangup}");
    assert!(sim_ended(&w, "MaxDuration"), "{}", w.sim.log_text());
    let call = get(&w.host, TEST_KEY, "/click2dial/calls/res-max").json();
    assert_eq!(call["state"], "disconnected", "{call}");
    assert_eq!(call["reason"], "maxDuration", "{call}");
    assert!(
        call["duration_secs"]
            .as_u64()
            .is_some_and(|d| (9..15).contains(&d)),
        "{call}"
    );
}

/// The same limit across a restart: the lone host is killed while the call is connected,
/// and a new one resumes it at its login (`calls::a_restarted_host_resumes_the_calls_in_flight`).
/// The PBX still cuts the call 10 s after the answer; the new host counts the limit from the
/// bridge in the call's history, not from its own start 3 s later, so it names the cause
/// `max_duration` too.
#[test]
fn a_resumed_call_cut_at_its_max_duration_says_so() {
    let mut w = real_time_world();
    let body = body("1001", "res-max-resumed").replace('}', r#","max_duration_secs":10}"#);
    let (status, answer) = w.host.create_call_when_ready(&body);
    assert_eq!(status, 202, "{answer}");
    let key = "teleforge:notifications:c2d:res-max-resumed";
    let mut got = w.redis.follow(key, &["joined"], Duration::from_secs(10));
    w.host.sigkill();
    std::thread::sleep(Duration::from_secs(3));
    w.restart_host(&[]);
    got.extend(
        w.redis
            .follow(key, &["recording_ready", "failed"], Duration::from_secs(30)),
    );
    assert_eq!(events(&got), ANSWERED, "{got:#?}");
    let hangup = got.iter().find(|n| n["event"] == "hangup").unwrap();
    assert_eq!(hangup["cause"], "max_duration", "{hangup}");
    assert!(sim_ended(&w, "MaxDuration"), "{}", w.sim.log_text());
    let call = get(&w.host, TEST_KEY, "/click2dial/calls/res-max-resumed").json();
    assert_eq!(call["reason"], "maxDuration", "{call}");
}
