//! The NUCLEO-H743ZI's bootloader (embassy-boot): at every reset it finishes what the boot
//! state asks — swap in an update the application verified and marked (ed25519 over the
//! image's SHA-512, checked by the application before it marks), or swap the previous image
//! back when an update booted once and never marked itself good — then jumps to ACTIVE.
//! The flash map is in `memory.x`.

#![no_std]
#![no_main]

use core::cell::RefCell;

use cortex_m_rt::{entry, exception};
use embassy_boot_stm32::{BootLoader, BootLoaderConfig, State};
use embassy_stm32::flash::{Flash, BANK1_REGION};
use embassy_sync::blocking_mutex::Mutex;

/// The largest write the swap buffers at once: one flash word of the STM32H7 (32 bytes)
/// would do; a sector's worth is not needed, the swap copies page by page through it.
const SWAP_BUFFER: usize = 32;

#[entry]
fn main() -> ! {
    let p = embassy_stm32::init(embassy_stm32::Config::default());
    let flash = Mutex::new(RefCell::new(Flash::new_blocking(p.FLASH)));
    let config = BootLoaderConfig::from_linkerfile_blocking(&flash, &flash, &flash);
    let active = config.active.offset();
    // A state the bootloader cannot read or act on (an interrupted swap is not one: it
    // resumes) leaves the application where it is rather than a board that never boots.
    let loader = BootLoader::try_prepare::<_, _, _, SWAP_BUFFER>(config)
        .unwrap_or(BootLoader { state: State::Boot });
    // SAFETY: ACTIVE holds an application linked for it (boards/nucleo-h743zi/memory.x):
    // its vector table starts there.
    unsafe { loader.load(BANK1_REGION.base() + active) }
}

/// A fault in the bootloader resets the chip: the next attempt starts from the boot state
/// again, which records how far a swap got.
#[exception]
unsafe fn HardFault(_: &cortex_m_rt::ExceptionFrame) -> ! {
    cortex_m::peripheral::SCB::sys_reset()
}

/// A panic (none is expected: every fallible step above is handled) resets as a fault does.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    cortex_m::peripheral::SCB::sys_reset()
}
