//! The device's flash (QEMU's SSRAM1, 4 MiB at 0):
//!
//! | address | size | holds |
//! |---|---|---|
//! | `0x0000_0000` | 112 KiB | the budget image (`memory-budget.x`, 96 KiB), or the bootloader (`../qemu-mps2-an385-bootloader`) that starts the `admin` image |
//! | `0x0001_C000` | 2 × 4 KiB | the operator's configuration: `click2dial_appliance::store::Store` over [`Flash`] (one record, the pages used in turn) |
//! | `0x0001_E000` | 4 KiB | the boot counter: 8-byte records `n`, `!n`, appended one per boot |
//! | `0x0001_F000` | 4 KiB | the provisioning page, written at flashing time: `C2DS` and the 32-byte device secret, then optionally `C2DA` and the SHA-256 of the admin key (at byte 36), and `C2DU` and the fleet's Ed25519 update key (at byte 72) |
//! | `0x0002_0000` | 4 KiB | BOOTLOADER_STATE: embassy-boot's boot state (magic, swap progress) |
//! | `0x0004_0000` | 256 KiB | ACTIVE: the `admin` image that runs (`memory-admin.x`) |
//! | `0x0008_0000` | 260 KiB | DFU: an update being received; one page more than ACTIVE, for the swap |
//! | `0x0020_0000` | 256 KiB | FACTORY: the image as flashed, which the bootloader copies into an empty ACTIVE (QEMU reloads its `-device loader` files at every reset, so the image cannot be loaded straight into ACTIVE: a reset would undo a swap) |
//!
//! On mps2-an385 this "flash" is QEMU's SSRAM1, which the CPU writes like RAM and which keeps
//! its contents across a reset within one QEMU run. A record is valid only when its two words
//! are complements, so both erased flash (all ones) and QEMU's zeroed memory read as empty.
// Without the admin API, the configuration store's parts are not used.
#![cfg_attr(not(feature = "admin"), allow(dead_code))]

/// The boot counter's page.
const COUNTER_PAGE: usize = 0x0001_E000;
/// Records in the page; when it is full it is erased and the count goes on from the top.
const SLOTS: usize = 4096 / 8;
/// The provisioning page.
pub const PROVISIONING: usize = 0x0001_F000;
/// The provisioning page starts with this tag.
const TAG: [u8; 4] = *b"C2DS";
/// The admin key's hash follows the secret with this tag.
const ADMIN_TAG: [u8; 4] = *b"C2DA";
/// The configuration store's pages.
pub const CONFIG_RANGE: core::ops::Range<u32> = 0x0001_C000..0x0001_E000;
/// The bootloader's state partition.
pub const STATE_RANGE: core::ops::Range<u32> = 0x0002_0000..0x0002_1000;
/// The DFU partition.
pub const DFU_RANGE: core::ops::Range<u32> = 0x0008_0000..0x000C_1000;
/// The fleet's update key follows the admin key's hash with this tag.
const UPDATE_TAG: [u8; 4] = *b"C2DU";
/// A page of the configuration store.
const PAGE: usize = 4096;

use embedded_storage_async::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};

fn read_word(addr: usize) -> u32 {
    // SAFETY: the storage pages are SSRAM1 on mps2-an385, past the image; only this module
    // touches them.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

fn write_word(addr: usize, value: u32) {
    // SAFETY: as for `read_word`; the CPU writes QEMU's SSRAM1 directly (a real chip would
    // program its flash here).
    unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
}

/// The device secret, if the device was provisioned.
pub fn device_secret() -> Option<[u8; 32]> {
    let word = |i: usize| read_word(PROVISIONING + 4 * i).to_le_bytes();
    if word(0) != TAG {
        return None;
    }
    let mut secret = [0u8; 32];
    for (i, byte) in secret.iter_mut().enumerate() {
        *byte = word(1 + i / 4).get(i % 4).copied().unwrap_or_default();
    }
    Some(secret)
}

/// Eight words of the provisioning page from word `at`.
fn words(at: usize) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, chunk) in out.chunks_exact_mut(4).enumerate() {
        chunk.copy_from_slice(&read_word(PROVISIONING + 4 * (at + i)).to_le_bytes());
    }
    out
}

/// SHA-256 of the admin key, if one was provisioned (`C2DA` after the device secret).
pub fn admin_key_hash() -> Option<[u8; 32]> {
    (read_word(PROVISIONING + 36).to_le_bytes() == ADMIN_TAG).then(|| words(10))
}

