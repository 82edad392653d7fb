//! click2dial-appliance: the create-call path as firmware, with no heap and no OS.
//!
//! Only I/O lives here: parsing, validation, the dialling policy, the AMI codec and the JSON
//! answers are `click2dial-core`'s, so the appliance answers byte for byte as the host does.
//! The library is generic over an `embassy-net` [`Stack`](embassy_net::Stack) and brings no
//! executor: a board spawns [`http::serve`] a few times (one connection per listener, so
//! several listeners keep connections that arrive between accepts from being refused) and
//! [`pbx::Pbx::run`] once, with buffers it keeps in statics.
#![no_std]

#[cfg(test)]
extern crate std;

pub(crate) mod fmt;

pub mod admin;
pub mod api;
pub mod config;
pub mod http;
pub mod idempotency;
pub mod keyed;
pub mod pbx;
pub mod settings;
pub mod store;
pub mod update;
pub mod watchdog;

pub use api::App;
pub use config::Config;

/// Random bytes for references and the network stack's seed.
///
/// A board backs it with its hardware RNG. [`App`] asks for 32 bytes per accepted call.
pub trait Entropy: Sync {
    /// Fills `buf` with random bytes.
    fn fill(&self, buf: &mut [u8]);
}
