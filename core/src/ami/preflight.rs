//! The preflight: before it says "ready", a client checks the PBX it logged in to — the
//! login itself, the read privilege that delivers `FullyBooted`, the write privileges it
//! needs (`ListCommands`) and the dialplan contexts it will send calls to (`ShowDialPlan`) —
//! and learns the `tvc_` campaigns the PBX knows (the extensions of one context).
//!
//! Sans-IO like the rest of [`crate::ami`]: the machine says what to send
//! ([`Preflight::poll_transmit`]), takes what was received one line at a time
//! ([`Preflight::handle_line`], or a decoded frame with [`Preflight::handle_message`]), takes
//! the time as a number of milliseconds and never reads a clock ([`Preflight::poll_timeout`],
//! [`Preflight::handle_timeout`]). It works line by line because Asterisk answers
//! `ListCommands` with a single message that grows with every loaded module (7 KiB for a
//! user with five write classes on a small PBX, more with `write = all`), larger than a frame
//! the decoder keeps ([`super::MAX_MESSAGE_LEN`]); no line of it is longer than a few hundred
//! bytes.
//!
//! The answers it reads are the ones the recorded Asterisk 22 gives
//! (`core/tests/fixtures/ami/`): a refused login is `Response: Error` /
//! `Message: Authentication failed`; an action the user may not run is `Response: Error` /
//! `Message: Permission denied`; a missing context is `Response: Error` /
//! `Message: Did not find context <context>`, a missing extension
//! `Did not find extension <extension>@<context>`.

use core::fmt;

use crate::decimal::Decimal;
pub use crate::text::Text;

use super::action::{Action, ActionError, ListCommands, Login, ShowDialPlan};
use super::frame::BANNER_PREFIX;
use super::message::Message;

/// The most contexts one preflight checks.
pub const MAX_CONTEXT_CHECKS: usize = 8;

/// The most problems one preflight reports (later ones are dropped; the first ones say
/// what to fix first).
pub const MAX_PROBLEMS: usize = 8;

/// The longest campaign name (`tvc_<campaign>`: 1–64 of `A-Za-z0-9_-`).
pub const MAX_CAMPAIGN_LEN: usize = 64;

/// The longest subject of a problem (an action, a context, `extension@context`).
pub const MAX_SUBJECT_LEN: usize = 168;

/// The actions a click-to-dial client runs; `ListCommands` must list each. The last,
/// `CoreShowChannels`, only for a client that re-synchronises the calls in flight after a
/// lost connection ([`Checks::lists_channels`]).
pub const REQUIRED_ACTIONS: [&str; 4] = ["Originate", "Ping", "ShowDialPlan", "CoreShowChannels"];

/// One context the client will use, optionally with the extension it needs in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ContextCheck<'a> {
    /// The dialplan context, e.g. `c2d-outbound`.
    pub context: &'a str,
    /// An extension that must exist in it, e.g. `c2d`; `None`: the context is enough.
    pub extension: Option<&'a str>,
    /// Its extensions are the `tvc_` campaigns the PBX knows.
    pub campaigns: bool,
}

/// What to check and how long to wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checks<'a> {
    /// The `manager.conf` user.
    pub username: &'a str,
    /// Its secret.
    pub secret: &'a str,
    /// The contexts, checked in order; at most [`MAX_CONTEXT_CHECKS`] (more are ignored).
    pub contexts: &'a [ContextCheck<'a>],
    /// How long `FullyBooted` may take after the login was accepted.
    pub booted_within_ms: u64,
    /// How long any answer may take.
    pub answer_within_ms: u64,
    /// The client lists the PBX's channels after each login (`CoreShowChannels`), to
    /// re-synchronise the calls it follows: the host; the firmware follows no calls.
    pub lists_channels: bool,
}

/// Stable machine codes of preflight problems. Never rename one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ProblemCode {
    /// The peer did not open with the AMI banner.
    NotAmi,
    /// No answer to an action (the subject) in time.
    NoAnswer,
    /// `Authentication failed`.
    LoginFailed,
    /// The login was accepted but no `FullyBooted` followed.
    NotBooted,
    /// The user may not run the action in the subject.
    PermissionMissing,
    /// The context in the subject is not in the dialplan.
    ContextMissing,
    /// The `extension@context` in the subject is not in the dialplan.
    ExtensionMissing,
    /// An answer the preflight cannot read (the subject names the action).
    UnexpectedAnswer,
}

