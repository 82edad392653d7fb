//! Redis Cluster: three masters (real `redis-server --cluster-enabled yes` processes joined
//! by `redis-cli --cluster create`), the host configured with them as seeds (`[redis]
//! cluster`), calls running on the PBX simulator. A real consumer reads every call's list
//! with `BRPOP` through redis-rs's cluster client, so from the node that owns the list's
//! slot. The whole flow and idempotency under it; then slots moved from one master to
//! another (`redis-cli --cluster reshard`) while calls are created and notified: every
//! accepted call is notified once per event, in order, to its last event.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use crate::support::cluster::{Cluster, Consumer};
use crate::support::{call_body, calls_and_events, events, eventually, Host, Sim, ANSWERED};

const LEGACY: &str = "enigma:notifications:c2d";

fn list(contact_ref: &str) -> String {
    format!("teleforge:notifications:c2d:{contact_ref}")
}

/// The cluster, the simulator and the host configured with the cluster, ready.
struct Setup {
    cluster: Cluster,
    host: Host,
    sim: Sim,
    _recordings: tempfile::TempDir,
}

impl Setup {
    fn start(time_scale: &str) -> Self {
        Self::start_with(time_scale, &[])
    }

    /// As [`Self::start`], with the host's additional `C2D_*` variables.
    fn start_with(time_scale: &str, extra: &[(&str, &str)]) -> Self {
        let cluster = Cluster::start();
        let recordings = tempfile::tempdir().expect("tempdir");
        let sim = Sim::start_scaled(recordings.path(), "127.0.0.1:0", None, time_scale);
        let vars = cluster.host_vars();
        let host = Host::start_on(
            &vars.each_ref().map(|(k, v)| (*k, v.as_str())),
            &sim.address,
            recordings.path(),
            extra,
        );
        let setup = Self {
            cluster,
            host,
            sim,
            _recordings: recordings,
        };
        assert!(
            eventually(Duration::from_secs(20), || setup.host.get("/readyz").status
                == 200),
            "ready at start: {:?}",
            String::from_utf8_lossy(&setup.host.get("/readyz").body)
        );
        setup
    }
}

#[test]
fn the_shared_list_keeps_only_its_newest_entries_under_a_cluster() {
    let setup = Setup::start_with("0.01", &[("C2D_REDIS__LEGACY_MAX_LEN", "3")]);
    let mut consumer = Consumer::new(&setup.cluster);
    for i in 0..3 {
        let r = format!("cl-legacy-{i}");
        let (status, answer) = setup.host.create_call(&call_body("1404", "0820001234", &r));
        assert_eq!(status, 202, "{answer}");
        let got = consumer.follow(&list(&r), "failed", Duration::from_secs(20));
        assert_eq!(events(&got), ["queued", "failed"], "{r}");
    }
    // The shared list's step runs after the call's own: wait until the last is in it.
    assert!(
        eventually(Duration::from_secs(10), || consumer
            .peek_newest(LEGACY)
            .is_some_and(
                |n| n["contact_ref"] == "cl-legacy-2" && n["event"] == "failed"
            )),
        "the last call's failed reached the shared list"
    );
    let kept = calls_and_events(&consumer.drain(LEGACY));
    let expected = [
        ("cl-legacy-1", "failed"),
        ("cl-legacy-2", "queued"),
        ("cl-legacy-2", "failed"),
    ]
    .map(|(c, e)| (c.to_string(), e.to_string()));
    assert_eq!(
        kept, expected,
        "six pushed, the newest three kept, oldest first"
    );
}

