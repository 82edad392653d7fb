//! FastAGI, sans-IO: framing, replies, command writers and the click2dial script.
//!
//! When an agent's softphone sends an INVITE to the click-to-dial extension, the dialplan
//! runs `AGI(agi://<service>/click2dial)` and Asterisk connects to the service. The service
//! reads the caller's PJSIP endpoint (the agent) and the `X-Teleforge-*` headers, decides,
//! and leaves its decision in channel variables that the dialplan acts on once the service
//! closes. Everything here follows the recorded
//! Asterisk 22 sessions in `tests/fixtures/agi/` byte for byte.
//!
//! - [`Decoder`] splits what Asterisk sends into frames: the [`Environment`], one [`Reply`]
//!   per command, and `HANGUP` ([`Frame::Hangup`]).
//! - [`Command::write`] writes a command into a caller buffer, quoting as needed, refusing
//!   what cannot be sent.
//! - [`Script`] drives one click2dial session; [`Headers::validate`] turns the values it
//!   read into the same [`crate::ValidCall`] as a REST request, or a [`Rejection`] with a
//!   Q.850 cause.
//!
//! A driver (tokio, embassy or a test) does only the I/O:
//!
//! ```
//! use click2dial_core::agi::{Decision, Dial, Script, ScriptEvent};
//! use click2dial_core::{DialPolicy, Validators};
//!
//! let validators = Validators::new().expect("tables");
//! let mut script = Script::new();
//! let mut out = [0u8; click2dial_core::agi::MAX_COMMAND_LEN];
//! // What Asterisk would answer, in order (a real driver reads the socket).
//! let mut from_asterisk: &[&[u8]] = &[
//!     b"agi_network: yes\nagi_uniqueid: 1795758224.2\nagi_channel: PJSIP/1002-00000002\n\n",
//!     b"200 result=1 (1002)\n", // CHANNEL(endpoint): the agent
//!     b"200 result=1 (0820001234)\n",
//!     b"200 result=1 (27820001234)\n",
//!     b"200 result=1 (crm-77)\n",
//!     b"200 result=0\n", // no X-Teleforge-Agent
//!     b"200 result=1\n", // the five SET VARIABLEs
//!     b"200 result=1\n",
//!     b"200 result=1\n",
//!     b"200 result=1\n",
//!     b"200 result=1\n",
//! ];
//! let mut sent = Vec::new();
//! loop {
//!     while let Some(n) = script.poll_transmit(&mut out).expect("room") {
//!         sent.extend_from_slice(&out[..n]); // write to the socket
//!     }
//!     match script.poll_event() {
//!         Some(ScriptEvent::Decide) => {
//!             let headers = *script.headers();
//!             let decision = match headers.validate(&validators, &DialPolicy::SOUTH_AFRICA) {
//!                 Ok(valid) => {
//!                     let call = valid.assign_references(&[7; 32]);
//!                     script.decide(&Decision::Dial(Dial::for_call(&call)))
//!                 }
//!                 Err(rejection) => script.decide(&rejection.into()),
//!             };
//!             decision.expect("sendable");
//!             continue;
//!         }
//!         Some(ScriptEvent::HungUp) => continue, // abandon the call
//!         Some(ScriptEvent::Close) => break,     // half-close, read to the end
//!         None => {}
//!     }
//!     let (bytes, rest) = from_asterisk.split_first().expect("more input");
//!     from_asterisk = rest;
//!     assert_eq!(script.handle_input(bytes).expect("AGI"), bytes.len());
//! }
//! assert!(script.delivered());
//! assert!(String::from_utf8(sent).unwrap().contains("SET VARIABLE C2D_CALLEE 0820001234\n"));
//! ```

mod command;
mod frame;
mod headers;
mod script;

pub use crate::text::Text;
pub use command::{is_sendable, Command, CommandError, MAX_COMMAND_LEN};
pub use frame::{
    DecodeError, Decoded, Decoder, Environment, Frame, Reply, Success, ENV_PREFIX, MAX_ENV_LEN,
    MAX_REPLY_LEN,
};
pub use headers::{
    q850_cause, Header, Headers, Rejection, Value, AGENT_MISMATCH, CONTACT_REF_VALUE_MAX_LEN,
    NO_ENDPOINT, SHORT_VALUE_MAX_LEN,
};
pub use script::{
    DecideError, Decision, Dial, Script, ScriptError, ScriptEvent, CALLEE_MAX_LEN, CHANNEL_MAX_LEN,
    OUTBOUND_CID_MAX_LEN, RECORDING_REF_MAX_LEN, UNIQUEID_MAX_LEN,
};
