//! Two PBXes (`[[pbx]]`), two simulators: each call goes to the PBX that serves its agent,
//! a PBX that is down refuses only its own agents' calls (`503`) while the other's go on,
//! and it is used again once it is back; `/readyz` and `/metrics` say which PBX is which.

use std::time::Duration;

use crate::support::{
    call_body as body, events, eventually, free_port, two_pbxes, Host, Redis, Sim, ANSWERED,
    TEST_KEY,
};

struct Two {
    redis: Redis,
    east: Sim,
    west: Sim,
    host: Host,
    recordings: tempfile::TempDir,
}

/// Two simulators and a host configured with both; `more` goes after the `[[pbx]]` entries
/// (e.g. a west entry's `fastagi_peers`), `extra` to the host's environment.
fn two(fastagi: Option<&str>, more: &str, extra: &[(&str, &str)]) -> Two {
    let recordings = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start();
    let east = Sim::start_with(recordings.path(), "127.0.0.1:0", fastagi);
    let west = Sim::start(recordings.path(), "127.0.0.1:0");
    let file = recordings.path().join("click2dial.toml");
    std::fs::write(&file, two_pbxes(&east.address, &west.address, more)).expect("config");
    let host = Host::start_with_config(&redis, &file, recordings.path(), extra);
    let w = Two {
        redis,
        east,
        west,
        host,
        recordings,
    };
    assert!(
        eventually(Duration::from_secs(20), || w.readiness().0 == 200
            && w.readiness().1["status"] == "ready"),
        "{:?}",
        w.readiness()
    );
    w
}

impl Two {
    /// `/readyz`: status and body.
    fn readiness(&self) -> (u16, serde_json::Value) {
        let answer = self.host.get("/readyz");
        (answer.status, answer.json())
    }

    /// `[east, west]` of the series `name{pbx="…"}` in `/metrics`.
    fn per_pbx(&self, name: &str) -> [Option<f64>; 2] {
        let text = String::from_utf8_lossy(&self.host.get("/metrics").body).into_owned();
        ["east", "west"].map(|pbx| {
            let series = format!("{name}{{pbx=\"{pbx}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&series))
                .and_then(|v| v.trim().parse().ok())
        })
    }

    /// Creates a call for `agent` (callee answers) until it is answered `status`; that answer.
    fn create_until(
        &self,
        status: u16,
        agent: &str,
        contact_ref: &str,
        within: Duration,
    ) -> (u16, serde_json::Value) {
        let mut last = (0, serde_json::Value::Null);
        assert!(
            eventually(within, || {
                last = self
                    .host
                    .create_call(&body(agent, "0820001234", contact_ref));
                last.0 == status
            }),
            "{last:?}"
        );
        last
    }

    /// Waits for the call's notifications up to one of `last`.
    fn finish(&self, contact_ref: &str, last: &[&str]) -> Vec<serde_json::Value> {
        self.redis.follow(
            &format!("teleforge:notifications:c2d:{contact_ref}"),
            last,
            Duration::from_secs(20),
        )
    }
}

/// How many `Hangup` actions the simulator was sent (it logs actions it does not simulate).
fn hangups(sim: &Sim) -> usize {
    sim.log_text()
        .lines()
        .filter(|l| l.contains("action=\"Hangup\""))
        .count()
}

#[test]
fn calls_go_to_the_pbx_that_serves_their_agent() {
    let w = two(None, "", &[]);
    let (status, ready) = w.readiness();
    assert_eq!(status, 200);
    assert_eq!(
        ready["checks"]["pbx"],
        serde_json::json!({"east": "ok", "west": "ok"}),
        "{ready}"
    );
    for (agent, contact_ref) in [("1001", "pb-e1"), ("2001", "pb-w1"), ("1500", "pb-w2")] {
        let (status, answer) = w.host.create_call(&body(agent, "0820001234", contact_ref));
        assert_eq!(status, 202, "{agent}: {answer}");
    }
    for contact_ref in ["pb-e1", "pb-w1", "pb-w2"] {
        let got = w.finish(contact_ref, &["recording_ready"]);
        assert_eq!(events(&got), ANSWERED, "{contact_ref}");
    }
    // Each simulator was asked only for its own agents' calls.
    let asked = |sim: &Sim| ["pb-e1", "pb-w1", "pb-w2"].map(|r| sim.originates_of(r));
    assert_eq!(asked(&w.east), [1, 0, 0]);
    assert_eq!(asked(&w.west), [0, 1, 1]);
    // No PBX serves 3001 and none is the default: nothing dialled, the agent named.
    let (status, answer) = w.host.create_call(&body("3001", "0820001234", "pb-none"));
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "unknown_agent");
    assert_eq!(answer["error"]["field"], "agent");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("3001") && m.contains("[[pbx]]")),
        "{answer}"
    );
    assert_eq!(
        w.east.originates_of("pb-none") + w.west.originates_of("pb-none"),
        0
    );
    assert_eq!(
        w.per_pbx("click2dial_calls_started_total"),
        [Some(1.0), Some(2.0)]
    );
    assert_eq!(w.per_pbx("click2dial_ami_up"), [Some(1.0), Some(1.0)]);
}

