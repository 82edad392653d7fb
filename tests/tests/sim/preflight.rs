//! The simulator answers `ListCommands` and `ShowDialPlan` byte for byte as the real
//! Asterisk 22 did (`core/tests/fixtures/ami/preflight/full.*`), plays a PBX with the kit
//! loaded by default, and a misconfigured one with `missing_contexts`/`denied_actions`;
//! core's preflight reads it as it reads the real PBX.

use std::time::Duration;

use crate::support::{config, start, LIMIT};
use click2dial_core::ami::{Checks, ContextCheck, Outcome, Preflight};
use click2dial_tests::pbx_sim::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const FULL_SERVER: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../core/tests/fixtures/ami/preflight/full.server.ami"
));
const FULL_CLIENT: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../core/tests/fixtures/ami/preflight/full.client.ami"
));

/// The frames of `stream` (banner skipped) whose `ActionID` is one of `ids`, in order.
fn frames_for(stream: &[u8], ids: &[&str]) -> Vec<String> {
    let text = String::from_utf8_lossy(stream);
    let body = text.split_once("\r\n").map_or("", |(_, rest)| rest);
    body.split_inclusive("\r\n\r\n")
        .filter(|frame| {
            ids.iter()
                .any(|id| frame.contains(&format!("\r\nActionID: {id}\r\n")))
        })
        .map(str::to_owned)
        .collect()
}

/// The recorded actions with these `ActionID`s, as sent.
fn actions(ids: &[&str]) -> Vec<u8> {
    let text = String::from_utf8_lossy(FULL_CLIENT);
    text.split_inclusive("\r\n\r\n")
        .filter(|a| {
            ids.iter()
                .any(|id| a.contains(&format!("ActionID: {id}\r\n")))
        })
        .collect::<String>()
        .into_bytes()
}

async fn exchange(sim_config: Config, ids: &[&str], last: &str) -> Vec<u8> {
    let running = start(sim_config).await;
    let mut stream = TcpStream::connect(running.addr).await.expect("connect");
    stream
        .write_all(&actions(&["c2d-pf-0-login"]))
        .await
        .expect("login");
    stream.write_all(&actions(ids)).await.expect("send");
    let mut received = Vec::new();
    let wanted = format!("ActionID: {last}\r\n");
    tokio::time::timeout(LIMIT, async {
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed");
            received.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&received);
            if let Some(at) = text.rfind(&wanted) {
                if text[at..].contains("\r\n\r\n") {
                    return;
                }
            }
        }
    })
    .await
    .expect("answers in time");
    received
}

#[tokio::test]
async fn list_commands_and_show_dialplan_answer_as_asterisk_did() {
    let dir = tempfile::tempdir().expect("dir");
    // The contexts the kit model shares with the recorded dialplan (c2d-outbound's steps
    // differ; c2d-missing and extensions not in the kit are absent in both).
    let ids = [
        "c2d-pf-0-lc",
        "c2d-pf-0-1",
        "c2d-pf-0-2",
        "c2d-pf-0-3",
        "c2d-pf-0-4",
        "c2d-pf-0-5",
    ];
    let received = exchange(config(dir.path(), 1.0, &[]), &ids, "c2d-pf-0-5").await;
    let simulated = frames_for(&received, &ids);
    let recorded = frames_for(FULL_SERVER, &ids);
    assert_eq!(simulated.len(), recorded.len());
    for (sim, real) in simulated.iter().zip(&recorded) {
        assert_eq!(sim, real);
    }
}

#[tokio::test]
async fn a_denied_action_is_left_out_and_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let sim_config = Config {
        denied_actions: vec!["ShowDialPlan".into()],
        ..config(dir.path(), 1.0, &[])
    };
    let received = exchange(sim_config, &["c2d-pf-0-lc", "c2d-pf-0-1"], "c2d-pf-0-1").await;
    let frames = frames_for(&received, &["c2d-pf-0-lc", "c2d-pf-0-1"]);
    assert!(!frames[0].contains("\r\nShowDialPlan:"));
    assert!(frames[0].contains("\r\nOriginate: Originate a call."));
    assert_eq!(
        frames[1],
        "Response: Error\r\nActionID: c2d-pf-0-1\r\nMessage: Permission denied\r\n\r\n"
    );
}

