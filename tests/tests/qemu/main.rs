//! Hardware-in-the-loop: the appliance image booted in QEMU (mps2-an385), built once for the
//! whole binary (`qemu_support::firmware`): the appliance's behaviour (`appliance`) and its
//! stack high-water mark under load (`footprint`).

#[path = "../support/mod.rs"]
mod support;

mod qemu_support;

mod appliance;
mod footprint;
