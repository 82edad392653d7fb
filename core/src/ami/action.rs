//! Actions written into caller buffers, with the header spelling and order the recorded
//! client sent and Asterisk 22 accepted.
//!
//! Every value is checked before a byte is written, so a value can never add a header:
//!
//! - no value may contain an ASCII control character (CR and LF above all; NUL would cut the
//!   value short inside Asterisk);
//! - no header line may exceed [`MAX_LINE_LEN`]: Asterisk refuses longer lines (older
//!   versions split them, which would turn the rest of a value into a header of its own);
//! - `Variable` lines are split again by Asterisk, on commas outside parentheses, with `"`
//!   and `\` as quoting: a variable value may contain none of `,` `"` `\`, and a name only
//!   commas inside its parentheses (`PJSIP_HEADER(add,X-Teleforge-Agent)`).
//!
//! Each variable goes on its own `Variable:` line. The recorded client joined two of them
//! with a comma on one line; Asterisk reads both forms as the same list (see the tests), and
//! one per line keeps a value from ever being read as a separator.

use core::fmt;

use crate::error::BufferTooSmall;

/// The longest header line Asterisk reads, `\r\n` included (its input buffer is 1024 bytes).
pub const MAX_LINE_LEN: usize = 1024;

/// The longest `ChannelId`/`OtherChannelId` Asterisk accepts ("Uniqueid length exceeds
/// maximum of 149").
pub const MAX_CHANNEL_ID_LEN: usize = 149;

/// Why an action was not written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ActionError {
    /// `out` is too small; `required` says how large it must be.
    BufferTooSmall(BufferTooSmall),
    /// The value of `header` contains a control character such as CR or LF.
    ControlCharacter {
        /// The header whose value was refused.
        header: &'static str,
    },
    /// A required value is empty.
    Empty {
        /// The header whose value is missing.
        header: &'static str,
    },
    /// The `header` line would be longer than [`MAX_LINE_LEN`], or a channel ID longer than
    /// [`MAX_CHANNEL_ID_LEN`].
    TooLong {
        /// The header whose value was refused.
        header: &'static str,
    },
    /// `Channel` is not `<tech>/<resource>`.
    InvalidChannel,
    /// The variable at `index` would not reach Asterisk as one `name=value` pair.
    InvalidVariable {
        /// Its position in [`Originate::variables`].
        index: usize,
    },
}

impl fmt::Display for ActionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BufferTooSmall(e) => e.fmt(f),
            Self::ControlCharacter { header } => {
                write!(f, "AMI {header} value contains a control character")
            }
            Self::Empty { header } => write!(f, "AMI {header} value is empty"),
            Self::TooLong { header } => write!(f, "AMI {header} value is too long"),
            Self::InvalidChannel => f.write_str("AMI Channel must be <tech>/<resource>"),
            Self::InvalidVariable { index } => {
                write!(
                    f,
                    "AMI Originate variable {index} is not a plain name=value"
                )
            }
        }
    }
}

impl core::error::Error for ActionError {}

impl From<BufferTooSmall> for ActionError {
    fn from(e: BufferTooSmall) -> Self {
        Self::BufferTooSmall(e)
    }
}

/// An action that can be written into a buffer.
pub trait Action {
    /// Writes the whole action, closing empty line included; returns the length.
    fn write(&self, out: &mut [u8]) -> Result<usize, ActionError>;
}

/// `Login` with a plain secret. Events are not switched explicitly: the recorded login
/// sends no `Events` header and receives every event `manager.conf` allows.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Login<'a> {
    /// Correlates the response.
    pub action_id: &'a str,
    /// The `manager.conf` user.
    pub username: &'a str,
    /// Its secret.
    pub secret: &'a str,
}