/// The host's contexts with their defaults (`Config::pbx_contexts`).
const HOST_CONTEXTS: [ContextCheck<'static>; 5] = [
    ContextCheck {
        context: "c2d-outbound",
        extension: None,
        campaigns: false,
    },
    ContextCheck {
        context: "c2d-direct",
        extension: None,
        campaigns: false,
    },
    ContextCheck {
        context: "c2d-single",
        extension: None,
        campaigns: false,
    },
    ContextCheck {
        context: "c2d-tvc",
        extension: None,
        campaigns: true,
    },
    ContextCheck {
        context: "c2d-agent-webrtc",
        extension: Some("c2d"),
        campaigns: false,
    },
];

/// Runs core's login preflight against a simulator; the problem codes and campaigns.
async fn preflight(sim_config: Config) -> (Outcome, Vec<String>, Vec<String>) {
    let running = start(sim_config).await;
    let mut stream = TcpStream::connect(running.addr).await.expect("connect");
    let checks = Checks {
        username: "c2d",
        secret: "secret",
        contexts: &HOST_CONTEXTS,
        booted_within_ms: 5_000,
        answer_within_ms: 5_000,
        lists_channels: true,
    };
    let mut machine = Preflight::<'_, 16>::login(checks, 0);
    let mut buf = Vec::new();
    let mut out = [0u8; 512];
    let started = std::time::Instant::now();
    let outcome = loop {
        while let Some(n) = machine.poll_transmit(&mut out).expect("fits") {
            stream.write_all(&out[..n]).await.expect("send");
        }
        if let Some(outcome) = machine.outcome() {
            break outcome;
        }
        if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = buf.drain(..end + 2).take(end).collect();
            machine.handle_line(0, &line);
            continue;
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("the simulator answers")
            .expect("read");
        assert!(n > 0 && started.elapsed() < LIMIT);
        buf.extend_from_slice(&chunk[..n]);
    };
    let problems = machine
        .problems()
        .map(|p| format!("{} {}", p.code, p.subject()))
        .collect();
    let campaigns = machine.campaigns().iter().map(str::to_owned).collect();
    (outcome, problems, campaigns)
}

#[tokio::test]
async fn the_default_simulator_is_a_pbx_with_the_kit() {
    let dir = tempfile::tempdir().expect("dir");
    let (outcome, problems, campaigns) = preflight(config(dir.path(), 1.0, &[])).await;
    assert_eq!(outcome, Outcome::Passed, "{problems:?}");
    assert_eq!(campaigns, ["renewals", "spring"]);
}

#[tokio::test]
async fn missing_contexts_and_denied_actions_are_found() {
    let dir = tempfile::tempdir().expect("dir");
    let (outcome, problems, campaigns) = preflight(Config {
        missing_contexts: vec!["c2d-outbound".into(), "c2d-tvc".into()],
        ..config(dir.path(), 1.0, &[])
    })
    .await;
    assert_eq!(
        outcome,
        Outcome::Failed {
            session_usable: true
        }
    );
    assert_eq!(
        problems,
        [
            "dialplan_context_missing c2d-outbound",
            "dialplan_context_missing c2d-tvc"
        ]
    );
    assert!(campaigns.is_empty());
    let (outcome, problems, _) = preflight(Config {
        denied_actions: vec!["Originate".into()],
        ..config(dir.path(), 1.0, &[])
    })
    .await;
    assert_eq!(
        outcome,
        Outcome::Failed {
            session_usable: false
        }
    );
    assert_eq!(problems, ["ami_permission_missing Originate"]);
}
