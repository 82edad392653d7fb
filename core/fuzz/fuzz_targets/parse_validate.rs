//! Fuzzes the whole create-call path of `click2dial-core` with arbitrary request bodies:
//! `request::parse` → `Validators::validate` (two policies) → `assign_references` → the JSON
//! writers, checking the invariants the host and the appliance rely on.
//!
//! The core must never panic on any input, so any panic here — in the core or in one of the
//! `assert!`s below — is a bug to report with the input that caused it.
//!
//! Set `C2D_FUZZ_STRICT_JSON=1` to also require that every body the core parses is JSON that
//! serde_json accepts (off by default: `request::parse` is documented to skip scalars inside
//! ignored fields leniently, and that alone would stop the fuzzer at once).
#![no_main]

use std::sync::OnceLock;

use click2dial_core::{
    error::ErrorCode,
    json::{self, Accepted, Cause, Event, Notification},
    number::E164_MAX_LEN,
    policy::ZA_PREMIUM_RATE_PREFIXES,
    reference::{ContactRef, REFERENCE_LEN},
    request::{self, MAX_BODY_LEN},
    template::Template,
    time::Timestamp,
    validate::{Call, CONTACT_REF_MAX_LEN},
    CallRequest, DialPolicy, Error, NumberForm, OutboundId, ValidCall, Validators, Warning,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// A deployment that dials a few foreign countries and allows premium-rate numbers.
const PERMISSIVE: DialPolicy<'static> = DialPolicy {
    allowed_country_codes: &["1", "44", "49"],
    refuse_premium_rate: false,
    denied_prefixes: &[],
};

/// Like [`PERMISSIVE`] with denied ranges that cross the country code (`2787` against a
/// national number's implied `27`), and empty entries (which must allow or deny nothing).
const DENYING: DialPolicy<'static> = DialPolicy {
    allowed_country_codes: &["1", "44", "49", ""],
    refuse_premium_rate: false,
    denied_prefixes: &["", "2787", "27800", "4420", "1900"],
};

const RECORDING_URL: &str = "http://pbx.example:8080/click2dial/recordings/{recording_ref}.wav";
const NOTIFICATIONS_KEY: &str = "teleforge:notifications:c2d:{contact_ref}";

struct Fixture {
    validators: Validators,
    recording_url: Template<'static>,
    notifications_key: Template<'static>,
    strict_json: bool,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| Fixture {
        validators: Validators::new().expect("embedded DFAs load"),
        recording_url: Template::new(RECORDING_URL).expect("valid template"),
        notifications_key: Template::new(NOTIFICATIONS_KEY).expect("valid template"),
        strict_json: std::env::var_os("C2D_FUZZ_STRICT_JSON").is_some_and(|v| v == "1"),
    })
}

fuzz_target!(|body: &[u8]| {
    let fx = fixture();
    // Content-Type parsing is cheap: exercise it with the same bytes.
    if let Err(e) = request::check_content_type(Some(body)) {
        assert_eq!(e.status(), 415);
    }

    let request = match request::parse(body) {
        Ok(request) => request,
        Err(error) => {
            assert!(
                matches!(error.status(), 400 | 413 | 415 | 422),
                "parse error with status {}: {error}",
                error.status()
            );
            assert_eq!(
                error.code == ErrorCode::BodyTooLarge,
                body.len() > MAX_BODY_LEN,
                "413 must mean exactly 'body longer than {MAX_BODY_LEN}'"
            );
            check_error_json(&error);
            return;
        }
    };
    assert!(body.len() <= MAX_BODY_LEN);
    check_against_serde_json(body, &request, fx.strict_json);

    let sa = fx.validators.validate(&request, &DialPolicy::SOUTH_AFRICA);
    let permissive = fx.validators.validate(&request, &PERMISSIVE);
    let denying = fx.validators.validate(&request, &DENYING);

    // PERMISSIVE allows a superset of SOUTH_AFRICA; field errors come before the policy,
    // so every error PERMISSIVE returns is the one SOUTH_AFRICA returns too.
    match (&sa, &permissive) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Ok(_), Err(e)) => panic!("SOUTH_AFRICA accepts but PERMISSIVE refuses: {e}"),
        (Err(a), Err(b)) => assert_eq!(a, b),
        (Err(e), Ok(_)) => assert_eq!(e.code, ErrorCode::CalleeNotAllowed, "{e}"),
    }
    // DENYING only adds refusals of the callee on top of PERMISSIVE's.
    match (&permissive, &denying) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(a), Err(b)) => assert_eq!(a, b),
        (Ok(_), Err(e)) => assert_eq!(e.code, ErrorCode::CalleeNotAllowed, "{e}"),
        (Err(e), Ok(_)) => panic!("DENYING accepts but PERMISSIVE refuses: {e}"),
    }

    for (policy, result) in [
        (&DialPolicy::SOUTH_AFRICA, sa),
        (&PERMISSIVE, permissive),
        (&DENYING, denying),
    ] {
        match result {
            Ok(valid) => check_valid(fx, body, &request, policy, valid),
            Err(error) => {
                assert_eq!(error.status(), 422, "validation error {error}");
                check_error_json(&error);
            }
        }
    }
});

