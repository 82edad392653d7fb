//! Recordings over the real HTTP port: whole files, ranges, conditional requests, files
//! still being written, and hostile paths.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{world, TEST_KEY};

const REF: &str = "abcdefghijklmnopqrstuvwxyz";

/// A canonical PCM WAV header for `audio` bytes; sizes 0 when `complete` is false (what
/// Asterisk's format_wav writes until it closes the file).
fn wav(audio: usize, complete: bool) -> Vec<u8> {
    let data = u32::try_from(audio).expect("small");
    let (riff, data_len) = if complete { (data + 36, data) } else { (0, 0) };
    let mut v = Vec::with_capacity(44 + audio);
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&riff.to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&[1, 0, 1, 0]);
    v.extend_from_slice(&8000u32.to_le_bytes());
    v.extend_from_slice(&16000u32.to_le_bytes());
    v.extend_from_slice(&[2, 0, 16, 0]);
    v.extend_from_slice(b"data");
    v.extend_from_slice(&data_len.to_le_bytes());
    v.extend((0..audio).map(|i| (i % 251) as u8));
    v
}

fn is_complete_wav(bytes: &[u8]) -> bool {
    bytes.len() >= 44
        && &bytes[..4] == b"RIFF"
        && u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize + 8 == bytes.len()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).expect("write recording");
}

#[test]
fn whole_file_head_ranges_and_conditional_requests() {
    let w = world(&[]);
    w.own_recordings("e2e", &[REF]);
    let file = wav(16_000, true);
    write(w.recordings.path(), &format!("{REF}.wav"), &file);
    let path = format!("/click2dial/recordings/{REF}");
    let len = file.len();

    let whole = w.host.get(&path);
    assert_eq!(whole.status, 200);
    assert_eq!(whole.header("content-type"), Some("audio/wav"));
    assert_eq!(whole.header("content-length"), Some(&*len.to_string()));
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    assert!(whole.header("last-modified").is_some());
    assert_eq!(whole.header("cache-control"), Some("private, no-cache"));
    let etag = whole.header("etag").expect("ETag").to_string();
    assert!(etag.starts_with('"') && !etag.starts_with("W/"), "{etag}");
    assert_eq!(whole.body, file);

    let head = w.host.request("HEAD", &path, Some(TEST_KEY), &[], None);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some(&*len.to_string()));
    assert_eq!(head.header("etag"), Some(etag.as_str()));
    assert!(head.body.is_empty());

    let range = |value: &str, extra: &[(&str, &str)]| {
        let mut headers = vec![("range", value)];
        headers.extend_from_slice(extra);
        w.host.request("GET", &path, Some(TEST_KEY), &headers, None)
    };
    let first = range("bytes=0-43", &[]);
    assert_eq!(first.status, 206);
    assert_eq!(
        first.header("content-range"),
        Some(&*format!("bytes 0-43/{len}"))
    );
    assert_eq!(first.header("content-length"), Some("44"));
    assert_eq!(first.body, file[..44]);

    let middle = range("bytes=1000-1999", &[]);
    assert_eq!(middle.status, 206);
    assert_eq!(middle.body, file[1000..2000]);

    let suffix = range("bytes=-10", &[]);
    assert_eq!(suffix.status, 206);
    assert_eq!(suffix.body, file[len - 10..]);

    let open_ended = range(&format!("bytes={}-", len - 5), &[]);
    assert_eq!(open_ended.status, 206);
    assert_eq!(open_ended.body, file[len - 5..]);

    let beyond = range(&format!("bytes={len}-"), &[]);
    assert_eq!(beyond.status, 416);
    assert_eq!(beyond.code(), "range_not_satisfiable");
    assert_eq!(
        beyond.header("content-range"),
        Some(&*format!("bytes */{len}"))
    );
    assert_eq!(beyond.header("content-type"), Some("application/json"));

    let multi = range("bytes=0-1,10-11", &[]);
    assert_eq!(multi.status, 200, "multi-range: the whole file");
    assert_eq!(multi.body, file);

    let if_range_same = range("bytes=0-3", &[("if-range", &etag)]);
    assert_eq!(if_range_same.status, 206);
    let if_range_old = range("bytes=0-3", &[("if-range", "\"not-this-one\"")]);
    assert_eq!(
        if_range_old.status, 200,
        "a stale If-Range gets the whole file"
    );

    let not_modified = w.host.request(
        "GET",
        &path,
        Some(TEST_KEY),
        &[("if-none-match", &etag)],
        None,
    );
    assert_eq!(not_modified.status, 304);
    assert!(not_modified.body.is_empty());

    let unknown = w
        .host
        .get("/click2dial/recordings/zzzzzzzzzzzzzzzzzzzzzzzzzz");
    assert_eq!((unknown.status, unknown.code()), (404, "not_found".into()));

    let post = w
        .host
        .request("POST", &path, Some(TEST_KEY), &[], Some("x"));
    assert_eq!(
        (post.status, post.code()),
        (405, "method_not_allowed".into())
    );
}

