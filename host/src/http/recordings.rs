//! `GET`/`HEAD /click2dial/recordings/{recording_ref}`: the PBX's `<recording_ref>.wav`.
//!
//! The reference is taken from the raw path (never percent-decoded) and must be a recording
//! reference (26 of `a-z2-7`) before the file system is touched: anything else is `400`, so
//! `..`, `%2f`, `%00`, backslashes and the like never reach a path. Only the key that
//! created the call reads it (its owner is in Redis); for any other key it is `404`, decided
//! first. The file is opened relative to the directory with `O_NOFOLLOW` and served from
//! that open file ([`crate::recording_file::open`]): a symbolic link is never followed, and nothing put in the
//! file's place after the open is served.
//!
//! A recording still being written is `409 recording_in_progress` with `Retry-After`, never a
//! truncated file served as if complete. It is known in two ways, either one enough:
//!
//! 1. this host follows the call and has not yet seen its end (its `recording_ready` is still
//!    to come): the file may not even exist yet;
//! 2. the file is a WAV whose RIFF size is 0 or disagrees with the file's length. Asterisk's
//!    `format_wav` (which `MixMonitor` uses for `.wav`) writes the header with sizes 0, appends
//!    audio while the call lasts and sets the sizes when it closes the file, and the PBX
//!    simulator does the same. This works whichever host placed the call, and after a restart.
//!    A file left like that for `recordings.abandoned_after_secs` (its writer died with the
//!    PBX) is served as it is rather than refused forever.
//!
//! Serving: `Content-Type: audio/wav`, `Content-Length`, strong `ETag` (size and
//! mtime), `Last-Modified`, conditional requests (`304`), one byte range (core's [`range`]:
//! `206`, `416` when unsatisfiable; several ranges, another unit or a malformed value get the
//! whole file), and `If-Range` (a stale one gets the whole file, RFC 9110 §13.1.5).

use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use click2dial_core::range::{self, RangeAsk};
use click2dial_core::{Error, ErrorCode};
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Caller, Scope};
use crate::http::error::ApiError;
use crate::pbxes::Pbxes;
use crate::recording_file::{lookup, Lookup};
use crate::store::call_store::CallStore;

/// What the recordings route needs: the reference's rule, the owners (Redis), the calls in
/// flight (the PBX client) and the directory.
#[derive(Clone)]
pub struct Recordings {
    /// The field validators.
    pub validators: Arc<click2dial_core::Validators>,
    /// The recordings' owners; `None`: every recording is `404`.
    pub owners: Option<CallStore>,
    /// The calls this host follows (their recordings are still being written).
    pub pbxes: Pbxes,
    /// `recordings.dir`.
    pub dir: std::path::PathBuf,
    /// `recordings.abandoned_after_secs`.
    pub abandoned_after: Duration,
}

/// `409`: the call (and so its recording) is not over.
const IN_PROGRESS: Error = Error::request(
    ErrorCode::RecordingInProgress,
    "the recording is still being written (the call is in progress); retry later",
);

/// Seconds a client is asked to wait before asking again for a recording in progress.
const RETRY_AFTER_SECS: u64 = 5;

/// How long the owner lookup in Redis may take before the answer is `503`.
const OWNER_LOOKUP_WITHIN: Duration = Duration::from_secs(1);

/// `503`: Redis, which knows each recording's owner, does not answer.
const OWNER_STORE_UNAVAILABLE: Error = Error::request(
    ErrorCode::ServiceUnavailable,
    "the store of recording owners (Redis) does not answer; retry later",
);

/// `/click2dial/recordings/{recording_ref}`.
pub fn router(recordings: Recordings) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(recording))
        .with_state(recordings)
}

/// The last path segment, as sent.
fn raw_reference(request: &Request) -> &str {
    request.uri().path().rsplit('/').next().unwrap_or_default()
}

