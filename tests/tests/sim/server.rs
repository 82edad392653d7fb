//! The simulator's manager protocol beyond the recorded cases: Asterisk 22's answers to
//! `Ping`, to actions before login, to unknown actions, to a second login; event delivery to
//! several sessions; `Events: off`; synchronous Originates; duplicate `ChannelId`s; the
//! agent's ring time bounded by the Originate `Timeout`.

use std::time::{Duration, Instant};

use crate::support::{config, connect, login, next, start, FAST, LIMIT};
use click2dial_tests::ami_client::AmiClient;
use click2dial_tests::pbx_sim::Simulator;
use click2dial_tests::transcript::header;

fn text(frame: &[u8]) -> String {
    String::from_utf8_lossy(frame).into_owned()
}

async fn originate(
    client: &mut AmiClient,
    id: &str,
    agent: &str,
    callee: &str,
    extra: &[(&str, &str)],
) {
    let channel = format!("PJSIP/{agent}");
    let mut headers = vec![
        ("Action", "Originate"),
        ("ActionID", id),
        ("Channel", channel.as_str()),
        ("Context", "c2d-outbound"),
        ("Exten", callee),
        ("Priority", "1"),
        ("CallerID", "27820001234"),
        ("ChannelId", id),
        ("Variable", "C2D_CONTACT_REF=crm-42"),
    ];
    headers.extend_from_slice(extra);
    client.action(&headers).await.unwrap();
}

/// Reads frames until one matches `until`; returns them all.
async fn read_until(client: &mut AmiClient, until: impl Fn(&[u8]) -> bool) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    loop {
        let frame = next(client).await;
        let done = until(&frame);
        frames.push(frame);
        if done {
            return frames;
        }
    }
}

fn is_hangup_of(id: &str) -> impl Fn(&[u8]) -> bool + '_ {
    move |f| f.starts_with(b"Event: Hangup\r\n") && header(f, "Uniqueid") == Some(id)
}

/// Every frame sent to `client` until no call is in progress. A first Ping makes sure every
/// action sent before was handled (so its call has started); once the simulator is idle, a
/// second Ping collects the rest: events queued before an action go out before its answer.
async fn drain(client: &mut AmiClient, sim: &Simulator) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    for id in ["drain-1", "drain-2"] {
        if id == "drain-2" {
            tokio::time::timeout(LIMIT, sim.idle()).await.unwrap();
        }
        client
            .action(&[("Action", "Ping"), ("ActionID", id)])
            .await
            .unwrap();
        frames.extend(read_until(client, |f| header(f, "ActionID") == Some(id)).await);
        frames.pop();
    }
    frames
}

/// How long after the Originate was sent the agent's phone stopped ringing (cause 19).
async fn ring(client: &mut AmiClient, id: &str, timeout: &str) -> Duration {
    let sent = Instant::now();
    originate(
        client,
        id,
        "1408",
        "0820001234",
        &[("Async", "true"), ("Timeout", timeout)],
    )
    .await;
    let frames = read_until(client, is_hangup_of(id)).await;
    assert_eq!(header(frames.last().unwrap(), "Cause"), Some("19"));
    sent.elapsed()
}

#[tokio::test]
async fn ping_answers_pong_with_a_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(config(dir.path(), FAST, &[])).await;
    let mut client = connect(running.addr).await;
    login(&mut client).await;
    client
        .action(&[("Action", "Ping"), ("ActionID", "p-1")])
        .await
        .unwrap();
    let pong = text(&next(&mut client).await);
    let lines: Vec<&str> = pong.split("\r\n").collect();
    assert_eq!(
        lines[..3],
        ["Response: Success", "ActionID: p-1", "Ping: Pong"],
        "{pong}"
    );
    let ts = lines[3].strip_prefix("Timestamp: ").unwrap();
    let (secs, micros) = ts.split_once('.').unwrap();
    assert!(
        secs.parse::<u64>().unwrap() > 1_600_000_000 && micros.len() == 6,
        "{ts}"
    );
    assert_eq!(lines[4..], ["", ""]);
    // Without an ActionID there is no ActionID line.
    client.action(&[("Action", "ping")]).await.unwrap();
    let pong = text(&next(&mut client).await);
    assert!(
        pong.starts_with("Response: Success\r\nPing: Pong\r\nTimestamp: "),
        "{pong}"
    );
}

