//! Signed firmware updates over the admin API (`PUT /admin/update`, `GET /admin/update`).
//!
//! The body is the image followed by its 64-byte Ed25519 signature (what
//! `boards/sign-update.sh sign` prints: a signature of the image's SHA-512), sent with a
//! `Content-Length`. The image is streamed into the board's DFU partition one chunk at a time
//! (no image-sized buffer), then embassy-boot's `FirmwareUpdater::verify_and_mark_updated`
//! checks the signature against the fleet's public key over what the partition holds and,
//! only if it verifies, marks the update for the bootloader, which swaps it in at the next
//! reset. Anything refused leaves the boot state as it was: the running image stays.
//!
//! The flash is driven through embassy-boot's blocking API: the signature check then runs on
//! the stack once, rather than as part of every HTTP listener's future (3 × about 1 KB of
//! static RAM for its state), and the boards' flash drivers are blocking underneath anyway.
//!
//! The swapped-in image must mark itself booted ([`Update::booted`], called by the board once
//! its network is up); one that does not is swapped back at the following reset.

use embassy_boot::{
    AlignedBuffer, BlockingFirmwareState, BlockingFirmwareUpdater, FirmwareUpdaterConfig,
    FirmwareUpdaterError, State,
};
use embedded_io_async::Read;
use embedded_storage::nor_flash::NorFlash;

use crate::fmt::{info, warn};

/// The signature's length, after the image in the body.
pub const SIGNATURE_LEN: usize = 64;

/// Why an update was refused; the boot state is unchanged in every case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateError {
    /// No fleet key was provisioned: the device takes no update.
    NoKey,
    /// The image does not fit the DFU partition: `413`.
    TooLarge,
    /// No `Content-Length`, or a body too short to hold an image and its signature.
    Framing,
    /// An update is already marked and waits for the reset that swaps it in, or the running
    /// image is itself on trial (not marked booted yet).
    Pending,
    /// The body ended before its `Content-Length`.
    Truncated,
    /// The signature does not verify against the fleet key (a changed, cut or foreign image).
    Signature,
    /// The flash failed.
    Flash,
    /// The connection failed.
    Io,
}

impl From<FirmwareUpdaterError> for UpdateError {
    fn from(e: FirmwareUpdaterError) -> Self {
        match e {
            FirmwareUpdaterError::Flash(_) => Self::Flash,
            FirmwareUpdaterError::Signature(_) => Self::Signature,
            FirmwareUpdaterError::BadState => Self::Pending,
        }
    }
}

/// The name of a boot state, as `GET /admin/update` shows it.
pub fn state_name(state: &State) -> &'static str {
    match state {
        State::Boot => "boot",
        State::Swap => "swap",
        State::Revert => "revert",
        State::DfuDetach => "dfu_detach",
    }
}

/// The DFU and boot-state partitions, the fleet key and what the running image is.
pub struct Update<D, S> {
    dfu: D,
    state: S,
    key: Option<[u8; 32]>,
    version: &'static str,
    at_boot: Option<State>,
    aligned: AlignedBuffer<WORD>,
}

/// The largest flash write unit the boards have (the STM32H7's 32-byte flash word).
const WORD: usize = 32;

impl<D: NorFlash, S: NorFlash> Update<D, S> {
    /// `dfu` and `state`: the bootloader's partitions (offsets from each one's start).
    /// `key`: the fleet's Ed25519 public key (`None`: updates are refused). `version`: the
    /// running image's version, as the status shows it.
    pub const fn new(dfu: D, state: S, key: Option<[u8; 32]>, version: &'static str) -> Self {
        assert!(S::WRITE_SIZE <= WORD && S::READ_SIZE <= WORD && D::WRITE_SIZE <= WORD);
        Self {
            dfu,
            state,
            key,
            version,
            at_boot: None,
            aligned: AlignedBuffer([0; WORD]),
        }
    }

    /// The largest image the DFU partition takes. embassy-boot's DFU partition is one page
    /// larger than ACTIVE (the swap's spare page), and the image has to fit ACTIVE.
    pub fn capacity(&self) -> usize {
        self.dfu.capacity().saturating_sub(D::ERASE_SIZE)
    }