/// A call's recording (WAV).
#[utoipa::path(
    method(get, head),
    path = "/click2dial/recordings/{recording_ref}",
    tag = "recordings",
    security(("api_key" = ["recordings:read"])),
    params(
        ("recording_ref" = String, Path, description = "26 characters of a-z and 2-7, from the 202 answer or a notification"),
        ("Range" = Option<String>, Header, description = "One byte range, e.g. bytes=0-1023"),
    ),
    responses(
        (status = 200, description = "The whole recording", content_type = "audio/wav", body = Vec<u8>),
        (status = 206, description = "The requested range", content_type = "audio/wav", body = Vec<u8>),
        (status = 304, description = "Not modified (If-None-Match / If-Modified-Since)"),
        (status = 400, description = "Not a recording reference", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "Missing or bad API key", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The key lacks the scope recordings:read (`insufficient_scope`)", body = crate::http::openapi::ErrorBody),
        (status = 404, description = "No such recording, or another key's (not told apart)", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "Redis (the recordings' owners) does not answer; see Retry-After", body = crate::http::openapi::ErrorBody),
        (status = 409, description = "Still being written; see Retry-After", body = crate::http::openapi::ErrorBody),
        (status = 416, description = "The range selects nothing", body = crate::http::openapi::ErrorBody),
    )
)]
async fn recording(
    State(state): State<Recordings>,
    Extension(caller): Extension<Arc<Caller>>,
    request: Request,
) -> Response {
    if let Err(e) = caller.require(Scope::RecordingsRead) {
        return ApiError::new(e).into_response();
    }
    let reference = raw_reference(&request).to_string();
    if !state.validators.is_recording_ref(&reference) {
        return ApiError::new(Error::INVALID_RECORDING_REF).into_response();
    }
    // Ownership first, before anything that could tell another key's recording from one
    // that does not exist (in progress, on disk): both are the same 404.
    let owner = match &state.owners {
        Some(store) => store.recording_owner(&reference, OWNER_LOOKUP_WITHIN).await,
        None => Ok(None),
    };
    match owner {
        Ok(Some(owner)) if owner == caller.owner() => {}
        Ok(_) => return ApiError::new(Error::NOT_FOUND).into_response(),
        Err(()) => {
            return ApiError::new(OWNER_STORE_UNAVAILABLE)
                .retry_after(RETRY_AFTER_SECS)
                .into_response();
        }
    }
    if state.pbxes.recording_pending(&reference) {
        return in_progress();
    }
    let dir = state.dir.clone();
    let abandoned_after = state.abandoned_after;
    let looked_up = {
        let reference = reference.clone();
        tokio::task::spawn_blocking(move || lookup(&dir, &reference, abandoned_after)).await
    };
    let (file, meta) = match looked_up {
        Ok(Lookup::Ready(file, meta)) => (file, meta),
        Ok(Lookup::InProgress) => return in_progress(),
        Ok(Lookup::Missing) => return ApiError::new(Error::NOT_FOUND).into_response(),
        Err(e) => {
            return ApiError::new(Error::INTERNAL)
                .cause(format_args!("recording lookup failed: {e}"))
                .into_response();
        }
    };
    let (parts, _) = request.into_parts();
    let mut response = serve(file, &meta, &parts).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("inline; filename=\"{reference}.wav\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// Answers a `GET`/`HEAD` from the open `file`: validators, conditional requests, one byte
/// range. Written here rather than with tower-http's `ServeFile`, which opens by path (the
/// race this module closes); no maintained crate serves an already-open file.
async fn serve(file: std::fs::File, meta: &std::fs::Metadata, parts: &Parts) -> Response {
    let len = meta.len();
    let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let since_epoch = modified
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let etag = format!("\"{len:x}-{:x}\"", since_epoch.as_nanos());
    let last_modified = httpdate::fmt_http_date(modified);
    let request = &parts.headers;
    let validators = |builder: axum::http::response::Builder| {
        builder
            .header(header::ETAG, &etag)
            .header(header::LAST_MODIFIED, &last_modified)
    };
    let not_modified = match request.get(header::IF_NONE_MATCH) {
        Some(wanted) => wanted
            .to_str()
            .unwrap_or_default()
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == etag),
        None => request
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| httpdate::parse_http_date(v.to_str().ok()?).ok())
            .is_some_and(|since| {
                modified
                    .duration_since(since)
                    .map_or(true, |d| d.as_secs() == 0)
            }),
    };
    if not_modified {
        return validators(Response::builder().status(StatusCode::NOT_MODIFIED))
            .body(Body::empty())
            .unwrap_or_default();
    }
    let if_range_holds = request.get(header::IF_RANGE).is_none_or(|wanted| {
        wanted.as_bytes() == etag.as_bytes() || wanted.as_bytes() == last_modified.as_bytes()
    });
    let ask = if if_range_holds {
        range::ask(request.get(header::RANGE).map(|v| v.as_bytes()), len)
    } else {
        RangeAsk::Whole
    };
    let (status, start, count) = match ask {
        RangeAsk::Whole => (StatusCode::OK, 0, len),
        RangeAsk::Part(start, end) => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        RangeAsk::Unsatisfiable => {
            let mut response = ApiError::new(RANGE_NOT_SATISFIABLE).into_response();
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{len}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return response;
        }
    };
    let mut builder = validators(Response::builder().status(status))
        .header(header::CONTENT_TYPE, "audio/wav")
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_LENGTH, count);
    if status == StatusCode::PARTIAL_CONTENT {
        builder = builder.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{len}", start + count - 1),
        );
    }
    let body = if parts.method == axum::http::Method::HEAD {
        Body::empty()
    } else {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let mut file = tokio::fs::File::from_std(file);
        if file.seek(std::io::SeekFrom::Start(start)).await.is_err() {
            return ApiError::new(Error::INTERNAL).into_response();
        }
        Body::from_stream(tokio_util::io::ReaderStream::new(file.take(count)))
    };
    builder
        .body(body)
        .unwrap_or_else(|_| ApiError::new(Error::INTERNAL).into_response())
}

/// `416`: the range selects no byte of the recording.
const RANGE_NOT_SATISFIABLE: Error = Error::request(
    ErrorCode::RangeNotSatisfiable,
    "the Range header selects no part of the recording (one range of bytes is served)",
);

fn in_progress() -> Response {
    ApiError::new(IN_PROGRESS)
        .retry_after(RETRY_AFTER_SECS)
        .into_response()
}
