//! Which outcome a simulated call has, chosen from the Originate's `Channel` and `Exten`.

use std::fmt;
use std::str::FromStr;

/// How a simulated call ends; each replays one recorded transcript case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Both answer, are bridged, the agent hangs up (`a_success`).
    Answered,
    /// The agent's phone rings until the Originate `Timeout` (`b_agent_noanswer`).
    AgentNoAnswer,
    /// The agent's phone answers 486 (`c_agent_busy`).
    AgentBusy,
    /// The agent's endpoint does not exist or is unreachable: `OriginateResponse` with
    /// `Reason: 0` and no channel events (`f_originate_errors`, unknown endpoint).
    AgentUnavailable,
    /// The callee answers 486 (`d_callee_busy`).
    CalleeBusy,
    /// The callee's number does not exist, 404 (`d2_callee_notfound`).
    CalleeNotFound,
    /// The callee declines, 603 (`d3_callee_decline`).
    CalleeDeclines,
    /// The callee rings until the dialplan's 30 s `Dial` timeout (`d4_callee_noanswer`).
    CalleeNoAnswer,
    /// The agent hangs up while the callee rings (`d5_agent_hangs_up_while_callee_rings`).
    AgentHangsUp,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Self; 9] = [
        Self::Answered,
        Self::AgentNoAnswer,
        Self::AgentBusy,
        Self::AgentUnavailable,
        Self::CalleeBusy,
        Self::CalleeNotFound,
        Self::CalleeDeclines,
        Self::CalleeNoAnswer,
        Self::AgentHangsUp,
    ];

    /// The name used on the command line, e.g. `agent-busy`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Answered => "answered",
            Self::AgentNoAnswer => "agent-no-answer",
            Self::AgentBusy => "agent-busy",
            Self::AgentUnavailable => "agent-unavailable",
            Self::CalleeBusy => "callee-busy",
            Self::CalleeNotFound => "callee-not-found",
            Self::CalleeDeclines => "callee-declines",
            Self::CalleeNoAnswer => "callee-no-answer",
            Self::AgentHangsUp => "agent-hangs-up",
        }
    }

    /// Whether the agent never answers, so the callee is never dialled.
    pub const fn is_agent_side(self) -> bool {
        matches!(
            self,
            Self::AgentNoAnswer | Self::AgentBusy | Self::AgentUnavailable
        )
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An outcome name that is not one of [`Outcome::name`], or a malformed override.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError(String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

impl FromStr for Outcome {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::ALL
            .into_iter()
            .find(|o| o.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|o| o.name()).collect();
                ParseError(format!(
                    "unknown outcome `{s}` (one of: {})",
                    names.join(", ")
                ))
            })
    }
}

/// Which value of the Originate an [`Override`] matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Party {
    /// The agent endpoint: the resource of `Channel: PJSIP/<agent>`, without any `@host`.
    Agent,
    /// The callee: the Originate `Exten`.
    Callee,
}

/// An exact-match rule that wins over the default suffix rules, written
/// `agent:<endpoint>=<outcome>` or `callee:<number>=<outcome>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Override {
    /// What is matched.
    pub party: Party,
    /// The exact value matched.
    pub value: String,
    /// The outcome of a call that matches.
    pub outcome: Outcome,
}

impl FromStr for Override {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        let bad = || {
            ParseError(format!(
                "`{s}` is not agent:<endpoint>=<outcome> or callee:<number>=<outcome>"
            ))
        };
        let (lhs, outcome) = s.split_once('=').ok_or_else(bad)?;
        let (party, value) = lhs.split_once(':').ok_or_else(bad)?;
        let party = match party {
            "agent" => Party::Agent,
            "callee" => Party::Callee,
            _ => return Err(bad()),
        };
        if value.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            party,
            value: value.to_owned(),
            outcome: outcome.parse()?,
        })
    }
}

/// The default rules for the agent, by how the endpoint ends.
const AGENT_SUFFIXES: [(&str, Outcome); 4] = [
    ("408", Outcome::AgentNoAnswer),
    ("486", Outcome::AgentBusy),
    ("404", Outcome::AgentUnavailable),
    ("503", Outcome::AgentUnavailable),
];

/// The endpoint the recorded transcripts use for "no such endpoint".
const UNKNOWN_ENDPOINT: &str = "9999";

/// The default rules for the callee, by how the number ends.
const CALLEE_SUFFIXES: [(&str, Outcome); 5] = [
    ("486", Outcome::CalleeBusy),
    ("404", Outcome::CalleeNotFound),
    ("603", Outcome::CalleeDeclines),
    ("408", Outcome::CalleeNoAnswer),
    ("487", Outcome::AgentHangsUp),
];

