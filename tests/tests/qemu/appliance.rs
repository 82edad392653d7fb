//! Hardware-in-the-loop: the appliance image booted in QEMU (mps2-an385), talking to the PBX
//! simulator on the host over QEMU's user network. Each test boots its own device and
//! simulator on free ports; every test ends by decoding the device's defmt log and failing
//! on any panic or error line.

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::qemu_support::{error_body, firmware, CaptureAmi, Device, Response, Sim};
use click2dial_core::ami::{Action, Channel, Originate};
use click2dial_core::json::{self, Accepted};
use click2dial_core::reference::{ChannelId, ContactRef, Reference};
use click2dial_core::validate::Call;
use click2dial_core::{request, DialPolicy, Error, ErrorCode, Validators};

fn body(agent: &str, callee: &str, contact_ref: &str) -> String {
    format!(
        r#"{{"agent":"{agent}","callee":"{callee}","outbound_id":"27820001234","contact_ref":"{contact_ref}"}}"#
    )
}

/// The 16 bytes of entropy behind a 26-character lowercase base32 reference.
fn entropy_of(reference: &str) -> [u8; 16] {
    let mut bits: u128 = 0;
    for (i, c) in reference.bytes().enumerate() {
        let v = match c {
            b'a'..=b'z' => c - b'a',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("{reference:?} is not base32"),
        };
        if i < 25 {
            bits = (bits << 5) | u128::from(v);
        } else {
            bits = (bits << 3) | u128::from(v >> 2);
        }
    }
    bits.to_be_bytes()
}

fn json_str<'a>(body: &'a str, key: &str) -> &'a str {
    let start = body
        .find(&format!("\"{key}\":\""))
        .unwrap_or_else(|| panic!("no {key} in {body}"))
        + key.len()
        + 4;
    &body[start..start + body[start..].find('"').expect("closing quote")]
}

/// What the host answers for `body` (same core, same writers), given the references the
/// device chose; `seen` models the idempotency store across the table.
fn expected(
    validators: &Validators,
    body: &[u8],
    answer: &Response,
    seen: &mut HashMap<String, ((String, String, String), String)>,
) -> (u16, String) {
    let parsed = match request::parse(body) {
        Ok(p) => p,
        Err(e) => return (e.status(), error_body(&e)),
    };
    let valid = match validators.validate(&parsed, &DialPolicy::SOUTH_AFRICA) {
        Ok(v) => v,
        Err(e) => return (e.status(), error_body(&e)),
    };
    let text = answer.text();
    let payload = (
        valid.agent.to_string(),
        valid.callee.e164().to_string(),
        valid.outbound_id.as_str().to_string(),
    );
    if let Some(given) = valid.contact_ref {
        if let Some((first_payload, first_answer)) = seen.get(given) {
            return if *first_payload == payload {
                (202, first_answer.clone())
            } else {
                let e = Error::CONTACT_REF_CONFLICT;
                (e.status(), error_body(&e))
            };
        }
    }
    assert_eq!(
        answer.status,
        202,
        "{}: {text}",
        String::from_utf8_lossy(body)
    );
    let recording_ref = Reference::from_entropy(&entropy_of(json_str(&text, "recording_ref")));
    let contact_ref = match valid.contact_ref {
        Some(given) => ContactRef::Given(given),
        None => ContactRef::Generated(Reference::from_entropy(&entropy_of(json_str(
            &text,
            "contact_ref",
        )))),
    };
    let call = Call {
        valid,
        contact_ref,
        recording_ref,
    };
    let mut buf = [0u8; 2048];
    let n = json::write_accepted(
        &Accepted {
            call: &call,
            recording_url: None,
            notifications_key: None,
        },
        &mut buf,
    )
    .expect("fits");
    let want = String::from_utf8(buf[..n].to_vec()).expect("UTF-8");
    if let Some(given) = valid.contact_ref {
        seen.insert(given.to_string(), (payload, want.clone()));
    }
    (202, want)
}

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../core/fuzz/corpus/parse_validate"
    );
    let mut cases: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("core's parse_validate corpus")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("valid_") || name.starts_with("invalid_")
        })
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("read case"))
        })
        .collect();
    cases.sort();
    assert!(cases.len() >= 20, "the shared case table is missing");
    cases
}

