//! Status line and headers; the body follows as written by core.

use click2dial_core::decimal::Decimal;

/// Writes the head of a response into `out` and returns its length (0 if it does not fit,
/// which cannot happen with the heads written here and a 160-byte buffer).
/// A header line some answers add.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Extra {
    None,
    /// `allow: <methods>` (`405`).
    Allow(&'static str),
    /// `www-authenticate`, as the host sends it (`401`).
    Challenge,
}

pub(crate) fn write_head(
    status: u16,
    body_len: usize,
    json: bool,
    extra: Extra,
    out: &mut [u8],
) -> usize {
    let mut w = Cursor { out, len: 0 };
    w.put("HTTP/1.1 ");
    w.number(status.into());
    w.put(" ");
    w.put(reason(status));
    w.put("\r\n");
    if json {
        w.put("content-type: application/json\r\n");
    }
    match extra {
        Extra::None => {}
        Extra::Allow(methods) => {
            w.put("allow: ");
            w.put(methods);
            w.put("\r\n");
        }
        Extra::Challenge => w.put("www-authenticate: Bearer realm=\"click2dial\"\r\n"),
    }
    w.put("content-length: ");
    w.number(body_len);
    w.put("\r\nconnection: close\r\n\r\n");
    if w.len > w.out.len() {
        0
    } else {
        w.len
    }
}

/// `100 Continue`, for clients that wait before sending a body.
pub(crate) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

struct Cursor<'o> {
    out: &'o mut [u8],
    len: usize,
}

impl Cursor<'_> {
    fn put(&mut self, s: &str) {
        let end = self.len.saturating_add(s.len());
        if let Some(dest) = self.out.get_mut(self.len..end) {
            dest.copy_from_slice(s.as_bytes());
        }
        self.len = end;
    }

    fn number(&mut self, n: usize) {
        self.put(Decimal::new(n as u64).as_str());
    }
}
