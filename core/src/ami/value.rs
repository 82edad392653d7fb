//! Typed forms of the header values the call state machine branches on.
//!
//! Each parser is total: a value Asterisk may add in a later version maps to `Unknown`
//! rather than failing, and the raw text stays reachable through
//! [`Message::get`](super::Message::get).

/// The `Response` header: the outcome of an action, or of an Originate in its
/// `OriginateResponse` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ResponseStatus {
    /// `Success`: the action was accepted (or the originated channel answered).
    Success,
    /// `Error`: the action was refused; `Message` says why.
    Error,
    /// `Failure`: seen only in `OriginateResponse`, when the originated channel never answered.
    Failure,
    /// `Follows`: legacy `Command` output; never an answer to the actions this crate writes.
    Follows,
    /// `Goodbye`: the answer to `Logoff`; Asterisk closes the socket after it.
    Goodbye,
    /// Any other value.
    Unknown,
}

impl ResponseStatus {
    /// Reads a `Response` value; case-insensitive, as Asterisk compares.
    pub fn parse(value: &str) -> Self {
        const TABLE: [(&str, ResponseStatus); 5] = [
            ("Success", ResponseStatus::Success),
            ("Error", ResponseStatus::Error),
            ("Failure", ResponseStatus::Failure),
            ("Follows", ResponseStatus::Follows),
            ("Goodbye", ResponseStatus::Goodbye),
        ];
        lookup(&TABLE, value).unwrap_or(Self::Unknown)
    }
}

/// `ChannelState`: Asterisk's `enum ast_channel_state`, sent as its number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ChannelState {
    /// `0`: not yet dialled, or hung up.
    Down,
    /// `1`: reserved.
    Reserved,
    /// `2`: off hook.
    OffHook,
    /// `3`: digits being dialled.
    Dialing,
    /// `4`: an incoming call is ringing here.
    Ring,
    /// `5`: the far end is ringing (the agent's phone rings).
    Ringing,
    /// `6`: answered.
    Up,
    /// `7`: busy.
    Busy,
    /// `8`: dialling while off hook.
    DialingOffHook,
    /// `9`: about to ring.
    PreRing,
    /// Any other number, or not a number.
    Unknown,
}

impl ChannelState {
    /// Maps Asterisk's numeric state.
    pub const fn from_code(code: u16) -> Self {
        match code {
            0 => Self::Down,
            1 => Self::Reserved,
            2 => Self::OffHook,
            3 => Self::Dialing,
            4 => Self::Ring,
            5 => Self::Ringing,
            6 => Self::Up,
            7 => Self::Busy,
            8 => Self::DialingOffHook,
            9 => Self::PreRing,
            _ => Self::Unknown,
        }
    }

    /// Reads a `ChannelState` value (a decimal number).
    pub fn parse(value: &str) -> Self {
        parse_u16(value).map_or(Self::Unknown, Self::from_code)
    }
}

/// `DialStatus` in `DialState` and `DialEnd` events (the values of the `DIALSTATUS` variable,
/// plus the progress values of `DialState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DialStatus {
    /// `ANSWER`: the dialled channel answered.
    Answer,
    /// `BUSY`: the dialled party is busy (SIP 486).
    Busy,
    /// `NOANSWER`: no answer before the timeout; Asterisk also reports SIP 404 and 603 so.
    NoAnswer,
    /// `CANCEL`: the calling channel hung up before an answer.
    Cancel,
    /// `CONGESTION`: the network could not route the call.
    Congestion,
    /// `CHANUNAVAIL`: the channel could not be created (endpoint unknown or unreachable).
    ChanUnavail,
    /// `DONTCALL`: privacy manager refusal.
    DontCall,
    /// `TORTURE`: privacy manager refusal.
    Torture,
    /// `INVALIDARGS`: `Dial` was given bad arguments.
    InvalidArgs,
    /// `RINGING` (`DialState` only): the dialled party is ringing.
    Ringing,
    /// `PROCEEDING` (`DialState` only).
    Proceeding,
    /// `PROGRESS` (`DialState` only): early media.
    Progress,
    /// Any other value.
    Unknown,
}

impl DialStatus {
    /// Reads a `DialStatus` value; case-insensitive.
    pub fn parse(value: &str) -> Self {
        const TABLE: [(&str, DialStatus); 12] = [
            ("ANSWER", DialStatus::Answer),
            ("BUSY", DialStatus::Busy),
            ("NOANSWER", DialStatus::NoAnswer),
            ("CANCEL", DialStatus::Cancel),
            ("CONGESTION", DialStatus::Congestion),
            ("CHANUNAVAIL", DialStatus::ChanUnavail),
            ("DONTCALL", DialStatus::DontCall),
            ("TORTURE", DialStatus::Torture),
            ("INVALIDARGS", DialStatus::InvalidArgs),
            ("RINGING", DialStatus::Ringing),
            ("PROCEEDING", DialStatus::Proceeding),
            ("PROGRESS", DialStatus::Progress),
        ];
        lookup(&TABLE, value).unwrap_or(Self::Unknown)
    }
}

fn lookup<T: Copy>(table: &[(&str, T)], value: &str) -> Option<T> {
    table
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(value))
        .map(|&(_, item)| item)
}

/// A decimal number of ASCII digits only (no sign, no blanks), or `None`.
pub(crate) fn parse_u16(value: &str) -> Option<u16> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("Success", ResponseStatus::Success)]
    #[case("success", ResponseStatus::Success)]
    #[case("Error", ResponseStatus::Error)]
    #[case("Failure", ResponseStatus::Failure)]
    #[case("Follows", ResponseStatus::Follows)]
    #[case("Goodbye", ResponseStatus::Goodbye)]
    #[case("", ResponseStatus::Unknown)]
    #[case("Pong", ResponseStatus::Unknown)]
    fn response_status(#[case] text: &str, #[case] want: ResponseStatus) {
        assert_eq!(ResponseStatus::parse(text), want);
    }

    #[rstest]
    #[case("0", ChannelState::Down)]
    #[case("5", ChannelState::Ringing)]
    #[case("6", ChannelState::Up)]
    #[case("9", ChannelState::PreRing)]
    #[case("10", ChannelState::Unknown)]
    #[case("65536", ChannelState::Unknown)]
    #[case("+6", ChannelState::Unknown)]
    #[case(" 6", ChannelState::Unknown)]
    #[case("", ChannelState::Unknown)]
    #[case("Up", ChannelState::Unknown)]
    fn channel_state(#[case] text: &str, #[case] want: ChannelState) {
        assert_eq!(ChannelState::parse(text), want);
    }

    #[rstest]
    #[case("ANSWER", DialStatus::Answer)]
    #[case("BUSY", DialStatus::Busy)]
    #[case("NOANSWER", DialStatus::NoAnswer)]
    #[case("CANCEL", DialStatus::Cancel)]
    #[case("RINGING", DialStatus::Ringing)]
    #[case("chanunavail", DialStatus::ChanUnavail)]
    #[case("NO ANSWER", DialStatus::Unknown)]
    fn dial_status(#[case] text: &str, #[case] want: DialStatus) {
        assert_eq!(DialStatus::parse(text), want);
    }

    #[rstest]
    #[case("0", Some(0))]
    #[case("486", Some(486))]
    #[case("65535", Some(65535))]
    #[case("65536", None)]
    #[case("00017", Some(17))]
    #[case("-1", None)]
    #[case("1.5", None)]
    #[case("", None)]
    fn numbers(#[case] text: &str, #[case] want: Option<u16>) {
        assert_eq!(parse_u16(text), want);
    }
}
