//! The console and softphone pages over the real HTTP port: served without a key, from the
//! binary, with a content security policy; nothing else is reachable under `/console/`.

use crate::support::world;

#[test]
fn console_pages_are_served_without_a_key_with_a_strict_policy() {
    let w = world(&[]);
    for (path, content_type, needle) in [
        ("/console/", "text/html", "<title>"),
        ("/console/index.html", "text/html", "console.js"),
        ("/console/softphone.html", "text/html", "vendor/sip.js"),
        ("/console/vendor/sip.js", "text/javascript", "window.SIP"),
    ] {
        let answer = w.host.request("GET", path, None, &[], None);
        assert_eq!(answer.status, 200, "{path}");
        assert!(
            answer
                .header("content-type")
                .is_some_and(|v| v.starts_with(content_type)),
            "{path}: {:?}",
            answer.header("content-type")
        );
        let policy = answer.header("content-security-policy").unwrap_or_default();
        assert!(policy.contains("script-src 'self'"), "{path}: {policy}");
        assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
        let text = String::from_utf8_lossy(&answer.body);
        assert!(text.contains(needle), "{path} lacks {needle:?}");
    }
    let redirect = w.host.raw("GET /console HTTP/1.1");
    assert_eq!(redirect.status, 308);
    assert_eq!(redirect.header("location"), Some("/console/"));
}

#[test]
fn only_the_embedded_files_are_reachable() {
    let w = world(&[]);
    for path in [
        "/console/missing.html",
        "/console/../Cargo.toml",
        "/console/%2e%2e/Cargo.toml",
        "/console/..%2fsrc%2flib.rs",
        "/console/vendor/",
        "/console/vendor/../../src/console.rs",
        "/console/index.html%00",
    ] {
        let answer = w.host.raw(&format!("GET {path} HTTP/1.1"));
        assert_eq!(answer.status, 404, "{path}");
        assert_eq!(answer.json()["error"]["code"], "not_found", "{path}");
    }
}