impl fmt::Debug for Login<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field("action_id", &self.action_id)
            .field("username", &self.username)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl Action for Login<'_> {
    fn write(&self, out: &mut [u8]) -> Result<usize, ActionError> {
        check("ActionID", self.action_id)?;
        check("Username", self.username)?;
        check("Secret", self.secret)?;
        let mut w = Writer::new(out);
        w.header("Action", "Login");
        w.header("ActionID", self.action_id);
        w.header("Username", self.username);
        w.header("Secret", self.secret);
        w.finish()
    }
}

/// `Ping`: a keep-alive that Asterisk answers with `Response: Success`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Ping<'a> {
    /// Correlates the response.
    pub action_id: &'a str,
}

impl Action for Ping<'_> {
    fn write(&self, out: &mut [u8]) -> Result<usize, ActionError> {
        simple(out, "Ping", self.action_id)
    }
}

/// `CoreShowChannels`: Asterisk answers `Channels will follow`, one `CoreShowChannel` event
/// per channel (with this `ActionID`), then `CoreShowChannelsComplete`. The manager user needs
/// `write = reporting` (or `system`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CoreShowChannels<'a> {
    /// Correlates the response and the list's events.
    pub action_id: &'a str,
}

impl Action for CoreShowChannels<'_> {
    fn write(&self, out: &mut [u8]) -> Result<usize, ActionError> {
        simple(out, "CoreShowChannels", self.action_id)
    }
}

/// `Logoff`: Asterisk answers `Response: Goodbye` and closes the socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Logoff<'a> {
    /// Correlates the response.
    pub action_id: &'a str,
}

impl Action for Logoff<'_> {
    fn write(&self, out: &mut [u8]) -> Result<usize, ActionError> {
        simple(out, "Logoff", self.action_id)
    }
}

/// `Hangup`: ends one channel, named by its name or its `Uniqueid` (a click2dial call's
/// originated channel has its `ChannelId` as `Uniqueid`), with Q.850 `cause`. Asterisk
/// answers `Response: Success`, or `Response: Error` / `No such channel`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Hangup<'a> {
    /// Correlates the response.
    pub action_id: &'a str,
    /// The channel's name or `Uniqueid`.
    pub channel: &'a str,
    /// The Q.850 cause the channel ends with.
    pub cause: u16,
}

impl Action for Hangup<'_> {
    fn write(&self, out: &mut [u8]) -> Result<usize, ActionError> {
        check("ActionID", self.action_id)?;
        check("Channel", self.channel)?;
        let cause = crate::decimal::Decimal::new(self.cause.into());
        let mut w = Writer::new(out);
        w.header("Action", "Hangup");
        w.header("ActionID", self.action_id);
        w.header("Channel", self.channel);
        w.header("Cause", cause.as_str());
        w.finish()
    }
}

/// `ListCommands`: Asterisk answers one `Response: Success` whose headers are the actions
/// this manager user may run (`Originate: Originate a call.  (Priv: originate,all)`), so a
/// missing write privilege shows as a missing header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ListCommands<'a> {
    /// Correlates the response.
    pub action_id: &'a str,
}

impl Action for ListCommands<'_> {
    fn write(&self, out: &mut [u8]) -> Result<usize, ActionError> {
        simple(out, "ListCommands", self.action_id)
    }
}

/// `ShowDialPlan` of one context (and optionally one extension in it): Asterisk answers
/// `Response: Success`, one `ListDialplan` event per priority or include, then
/// `ShowDialPlanComplete`; or `Response: Error` with `Did not find context <context>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ShowDialPlan<'a> {
    /// Correlates the response and the events.
    pub action_id: &'a str,
    /// The context to show.
    pub context: &'a str,
    /// Only this extension of it.
    pub extension: Option<&'a str>,
}

impl Action for ShowDialPlan<'_> {
    fn write(&self, out: &mut [u8]) -> Result<usize, ActionError> {
        check("ActionID", self.action_id)?;
        check("Context", self.context)?;
        if let Some(extension) = self.extension {
            check("Extension", extension)?;
        }
        let mut w = Writer::new(out);
        w.header("Action", "ShowDialPlan");
        w.header("ActionID", self.action_id);
        w.header("Context", self.context);
        if let Some(extension) = self.extension {
            w.header("Extension", extension);
        }
        w.finish()
    }
}