impl ProblemCode {
    /// Every code, in declaration order (the firmware keeps the last check's as bits).
    pub const ALL: [Self; 8] = [
        Self::NotAmi,
        Self::NoAnswer,
        Self::LoginFailed,
        Self::NotBooted,
        Self::PermissionMissing,
        Self::ContextMissing,
        Self::ExtensionMissing,
        Self::UnexpectedAnswer,
    ];

    /// The machine code, as the host reports it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NotAmi => "ami_not_asterisk",
            Self::NoAnswer => "ami_no_answer",
            Self::LoginFailed => "ami_login_failed",
            Self::NotBooted => "ami_not_fully_booted",
            Self::PermissionMissing => "ami_permission_missing",
            Self::ContextMissing => "dialplan_context_missing",
            Self::ExtensionMissing => "dialplan_extension_missing",
            Self::UnexpectedAnswer => "ami_unexpected_answer",
        }
    }

    /// Whether the PBX's configuration is at fault (an administrator must change it), as
    /// opposed to a PBX that is not there or not answering.
    pub const fn is_configuration(self) -> bool {
        !matches!(self, Self::NotAmi | Self::NoAnswer)
    }

    /// Whether the session can go on: only dialplan problems leave it usable (a
    /// `dialplan reload` fixes them while the session stays logged in).
    pub const fn keeps_session(self) -> bool {
        matches!(self, Self::ContextMissing | Self::ExtensionMissing)
    }
}

impl fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing wrong with the PBX. Its `Display` is a sentence that says what and how to fix
/// it, for logs and for the `/readyz` answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong.
    pub code: ProblemCode,
    subject: Text<MAX_SUBJECT_LEN>,
}

impl Problem {
    fn new(code: ProblemCode, subject: &[&str]) -> Self {
        Self {
            code,
            subject: Text::from_parts(subject),
        }
    }

    /// What the problem is about: the action, the context or `extension@context`; empty
    /// for a refused login or a missing `FullyBooted`.
    pub fn subject(&self) -> &str {
        self.subject.as_str()
    }
}

/// The `write` class of `manager.conf` that allows `action`, as Asterisk 22 lists it.
fn write_class(action: &str) -> &'static str {
    if action.eq_ignore_ascii_case("Originate") {
        "originate"
    } else if action.eq_ignore_ascii_case("ShowDialPlan")
        || action.eq_ignore_ascii_case("CoreShowChannels")
    {
        "reporting"
    } else {
        "system"
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let subject = self.subject();
        match self.code {
            ProblemCode::NotAmi => f.write_str(
                "the peer at [ami] address is not an Asterisk manager interface: \
                 point address at the PBX's manager.conf bindaddr and port",
            ),
            ProblemCode::NoAnswer => write!(
                f,
                "the PBX did not answer {subject} in time: check that Asterisk is running \
                 and not overloaded"
            ),
            ProblemCode::LoginFailed => f.write_str(
                "the PBX refused the AMI login (Authentication failed): check [ami] username \
                 and secret against the user in manager.conf, and that its permit= allows \
                 this host's address",
            ),
            ProblemCode::NotBooted => f.write_str(
                "no FullyBooted event after the AMI login: the manager user needs \
                 read = system (the kit's manager.conf has \
                 read = system,call,dialplan,originate), or the PBX is still starting",
            ),
            ProblemCode::PermissionMissing => write!(
                f,
                "the manager user may not run {subject}: add {} to its write= in \
                 manager.conf (the kit has write = originate,call,reporting), then \
                 `manager reload`",
                write_class(subject)
            ),
            ProblemCode::ContextMissing => write!(
                f,
                "context {subject} not found in the PBX dialplan: #include the click2dial \
                 extensions.conf kit and `dialplan reload`"
            ),
            ProblemCode::ExtensionMissing => write!(
                f,
                "extension {subject} not found in the PBX dialplan: add it from the \
                 click2dial extensions.conf kit and `dialplan reload`"
            ),
            ProblemCode::UnexpectedAnswer => write!(
                f,
                "the PBX answered {subject} in a way click2dial does not know: check the \
                 Asterisk version (22 is supported)"
            ),
        }
    }
}

/// The campaigns (extension names of the campaign context), at most `N`, each once.
#[derive(Clone, Copy, Debug)]
pub struct Campaigns<const N: usize> {
    names: [Text<MAX_CAMPAIGN_LEN>; N],
    len: usize,
    overflowed: bool,
}

impl<const N: usize> Campaigns<N> {
    const EMPTY: Self = Self {
        names: [Text::EMPTY; N],
        len: 0,
        overflowed: false,
    };

