//! The PBX simulator (`click2dial_tests::pbx_sim`, the `pbx-sim` binary) against the recorded
//! Asterisk 22 sessions and the manager protocol, one module per subject. In-process
//! simulators on free ports (`support`); no Redis, no host.

mod support;

mod cli;
mod fastagi;
mod fidelity;
mod preflight;
mod recording;
mod server;
mod tracker;
