//! Asterisk Manager Interface (AMI), sans-IO: framing, messages, action writers, the
//! preflight that checks a PBX before a client says it is ready, and the [`Session`] that
//! drives a client's whole life with a PBX.
//!
//! It does no I/O, reads no clock and allocates nothing, so the host (tokio) and the
//! appliance (embassy) drive the same code:
//!
//! ```
//! use click2dial_core::ami::{Action, Decoder, Frame, Kind, Login};
//!
//! // Send: write an action into a buffer, then send `out[..n]`.
//! let mut out = [0u8; 256];
//! let login = Login { action_id: "login-1", username: "c2d", secret: "secret" };
//! let n = login.write(&mut out).expect("fits");
//! assert!(out[..n].ends_with(b"\r\n\r\n"));
//!
//! // Receive: append what the socket gives to a buffer of `MAX_MESSAGE_LEN` bytes, decode
//! // until `Ok(None)`, drop each frame's `len` bytes from the front.
//! let mut decoder = Decoder::new();
//! let received: &[u8] = b"Asterisk Call Manager/11.0.0\r\n\
//!     Response: Success\r\nActionID: login-1\r\nMessage: Authentication accepted\r\n\r\n";
//! let mut start = 0;
//! while let Some(decoded) = decoder.decode(&received[start..]).expect("valid AMI") {
//!     if let Frame::Message(message) = decoded.frame {
//!         assert_eq!(message.action_id(), Some("login-1"));
//!         assert!(matches!(message.kind(), Kind::Response(_)));
//!     }
//!     start += decoded.len;
//! }
//! assert_eq!(start, received.len());
//! ```

mod action;
mod frame;
mod message;
mod preflight;
pub mod session;
mod value;

pub use action::{
    Action, ActionError, Channel, CoreShowChannels, Hangup, ListCommands, Login, Logoff, Originate,
    Ping, ShowDialPlan, MAX_CHANNEL_ID_LEN, MAX_LINE_LEN,
};
pub use frame::{
    DecodeError, Decoded, Decoder, Frame, BANNER_PREFIX, MAX_BANNER_LEN, MAX_MESSAGE_LEN,
};
pub use message::{ChanVariable, ChanVariables, Header, Headers, Kind, Message, Values};
pub use preflight::{
    Campaigns, Checks, ContextCheck, Outcome, Preflight, Problem, ProblemCode, Text,
    MAX_CAMPAIGN_LEN, MAX_CONTEXT_CHECKS, MAX_PROBLEMS, MAX_SUBJECT_LEN, REQUIRED_ACTIONS,
};
pub use session::{Backoff, Session};
pub use value::{ChannelState, DialStatus, ResponseStatus};
