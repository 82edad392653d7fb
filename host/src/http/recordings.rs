//! `GET`/`HEAD /click2dial/recordings/{recording_ref}`: the PBX's `<recording_ref>.wav`.
//!
//! The reference is taken from the raw path (never percent-decoded) and must be a recording
//! reference (26 of `a-z2-7`) before the file system is touched: anything else is `400`, so
//! `..`, `%2f`, `%00`, backslashes and the like never reach a path. Only the key that
//! created the call reads it (its owner is in Redis); for any other key it is `404`, decided
//! first. The file is opened relative to the directory with `O_NOFOLLOW` and served from
//! that open file ([`open`]): a symbolic link is never followed, and nothing put in the
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

use std::path::Path;
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

/// What the recordings directory holds for a reference.
#[derive(Debug)]
pub enum Lookup {
    /// Nothing (or nothing that may be served).
    Missing,
    /// Being written.
    InProgress,
    /// Complete: the file as opened, and its metadata (read from the open file).
    Ready(std::fs::File, std::fs::Metadata),
}

impl PartialEq for Lookup {
    fn eq(&self, other: &Self) -> bool {
        matches!(
            (self, other),
            (Self::Missing, Self::Missing)
                | (Self::InProgress, Self::InProgress)
                | (Self::Ready(..), Self::Ready(..))
        )
    }
}

/// Opens `<recording_ref>.wav` (the reference already checked: one path component) relative
/// to a handle on `dir`, never following a symbolic link (`O_NOFOLLOW`: a link is `ELOOP`,
/// answered `404`), without blocking on a FIFO (`O_NONBLOCK`), and keeps it only when the
/// opened file is a regular file. Everything after — the header check, the metadata, the
/// bytes served — reads this open file, so swapping the name for a link or another file
/// after the open changes nothing that is served.
pub fn open(dir: &Path, recording_ref: &str) -> Option<(std::fs::File, std::fs::Metadata)> {
    use rustix::fs::{openat, Mode, OFlags, CWD};
    let dir_fd = openat(
        CWD,
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let name = format!("{recording_ref}.wav");
    let fd = match openat(
        &dir_fd,
        name.as_str(),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(e) => {
            if e == rustix::io::Errno::LOOP {
                tracing::warn!(recording_ref, "recording is a symbolic link: refused");
            }
            return None;
        }
    };
    let file = std::fs::File::from(fd);
    let meta = file.metadata().ok()?;
    meta.is_file().then_some((file, meta))
}

/// Looks `recording_ref` (already checked) up in `dir`.
pub fn lookup(dir: &Path, recording_ref: &str, abandoned_after: Duration) -> Lookup {
    let Some((file, meta)) = open(dir, recording_ref) else {
        return Lookup::Missing;
    };
    if header_complete(&file, meta.len()) {
        return Lookup::Ready(file, meta);
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
        Lookup::Ready(file, meta)
    }
}

/// Whether the file's RIFF header has its final sizes: the RIFF size is set and matches the
/// length (Asterisk may add one pad byte after it). Files that are not RIFF/WAVE are taken
/// as they are.
fn header_complete(file: &std::fs::File, len: u64) -> bool {
    use std::os::unix::fs::FileExt;
    let mut head = [0u8; 12];
    if file.read_exact_at(&mut head, 0).is_err() {
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
            assert_eq!(
                matches!(got, Lookup::Ready(..)),
                complete,
                "{name}: {got:?}"
            );
            if !complete {
                assert_eq!(got, Lookup::InProgress, "{name}");
            }
        }
        assert_eq!(lookup(dir.path(), "absent", day), Lookup::Missing);
        assert!(
            matches!(
                lookup(dir.path(), "sizes-unset", Duration::ZERO),
                Lookup::Ready(..)
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
        assert_eq!(
            lookup(dir.path(), "in", day),
            Lookup::Missing,
            "no link is followed, even one that stays inside"
        );
        assert!(matches!(lookup(dir.path(), "real", day), Lookup::Ready(..)));
        std::fs::create_dir(dir.path().join("adir.wav")).expect("mkdir");
        assert_eq!(lookup(dir.path(), "adir", day), Lookup::Missing);
    }
}
