//! click2dial-host: the Linux service next to the PBX.
//!
//! Only I/O and operations live here: every rule, the AMI protocol and the call state
//! machine are in `click2dial-core`, shared with the appliance firmware. The modules form
//! layers that import downwards only (`host/README.md` shows the graph; the test
//! `tests/module_graph.rs` fails on a cycle): `http` and `fastagi` are the front doors,
//! `calls` admits calls, `pbx` drives the AMI session, `notify` pushes notifications,
//! `webhook` delivers notifications to each key's endpoint, `store` is the Redis schema, and `call`, `clock`, `config`, `auth` and `metrics` are the
//! values and handles they share. `services` builds the handles once; `main.rs` only wires.

pub mod auth;
pub mod call;
pub mod calls;
pub mod clock;
pub mod config;
pub mod fastagi;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod pbx;
pub mod pbxes;
pub mod recording_file;
pub mod services;
pub mod store;
pub mod webhook;

pub use http::app;
pub use services::{start, Services};