#[test]
fn a_file_still_being_written_is_409_until_its_header_is_final() {
    let w = world(&[]);
    w.own_recordings("e2e", &[REF]);
    let path = format!("/click2dial/recordings/{REF}");
    // What MixMonitor leaves while the call lasts: audio after a header with sizes 0.
    write(
        w.recordings.path(),
        &format!("{REF}.wav"),
        &wav(8_000, false),
    );
    let answer = w.host.get(&path);
    assert_eq!(answer.status, 409);
    assert_eq!(answer.code(), "recording_in_progress");
    assert_eq!(answer.header("retry-after"), Some("5"));
    let head = w.host.request("HEAD", &path, Some(TEST_KEY), &[], None);
    assert_eq!(head.status, 409);
    // A header that promises less than the file holds: still growing.
    let mut growing = wav(4_000, true);
    growing.extend_from_slice(&[0; 4_000]);
    write(w.recordings.path(), &format!("{REF}.wav"), &growing);
    assert_eq!(w.host.get(&path).status, 409);
    // Closed by the PBX: sizes set.
    write(
        w.recordings.path(),
        &format!("{REF}.wav"),
        &wav(8_000, true),
    );
    let done = w.host.get(&path);
    assert_eq!(done.status, 200);
    assert!(is_complete_wav(&done.body));
}

#[test]
fn a_file_left_unfinished_is_served_once_abandoned() {
    let w = world(&[("C2D_RECORDINGS__ABANDONED_AFTER_SECS", "1")]);
    w.own_recordings("e2e", &[REF]);
    let path = format!("/click2dial/recordings/{REF}");
    write(w.recordings.path(), &format!("{REF}.wav"), &wav(800, false));
    assert_eq!(w.host.get(&path).status, 409);
    std::thread::sleep(Duration::from_millis(1_600));
    let answer = w.host.get(&path);
    assert_eq!(answer.status, 200, "its writer is gone: served as it is");
    assert_eq!(answer.body.len(), 44 + 800);
}

