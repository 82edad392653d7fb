//! The shared case table (core's fuzz seeds, `core/fuzz/corpus/parse_validate`) through the
//! host's real HTTP port: every refusal is the exact body core writes for that input, and
//! every acceptance is a 202 with the references the contract promises. The QEMU tests drive
//! the appliance with the same table (`qemu/appliance.rs`), so both deployments answer alike.

use crate::support::world;
use click2dial_core::{json, request, DialPolicy, Validators};

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../core/fuzz/corpus/parse_validate"
    );
    let mut cases: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("core's parse_validate corpus")
        .filter_map(|e| {
            let path = e.ok()?.path();
            let name = path.file_name()?.to_str()?.to_string();
            (name.starts_with("valid_") || name.starts_with("invalid_"))
                .then(|| (name, std::fs::read(&path).expect("read case")))
        })
        .collect();
    cases.sort();
    assert!(cases.len() >= 20, "the shared case table is missing");
    cases
}

#[test]
fn every_case_gets_cores_answer_from_the_host() {
    let w = world(&[]);
    let host = &w.host;
    let (status, _) = host.create_call_when_ready(
        r#"{"agent":"1001","callee":"0820001234","outbound_id":"27820001234","contact_ref":"warm-up"}"#,
    );
    assert_eq!(status, 202);
    let validators = Validators::new().expect("validators");
    let mut accepted = 0;
    // contact_ref → (payload, first answer): a repeat gets the first answer, a different
    // payload with the same contact_ref a 409.
    let mut seen: std::collections::HashMap<String, (String, String)> = Default::default();
    for (name, body) in corpus() {
        let text = String::from_utf8_lossy(&body).into_owned();
        let outcome =
            request::parse(&body).and_then(|r| validators.validate(&r, &DialPolicy::SOUTH_AFRICA));
        let (status, answer) = host.create_call_raw(&body);
        match outcome {
            Err(error) => {
                let mut buf = [0u8; json::ERROR_BODY_MAX_LEN];
                let n = json::write_error(&error, &mut buf).expect("fits");
                assert_eq!(status, error.status(), "{name}");
                assert_eq!(answer.as_bytes(), &buf[..n], "{name}");
            }
            // One-leg calls: pbx-sim plays `Local/<callee>@c2d-single` into `c2d-direct`
            // as the real Asterisk with the kit does (`i_one_leg_success`).
            Ok(valid) if valid.single_leg => assert_eq!(status, 202, "{name}: {answer}"),
            // A campaign the simulated PBX's dialplan lacks (it has `spring` and `renewals`)
            // is refused by the host before anything else, whatever core thinks of the rest.
            Ok(valid)
                if valid
                    .outbound_id
                    .campaign()
                    .is_some_and(|c| !["spring", "renewals"].contains(&c)) =>
            {
                assert_eq!(status, 422, "{name}: {answer}");
                assert!(answer.contains(r#""code":"unknown_campaign""#), "{name}");
            }
            Ok(valid) => {
                let payload = format!(
                    "{}|{}|{}",
                    valid.agent,
                    valid.callee.e164(),
                    valid.outbound_id.as_str()
                );
                if let Some((first_payload, first_answer)) =
                    valid.contact_ref.and_then(|r| seen.get(r))
                {
                    if *first_payload == payload {
                        assert_eq!((status, &answer), (202, first_answer), "{name}");
                    } else {
                        assert_eq!(status, 409, "{name}: {answer}");
                    }
                    continue;
                }
                if let Some(given) = valid.contact_ref {
                    seen.insert(given.to_string(), (payload, answer.clone()));
                }
                accepted += 1;
                assert_eq!(status, 202, "{name}: {answer}");
                let json: serde_json::Value = serde_json::from_str(&answer).expect("JSON");
                let expected_ref = valid.contact_ref.map(str::to_string);
                if let Some(given) = expected_ref {
                    assert_eq!(json["contact_ref"], given.as_str(), "{name}");
                }
                assert_eq!(
                    json["recording_ref"].as_str().map(str::len),
                    Some(26),
                    "{name}"
                );
                let warnings = json["warnings"].as_array().map(Vec::len);
                assert_eq!(
                    warnings,
                    Some(valid.warnings.iter().count()),
                    "{name}: {text}"
                );
            }
        }
    }
    assert!(
        accepted >= 10,
        "the table exercises acceptance too ({accepted})"
    );
}