/// The channel an Originate rings first, written `<tech>/<resource>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Channel<'a> {
    /// Technology, e.g. `PJSIP` or `Local`; must not contain `/`.
    pub tech: &'a str,
    /// Resource, e.g. the agent's endpoint `1001`, or `1001@c2d-agent-local`.
    pub resource: &'a str,
}

impl<'a> Channel<'a> {
    /// `PJSIP/<endpoint>`: how the agent's phone is rung.
    pub const fn pjsip(endpoint: &'a str) -> Self {
        Self {
            tech: "PJSIP",
            resource: endpoint,
        }
    }
}

/// `Originate` with `Async: true`: ring `channel`, and once it answers run the dialplan at
/// `context`/`exten`/`priority`. The answer (`Response: Success`, "Originate successfully
/// queued") comes at once; the outcome arrives later as events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Originate<'a> {
    /// Correlates the response and the `OriginateResponse` event.
    pub action_id: &'a str,
    /// The first channel to ring (the agent).
    pub channel: Channel<'a>,
    /// Dialplan context entered when the channel answers.
    pub context: &'a str,
    /// Extension in `context` (the callee's number).
    pub exten: &'a str,
    /// Dialplan priority, `1` for the first step.
    pub priority: u32,
    /// `CallerID` shown on the agent's phone.
    pub caller_id: Option<&'a str>,
    /// How long the agent's phone may ring, in milliseconds.
    pub timeout_ms: Option<u32>,
    /// `ChannelId`: becomes the agent channel's `Uniqueid` and the call's `Linkedid`;
    /// Asterisk refuses a second live channel with the same ID.
    pub channel_id: Option<&'a str>,
    /// `OtherChannelId`: the `Uniqueid` of the second half of a `Local` channel.
    pub other_channel_id: Option<&'a str>,
    /// Channel variables set on the new channel, as `(name, value)`, one `Variable:` line each.
    pub variables: &'a [(&'a str, &'a str)],
}

impl Action for Originate<'_> {
    fn write(&self, out: &mut [u8]) -> Result<usize, ActionError> {
        self.check()?;
        let mut w = Writer::new(out);
        w.header("Action", "Originate");
        w.header("ActionID", self.action_id);
        w.start("Channel");
        w.put(self.channel.tech);
        w.put("/");
        w.put(self.channel.resource);
        w.end();
        w.header("Context", self.context);
        w.header("Exten", self.exten);
        w.number("Priority", self.priority);
        if let Some(caller_id) = self.caller_id {
            w.header("CallerID", caller_id);
        }
        if let Some(timeout) = self.timeout_ms {
            w.number("Timeout", timeout);
        }
        w.header("Async", "true");
        if let Some(id) = self.channel_id {
            w.header("ChannelId", id);
        }
        if let Some(id) = self.other_channel_id {
            w.header("OtherChannelId", id);
        }
        for &(name, value) in self.variables {
            w.start("Variable");
            w.put(name);
            w.put("=");
            w.put(value);
            w.end();
        }
        w.finish()
    }
}

impl Originate<'_> {
    fn check(&self) -> Result<(), ActionError> {
        check("ActionID", self.action_id)?;
        let Channel { tech, resource } = self.channel;
        check("Channel", tech)?;
        check("Channel", resource)?;
        if tech.as_bytes().contains(&b'/') {
            return Err(ActionError::InvalidChannel);
        }
        let channel_len = tech.len().saturating_add(resource.len()).saturating_add(1);
        check_len("Channel", channel_len)?;
        check("Context", self.context)?;
        check("Exten", self.exten)?;
        if let Some(caller_id) = self.caller_id {
            check("CallerID", caller_id)?;
        }
        for (header, id) in [
            ("ChannelId", self.channel_id),
            ("OtherChannelId", self.other_channel_id),
        ] {
            if let Some(id) = id {
                check(header, id)?;
                if id.len() > MAX_CHANNEL_ID_LEN {
                    return Err(ActionError::TooLong { header });
                }
            }
        }
        for (index, &(name, value)) in self.variables.iter().enumerate() {
            check_variable(name, value).map_err(|e| match e {
                VariableError::Control => ActionError::ControlCharacter { header: "Variable" },
                VariableError::TooLong => ActionError::TooLong { header: "Variable" },
                VariableError::Syntax => ActionError::InvalidVariable { index },
            })?;
        }
        Ok(())
    }
}

