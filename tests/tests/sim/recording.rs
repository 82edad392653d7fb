//! The recording of an answered call: created at `MixMonitorStart` with zero sizes, growing
//! while the call lasts, a valid 8 kHz mono WAV of the call's length once its last channel
//! has hung up. No file without a recording reference, none for a path-like reference.

use std::path::Path;

use crate::support::{config, connect, login, next, start};
use click2dial_tests::transcript::header;

/// The RIFF and data sizes of a WAV header.
fn sizes(bytes: &[u8]) -> (u32, u32) {
    let le = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    (le(4), le(40))
}

fn assert_complete_wav(path: &Path, seconds: f64) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[0..4], b"RIFF");
    assert_eq!(&bytes[8..16], b"WAVEfmt ");
    let le16 = |at: usize| u16::from_le_bytes(bytes[at..at + 2].try_into().unwrap());
    let le32 = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!((le32(16), le16(20), le16(22)), (16, 1, 1), "PCM, mono");
    assert_eq!(
        (le32(24), le32(28), le16(32), le16(34)),
        (8000, 16000, 2, 16)
    );
    assert_eq!(&bytes[36..40], b"data");
    let (riff, data) = sizes(&bytes);
    assert_eq!(riff as usize, bytes.len() - 8);
    assert_eq!(data as usize, bytes.len() - 44);
    let length = f64::from(data) / 16000.0;
    assert!((length - seconds).abs() < 0.01, "{length} s");
}

#[tokio::test]
async fn the_recording_grows_during_the_call_and_is_complete_after_it() {
    let dir = tempfile::tempdir().unwrap();
    // 0.25: the bridged part of the recorded call (about 6 s) lasts 1.5 s.
    let running = start(config(dir.path(), 0.25, &[])).await;
    let mut client = connect(running.addr).await;
    login(&mut client).await;
    client
        .send(
            b"Action: Originate\r\nActionID: c2d-rec\r\nChannel: PJSIP/1001\r\n\
              Context: c2d-outbound\r\nExten: 0820001234\r\nPriority: 1\r\n\
              CallerID: 0820001234\r\nTimeout: 20000\r\nAsync: true\r\nChannelId: c2d-rec\r\n\
              Variable: C2D_CONTACT_REF=crm-42\r\nVariable: C2D_RECORDING_REF=rec-growing\r\n\r\n",
        )
        .await
        .unwrap();
    let path = dir.path().join("rec-growing.wav");
    let mut hangups = 0;
    let mut seen_growing = false;
    loop {
        let frame = next(&mut client).await;
        let event = header(&frame, "Event");
        if event == Some("VarSet") && header(&frame, "Variable") == Some("MIXMONITOR_FILENAME") {
            let dir = std::fs::canonicalize(dir.path()).unwrap();
            assert_eq!(
                header(&frame, "Value"),
                Some(dir.join("rec-growing.wav").to_str().unwrap())
            );
        }
        if event == Some("MixMonitorStart") {
            let bytes = std::fs::read(&path).expect("created at MixMonitorStart");
            assert!(
                bytes.len() >= 44 && sizes(&bytes) == (0, 0),
                "sizes not set yet"
            );
        }
        if event == Some("BridgeEnter") {
            // Over a second of call time later: audio was appended, the sizes are still 0.
            let bytes = std::fs::read(&path).unwrap();
            assert!(bytes.len() > 44 + 16_000, "{}", bytes.len());
            assert_eq!(sizes(&bytes), (0, 0));
            seen_growing = true;
        }
        if event == Some("Hangup") {
            hangups += 1;
            if hangups == 2 {
                break;
            }
        }
    }
    assert!(seen_growing);
    // Complete when the last channel's Hangup is sent: MixMonitorStart at 1.564 s, the last
    // Hangup at 9.571 s of the recorded call.
    assert_complete_wav(&path, 9.571 - 1.564);
}

#[tokio::test]
async fn no_recording_without_a_usable_reference() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(config(dir.path(), 0.01, &[])).await;
    let mut client = connect(running.addr).await;
    login(&mut client).await;
    for (id, variable) in [
        ("c2d-none", "C2D_CONTACT_REF=crm-42"),
        ("c2d-path", "C2D_RECORDING_REF=../escape"),
    ] {
        client
            .action(&[
                ("Action", "Originate"),
                ("ActionID", id),
                ("Channel", "PJSIP/1001"),
                ("Context", "c2d-outbound"),
                ("Exten", "0820000404"),
                ("Priority", "1"),
                ("Async", "true"),
                ("ChannelId", id),
                ("Variable", variable),
            ])
            .await
            .unwrap();
        let mut mixmonitor = false;
        loop {
            let frame = next(&mut client).await;
            mixmonitor |= header(&frame, "Event") == Some("MixMonitorStart");
            if header(&frame, "AppData").is_some_and(|d| d.contains("?MixMonitor(")) {
                let condition = if id == "c2d-none" { "0?" } else { "1?" };
                assert!(header(&frame, "AppData").unwrap().starts_with(condition));
            }
            if header(&frame, "Event") == Some("Hangup") && header(&frame, "Uniqueid") == Some(id) {
                break;
            }
        }
        assert_eq!(mixmonitor, id == "c2d-path", "{id}");
    }
    running.sim.idle().await;
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(entries.is_empty(), "nothing written");
    assert!(!dir.path().parent().unwrap().join("escape.wav").exists());
}
