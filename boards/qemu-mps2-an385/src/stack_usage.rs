//! Stack high-water mark: cortex-m-rt paints the stack (`paint-stack`) before `main`; the
//! lowest word no longer holding the paint tells how deep the stack has ever been.

use cortex_m_rt::STACK_PAINT_VALUE;

extern "C" {
    static _stack_start: u32;
    static _stack_end: u32;
}

fn bounds() -> (usize, usize) {
    // Only the addresses of the linker symbols are taken, never their values.
    (
        core::ptr::addr_of!(_stack_end) as usize,
        core::ptr::addr_of!(_stack_start) as usize,
    )
}

/// Bytes reserved for the stack (RAM not taken by statics).
pub fn size() -> usize {
    let (end, start) = bounds();
    start - end
}

/// The most stack ever used, in bytes.
pub fn high_water() -> usize {
    let (end, start) = bounds();
    let mut addr = end;
    while addr < start {
        // SAFETY: every word between `_stack_end` and `_stack_start` is RAM reserved for the
        // stack; reading it has no side effect.
        if unsafe { core::ptr::read_volatile(addr as *const u32) } != STACK_PAINT_VALUE {
            break;
        }
        addr += 4;
    }
    start - addr
}
