//! The `pbx-sim` binary as a process: prints where it listens, serves a call, writes the
//! recording where it was told, stops cleanly on SIGTERM; refuses a bad time scale.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{connect, login, next};
use click2dial_tests::transcript::header;

const BIN: &str = env!("CARGO_BIN_EXE_pbx-sim");

#[tokio::test]
async fn serves_a_call_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let recordings = dir.path().join("recordings");
    let mut child = Command::new(BIN)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--time-scale",
            "0.01",
            "--recordings",
        ])
        .arg(&recordings)
        .args(["--outcome", "callee:0820001234=callee-busy"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("first line: {line:?}"))
        .to_owned();
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
        "{addr}"
    );

    let mut client = connect(addr.parse().unwrap()).await;
    login(&mut client).await;
    client
        .action(&[
            ("Action", "Originate"),
            ("ActionID", "cli-1"),
            ("Channel", "PJSIP/1001"),
            ("Context", "c2d-outbound"),
            ("Exten", "0820001234"),
            ("Priority", "1"),
            ("Async", "true"),
            ("ChannelId", "cli-1"),
            ("Variable", "C2D_RECORDING_REF=rec-cli"),
        ])
        .await
        .unwrap();
    let mut dial_end = None;
    loop {
        let frame = next(&mut client).await;
        if header(&frame, "Event") == Some("DialEnd") {
            dial_end = header(&frame, "DialStatus").map(str::to_owned);
        }
        if header(&frame, "Event") == Some("Hangup") && header(&frame, "Uniqueid") == Some("cli-1")
        {
            break;
        }
    }
    assert_eq!(dial_end.as_deref(), Some("BUSY"), "the override applies");
    let wav = std::fs::read(recordings.join("rec-cli.wav")).unwrap();
    assert_eq!(&wav[..4], b"RIFF");

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "pbx-sim did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
}

#[test]
fn refuses_a_time_scale_that_is_not_positive() {
    let out = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--time-scale", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing listens");
    let out = Command::new(BIN)
        .args(["--outcome", "callee:1=nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown outcome"));
}