#[test]
fn case_table_answers_are_the_hosts_byte_for_byte() {
    let Some(fw) = firmware() else { return };
    // A PBX that accepts every Originate: the answers depend on the request alone, whatever
    // a PBX's dialplan holds (pbx-sim plays one-leg calls too, but it is a PBX with the kit).
    let ami = CaptureAmi::start();
    let device = Device::boot(fw, ami.port, 1);
    let ready = device.post_when_ready(&body("1001", "0820001234", "warm-up"));
    assert_eq!(ready.status, 202, "{}", ready.text());
    let validators = Validators::new().expect("validators");
    let mut seen = HashMap::new();
    for (name, request) in corpus() {
        let answer = device.retry(|| device.post_as(Some("application/json"), &request));
        let (status, want) = expected(&validators, &request, &answer, &mut seen);
        assert_eq!(
            (answer.status, answer.text()),
            (status, want),
            "case {name}"
        );
        assert!(
            answer.head.contains("content-type: application/json"),
            "{name}"
        );
    }

    // Around the body: content type, size, framing.
    let valid = body("1001", "0820001234", "framing-1");
    let unsupported = (415, error_body(&Error::UNSUPPORTED_MEDIA_TYPE));
    let too_large = (413, error_body(&Error::BODY_TOO_LARGE));
    let malformed = (400, error_body(&Error::MALFORMED_JSON));
    for (what, content_type, request, want) in [
        (
            "text/plain",
            Some("text/plain"),
            valid.clone(),
            unsupported.clone(),
        ),
        ("no content type", None, valid.clone(), unsupported.clone()),
        (
            "empty body",
            Some("application/json"),
            String::new(),
            malformed.clone(),
        ),
        (
            "4097 bytes",
            Some("application/json"),
            format!("{{\"x\":\"{}\"}}", "y".repeat(4089)),
            too_large.clone(),
        ),
        (
            "5000 bytes",
            Some("application/json; charset=utf-8"),
            format!("{{\"x\":\"{}\"}}", "y".repeat(5000)),
            too_large.clone(),
        ),
    ] {
        let answer = device.retry(|| device.post_as(content_type, request.as_bytes()));
        assert_eq!((answer.status, answer.text()), want, "{what}");
    }

    // Chunked bodies: decoded, and still 413 past 4096 bytes.
    let chunked = |chunks: &[&[u8]]| {
        let mut r = b"POST /click2dial/calls HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for c in chunks {
            r.extend_from_slice(format!("{:x};ext=1\r\n", c.len()).as_bytes());
            r.extend_from_slice(c);
            r.extend_from_slice(b"\r\n");
        }
        r.extend_from_slice(b"0\r\nX-Trailer: 1\r\n\r\n");
        r
    };
    let body_bytes = body("1001", "0820001234", "chunked-1").into_bytes();
    let (a, b) = body_bytes.split_at(17);
    let answer = device.retry(|| device.raw(&chunked(&[a, b])));
    let (status, want) = expected(&validators, &body_bytes, &answer, &mut seen);
    assert_eq!((answer.status, answer.text()), (status, want), "chunked");
    let big = vec![b' '; 3000];
    let answer = device.retry(|| device.raw(&chunked(&[&big, &big])));
    assert_eq!(
        (answer.status, answer.text()),
        too_large,
        "chunked, 6000 bytes"
    );

    // Routing: the host's JSON answers; a request that is not HTTP: 400 without a body.
    let method_not_allowed = Error::request(
        ErrorCode::MethodNotAllowed,
        "this method is not allowed on this resource",
    );
    for (what, request, want) in [
        (
            "GET",
            &b"GET /click2dial/calls HTTP/1.1\r\nHost: d\r\n\r\n"[..],
            (405, error_body(&method_not_allowed)),
        ),
        (
            "other path",
            b"POST /calls HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\n\r\n",
            (404, error_body(&Error::NOT_FOUND)),
        ),
        (
            "garbage",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
            (400, String::new()),
        ),
    ] {
        let answer = device.retry(|| device.raw(request));
        assert_eq!((answer.status, answer.text()), want, "{what}");
        assert_eq!(
            answer.status == 405,
            answer.head.contains("allow: POST"),
            "{what}"
        );
    }
    // One Originate per new call (the warm-up, each new contact_ref, each generated one),
    // none for a repeat or a refusal.
    let accepted_new = 1 + seen.len() + corpus_generated(&validators);
    assert_eq!(ami.originates.lock().unwrap().len(), accepted_new);
    device.assert_log_clean();
}

/// Valid corpus bodies without a `contact_ref`: each gets a generated one and is dialled.
fn corpus_generated(validators: &Validators) -> usize {
    corpus()
        .iter()
        .filter(|(_, b)| {
            request::parse(b)
                .and_then(|r| validators.validate(&r, &DialPolicy::SOUTH_AFRICA))
                .is_ok_and(|v| v.contact_ref.is_none())
        })
        .count()
}

