//! Property tests: no input makes the core panic, and every generated valid number is
//! accepted and normalised correctly.

use click2dial_core::{
    json, reference::Reference, request, template::Template, time::Timestamp, DialPolicy,
    NumberForm, Validators,
};
use proptest::prelude::*;
use std::sync::LazyLock;

static RFC3339: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(
        r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{3}Z$",
    )
    .expect("regex")
});

/// Loaded once: loading checks every table, which is start-up work, not per-request work.
static VALIDATORS: LazyLock<Validators> = LazyLock::new(|| Validators::new().expect("tables"));

const PERMISSIVE: DialPolicy<'static> = DialPolicy {
    allowed_country_codes: &["1", "44", "49", "263"],
    refuse_premium_rate: false,
    denied_prefixes: &["999"],
};

/// Runs everything a server does with a body; must never panic.
fn full_path(validators: &Validators, body: &[u8]) {
    let mut out = [0u8; 1024];
    let mut small = [0u8; 24];
    for policy in [DialPolicy::SOUTH_AFRICA, PERMISSIVE] {
        match request::parse(body).and_then(|r| validators.validate(&r, &policy)) {
            Ok(valid) => {
                let call = valid.assign_references(&[0x5a; 32]);
                let url = Template::new("http://pbx/click2dial/recordings/{recording_ref}")
                    .expect("valid template");
                let rendered = url.render(call.contact_ref.as_str(), call.recording_ref.as_str());
                let accepted = json::Accepted {
                    call: &call,
                    recording_url: Some(rendered),
                    notifications_key: None,
                };
                let n = json::write_accepted(&accepted, &mut out).expect("fits 1 KiB");
                serde_json::from_slice::<serde_json::Value>(&out[..n]).expect("valid JSON");
                let mut reference = [0u8; 1024];
                let m = serde_json_core::to_slice(&accepted, &mut reference).expect("fits");
                assert_eq!(
                    &out[..n],
                    &reference[..m],
                    "the writer is serde-json-core's bytes"
                );
                assert!(json::write_accepted(&accepted, &mut small).is_err());
                let mut e164 = [0u8; 16];
                let len = call.valid.callee.write_e164(&mut e164).expect("fits");
                assert_eq!(e164[0], b'+');
                assert!(e164[1..len].iter().all(u8::is_ascii_digit));
            }
            Err(e) => {
                let n = json::write_error(&e, &mut out).expect("fits");
                serde_json::from_slice::<serde_json::Value>(&out[..n]).expect("valid JSON");
                assert!(matches!(e.status(), 400 | 413 | 422));
            }
        }
    }
}

