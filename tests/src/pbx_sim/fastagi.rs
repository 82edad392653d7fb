//! The Asterisk side of a FastAGI session, as the recorded Asterisk 22 speaks it
//! (`core/tests/fixtures/agi/`): the 22-line environment, then one reply per command line,
//! every line ending in `\n`.
//!
//! | command | answer |
//! |---|---|
//! | `GET VARIABLE <name>` | `200 result=1 (<value>)`, or `200 result=0` when unset (a missing `PJSIP_HEADER(read,…)` too) |
//! | `GET FULL VARIABLE <expr>` | `200 result=1 (<expr with ${…} substituted>)` |
//! | `SET VARIABLE <name> <value>` | `200 result=1` (the variable is remembered) |
//! | `VERBOSE <message> [level]`, `NOOP` | `200 result=1`, `200 result=0` |
//! | `CHANNEL STATUS`, `ANSWER`, `WAIT FOR DIGIT <ms>` | `200 result=4`, `200 result=0`, `200 result=0`; `511 …` once the caller hung up |
//! | `HANGUP` | `200 result=1`; the channel is hung up |
//! | a known command with the wrong arguments | `520-…` usage (the recorded texts for `GET VARIABLE` and `SET VARIABLE`) |
//! | anything else | `510 Invalid or unknown command` |
//!
//! Values the session knows, as the real Asterisk derives them (`h_`…`k_` recordings):
//!
//! | name | value |
//! |---|---|
//! | `CHANNEL(endpoint)` | the PJSIP endpoint the INVITE was matched to (authenticated); unset (`200 result=0`) when empty or on a channel that is not `PJSIP/…` |
//! | `PJSIP_HEADER(read,<name>)` | the INVITE's headers, names compared ignoring case; unset on a channel that is not `PJSIP/…` |
//! | `CALLERID(num)`, `CALLERID(name)` (and `agi_callerid`, `agi_calleridname`) | what the phone wrote in its `From` header (a `From` among the INVITE's headers), else the endpoint and `Agent <endpoint>` |
//! | `CHANNEL(name)`, `UNIQUEID` | the channel's |
//!
//! and every variable set so far. The caller hanging up shows as a `HANGUP` line sent before
//! the reply to the command in flight, as in the recorded `d_*` cases.

use std::collections::HashMap;

/// The recorded environment, whose lines are re-sent with the new call's values.
const RECORDED_ENV: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../core/tests/fixtures/agi/a_valid_dial.agi"
));

/// `GET VARIABLE`'s usage text, as recorded.
const GET_VARIABLE_USAGE: &str = "Returns <literal>0</literal> if <replaceable>variablename</replaceable> is not set. Returns <literal>1</literal> if <replaceable>variablename</replaceable> is set and returns the variable in parentheses.\nExample return code: 200 result=1 (testvariable)";

/// `SET VARIABLE`'s usage text, as recorded.
const SET_VARIABLE_USAGE: &str = "Sets a variable to the current channel.";

/// What Asterisk answers on a dead channel.
pub(crate) const DEAD_CHANNEL: &str =
    "511 Command Not Permitted on a dead channel or intercept routine\n";

/// The channel a session runs on.
#[derive(Clone, Debug)]
pub(crate) struct Channel {
    /// The PJSIP endpoint Asterisk matched the INVITE to, e.g. `1002` (empty: none).
    pub(crate) endpoint: String,
    /// `PJSIP/1002-00000002`.
    pub(crate) name: String,
    /// `1795758224.2`.
    pub(crate) uniqueid: String,
    /// The INVITE's headers.
    pub(crate) headers: Vec<(String, String)>,
}

impl Channel {
    /// A header of the INVITE, its name compared ignoring case.
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `PJSIP/1002-00000002` is `PJSIP`.
    fn tech(&self) -> &str {
        self.name.split('/').next().unwrap_or_default()
    }

    fn is_pjsip(&self) -> bool {
        self.tech().eq_ignore_ascii_case("PJSIP")
    }

    /// The caller ID number: the user of the phone's `From` URI, else the endpoint.
    fn caller_number(&self) -> String {
        self.header("From")
            .and_then(|from| from.split_once("sip:"))
            .map(|(_, uri)| uri.split(['@', ';', '>']).next().unwrap_or_default())
            .map_or_else(|| self.endpoint.clone(), str::to_owned)
    }