#[test]
fn a_valid_call_reaches_the_pbx_as_the_hosts_originate() {
    let Some(fw) = firmware() else { return };
    let ami = CaptureAmi::start();
    let device = Device::boot(fw, ami.port, 1);
    let answer = device.post_when_ready(&body("1001", "0820001234", "crm-42"));
    assert_eq!(answer.status, 202, "{}", answer.text());
    let recording_ref = json_str(&answer.text(), "recording_ref").to_string();
    let login = ami.logins.lock().unwrap()[0].clone();
    assert_eq!(
        String::from_utf8_lossy(&login),
        "Action: Login\r\nActionID: c2d-pf-0-login\r\nUsername: c2d\r\nSecret: secret\r\n\r\n"
    );
    let originates = ami.originates.lock().unwrap().clone();
    assert_eq!(originates.len(), 1);

    let id = ChannelId::for_contact_ref("crm-42").to_string();
    let variables = [
        ("C2D_CONTACT_REF", "crm-42"),
        ("C2D_RECORDING_REF", recording_ref.as_str()),
        ("C2D_OUTBOUND_ID", "27820001234"),
        ("C2D_CALLEE", "0820001234"),
        ("PJSIP_HEADER(add,X-Teleforge-Agent)", "1001"),
        ("PJSIP_HEADER(add,X-Teleforge-Callee)", "0820001234"),
        ("PJSIP_HEADER(add,X-Teleforge-Outbound-Id)", "27820001234"),
        ("PJSIP_HEADER(add,X-Teleforge-Contact-Ref)", "crm-42"),
        (
            "PJSIP_HEADER(add,X-Teleforge-Recording-Ref)",
            recording_ref.as_str(),
        ),
    ];
    let mut want = [0u8; 2048];
    let n = Originate {
        action_id: &id,
        channel: Channel::pjsip("1001"),
        context: "c2d-outbound",
        exten: "0820001234",
        priority: 1,
        caller_id: Some("0820001234"),
        timeout_ms: Some(20_000),
        channel_id: Some(&id),
        other_channel_id: None,
        variables: &variables,
    }
    .write(&mut want)
    .expect("fits");
    assert_eq!(
        String::from_utf8_lossy(&originates[0]),
        String::from_utf8_lossy(&want[..n])
    );
    device.assert_log_clean();

    // And the simulator, which speaks like the recorded Asterisk, accepts and plays it.
    let sim = Sim::start();
    let device = Device::boot(fw, sim.port, 1);
    let answer = device.post_when_ready(&body("1001", "0820001234", "crm-43"));
    assert_eq!(answer.status, 202, "{}", answer.text());
    let id = ChannelId::for_contact_ref("crm-43").to_string();
    let lines = wait_for(|| Some(sim.originate_lines(&id)).filter(|l| !l.is_empty()));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("channel=PJSIP/1001 exten=0820001234 outcome=answered"),
        "{}",
        lines[0]
    );
    device.assert_log_clean();
}

fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_retried_contact_ref_dials_once() {
    let Some(fw) = firmware() else { return };
    let sim = Sim::start();
    let device = Device::boot(fw, sim.port, 1);
    let first = device.post_when_ready(&body("1001", "0820001234", "retry-1"));
    assert_eq!(first.status, 202, "{}", first.text());
    // Retries, one of them with the callee in another form of the same number.
    for callee in ["0820001234", "27820001234", "0820001234"] {
        let again = device.post(&body("1001", callee, "retry-1"));
        assert_eq!((again.status, again.text()), (202, first.text()));
    }
    let conflict = device.post(&body("1002", "0820001234", "retry-1"));
    assert_eq!(
        (conflict.status, conflict.text()),
        (409, error_body(&Error::CONTACT_REF_CONFLICT))
    );
    std::thread::sleep(Duration::from_millis(500));
    let id = ChannelId::for_contact_ref("retry-1").to_string();
    assert_eq!(sim.originate_lines(&id).len(), 1, "{}", sim.log_text());
    device.assert_log_clean();
}

