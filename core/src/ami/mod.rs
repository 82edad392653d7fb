//! Asterisk Manager Interface (AMI), sans-IO: framing, actions and events.
