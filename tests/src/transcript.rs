//! The recorded Asterisk 22 AMI transcripts, embedded at build time from
//! `core/tests/fixtures/ami/transcripts/` (unedited copies of `../shared/pbx/transcripts/`).
//!
//! The PBX simulator renders its events from these bytes, and the fidelity tests compare the
//! simulator's output with them. A frame is one response or event with its closing empty line;
//! its time offset comes from the case's `summary.txt`, which has one line per frame.

use click2dial_core::ami::{Decoder, Frame};

/// One recorded case: what each side sent, and the time offsets of what Asterisk sent.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    /// The file stem, e.g. `a_success`.
    pub name: &'static str,
    /// Every byte Asterisk sent: banner, responses, events.
    pub server: &'static [u8],
    /// Every byte the client sent: Login, Originate, Logoff.
    pub client: &'static [u8],
    /// `<case>.summary.txt`: one line per response or event, each with its offset in seconds.
    pub summary: &'static str,
}

macro_rules! case {
    ($name:literal) => {
        case!("transcripts", $name)
    };
    ($dir:literal, $name:literal) => {
        Case {
            name: $name,
            server: include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../core/tests/fixtures/ami/",
                $dir,
                "/",
                $name,
                ".ami"
            )),
            client: include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../core/tests/fixtures/ami/",
                $dir,
                "/",
                $name,
                ".client.ami"
            )),
            summary: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../core/tests/fixtures/ami/",
                $dir,
                "/",
                $name,
                ".summary.txt"
            )),
        }
    };
}

/// Answered, bridged about 6 s, the agent hangs up.
pub const A_SUCCESS: Case = case!("a_success");
/// The agent's phone rings until the Originate `Timeout`.
pub const B_AGENT_NOANSWER: Case = case!("b_agent_noanswer");
/// The agent's phone answers 486.
pub const C_AGENT_BUSY: Case = case!("c_agent_busy");
/// The callee answers 486.
pub const D_CALLEE_BUSY: Case = case!("d_callee_busy");
/// The callee's number does not exist (404).
pub const D2_CALLEE_NOTFOUND: Case = case!("d2_callee_notfound");
/// The callee declines (603).
pub const D3_CALLEE_DECLINE: Case = case!("d3_callee_decline");
/// The callee rings until the dialplan's `Dial` timeout (30 s).
pub const D4_CALLEE_NOANSWER: Case = case!("d4_callee_noanswer");
/// The agent hangs up while the callee rings.
pub const D5_AGENT_HANGS_UP: Case = case!("d5_agent_hangs_up_while_callee_rings");
/// A wrong secret: `Response: Error` after about 1 s, then the socket is closed.
pub const E_BAD_LOGIN: Case = case!("e_bad_login");
/// An unknown user: the same as a wrong secret.
pub const E2_UNKNOWN_USER: Case = case!("e2_unknown_user");
/// Ten malformed or odd Originates in one session and what Asterisk answered.
pub const F_ORIGINATE_ERRORS: Case = case!("f_originate_errors");
/// A busy agent, with several `Variable` lines (and the `VarSet` events they cause).
pub const H_HEADER_VARIANTS: Case = case!("h_header_variants");
/// Answered through a `Local` channel and a pre-dial handler (not simulated).
pub const A2_SUCCESS_LOCAL_PREDIAL: Case = case!("a2_success_local_predial");
/// One-leg call on the kit: `Local/<callee>@c2d-single` dials the callee, who answers; the
/// call is recorded and connected to `[c2d-direct-destination]` (phone 1000).
pub const I_ONE_LEG_SUCCESS: Case = case!("i_one_leg_success");
/// One-leg call on the kit whose callee answers 486.
pub const I2_ONE_LEG_CALLEE_BUSY: Case = case!("i2_one_leg_callee_busy");
/// One-leg call on the kit hung up by the host's `Hangup` (by `Uniqueid`) while the callee
/// rings, then a `Hangup` of a channel that does not exist.
pub const J_HANGUP_RINGING: Case = case!("j_hangup_ringing");
/// The same once both phones answered and are bridged.
pub const J2_HANGUP_CONNECTED: Case = case!("j2_hangup_connected");
/// One-leg call with `C2D_MAX_DURATION_SECS=3`: Dial's `S(3)` ends it.
pub const J3_MAX_DURATION: Case = case!("j3_max_duration");
/// Two-leg call (agent 1001) hung up by the host's `Hangup` while the agent's phone rings.
pub const K_TWO_LEG_HANGUP_RINGING: Case = case!("k_two_leg_hangup_ringing");
/// The same once agent and callee are bridged.
pub const K2_TWO_LEG_HANGUP_CONNECTED: Case = case!("k2_two_leg_hangup_connected");
/// Two-leg call with `C2D_MAX_DURATION_SECS=3`: Dial's `S(3)` ends it.
pub const K3_TWO_LEG_MAX_DURATION: Case = case!("k3_two_leg_max_duration");
/// Two-leg call hung up by the host's `Hangup` once the agent answered, while the callee's
/// phone rings.
pub const K4_TWO_LEG_HANGUP_DIALLING: Case = case!("k4_two_leg_hangup_dialling");

/// Not a call case (kept out of [`ALL`]): a connected two-leg call, then the PBX's answer to
/// `CoreShowChannels` (`ActionID: show-1`) listing its two channels.
pub const L_CORE_SHOW_CHANNELS_CONNECTED: Case = case!("queries", "l_core_show_channels_connected");