#[test]
fn pbx_away_answers_503_and_recovers_when_it_returns() {
    let Some(fw) = firmware() else { return };
    let mut sim = Sim::start();
    let device = Device::boot(fw, sim.port, 1);
    let up = device.post_when_ready(&body("1001", "0820001234", "before"));
    assert_eq!(up.status, 202, "{}", up.text());

    sim.stop();
    let unavailable = (503, error_body(&Error::PBX_UNAVAILABLE));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    let answer = loop {
        n += 1;
        let a = device.post(&body("1001", "0820001234", &format!("during-{n}")));
        if a.status == 503 || Instant::now() > deadline {
            break a;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!((answer.status, answer.text()), unavailable);
    // Still down a moment later: nothing was dialled, the answer is the same.
    std::thread::sleep(Duration::from_millis(500));
    let again = device.post(&body("1001", "0820001234", "during-x"));
    assert_eq!((again.status, again.text()), unavailable);

    sim.restart();
    let back = device.post_when_ready(&body("1001", "0820001234", "after"));
    assert_eq!(back.status, 202, "{}", back.text());
    let id = ChannelId::for_contact_ref("after").to_string();
    wait_for(|| Some(()).filter(|_| sim.originate_lines(&id).len() == 1));
    assert_eq!(
        sim.originate_lines(&ChannelId::for_contact_ref("during-x").to_string())
            .len(),
        0
    );
    let log = device.assert_log_clean();
    assert!(log.contains("AMI session ended"), "{log}");
}

#[test]
fn garbage_and_slow_clients_do_not_wedge_the_device() {
    let Some(fw) = firmware() else { return };
    let sim = Sim::start();
    let device = Device::boot(fw, sim.port, 1);
    let ready = device.post_when_ready(&body("1001", "0820001234", "wedge-0"));
    assert_eq!(ready.status, 202);
    let addr = ("127.0.0.1", device.http_port);

    // More idle and trickling connections than the device has listeners.
    let mut held = Vec::new();
    for i in 0..5 {
        let Ok(mut s) = TcpStream::connect(addr) else {
            continue;
        };
        if i % 2 == 0 {
            let _ = s.write_all(b"POST /click2dial/calls HTTP/1.1\r\nContent-Le");
        }
        held.push(s);
    }
    let slow = std::thread::spawn(move || {
        let Ok(mut s) = TcpStream::connect(addr) else {
            return;
        };
        for b in b"POST /click2dial/calls HTTP/1.1\r\nContent-Length: 10\r\n\r\n{" {
            if s.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(150));
        }
    });
    // Garbage of every kind, each on its own connection.
    let mut junk: Vec<Vec<u8>> = vec![
        vec![0u8; 3000],
        (0..2000u32).map(|i| (i * 7 + 13) as u8).collect(),
        b"POST /click2dial/calls HTTP/1.1\r\n".repeat(60),
        b"POST /click2dial/calls HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
        b"POST /click2dial/calls HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{\"agent\"".to_vec(),
        b"POST /click2dial/calls HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".to_vec(),
    ];
    junk.push(format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(1500)).into_bytes());
    let junk_threads: Vec<_> = junk
        .into_iter()
        .map(|bytes| {
            std::thread::spawn(move || {
                if let Ok(mut s) = TcpStream::connect(addr) {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(15)));
                    let _ = s.write_all(&bytes);
                    let _ = s.shutdown(std::net::Shutdown::Write);
                    let mut sink = Vec::new();
                    let _ = std::io::Read::read_to_end(&mut s, &mut sink);
                }
            })
        })
        .collect();

    // Valid requests are answered meanwhile (at the latest when the stuck clients time out).
    let started = Instant::now();
    let answer = device.post(&body("1001", "0820001234", "wedge-1"));
    assert_eq!(answer.status, 202, "{}", answer.text());
    assert!(started.elapsed() < Duration::from_secs(15));
    for t in junk_threads {
        let _ = t.join();
    }
    let _ = slow.join();
    drop(held);
    for i in 2..12 {
        let answer = device.post(&body("1001", "0820001234", &format!("wedge-{i}")));
        assert_eq!(answer.status, 202, "{}", answer.text());
    }
    device.assert_log_clean();
}

#[test]
fn two_hundred_sequential_requests_are_all_answered() {
    let Some(fw) = firmware() else { return };
    let sim = Sim::start();
    let device = Device::boot(fw, sim.port, 1);
    assert_eq!(
        device
            .post_when_ready(&body("1001", "0820001234", "seq-ready"))
            .status,
        202
    );
    let started = Instant::now();
    let mut refused = 0;
    for i in 0..200 {
        let request = if i % 4 == 3 {
            body("1001", "0900001234", &format!("seq-{i}"))
        } else {
            body("1001", "0820001234", &format!("seq-{i}"))
        };
        // Counted, not retried: every request must get its answer on the first connection.
        match device.post_as(Some("application/json"), request.as_bytes()) {
            Some(a) => {
                let want = if i % 4 == 3 { 422 } else { 202 };
                assert_eq!(a.status, want, "request {i}: {}", a.text());
            }
            None => refused += 1,
        }
    }
    assert_eq!(refused, 0, "connections refused or cut");
    eprintln!("200 sequential requests in {:?}", started.elapsed());
    device.assert_log_clean();
}
