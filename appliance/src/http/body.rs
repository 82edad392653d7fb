//! Reads a request body into the request buffer: `Content-Length` bytes, or chunks decoded in
//! place. Anything beyond [`MAX_BODY_LEN`] is not read: the host answers such a body with
//! `413`, and so does the appliance. The host also answers `413` for a body that ends early or
//! whose chunk framing is broken (every body error is one answer there), so that is
//! [`BodyError::Unreadable`] here.

use click2dial_core::request::MAX_BODY_LEN;
use embedded_io_async::Read;

use super::head::Framing;

/// Why no body was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Longer than [`MAX_BODY_LEN`], or cut short, or broken chunk framing: `413`.
    Unreadable,
    /// The connection failed; nothing can be answered.
    Io,
}

/// Reads the body whose first `have` bytes are at the front of `buf`; returns its length
/// (the body is then `buf[..len]`).
pub(crate) async fn read<R: Read>(
    reader: &mut R,
    framing: Framing,
    buf: &mut [u8],
    have: usize,
) -> Result<usize, BodyError> {
    match framing {
        Framing::Length(len) => {
            let len = usize::try_from(len)
                .ok()
                .filter(|&l| l <= MAX_BODY_LEN)
                .ok_or(BodyError::Unreadable)?;
            let mut have = have;
            while have < len {
                let dest = buf.get_mut(have..len).ok_or(BodyError::Unreadable)?;
                have += read_some(reader, dest).await?;
            }
            Ok(len)
        }
        Framing::Chunked => Chunked::new(have).read(reader, buf).await,
    }
}