    /// The caller ID name: the quoted display name of the phone's `From`, else
    /// `Agent <endpoint>`.
    fn caller_name(&self) -> String {
        self.header("From")
            .and_then(|from| from.trim_start().strip_prefix('"'))
            .and_then(|rest| rest.split_once('"'))
            .map_or_else(
                || format!("Agent {}", self.endpoint),
                |(name, _)| name.to_owned(),
            )
    }
}

/// The environment block for `channel`, requested as `agi://<address>/<script>`.
pub(crate) fn environment(channel: &Channel, address: &str, script: &str, thread: u64) -> Vec<u8> {
    let recorded = std::str::from_utf8(RECORDED_ENV).unwrap_or_default();
    let block = recorded.split("\n\n").next().unwrap_or_default();
    let mut out = String::new();
    for line in block.lines() {
        let (name, value) = line
            .split_once(": ")
            .unwrap_or((line.trim_end_matches(':'), ""));
        let value = match name {
            "agi_network_script" => script.to_owned(),
            "agi_request" => format!("agi://{address}/{script}"),
            "agi_channel" => channel.name.clone(),
            "agi_uniqueid" => channel.uniqueid.clone(),
            "agi_type" => channel.tech().to_owned(),
            "agi_callerid" => channel.caller_number(),
            "agi_calleridname" => channel.caller_name(),
            "agi_threadid" => thread.to_string(),
            _ => value.to_owned(),
        };
        out.push_str(&format!("{name}: {value}\n"));
    }
    out.push('\n');
    out.into_bytes()
}

/// Splits a command line as Asterisk's `parse_args` does: blanks separate arguments,
/// double quotes group, a backslash escapes the next character.
pub(crate) fn parse_args(line: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut started = false;
    let mut quoted = false;
    let mut escaped = false;
    for c in line.chars() {
        if escaped {
            current.push(c);
            escaped = false;
            started = true;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '"' => {
                quoted = !quoted;
                started = true;
            }
            ' ' | '\t' if !quoted => {
                if started {
                    args.push(std::mem::take(&mut current));
                    started = false;
                }
            }
            c => {
                current.push(c);
                started = true;
            }
        }
    }
    if started {
        args.push(current);
    }
    args
}

/// One session's state: the channel, its variables, whether it is dead.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) channel: Channel,
    pub(crate) variables: HashMap<String, String>,
    /// The caller hung up (or the service sent `HANGUP`).
    pub(crate) dead: bool,
    /// The service sent `HANGUP`.
    pub(crate) hung_up_by_service: bool,
}

/// The answer to one command, and what AMI's `AGIExecEnd` says about it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) bytes: String,
    pub(crate) code: u16,
    /// `Result` of `AGIExecEnd`.
    pub(crate) result: &'static str,
    /// A variable the command set.
    pub(crate) set: Option<(String, String)>,
}

impl Session {
    pub(crate) fn new(channel: Channel) -> Self {
        Self {
            channel,
            variables: HashMap::new(),
            dead: false,
            hung_up_by_service: false,
        }
    }

    /// The value of a variable or function, `None` when unset.
    pub(crate) fn resolve(&self, name: &str) -> Option<String> {
        if let Some(header) = name
            .strip_prefix("PJSIP_HEADER(read,")
            .and_then(|r| r.strip_suffix(')'))
        {
            // Asterisk: "This function requires a PJSIP channel." (an ERROR), unset.
            return self
                .channel
                .header(header)
                .filter(|_| self.channel.is_pjsip())
                .map(str::to_owned);
        }
        match name {
            "CALLERID(num)" => Some(self.channel.caller_number()),
            "CALLERID(name)" => Some(self.channel.caller_name()),
            "CHANNEL(name)" => Some(self.channel.name.clone()),
            // Asterisk: "Unknown or unavailable item requested: 'endpoint'" (a WARNING), unset.
            "CHANNEL(endpoint)" => Some(self.channel.endpoint.clone())
                .filter(|e| !e.is_empty() && self.channel.is_pjsip()),
            "UNIQUEID" => Some(self.channel.uniqueid.clone()),
            _ => self.variables.get(name).cloned(),
        }
    }

