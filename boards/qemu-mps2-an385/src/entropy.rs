//! Entropy for the QEMU board, which has no random number generator.
//!
//! It mixes the LAN9118's free-running counter (nanoseconds of QEMU's virtual clock / 40,
//! which follows host time) and the SysTick counter into a SplitMix64 state. References are
//! unique and vary from run to run, but they are **not** unguessable: a real board backs
//! [`Entropy`] with its hardware RNG.

use core::cell::Cell;

use click2dial_appliance::Entropy;
use critical_section::Mutex;

/// `FREE_RUN` register of the LAN9118.
const FREE_RUN: usize = 0x9C;

/// The board's entropy source.
pub struct Jitter {
    nic_base: usize,
    state: Mutex<Cell<u64>>,
}

impl Jitter {
    /// A source that reads the LAN9118 at `nic_base`.
    pub const fn new(nic_base: usize) -> Self {
        Self {
            nic_base,
            state: Mutex::new(Cell::new(0x853c_49e6_748f_ea9b)),
        }
    }

    fn sample(&self) -> u64 {
        // SAFETY: FREE_RUN is a read-only counter without side effects.
        let free_run =
            unsafe { core::ptr::read_volatile((self.nic_base + FREE_RUN) as *const u32) };
        let systick = cortex_m::peripheral::SYST::get_current();
        (u64::from(free_run) << 24) ^ u64::from(systick)
    }

    /// 64 bits for the network stack's seed.
    pub fn next_u64(&self) -> u64 {
        let sample = self.sample();
        critical_section::with(|cs| {
            let cell = self.state.borrow(cs);
            let state = cell.get().wrapping_add(0x9e37_79b9_7f4a_7c15) ^ sample;
            cell.set(state);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        })
    }
}

impl Entropy for Jitter {
    fn fill(&self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}