fn simple(out: &mut [u8], action: &str, action_id: &str) -> Result<usize, ActionError> {
    check("ActionID", action_id)?;
    let mut w = Writer::new(out);
    w.header("Action", action);
    w.header("ActionID", action_id);
    w.finish()
}

/// A required single-line value that fits one line.
fn check(header: &'static str, value: &str) -> Result<(), ActionError> {
    if value.is_empty() {
        return Err(ActionError::Empty { header });
    }
    if value.bytes().any(|b| b.is_ascii_control()) {
        return Err(ActionError::ControlCharacter { header });
    }
    check_len(header, value.len())
}

/// Whether `header: <value_len bytes>\r\n` fits [`MAX_LINE_LEN`].
fn check_len(header: &'static str, value_len: usize) -> Result<(), ActionError> {
    // `header.len() + 4` cannot overflow: header names are short literals.
    let overhead = header.len().saturating_add(4);
    if value_len > MAX_LINE_LEN.saturating_sub(overhead) {
        return Err(ActionError::TooLong { header });
    }
    Ok(())
}

enum VariableError {
    Control,
    TooLong,
    Syntax,
}

/// A `name=value` that Asterisk's `Variable` parsing reads back unchanged as one pair.
fn check_variable(name: &str, value: &str) -> Result<(), VariableError> {
    if name
        .bytes()
        .chain(value.bytes())
        .any(|b| b.is_ascii_control())
    {
        return Err(VariableError::Control);
    }
    let len = name.len().saturating_add(value.len()).saturating_add(1);
    if check_len("Variable", len).is_err() {
        return Err(VariableError::TooLong);
    }
    if name.is_empty()
        || !variable_name_ok(name)
        || value.bytes().any(|b| matches!(b, b',' | b'"' | b'\\'))
    {
        return Err(VariableError::Syntax);
    }
    Ok(())
}

/// No blanks, `=`, quotes or backslashes; brackets balanced; commas only inside them.
fn variable_name_ok(name: &str) -> bool {
    let mut depth: u32 = 0;
    for b in name.bytes() {
        match b {
            b'(' | b'[' => depth = depth.saturating_add(1),
            b')' | b']' => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            b',' if depth == 0 => return false,
            b' ' | b'=' | b'"' | b'\\' => return false,
            _ => {}
        }
    }
    depth == 0
}

/// Writes into `out` while counting every byte, so an overflow still reports the size needed.
struct Writer<'o> {
    out: &'o mut [u8],
    len: usize,
}

impl<'o> Writer<'o> {
    fn new(out: &'o mut [u8]) -> Self {
        Self { out, len: 0 }
    }

    fn put_bytes(&mut self, bytes: &[u8]) {
        let start = self.len;
        let Some(end) = start.checked_add(bytes.len()) else {
            self.len = usize::MAX;
            return;
        };
        if let Some(dst) = self.out.get_mut(start..end) {
            dst.copy_from_slice(bytes);
        }
        self.len = end;
    }

    fn put(&mut self, text: &str) {
        self.put_bytes(text.as_bytes());
    }

    fn start(&mut self, name: &str) {
        self.put(name);
        self.put(": ");
    }

    fn end(&mut self) {
        self.put("\r\n");
    }

    fn header(&mut self, name: &str, value: &str) {
        self.start(name);
        self.put(value);
        self.end();
    }

