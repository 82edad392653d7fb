//! The JSON writers, templates, timestamps and references emit exactly the contract's bytes.

use click2dial_core::{
    json::{self, Accepted, Cause, Event, Notification},
    reference::Reference,
    request,
    template::Template,
    time::Timestamp,
    DialPolicy, Validators,
};

fn text(buf: &[u8], n: usize) -> &str {
    std::str::from_utf8(&buf[..n]).expect("utf-8")
}

#[test]
fn accepted_body_is_byte_exact() {
    let body = br#"{"agent":"1001","callee":"0820001234","outbound_id":"0820001234","contact_ref":"crm-42"}"#;
    let validators = Validators::new().expect("tables");
    let request = request::parse(body).expect("parses");
    let call = validators
        .validate(&request, &DialPolicy::SOUTH_AFRICA)
        .expect("valid")
        .assign_references(&std::array::from_fn(|i| i as u8));
    assert_eq!(call.recording_ref.as_str(), "aaaqeayeaudaocajbifqydiob4");
    let url = Template::new("http://pbx.example:8080/click2dial/recordings/{recording_ref}")
        .expect("template");
    let key = Template::new("teleforge:notifications:c2d:{contact_ref}").expect("template");
    let (c, r) = (call.contact_ref.as_str(), call.recording_ref.as_str());
    let mut buf = [0u8; 1024];
    let n = json::write_accepted(
        &Accepted {
            call: &call,
            recording_url: Some(url.render(c, r)),
            notifications_key: Some(key.render(c, r)),
        },
        &mut buf,
    )
    .expect("fits");
    assert_eq!(
        text(&buf, n),
        concat!(
            r#"{"status":"queued","contact_ref":"crm-42","recording_ref":"aaaqeayeaudaocajbifqydiob4","#,
            r#""recording_url":"http://pbx.example:8080/click2dial/recordings/aaaqeayeaudaocajbifqydiob4","#,
            r#""notifications_key":"teleforge:notifications:c2d:crm-42","#,
            r#""warnings":[{"code":"outbound_id_national","message":"a national outbound_id (0...) is accepted, but providers often reject it; use 27..."}]}"#
        )
    );
    // The appliance omits what it cannot honour.
    let n = json::write_accepted(
        &Accepted {
            call: &call,
            recording_url: None,
            notifications_key: None,
        },
        &mut buf,
    )
    .expect("fits");
    assert!(!text(&buf, n).contains("recording_url"));
    assert!(!text(&buf, n).contains("notifications_key"));
    // Too small a buffer is an error, never a truncated body.
    assert!(json::write_accepted(
        &Accepted {
            call: &call,
            recording_url: None,
            notifications_key: None
        },
        &mut buf[..n - 1]
    )
    .is_err());
}

#[test]
fn notification_is_byte_exact() {
    let body = br#"{"agent":1001,"callee":"0820001234","outbound_id":"tvc_spring","contact_ref":"crm-42"}"#;
    let validators = Validators::new().expect("tables");
    let request = request::parse(body).expect("parses");
    let valid = validators
        .validate(&request, &DialPolicy::SOUTH_AFRICA)
        .expect("valid");
    let mut buf = [0u8; 512];
    let n = json::write_notification(
        &Notification {
            event: Event::Failed,
            contact_ref: "crm-42",
            agent: valid.agent,
            callee: &valid.callee.e164(),
            outbound_id: valid.outbound_id.as_str(),
            recording_ref: "aaaqeayeaudaocajbifqydiob4",
            recording_url: None,
            timestamp: Timestamp::from_unix_millis(1_795_764_384_123),
            cause: Some(Cause::CalleeBusy),
            q850: Some(17),
        },
        &mut buf,
    )
    .expect("fits");
    assert_eq!(
        text(&buf, n),
        concat!(
            r#"{"event":"failed","contact_ref":"crm-42","agent":"1001","callee":"+27820001234","#,
            r#""outbound_id":"tvc_spring","recording_ref":"aaaqeayeaudaocajbifqydiob4","#,
            r#""timestamp":"2026-11-27T07:26:24.123Z","cause":"callee_busy","q850":17}"#
        )
    );
}