    /// Whether `campaign` is one of them (exact, as Asterisk matches a literal extension).
    pub fn contains(&self, campaign: &str) -> bool {
        self.iter().any(|name| name == campaign)
    }

    /// The names, in the PBX's order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.names.iter().take(self.len).map(Text::as_str)
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the context had more than `N` campaigns: [`contains`](Self::contains) may
    /// then miss some that exist.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Adds an extension name that can be a campaign (literal, 1–64 of `A-Za-z0-9_-`, not a
    /// pattern such as `_X.`).
    fn add(&mut self, extension: &str) {
        let plain = !extension.is_empty()
            && extension.len() <= MAX_CAMPAIGN_LEN
            && !extension.starts_with('_')
            && extension
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !plain || self.contains(extension) {
            return;
        }
        match self.names.get_mut(self.len) {
            Some(slot) => {
                *slot = Text::from_parts(&[extension]);
                self.len = self.len.saturating_add(1);
            }
            None => self.overflowed = true,
        }
    }
}

/// Where the preflight stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Banner,
    Login,
    Booted,
    ListCommands,
    Dialplan(usize),
    Done,
}

/// How a preflight ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Outcome {
    /// Every check passed.
    Passed,
    /// Something is wrong ([`Preflight::problems`]); `session_usable` when only dialplan
    /// problems were found, so the logged-in session can stay and check again later.
    Failed {
        /// Whether the session is logged in, booted and allowed to run every action.
        session_usable: bool,
    },
}

/// What one message (lines up to an empty one) said, as far as the preflight cares.
#[derive(Clone, Copy, Debug, Default)]
struct Seen {
    started: bool,
    response: Option<bool>,
    event: EventSeen,
    ours: bool,
    message: MessageSeen,
    commands: [bool; REQUIRED_ACTIONS.len()],
    extension: Text<MAX_CAMPAIGN_LEN>,
    extension_long: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum EventSeen {
    #[default]
    None,
    FullyBooted,
    ListDialplan,
    Complete,
    Other,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum MessageSeen {
    #[default]
    None,
    PermissionDenied,
    ContextNotFound,
    ExtensionNotFound,
    Other,
}

impl MessageSeen {
    fn classify(message: &str) -> Self {
        if message.eq_ignore_ascii_case("Permission denied") {
            Self::PermissionDenied
        } else if message.starts_with("Did not find context") {
            Self::ContextNotFound
        } else if message.starts_with("Did not find extension") {
            Self::ExtensionNotFound
        } else {
            Self::Other
        }
    }
}

/// The preflight of one session (see the module notes). `C` bounds the campaigns kept.
#[derive(Clone, Debug)]
pub struct Preflight<'a, const C: usize> {
    checks: Checks<'a>,
    step: Step,
    /// The action of the current step is still to be sent.
    to_send: bool,
    deadline: Option<u64>,
    /// Distinguishes this preflight's `ActionID`s from an earlier one's.
    run: u32,
    action_id: Text<24>,
    seen: Seen,
    problems: [Option<Problem>; MAX_PROBLEMS],
    campaigns: Campaigns<C>,
}

impl<'a, const C: usize> Preflight<'a, C> {
    /// The whole preflight of a new connection, from the banner on: `Login`, `FullyBooted`,
    /// `ListCommands`, then `ShowDialPlan` of each context. Feed it every line received
    /// until [`outcome`](Self::outcome) is `Some`; the next byte then starts a message.
    pub fn login(checks: Checks<'a>, now: u64) -> Self {
        let mut preflight = Self::new(checks, 0);
        preflight.enter(Step::Banner, now);
        preflight.to_send = true;
        preflight.write_action_id("login");
        preflight
    }

    /// Only the dialplan part, on a session that is logged in: to notice a
    /// `dialplan reload` and to refresh the campaigns. `run` numbers the checks of one
    /// session, so late answers to an earlier one are not taken for this one's.
    pub fn dialplan(checks: Checks<'a>, run: u32, now: u64) -> Self {
        let mut preflight = Self::new(checks, run);
        preflight.next_context(0, now);
        preflight
    }

    fn new(checks: Checks<'a>, run: u32) -> Self {
        Self {
            checks,
            step: Step::Banner,
            to_send: false,
            deadline: None,
            run,
            action_id: Text::EMPTY,
            seen: Seen::default(),
            problems: [None; MAX_PROBLEMS],
            campaigns: Campaigns::EMPTY,
        }
    }

    /// `Some` once the preflight is over.
    pub fn outcome(&self) -> Option<Outcome> {
        if self.step != Step::Done {
            return None;
        }
        if self.problems().next().is_none() {
            return Some(Outcome::Passed);
        }
        Some(Outcome::Failed {
            session_usable: self.problems().all(|p| p.code.keeps_session()),
        })
    }