#[test]
fn the_whole_flow_and_idempotency_under_a_cluster() {
    let mut setup = Setup::start("0.3");
    let refs: Vec<String> = (0..6).map(|i| format!("cl-flow-{i}")).collect();
    // Calls whose lists are on different masters.
    let slots: HashSet<u16> = refs.iter().map(|r| setup.cluster.slot(&list(r))).collect();
    let masters: HashSet<u16> = slots.iter().map(|s| setup.cluster.owner(*s).port).collect();
    assert!(
        masters.len() >= 2,
        "the calls' lists are on several masters"
    );
    let mut answers = Vec::new();
    for r in &refs {
        let (status, answer) = setup.host.create_call(&call_body("1001", "0820001234", r));
        assert_eq!(status, 202, "{answer}");
        assert_eq!(answer["notifications_key"], list(r), "the contract's key");
        answers.push(answer);
    }
    let mut consumer = Consumer::new(&setup.cluster);
    for r in &refs {
        let got = consumer.follow(&list(r), "recording_ready", Duration::from_secs(30));
        assert_eq!(events(&got), ANSWERED, "{r}: all, in order, once");
        assert!(got.iter().all(|n| n["contact_ref"] == r.as_str()));
    }
    // The call resource reads the history in the list's slot.
    for r in &refs {
        let call = setup.host.get(&format!("/click2dial/calls/{r}"));
        assert_eq!(
            call.status,
            200,
            "{:?}",
            String::from_utf8_lossy(&call.body)
        );
        let call = call.json();
        assert_eq!(call["state"], "disconnected", "{call}");
        assert_eq!(call["reason"], "hangUp", "{call}");
    }
    let page = setup.host.get("/click2dial/calls?limit=100").json();
    let listed: HashSet<&str> = page["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .filter_map(|c| c["contact_ref"].as_str())
        .collect();
    assert!(refs.iter().all(|r| listed.contains(r.as_str())), "{page}");
    // A repeat answers the first answer and dials nothing.
    for (r, first) in refs.iter().zip(&answers) {
        let (status, again) = setup.host.create_call(&call_body("1001", "0820001234", r));
        assert_eq!(status, 202, "{again}");
        assert_eq!(&again, first, "{r}: the first answer");
        assert_eq!(setup.sim.originates_of(r), 1, "{r} dialled once");
        let (status, conflict) = setup.host.create_call(&call_body("1001", "0820009999", r));
        assert_eq!(status, 409, "{conflict}");
    }
    // Nothing pushed twice: the lists stay empty; the shared list has each once.
    std::thread::sleep(Duration::from_millis(500));
    for r in &refs {
        assert_eq!(consumer.len(&list(r)), 0, "{r}: nothing after the last");
    }
    let legacy = consumer.drain(LEGACY);
    assert_eq!(legacy.len(), refs.len() * ANSWERED.len());
    for r in &refs {
        let own: Vec<serde_json::Value> = legacy
            .iter()
            .filter(|n| n["contact_ref"] == r.as_str())
            .cloned()
            .collect();
        assert_eq!(events(&own), ANSWERED, "{r} in the shared list, in order");
    }
    // A call's marks and history are in its list's slot (hash tag: the list's name).
    let r = &refs[0];
    let slot = setup.cluster.slot(&list(r));
    let mut node = setup.cluster.owner(slot).connection().expect("node");
    let keys: Vec<String> = redis::cmd("CLUSTER")
        .arg("GETKEYSINSLOT")
        .arg(slot)
        .arg(100)
        .query(&mut node)
        .expect("GETKEYSINSLOT");
    let tag = format!("{{{}}}", list(r));
    assert_eq!(
        keys.iter()
            .filter(|k| k.starts_with(&format!("teleforge:c2d:sent:{tag}:")))
            .count(),
        ANSWERED.len(),
        "{keys:?}"
    );
    assert!(
        keys.contains(&format!("teleforge:c2d:history:{tag}:e2e:{r}")),
        "{keys:?}"
    );
    assert_eq!(setup.host.spool_depth(), 0);

    // A master lost: the cluster fails (no replicas), and so does readiness.
    setup.cluster.nodes[2].kill();
    assert!(
        eventually(Duration::from_secs(10), || setup.host.get("/readyz").status
            == 503),
        "not ready with a master gone"
    );
}

/// What a real consumer counted for one accepted call.
#[derive(Default)]
struct Count {
    notified: usize,
    lost: usize,
    duplicated: usize,
    out_of_order: bool,
}

fn count(got: &[serde_json::Value]) -> Count {
    let got = events(got);
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &got {
        *seen.entry(e.as_str()).or_default() += 1;
    }
    let mut c = Count {
        notified: got.len(),
        ..Count::default()
    };
    for e in ANSWERED {
        match seen.get(e).copied().unwrap_or(0) {
            0 => c.lost += 1,
            n => c.duplicated += n - 1,
        }
    }
    c.out_of_order = c.lost == 0 && c.duplicated == 0 && got != ANSWERED;
    c
}

/// Tells the creator to stop when dropped.
struct Stop<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn a_reshard_during_calls_loses_and_duplicates_nothing() {
    let setup = Setup::start("0.3");
    let moved: HashSet<u16> = setup.cluster.nodes[0].own_slots().into_iter().collect();
    assert!(!moved.is_empty());
    let resharding = std::sync::atomic::AtomicBool::new(true);
    let mut accepted: Vec<String> = Vec::new();
    let mut refused: Vec<String> = Vec::new();
    let mut slowest_refusal = Duration::ZERO;
    let mut reshard_took = Duration::ZERO;
    let mut back_took = Duration::ZERO;
    let mut emptied = false;
    std::thread::scope(|s| {
        let creator = s.spawn(|| {
            let mut accepted = Vec::new();
            let mut refused = Vec::new();
            let mut slowest = Duration::ZERO;
            let mut i = 0;
            let mut after = None;
            loop {
                if !resharding.load(std::sync::atomic::Ordering::SeqCst) {
                    // Calls go on for a second after the slots moved.
                    let since = *after.get_or_insert_with(Instant::now);
                    if since.elapsed() > Duration::from_secs(1) {
                        break;
                    }
                }
                let r = format!("cl-reshard-{i}");
                i += 1;
                let asked = Instant::now();
                let (status, answer) = setup.host.create_call(&call_body("1001", "0820001234", &r));
                match status {
                    202 => accepted.push(r),
                    503 => {
                        slowest = slowest.max(asked.elapsed());
                        refused.push(r);
                    }
                    _ => panic!("{status}: {answer}"),
                }
                std::thread::sleep(Duration::from_millis(60));
            }
            (accepted, refused, slowest)
        });
        // The creator stops whatever happens here (a panic would wait for it forever).
        let _stop = Stop(&resharding);
        // Calls running on every master, then every slot of the first moved to the second,
        // and as many back (keys that moved once may move again).
        std::thread::sleep(Duration::from_secs(2));
        reshard_took = setup.cluster.reshard(0, 1, moved.len());
        emptied = setup.cluster.nodes[0].own_slots().is_empty();
        back_took = setup.cluster.reshard(1, 0, moved.len());
        resharding.store(false, std::sync::atomic::Ordering::SeqCst);
        (accepted, refused, slowest_refusal) = creator.join().expect("creator");
    });
    assert!(emptied, "every slot of the first master moved");
    assert_eq!(setup.cluster.nodes[0].own_slots().len(), moved.len());
    let on_moved = accepted
        .iter()
        .filter(|r| moved.contains(&setup.cluster.slot(&list(r))))
        .count();
    assert!(on_moved > 0, "some calls' keys were in the moved slots");

    let mut consumer = Consumer::new(&setup.cluster);
    let (mut notified, mut lost, mut duplicated, mut disordered) = (0, 0, 0, 0);
    for r in &accepted {
        let mut got = consumer.follow(&list(r), "recording_ready", Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(20));
        got.extend(consumer.drain(&list(r)));
        let c = count(&got);
        notified += c.notified;
        lost += c.lost;
        duplicated += c.duplicated;
        disordered += usize::from(c.out_of_order);
        if c.lost + c.duplicated > 0 || c.out_of_order {
            eprintln!("{r}: {:?}", events(&got));
        }
    }
    // Nothing arrives late: the lists stay empty.
    std::thread::sleep(Duration::from_millis(500));
    for r in &accepted {
        duplicated += consumer.len(&list(r));
    }
    for r in &refused {
        assert_eq!(consumer.len(&list(r)), 0, "{r} was refused: never notified");
    }
    // The shared list: each notification once, each call's in order.
    let legacy = consumer.drain(LEGACY);
    let (mut legacy_lost, mut legacy_dup) = (0, 0);
    for r in &accepted {
        let own: Vec<serde_json::Value> = legacy
            .iter()
            .filter(|n| n["contact_ref"] == r.as_str())
            .cloned()
            .collect();
        let c = count(&own);
        legacy_lost += c.lost;
        legacy_dup += c.duplicated;
        disordered += usize::from(c.out_of_order);
    }
    assert!(
        eventually(Duration::from_secs(10), || setup.host.spool_depth() == 0),
        "the spool drained"
    );
    eprintln!(
        "cluster reshard: {} slots moved in {reshard_took:?} and as many back in \
         {back_took:?} while calls ran; created {} \
         ({on_moved} with keys in the moved slots), {} answered 503 (the slowest in \
         {slowest_refusal:?}); notified {notified} (expected {}), lost {lost}, duplicated \
         {duplicated}, out of order {disordered}; shared list {} entries, lost {legacy_lost}, \
         duplicated {legacy_dup}",
        moved.len(),
        accepted.len(),
        refused.len(),
        accepted.len() * ANSWERED.len(),
        legacy.len(),
    );
    assert_eq!(
        (lost, duplicated, disordered, legacy_lost, legacy_dup),
        (0, 0, 0, 0, 0)
    );
    assert_eq!(notified, accepted.len() * ANSWERED.len());
    assert!(
        accepted.len() >= 20,
        "calls ran during the reshard: {}",
        accepted.len()
    );
}

/// A slot caught half-migrated (by hand: `SETSLOT MIGRATING`/`IMPORTING`, the call's list
/// moved with `MIGRATE`, its marks and history not yet): the call's push script names keys
/// on both sides, so the source answers `TRYAGAIN` for as long as that lasts. The host's
/// retries run out, its notifications wait in the spool and are pushed again; once the
/// slot's other keys have moved and the slot is the target's, they arrive, once each, in
/// order. Creates meanwhile are decided (their claims follow `ASK`).
#[test]
fn a_half_migrated_slot_holds_a_calls_notifications_in_the_spool_then_delivers_them() {
    let setup = Setup::start("1");
    let r = "cl-half-0";
    let slot = setup.cluster.slot(&list(r));
    let source = setup.cluster.owner(slot);
    let target = setup
        .cluster
        .nodes
        .iter()
        .find(|n| n.port != source.port)
        .expect("another master");
    let (status, answer) = setup.host.create_call(&call_body("1001", "0820001234", r));
    assert_eq!(status, 202, "{answer}");
    let mut s = source.connection().expect("source");
    let mut t = target.connection().expect("target");
    let queued = || {
        redis::cmd("LLEN")
            .arg(list(r))
            .query::<usize>(&mut source.connection().expect("source"))
            .is_ok_and(|n| n >= 1)
    };
    assert!(eventually(Duration::from_secs(5), queued), "queued pushed");
    let setslot = |c: &mut redis::Connection, how: &str, id: &str| {
        redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg(how)
            .arg(id)
            .query::<()>(c)
            .expect("CLUSTER SETSLOT");
    };
    let migrate = |c: &mut redis::Connection, keys: &[String]| {
        redis::cmd("MIGRATE")
            .arg("127.0.0.1")
            .arg(target.port)
            .arg("")
            .arg(0)
            .arg(5000)
            .arg("KEYS")
            .arg(keys)
            .query::<String>(c)
            .expect("MIGRATE");
    };
    setslot(&mut t, "IMPORTING", &source.id());
    setslot(&mut s, "MIGRATING", &target.id());
    migrate(&mut s, &[list(r)]);
    let half_from = Instant::now();

    // While it lasts: the call's events wait in the spool; other creates are decided.
    let spooled = || setup.host.spool_depth() > 0;
    assert!(
        eventually(Duration::from_secs(8), spooled),
        "the call's next events wait in the spool"
    );
    let others: Vec<String> = (0..3).map(|i| format!("cl-half-other-{i}")).collect();
    for other in &others {
        let (status, answer) = setup
            .host
            .create_call(&call_body("1001", "0820001234", other));
        assert_eq!(status, 202, "{answer}");
    }
    std::thread::sleep(Duration::from_secs(3));
    let deepest = setup.host.spool_depth();
    assert!(deepest > 0, "still spooled while the slot is half-migrated");

    // The rest of the slot moves; the slot is the target's everywhere.
    let rest: Vec<String> = redis::cmd("CLUSTER")
        .arg("GETKEYSINSLOT")
        .arg(slot)
        .arg(1000)
        .query(&mut s)
        .expect("GETKEYSINSLOT");
    if !rest.is_empty() {
        migrate(&mut s, &rest);
    }
    let target_id = target.id();
    for node in &setup.cluster.nodes {
        setslot(&mut node.connection().expect("node"), "NODE", &target_id);
    }
    let held = half_from.elapsed();

    let mut consumer = Consumer::new(&setup.cluster);
    for each in std::iter::once(r.to_string()).chain(others) {
        let got = consumer.follow(&list(&each), "recording_ready", Duration::from_secs(60));
        assert_eq!(events(&got), ANSWERED, "{each}: all, in order, once");
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(consumer.len(&list(r)), 0, "nothing twice");
    assert!(
        eventually(Duration::from_secs(10), || setup.host.spool_depth() == 0),
        "the spool drained"
    );
    eprintln!(
        "cluster half-migrated slot: held {held:?}, up to {deepest} notifications spooled, \
         then every event of the call once, in order"
    );
}

/// Two hosts on one cluster and one PBX, as behind a load balancer: each sees every AMI
/// event and pushes every notification, each step exactly once by its marks (the call's
/// list, the shared list, the index, in three slots); the same create on both is dialled
/// once; one host SIGKILLed with calls running → the other finishes them.
#[test]
fn two_hosts_on_a_cluster_notify_once_each_and_survive_a_host() {
    let setup = Setup::start("0.5");
    let vars = setup.cluster.host_vars();
    let recordings = tempfile::tempdir().expect("tempdir");
    let mut second = Some(Host::start_on(
        &vars.each_ref().map(|(k, v)| (*k, v.as_str())),
        &setup.sim.address,
        recordings.path(),
        &[],
    ));
    let b = second.as_ref().expect("second host");
    assert!(
        eventually(Duration::from_secs(20), || b.get("/readyz").status == 200),
        "second host ready"
    );
    let mut refs = Vec::new();
    for i in 0..8 {
        let r = format!("cl-two-{i}");
        let host = if i % 2 == 0 { &setup.host } else { b };
        let (status, answer) = host.create_call(&call_body("1001", "0820001234", &r));
        assert_eq!(status, 202, "{answer}");
        refs.push(r);
    }
    // The same create through both: one dial, one answer.
    let same = call_body("1001", "0820001234", "cl-two-same");
    let (first, answer_a) = setup.host.create_call(&same);
    let (again, answer_b) = b.create_call(&same);
    assert_eq!((first, again), (202, 202), "{answer_a} {answer_b}");
    assert_eq!(answer_a, answer_b);
    refs.push("cl-two-same".to_string());
    // The second host dies with calls running; the first carries on alone.
    std::thread::sleep(Duration::from_millis(700));
    drop(second.take());
    let mut consumer = Consumer::new(&setup.cluster);
    for r in &refs {
        let got = consumer.follow(&list(r), "recording_ready", Duration::from_secs(60));
        assert_eq!(events(&got), ANSWERED, "{r}: all, in order, once");
    }
    std::thread::sleep(Duration::from_millis(500));
    for r in &refs {
        assert_eq!(consumer.len(&list(r)), 0, "{r}: nothing twice");
    }
    assert_eq!(setup.sim.originates_of("cl-two-same"), 1, "dialled once");
    let legacy = consumer.drain(LEGACY);
    assert_eq!(
        legacy.len(),
        refs.len() * ANSWERED.len(),
        "shared list once each"
    );
    for r in &refs {
        let own: Vec<serde_json::Value> = legacy
            .iter()
            .filter(|n| n["contact_ref"] == r.as_str())
            .cloned()
            .collect();
        assert_eq!(events(&own), ANSWERED, "{r} in the shared list, in order");
    }
}