#[tokio::test]
async fn actions_before_login_are_denied_and_logoff_says_goodbye() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(config(dir.path(), FAST, &[])).await;
    let mut client = connect(running.addr).await;
    for action in ["Ping", "Originate", "CoreShowChannels"] {
        client
            .action(&[("Action", action), ("ActionID", "a-1")])
            .await
            .unwrap();
        assert_eq!(
            text(&next(&mut client).await),
            "Response: Error\r\nActionID: a-1\r\nMessage: Permission denied\r\n\r\n"
        );
    }
    client
        .action(&[("ActionID", "a-2"), ("Foo", "bar")])
        .await
        .unwrap();
    assert_eq!(
        text(&next(&mut client).await),
        "Response: Error\r\nActionID: a-2\r\nMessage: Missing action in request\r\n\r\n"
    );
    client
        .action(&[("Action", "Logoff"), ("ActionID", "bye")])
        .await
        .unwrap();
    assert_eq!(
        text(&next(&mut client).await),
        "Response: Goodbye\r\nActionID: bye\r\nMessage: Thanks for all the fish.\r\n\r\n"
    );
    assert_eq!(client.next_frame_within(LIMIT).await.unwrap(), None);
}

#[tokio::test]
async fn bad_login_answers_after_the_delay_then_closes() {
    let dir = tempfile::tempdir().unwrap();
    // 0.1: the 1 s delay of Asterisk takes 100 ms.
    let running = start(config(dir.path(), 0.1, &[])).await;
    let mut client = connect(running.addr).await;
    let sent = Instant::now();
    client
        .send(b"Action: Login\r\nActionID: login-1\r\nUsername: c2d\r\nSecret: nope\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(
        text(&next(&mut client).await),
        "Response: Error\r\nActionID: login-1\r\nMessage: Authentication failed\r\n\r\n"
    );
    assert!(
        sent.elapsed() >= Duration::from_millis(95),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(
        client.next_frame_within(LIMIT).await.unwrap(),
        None,
        "closed, no Goodbye"
    );
}

#[tokio::test]
async fn unknown_action_second_login_and_events_off() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(config(dir.path(), FAST, &[])).await;
    let mut client = connect(running.addr).await;
    login(&mut client).await;
    client
        .action(&[("Action", "QueueStatus"), ("ActionID", "q")])
        .await
        .unwrap();
    assert_eq!(
        text(&next(&mut client).await),
        "Response: Error\r\nActionID: q\r\nMessage: Invalid/unknown command: QueueStatus. \
         Use Action: ListCommands to show available commands.\r\n\r\n"
    );
    client
        .action(&[
            ("Action", "Login"),
            ("Username", "c2d"),
            ("Secret", "secret"),
        ])
        .await
        .unwrap();
    assert_eq!(
        text(&next(&mut client).await),
        "Response: Success\r\nMessage: Already authenticated\r\n\r\n"
    );

    // A session that switched events off gets no FullyBooted and none of the call's events.
    let mut quiet = connect(running.addr).await;
    quiet
        .action(&[
            ("Action", "Login"),
            ("Username", "C2D"),
            ("Secret", "secret"),
            ("Events", "off"),
        ])
        .await
        .unwrap();
    assert_eq!(
        text(&next(&mut quiet).await),
        "Response: Success\r\nMessage: Authentication accepted\r\n\r\n"
    );
    originate(
        &mut client,
        "c2d-q",
        "1001",
        "0820000404",
        &[("Async", "true")],
    )
    .await;
    assert!(drain(&mut client, &running.sim).await.len() > 20);
    quiet
        .action(&[("Action", "Ping"), ("ActionID", "p")])
        .await
        .unwrap();
    assert!(next(&mut quiet)
        .await
        .starts_with(b"Response: Success\r\nActionID: p\r\nPing: Pong"));
}

