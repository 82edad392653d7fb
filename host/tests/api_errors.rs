//! The create-call route's refusals, through the router (`oneshot`), with no PBX and no Redis:
//! everything here is decided before anything is dialled.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use click2dial_host::config::{ApiKey, Config};
use http_body_util::BodyExt;
use tower::ServiceExt;

const KEY: &str = "c2d_test_key_0123456789abcdef0123456789abcdef";

/// A state whose PBX and Redis point at a closed port, with one API key.
fn app() -> axum::Router {
    let mut config = Config::default();
    config.ami.address = "127.0.0.1:9".into();
    config.redis.url = "redis://127.0.0.1:9".into();
    config.auth.keys = vec![ApiKey {
        id: "test".into(),
        hash: click2dial_host::auth::hash_key(KEY),
        ..Default::default()
    }];
    let state = click2dial_host::start(config).expect("state");
    click2dial_host::app(state)
}

async fn post(
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> (StatusCode, serde_json::Value) {
    let mut request = Request::post("/click2dial/calls")
        .header("host", "localhost")
        .header("authorization", format!("Bearer {KEY}"));
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    let response = app()
        .oneshot(request.body(body.into()).expect("request"))
        .await
        .expect("response");
    let status = response.status();
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap_or("")),
        Some("application/json"),
        "every answer is JSON"
    );
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, serde_json::from_slice(&bytes).expect("JSON body"))
}

const VALID: &str =
    r#"{"agent":"1001","callee":"0820001234","outbound_id":"27820001234","contact_ref":"crm-42"}"#;

#[tokio::test]
async fn wrong_content_type_is_415() {
    let (status, body) = post(Some("text/plain"), VALID).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(body["error"]["code"], "unsupported_media_type");
    let (status, _) = post(None, VALID).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn oversized_body_is_413() {
    let body = format!(r#"{{"pad":"{}"}}"#, "x".repeat(5000));
    let (status, body) = post(Some("application/json"), body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"]["code"], "body_too_large");
}

#[tokio::test]
async fn malformed_json_is_400() {
    let (status, body) = post(Some("application/json"), "{\"agent\":").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "malformed_json");
}

#[tokio::test]
async fn field_errors_are_422_with_the_field() {
    let (status, body) = post(
        Some("application/json; charset=utf-8"),
        r#"{"agent":"1001","callee":820001234,"outbound_id":"27820001234"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "invalid_callee");
    assert_eq!(body["error"]["field"], "callee");
    let (status, body) = post(
        Some("application/json"),
        r#"{"agent":"1001","callee":"0900001234","outbound_id":"27820001234"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "callee_not_allowed");
}

#[tokio::test]
async fn valid_call_without_pbx_is_503_and_dials_nothing() {
    let (status, body) = post(Some("application/json"), VALID).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "pbx_unavailable");
}
