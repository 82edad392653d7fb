//! The API-key middleware: `Authorization: Bearer <key>`, looked up in [`Keys`]
//! (what a key is and may do: `crate::auth`).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use click2dial_core::Error;

use crate::auth::Keys;
use crate::http::error::ApiError;

// The appliance answers with the same two errors (core's).
const MISSING: Error = Error::API_KEY_REQUIRED;
const INVALID: Error = Error::API_KEY_INVALID;

/// Middleware: answers `401` unless the request carries a configured key, and hands the
/// [`Caller`](crate::auth::Caller) to what follows as a request extension.
pub async fn require_key(
    State(keys): State<Arc<Keys>>,
    mut request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| bearer(v.as_bytes()));
    let caller = match presented {
        None => return unauthorized(MISSING, false),
        Some(None) => return unauthorized(INVALID, true),
        Some(Some(token)) => keys.find(token),
    };
    let Some(caller) = caller else {
        tracing::info!("request with an unknown API key refused");
        return unauthorized(INVALID, true);
    };
    tracing::Span::current().record("key", caller.id.as_str());
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// The token of `Bearer <token>` (scheme case-insensitive), or `None` when malformed.
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let scheme = value.get(..7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = value.get(7..)?.trim_ascii();
    (!token.is_empty()).then_some(token)
}

fn unauthorized(error: Error, invalid_token: bool) -> Response {
    let challenge = if invalid_token {
        r#"Bearer realm="click2dial", error="invalid_token""#
    } else {
        r#"Bearer realm="click2dial""#
    };
    ApiError::new(error).challenge(challenge).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Bearer"), None);
    }
}
