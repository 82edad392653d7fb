//! What the simulated PBX answers to `ListCommands` and `ShowDialPlan`, in the shapes the
//! real Asterisk 22 gives (`core/tests/fixtures/ami/preflight/`): by default a PBX with the
//! click2dial kit loaded; contexts can be removed and actions denied to play a
//! misconfigured one.

/// The `ListCommands` answer Asterisk 22.10.1 gave the kit's manager user
/// (`write = system,call,originate,reporting,dialplan`), recorded.
const RECORDED: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../core/tests/fixtures/ami/preflight/full.server.ami"
));

/// One priority of an extension: application and its data.
type Priority = (&'static str, &'static str);

/// A context: its extensions (sorted by name, as Asterisk lists them) and includes.
pub(crate) struct Context {
    pub(crate) name: &'static str,
    extensions: &'static [(&'static str, &'static [Priority])],
    includes: &'static [&'static str],
}

/// The kit as loaded: the contexts the host checks, `[c2d-tvc]` with two campaigns.
pub(crate) const KIT: &[Context] = &[
    Context {
        name: "c2d-outbound",
        extensions: &[(
            "_X.",
            &[
                ("Gosub", "c2d-callerid,s,1"),
                ("Dial", "Local/${EXTEN}@c2d-dial"),
                ("Hangup", ""),
            ],
        )],
        includes: &[],
    },
    Context {
        name: "c2d-dial",
        extensions: &[("_X.", &[("Dial", "PJSIP/${EXTEN}@carrier"), ("Hangup", "")])],
        includes: &[],
    },
    Context {
        name: "c2d-callerid",
        extensions: &[(
            "s",
            &[("Gosub", "c2d-tvc,${C2D_OUTBOUND_ID:4},1"), ("Return", "")],
        )],
        includes: &[],
    },
    Context {
        name: "c2d-single",
        extensions: &[(
            "_X.",
            &[
                ("Gosub", "c2d-callerid,s,1"),
                ("Dial", "Local/${EXTEN}@c2d-dial"),
            ],
        )],
        includes: &[],
    },
    Context {
        name: "c2d-direct",
        extensions: &[("_X.", &[("Answer", ""), ("Hangup", "")])],
        includes: &[],
    },
    Context {
        name: "c2d-agent-webrtc",
        extensions: &[(
            "c2d",
            &[("AGI", "agi://127.0.0.1:4573/click2dial"), ("Hangup", "")],
        )],
        includes: &[],
    },
    Context {
        name: "c2d-tvc",
        extensions: &[
            ("renewals", &[("Return", "27820005678")]),
            ("spring", &[("Return", "27820001234")]),
        ],
        includes: &[],
    },
];

/// The simulated dialplan and manager user.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pbx<'a> {
    /// Contexts removed from the kit.
    pub(crate) missing_contexts: &'a [String],
    /// Actions the manager user may not run.
    pub(crate) denied_actions: &'a [String],
}

fn line(out: &mut String, key: &str, value: &str) {
    out.push_str(key);
    out.push_str(": ");
    out.push_str(value);
    out.push_str("\r\n");
}

fn action_id(out: &mut String, id: Option<&str>) {
    if let Some(id) = id {
        line(out, "ActionID", id);
    }
}

impl Pbx<'_> {
    /// Whether the user may run `action` (`Permission denied` otherwise).
    pub(crate) fn allows(&self, action: &str) -> bool {
        !self
            .denied_actions
            .iter()
            .any(|a| a.eq_ignore_ascii_case(action))
    }

    /// Whether `context` is loaded.
    pub(crate) fn has_context(&self, context: &str) -> bool {
        !self.missing_contexts.iter().any(|c| c == context)
    }

    /// The `ListCommands` answer: the recorded one, without the denied actions.
    pub(crate) fn list_commands(&self, id: Option<&str>) -> Vec<u8> {
        let mut out = String::from("Response: Success\r\n");
        action_id(&mut out, id);
        for command in recorded_commands() {
            let name = command.split_once(':').map_or("", |(n, _)| n);
            if self.allows(name) {
                out.push_str(command);
                out.push_str("\r\n");
            }
        }
        out.push_str("\r\n");
        out.into_bytes()
    }

    /// The `ShowDialPlan` answer for `context` (required, as the host sends it) and
    /// optionally one extension: the list, or Asterisk's error.
    pub(crate) fn show_dialplan(
        &self,
        id: Option<&str>,
        context: &str,
        extension: Option<&str>,
    ) -> Vec<u8> {
        let found = KIT
            .iter()
            .find(|c| c.name == context && self.has_context(c.name));
        let Some(found) = found else {
            return error(id, &format!("Did not find context {context}"));
        };
        let extensions: Vec<_> = found
            .extensions
            .iter()
            .filter(|(name, _)| extension.is_none_or(|e| e == *name))
            .collect();
        if let (Some(e), true) = (extension, extensions.is_empty()) {
            return error(id, &format!("Did not find extension {e}@{context}"));
        }
        let mut out = String::from("Response: Success\r\n");
        action_id(&mut out, id);
        out.push_str("EventList: start\r\nMessage: DialPlan list will follow\r\n\r\n");
        let mut priorities = 0;
        for (name, steps) in &extensions {
            for (n, (application, data)) in steps.iter().enumerate() {
                out.push_str("Event: ListDialplan\r\n");
                action_id(&mut out, id);
                line(&mut out, "Context", context);
                line(&mut out, "Extension", name);
                line(&mut out, "Priority", &(n + 1).to_string());
                line(&mut out, "Application", application);
                line(&mut out, "AppData", data);
                line(&mut out, "Registrar", "pbx_config");
                out.push_str("\r\n");
                priorities += 1;
            }
        }
        let includes = if extension.is_none() {
            found.includes
        } else {
            &[]
        };
        for include in includes {
            out.push_str("Event: ListDialplan\r\n");
            action_id(&mut out, id);
            line(&mut out, "Context", context);
            line(&mut out, "IncludeContext", include);
            line(&mut out, "Registrar", "pbx_config");
            out.push_str("\r\n");
        }
        out.push_str("Event: ShowDialPlanComplete\r\n");
        action_id(&mut out, id);
        line(&mut out, "EventList", "Complete");
        line(
            &mut out,
            "ListItems",
            &(priorities + includes.len()).to_string(),
        );
        line(&mut out, "ListExtensions", &extensions.len().to_string());
        line(&mut out, "ListPriorities", &priorities.to_string());
        line(&mut out, "ListContexts", "1");
        out.push_str("\r\n");
        out.into_bytes()
    }
}

fn error(id: Option<&str>, message: &str) -> Vec<u8> {
    super::session::response("Error", id, message)
}

/// The command lines of the recorded `ListCommands` answer (`Name: description  (Priv: …)`).
fn recorded_commands() -> impl Iterator<Item = &'static str> {
    let text = std::str::from_utf8(RECORDED).unwrap_or_default();
    let start = text
        .find("ActionID: c2d-pf-0-lc\r\n")
        .map_or(text.len(), |i| i + "ActionID: c2d-pf-0-lc\r\n".len());
    let rest = text.get(start..).unwrap_or_default();
    let end = rest.find("\r\n\r\n").unwrap_or(0);
    rest.get(..end).unwrap_or_default().split("\r\n")
}
