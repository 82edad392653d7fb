//! End-to-end test support for click2dial: the PBX simulator ([`pbx_sim`], binary `pbx-sim`),
//! the recorded Asterisk transcripts it is built from ([`transcript`]), and a small AMI
//! client for tests ([`ami_client`]).

pub mod ami_client;
pub mod pbx_sim;
pub mod transcript;
