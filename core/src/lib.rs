//! The allocation-free core of click2dial, shared by the Linux host and the appliance firmware.
//!
//! It turns an untrusted request body into validated, normalised call parameters and writes
//! the JSON answers, without allocating and without panicking on any input. It contains no
//! networking code and reads no clock and no randomness: callers pass time and entropy in.
//!
//! The path of a create-call request:
//!
//! 1. [`request::parse`] reads the body into a [`CallRequest`] that borrows every value from
//!    the body;
//! 2. [`Validators::validate`] walks each value through a DFA compiled at build time, which
//!    both validates and classifies it, and applies the [`DialPolicy`];
//! 3. [`ValidCall::assign_references`] adds the recording reference (and a contact reference
//!    when the client sent none) from caller-supplied entropy;
//! 4. [`json`] writes the `202` body, error bodies and notifications into caller buffers.
#![no_std]
#![deny(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

#[cfg(test)]
extern crate std;

pub mod agi;
pub mod ami;
pub mod call;
pub mod config;
pub mod decimal;
mod dfa;
pub mod dial;
pub mod error;
pub mod fingerprint;
pub mod json;
pub mod number;
pub mod originate;
pub mod policy;
pub mod range;
pub mod reference;
pub mod request;
pub mod scan;
pub mod status;
pub mod template;
pub mod text;
pub mod time;
pub mod validate;
pub mod values;

pub use error::{Error, ErrorCode, Field};
pub use number::{NumberForm, OutboundId, PhoneNumber};
pub use policy::DialPolicy;
pub use reference::Reference;
pub use request::CallRequest;
pub use validate::{ValidCall, Validators, Warning, Warnings};
