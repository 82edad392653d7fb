//! The request line and headers, read with httparse into the few facts the API needs.

use click2dial_core::text::split_once;
use click2dial_core::{request, Error};

use crate::admin::key_hash;

/// Headers read per request; more is answered `431`.
pub(crate) const MAX_HEADERS: usize = 24;

/// The create-call route.
pub(crate) const CALLS_PATH: &str = "/click2dial/calls";

/// Where a request goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// `POST /click2dial/calls`.
    CreateCall,
    /// `GET /admin/config`.
    GetConfig,
    /// `PUT /admin/config`.
    PutConfig,
    /// `POST /admin/reboot`.
    Reboot,
    /// `POST /admin/factory-reset`.
    FactoryReset,
    /// `PUT /admin/update`: a signed firmware image.
    Update,
    /// `GET /admin/update`: the boot state and the running image's version.
    UpdateStatus,
    /// `GET /admin/status`: whether the PBX takes the device's calls.
    Status,
    /// A known path with another method: `405`, with the methods it allows.
    MethodNotAllowed(&'static str),
    /// Any other path: `404`.
    NotFound,
}

impl Route {
    /// An admin route (the admin key is required).
    pub(crate) fn is_admin(self) -> bool {
        matches!(
            self,
            Self::GetConfig
                | Self::PutConfig
                | Self::Reboot
                | Self::FactoryReset
                | Self::Update
                | Self::UpdateStatus
                | Self::Status
        )
    }
}

/// The `Authorization` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bearer {
    /// No header.
    Absent,
    /// A header that is not `Bearer <key>`.
    Malformed,
    /// `Bearer <key>`: the key's SHA-256 (the key itself is not kept).
    KeyHash([u8; 32]),
}

/// How the body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `Content-Length` bytes (0 without the header).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// What the API needs from a request head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    /// Bytes of the head, closing empty line included.
    pub(crate) len: usize,
    pub(crate) route: Route,
    /// The verdict on `Content-Type` (`415` when not JSON).
    pub(crate) content_type: Result<(), Error>,
    pub(crate) framing: Framing,
    /// `Expect: 100-continue`: answer `100 Continue` before reading the body.
    pub(crate) expect_continue: bool,
    /// The credentials presented.
    pub(crate) bearer: Bearer,
}

/// Why a head is refused before routing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// Not HTTP/1.x, or framing headers that contradict themselves: `400`.
    Malformed,
    /// Too many headers: `431`.
    TooLarge,
}

/// Parses the head at the front of `buf`; `Ok(None)` while it is incomplete.
pub(crate) fn parse(buf: &[u8]) -> Result<Option<Head>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => return Err(HeadError::Malformed),
    };
    let path = req.path.unwrap_or_default();
    let path = split_once(path, b'?').map_or(path, |(p, _)| p);
    let route = match (path, req.method.unwrap_or_default()) {
        (CALLS_PATH, "POST") => Route::CreateCall,
        (CALLS_PATH, _) => Route::MethodNotAllowed("POST"),
        ("/admin/config", "GET") => Route::GetConfig,
        ("/admin/config", "PUT") => Route::PutConfig,
        ("/admin/config", _) => Route::MethodNotAllowed("GET, PUT"),
        ("/admin/reboot", "POST") => Route::Reboot,
        ("/admin/factory-reset", "POST") => Route::FactoryReset,
        ("/admin/reboot" | "/admin/factory-reset", _) => Route::MethodNotAllowed("POST"),
        ("/admin/update", "PUT") => Route::Update,
        ("/admin/update", "GET") => Route::UpdateStatus,
        ("/admin/update", _) => Route::MethodNotAllowed("GET, PUT"),
        ("/admin/status", "GET") => Route::Status,
        ("/admin/status", _) => Route::MethodNotAllowed("GET"),
        _ => Route::NotFound,
    };
    let mut bearer = Bearer::Absent;
    let mut content_type = None;
    let mut length: Option<u64> = None;
    let mut chunked = None;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-type") {
            content_type.get_or_insert(h.value);
        } else if name.eq_ignore_ascii_case("content-length") {
            let value = parse_length(h.value).ok_or(HeadError::Malformed)?;
            if length.is_some_and(|l| l != value) {
                return Err(HeadError::Malformed);
            }
            length = Some(value);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // The last coding decides; anything but `chunked` last cannot be delimited.
            let last = h
                .value
                .rsplit(|&b| b == b',')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case("authorization") {
            bearer = match click2dial_core::request::bearer_token(h.value) {
                Some(key) if bearer == Bearer::Absent => Bearer::KeyHash(key_hash(key)),
                _ => Bearer::Malformed,
            };
        } else if name.eq_ignore_ascii_case("expect") {
            expect_continue = h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        }
    }
    let framing = match chunked {
        Some(true) => Framing::Chunked,
        Some(false) => return Err(HeadError::Malformed),
        None => Framing::Length(length.unwrap_or(0)),
    };
    Ok(Some(Head {
        len,
        route,
        content_type: request::check_content_type(content_type),
        framing,
        expect_continue,
        bearer,
    }))
}