/// JSON-ish fragments, so generated bodies often get deep into the parser.
fn jsonish() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just("{".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just(",".to_string()),
        Just(":".to_string()),
        Just("\"agent\"".to_string()),
        Just("\"callee\"".to_string()),
        Just("\"outbound_id\"".to_string()),
        Just("\"contact_ref\"".to_string()),
        Just("\"call_ref\"".to_string()),
        Just("\"0820001234\"".to_string()),
        Just("\"1001\"".to_string()),
        Just("1001".to_string()),
        Just("null".to_string()),
        Just("true".to_string()),
        Just("-1.5e3".to_string()),
        Just("\\".to_string()),
        Just("\"".to_string()),
        "[ -~]{0,6}".prop_map(|s| s),
    ];
    prop::collection::vec(token, 0..40).prop_map(|t| t.concat().into_bytes())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..600)) {
        full_path(&VALIDATORS, &body);
    }

    #[test]
    fn jsonish_bodies_never_panic(body in jsonish()) {
        full_path(&VALIDATORS, &body);
    }

    #[test]
    fn field_values_never_panic(
        agent in "\\PC{0,12}",
        callee in "[0-9+ ]{0,20}",
        outbound in "(tvc_)?[ -~]{0,70}",
        reference in "[ -~]{0,300}",
    ) {
        let body = serde_json::json!({
            "agent": agent, "callee": callee, "outbound_id": outbound, "contact_ref": reference,
        }).to_string();
        full_path(&VALIDATORS, body.as_bytes());
    }

    #[test]
    fn national_numbers_normalise(nsn in "[1-9][0-9]{8}") {
        let premium = ["862", "863", "864", "865", "866", "867", "868", "869", "90", "91", "92"]
            .iter().any(|p| nsn.starts_with(p));
        let validators = &*VALIDATORS;
        for (given, form) in [
            (format!("0{nsn}"), NumberForm::National),
            (format!("27{nsn}"), NumberForm::International),
            (format!("0027{nsn}"), NumberForm::InternationalPrefixed),
        ] {
            let body = format!(
                r#"{{"agent":"1001","callee":"{given}","outbound_id":"27{nsn}","contact_ref":"c"}}"#
            );
            let request = request::parse(body.as_bytes()).expect("parses");
            match validators.validate(&request, &DialPolicy::SOUTH_AFRICA) {
                Ok(call) => {
                    prop_assert!(!premium);
                    prop_assert_eq!(call.callee.form(), form);
                    prop_assert_eq!(call.callee.e164().to_string(), format!("+27{nsn}"));
                    prop_assert_eq!(call.callee.national_significant_number(), Some(nsn.as_str()));
                }
                Err(e) => {
                    prop_assert!(premium, "refused {}: {}", given, e);
                    prop_assert_eq!(e.code, click2dial_core::ErrorCode::CalleeNotAllowed);
                }
            }
            let call = validators.validate(&request, &PERMISSIVE).expect("permissive accepts");
            prop_assert_eq!(call.callee.e164().to_string(), format!("+27{nsn}"));
        }
    }

    #[test]
    fn foreign_numbers_normalise(cc in prop::sample::select(vec!["1", "44", "49", "263"]), rest in "[0-9]{12}", extra in 0usize..4) {
        let digits = format!("{cc}{}", &rest[..(10 - cc.len() + 1 + extra).min(12)]);
        prop_assume!((11..=14).contains(&digits.len()));
        let body = format!(r#"{{"agent":"1001","callee":"00{digits}","outbound_id":"tvc_x"}}"#);
        let validators = &*VALIDATORS;
        let request = request::parse(body.as_bytes()).expect("parses");
        let call = validators.validate(&request, &PERMISSIVE).expect("allow-listed");
        prop_assert_eq!(call.callee.form(), NumberForm::Foreign);
        prop_assert_eq!(call.callee.e164().to_string(), format!("+{digits}"));
        let e = validators.validate(&request, &DialPolicy::SOUTH_AFRICA).expect_err("not allowed");
        prop_assert_eq!(e.code, click2dial_core::ErrorCode::CalleeNotAllowed);
    }

    #[test]
    fn contact_refs_in_the_charset_are_kept_up_to_230(reference in "[A-Za-z0-9._~:-]{1,400}") {
        let body = format!(
            r#"{{"agent":"1001","callee":"0820001234","outbound_id":"27820001234","contact_ref":"{reference}"}}"#
        );
        let validators = &*VALIDATORS;
        let request = request::parse(body.as_bytes()).expect("parses");
        let call = validators.validate(&request, &DialPolicy::SOUTH_AFRICA).expect("accepted");
        let kept = &reference[..reference.len().min(230)];
        prop_assert_eq!(call.contact_ref, Some(kept));
    }

    #[test]
    fn references_round_trip_and_validate(entropy in any::<[u8; 16]>()) {
        let r = Reference::from_entropy(&entropy);
        let text = r.as_str();
        prop_assert_eq!(text.len(), 26);
        let validators = &*VALIDATORS;
        prop_assert!(validators.is_recording_ref(text));
        prop_assert!(validators.is_contact_ref_charset(text));
        prop_assert_eq!(base32_decode(text), entropy.to_vec());
    }

    /// The notification writer copies what needs no escape at once: its bytes must stay
    /// serde-json-core's for any text, control characters and non-ASCII included, and a
    /// buffer one byte short must fail.
    #[test]
    fn notifications_are_serde_json_cores_bytes(
        texts in prop::collection::vec("(?s).{0,40}", 6),
        event in 0usize..8,
        cause in prop::option::of(0usize..11),
        q850 in prop::option::of(any::<u16>()),
        with_url in any::<bool>(),
        millis in 0u64..253_402_300_800_000,
    ) {
        use json::{Cause, Event};
        const EVENTS: [Event; 8] = [Event::Queued, Event::AgentRinging, Event::AgentAnswered,
            Event::CalleeRinging, Event::Joined, Event::Hangup, Event::Failed, Event::RecordingReady];
        const CAUSES: [Cause; 11] = [Cause::AgentNoAnswer, Cause::AgentBusy,
            Cause::AgentUnavailable, Cause::CalleeNoAnswer, Cause::CalleeBusy,
            Cause::CalleeRejected, Cause::CalleeNotFound, Cause::CalleeUnavailable,
            Cause::AgentHungUp, Cause::NormalClearing, Cause::PbxError];
        let notification = json::Notification {
            event: EVENTS[event],
            contact_ref: &texts[0],
            agent: &texts[1],
            callee: &texts[2],
            outbound_id: &texts[3],
            recording_ref: &texts[4],
            recording_url: with_url.then_some(&texts[5] as &dyn std::fmt::Display),
            timestamp: Timestamp::from_unix_millis(millis),
            cause: cause.map(|c| CAUSES[c]),
            q850,
        };
        let mut out = [0u8; 2048];
        let n = json::write_notification(&notification, &mut out).expect("fits");
        let mut reference = [0u8; 2048];
        let m = serde_json_core::to_slice(&notification, &mut reference).expect("fits");
        prop_assert_eq!(&out[..n], &reference[..m]);
        prop_assert!(json::write_notification(&notification, &mut out[..n - 1]).is_err());
    }

    #[test]
    fn timestamps_are_rfc3339(millis in 0u64..253_402_300_800_000) {
        let text = Timestamp::from_unix_millis(millis).to_string();
        prop_assert_eq!(text.len(), 24);
        prop_assert!(RFC3339.is_match(&text), "{}", text);
    }
}

/// RFC 4648 base32 decoding (lowercase, no padding), independent of the encoder under test.
fn base32_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &str = "abcdefghijklmnopqrstuvwxyz234567";
    let mut bits: u64 = 0;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.chars() {
        bits = (bits << 5) | ALPHABET.find(c).expect("alphabet") as u64;
        count += 5;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    out
}
