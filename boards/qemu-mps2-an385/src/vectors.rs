//! The interrupt vectors of mps2-an385: 32 external interrupts (the CMSDK peripherals and the
//! LAN9118 on 13), every one sent to `DefaultHandler`, which dispatches on the number.
//!
//! Without a device crate cortex-m-rt would emit the architecture's 240 vectors, 832 bytes of
//! flash more; its `device` feature takes this table instead (`device.x` is empty because no
//! handler is named).

/// External interrupts of the AN385 (Cortex-M3 IoT kit), per its application note.
const IRQS: usize = 32;

unsafe extern "C" {
    fn DefaultHandler();
}

#[unsafe(link_section = ".vector_table.interrupts")]
#[unsafe(no_mangle)]
static __INTERRUPTS: [unsafe extern "C" fn(); IRQS] = [DefaultHandler; IRQS];
