//! The client's actions as Asterisk 22's `manager.c` reads them, and the checks its
//! `action_originate` makes, in its order and with its messages.

use click2dial_core::ami::Message;

/// The longest `ChannelId`/`OtherChannelId` (`AST_MAX_PUBLIC_UNIQUEID`).
const MAX_PUBLIC_UNIQUEID: usize = 149;

/// One action, its headers copied out of the read buffer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Action {
    headers: Vec<(String, String)>,
}

impl Action {
    /// Copies the well-formed headers of `message` (keys and values trimmed, as the core's
    /// codec reads them).
    pub(crate) fn new(message: &Message<'_>) -> Self {
        Self {
            headers: message
                .headers()
                .map(|h| (h.key.to_owned(), h.value.to_owned()))
                .collect(),
        }
    }

    /// The first value of `key` (ASCII-case-insensitive), like `astman_get_header`; empty when
    /// absent.
    pub(crate) fn get(&self, key: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map_or("", |(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// `ActionID`, when present and not empty (Asterisk omits an empty one in its answers).
    pub(crate) fn action_id(&self) -> Option<&str> {
        Some(self.get("ActionID")).filter(|id| !id.is_empty())
    }
}

/// An Originate that passed Asterisk's checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Originate {
    pub(crate) action_id: Option<String>,
    /// `Channel` as sent, e.g. `PJSIP/1001`.
    pub(crate) channel: String,
    /// Before the first `/`.
    pub(crate) tech: String,
    /// After the first `/`.
    pub(crate) resource: String,
    pub(crate) context: String,
    pub(crate) exten: String,
    /// 0 when absent: the Originate has no dialplan target.
    pub(crate) priority: i32,
    /// Asterisk's default is 30 s.
    pub(crate) timeout_ms: i32,
    /// The number part of `CallerID`.
    pub(crate) caller_id: Option<String>,
    pub(crate) asynchronous: bool,
    pub(crate) channel_id: Option<String>,
    /// `Application` was given (not simulated: treated as no dialplan target).
    pub(crate) application: bool,
    /// Every `name=value` of the `Variable` headers, in the order sent.
    pub(crate) variables: Vec<(String, String)>,
}

/// Applies `action_originate`'s checks. `contexts` are the dialplan contexts the simulated
/// PBX has; an extension exists when its context is one of them, it is a digit string
/// (optionally `+`-prefixed) and the priority is 1. Errors are the `Message` of the
/// `Response: Error`.
pub(crate) fn originate(action: &Action, contexts: &[String]) -> Result<Originate, String> {
    let channel_id = action.get("ChannelId");
    if channel_id.len() > MAX_PUBLIC_UNIQUEID
        || action.get("OtherChannelId").len() > MAX_PUBLIC_UNIQUEID
    {
        // Asterisk's format string ends in a stray "\n" (kept in the transcript).
        return Err(format!(
            "Uniqueid length exceeds maximum of {MAX_PUBLIC_UNIQUEID}\n"
        ));
    }
    let channel = action.get("Channel");
    if channel.is_empty() {
        return Err("Channel not specified".into());
    }
    let priority = match action.get("Priority") {
        "" => 0,
        // Dialplan labels are not simulated: a non-number is always an invalid priority.
        p => scan_int(p).ok_or("Invalid priority")?,
    };
    let timeout_ms = match action.get("Timeout") {
        "" => 30_000,
        t => scan_int(t).ok_or("Invalid timeout")?,
    };
    let (tech, resource) = channel.split_once('/').ok_or("Invalid channel")?;
    let context = action.get("Context");
    let exten = action.get("Exten");
    if priority != 0 && !extension_exists(contexts, context, exten, priority) {
        return Err("Extension does not exist.".into());
    }
    let application = !action.get("Application").is_empty();
    let asynchronous = is_true(action.get("Async"));
    if !asynchronous && !application && priority == 0 {
        return Err("Originate with 'Exten' requires 'Context' and 'Priority'".into());
    }
    Ok(Originate {
        action_id: action.action_id().map(str::to_owned),
        channel: channel.to_owned(),
        tech: tech.to_owned(),
        resource: resource.to_owned(),
        context: context.to_owned(),
        exten: exten.to_owned(),
        priority,
        timeout_ms,
        caller_id: caller_id_number(action.get("CallerID")),
        asynchronous,
        channel_id: Some(channel_id)
            .filter(|id| !id.is_empty())
            .map(str::to_owned),
        application,
        variables: action
            .get_all("Variable")
            .flat_map(split_variables)
            .collect(),
    })
}

/// The kit's context of one-leg calls: its only extension is `s`.
pub(crate) const DIRECT_CONTEXT: &str = "c2d-direct";

fn extension_exists(contexts: &[String], context: &str, exten: &str, priority: i32) -> bool {
    let digits = exten.strip_prefix('+').unwrap_or(exten);
    if context == DIRECT_CONTEXT {
        return contexts.iter().any(|c| c == context) && exten == "s" && priority == 1;
    }
    contexts.iter().any(|c| c == context)
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && priority == 1
}

/// `sscanf(value, "%30d")`: blanks, an optional sign, at least one digit; the rest is ignored.
fn scan_int(value: &str) -> Option<i32> {
    let s = value.trim_start();
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let end = digits
        .bytes()
        .take(30)
        .take_while(u8::is_ascii_digit)
        .count();
    if end == 0 {
        return None;
    }
    let magnitude: i64 = digits[..end].parse().unwrap_or(i64::MAX);
    let n = if negative { -magnitude } else { magnitude };
    Some(i32::try_from(n).unwrap_or(if negative { i32::MIN } else { i32::MAX }))
}

/// `ast_true`.
fn is_true(value: &str) -> bool {
    ["yes", "true", "y", "t", "1", "on"]
        .iter()
        .any(|t| value.eq_ignore_ascii_case(t))
}

/// The number of a `CallerID` (`27820001234`, `"Name" <27820001234>`), as
/// `ast_callerid_parse` finds it; `None` for none or a name alone.
fn caller_id_number(value: &str) -> Option<String> {
    let number = match (value.find('<'), value.rfind('>')) {
        (Some(open), Some(close)) if open < close => value[open + 1..close].trim(),
        _ => value.trim(),
    };
    let is_number = !number.is_empty()
        && number
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+*#".contains(&b));
    is_number.then(|| number.to_owned())
}

/// One `Variable` header split as Asterisk's `AST_STANDARD_APP_ARGS` splits it: on commas
/// outside parentheses and quotes, quotes and backslashes removed; each part is `name=value`
/// at its first `=`, and parts without `=` or with an empty name are dropped.
fn split_variables(header: &str) -> Vec<(String, String)> {
    let mut parts = vec![String::new()];
    let mut depth = 0_u32;
    let mut quoted = false;
    let mut chars = header.chars();
    while let Some(c) = chars.next() {
        let part = parts.last_mut().expect("never empty");
        match c {
            '\\' => part.extend(chars.next()),
            '"' => quoted = !quoted,
            '(' if !quoted => {
                depth += 1;
                part.push(c);
            }
            ')' if !quoted => {
                depth = depth.saturating_sub(1);
                part.push(c);
            }
            ',' if !quoted && depth == 0 => parts.push(String::new()),
            _ => part.push(c),
        }
    }
    parts
        .iter()
        .filter_map(|part| {
            let (name, value) = part.trim().split_once('=')?;
            (!name.is_empty()).then(|| (name.to_owned(), value.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript::F_ORIGINATE_ERRORS;
    use click2dial_core::ami::{Decoder, Frame};

    fn action(bytes: &[u8]) -> Action {
        let decoded = Decoder::without_banner().decode(bytes).unwrap().unwrap();
        let Frame::Message(m) = decoded.frame else {
            panic!("a message")
        };
        Action::new(&m)
    }

    fn contexts() -> Vec<String> {
        vec!["c2d-outbound".into()]
    }

    #[test]
    fn recorded_malformed_originates_get_asterisks_messages() {
        let results: Vec<_> = F_ORIGINATE_ERRORS
            .actions()
            .into_iter()
            .map(action)
            .filter(|a| a.get("Action") == "Originate")
            .map(|a| (a.get("ActionID").to_owned(), originate(&a, &contexts())))
            .collect();
        let errors: Vec<_> = results
            .iter()
            .map(|(id, r)| (id.as_str(), r.as_ref().err().map(String::as_str)))
            .collect();
        assert_eq!(
            errors,
            [
                ("f1-missing-channel", Some("Channel not specified")),
                ("f2-channel-no-slash", Some("Invalid channel")),
                ("f3-bad-priority", Some("Invalid priority")),
                ("f4-bad-timeout", None),
                ("f5-unknown-tech-async", None),
                ("f6-unknown-endpoint-async", None),
                ("f7-unknown-endpoint-sync", None),
                ("f8-no-exten-no-app", None),
                (
                    "f9-bad-channelid",
                    Some("Uniqueid length exceeds maximum of 149\n")
                ),
            ]
        );
        let f4 = results[3].1.as_ref().unwrap();
        assert_eq!((f4.timeout_ms, f4.asynchronous), (-5, true));
        let f7 = results[6].1.as_ref().unwrap();
        assert!(!f7.asynchronous);
        let f8 = results[7].1.as_ref().unwrap();
        assert_eq!((f8.priority, f8.context.as_str()), (0, ""));
    }

    #[test]
    fn variables_split_like_asterisk() {
        assert_eq!(
            split_variables("C2D_CONTACT_REF=crm-42,C2D_RECORDING_REF=rec-abc"),
            [
                ("C2D_CONTACT_REF".into(), "crm-42".into()),
                ("C2D_RECORDING_REF".into(), "rec-abc".into())
            ]
        );
        assert_eq!(
            split_variables("__C2D_X=1,PJSIP_HEADER(add,X-Teleforge-Recording-Ref)=rec-abc"),
            [
                ("__C2D_X".into(), "1".into()),
                (
                    "PJSIP_HEADER(add,X-Teleforge-Recording-Ref)".into(),
                    "rec-abc".into()
                )
            ]
        );
        assert_eq!(
            split_variables(r#"A="x,y",B=a\,b,=nope,C"#),
            [("A".into(), "x,y".into()), ("B".into(), "a,b".into())]
        );
    }

    #[test]
    fn scalars() {
        assert_eq!(scan_int("20000"), Some(20_000));
        assert_eq!(scan_int(" -5"), Some(-5));
        assert_eq!(scan_int("12abc"), Some(12));
        assert_eq!(scan_int("notanumber"), None);
        assert_eq!(scan_int("-"), None);
        assert!(is_true("TRUE") && is_true("yes") && !is_true("") && !is_true("no"));
        assert_eq!(caller_id_number("27820001234"), Some("27820001234".into()));
        assert_eq!(
            caller_id_number("\"Sales\" <0820001234>"),
            Some("0820001234".into())
        );
        assert_eq!(caller_id_number("Sales"), None);
        assert_eq!(caller_id_number(""), None);
    }

    #[test]
    fn extension_must_exist_in_a_known_context() {
        let base = "Action: Originate\r\nChannel: PJSIP/1001\r\nPriority: 1\r\nAsync: true\r\n";
        let with = |extra: &str| action(format!("{base}{extra}\r\n").as_bytes());
        let ok = with("Context: c2d-outbound\r\nExten: +27820001234\r\n");
        assert!(originate(&ok, &contexts()).is_ok());
        for bad in [
            "Context: other\r\nExten: 0820001234\r\n",
            "Context: c2d-outbound\r\nExten: s\r\n",
        ] {
            assert_eq!(
                originate(&with(bad), &contexts()),
                Err("Extension does not exist.".into())
            );
        }
        let sync = action(b"Action: Originate\r\nChannel: PJSIP/1001\r\n\r\n");
        assert_eq!(
            originate(&sync, &contexts()),
            Err("Originate with 'Exten' requires 'Context' and 'Priority'".into())
        );
    }
}