    fn updater(&mut self) -> BlockingFirmwareUpdater<'_, &mut D, &mut S> {
        let n = S::WRITE_SIZE.max(S::READ_SIZE);
        let config = FirmwareUpdaterConfig {
            dfu: &mut self.dfu,
            state: &mut self.state,
        };
        BlockingFirmwareUpdater::new(config, self.aligned.0.get_mut(..n).unwrap_or_default())
    }

    /// The boot state now.
    pub fn state(&mut self) -> Result<State, UpdateError> {
        Ok(self.updater().get_state()?)
    }

    /// At start-up, once the image works (the board decides when: its network is up): notes
    /// the boot state the bootloader left and, if `mark`, marks the image booted so the
    /// bootloader keeps it. `mark` is false only in the test image that shows a rollback.
    pub fn booted(&mut self, mark: bool) {
        let n = S::WRITE_SIZE.max(S::READ_SIZE);
        let aligned = self.aligned.0.get_mut(..n).unwrap_or_default();
        let mut state = BlockingFirmwareState::new(&mut self.state, aligned);
        let at_boot = state.get_state().ok();
        match at_boot {
            Some(State::Swap) => info!("running a swapped-in update"),
            Some(State::Revert) => {
                warn!("the last update never marked itself booted: rolled back")
            }
            _ => {}
        }
        if mark {
            if state.mark_booted().is_err() {
                warn!("boot state not marked: the bootloader rolls back at the next reset");
            }
        } else {
            warn!("not marking this image booted: the bootloader rolls it back at the next reset");
        }
        self.at_boot = at_boot;
    }

    /// Whether an update of `body_len` bytes (image and signature) can be taken now: a key,
    /// the length, the state. Checked before any body byte is read.
    pub fn check(&mut self, body_len: u64) -> Result<(), UpdateError> {
        if self.key.is_none() {
            return Err(UpdateError::NoKey);
        }
        let image = body_len
            .checked_sub(SIGNATURE_LEN as u64)
            .filter(|&n| n > 0)
            .ok_or(UpdateError::Framing)?;
        if image > self.capacity() as u64 {
            return Err(UpdateError::TooLarge);
        }
        match self.state()? {
            State::Swap => Err(UpdateError::Pending),
            _ => Ok(()),
        }
    }

    /// Takes an update of `body_len` bytes (checked by [`Update::check`]) whose first bytes
    /// are `early` and the rest on `body`; `buf` is the work buffer (at least 1 KiB + 32).
    /// On success the update is marked for the swap at the next reset.
    pub async fn receive<R: Read>(
        &mut self,
        body: &mut R,
        body_len: u64,
        early: &[u8],
        buf: &mut [u8],
    ) -> Result<(), UpdateError> {
        self.check(body_len)?;
        let key = self.key.ok_or(UpdateError::NoKey)?;
        let image_len = usize::try_from(body_len)
            .map_err(|_| UpdateError::TooLarge)?
            .saturating_sub(SIGNATURE_LEN);
        let mut body = Body {
            early,
            reader: body,
            left: image_len + SIGNATURE_LEN,
        };
        // Whole flash words of the DFU partition per write.
        let chunk = buf.len().saturating_sub(WORD) / WORD * WORD;
        let mut updater = self.updater();
        let mut offset = 0;
        while offset < image_len {
            let n = chunk.min(image_len - offset);
            body.fill(buf.get_mut(..n).unwrap_or_default()).await?;
            let padded = n.next_multiple_of(D::WRITE_SIZE);
            if let Some(pad) = buf.get_mut(n..padded) {
                pad.fill(0xFF);
            }
            updater.write_firmware(offset, buf.get(..padded).unwrap_or_default())?;
            offset += n;
        }
        let mut signature = [0u8; SIGNATURE_LEN];
        body.fill(&mut signature).await?;
        let len = u32::try_from(image_len).map_err(|_| UpdateError::TooLarge)?;
        match updater.verify_and_mark_updated(&key, &signature, len) {
            Ok(()) => {
                info!(
                    "update of {=usize} bytes verified and marked; swapped in at the next reset",
                    image_len
                );
                Ok(())
            }
            Err(e) => {
                warn!("update refused: its signature does not verify");
                Err(e.into())
            }
        }
    }

    /// `GET /admin/update`'s JSON into `out`; its length, or `None` when `out` is too small.
    pub fn write_status(&mut self, out: &mut [u8]) -> Option<usize> {
        let state = self.state().ok();
        let mut w = crate::admin::Writer { out, len: 0 };
        w.put("{\"version\":\"");
        w.put(self.version);
        w.put("\",\"state\":\"");
        w.put(state.as_ref().map_or("unreadable", state_name));
        w.put("\",\"at_boot\":\"");
        w.put(self.at_boot.as_ref().map_or("unknown", state_name));
        w.put("\",\"key\":");
        w.put(if self.key.is_some() { "true" } else { "false" });
        w.put(",\"capacity\":");
        w.number(u32::try_from(self.capacity()).unwrap_or(u32::MAX));
        w.put(",\"uptime_secs\":");
        w.number(u32::try_from(embassy_time::Instant::now().as_secs()).unwrap_or(u32::MAX));
        w.put("}");
        (w.len <= w.out.len()).then_some(w.len)
    }
}