#[tokio::test]
async fn every_logged_in_session_gets_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(config(dir.path(), FAST, &[])).await;
    let mut a = connect(running.addr).await;
    let mut b = connect(running.addr).await;
    let mut c = connect(running.addr).await; // never logs in
    login(&mut a).await;
    login(&mut b).await;
    originate(
        &mut a,
        "c2d-both",
        "1001",
        "0820001234",
        &[("Async", "true")],
    )
    .await;
    let from_a = drain(&mut a, &running.sim).await;
    let from_b = drain(&mut b, &running.sim).await;
    assert!(from_a[0].starts_with(b"Response: Success\r\nActionID: c2d-both\r\n"));
    let texts = |frames: &[Vec<u8>]| frames.iter().map(|f| text(f)).collect::<Vec<_>>();
    assert_eq!(
        texts(&from_a[1..]),
        texts(&from_b),
        "the same events, in the same order"
    );
    // a_success has 93 events after the answer; without a recording reference MixMonitorStart
    // and its VarSet are left out, and one Originate variable means one VarSet fewer.
    assert_eq!(from_b.len(), 93 - 3);
    // Two calls at once, from two sessions: each session sees both.
    originate(&mut a, "c2d-x1", "1001", "0820000486", &[("Async", "true")]).await;
    originate(&mut b, "c2d-x2", "1001", "0820000404", &[("Async", "true")]).await;
    for (client, id) in [(&mut a, "c2d-x1"), (&mut b, "c2d-x2")] {
        let mut frames = read_until(client, |f| {
            f.starts_with(b"Response: ") && header(f, "ActionID") == Some(id)
        })
        .await;
        frames.extend(drain(client, &running.sim).await);
        for id in ["c2d-x1", "c2d-x2"] {
            assert!(
                frames.iter().any(|f| is_hangup_of(id)(f)),
                "{id} seen by both"
            );
        }
    }
    c.action(&[("Action", "Logoff")]).await.unwrap();
    let unauthenticated = c.read_to_close().await.unwrap();
    assert_eq!(unauthenticated.len(), 1, "only its Goodbye");
}

#[tokio::test]
async fn synchronous_originate_answers_once_the_agent_answered() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(config(dir.path(), FAST, &[])).await;
    let mut client = connect(running.addr).await;
    login(&mut client).await;
    originate(&mut client, "c2d-sync", "1001", "0820001234", &[]).await;
    let frames = drain(&mut client, &running.sim).await;
    // The answer comes first (events waited behind it), and no OriginateResponse is sent.
    assert_eq!(
        text(&frames[0]),
        "Response: Success\r\nActionID: c2d-sync\r\nMessage: Originate successfully queued\r\n\r\n"
    );
    assert!(frames[1].starts_with(b"Event: Newchannel\r\n"));
    assert!(!frames
        .iter()
        .any(|f| f.starts_with(b"Event: OriginateResponse")));
    originate(&mut client, "c2d-sync-busy", "1486", "0820001234", &[]).await;
    assert_eq!(
        text(&next(&mut client).await),
        "Response: Error\r\nActionID: c2d-sync-busy\r\nMessage: Originate failed\r\n\r\n"
    );
}

#[tokio::test]
async fn a_live_channel_id_cannot_be_originated_again() {
    let dir = tempfile::tempdir().unwrap();
    // Real time: the first call is still ringing when the second Originate arrives.
    let running = start(config(dir.path(), 1.0, &[])).await;
    let mut client = connect(running.addr).await;
    login(&mut client).await;
    originate(
        &mut client,
        "c2d-dup",
        "1001",
        "0820001234",
        &[("Async", "true")],
    )
    .await;
    read_until(&mut client, |f| f.starts_with(b"Event: Newchannel\r\n")).await;
    client
        .action(&[
            ("Action", "Originate"),
            ("ActionID", "again"),
            ("Channel", "PJSIP/1001"),
            ("Context", "c2d-outbound"),
            ("Exten", "0820001234"),
            ("Priority", "1"),
            ("Async", "true"),
            ("ChannelId", "c2d-dup"),
        ])
        .await
        .unwrap();
    let frames = read_until(&mut client, |f| {
        f.starts_with(b"Event: OriginateResponse\r\n") && header(f, "ActionID") == Some("again")
    })
    .await;
    let failure = text(frames.last().unwrap());
    assert_eq!(
        failure,
        "Event: OriginateResponse\r\nPrivilege: call,all\r\nActionID: again\r\n\
         Response: Failure\r\nChannel: PJSIP/1001\r\nContext: c2d-outbound\r\n\
         Exten: 0820001234\r\nReason: 0\r\nUniqueid: c2d-dup\r\n\
         CallerIDNum: <unknown>\r\nCallerIDName: <unknown>\r\n\r\n"
    );
    assert_eq!(running.sim.active_calls(), 1, "the first call goes on");
}

#[tokio::test]
async fn agent_rings_for_the_originate_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(config(dir.path(), FAST, &[])).await;
    let mut client = connect(running.addr).await;
    login(&mut client).await;
    // 60 s at 0.01 is 600 ms after the answer; 1 s is 10 ms.
    let long = ring(&mut client, "c2d-long", "60000").await;
    drain(&mut client, &running.sim).await;
    let short = ring(&mut client, "c2d-short", "1000").await;
    assert!(long >= Duration::from_millis(600), "{long:?}");
    assert!(short < Duration::from_millis(400), "{short:?}");
}
