//! Fuzzes the small validators, references, templates and string escaping of
//! `click2dial-core` against plain reference implementations written from their docs.
//!
//! The input is split at NUL bytes into up to four strings: a value for every validator, a
//! template, and two strings to render into it / write into a notification.
#![no_main]

use std::sync::OnceLock;

use click2dial_core::{
    json::{self, Event, Notification},
    number::NumberForm,
    reference::{Reference, REFERENCE_ENTROPY_LEN, REFERENCE_LEN},
    request,
    template::{Template, PLACEHOLDERS},
    time::Timestamp,
    OutboundId, Validators,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn validators() -> &'static Validators {
    static V: OnceLock<Validators> = OnceLock::new();
    V.get_or_init(|| Validators::new().expect("embedded DFAs load"))
}

fuzz_target!(|data: &[u8]| {
    let v = validators();
    let mut parts = data.splitn(4, |&b| b == 0);
    let raw = parts.next().unwrap_or_default();
    let value = String::from_utf8_lossy(raw);
    let template_text = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let first = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let second = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let s: &str = &value;

    // Validators against the patterns in build.rs, written out by hand.
    assert_eq!(
        v.is_recording_ref(s),
        is_recording_ref(s),
        "recording_ref {s:?}"
    );
    assert_eq!(
        v.is_extension(s),
        s.len() >= 3 && s.len() <= 4 && digits(s),
        "agent {s:?}"
    );
    assert_eq!(
        v.is_contact_ref_charset(s),
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_~:".contains(&b)),
        "contact_ref {s:?}"
    );
    assert_eq!(
        v.callee(s).map(|n| n.form()),
        callee_form(s),
        "callee {s:?}"
    );
    if let Some(n) = v.callee(s) {
        assert_eq!(n.as_str(), s);
        let e164 = n.e164().to_string();
        assert!(
            (12..=16).contains(&e164.len()) && digits(&e164[1..]),
            "{e164}"
        );
    }
    let outbound = v.outbound_id(s).map(|o| match o {
        OutboundId::Campaign { .. } => None,
        OutboundId::Number(n) => Some(n.form()),
    });
    assert_eq!(outbound, outbound_form(s), "outbound_id {s:?}");

    // Content-Type.
    let essence = raw.split(|&b| b == b';').next().unwrap_or_default();
    let essence = String::from_utf8_lossy(essence);
    let essence = essence.trim_matches([' ', '\t', '\r', '\n']);
    assert_eq!(
        request::check_content_type(Some(raw)).is_ok(),
        essence.eq_ignore_ascii_case("application/json"),
        "content type {raw:?}"
    );

    // A reference is its entropy in lowercase base32.
    let reference = Reference::from_entropy(data);
    assert_eq!(reference.as_str().len(), REFERENCE_LEN);
    assert!(v.is_recording_ref(reference.as_str()));
    let mut expected = [0u8; REFERENCE_ENTROPY_LEN];
    for (e, d) in expected.iter_mut().zip(data) {
        *e = *d;
    }
    assert_eq!(base32_decode(reference.as_str()), expected);

    // Templates.
    let template = Template::new(&template_text);
    assert_eq!(
        template.map(|_| ()).map_err(|e| e.offset),
        template_check(&template_text),
        "template {template_text:?}"
    );
    let Ok(template) = template else { return };
    assert_eq!(
        template.uses_contact_ref(),
        template_text.contains(PLACEHOLDERS[0])
    );
    let rendered = template.render(&first, &second);
    let expected = render(&template_text, &first, &second);
    assert_eq!(rendered.to_string(), expected);

    // serde-json-core's escaping of arbitrary strings, through a notification.
    let callee = v.callee("0820001234").expect("valid callee");
    let notification = Notification {
        event: Event::Queued,
        contact_ref: &first,
        agent: &second,
        callee: &callee.e164(),
        outbound_id: s,
        recording_ref: reference.as_str(),
        recording_url: Some(&rendered),
        timestamp: Timestamp::from_unix_millis(0),
        cause: None,
        q850: None,
    };
    let mut buf = vec![0u8; 512 + 6 * (data.len() + expected.len())];
    let n = json::write_notification(&notification, &mut buf).expect("fits");
    let json: Value = serde_json::from_slice(&buf[..n]).unwrap_or_else(|e| {
        panic!(
            "invalid JSON ({e}): {:?}",
            String::from_utf8_lossy(&buf[..n])
        )
    });
    assert_eq!(json["contact_ref"], *first);
    assert_eq!(json["agent"], *second);
    assert_eq!(json["outbound_id"], s);
    assert_eq!(json["recording_url"], expected);
    assert_eq!(json["timestamp"], "1970-01-01T00:00:00.000Z");
    assert!(json::write_notification(&notification, &mut buf[..n - 1]).is_err());
});

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_recording_ref(s: &str) -> bool {
    s.len() == 26 && s.bytes().all(|b| matches!(b, b'a'..=b'z' | b'2'..=b'7'))
}

