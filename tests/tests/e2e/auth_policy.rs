//! The dialling policy (toll-fraud guard) from the configuration, over the real HTTP port:
//! what it refuses is never dialled.

use std::time::Duration;

use crate::support::{Host, Redis, Sim};

fn body(callee: &str, contact_ref: &str) -> String {
    format!(
        r#"{{"agent":"1001","callee":"{callee}","outbound_id":"27820001234","contact_ref":"{contact_ref}"}}"#
    )
}

#[test]
fn the_configured_policy_decides_before_anything_is_dialled() {
    let recordings = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start();
    let sim = Sim::start(recordings.path(), "127.0.0.1:0");
    let host = Host::start(
        &redis,
        &sim.address,
        recordings.path(),
        &[
            ("C2D_POLICY__ALLOWED_COUNTRY_CODES", r#"["44"]"#),
            ("C2D_POLICY__DENIED_PREFIXES", r#"["2787"]"#),
        ],
    );
    let (status, answer) = host.create_call_when_ready(&body("0820001234", "p-home"));
    assert_eq!(status, 202, "{answer}");
    let (status, answer) = host.create_call(&body("0044201234567", "p-uk"));
    assert_eq!(status, 202, "an allow-listed country: {answer}");

    let refused = [
        ("0049301234567", "p-de", "country"),
        ("0012125550123", "p-us", "country"),
        ("0870001234", "p-denied", "range"),
        ("27870001234", "p-denied-intl", "range"),
        ("0900001234", "p-premium", "premium"),
        ("0862001234", "p-premium-086", "premium"),
    ];
    for (callee, contact_ref, why) in refused {
        let (status, answer) = host.create_call(&body(callee, contact_ref));
        assert_eq!(status, 422, "{callee}: {answer}");
        assert_eq!(answer["error"]["code"], "callee_not_allowed", "{callee}");
        assert_eq!(answer["error"]["field"], "callee");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(why), "{callee}: {message}");
    }
    std::thread::sleep(Duration::from_millis(300));
    for (_, contact_ref, _) in refused {
        let id = contact_ref.to_string();
        assert_eq!(sim.originates_of(&id), 0, "{contact_ref} was dialled");
    }
    for contact_ref in ["p-home", "p-uk"] {
        let id = contact_ref.to_string();
        assert_eq!(sim.originates_of(&id), 1, "{contact_ref}");
    }
}
