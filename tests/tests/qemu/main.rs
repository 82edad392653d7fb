//! Hardware-in-the-loop: the appliance image booted in QEMU (mps2-an385), built once for the
//! whole binary (`qemu_support::firmware`): the appliance's behaviour (`appliance`), its
//! footprint against the budget (`footprint`), its references without a hardware RNG
//! (`references`), and the admin API with the configuration kept in flash (`admin`; the
//! default image carries it, feature `admin`).

#[path = "../support/mod.rs"]
mod support;

mod qemu_support;

mod admin;
mod appliance;
mod footprint;
mod references;
