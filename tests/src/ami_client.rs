//! A minimal AMI client for tests: sends raw bytes and reads the frames the server sends,
//! keeping every byte received.

use std::io;
use std::time::Duration;

use click2dial_core::ami::{Decoder, Frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs};

/// A connection to an AMI server.
#[derive(Debug)]
pub struct AmiClient {
    stream: TcpStream,
    decoder: Decoder,
    buf: Vec<u8>,
    /// Bytes of `buf` already returned as frames.
    consumed: usize,
    closed: bool,
}

impl AmiClient {
    /// Connects and reads the banner.
    ///
    /// # Errors
    /// When the connection fails or the peer does not send an AMI banner.
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<Self> {
        let mut client = Self {
            stream: TcpStream::connect(addr).await?,
            decoder: Decoder::new(),
            buf: Vec::new(),
            consumed: 0,
            closed: false,
        };
        while client.decoder.expects_banner() {
            if client.decode_next()?.is_none() {
                if client.closed {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "no AMI banner"));
                }
                client.read_more().await?;
            }
        }
        Ok(client)
    }

    /// Sends bytes as they are.
    ///
    /// # Errors
    /// When the write fails.
    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Sends an action made of `headers`.
    ///
    /// # Errors
    /// When the write fails.
    pub async fn action(&mut self, headers: &[(&str, &str)]) -> io::Result<()> {
        let mut out = String::new();
        for (k, v) in headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        self.send(out.as_bytes()).await
    }

    /// Decodes the next complete frame in the buffer: its range, and whether it is a message.
    fn decode_next(&mut self) -> io::Result<Option<(usize, usize, bool)>> {
        let start = self.consumed;
        match self.decoder.decode(&self.buf[start..]) {
            Ok(Some(decoded)) => {
                let is_message = matches!(decoded.frame, Frame::Message(_));
                self.consumed += decoded.len;
                Ok(Some((start, start + decoded.len, is_message)))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
        }
    }

    async fn read_more(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            self.closed = true;
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// The next frame's bytes (closing empty line included), `None` once the server closed
    /// the connection.
    ///
    /// # Errors
    /// On a read error or bytes that are not AMI.
    pub async fn next_frame(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            match self.decode_next()? {
                Some((start, end, true)) => return Ok(Some(self.buf[start..end].to_vec())),
                Some((_, _, false)) => continue,
                None if self.closed => return Ok(None),
                None => self.read_more().await?,
            }
        }
    }

    /// Like [`AmiClient::next_frame`], failing after `limit`.
    ///
    /// # Errors
    /// On timeout, a read error or bytes that are not AMI.
    pub async fn next_frame_within(&mut self, limit: Duration) -> io::Result<Option<Vec<u8>>> {
        tokio::time::timeout(limit, self.next_frame())
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no frame in time"))?
    }

    /// Every remaining frame until the server closes the connection.
    ///
    /// # Errors
    /// On a read error or bytes that are not AMI.
    pub async fn read_to_close(&mut self) -> io::Result<Vec<Vec<u8>>> {
        let mut frames = Vec::new();
        while let Some(frame) = self.next_frame().await? {
            frames.push(frame);
        }
        Ok(frames)
    }

    /// Every byte received so far, banner included.
    pub fn received(&self) -> &[u8] {
        &self.buf
    }
}