    fn number(&mut self, name: &str, value: u32) {
        self.start(name);
        self.put(crate::decimal::Decimal::new(value.into()).as_str());
        self.end();
    }

    fn finish(mut self) -> Result<usize, ActionError> {
        self.end();
        if self.len <= self.out.len() {
            Ok(self.len)
        } else {
            Err(ActionError::BufferTooSmall(BufferTooSmall {
                required: Some(self.len),
            }))
        }
    }
}

impl fmt::Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.put(s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const VARS: &[(&str, &str)] = &[
        ("C2D_CONTACT_REF", "crm-42"),
        ("PJSIP_HEADER(add,X-Teleforge-Agent)", "1001"),
    ];

    fn originate() -> Originate<'static> {
        Originate {
            action_id: "orig-1",
            channel: Channel::pjsip("1001"),
            context: "c2d-outbound",
            exten: "0820001234",
            priority: 1,
            caller_id: Some("27820001234"),
            timeout_ms: Some(20000),
            channel_id: Some("c2d-1"),
            other_channel_id: None,
            variables: VARS,
        }
    }

    fn written(action: &dyn Action) -> std::string::String {
        let mut buf = [0u8; 1024];
        let n = action.write(&mut buf).unwrap();
        std::string::String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn originate_layout() {
        assert_eq!(
            written(&originate()),
            "Action: Originate\r\nActionID: orig-1\r\nChannel: PJSIP/1001\r\n\
             Context: c2d-outbound\r\nExten: 0820001234\r\nPriority: 1\r\n\
             CallerID: 27820001234\r\nTimeout: 20000\r\nAsync: true\r\nChannelId: c2d-1\r\n\
             Variable: C2D_CONTACT_REF=crm-42\r\n\
             Variable: PJSIP_HEADER(add,X-Teleforge-Agent)=1001\r\n\r\n"
        );
    }

    #[test]
    fn hangup_names_the_channel_and_the_cause() {
        assert_eq!(
            written(&Hangup {
                action_id: "c2d-hangup",
                channel: "c2d-oacxmqkrhrsl63ywyav6eykpgq",
                cause: 16
            }),
            "Action: Hangup\r\nActionID: c2d-hangup\r\nChannel: c2d-oacxmqkrhrsl63ywyav6eykpgq\r\nCause: 16\r\n\r\n"
        );
    }

    #[test]
    fn simple_actions() {
        assert_eq!(
            written(&Ping { action_id: "p1" }),
            "Action: Ping\r\nActionID: p1\r\n\r\n"
        );
        assert_eq!(
            written(&Logoff { action_id: "l1" }),
            "Action: Logoff\r\nActionID: l1\r\n\r\n"
        );
    }

    #[test]
    fn login_debug_hides_the_secret() {
        let login = Login {
            action_id: "a",
            username: "c2d",
            secret: "hunter2",
        };
        assert!(!std::format!("{login:?}").contains("hunter2"));
    }

    #[test]
    fn too_small_reports_the_size_needed_and_every_size_up_to_it_fails() {
        let full = written(&originate());
        let mut buf = [0u8; 1024];
        for size in 0..full.len() {
            assert_eq!(
                originate().write(&mut buf[..size]),
                Err(ActionError::BufferTooSmall(BufferTooSmall {
                    required: Some(full.len())
                }))
            );
        }
        assert_eq!(originate().write(&mut buf[..full.len()]), Ok(full.len()));
    }

    #[rstest]
    #[case("1001\r\nAction: Command", ActionError::ControlCharacter { header: "Channel" })]
    #[case("", ActionError::Empty { header: "Channel" })]
    fn channel_resource(#[case] resource: &str, #[case] want: ActionError) {
        let o = Originate {
            channel: Channel {
                tech: "PJSIP",
                resource,
            },
            ..originate()
        };
        assert_eq!(o.write(&mut [0u8; 1024]), Err(want));
    }

    #[test]
    fn channel_tech_has_no_slash() {
        let o = Originate {
            channel: Channel {
                tech: "PJSIP/x",
                resource: "1001",
            },
            ..originate()
        };
        assert_eq!(o.write(&mut [0u8; 1024]), Err(ActionError::InvalidChannel));
    }

    #[rstest]
    #[case("C2D_CONTACT_REF", "crm-42", true)]
    #[case("C2D_CONTACT_REF", "", true)]
    #[case("C2D_X", "a=b(c", true)]
    #[case("PJSIP_HEADER(add,X-Teleforge-Callee)", "0820001234", true)]
    #[case("HASH(a,b)", "x", true)]
    #[case("__C2D_INHERITED", "y", true)]
    #[case("A", "1,B=2", false)]
    #[case("A", "\"q\"", false)]
    #[case("A", "back\\slash", false)]
    #[case("A,B", "1", false)]
    #[case("A=B", "1", false)]
    #[case("A B", "1", false)]
    #[case("", "1", false)]
    #[case("F(", "1", false)]
    #[case("F)", "1", false)]
    #[case("F(a))", "1", false)]
    #[case("F[a,b]", "1", true)]
    fn variables(#[case] name: &str, #[case] value: &str, #[case] ok: bool) {
        let vars = [(name, value)];
        let o = Originate {
            variables: &vars,
            ..originate()
        };
        let got = o.write(&mut [0u8; 1024]);
        if ok {
            assert!(got.is_ok(), "{got:?}");
        } else {
            assert_eq!(got, Err(ActionError::InvalidVariable { index: 0 }));
        }
    }

    #[rstest]
    #[case("A", "x\ny")]
    #[case("A", "x\ry")]
    #[case("A\r\nChannel: x", "1")]
    #[case("A", "x\0y")]
    fn variable_control_characters(#[case] name: &str, #[case] value: &str) {
        let vars = [("OK", "1"), (name, value)];
        let o = Originate {
            variables: &vars,
            ..originate()
        };
        assert_eq!(
            o.write(&mut [0u8; 1024]),
            Err(ActionError::ControlCharacter { header: "Variable" })
        );
    }

    #[test]
    fn line_length_limit() {
        // "ActionID: " + value + "\r\n" may be exactly MAX_LINE_LEN bytes.
        let longest = "a".repeat(MAX_LINE_LEN - "ActionID: \r\n".len());
        let mut buf = [0u8; 2048];
        assert!(Ping {
            action_id: &longest
        }
        .write(&mut buf)
        .is_ok());
        let too_long = std::format!("{longest}a");
        assert_eq!(
            Ping {
                action_id: &too_long
            }
            .write(&mut buf),
            Err(ActionError::TooLong { header: "ActionID" })
        );
        let value = "v".repeat(MAX_LINE_LEN);
        let vars = [("A", value.as_str())];
        let o = Originate {
            variables: &vars,
            ..originate()
        };
        assert_eq!(
            o.write(&mut buf),
            Err(ActionError::TooLong { header: "Variable" })
        );
    }

    #[test]
    fn channel_id_limit() {
        let id = "x".repeat(MAX_CHANNEL_ID_LEN);
        let o = Originate {
            channel_id: Some(&id),
            ..originate()
        };
        assert!(o.write(&mut [0u8; 1024]).is_ok());
        let id = "x".repeat(MAX_CHANNEL_ID_LEN + 1);
        let o = Originate {
            other_channel_id: Some(&id),
            ..originate()
        };
        assert_eq!(
            o.write(&mut [0u8; 1024]),
            Err(ActionError::TooLong {
                header: "OtherChannelId"
            })
        );
    }

    #[test]
    fn numbers_are_decimal() {
        let o = Originate {
            priority: u32::MAX,
            timeout_ms: Some(0),
            caller_id: None,
            channel_id: None,
            variables: &[],
            ..originate()
        };
        let text = written(&o);
        assert!(text.contains("Priority: 4294967295\r\n"), "{text}");
        assert!(text.contains("Timeout: 0\r\n"), "{text}");
        assert!(!text.contains("CallerID"));
    }
}