    /// The problems found so far, in the order found.
    pub fn problems(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().flatten()
    }

    /// The campaigns of the campaign context (complete once the preflight passed it).
    pub fn campaigns(&self) -> &Campaigns<C> {
        &self.campaigns
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due, in the caller's milliseconds.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.deadline
    }

    /// The time has come: whatever was awaited did not arrive.
    pub fn handle_timeout(&mut self, now: u64) {
        if self.deadline.is_none_or(|d| now < d) {
            return;
        }
        match self.step {
            Step::Banner => self.fail(ProblemCode::NotAmi, &[]),
            Step::Login => self.fail(ProblemCode::NoAnswer, &["Login"]),
            Step::Booted => self.fail(ProblemCode::NotBooted, &[]),
            Step::ListCommands => self.fail(ProblemCode::NoAnswer, &["ListCommands"]),
            Step::Dialplan(_) => self.fail(ProblemCode::NoAnswer, &["ShowDialPlan"]),
            Step::Done => {}
        }
    }

    /// Writes the next action to send into `out` and returns its length; `Ok(None)` when
    /// there is nothing to send now.
    ///
    /// # Errors
    /// When `out` is too small or a configured name cannot be sent (then the action stays
    /// due).
    pub fn poll_transmit(&mut self, out: &mut [u8]) -> Result<Option<usize>, ActionError> {
        if !self.to_send {
            return Ok(None);
        }
        let action_id = self.action_id;
        let action_id = action_id.as_str();
        let n = match self.step {
            Step::Banner | Step::Login => Login {
                action_id,
                username: self.checks.username,
                secret: self.checks.secret,
            }
            .write(out)?,
            Step::ListCommands => ListCommands { action_id }.write(out)?,
            Step::Dialplan(i) => match self.checks.contexts.get(i) {
                Some(check) => ShowDialPlan {
                    action_id,
                    context: check.context,
                    extension: check.extension,
                }
                .write(out)?,
                None => return Ok(None),
            },
            Step::Booted | Step::Done => return Ok(None),
        };
        self.to_send = false;
        Ok(Some(n))
    }

    /// One decoded message (a frame of [`super::Decoder`]), e.g. during a
    /// [`dialplan`](Self::dialplan) check on a running session.
    pub fn handle_message(&mut self, now: u64, message: &Message<'_>) {
        for line in message.as_bytes().split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !line.is_empty() {
                self.handle_line(now, line);
            }
        }
        self.handle_line(now, b"");
    }

    /// One line received, without its `\r\n`; an empty line ends a message.
    pub fn handle_line(&mut self, now: u64, line: &[u8]) {
        if self.step == Step::Done {
            return;
        }
        if self.step == Step::Banner {
            if line.starts_with(BANNER_PREFIX.as_bytes()) {
                self.step = Step::Login;
            } else {
                self.fail(ProblemCode::NotAmi, &[]);
            }
            return;
        }
        if line.is_empty() {
            let seen = core::mem::take(&mut self.seen);
            if seen.started {
                self.end_of_message(now, &seen);
            }
            return;
        }
        let Ok(line) = core::str::from_utf8(line) else {
            return;
        };
        let Some((key, value)) = crate::text::split_once(line, b':') else {
            return;
        };
        let (key, value) = (key.trim_ascii(), value.trim_ascii());
        let seen = &mut self.seen;
        if !seen.started {
            seen.started = true;
            if key.eq_ignore_ascii_case("Response") {
                seen.response = Some(value.eq_ignore_ascii_case("Success"));
            } else if key.eq_ignore_ascii_case("Event") {
                seen.event = match value {
                    "FullyBooted" => EventSeen::FullyBooted,
                    "ListDialplan" => EventSeen::ListDialplan,
                    "ShowDialPlanComplete" => EventSeen::Complete,
                    _ => EventSeen::Other,
                };
            }
            return;
        }
        if key.eq_ignore_ascii_case("ActionID") {
            seen.ours = value == self.action_id.as_str();
        } else if key.eq_ignore_ascii_case("Message") {
            seen.message = MessageSeen::classify(value);
        } else if key.eq_ignore_ascii_case("Extension") && seen.event == EventSeen::ListDialplan {
            seen.extension = Text::from_parts(&[value]);
            seen.extension_long = value.len() > MAX_CAMPAIGN_LEN;
        } else if seen.response == Some(true) && self.step == Step::ListCommands {
            if let Some(i) = REQUIRED_ACTIONS.iter().position(|a| *a == key) {
                if let Some(found) = seen.commands.get_mut(i) {
                    *found = true;
                }
            }
        }
    }

