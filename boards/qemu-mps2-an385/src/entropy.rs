//! References on a board without a random number generator: the ChaCha20 keystream under the
//! device secret provisioned at flashing time ([`crate::storage`]), with a nonce made of the
//! boot counter kept in flash and the boot's timing. The counter keeps every boot of the device
//! apart; the timing (the LAN9118's free-running counter, nanoseconds of QEMU's virtual clock
//! / 40, which follows host time, and SysTick) also keeps apart two QEMU runs started from the
//! same flash contents, which a real device never is. Neither needs to be secret: without the
//! device secret the references cannot be predicted.

use click2dial_appliance::keyed::KeyedEntropy;

use crate::storage;

/// `FREE_RUN` register of the LAN9118.
const FREE_RUN: usize = 0x9C;

/// The boot's keystream; `None` when the device was never provisioned.
pub fn init(nic_base: usize) -> Option<(KeyedEntropy, u32)> {
    let secret = storage::device_secret()?;
    let boot = storage::count_boot();
    // SAFETY: FREE_RUN is a read-only counter without side effects.
    let free_run = unsafe { core::ptr::read_volatile((nic_base + FREE_RUN) as *const u32) };
    let timing = free_run ^ cortex_m::peripheral::SYST::get_current().rotate_left(16);
    let [b0, b1, b2, b3] = boot.to_le_bytes();
    let [t0, t1, t2, t3] = timing.to_le_bytes();
    let nonce = [b0, b1, b2, b3, t0, t1, t2, t3, b'C', b'2', b'D', 0];
    Some((KeyedEntropy::new(secret, nonce), boot))
}