/// The fleet's Ed25519 public key for updates, if one was provisioned (`C2DU` at byte 72).
pub fn update_key() -> Option<[u8; 32]> {
    (read_word(PROVISIONING + 72).to_le_bytes() == UPDATE_TAG).then(|| words(19))
}

/// A partition of the flash (the configuration store, the boot state, DFU): QEMU's SSRAM1 behind the
/// `embedded-storage-async` NorFlash contract, as a NOR flash behaves (an erase sets a page to
/// ones, a write can only clear bits), so the store sees here what it would see on a chip.
/// Hand-written: no crate drives QEMU's SSRAM as flash.
/// Offsets are from the partition's start.
pub struct Flash(core::ops::Range<u32>);

impl Flash {
    /// The partition `range` (addresses).
    pub const fn new(range: core::ops::Range<u32>) -> Self {
        Self(range)
    }

    /// The addresses of `offset..offset + len`, if they lie in the partition.
    fn span(&self, offset: u32, len: usize) -> Result<core::ops::Range<usize>, NorFlashErrorKind> {
        let start = (self.0.start as usize)
            .checked_add(offset as usize)
            .ok_or(NorFlashErrorKind::OutOfBounds)?;
        let end = start
            .checked_add(len)
            .ok_or(NorFlashErrorKind::OutOfBounds)?;
        if end > self.0.end as usize {
            return Err(NorFlashErrorKind::OutOfBounds);
        }
        Ok(start..end)
    }
}

impl ErrorType for Flash {
    type Error = NorFlashErrorKind;
}

impl embedded_storage::nor_flash::ReadNorFlash for Flash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let span = self.span(offset, bytes.len())?;
        for (addr, byte) in span.zip(bytes.iter_mut()) {
            // SAFETY: inside the partition, SSRAM1 outside the image that only this type touches.
            *byte = unsafe { core::ptr::read_volatile(addr as *const u8) };
        }
        Ok(())
    }

    fn capacity(&self) -> usize {
        (self.0.end - self.0.start) as usize
    }
}

impl embedded_storage::nor_flash::NorFlash for Flash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = PAGE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        let len = to.checked_sub(from).ok_or(NorFlashErrorKind::OutOfBounds)? as usize;
        if !(from as usize).is_multiple_of(PAGE) || !len.is_multiple_of(PAGE) {
            return Err(NorFlashErrorKind::NotAligned);
        }
        // A plain loop: `step_by`'s iterator is larger in flash.
        let span = self.span(from, len)?;
        let mut addr = span.start;
        while addr < span.end {
            write_word(addr, u32::MAX);
            addr += 4;
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        if !offset.is_multiple_of(4) || !bytes.len().is_multiple_of(4) {
            return Err(NorFlashErrorKind::NotAligned);
        }
        let span = self.span(offset, bytes.len())?;
        for (addr, word) in span.step_by(4).zip(bytes.chunks_exact(4)) {
            let mut new = [0u8; 4];
            new.copy_from_slice(word);
            write_word(addr, read_word(addr) & u32::from_le_bytes(new));
        }
        Ok(())
    }
}

/// The configuration store's async view of the same flash.
impl ReadNorFlash for Flash {
    const READ_SIZE: usize = 1;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        embedded_storage::nor_flash::ReadNorFlash::read(self, offset, bytes)
    }

    fn capacity(&self) -> usize {
        embedded_storage::nor_flash::ReadNorFlash::capacity(self)
    }
}

impl NorFlash for Flash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = PAGE;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        embedded_storage::nor_flash::NorFlash::erase(self, from, to)
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        embedded_storage::nor_flash::NorFlash::write(self, offset, bytes)
    }
}

/// Counts this boot: returns a number no earlier boot of the device returned, and records it.
pub fn count_boot() -> u32 {
    let record = |slot: usize| {
        let at = COUNTER_PAGE + 8 * slot;
        let (n, check) = (read_word(at), read_word(at + 4));
        (n == !check).then_some(n)
    };
    let mut last = None;
    let mut slot = 0;
    while slot < SLOTS {
        match record(slot) {
            Some(n) => last = Some(n),
            None => break,
        }
        slot += 1;
    }
    let boot = last.map_or(0, |n| n.wrapping_add(1));
    if slot == SLOTS {
        for word in 0..SLOTS * 2 {
            write_word(COUNTER_PAGE + 4 * word, u32::MAX);
        }
        slot = 0;
    }
    let at = COUNTER_PAGE + 8 * slot;
    write_word(at, boot);
    write_word(at + 4, !boot);
    boot
}