/// Invariants of an accepted call, then its `202` body and a notification.
fn check_valid(
    fx: &Fixture,
    body: &[u8],
    request: &CallRequest<'_>,
    policy: &DialPolicy<'_>,
    valid: ValidCall<'_>,
) {
    let v = &fx.validators;

    // agent: a 3-4 digit extension, unless it is the callee (a one-leg call).
    assert_eq!(valid.agent, request.agent);
    assert_eq!(valid.single_leg, valid.agent == valid.callee.as_str());
    if !valid.single_leg {
        assert!(
            (3..=4).contains(&valid.agent.len()) && all_digits(valid.agent),
            "agent {:?} is not a 3-4 digit extension",
            valid.agent
        );
    }

    // callee: E.164 is '+' and 11-15 ASCII digits, the same through every writer.
    assert_eq!(valid.callee.as_str(), request.callee);
    let e164 = e164_string(&valid.callee);
    let digits = &e164[1..];
    assert!(
        (11..=15).contains(&digits.len()) && all_digits(digits),
        "callee {:?} has E.164 {e164:?}",
        request.callee
    );
    assert_eq!(valid.callee.e164().to_string(), e164);
    let home = valid.callee.is_home();
    assert_eq!(home, digits.starts_with("27"), "{e164}");
    match valid.callee.national_significant_number() {
        Some(nsn) => {
            assert!(home);
            assert_eq!(nsn.len(), 9);
            assert_eq!(&digits[2..], nsn);
        }
        None => assert_eq!(valid.callee.form(), NumberForm::Foreign),
    }

    // The policy that accepted it.
    if !home {
        assert!(
            policy
                .allowed_country_codes
                .iter()
                .any(|cc| !cc.is_empty() && digits.starts_with(cc)),
            "{e164} dialled without its country code being allowed"
        );
    }
    if policy.refuse_premium_rate {
        if let Some(nsn) = valid.callee.national_significant_number() {
            assert!(
                !ZA_PREMIUM_RATE_PREFIXES.iter().any(|p| nsn.starts_with(p)),
                "premium-rate {e164} accepted"
            );
        }
    }
    assert!(
        !policy
            .denied_prefixes
            .iter()
            .any(|p| !p.is_empty() && digits.starts_with(p)),
        "denied {e164} accepted"
    );

    // outbound_id.
    assert_eq!(valid.outbound_id.as_str(), request.outbound_id);
    match valid.outbound_id {
        OutboundId::Campaign { given } => {
            let campaign = valid.outbound_id.campaign().expect("campaign");
            assert!(given.starts_with("tvc_"));
            assert!((1..=64).contains(&campaign.len()), "{given:?}");
            assert!(campaign
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
            assert!(!valid.warnings.contains(Warning::OutboundIdNational));
        }
        OutboundId::Number(n) => {
            let national = n.form() == NumberForm::National;
            assert_eq!(
                valid.warnings.contains(Warning::OutboundIdNational),
                national
            );
            assert!(all_digits(n.as_str()));
            assert_eq!(n.as_str().len(), if national { 10 } else { 11 });
            assert_eq!(e164_string(&n).len(), 12);
        }
    }

    // contact_ref: at most 230 characters of the charset, truncated only with a warning.
    match (valid.contact_ref, request.contact_ref) {
        (None, None) => {}
        (Some(kept), Some(given)) => {
            assert!(given.starts_with(kept));
            assert!(kept.len() <= CONTACT_REF_MAX_LEN && !kept.is_empty());
            assert!(v.is_contact_ref_charset(kept));
            let truncated = given.len() > CONTACT_REF_MAX_LEN;
            assert_eq!(
                valid.warnings.contains(Warning::ContactRefTruncated),
                truncated
            );
            assert_eq!(kept.len() == given.len(), !truncated);
        }
        other => panic!("contact_ref {other:?}"),
    }

    let call = valid.assign_references(&entropy(body));
    let contact_ref = call.contact_ref.as_str();
    assert!(
        contact_ref.len() <= CONTACT_REF_MAX_LEN,
        "contact_ref of {} characters",
        contact_ref.len()
    );
    assert!(v.is_contact_ref_charset(contact_ref), "{contact_ref:?}");
    match call.contact_ref {
        ContactRef::Given(given) => assert_eq!(Some(given), valid.contact_ref),
        ContactRef::Generated(r) => {
            assert!(valid.contact_ref.is_none());
            assert!(v.is_recording_ref(r.as_str()));
        }
    }
    let recording_ref = call.recording_ref.as_str();
    assert_eq!(recording_ref.len(), REFERENCE_LEN);
    assert!(v.is_recording_ref(recording_ref), "{recording_ref:?}");

    check_accepted(fx, body, &call);
    check_notification(fx, body, &call, &e164);
}

/// The `202` body: too-small buffers fail cleanly, a large one gives JSON with the call's
/// values.
fn check_accepted(fx: &Fixture, body: &[u8], call: &Call<'_>) {
    let contact_ref = call.contact_ref.as_str();
    let recording_ref = call.recording_ref.as_str();
    let url = fx.recording_url.render(contact_ref, recording_ref);
    let key = fx.notifications_key.render(contact_ref, recording_ref);
    for (recording_url, notifications_key) in [(None, None), (Some(url), Some(key))] {
        let accepted = Accepted {
            call,
            recording_url,
            notifications_key,
        };
        let mut large = [0u8; 4096];
        let n = json::write_accepted(&accepted, &mut large).expect("202 body fits 4096 bytes");
        let value = parse_json(&large[..n]);
        assert_eq!(value["status"], "queued");
        assert_eq!(value["contact_ref"], contact_ref);
        assert_eq!(value["recording_ref"], recording_ref);
        match recording_url {
            Some(u) => assert_eq!(value["recording_url"], u.to_string()),
            None => assert!(value.get("recording_url").is_none()),
        }
        match notifications_key {
            Some(k) => assert_eq!(value["notifications_key"], k.to_string()),
            None => assert!(value.get("notifications_key").is_none()),
        }
        let warnings = value["warnings"].as_array().expect("warnings array");
        assert_eq!(warnings.len(), call.valid.warnings.iter().count());
        for (w, expected) in warnings.iter().zip(call.valid.warnings.iter()) {
            assert_eq!(w["code"], expected.code());
            assert_eq!(w["message"], expected.message());
        }

        // Every buffer shorter than the body fails; none panics.
        let mut small = [0u8; 16];
        assert!(json::write_accepted(&accepted, &mut small).is_err());
        assert!(json::write_accepted(&accepted, &mut large[..n - 1]).is_err());
        let cut = usize::from(body.first().copied().unwrap_or(0)) % n;
        assert!(json::write_accepted(&accepted, &mut large[..cut]).is_err());
    }
}

/// One notification per call, with event, cause and time drawn from the input.
fn check_notification(fx: &Fixture, body: &[u8], call: &Call<'_>, e164: &str) {
    let pick = |i: usize| usize::from(body.get(body.len().saturating_sub(i)).copied().unwrap_or(0));
    let event = Event::ALL[pick(1) % Event::ALL.len()];
    let cause = (pick(2) % 13 != 12).then(|| Cause::ALL[pick(2) % Cause::ALL.len()]);
    let q850 = (pick(3) % 2 == 0).then(|| u16::from_le_bytes([pick(3) as u8, pick(4) as u8]));
    let millis = entropy(body)[..8]
        .iter()
        .fold(0u64, |acc, &b| acc << 8 | u64::from(b));
    let contact_ref = call.contact_ref.as_str();
    let recording_ref = call.recording_ref.as_str();
    let recording_url =
        (pick(5) % 2 == 0).then(|| fx.recording_url.render(contact_ref, recording_ref));
    let notification = Notification {
        event,
        contact_ref,
        agent: call.valid.agent,
        callee: &call.valid.callee.e164(),
        outbound_id: call.valid.outbound_id.as_str(),
        recording_ref,
        recording_url: recording_url.as_ref().map(|u| u as &dyn core::fmt::Display),
        timestamp: Timestamp::from_unix_millis(millis),
        cause,
        q850,
    };
    let mut buf = [0u8; 2048];
    let n = json::write_notification(&notification, &mut buf).expect("notification fits 2048");
    let value = parse_json(&buf[..n]);
    assert_eq!(value["event"], event.as_str());
    assert_eq!(value["contact_ref"], contact_ref);
    assert_eq!(value["agent"], call.valid.agent);
    assert_eq!(value["callee"], e164);
    assert_eq!(value["outbound_id"], call.valid.outbound_id.as_str());
    assert_eq!(value["recording_ref"], recording_ref);
    let timestamp = value["timestamp"].as_str().expect("timestamp string");
    assert!(
        timestamp.len() >= 24 && timestamp.ends_with('Z') && timestamp.is_ascii(),
        "timestamp {timestamp:?} for {millis} ms"
    );
    assert_eq!(
        value.get("cause").and_then(Value::as_str),
        cause.map(Cause::as_str)
    );
    assert_eq!(
        value.get("q850").and_then(Value::as_u64),
        q850.map(u64::from)
    );
    assert!(json::write_notification(&notification, &mut buf[..n - 1]).is_err());
}

/// An error body fits `ERROR_BODY_MAX_LEN`, is JSON and says what the error says.
fn check_error_json(error: &Error) {
    let mut buf = [0u8; json::ERROR_BODY_MAX_LEN];
    let n = json::write_error(error, &mut buf).expect("error body fits ERROR_BODY_MAX_LEN");
    let value = parse_json(&buf[..n]);
    let inner = &value["error"];
    assert_eq!(inner["code"], error.code.as_str());
    assert_eq!(inner["message"], error.message);
    match error.field {
        Some(field) => assert_eq!(inner["field"], field.as_str()),
        None => assert!(inner.get("field").is_none()),
    }
    assert!(json::write_error(error, &mut buf[..n - 1]).is_err());
}

/// Where serde_json reads the same body as an object, it must see the same values.
///
/// Skipped for bodies with a backslash: the core matches keys literally, so an escaped key
/// such as `"agen\u0074"` is an unknown key to it and `agent` to serde_json (documented).
fn check_against_serde_json(body: &[u8], request: &CallRequest<'_>, strict: bool) {
    let parsed = serde_json::from_slice::<Value>(body);
    if strict {
        assert!(
            matches!(parsed, Ok(Value::Object(_))),
            "the core parsed a body serde_json refuses: {:?}",
            parsed.err()
        );
    }
    if body.contains(&b'\\') {
        return;
    }
    let Ok(Value::Object(map)) = parsed else {
        return;
    };
    match map.get("agent") {
        Some(Value::String(s)) => assert_eq!(s, request.agent),
        Some(Value::Number(n)) => {
            if let Some(u) = n.as_u64() {
                assert_eq!(u.to_string(), request.agent);
            }
        }
        other => panic!(
            "core parsed agent {:?}, serde_json {other:?}",
            request.agent
        ),
    }
    assert_eq!(
        map.get("callee").and_then(Value::as_str),
        Some(request.callee)
    );
    assert_eq!(
        map.get("outbound_id").and_then(Value::as_str),
        Some(request.outbound_id)
    );
    let reference = |name: &str| match map.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(other) => panic!("core parsed {name} {other:?}"),
    };
    assert_eq!(
        reference("contact_ref").or(reference("call_ref")),
        request.contact_ref
    );
}

fn parse_json(bytes: &[u8]) -> Value {
    match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(e) => panic!(
            "the core wrote invalid JSON ({e}): {:?}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

fn e164_string(number: &click2dial_core::PhoneNumber<'_>) -> String {
    let mut buf = [0u8; E164_MAX_LEN];
    let n = number
        .write_e164(&mut buf)
        .expect("E.164 fits E164_MAX_LEN");
    assert_eq!(n, number.e164_len());
    assert_eq!(buf[0], b'+');
    let short = number.write_e164(&mut buf[..n - 1]);
    assert_eq!(short.map_err(|e| e.required), Err(Some(n)));
    String::from_utf8(buf[..n].to_vec()).expect("E.164 is ASCII")
}

/// Stand-in for the caller's CSPRNG: deterministic, so crashes replay.
fn entropy(body: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, slot) in out.iter_mut().enumerate() {
        for &b in body.iter().skip(i).step_by(32) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        h = (h ^ i as u64).wrapping_mul(0x0100_0000_01b3);
        *slot = (h >> 32) as u8;
    }
    out
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}