#[test]
fn event_and_cause_names_are_stable() {
    let events = [
        (Event::Queued, "queued"),
        (Event::AgentRinging, "agent_ringing"),
        (Event::AgentAnswered, "agent_answered"),
        (Event::CalleeRinging, "callee_ringing"),
        (Event::Joined, "joined"),
        (Event::Hangup, "hangup"),
        (Event::Failed, "failed"),
        (Event::RecordingReady, "recording_ready"),
    ];
    for (event, name) in events {
        assert_eq!(event.as_str(), name);
    }
    assert_eq!(Cause::AgentNoAnswer.as_str(), "agent_no_answer");
    assert_eq!(Cause::PbxError.as_str(), "pbx_error");
}

#[test]
fn timestamps_match_known_instants() {
    for (millis, expected) in [
        (0, "1970-01-01T00:00:00.000Z"),
        (951_782_400_000, "2000-02-29T00:00:00.000Z"),
        (1_795_764_384_123, "2026-11-27T07:26:24.123Z"),
        (4_102_444_799_999, "2099-12-31T23:59:59.999Z"),
        (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
    ] {
        assert_eq!(Timestamp::from_unix_millis(millis).to_string(), expected);
    }
}

#[test]
fn references_are_base32_of_the_entropy() {
    let r = Reference::from_entropy(&std::array::from_fn::<u8, 16, _>(|i| i as u8));
    assert_eq!(r.as_str(), "aaaqeayeaudaocajbifqydiob4");
    assert_eq!(
        Reference::from_entropy(&[0xff; 16]).as_str(),
        "77777777777777777777777774"
    );
    assert_ne!(
        Reference::from_entropy(&[1; 16]),
        Reference::from_entropy(&[2; 16])
    );
}

#[test]
fn templates_are_checked_and_rendered() {
    let t = Template::new("a:{contact_ref}:{recording_ref}:{contact_ref}").expect("valid");
    assert_eq!(t.render("c", "r").to_string(), "a:c:r:c");
    assert!(t.uses_contact_ref());
    assert_eq!(
        Template::new("plain")
            .expect("valid")
            .render("c", "r")
            .to_string(),
        "plain"
    );
    assert_eq!(Template::new("x{nope}").map_err(|e| e.offset), Err(1));
    assert_eq!(Template::new("x}").map_err(|e| e.offset), Err(1));
    assert_eq!(Template::new("{contact_ref").map_err(|e| e.offset), Err(0));
}

#[test]
fn recording_refs_are_checked_before_any_file_system_access() {
    let v = Validators::new().expect("tables");
    assert!(v.is_recording_ref("aaaqeayeaudaocajbifqydiob4"));
    for hostile in [
        "",
        "..",
        "../etc/passwd",
        "aaaqeayeaudaocajbifqydiob",
        "aaaqeayeaudaocajbifqydiob44",
        "AAAQEAYEAUDAOCAJBIFQYDIOB4",
        "aaaqeayeaudaocajbifqydiob1",
        "aaaqeayeaudaocajbifqydio%2f",
        "aaaqeayeaudaocajbifqydiob\0",
    ] {
        assert!(!v.is_recording_ref(hostile), "{hostile:?}");
    }
}

#[test]
fn channel_ids_are_derived_from_the_contact_ref() {
    use click2dial_core::reference::ChannelId;
    let a = ChannelId::for_contact_ref("crm-42");
    assert_eq!(a, ChannelId::for_contact_ref("crm-42"));
    assert_ne!(a, ChannelId::for_contact_ref("crm-43"));
    assert!(a.as_str().starts_with("c2d-"));
    assert_eq!(a.as_str().len(), 30);
    assert!(a.as_str().len() <= click2dial_core::call::CHANNEL_ID_MAX_LEN);
    // Pinned (computed independently with Python): Asterisk-side state and logs refer to
    // it, so it must not change between versions.
    assert_eq!(a.to_string(), "c2d-oacxmqkrhrsl63ywyav6eykpgq");
}