/// `0[1-9]\d{8}` | `27[1-9]\d{8}` | `0027[1-9]\d{8}` | `00(?:2[0-689]|[13-9])\d+` with 11-14
/// digits after the `00`.
fn callee_form(s: &str) -> Option<NumberForm> {
    if !digits(s) {
        return None;
    }
    let b = s.as_bytes();
    let nsn = |rest: &[u8]| rest.len() == 9 && rest[0] != b'0';
    if let Some(rest) = s.strip_prefix("0027") {
        if nsn(rest.as_bytes()) {
            return Some(NumberForm::InternationalPrefixed);
        }
    }
    if let Some(rest) = s.strip_prefix("00") {
        let r = rest.as_bytes();
        let after_cc = match r.first() {
            Some(b'2')
                if r.get(1)
                    .is_some_and(|c| b"0123456789".contains(c) && *c != b'7') =>
            {
                r.get(2..)
            }
            Some(b'1' | b'3'..=b'9') => r.get(1..),
            _ => None,
        };
        return after_cc
            .filter(|_| (11..=14).contains(&r.len()))
            .map(|_| NumberForm::Foreign);
    }
    if b[0] == b'0' && nsn(&b[1..]) {
        return Some(NumberForm::National);
    }
    if let Some(rest) = s.strip_prefix("27") {
        if nsn(rest.as_bytes()) {
            return Some(NumberForm::International);
        }
    }
    None
}

/// `None` for a campaign, `Some(form)` for a number; outer `None` when invalid.
fn outbound_form(s: &str) -> Option<Option<NumberForm>> {
    if let Some(campaign) = s.strip_prefix("tvc_") {
        let ok = (1..=64).contains(&campaign.len())
            && campaign
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        return ok.then_some(None);
    }
    match callee_form(s) {
        Some(f @ (NumberForm::National | NumberForm::International)) => Some(Some(f)),
        _ => None,
    }
}

fn template_check(text: &str) -> Result<(), usize> {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if let Some(p) = PLACEHOLDERS
            .iter()
            .find(|p| b[i..].starts_with(p.as_bytes()))
        {
            i += p.len();
        } else if b[i] == b'{' || b[i] == b'}' {
            return Err(i);
        } else {
            i += 1;
        }
    }
    Ok(())
}

fn render(text: &str, contact_ref: &str, recording_ref: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix(PLACEHOLDERS[0]) {
            out.push_str(contact_ref);
            rest = r;
        } else if let Some(r) = rest.strip_prefix(PLACEHOLDERS[1]) {
            out.push_str(recording_ref);
            rest = r;
        } else {
            let c = rest.chars().next().expect("non-empty");
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// Decodes 26 lowercase base32 characters: 128 bits, then two zero padding bits.
fn base32_decode(s: &str) -> [u8; REFERENCE_ENTROPY_LEN] {
    let mut bits: u128 = 0;
    for (i, c) in s.bytes().enumerate() {
        let v = match c {
            b'a'..=b'z' => c - b'a',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("{c} is not base32"),
        };
        if i == REFERENCE_LEN - 1 {
            assert_eq!(v & 0b11, 0, "padding bits of {s:?}");
            bits = bits << 3 | u128::from(v >> 2);
        } else {
            bits = bits << 5 | u128::from(v);
        }
    }
    bits.to_be_bytes()
}