    /// `${…}` substituted (unset is empty), one level, as `GET FULL VARIABLE` does.
    fn substitute(&self, expr: &str) -> String {
        let mut out = String::new();
        let mut rest = expr;
        while let Some(at) = rest.find("${") {
            out.push_str(&rest[..at]);
            let tail = &rest[at + 2..];
            // Find the matching brace (functions nest parentheses, not braces).
            let Some(end) = tail.find('}') else {
                out.push_str(&rest[at..]);
                return out;
            };
            out.push_str(&self.resolve(&tail[..end]).unwrap_or_default());
            rest = &tail[end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// Answers one command line (without its `\n`).
    pub(crate) fn answer(&mut self, line: &str) -> Answer {
        let args = parse_args(line);
        let words: Vec<String> = args.iter().map(|a| a.to_ascii_uppercase()).collect();
        let is = |verb: &[&str]| {
            words.len() >= verb.len() && words.iter().zip(verb).all(|(w, v)| w == v)
        };
        let ok = |bytes: String| Answer {
            bytes,
            code: 200,
            result: "Success",
            set: None,
        };
        let usage = |text: &str| Answer {
            bytes: if text.is_empty() {
                "520 Invalid command syntax.  Proper usage not available.\n".into()
            } else {
                format!(
                    "520-Invalid command syntax.  Proper usage follows:\n{text}\n520 End of proper usage.\n"
                )
            },
            code: 520,
            result: "Usage",
            set: None,
        };
        let dead = Answer {
            bytes: DEAD_CHANNEL.into(),
            code: 511,
            result: "Command Not Permitted on a dead channel or intercept routine",
            set: None,
        };
        if is(&["GET", "FULL", "VARIABLE"]) {
            return match args.len() {
                4 | 5 => ok(format!("200 result=1 ({})\n", self.substitute(&args[3]))),
                _ => usage(""),
            };
        }
        if is(&["GET", "VARIABLE"]) {
            return match (args.len(), args.get(2).and_then(|n| self.resolve(n))) {
                (3, Some(v)) => ok(format!("200 result=1 ({v})\n")),
                (3, None) => ok("200 result=0\n".into()),
                _ => usage(GET_VARIABLE_USAGE),
            };
        }
        if is(&["SET", "VARIABLE"]) {
            if args.len() != 4 {
                return usage(SET_VARIABLE_USAGE);
            }
            self.variables.insert(args[2].clone(), args[3].clone());
            return Answer {
                set: Some((args[2].clone(), args[3].clone())),
                ..ok("200 result=1\n".into())
            };
        }
        if is(&["VERBOSE"]) {
            return match args.len() {
                2 | 3 => ok("200 result=1\n".into()),
                _ => usage(""),
            };
        }
        if is(&["NOOP"]) {
            return ok("200 result=0\n".into());
        }
        if is(&["CHANNEL", "STATUS"]) {
            return if self.dead {
                dead
            } else {
                ok("200 result=4\n".into())
            };
        }
        if is(&["ANSWER"]) {
            return if self.dead {
                dead
            } else {
                ok("200 result=0\n".into())
            };
        }
        if is(&["WAIT", "FOR", "DIGIT"]) {
            return match (self.dead, args.len()) {
                (true, _) => dead,
                (false, 4) => ok("200 result=0\n".into()),
                _ => usage(""),
            };
        }
        if is(&["HANGUP"]) && args.len() <= 2 {
            self.dead = true;
            self.hung_up_by_service = true;
            return ok("200 result=1\n".into());
        }
        Answer {
            bytes: "510 Invalid or unknown command\n".into(),
            code: 510,
            result: "Invalid or unknown command",
            set: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session::new(Channel {
            endpoint: "1002".into(),
            name: "PJSIP/1002-00000002".into(),
            uniqueid: "1795758224.2".into(),
            headers: vec![("X-Teleforge-Callee".into(), "0820001234".into())],
        })
    }

    #[test]
    fn answers_the_recorded_commands_as_recorded() {
        // a_valid_dial, commands and replies, in order.
        let client = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../core/tests/fixtures/agi/a_valid_dial.agi-client"
        ));
        let server = std::str::from_utf8(RECORDED_ENV).unwrap();
        let replies = server.split_once("\n\n").unwrap().1;
        let mut s = session();
        s.channel
            .headers
            .push(("X-Teleforge-Outbound-Id".into(), "27820001234".into()));
        s.channel
            .headers
            .push(("x-teleforge-contact-ref".into(), "crm-77".into()));
        let mut answered = String::new();
        for line in client.lines() {
            answered += &s.answer(line).bytes;
        }
        assert_eq!(format!("{answered}HANGUP\n"), replies);
    }

    /// The recorded session `case` (endpoint `1002`, these INVITE headers): every command
    /// answered as the real Asterisk answered it.
    fn answers_as_recorded(case: &str, channel: Channel) {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../core/tests/fixtures/agi");
        let client = std::fs::read_to_string(format!("{dir}/{case}.agi-client")).unwrap();
        let server = std::fs::read_to_string(format!("{dir}/{case}.agi")).unwrap();
        let (env, replies) = server.split_once("\n\n").unwrap();
        let ours =
            String::from_utf8(environment(&channel, "127.0.0.1:27145", "click2dial", 1)).unwrap();
        for name in ["agi_type", "agi_callerid", "agi_calleridname"] {
            let line = |text: &str| {
                text.lines()
                    .find(|l| l.starts_with(&format!("{name}:")))
                    .map(str::to_owned)
            };
            assert_eq!(line(&ours), line(env), "{case}: {name}");
        }
        let mut s = Session::new(channel);
        let mut answered = String::new();
        for line in client.lines() {
            answered += &s.answer(line).bytes;
        }
        assert_eq!(format!("{answered}HANGUP\n"), replies, "{case}");
    }

    fn softphone(endpoint: &str, headers: &[(&str, &str)]) -> Channel {
        Channel {
            endpoint: endpoint.into(),
            name: format!("PJSIP/{endpoint}-00000000"),
            uniqueid: "1796282963.1".into(),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn the_endpoint_is_the_authenticated_one_not_the_from() {
        let headers = |contact, agent| {
            [
                ("X-Teleforge-Callee", "0820001234"),
                ("X-Teleforge-Outbound-Id", "27820001234"),
                ("X-Teleforge-Contact-Ref", contact),
                ("X-Teleforge-Agent", agent),
            ]
        };
        answers_as_recorded(
            "h_endpoint_dial",
            softphone("1002", &headers("crm-88", "1002")),
        );
        answers_as_recorded(
            "i_agent_header_mismatch",
            softphone("1002", &headers("crm-89", "1003")),
        );
        // j: the phone wrote 1003 in its From: caller ID says 1003, the endpoint 1002.
        let mut spoofed = headers("crm-90", "1003").to_vec();
        spoofed.push((
            "From",
            "\"Agent 1003\" <sip:1003@127.0.0.1:27173>;tag=1SIPpTag001",
        ));
        let channel = softphone("1002", &spoofed);
        answers_as_recorded("j_spoofed_from_and_agent", channel.clone());
        let mut s = Session::new(channel);
        assert_eq!(
            s.answer("GET VARIABLE CALLERID(num)").bytes,
            "200 result=1 (1003)\n"
        );
        assert_eq!(
            s.answer("GET VARIABLE CHANNEL(endpoint)").bytes,
            "200 result=1 (1002)\n"
        );
        // k: a Local channel has no endpoint and no PJSIP headers.
        let mut local = softphone("", &headers("crm-91", "1002"));
        local.name = "Local/c2d@c2d-agent-webrtc-00000001;2".into();
        let mut s = Session::new(local);
        assert_eq!(
            s.answer("GET VARIABLE CHANNEL(endpoint)").bytes,
            "200 result=0\n"
        );
        assert_eq!(
            s.answer(r#"GET VARIABLE "PJSIP_HEADER(read,X-Teleforge-Callee)""#)
                .bytes,
            "200 result=0\n"
        );
        let mut s = Session::new(softphone("", &[]));
        assert_eq!(
            s.answer("GET VARIABLE CHANNEL(endpoint)").bytes,
            "200 result=0\n"
        );
    }

    #[test]
    fn environment_has_the_recorded_shape() {
        let env = environment(&session().channel, "127.0.0.1:4573", "click2dial", 7);
        let text = String::from_utf8(env).unwrap();
        assert_eq!(text.lines().count(), 23);
        assert!(text.ends_with("agi_threadid: 7\n\n"));
        assert!(text.contains("agi_accountcode: \n"));
        assert!(text.starts_with("agi_network: yes\nagi_network_script: click2dial\nagi_request: agi://127.0.0.1:4573/click2dial\nagi_channel: PJSIP/1002-00000002\n"));
    }

    #[test]
    fn dead_channel_and_args() {
        let mut s = session();
        s.dead = true;
        assert_eq!(s.answer("CHANNEL STATUS").bytes, DEAD_CHANNEL);
        assert_eq!(
            s.answer("GET VARIABLE CALLERID(num)").bytes,
            "200 result=1 (1002)\n"
        );
        assert_eq!(
            parse_args(r#"SET VARIABLE X "a \"b\" c""#),
            ["SET", "VARIABLE", "X", "a \"b\" c"]
        );
        assert_eq!(
            parse_args(r#"SET VARIABLE X """#),
            ["SET", "VARIABLE", "X", ""]
        );
        assert_eq!(s.answer("get variable UNSET").bytes, "200 result=0\n");
    }
}