/// Not a call case either: the agent's phone rings, then the answer to `CoreShowChannels`
/// (`ActionID: show-1`) listing that one channel.
pub const L2_CORE_SHOW_CHANNELS_RINGING: Case = case!("queries", "l2_core_show_channels_ringing");

/// Every embedded case.
pub const ALL: &[Case] = &[
    A_SUCCESS,
    A2_SUCCESS_LOCAL_PREDIAL,
    B_AGENT_NOANSWER,
    C_AGENT_BUSY,
    D_CALLEE_BUSY,
    D2_CALLEE_NOTFOUND,
    D3_CALLEE_DECLINE,
    D4_CALLEE_NOANSWER,
    D5_AGENT_HANGS_UP,
    E_BAD_LOGIN,
    E2_UNKNOWN_USER,
    F_ORIGINATE_ERRORS,
    H_HEADER_VARIANTS,
    I_ONE_LEG_SUCCESS,
    I2_ONE_LEG_CALLEE_BUSY,
    J_HANGUP_RINGING,
    J2_HANGUP_CONNECTED,
    J3_MAX_DURATION,
    K_TWO_LEG_HANGUP_RINGING,
    K2_TWO_LEG_HANGUP_CONNECTED,
    K3_TWO_LEG_MAX_DURATION,
    K4_TWO_LEG_HANGUP_DIALLING,
];

/// One frame Asterisk sent, with when it sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordedFrame {
    /// Milliseconds since the connection was opened (from the summary).
    pub at_ms: u64,
    /// The frame's bytes, closing empty line included.
    pub bytes: &'static [u8],
}

impl Case {
    /// The banner line, `\r\n` included.
    pub fn banner(&self) -> &'static [u8] {
        let end = self
            .server
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(self.server.len(), |p| p + 2);
        &self.server[..end]
    }

    /// The frames Asterisk sent after the banner, with their time offsets.
    ///
    /// # Panics
    /// If the embedded transcript and its summary disagree (a unit test checks every case).
    pub fn frames(&self) -> Vec<RecordedFrame> {
        let bytes = split_frames(self.server, true);
        let offsets = summary_offsets(self.summary);
        assert_eq!(
            bytes.len(),
            offsets.len(),
            "{}: one summary line per frame",
            self.name
        );
        bytes
            .into_iter()
            .zip(offsets)
            .map(|(bytes, at_ms)| RecordedFrame { at_ms, bytes })
            .collect()
    }

    /// The actions the client sent, each with its closing empty line.
    pub fn actions(&self) -> Vec<&'static [u8]> {
        split_frames(self.client, false)
    }
}

/// Splits an AMI byte stream into frames (closing empty line included), skipping the banner
/// when `banner` is set. Stops at the first incomplete or undecodable frame.
pub fn split_frames(bytes: &[u8], banner: bool) -> Vec<&[u8]> {
    let mut decoder = if banner {
        Decoder::new()
    } else {
        Decoder::without_banner()
    };
    let mut frames = Vec::new();
    let mut at = 0;
    while let Ok(Some(decoded)) = decoder.decode(&bytes[at..]) {
        if let Frame::Message(_) = decoded.frame {
            frames.push(&bytes[at..at + decoded.len]);
        }
        at += decoded.len;
    }
    frames
}

/// The time offsets, in milliseconds, of the lines of a `summary.txt` that describe a frame.
pub fn summary_offsets(summary: &str) -> Vec<u64> {
    summary
        .lines()
        .filter_map(|line| {
            let seconds: f64 = line.split_whitespace().next()?.parse().ok()?;
            Some((seconds * 1000.0).round() as u64)
        })
        .collect()
}

/// The exact `Key: value` lines of a frame, in order. Unlike the core's header view nothing is
/// trimmed, so the lines re-render to the same bytes: every recorded line is `key`, `": "`,
/// `value`, `"\r\n"` (values may be empty, start with blanks, or end in a bare `\n`).
pub fn lines(frame: &[u8]) -> Vec<(&str, &str)> {
    let body = frame.strip_suffix(b"\r\n\r\n").unwrap_or(frame);
    let text = std::str::from_utf8(body).unwrap_or_default();
    text.split("\r\n")
        .filter(|line| !line.is_empty())
        .map(|line| line.split_once(": ").unwrap_or((line, "")))
        .collect()
}

/// The value of the first line of `frame` whose key is `key` (exact, as recorded).
pub fn header<'a>(frame: &'a [u8], key: &str) -> Option<&'a str> {
    lines(frame)
        .into_iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_has_one_summary_line_per_frame() {
        for case in ALL {
            let frames = case.frames();
            assert!(!frames.is_empty(), "{}", case.name);
            assert!(
                frames.windows(2).all(|w| w[0].at_ms <= w[1].at_ms),
                "{}: offsets never go back",
                case.name
            );
            assert_eq!(case.banner(), b"Asterisk Call Manager/11.0.0\r\n");
        }
    }

    #[test]
    fn lines_rerender_every_recorded_frame_exactly() {
        for case in ALL {
            for frame in case.frames() {
                let mut out = Vec::new();
                for (k, v) in lines(frame.bytes) {
                    out.extend_from_slice(k.as_bytes());
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(v.as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"\r\n");
                assert_eq!(out, frame.bytes, "{}", case.name);
            }
        }
    }

    #[test]
    fn client_actions_split() {
        let actions = A_SUCCESS.actions();
        assert_eq!(actions.len(), 3);
        assert_eq!(header(actions[1], "Action"), Some("Originate"));
    }
}