#[test]
fn a_pbx_that_is_down_refuses_only_its_agents_and_recovers() {
    let mut w = two(None, "", &[]);
    let west_address = w.west.address.clone();
    w.west.stop();
    assert!(
        eventually(Duration::from_secs(10), || w.readiness().1["checks"]["pbx"]
            ["west"]
            == "down"),
        "{:?}",
        w.readiness()
    );
    // West's agents: 503 naming west, nothing dialled.
    let last = w.host.create_call(&body("2001", "0820001234", "pb-down"));
    assert_eq!(last.0, 503, "{last:?}");
    assert_eq!(last.1["error"]["code"], "pbx_unavailable", "{last:?}");
    assert!(
        last.1["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("\"west\"")),
        "{last:?}"
    );
    // East's agents meanwhile: accepted and completed.
    let (status, answer) = w.host.create_call(&body("1001", "0820001234", "pb-up"));
    assert_eq!(status, 202, "{answer}");
    assert_eq!(events(&w.finish("pb-up", &["recording_ready"])), ANSWERED);
    // Ready to take calls, degraded: west named as down.
    let (status, ready) = w.readiness();
    assert_eq!(
        (status, &ready["status"]),
        (200, &"degraded".into()),
        "{ready}"
    );
    assert_eq!(ready["checks"]["ami"], "degraded", "{ready}");
    assert_eq!(
        ready["checks"]["pbx"],
        serde_json::json!({"east": "ok", "west": "down"}),
        "{ready}"
    );
    assert_eq!(ready["problems"][0]["pbx"], "west", "{ready}");
    assert_eq!(ready["problems"][0]["code"], "ami_down", "{ready}");
    assert_eq!(w.per_pbx("click2dial_ami_up"), [Some(1.0), Some(0.0)]);

    // West back on its address: its agents' calls go through again.
    w.west = Sim::start(w.recordings.path(), &west_address);
    w.create_until(202, "2001", "pb-back", Duration::from_secs(15));
    assert_eq!(events(&w.finish("pb-back", &["recording_ready"])), ANSWERED);
    assert_eq!(w.west.originates_of("pb-back"), 1);
    assert_eq!(
        w.west.originates_of("pb-down"),
        0,
        "a refused create dials nothing"
    );
    let (status, ready) = w.readiness();
    assert_eq!(
        (status, &ready["status"]),
        (200, &"ready".into()),
        "{ready}"
    );
    assert_eq!(w.per_pbx("click2dial_ami_up"), [Some(1.0), Some(1.0)]);
    assert_eq!(
        w.per_pbx("click2dial_ami_reconnects_total"),
        [Some(0.0), Some(1.0)]
    );

    // Both down: not ready at all.
    w.west.stop();
    w.east.stop();
    assert!(
        eventually(Duration::from_secs(10), || w.readiness().0 == 503),
        "{:?}",
        w.readiness()
    );
    assert_eq!(w.readiness().1["status"], "not_ready");
}

#[test]
fn ending_a_call_asks_the_pbx_that_carries_it() {
    let w = two(None, "", &[]);
    // The callee does not answer: the call rings on for a while.
    let (status, answer) = w.host.create_call(&body("2001", "0820000408", "pb-end"));
    assert_eq!(status, 202, "{answer}");
    w.finish("pb-end", &["agent_answered"]);
    let ended = w.host.request(
        "DELETE",
        "/click2dial/calls/pb-end",
        Some(TEST_KEY),
        &[],
        None,
    );
    assert_eq!(ended.status, 200, "{:?}", ended.json());
    assert_eq!(ended.json()["reason"], "hangUp", "{:?}", ended.json());
    assert!(
        hangups(&w.west) >= 1,
        "west carries the call: {}",
        w.west.log_text()
    );
    assert_eq!(hangups(&w.east), 0, "east was not asked");
}

#[test]
fn softphone_calls_come_only_from_a_pbx_that_serves_the_agent() {
    let fastagi = format!("127.0.0.1:{}", free_port());
    // West's softphones would come from 127.0.0.2: every session from 127.0.0.1 is east's.
    let w = two(
        Some(&fastagi),
        "fastagi_peers = [\"127.0.0.2\"]",
        &[
            ("C2D_FASTAGI__LISTEN", fastagi.as_str()),
            ("C2D_FASTAGI__OWNER_KEY", "e2e"),
        ],
    );
    let invite = |agent: &str, contact_ref: &str| {
        w.east.invite(&format!(
            "invite {agent} X-Teleforge-Callee=0820001234 \
             X-Teleforge-Outbound-Id=27820001234 X-Teleforge-Contact-Ref={contact_ref}"
        ))
    };
    let answer = invite("1002", "pb-sp1");
    assert!(answer.starts_with("dial "), "{answer}");
    let got = w.finish("pb-sp1", &["recording_ready"]);
    assert_eq!(
        events(&got),
        [
            "queued",
            "callee_ringing",
            "joined",
            "hangup",
            "recording_ready"
        ]
    );
    // West's agent through east: no PBX at east's address serves it.
    assert_eq!(
        invite("2002", "pb-sp2"),
        "reject cause=21 reason=unknown_agent"
    );
    assert_eq!(
        w.per_pbx("click2dial_calls_started_total"),
        [Some(1.0), Some(0.0)]
    );
}
