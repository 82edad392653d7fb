//! End to end: the `click2dial-host` binary with a real `redis-server` and the PBX simulator,
//! all over loopback sockets, one module per subject. Every test starts its own processes on
//! free ports (`support`), so tests of different modules run side by side.

#[path = "../support/mod.rs"]
mod support;

mod auth;
mod auth_policy;
mod call_resource;
mod calls;
mod case_table;
mod cluster;
mod console;
mod events;
mod failover;
mod fastagi;
mod multi_host;
mod ops;
mod pbxes;
mod preflight;
mod recordings;
mod security;
mod sentinel;
mod webhooks;
