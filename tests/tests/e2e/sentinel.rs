//! Redis Sentinel: one master, one replica and three sentinels (real `redis-server` and
//! `redis-sentinel` processes on free loopback ports), the host configured with the
//! sentinels, calls running on the PBX simulator. The master is killed (SIGKILL); the
//! sentinels promote the replica; the host follows: creates answer `503` while no master
//! is reachable, `/readyz` says not ready, the notifications of the calls in progress wait
//! in the spool and reach the new master in order, each once.

use std::time::{Duration, Instant};

use crate::support::sentinel::{master_port, Consumer, Deployment, MASTER};
use crate::support::{events, eventually, Host, Sim, ANSWERED};

fn body(contact_ref: &str) -> String {
    format!(
        r#"{{"agent":"1001","callee":"0820001234","outbound_id":"27820001234","contact_ref":"{contact_ref}"}}"#
    )
}

/// The deployment, the simulator and the host configured with the sentinels, ready.
struct Setup {
    redis: Deployment,
    host: Host,
    _sim: Sim,
    _recordings: tempfile::TempDir,
}

impl Setup {
    fn start() -> Self {
        let redis = Deployment::start();
        let recordings = tempfile::tempdir().expect("tempdir");
        // Calls last about 5 s (half the recorded time): they run on through the failover.
        let sim = Sim::start_scaled(recordings.path(), "127.0.0.1:0", None, "0.5");
        let vars = redis.host_vars();
        let host = Host::start_on(
            &vars.each_ref().map(|(k, v)| (*k, v.as_str())),
            &sim.address,
            recordings.path(),
            &[],
        );
        let setup = Self {
            redis,
            host,
            _sim: sim,
            _recordings: recordings,
        };
        assert!(
            eventually(Duration::from_secs(20), || setup.ready()),
            "ready at start"
        );
        setup
    }

    fn ready(&self) -> bool {
        self.host.get("/readyz").status == 200
    }

    /// Creates `count` calls `<prefix>-<i>`, each accepted (after `503`s while the host
    /// finds the master); returns their `contact_ref`s.
    fn calls(&self, prefix: &str, count: usize) -> Vec<String> {
        (0..count)
            .map(|i| {
                let contact_ref = format!("{prefix}-{i}");
                let (status, answer) = self.host.create_call_when_ready(&body(&contact_ref));
                assert_eq!(status, 202, "{answer}");
                std::thread::sleep(Duration::from_millis(100));
                contact_ref
            })
            .collect()
    }

    /// A real consumer on the new master: every accepted call's list, popped until its last
    /// event, has all of them in order, once; refused ones have none; the shared list has
    /// each notification once. Returns how many were counted.
    fn count_notifications(&self, accepted: &[String], refused: &[String]) -> usize {
        let consumer = Consumer(&self.redis.replica);
        let key = |contact_ref: &str| format!("teleforge:notifications:c2d:{contact_ref}");
        let mut counted = 0;
        for contact_ref in accepted {
            let got = consumer.follow(
                &key(contact_ref),
                "recording_ready",
                Duration::from_secs(30),
            );
            assert_eq!(events(&got), ANSWERED, "{contact_ref}: all, in order, once");
            counted += got.len();
        }
        for contact_ref in refused {
            assert_eq!(
                consumer.len(&key(contact_ref)),
                0,
                "{contact_ref} was refused"
            );
        }
        // Nothing pushed twice: the lists stay empty, the shared list has each once.
        std::thread::sleep(Duration::from_millis(500));
        for contact_ref in accepted {
            assert_eq!(
                consumer.len(&key(contact_ref)),
                0,
                "{contact_ref}: nothing after the last"
            );
        }
        assert_eq!(
            consumer.len("enigma:notifications:c2d"),
            accepted.len() * ANSWERED.len(),
            "the shared list has every notification once"
        );
        assert_eq!(self.host.spool_depth(), 0);
        counted
    }
}

