//! The device's own state in flash, past the image (`memory.x` ends the image at 96 KiB):
//!
//! | address | size | holds |
//! |---|---|---|
//! | `0x0001_E000` | 4 KiB | the boot counter: 8-byte records `n`, `!n`, appended one per boot |
//! | `0x0001_F000` | 4 KiB | the provisioning page, written at flashing time: `C2DS` and the 32-byte device secret |
//!
//! On mps2-an385 this "flash" is QEMU's SSRAM1, which the CPU writes like RAM and which keeps
//! its contents across a reset within one QEMU run. A record is valid only when its two words
//! are complements, so both erased flash (all ones) and QEMU's zeroed memory read as empty.

/// The boot counter's page.
const COUNTER_PAGE: usize = 0x0001_E000;
/// Records in the page; when it is full it is erased and the count goes on from the top.
const SLOTS: usize = 4096 / 8;
/// The provisioning page.
pub const PROVISIONING: usize = 0x0001_F000;
/// The provisioning page starts with this tag.
const TAG: [u8; 4] = *b"C2DS";

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