/// Decimal digits only, as HTTP requires.
fn parse_length(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(u64::from(b - b'0')))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Option<Head>, HeadError> {
        parse(text.as_bytes())
    }

    #[test]
    fn routes_and_verdicts() {
        let text = "POST /click2dial/calls?x=1 HTTP/1.1\r\nContent-Type: Application/JSON; charset=utf-8\r\nContent-Length: 12\r\nExpect: 100-continue\r\n\r\n{";
        let h = head(text).unwrap().unwrap();
        assert_eq!(h.route, Route::CreateCall);
        assert_eq!(h.content_type, Ok(()));
        assert_eq!(h.framing, Framing::Length(12));
        assert!(h.expect_continue);
        assert_eq!(h.len, text.len() - 1);
        let h = head("GET /click2dial/calls HTTP/1.0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.route, Route::MethodNotAllowed("POST"));
        assert_eq!(h.bearer, Bearer::Absent);
        assert_eq!(h.content_type, Err(Error::UNSUPPORTED_MEDIA_TYPE));
        assert_eq!(h.framing, Framing::Length(0));
        let h = head("POST /click2dial/calls/ HTTP/1.1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.route, Route::NotFound);
        let h = head("POST /click2dial/calls HTTP/1.1\r\nContent-Type: text/plain\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.content_type, Err(Error::UNSUPPORTED_MEDIA_TYPE));
    }

    #[test]
    fn admin_routes_and_keys() {
        let route = |line: &str| {
            head(&std::format!("{line} HTTP/1.1\r\n\r\n"))
                .unwrap()
                .unwrap()
                .route
        };
        assert_eq!(route("GET /admin/config"), Route::GetConfig);
        assert_eq!(route("PUT /admin/config"), Route::PutConfig);
        assert_eq!(
            route("POST /admin/config"),
            Route::MethodNotAllowed("GET, PUT")
        );
        assert_eq!(route("POST /admin/reboot"), Route::Reboot);
        assert_eq!(route("GET /admin/reboot"), Route::MethodNotAllowed("POST"));
        assert_eq!(route("POST /admin/factory-reset"), Route::FactoryReset);
        assert_eq!(route("PUT /admin/update"), Route::Update);
        assert_eq!(route("GET /admin/update"), Route::UpdateStatus);
        assert_eq!(
            route("POST /admin/update"),
            Route::MethodNotAllowed("GET, PUT")
        );
        assert_eq!(route("POST /admin"), Route::NotFound);
        let bearer = |headers: &str| {
            head(&std::format!("GET /admin/config HTTP/1.1\r\n{headers}\r\n"))
                .unwrap()
                .unwrap()
                .bearer
        };
        assert_eq!(
            bearer("Authorization: bearer  k3y \r\n"),
            Bearer::KeyHash(key_hash(b"k3y"))
        );
        for bad in [
            "Authorization: Basic azN5\r\n",
            "Authorization: Bearer \r\n",
            "Authorization: Bearer a\r\nAuthorization: Bearer a\r\n",
        ] {
            assert_eq!(bearer(bad), Bearer::Malformed, "{bad}");
        }
    }

    #[test]
    fn framing() {
        let framing = |headers: &str| {
            head(&std::format!(
                "POST /click2dial/calls HTTP/1.1\r\n{headers}\r\n"
            ))
            .map(|h| h.unwrap().framing)
        };
        assert_eq!(
            framing("Transfer-Encoding: chunked\r\n"),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            framing("Transfer-Encoding: gzip, Chunked\r\nContent-Length: 3\r\n"),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            framing("Transfer-Encoding: gzip\r\n"),
            Err(HeadError::Malformed)
        );
        assert_eq!(
            framing("Content-Length: 5\r\nContent-Length: 5\r\n"),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            framing("Content-Length: 5\r\nContent-Length: 6\r\n"),
            Err(HeadError::Malformed)
        );
        for bad in ["-1", "+5", "5 5", "", "0x10", "99999999999999999999"] {
            assert_eq!(
                framing(&std::format!("Content-Length: {bad}\r\n")),
                Err(HeadError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn incomplete_malformed_and_too_many_headers() {
        assert_eq!(
            head("POST /click2dial/calls HTTP/1.1\r\nHost: a\r\n"),
            Ok(None)
        );
        assert_eq!(head("\x16\x03\x01\r\n\r\n"), Err(HeadError::Malformed));
        let many: std::string::String = (0..=MAX_HEADERS)
            .map(|i| std::format!("X-{i}: 1\r\n"))
            .collect();
        assert_eq!(
            head(&std::format!("GET / HTTP/1.1\r\n{many}\r\n")),
            Err(HeadError::TooLarge)
        );
    }
}
