//! `GET`/`HEAD /click2dial/recordings/{recording_ref}`: the PBX's `<recording_ref>.wav`.
//!
//! The reference is taken from the raw path (never percent-decoded) and must be a recording
//! reference (26 of `a-z2-7`) before the file system is touched: anything else is `400`, so
//! `..`, `%2f`, `%00`, backslashes and the like never reach a path. A reference whose file is
//! a symbolic link is followed only while its target stays inside the recordings directory;
//! otherwise, like an unknown reference, it is `404` (logged as a warning).
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
//! Serving is tower-http's `ServeFile`: `Content-Type: audio/wav`, `Content-Length`, strong
//! `ETag` (size and mtime), `Last-Modified`, conditional requests, and one byte range
//! (`206`, `416` when unsatisfiable; a multi-range request gets the whole file). `ServeFile`
//! does not look at `If-Range`, so a range whose `If-Range` no longer matches the file is
//! answered here with the whole file, as RFC 9110 §13.1.5 requires.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use click2dial_core::{Error, ErrorCode};
use std::sync::Arc;
use tower::ServiceExt;
use tower_http::services::ServeFile;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Caller, Scope};
use crate::errors::{retry_after, ApiError};
use crate::state::AppState;

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
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(recording))
}

/// What the recordings directory holds for a reference.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Nothing (or nothing that may be served).
    Missing,
    /// Being written.
    InProgress,
    /// Complete, at this path.
    Ready(PathBuf),
}

/// Looks `recording_ref` (already checked) up in `dir`.
pub fn lookup(dir: &Path, recording_ref: &str, abandoned_after: Duration) -> Lookup {
    let path = dir.join(format!("{recording_ref}.wav"));
    let Ok(link) = std::fs::symlink_metadata(&path) else {
        return Lookup::Missing;
    };
    if link.file_type().is_symlink() && !stays_inside(dir, &path) {
        tracing::warn!(
            recording_ref,
            "recording is a symbolic link leaving the recordings directory: refused"
        );
        return Lookup::Missing;
    }
    let Ok(meta) = std::fs::metadata(&path) else {
        return Lookup::Missing;
    };
    if !meta.is_file() {
        return Lookup::Missing;
    }
    if header_complete(&path, meta.len()) {
        return Lookup::Ready(path);
    }
    let idle = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or_default();
    if idle < abandoned_after {
        Lookup::InProgress
    } else {
        tracing::warn!(
            recording_ref,
            idle_secs = idle.as_secs(),
            "recording was never completed by its writer; served as it is"
        );
        Lookup::Ready(path)
    }
}

/// Whether `path`'s target (all links resolved) is inside `dir`'s.
fn stays_inside(dir: &Path, path: &Path) -> bool {
    match (std::fs::canonicalize(dir), std::fs::canonicalize(path)) {
        (Ok(dir), Ok(target)) => target.parent() == Some(dir.as_path()),
        _ => false,
    }
}

/// Whether the file's RIFF header has its final sizes: the RIFF size is set and matches the
/// length (Asterisk may add one pad byte after it). Files that are not RIFF/WAVE are taken
/// as they are.
fn header_complete(path: &Path, len: u64) -> bool {
    let mut head = [0u8; 12];
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    if file.read_exact(&mut head).is_err() {
        // Shorter than a RIFF header: only just created.
        return false;
    }
    if &head[..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return true;
    }
    let riff = u64::from(u32::from_le_bytes([head[4], head[5], head[6], head[7]]));
    riff != 0 && (riff + 8 == len || riff + 9 == len)
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
        (status = 400, description = "Not a recording reference", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing or bad API key", body = crate::openapi::ErrorBody),
        (status = 403, description = "The key lacks the scope recordings:read (`insufficient_scope`)", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such recording, or another key's (not told apart)", body = crate::openapi::ErrorBody),
        (status = 503, description = "Redis (the recordings' owners) does not answer; see Retry-After", body = crate::openapi::ErrorBody),
        (status = 409, description = "Still being written; see Retry-After", body = crate::openapi::ErrorBody),
        (status = 416, description = "The range selects nothing", body = crate::openapi::ErrorBody),
    )
)]
async fn recording(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    request: Request,
) -> Response {
    if let Err(e) = caller.require(Scope::RecordingsRead) {
        return ApiError(e).into_response();
    }
    let reference = raw_reference(&request).to_string();
    if !state.validators.is_recording_ref(&reference) {
        return ApiError(Error::INVALID_RECORDING_REF).into_response();
    }
    // Ownership first, before anything that could tell another key's recording from one
    // that does not exist (in progress, on disk): both are the same 404.
    let owner = match &state.call_store {
        Some(store) => store.recording_owner(&reference, OWNER_LOOKUP_WITHIN).await,
        None => Ok(None),
    };
    match owner {
        Ok(Some(owner)) if owner == caller.owner() => {}
        Ok(_) => return ApiError(Error::NOT_FOUND).into_response(),
        Err(()) => {
            let mut response = ApiError(OWNER_STORE_UNAVAILABLE).into_response();
            let (name, value) = retry_after(RETRY_AFTER_SECS);
            response.headers_mut().insert(name, value);
            return response;
        }
    }
    if state.pbx.recording_pending(&reference) {
        return in_progress();
    }
    let dir = state.config.recordings.dir.clone();
    let abandoned_after = Duration::from_secs(state.config.recordings.abandoned_after_secs);
    let looked_up = {
        let reference = reference.clone();
        tokio::task::spawn_blocking(move || lookup(&dir, &reference, abandoned_after)).await
    };
    let path = match looked_up {
        Ok(Lookup::Ready(path)) => path,
        Ok(Lookup::InProgress) => return in_progress(),
        Ok(Lookup::Missing) => return ApiError(Error::NOT_FOUND).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "recording lookup failed");
            return ApiError(Error::INTERNAL).into_response();
        }
    };
    let (parts, _) = request.into_parts();
    let mut response = match serve(&path, parts.clone()).await {
        Some(r) if r.status() == StatusCode::PARTIAL_CONTENT && !if_range_holds(&parts, &r) => {
            let mut whole = parts;
            whole.headers.remove(header::RANGE);
            whole.headers.remove(header::IF_RANGE);
            match serve(&path, whole).await {
                Some(r) => r,
                None => return ApiError(Error::INTERNAL).into_response(),
            }
        }
        Some(r) => r,
        None => return ApiError(Error::INTERNAL).into_response(),
    };
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

