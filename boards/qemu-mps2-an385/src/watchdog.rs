//! The CMSDK APB watchdog of mps2-an385 (QEMU: `cmsdk-apb-watchdog` at 0x4000_8000, clocked by
//! the 25 MHz system clock, its interrupt on NMI). Its counter counts down from LOAD: the first
//! time it reaches zero it raises the interrupt, the second time (the interrupt still not
//! cleared) it resets the system. Clearing the interrupt reloads the counter: that is the pet.
//! Every register write is behind the lock register's key, so a stray write cannot stop it.

use core::ptr::write_volatile;

const BASE: usize = 0x4000_8000;
const LOAD: usize = 0x000;
const CONTROL: usize = 0x008;
const INTCLR: usize = 0x00C;
const LOCK: usize = 0xC00;
/// The key that unlocks the registers; any other value written to LOCK locks them.
const UNLOCK: u32 = 0x1ACC_E551;
const INTEN: u32 = 1 << 0;
const RESEN: u32 = 1 << 1;
/// WDOGCLK on mps2-an385.
const CLOCK_HZ: u32 = 25_000_000;

/// The running watchdog; only [`Watchdog::pet`] keeps the system from a reset.
pub struct Watchdog(());

impl Watchdog {
    /// Starts the watchdog: the system resets `2 × period_ms` after the last pet (the first
    /// `period_ms` raise the NMI, which the default handler ignores). `period_ms` at most
    /// 171,000: the 32-bit counter at 25 MHz (a longer one is cut to that).
    pub fn start(period_ms: u32) -> Self {
        let ticks = (CLOCK_HZ / 1000).saturating_mul(period_ms);
        write(LOCK, UNLOCK);
        write(LOAD, ticks);
        write(CONTROL, INTEN | RESEN);
        write(LOCK, 0);
        Self(())
    }

    /// Reloads the counter.
    pub fn pet(&mut self) {
        write(LOCK, UNLOCK);
        write(INTCLR, 1);
        write(LOCK, 0);
    }
}

fn write(offset: usize, value: u32) {
    // SAFETY: BASE is the watchdog of mps2-an385, a word-aligned register block owned by this
    // driver alone; these are its documented registers.
    unsafe { write_volatile((BASE + offset) as *mut u32, value) }
}
