//! The recordings directory: a recording opened so that a swapped symbolic link cannot
//! escape it, and whether its writer has finished it; whether the directory can be read.
//! Read by the recordings route, by `/readyz`, and by the PBX driver, which looks at the
//! file of a call that ended unseen.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

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

/// Whether `<recording_ref>.wav` is there and its writer finished it (a WAV's sizes are set;
/// another format is taken as it is): a recording that may be announced.
pub fn is_whole(dir: &Path, recording_ref: &str) -> bool {
    open(dir, recording_ref).is_some_and(|(file, meta)| header_complete(&file, meta.len()))
}

/// How many looks at the recordings directory run at once ([`is_whole_within`],
/// [`unreadable_within`]): each holds a blocking thread until the file system answers, and a
/// hung network mount must not take them all.
pub const LOOKS_AT_ONCE: usize = 8;

/// `look`, a call into the recordings directory, off the async threads and answered within
/// `within` (waiting for one of [`LOOKS_AT_ONCE`] included); `None` past it.
async fn look_within<T: Send + 'static>(
    within: Duration,
    look: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    static LOOKS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(LOOKS_AT_ONCE);
    let run = async {
        let permit = LOOKS.acquire().await.ok()?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            look()
        })
        .await
        .ok()
    };
    tokio::time::timeout(within, run).await.ok().flatten()
}

/// [`is_whole`] off the async threads, within `within` (waiting for one of
/// [`LOOKS_AT_ONCE`] included); past it, no.
pub async fn is_whole_within(dir: PathBuf, recording_ref: String, within: Duration) -> bool {
    look_within(within, move || is_whole(&dir, &recording_ref)).await == Some(true)
}

/// Why `dir` cannot be opened, if it cannot, looked at as [`is_whole_within`] looks.
pub async fn unreadable_within(dir: PathBuf, within: Duration) -> Option<String> {
    match look_within(within, move || std::fs::read_dir(dir).map(drop)).await {
        Some(Ok(())) => None,
        Some(Err(e)) => Some(e.to_string()),
        None => Some(format!("it did not open within {} s", within.as_secs())),
    }
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
        for (name, whole) in [("done", true), ("sizes-unset", false), ("absent", false)] {
            assert_eq!(is_whole(dir.path(), name), whole, "{name}");
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        for (name, whole) in [("done", true), ("sizes-unset", false), ("absent", false)] {
            let looked = runtime.block_on(is_whole_within(
                dir.path().to_path_buf(),
                name.to_string(),
                Duration::from_secs(1),
            ));
            assert_eq!(looked, whole, "{name}, off the async threads");
        }
        let unreadable =
            |dir: PathBuf| runtime.block_on(unreadable_within(dir, Duration::from_secs(1)));
        assert_eq!(unreadable(dir.path().to_path_buf()), None);
        let missing = unreadable(dir.path().join("missing")).expect("a missing directory");
        assert!(missing.contains("No such file"), "{missing}");
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
