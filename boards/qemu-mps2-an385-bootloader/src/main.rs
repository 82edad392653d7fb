//! The QEMU mps2-an385 board's bootloader (embassy-boot's generic `BootLoader`): at every
//! reset it finishes what the boot state asks — swap in an update the application verified
//! and marked (ed25519 over the image's SHA-512, checked by the application before it marks),
//! or swap the previous image back when an update booted once and never marked itself good —
//! then starts the image in ACTIVE.
//!
//! QEMU's SSRAM1 at 0 is the board's "flash"; it keeps its contents across a reset within one
//! QEMU run, but QEMU writes the files it was told to load (`-kernel`, `-device loader`) again
//! at every reset. The image is therefore loaded at FACTORY, never into ACTIVE, and copied into
//! an ACTIVE that was never programmed, as a programmer would flash it on a real board; after
//! that only the swap writes ACTIVE. The flash map: `../qemu-mps2-an385/src/storage.rs`.

#![no_std]
#![no_main]

use core::ops::Range;

use cortex_m_rt::{entry, exception};
use embassy_boot::{AlignedBuffer, BootLoader, BootLoaderConfig};
use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};

/// BOOTLOADER_STATE: embassy-boot's boot state.
const STATE: Range<u32> = 0x0002_0000..0x0002_1000;
/// ACTIVE: the image that runs.
const ACTIVE: Range<u32> = 0x0004_0000..0x0008_0000;
/// DFU: the update, one page larger than ACTIVE (the swap's spare page).
const DFU: Range<u32> = 0x0008_0000..0x000C_1000;
/// FACTORY: the image as flashed (QEMU's loader puts it here).
const FACTORY: u32 = 0x0020_0000;
/// The erase page of this flash, embassy-boot's swap unit.
const PAGE: usize = 4096;

/// A partition of SSRAM1 behaving as NOR flash (erase sets ones, a write only clears bits);
/// offsets are from the partition's start.
struct Flash(Range<u32>);

impl Flash {
    fn span(&self, offset: u32, len: usize) -> Result<Range<usize>, NorFlashErrorKind> {
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

fn read_word(addr: usize) -> u32 {
    // SAFETY: addresses inside the partitions above, SSRAM1 on mps2-an385.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

fn write_word(addr: usize, value: u32) {
    // SAFETY: as for `read_word`; the CPU writes QEMU's SSRAM1 directly.
    unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
}

impl ErrorType for Flash {
    type Error = NorFlashErrorKind;
}

impl ReadNorFlash for Flash {
    const READ_SIZE: usize = 4;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        if !offset.is_multiple_of(4) || !bytes.len().is_multiple_of(4) {
            return Err(NorFlashErrorKind::NotAligned);
        }
        let span = self.span(offset, bytes.len())?;
        for (addr, word) in span.step_by(4).zip(bytes.chunks_exact_mut(4)) {
            word.copy_from_slice(&read_word(addr).to_le_bytes());
        }
        Ok(())
    }

    fn capacity(&self) -> usize {
        (self.0.end - self.0.start) as usize
    }
}

impl NorFlash for Flash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = PAGE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        let len = to.checked_sub(from).ok_or(NorFlashErrorKind::OutOfBounds)? as usize;
        if !(from as usize).is_multiple_of(PAGE) || !len.is_multiple_of(PAGE) {
            return Err(NorFlashErrorKind::NotAligned);
        }
        for addr in self.span(from, len)?.step_by(4) {
            write_word(addr, u32::MAX);
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

/// An ACTIVE never programmed (QEMU's zeroed RAM, or erased): its initial stack pointer is
/// not in RAM.
fn active_is_blank() -> bool {
    let sp = read_word(ACTIVE.start as usize);
    !(0x2000_0000..=0x2040_0000).contains(&sp)
}

/// What the programmer does on a real board: the image as flashed into ACTIVE.
fn program_factory_image() {
    let len = (ACTIVE.end - ACTIVE.start) as usize;
    for at in (0..len).step_by(4) {
        write_word(ACTIVE.start as usize + at, read_word(FACTORY as usize + at));
    }
}

#[entry]
fn main() -> ! {
    if active_is_blank() {
        program_factory_image();
    }
    let config = BootLoaderConfig {
        active: Flash(ACTIVE),
        dfu: Flash(DFU),
        state: Flash(STATE),
    };
    let mut buf = AlignedBuffer([0u8; 1024]);
    // A state the bootloader cannot act on (an interrupted swap is not one: it resumes) leaves
    // the image where it is rather than a board that never boots.
    let _ = BootLoader::new(config).prepare_boot(&mut buf.0);
    // SAFETY: ACTIVE holds an image linked for it (../qemu-mps2-an385/memory-admin.x): its
    // vector table starts there. VTOR points the exceptions at it before the jump.
    unsafe {
        (*cortex_m::peripheral::SCB::PTR).vtor.write(ACTIVE.start);
        cortex_m::asm::bootload(ACTIVE.start as *const u32)
    }
}

/// A fault in the bootloader resets the machine: the next attempt starts from the boot state
/// again, which records how far a swap got.
#[exception]
unsafe fn HardFault(_: &cortex_m_rt::ExceptionFrame) -> ! {
    cortex_m::peripheral::SCB::sys_reset()
}

/// A panic (an embassy-boot assertion on the partitions) resets as a fault does.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    cortex_m::peripheral::SCB::sys_reset()
}
