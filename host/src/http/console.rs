//! The agent console and the SIP.js softphone: static pages compiled into the binary, so the
//! service needs no asset directory and no build step at run time.
//!
//! Served under `/console/` without an API key: the pages hold no secret. The agent types
//! the key into the page, which sends it as `Authorization: Bearer …` on every API request
//! (never in a URL, so it never lands in a log). The content security policy allows scripts
//! from this origin only (no CDN, no inline script) and WebSocket connections to the SIP
//! server the softphone is pointed at.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use crate::http::error::ApiError;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $content_type:literal) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("../../console/", $name)),
        }
    };
}

/// Every file under `host/console/` that the pages use.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("console.js", "text/javascript; charset=utf-8"),
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("softphone.html", "text/html; charset=utf-8"),
    asset!("softphone.js", "text/javascript; charset=utf-8"),
    asset!("softphone.css", "text/css; charset=utf-8"),
    asset!("vendor/sip.js", "text/javascript; charset=utf-8"),
    asset!("vendor/sip.js.LICENSE.md", "text/plain; charset=utf-8"),
];

const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; connect-src 'self' ws: wss:; media-src 'self' blob:; \
    img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// `/console` and `/console/<file>`.
pub fn router() -> Router {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/", get(|| async { serve("index.html") }))
        .route(
            "/console/{*file}",
            get(|Path(file): Path<String>| async move { serve(&file) }),
        )
}

fn serve(name: &str) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return ApiError::new(click2dial_core::Error::NOT_FOUND).into_response();
    };
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        asset.body,
    )
        .into_response()
}