/// `ServeFile` on `path` for a request made of `parts`.
async fn serve(path: &Path, parts: Parts) -> Option<Response> {
    match ServeFile::new(path)
        .ignore_multi_range_requests(true)
        .oneshot(axum::http::Request::from_parts(parts, Body::empty()))
        .await
    {
        Ok(response) => Some(response.map(Body::new)),
        Err(e) => {
            tracing::error!(error = %e, "serving a recording failed");
            None
        }
    }
}

/// Whether the request's `If-Range` (if any) matches the answer's validators: a strong
/// `ETag` equal to it, or a `Last-Modified` equal to its date.
fn if_range_holds(parts: &Parts, response: &Response) -> bool {
    let Some(wanted) = parts.headers.get(header::IF_RANGE) else {
        return true;
    };
    let validator = if wanted.as_bytes().starts_with(b"\"") {
        response.headers().get(header::ETAG)
    } else {
        response.headers().get(header::LAST_MODIFIED)
    };
    validator.is_some_and(|v| v == wanted)
}

fn in_progress() -> Response {
    let mut response = ApiError(IN_PROGRESS).into_response();
    let (name, value) = retry_after(RETRY_AFTER_SECS);
    response.headers_mut().insert(name, value);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(riff: u32, audio: usize) -> Vec<u8> {
        let mut v = b"RIFF".to_vec();
        v.extend_from_slice(&riff.to_le_bytes());
        v.extend_from_slice(b"WAVEfmt ");
        v.resize(44 + audio, 0);
        v
    }

    #[test]
    fn header_tells_complete_from_in_progress() {
        let dir = tempfile::tempdir().expect("tempdir");
        let day = Duration::from_secs(86_400);
        let cases: [(&str, Vec<u8>, bool); 6] = [
            ("done", wav(36 + 1600, 1600), true),
            ("padded", wav(36 + 1601, 1602), true),
            ("sizes-unset", wav(0, 1600), false),
            ("still-growing", wav(36 + 800, 1600), false),
            ("just-created", b"RIF".to_vec(), false),
            ("not-a-wav", b"ID3 whatever".to_vec(), true),
        ];
        for (name, bytes, complete) in cases {
            std::fs::write(dir.path().join(format!("{name}.wav")), bytes).expect("write");
            let got = lookup(dir.path(), name, day);
            assert_eq!(matches!(got, Lookup::Ready(_)), complete, "{name}: {got:?}");
            if !complete {
                assert_eq!(got, Lookup::InProgress, "{name}");
            }
        }
        assert_eq!(lookup(dir.path(), "absent", day), Lookup::Missing);
        assert!(
            matches!(
                lookup(dir.path(), "sizes-unset", Duration::ZERO),
                Lookup::Ready(_)
            ),
            "abandoned files are served"
        );
    }

    #[test]
    fn links_may_not_leave_the_directory() {
        let outside = tempfile::tempdir().expect("tempdir");
        let dir = tempfile::tempdir().expect("tempdir");
        let day = Duration::from_secs(86_400);
        std::fs::write(outside.path().join("secret.wav"), wav(36, 0)).expect("write");
        std::fs::write(dir.path().join("real.wav"), wav(36, 0)).expect("write");
        std::os::unix::fs::symlink(
            outside.path().join("secret.wav"),
            dir.path().join("out.wav"),
        )
        .expect("symlink");
        std::os::unix::fs::symlink(dir.path().join("real.wav"), dir.path().join("in.wav"))
            .expect("symlink");
        std::os::unix::fs::symlink(outside.path(), dir.path().join("sub.wav")).expect("symlink");
        assert_eq!(lookup(dir.path(), "out", day), Lookup::Missing);
        assert_eq!(lookup(dir.path(), "sub", day), Lookup::Missing);
        assert!(matches!(lookup(dir.path(), "in", day), Lookup::Ready(_)));
        std::fs::create_dir(dir.path().join("adir.wav")).expect("mkdir");
        assert_eq!(lookup(dir.path(), "adir", day), Lookup::Missing);
    }
}