/// The body: the bytes read with the head first, then the connection, `left` bytes in all.
struct Body<'a, R> {
    early: &'a [u8],
    reader: &'a mut R,
    left: usize,
}

impl<R: Read> Body<'_, R> {
    /// Fills `dest` (at most `left` bytes).
    async fn fill(&mut self, dest: &mut [u8]) -> Result<(), UpdateError> {
        let mut at = 0;
        while let Some(free) = dest.get_mut(at..).filter(|f| !f.is_empty()) {
            let want = free.len().min(self.left);
            if want == 0 {
                return Err(UpdateError::Truncated);
            }
            let free = free.get_mut(..want).unwrap_or_default();
            let n = if self.early.is_empty() {
                match self.reader.read(free).await {
                    Ok(0) => return Err(UpdateError::Truncated),
                    Ok(n) => n,
                    Err(_) => return Err(UpdateError::Io),
                }
            } else {
                let n = want.min(self.early.len());
                let (now, later) = self.early.split_at(n);
                free.get_mut(..n).unwrap_or_default().copy_from_slice(now);
                self.early = later;
                n
            };
            self.left -= n;
            at += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embassy_futures::block_on;
    use embedded_storage::nor_flash::{ErrorType, NorFlashErrorKind, ReadNorFlash};
    use sha2::{Digest, Sha512};
    use std::vec::Vec;

    /// NOR flash in RAM: 4-byte writes that only clear bits, 4 KiB erases.
    struct RamFlash(Vec<u8>);

    impl ErrorType for RamFlash {
        type Error = NorFlashErrorKind;
    }

    impl ReadNorFlash for RamFlash {
        const READ_SIZE: usize = 1;
        fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
            let at = offset as usize;
            let from = self
                .0
                .get(at..at + bytes.len())
                .ok_or(NorFlashErrorKind::OutOfBounds)?;
            bytes.copy_from_slice(from);
            Ok(())
        }
        fn capacity(&self) -> usize {
            self.0.len()
        }
    }

    impl NorFlash for RamFlash {
        const WRITE_SIZE: usize = 4;
        const ERASE_SIZE: usize = 4096;
        fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
            self.0
                .get_mut(from as usize..to as usize)
                .ok_or(NorFlashErrorKind::OutOfBounds)?
                .fill(0xFF);
            Ok(())
        }
        fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
            let at = offset as usize;
            let to = self
                .0
                .get_mut(at..at + bytes.len())
                .ok_or(NorFlashErrorKind::OutOfBounds)?;
            for (old, new) in to.iter_mut().zip(bytes) {
                *old &= new;
            }
            Ok(())
        }
    }

    /// A connection that hands out `data` `step` bytes at a time, then ends.
    struct Pieces<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl embedded_io_async::ErrorType for Pieces<'_> {
        type Error = core::convert::Infallible;
    }

    impl Read for Pieces<'_> {
        async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
            let n = buf.len().min(self.step).min(self.data.len());
            let (now, later) = self.data.split_at(n);
            buf[..n].copy_from_slice(now);
            self.data = later;
            Ok(n)
        }
    }

    const SEED: [u8; 32] = [7; 32];

    fn update() -> Update<RamFlash, RamFlash> {
        let key = salty::Keypair::from(&SEED).public.to_bytes();
        // ACTIVE of 8 pages: DFU one page more; the state partition as QEMU's.
        Update::new(
            RamFlash(std::vec![0; 9 * 4096]),
            RamFlash(std::vec![0; 4096]),
            Some(key),
            "test",
        )
    }

    /// An image and its signature, as sign-update.sh makes them.
    fn signed(len: usize) -> (Vec<u8>, Vec<u8>) {
        let image: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let digest = Sha512::digest(&image);
        let signature = salty::Keypair::from(&SEED).sign(&digest).to_bytes();
        (image, signature.to_vec())
    }

    fn receive(
        update: &mut Update<RamFlash, RamFlash>,
        body: &[u8],
        declared: usize,
        early: usize,
        step: usize,
    ) -> Result<(), UpdateError> {
        let mut buf = [0u8; 1024 + WORD];
        let (early, rest) = body.split_at(early.min(body.len()));
        let mut conn = Pieces { data: rest, step };
        block_on(update.receive(&mut conn, declared as u64, early, &mut buf))
    }

    #[test]
    fn a_signed_image_in_odd_pieces_is_written_whole_and_marked() {
        let (image, signature) = signed(10_001);
        let body = [image.clone(), signature].concat();
        let mut update = update();
        assert_eq!(update.state(), Ok(State::Boot));
        assert_eq!(receive(&mut update, &body, body.len(), 300, 97), Ok(()));
        assert_eq!(update.state(), Ok(State::Swap));
        assert_eq!(&update.dfu.0[..image.len()], &image[..]);
        // Marked: no second update until the reset.
        assert_eq!(
            receive(&mut update, &body, body.len(), 0, 4096),
            Err(UpdateError::Pending)
        );
    }

    #[test]
    fn a_refused_image_leaves_the_state_unmarked() {
        let (image, signature) = signed(10_001);
        let mut update = update();
        let mut changed = image.clone();
        changed[5000] ^= 1;
        let body = [changed, signature.clone()].concat();
        assert_eq!(
            receive(&mut update, &body, body.len(), 0, 512),
            Err(UpdateError::Signature)
        );
        // Cut short: the connection ends before the declared length.
        let body = [image.clone(), signature].concat();
        assert_eq!(
            receive(&mut update, &body[..4000], body.len(), 100, 512),
            Err(UpdateError::Truncated)
        );
        assert_eq!(update.state(), Ok(State::Boot));
    }

    #[test]
    fn the_length_the_key_and_the_state_are_checked_first() {
        let mut update = update();
        assert_eq!(update.capacity(), 8 * 4096);
        assert_eq!(update.check(64), Err(UpdateError::Framing));
        assert_eq!(update.check(65), Ok(()));
        assert_eq!(update.check(8 * 4096 + 64), Ok(()));
        assert_eq!(update.check(8 * 4096 + 65), Err(UpdateError::TooLarge));
        let mut keyless = Update::new(
            RamFlash(std::vec![0; 9 * 4096]),
            RamFlash(std::vec![0; 4096]),
            None,
            "test",
        );
        assert_eq!(keyless.check(1000), Err(UpdateError::NoKey));
        let mut out = [0u8; 256];
        let n = update.write_status(&mut out).unwrap();
        let status = core::str::from_utf8(&out[..n]).unwrap();
        assert!(
            status.starts_with(
                r#"{"version":"test","state":"boot","at_boot":"unknown","key":true,"capacity":32768,"uptime_secs":"#
            ),
            "{status}"
        );
    }
}
