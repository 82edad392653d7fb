//! Agent extensions: a range as `[[auth.keys]] agents` and `[[pbx]] agents` write it
//! ([`AgentRange`]), and the set a PBX serves ([`Agents`]).

/// An inclusive range of agent extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentRange {
    /// First extension.
    pub first: u16,
    /// Last extension.
    pub last: u16,
    /// How many digits the range's extensions are written with when the range is written
    /// with a leading zero (`"0100-0199"`: 4); `None`: extensions have no leading zero.
    pub zero_padded: Option<u8>,
}

impl AgentRange {
    /// Parses `"1000-1999"` (3–4 digit extensions, first ≤ last). A range written with a
    /// leading zero (`"0100-0199"`) has both ends of the same length.
    pub fn parse(text: &str) -> Option<Self> {
        let (a, b) = text.split_once('-')?;
        let (a, b) = (a.trim(), b.trim());
        let ext = |s: &str| {
            ((3..=4).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u16>().ok())
                .flatten()
        };
        let (first, last) = (ext(a)?, ext(b)?);
        let zero_padded = if a.starts_with('0') || b.starts_with('0') {
            if a.len() != b.len() {
                return None;
            }
            u8::try_from(a.len()).ok()
        } else {
            None
        };
        (first <= last).then_some(Self {
            first,
            last,
            zero_padded,
        })
    }

    /// Whether `agent` (as sent in a request) is an extension in the range. Extensions are
    /// dialled as written, so `0150` is not `150`: a leading zero is in a range only when
    /// the range is written with one, at the same length (`"0100-0199"`), and never
    /// otherwise (`"100-199"` refuses `0150`).
    pub fn contains(&self, agent: &str) -> bool {
        let written_as_range = match self.zero_padded {
            Some(len) => agent.len() == usize::from(len),
            None => !agent.starts_with('0'),
        };
        written_as_range
            && (3..=4).contains(&agent.len())
            && agent.bytes().all(|b| b.is_ascii_digit())
            && agent
                .parse::<u16>()
                .is_ok_and(|n| (self.first..=self.last).contains(&n))
    }
}

/// Agents one PBX serves, as written: ranges and single extensions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Agents {
    ranges: Vec<AgentRange>,
    single: Vec<String>,
}

impl Agents {
    /// Parses `agents` (`"<first>-<last>"` or an extension); the entry that cannot be read,
    /// otherwise.
    pub fn parse(agents: &[String]) -> Result<Self, &str> {
        let mut parsed = Self::default();
        for agent in agents {
            if agent.contains('-') {
                parsed
                    .ranges
                    .push(AgentRange::parse(agent).ok_or(agent.as_str())?);
            } else if !agent.is_empty()
                && agent.len() <= 32
                && agent.bytes().all(|b| b.is_ascii_digit())
            {
                parsed.single.push(agent.clone());
            } else {
                return Err(agent);
            }
        }
        Ok(parsed)
    }

    /// Whether `agent`, as a request sends it, is one of these (extensions are dialled as
    /// written: `0150` is not `150`, see [`AgentRange::contains`]).
    pub fn contains(&self, agent: &str) -> bool {
        self.single.iter().any(|a| a == agent) || self.ranges.iter().any(|r| r.contains(agent))
    }

    /// An extension both serve, if any: each of this set's extensions, in every way a range
    /// may write it, is tried against `other`.
    pub fn shared_with(&self, other: &Self) -> Option<String> {
        let written = self.ranges.iter().flat_map(|r| {
            (r.first..=r.last).flat_map(|n| [format!("{n}"), format!("{n:03}"), format!("{n:04}")])
        });
        self.single
            .iter()
            .cloned()
            .chain(written)
            .find(|agent| self.contains(agent) && other.contains(agent))
    }
}

#[cfg(test)]
mod tests {
    use super::Agents;

    #[test]
    fn agents_are_ranges_or_extensions_as_written() {
        let agents =
            Agents::parse(&["1000-1099".into(), "2500".into(), "0100-0199".into()]).expect("valid");
        for (agent, served) in [
            ("1000", true),
            ("1099", true),
            ("1100", false),
            ("2500", true),
            ("02500", false),
            ("0150", true),
            ("150", false),
        ] {
            assert_eq!(agents.contains(agent), served, "{agent}");
        }
        assert_eq!(Agents::parse(&["10-x".into()]), Err("10-x"));
        assert_eq!(Agents::parse(&["1000-999".into()]), Err("1000-999"));
        assert_eq!(Agents::parse(&["12a".into()]), Err("12a"));
    }

    #[test]
    fn two_sets_share_an_extension_only_as_written() {
        let set = |list: &[&str]| {
            Agents::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("valid")
        };
        assert_eq!(
            set(&["1000-1999"])
                .shared_with(&set(&["1500-2500"]))
                .as_deref(),
            Some("1500")
        );
        assert_eq!(
            set(&["1000-1999"]).shared_with(&set(&["1999"])).as_deref(),
            Some("1999")
        );
        assert_eq!(
            set(&["2500"]).shared_with(&set(&["2000-2999"])).as_deref(),
            Some("2500")
        );
        assert_eq!(set(&["0100-0199"]).shared_with(&set(&["100-199"])), None);
        assert_eq!(
            set(&["0100-1999"])
                .shared_with(&set(&["1000-1000"]))
                .as_deref(),
            Some("1000")
        );
        assert_eq!(set(&["1000-1999"]).shared_with(&set(&["2000-2999"])), None);
    }
}
