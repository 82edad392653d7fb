//! Smoke.
use click2dial_core::*;
#[test]
fn smoke() {
    let v = Validators::new().unwrap();
    for body in [
        &br#"{"agent":"1001","callee":"0820001234","outbound_id":"27820001234","contact_ref":"crm-42"}"#[..],
        br#"{"agent": 1001 ,"callee":"0820001234","outbound_id":"0820001234","call_ref":"crm-42","x":[1,{"a":null}]}"#,
        br#"{"agent":1001,"callee":820001234,"outbound_id":"27820001234"}"#,
        br#"{"agent":true,"callee":"0820001234","outbound_id":"27820001234"}"#,
        br#"{"agent":10x1,"callee":"0820001234","outbound_id":"27820001234"}"#,
        br#"{"agent":"1001","callee":"0862001234","outbound_id":"27820001234"}"#,
        br#"{"agent":"1001","callee":"0044201234567","outbound_id":"tvc_spring"}"#,
        br#"[[[[[[[[[[[[[[[[[[[[["#,
        br#"{"a":[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]],"agent":"1001","callee":"0820001234","outbound_id":"27820001234"}"#,
    ] {
        let r = request::parse(body).and_then(|r| v.validate(&r, &DialPolicy::SOUTH_AFRICA));
        match r {
            Ok(c) => {
                let call = c.assign_references(&[7u8; 32]);
                let mut buf = [0u8; 1024];
                let n = json::write_accepted(&json::Accepted { call: &call, recording_url: None, notifications_key: None }, &mut buf).unwrap();
                println!("OK {}", core::str::from_utf8(&buf[..n]).unwrap());
            }
            Err(e) => {
                let mut buf = [0u8; 512];
                let n = json::write_error(&e, &mut buf).unwrap();
                println!("{} {}", e.status(), core::str::from_utf8(&buf[..n]).unwrap());
            }
        }
    }
}