    fn end_of_message(&mut self, now: u64, seen: &Seen) {
        match self.step {
            Step::Login if seen.ours && seen.response.is_some() => {
                if seen.response == Some(true) {
                    let within = self.checks.booted_within_ms;
                    self.step = Step::Booted;
                    self.deadline = Some(now.saturating_add(within));
                } else {
                    self.fail(ProblemCode::LoginFailed, &[]);
                }
            }
            Step::Booted if seen.event == EventSeen::FullyBooted => {
                self.enter(Step::ListCommands, now);
            }
            Step::ListCommands if seen.ours && seen.response.is_some() => {
                if seen.response == Some(false) {
                    return self.fail(ProblemCode::UnexpectedAnswer, &["ListCommands"]);
                }
                // `CoreShowChannels`, the last, only for a client that lists channels.
                let unneeded = usize::from(!self.checks.lists_channels);
                let required = REQUIRED_ACTIONS.len().saturating_sub(unneeded);
                for (action, found) in REQUIRED_ACTIONS.iter().zip(seen.commands).take(required) {
                    if !found {
                        self.add(ProblemCode::PermissionMissing, &[action]);
                    }
                }
                // Without ShowDialPlan the dialplan cannot be checked.
                if seen.commands.get(2) == Some(&false) {
                    self.finish();
                } else {
                    self.next_context(0, now);
                }
            }
            Step::Dialplan(i) if seen.ours => self.dialplan_message(now, i, seen),
            _ => {}
        }
    }

    fn dialplan_message(&mut self, now: u64, i: usize, seen: &Seen) {
        let Some(check) = self.checks.contexts.get(i).copied() else {
            return self.finish();
        };
        match (seen.response, seen.event) {
            (Some(true), _) => {}
            (Some(false), _) => {
                match seen.message {
                    MessageSeen::PermissionDenied => {
                        self.add(ProblemCode::PermissionMissing, &["ShowDialPlan"]);
                        return self.finish();
                    }
                    MessageSeen::ContextNotFound => {
                        self.add(ProblemCode::ContextMissing, &[check.context]);
                    }
                    MessageSeen::ExtensionNotFound => {
                        let extension = check.extension.unwrap_or_default();
                        self.add(
                            ProblemCode::ExtensionMissing,
                            &[extension, "@", check.context],
                        );
                    }
                    MessageSeen::None | MessageSeen::Other => {
                        self.add(ProblemCode::UnexpectedAnswer, &["ShowDialPlan"]);
                    }
                }
                self.next_context(i.saturating_add(1), now);
            }
            (None, EventSeen::ListDialplan) if check.campaigns && !seen.extension_long => {
                self.campaigns.add(seen.extension.as_str());
            }
            (None, EventSeen::Complete) => self.next_context(i.saturating_add(1), now),
            _ => {}
        }
    }

    fn next_context(&mut self, i: usize, now: u64) {
        let last = self.checks.contexts.len().min(MAX_CONTEXT_CHECKS);
        if i >= last {
            return self.finish();
        }
        self.enter(Step::Dialplan(i), now);
        self.to_send = true;
        let run = Decimal::new(u64::from(self.run));
        let index = Decimal::new(i as u64);
        self.action_id = Text::from_parts(&["c2d-pf-", run.as_str(), "-", index.as_str()]);
    }

    fn enter(&mut self, step: Step, now: u64) {
        self.step = step;
        self.deadline = Some(now.saturating_add(self.checks.answer_within_ms));
        if step == Step::ListCommands {
            self.to_send = true;
            self.write_action_id("lc");
        }
    }

    fn write_action_id(&mut self, what: &str) {
        let run = Decimal::new(u64::from(self.run));
        self.action_id = Text::from_parts(&["c2d-pf-", run.as_str(), "-", what]);
    }

    fn add(&mut self, code: ProblemCode, subject: &[&str]) {
        let problem = Problem::new(code, subject);
        if self.problems().any(|p| *p == problem) {
            return;
        }
        if let Some(slot) = self.problems.iter_mut().find(|p| p.is_none()) {
            *slot = Some(problem);
        }
    }

    fn fail(&mut self, code: ProblemCode, subject: &[&str]) {
        self.add(code, subject);
        self.finish();
    }

    fn finish(&mut self) {
        self.step = Step::Done;
        self.deadline = None;
        self.to_send = false;
    }
}
