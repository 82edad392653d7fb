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