/// Chooses the outcome of an Originate that rings `<tech>/<resource>` and then dials `exten`:
/// overrides first (agent, then callee), then the agent suffix rules (an agent that never
/// answers means the callee is never dialled), then the callee suffix rules, else answered.
/// Any technology other than `PJSIP` is an unavailable agent, as Asterisk answers for an
/// unknown technology (`FOO/1001` in `f_originate_errors`).
pub(crate) fn choose(overrides: &[Override], tech: &str, resource: &str, exten: &str) -> Outcome {
    let agent = agent_user(resource);
    let find = |party: Party, value: &str| {
        overrides
            .iter()
            .find(|o| o.party == party && o.value == value)
            .map(|o| o.outcome)
    };
    if let Some(outcome) = find(Party::Agent, agent).or_else(|| find(Party::Callee, exten)) {
        return outcome;
    }
    if !tech.eq_ignore_ascii_case("PJSIP") || agent == UNKNOWN_ENDPOINT {
        return Outcome::AgentUnavailable;
    }
    let by_suffix = |table: &[(&str, Outcome)], value: &str| {
        table
            .iter()
            .find(|(suffix, _)| value.ends_with(suffix))
            .map(|&(_, o)| o)
    };
    by_suffix(&AGENT_SUFFIXES, agent)
        .or_else(|| by_suffix(&CALLEE_SUFFIXES, exten))
        .unwrap_or(Outcome::Answered)
}

/// Chooses the outcome of a one-leg call to `callee` (`Local/<callee>@c2d-single`): an
/// override for that number (as agent or callee) first, then the callee suffix rules, else
/// answered. Only `answered`, `callee-busy` and `agent-unavailable` (the `Local` channel
/// fails) are recorded for one-leg calls: [`one_leg_playable`] says which are played.
pub(crate) fn choose_one_leg(overrides: &[Override], callee: &str) -> Outcome {
    let found = overrides
        .iter()
        .find(|o| o.party == Party::Agent && o.value == callee)
        .or_else(|| {
            overrides
                .iter()
                .find(|o| o.party == Party::Callee && o.value == callee)
        });
    if let Some(o) = found {
        return o.outcome;
    }
    CALLEE_SUFFIXES
        .iter()
        .find(|(suffix, _)| callee.ends_with(suffix))
        .map_or(Outcome::Answered, |&(_, o)| o)
}

/// Whether a one-leg call can play `outcome` (it was recorded on the kit).
pub(crate) const fn one_leg_playable(outcome: Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Answered | Outcome::CalleeBusy | Outcome::AgentUnavailable
    )
}

/// The user part of a PJSIP dial resource: `1001` for `1001`, `0820001234` for
/// `0820001234@carrier`.
fn agent_user(resource: &str) -> &str {
    resource.split_once('@').map_or(resource, |(user, _)| user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rules() {
        let cases = [
            ("PJSIP", "1001", "0820001234", Outcome::Answered),
            ("PJSIP", "1408", "0820001234", Outcome::AgentNoAnswer),
            ("PJSIP", "1486", "0820000486", Outcome::AgentBusy),
            ("PJSIP", "1404", "0820001234", Outcome::AgentUnavailable),
            ("PJSIP", "1503", "0820001234", Outcome::AgentUnavailable),
            ("PJSIP", "9999", "0820001234", Outcome::AgentUnavailable),
            ("FOO", "1001", "0820001234", Outcome::AgentUnavailable),
            ("pjsip", "1001", "0820000486", Outcome::CalleeBusy),
            ("PJSIP", "1001", "0820000404", Outcome::CalleeNotFound),
            ("PJSIP", "1001", "27820000603", Outcome::CalleeDeclines),
            ("PJSIP", "1001", "0820000408", Outcome::CalleeNoAnswer),
            ("PJSIP", "1001", "0820000487", Outcome::AgentHangsUp),
            ("PJSIP", "0820000486@carrier", "s", Outcome::AgentBusy),
        ];
        for (tech, agent, callee, want) in cases {
            assert_eq!(
                choose(&[], tech, agent, callee),
                want,
                "{tech}/{agent} {callee}"
            );
        }
    }

    #[test]
    fn one_leg_rules() {
        assert_eq!(choose_one_leg(&[], "0820001234"), Outcome::Answered);
        assert_eq!(choose_one_leg(&[], "0820000486"), Outcome::CalleeBusy);
        let overrides: Vec<Override> = ["callee:0820001234=callee-busy"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(
            choose_one_leg(&overrides, "0820001234"),
            Outcome::CalleeBusy
        );
        assert!(!one_leg_playable(choose_one_leg(&[], "0820000404")));
    }

    #[test]
    fn overrides_win() {
        let overrides: Vec<Override> = ["callee:0820001234=callee-busy", "agent:1001=agent-busy"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(
            choose(&overrides, "PJSIP", "1001", "0820001234"),
            Outcome::AgentBusy
        );
        assert_eq!(
            choose(&overrides, "PJSIP", "1002", "0820001234"),
            Outcome::CalleeBusy
        );
        assert_eq!(
            choose(&overrides, "PJSIP", "1002", "0820000486"),
            Outcome::CalleeBusy
        );
    }

    #[test]
    fn parse() {
        for o in Outcome::ALL {
            assert_eq!(o.name().parse::<Outcome>(), Ok(o));
        }
        assert!("nope".parse::<Outcome>().is_err());
        assert!("agent=1001".parse::<Override>().is_err());
        assert!("who:1001=answered".parse::<Override>().is_err());
        assert!("agent:=answered".parse::<Override>().is_err());
        assert!("agent:1001=maybe".parse::<Override>().is_err());
    }
}
