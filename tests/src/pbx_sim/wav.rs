//! The recording MixMonitor would write: a 16-bit, 8 kHz, mono PCM WAV (the format of
//! `../shared/pbx/recordings/a_success.rec-abc.wav`), written as the call goes on.
//!
//! Like Asterisk's `format_wav`, the file starts with a 44-byte header whose RIFF and data
//! sizes are 0, audio is appended while the call lasts, and the sizes are set when the file is
//! closed. So a reader sees a growing file with zero sizes until the call ends. The audio is a
//! quiet 440 Hz tone.

use std::f64::consts::PI;
use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Samples per second.
pub(crate) const RATE: u32 = 8_000;
/// The size of the header before the audio.
pub(crate) const HEADER_LEN: u64 = 44;

/// A recording being written.
#[derive(Debug)]
pub(crate) struct Recorder {
    file: File,
    path: PathBuf,
    written: u64,
    started: Instant,
    time_scale: f64,
    closed: bool,
}

impl Recorder {
    /// Creates `path` (replacing an older file) with a header of zero sizes. Call time runs
    /// `1 / time_scale` times faster than the wall clock.
    pub(crate) fn create(path: &Path, time_scale: f64) -> io::Result<Self> {
        let mut file = File::create(path)?;
        file.write_all(&header(None))?;
        file.flush()?;
        Ok(Self {
            file,
            path: path.to_owned(),
            written: 0,
            started: Instant::now(),
            time_scale,
            closed: false,
        })
    }

    /// The file being written.
    /// The samples of the call time since the recording started.
    pub(crate) fn due_samples(&self) -> u64 {
        let call_secs = self.started.elapsed().as_secs_f64() / self.time_scale;
        (call_secs * f64::from(RATE)) as u64
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends the audio of the call time that has passed since the recording started.
    pub(crate) fn catch_up(&mut self) -> io::Result<()> {
        self.write_until(self.due_samples())
    }

    fn write_until(&mut self, samples: u64) -> io::Result<()> {
        if samples <= self.written {
            return Ok(());
        }
        let mut chunk = Vec::with_capacity(((samples - self.written) * 2) as usize);
        for n in self.written..samples {
            chunk.extend_from_slice(&sample(n).to_le_bytes());
        }
        self.file.write_all(&chunk)?;
        self.file.flush()?;
        self.written = samples;
        Ok(())
    }

    /// Completes the file with exactly `samples` samples of audio and sets its sizes.
    pub(crate) fn finish(mut self, samples: u64) -> io::Result<PathBuf> {
        self.write_until(samples)?;
        if self.written > samples {
            self.file.set_len(HEADER_LEN + samples * 2)?;
            self.written = samples;
        }
        self.close()?;
        Ok(self.path.clone())
    }

    fn close(&mut self) -> io::Result<()> {
        let data_len = u32::try_from(self.written * 2).unwrap_or(u32::MAX - 36);
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(&header(Some(data_len)))?;
        self.file.sync_all()?;
        self.closed = true;
        Ok(())
    }
}

impl Drop for Recorder {
    /// A call cut short (the simulator stopping) still leaves a valid file.
    fn drop(&mut self) {
        if !self.closed {
            let _ = self.close();
        }
    }
}

/// One sample of the tone.
fn sample(n: u64) -> i16 {
    let t = n as f64 / f64::from(RATE);
    (3000.0 * (2.0 * PI * 440.0 * t).sin()) as i16
}

/// The canonical 44-byte PCM header for `data_len` bytes of audio; both sizes 0 while the
/// length is not known yet.
fn header(data_len: Option<u32>) -> [u8; 44] {
    let mut h = [0u8; 44];
    let riff_len = data_len.map_or(0, |n| n + 36);
    let data_len = data_len.unwrap_or(0);
    let fields: [&[u8]; 13] = [
        b"RIFF",
        &riff_len.to_le_bytes(),
        b"WAVE",
        b"fmt ",
        &16u32.to_le_bytes(),
        &1u16.to_le_bytes(),
        &1u16.to_le_bytes(),
        &RATE.to_le_bytes(),
        &(RATE * 2).to_le_bytes(),
        &2u16.to_le_bytes(),
        &16u16.to_le_bytes(),
        b"data",
        &data_len.to_le_bytes(),
    ];
    let mut at = 0;
    for field in fields {
        h[at..at + field.len()].copy_from_slice(field);
        at += field.len();
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_matches_the_recorded_file() {
        // The first 44 bytes of ../shared/pbx/recordings/a_success.rec-abc.wav (128684 bytes).
        let recorded: [u8; 44] = [
            0x52, 0x49, 0x46, 0x46, 0xa4, 0xf6, 0x01, 0x00, 0x57, 0x41, 0x56, 0x45, 0x66, 0x6d,
            0x74, 0x20, 0x10, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x40, 0x1f, 0x00, 0x00,
            0x80, 0x3e, 0x00, 0x00, 0x02, 0x00, 0x10, 0x00, 0x64, 0x61, 0x74, 0x61, 0x80, 0xf6,
            0x01, 0x00,
        ];
        assert_eq!(header(Some(128_684 - 44)), recorded);
        assert_eq!(header(Some(0))[4..8], 36u32.to_le_bytes());
    }

    #[test]
    fn file_grows_then_gets_its_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.wav");
        let mut rec = Recorder::create(&path, 0.001).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), header(None));
        std::thread::sleep(std::time::Duration::from_millis(2));
        rec.catch_up().unwrap();
        let growing = std::fs::read(&path).unwrap();
        assert!(growing.len() > 44 && growing[4..8] == [0; 4]);
        rec.finish(800).unwrap();
        let done = std::fs::read(&path).unwrap();
        assert_eq!(done.len(), 44 + 1600);
        assert_eq!(done[..44], header(Some(1600)));
    }
}