#[test]
fn a_call_recording_is_never_served_before_the_call_ends() {
    let w = world(&[]);
    w.own_recordings("e2e", &[REF]);
    let (status, answer) = w.host.create_call_when_ready(
        r#"{"agent":"1001","callee":"0820001234","outbound_id":"27820001234","contact_ref":"crm-rec"}"#,
    );
    assert_eq!(status, 202, "{answer}");
    let reference = answer["recording_ref"].as_str().expect("ref").to_string();
    let path = format!("/click2dial/recordings/{reference}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut in_progress = 0;
    let served = loop {
        let got = w.host.get(&path);
        match got.status {
            409 => {
                assert_eq!(got.code(), "recording_in_progress");
                in_progress += 1;
            }
            200 => break got,
            other => panic!(
                "unexpected {other}: {:?}",
                String::from_utf8_lossy(&got.body)
            ),
        }
        assert!(
            Instant::now() < deadline,
            "the recording never became ready"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(in_progress > 0, "the call was in progress at first");
    assert!(
        is_complete_wav(&served.body),
        "only the complete file is served"
    );
    let on_disk = std::fs::read(w.sim.recordings.join(format!("{reference}.wav"))).expect("file");
    assert_eq!(served.body, on_disk);
    // By then the call's last notification says so too.
    let got = w.redis.follow(
        "teleforge:notifications:c2d:crm-rec",
        &["recording_ready"],
        Duration::from_secs(20),
    );
    assert_eq!(
        got.last().map(|n| n["event"].clone()),
        Some("recording_ready".into())
    );
}

#[test]
fn hostile_paths_are_refused() {
    let w = world(&[]);
    w.own_recordings("e2e", &[REF]);
    w.own_recordings(
        "e2e",
        &[
            REF,
            "linkoutaaaaaaaaaaaaaaaaaaa",
            "linkdiraaaaaaaaaaaaaaaaaaa",
            "linkinaaaaaaaaaaaaaaaaaaaa",
        ],
    );
    let dir = w.recordings.path();
    let outside = tempfile::tempdir().expect("tempdir");
    let secret = wav(100, true);
    std::fs::write(outside.path().join("secret.wav"), &secret).expect("write");
    std::fs::write(outside.path().join("passwd"), b"root:x:0:0").expect("write");
    // Files whose names are not references: present, yet never reached.
    write(dir, "notaref.wav", &secret);
    write(dir, "ABCDEFGHIJKLMNOPQRSTUVWXYZ.wav", &secret);
    // References that are links out of the directory, and one that stays inside.
    let link_out = "linkoutaaaaaaaaaaaaaaaaaaa";
    let link_dir = "linkdiraaaaaaaaaaaaaaaaaaa";
    let link_in = "linkinaaaaaaaaaaaaaaaaaaaa";
    std::os::unix::fs::symlink(
        outside.path().join("secret.wav"),
        dir.join(format!("{link_out}.wav")),
    )
    .expect("symlink");
    std::os::unix::fs::symlink(outside.path(), dir.join(format!("{link_dir}.wav")))
        .expect("symlink");
    write(dir, &format!("{REF}.wav"), &wav(100, true));
    std::os::unix::fs::symlink(
        dir.join(format!("{REF}.wav")),
        dir.join(format!("{link_in}.wav")),
    )
    .expect("symlink");

    let p = "/click2dial/recordings/";
    let cases: Vec<(String, u16, &str)> = vec![
        (
            format!("{p}..%2F..%2Fetc%2Fpasswd"),
            400,
            "invalid_recording_ref",
        ),
        (
            format!("{p}%2e%2e%2f%2e%2e%2fetc%2fpasswd"),
            400,
            "invalid_recording_ref",
        ),
        (
            format!("{p}%252e%252e%252fetc%252fpasswd"),
            400,
            "invalid_recording_ref",
        ),
        (
            format!("{p}..%5c..%5cwindows%5cwin.ini"),
            400,
            "invalid_recording_ref",
        ),
        (format!("{p}%2Fetc%2Fpasswd"), 400, "invalid_recording_ref"),
        (format!("{p}.."), 400, "invalid_recording_ref"),
        (format!("{p}."), 400, "invalid_recording_ref"),
        (format!("{p}{REF}%00"), 400, "invalid_recording_ref"),
        (format!("{p}{REF}%00.wav"), 400, "invalid_recording_ref"),
        (format!("{p}{REF}.wav"), 400, "invalid_recording_ref"),
        (format!("{p}{REF}%2f.."), 400, "invalid_recording_ref"),
        (format!("{p}{REF};.wav"), 400, "invalid_recording_ref"),
        (
            format!("{p}%EF%BC%8E%EF%BC%8E%EF%BC%8F"),
            400,
            "invalid_recording_ref",
        ),
        (format!("{p}~root"), 400, "invalid_recording_ref"),
        (format!("{p}notaref"), 400, "invalid_recording_ref"),
        (
            format!("{p}ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
            400,
            "invalid_recording_ref",
        ),
        (format!("{p}{}", &REF[..25]), 400, "invalid_recording_ref"),
        (format!("{p}{REF}a"), 400, "invalid_recording_ref"),
        (
            format!("{p}abcdefghijklmnopqrstuvwxy0"),
            400,
            "invalid_recording_ref",
        ),
        (format!("{p}../../etc/passwd"), 404, "not_found"),
        (format!("{p}..//..//etc/passwd"), 404, "not_found"),
        (format!("{p}/etc/passwd"), 404, "not_found"),
        (format!("{p}{REF}/"), 404, "not_found"),
        (format!("{p}{REF}/../{REF}"), 404, "not_found"),
        (format!("{p}{link_out}"), 404, "not_found"),
        (format!("{p}{link_dir}"), 404, "not_found"),
    ];
    assert!(cases.len() >= 15);
    for (path, status, code) in &cases {
        let answer = w.host.raw(&format!(
            "GET {path} HTTP/1.1\r\nAuthorization: Bearer {TEST_KEY}"
        ));
        assert_eq!(answer.status, *status, "{path}");
        assert_eq!(answer.code(), *code, "{path}");
        assert_eq!(
            answer.header("content-type"),
            Some("application/json"),
            "{path}"
        );
        let text = String::from_utf8_lossy(&answer.body);
        assert!(
            !text.contains("root:") && !text.contains("RIFF"),
            "{path}: {text}"
        );
    }
    // A link is never followed, not even one that stays inside the directory (the file is
    // opened with O_NOFOLLOW relative to the directory).
    let inside = w.host.get(&format!("{p}{link_in}"));
    assert_eq!(inside.status, 404);
    // Without a key, not even the validity of a reference is disclosed.
    let anonymous = w
        .host
        .raw(&format!("GET {p}..%2F..%2Fetc%2Fpasswd HTTP/1.1"));
    assert_eq!(anonymous.status, 401);
}