/// Reads at least one byte; the peer closing here cuts the body short.
async fn read_some<R: Read>(reader: &mut R, dest: &mut [u8]) -> Result<usize, BodyError> {
    match reader.read(dest).await {
        Ok(0) => Err(BodyError::Unreadable),
        Ok(n) => Ok(n),
        Err(_) => Err(BodyError::Io),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// A chunk-size line.
    Size,
    /// Chunk data, this many bytes left.
    Data(usize),
    /// The CRLF after chunk data.
    DataEnd,
    /// Trailer lines until an empty one.
    Trailer,
}

/// In-place chunk decoder. The buffer holds `[decoded body | raw bytes not decoded yet | free]`;
/// decoding only moves bytes towards the front, so one buffer is enough.
struct Chunked {
    body: usize,
    raw_start: usize,
    raw_end: usize,
    state: State,
}

impl Chunked {
    fn new(have: usize) -> Self {
        Self {
            body: 0,
            raw_start: 0,
            raw_end: have,
            state: State::Size,
        }
    }

    async fn read<R: Read>(mut self, reader: &mut R, buf: &mut [u8]) -> Result<usize, BodyError> {
        loop {
            if self.step(buf)? {
                return Ok(self.body);
            }
            // Need more bytes: close the gap after the body, then read behind the raw bytes.
            if self.raw_start > self.body {
                buf.copy_within(self.raw_start..self.raw_end, self.body);
                self.raw_end -= self.raw_start - self.body;
                self.raw_start = self.body;
            }
            let free = buf.get_mut(self.raw_end..).unwrap_or_default();
            if free.is_empty() {
                return Err(BodyError::Unreadable);
            }
            self.raw_end += read_some(reader, free).await?;
        }
    }

    /// Decodes what the raw bytes allow; `Ok(true)` once the body is complete, `Ok(false)`
    /// when more bytes are needed.
    fn step(&mut self, buf: &mut [u8]) -> Result<bool, BodyError> {
        loop {
            let raw = buf.get(self.raw_start..self.raw_end).unwrap_or_default();
            match self.state {
                State::Size => match httparse::parse_chunk_size(raw) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        self.raw_start += used;
                        let size = usize::try_from(size).map_err(|_| BodyError::Unreadable)?;
                        if size == 0 {
                            self.state = State::Trailer;
                        } else if self.body.saturating_add(size) > MAX_BODY_LEN {
                            return Err(BodyError::Unreadable);
                        } else {
                            self.state = State::Data(size);
                        }
                    }
                    Ok(httparse::Status::Partial) => return Ok(false),
                    Err(_) => return Err(BodyError::Unreadable),
                },
                State::Data(left) => {
                    let take = left.min(raw.len());
                    if take == 0 {
                        return Ok(false);
                    }
                    buf.copy_within(self.raw_start..self.raw_start + take, self.body);
                    self.body += take;
                    self.raw_start += take;
                    self.state = match left - take {
                        0 => State::DataEnd,
                        rest => State::Data(rest),
                    };
                }
                State::DataEnd => match raw.get(..2) {
                    Some(b"\r\n") => {
                        self.raw_start += 2;
                        self.state = State::Size;
                    }
                    Some(_) => return Err(BodyError::Unreadable),
                    None => return Ok(false),
                },
                State::Trailer => {
                    let Some(end) = raw.windows(2).position(|w| w == b"\r\n") else {
                        return Ok(false);
                    };
                    self.raw_start += end + 2;
                    if end == 0 {
                        return Ok(true);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// Hands out the bytes in the given pieces, then end of stream.
    struct Pieces(Vec<Vec<u8>>);

    impl embedded_io_async::ErrorType for Pieces {
        type Error = embedded_io_async::ErrorKind;
    }

    impl Read for Pieces {
        async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
            let Some(piece) = self.0.first_mut() else {
                return Ok(0);
            };
            let n = piece.len().min(buf.len());
            buf[..n].copy_from_slice(&piece[..n]);
            piece.drain(..n);
            if piece.is_empty() {
                self.0.remove(0);
            }
            Ok(n)
        }
    }

    fn run(framing: Framing, already: &[u8], pieces: &[&[u8]]) -> Result<Vec<u8>, BodyError> {
        let mut buf = [0u8; 5120];
        buf[..already.len()].copy_from_slice(already);
        let mut reader = Pieces(pieces.iter().map(|p| p.to_vec()).collect());
        let len = embassy_futures::block_on(read(&mut reader, framing, &mut buf, already.len()))?;
        Ok(buf[..len].to_vec())
    }

    #[test]
    fn content_length() {
        assert_eq!(
            run(Framing::Length(5), b"ab", &[b"c", b"de"]),
            Ok(b"abcde".to_vec())
        );
        assert_eq!(run(Framing::Length(0), b"", &[]), Ok(Vec::new()));
        assert_eq!(
            run(Framing::Length(5), b"ab", &[b"c"]),
            Err(BodyError::Unreadable)
        );
        assert_eq!(
            run(Framing::Length(4097), b"", &[]),
            Err(BodyError::Unreadable)
        );
        let max = [b'x'; MAX_BODY_LEN];
        assert_eq!(
            run(Framing::Length(4096), b"", &[&max]).map(|b| b.len()),
            Ok(4096)
        );
    }

    #[test]
    fn chunked_across_reads() {
        let raw: &[u8] =
            b"3;name=value\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: x\r\n\r\n";
        let want = b"abc0123456789abcdef".to_vec();
        for split in 0..raw.len() {
            let (a, b) = raw.split_at(split);
            assert_eq!(run(Framing::Chunked, a, &[b]), Ok(want.clone()), "{split}");
        }
        let bytes: Vec<&[u8]> = raw.chunks(1).collect();
        assert_eq!(run(Framing::Chunked, b"", &bytes), Ok(want));
    }

    #[test]
    fn chunked_refusals() {
        let big = std::format!("1000\r\n{}\r\n1\r\nx\r\n0\r\n\r\n", "y".repeat(4096));
        assert_eq!(
            run(Framing::Chunked, big.as_bytes(), &[]),
            Err(BodyError::Unreadable)
        );
        let exact = std::format!("1000\r\n{}\r\n0\r\n\r\n", "y".repeat(4096));
        assert_eq!(
            run(Framing::Chunked, exact.as_bytes(), &[]).map(|b| b.len()),
            Ok(4096)
        );
        for bad in [
            &b"zz\r\n"[..],
            b"3\r\nabcX\r\n",
            b"3\r\nab",
            b"3\r\nabc\r\n",
        ] {
            assert_eq!(run(Framing::Chunked, bad, &[]), Err(BodyError::Unreadable));
        }
    }
}
