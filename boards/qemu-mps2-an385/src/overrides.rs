//! Per-boot overrides of the build-time configuration, for QEMU.
//!
//! The tests start one image against PBX simulators on ports chosen at run time. QEMU writes
//! words into RAM before the CPU starts (`-device loader,addr=…,data=…,data-len=4`); this
//! block lies outside the RAM the image uses (`memory-budget.x` stops below it), so nothing
//! clears it. Without the magic word the build-time values stand.
//!
//! | address | word |
//! |---|---|
//! | `0x2001_0000` | [`MAGIC`] |
//! | `0x2001_0004` | PBX IPv4 address, `a.b.c.d` as `0xaabbccdd` (0: keep) |
//! | `0x2001_0008` | PBX port (0: keep) |
//! | `0x2001_000C` | longest reconnection backoff in seconds (0: keep) |

use click2dial_appliance::Config;

/// Where the block starts: just past the image's RAM.
pub const BLOCK: usize = 0x2001_0000;
/// Marks a block written on purpose ("C2D" + version 1).
pub const MAGIC: u32 = 0xC2D0_0001;

fn word(index: usize) -> u32 {
    // SAFETY: QEMU's mps2-an385 has SSRAM at this address; the image never writes there.
    unsafe { core::ptr::read_volatile((BLOCK + 4 * index) as *const u32) }
}

/// `config` with the values QEMU's loader placed in the block, if any.
pub fn apply(mut config: Config) -> Config {
    if word(0) != MAGIC {
        return config;
    }
    let address = word(1);
    if address != 0 {
        config.ami.address = address.to_be_bytes();
    }
    if let Ok(port @ 1..) = u16::try_from(word(2)) {
        config.ami.port = port;
    }
    let backoff = word(3);
    if backoff != 0 {
        config.ami.max_backoff_secs = backoff;
    }
    defmt::info!("configuration overridden at boot");
    config
}
