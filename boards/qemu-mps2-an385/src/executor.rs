//! A thread-mode executor that sleeps with `WFI`.
//!
//! embassy's Cortex-M executor sleeps with `WFE`, which QEMU does not halt on (it only yields
//! to its main loop), so an idle image would keep a host core busy. `WFI` halts QEMU's CPU
//! until an interrupt; with interrupts masked around the check, a wake-up between "nothing
//! to do" and `WFI` still ends the wait.

use core::sync::atomic::{AtomicBool, Ordering};

use embassy_executor::{raw, Spawner};
use static_cell::StaticCell;

static EXECUTOR: StaticCell<raw::Executor> = StaticCell::new();
/// Set by the pender: a task was woken.
static WORK: AtomicBool = AtomicBool::new(true);

#[unsafe(export_name = "__pender")]
fn pender(_context: *mut ()) {
    WORK.store(true, Ordering::Release);
}

/// Creates the executor, lets `init` spawn the tasks, and runs them forever.
pub fn run(init: impl FnOnce(Spawner)) -> ! {
    let executor: &'static raw::Executor = EXECUTOR.init(raw::Executor::new(core::ptr::null_mut()));
    init(executor.spawner());
    loop {
        // SAFETY: `poll` is called from this loop only, never re-entrantly.
        unsafe { executor.poll() };
        cortex_m::interrupt::free(|_| {
            if !WORK.swap(false, Ordering::AcqRel) {
                cortex_m::asm::wfi();
            }
        });
    }
}