#[test]
fn the_host_follows_a_failover_and_loses_no_notification() {
    let mut setup = Setup::start();
    let mut accepted = setup.calls("sentinel-before", 8);

    let killed_at = Instant::now();
    setup.redis.master.kill();
    let host = &setup.host;
    let not_ready = || host.get("/readyz").status == 503;
    assert!(
        eventually(Duration::from_secs(5), not_ready),
        "not ready without a master"
    );

    // Creates while no master is reachable: `503` within the host's Redis deadline (1 s;
    // asserted with room), until the new master takes them.
    let mut refused = Vec::new();
    let mut slowest_refusal = Duration::ZERO;
    let mut deepest_spool = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    let first_after = loop {
        assert!(
            Instant::now() < deadline,
            "no create succeeded after the failover"
        );
        let contact_ref = format!("sentinel-during-{}", refused.len());
        let asked = Instant::now();
        let (status, answer) = host.create_call(&body(&contact_ref));
        let took = asked.elapsed();
        if status == 202 {
            break contact_ref;
        }
        assert_eq!(status, 503, "{answer}");
        assert!(took < Duration::from_secs(5), "a 503 took {took:?}");
        slowest_refusal = slowest_refusal.max(took);
        deepest_spool = deepest_spool.max(host.spool_depth());
        refused.push(contact_ref);
        std::thread::sleep(Duration::from_millis(100));
    };
    let failover = killed_at.elapsed();
    accepted.push(first_after);
    assert!(!refused.is_empty(), "creates were refused without a master");
    assert!(
        deepest_spool > 0,
        "notifications of the calls in progress were spooled"
    );
    setup.redis.replica_promoted();
    assert!(
        eventually(Duration::from_secs(10), || setup.ready()),
        "ready again"
    );
    accepted.extend(setup.calls("sentinel-after", 4));

    let counted = setup.count_notifications(&accepted, &refused);
    eprintln!(
        "sentinel failover: {} calls, {counted} notifications counted, none lost or \
         duplicated; kill to first create accepted {failover:?}; {} creates refused, the \
         slowest in {slowest_refusal:?}; spool up to {deepest_spool}",
        accepted.len(),
        refused.len()
    );
}

/// `SENTINEL FAILOVER`: the master is not killed but made a replica of the promoted one, so
/// a connection that reaches it again gets `READONLY` and must be made to the new master.
#[test]
fn the_host_follows_a_switch_to_the_replica_with_the_old_master_alive() {
    let setup = Setup::start();
    let mut accepted = setup.calls("switch-before", 6);
    let mut c = setup.redis.sentinels[0].connection().expect("sentinel");
    redis::cmd("SENTINEL")
        .arg("FAILOVER")
        .arg(MASTER)
        .query::<()>(&mut c)
        .expect("SENTINEL FAILOVER");
    // Creates go on through the switch: each is accepted or refused with `503`.
    let mut refused = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let promoted = || master_port(&setup.redis.sentinels[0]) == Some(setup.redis.replica.port);
    let mut i = 0;
    while !promoted() || accepted.len() < 10 {
        assert!(Instant::now() < deadline, "the switch did not complete");
        let contact_ref = format!("switch-during-{i}");
        i += 1;
        let (status, answer) = setup.host.create_call(&body(&contact_ref));
        match status {
            202 => accepted.push(contact_ref),
            503 => refused.push(contact_ref),
            _ => panic!("{status}: {answer}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    setup.redis.replica_promoted();
    let old_is_replica = || setup.redis.master.replication_says("role:slave");
    assert!(
        eventually(Duration::from_secs(30), old_is_replica),
        "the old master is a replica now"
    );
    accepted.extend(setup.calls("switch-after", 4));
    assert!(
        eventually(Duration::from_secs(10), || setup.ready()),
        "ready after the switch"
    );
    let counted = setup.count_notifications(&accepted, &refused);
    eprintln!(
        "sentinel switch: {} calls, {counted} notifications counted, none lost or \
         duplicated; {} creates refused during the switch",
        accepted.len(),
        refused.len()
    );
}
