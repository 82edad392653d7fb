//! A manager user's event filters, as Asterisk 21+ applies them to the user's sessions
//! (`eventfilter(<criteria>) = [<value>]` lines of its `manager.conf` section): with include
//! filters only, an event passes when one of them matches; with exclude filters only, when
//! none does; with both, when an include matches and no exclude does; with none, always.
//!
//! The simulator reads them from the click2dial kit's `manager.conf` as shipped
//! (`--eventfilters-from`), so the host under test gets what an Asterisk with the kit sends.
//! It knows the criteria the kit uses — `action`, `name`, `header` and the methods `exact`,
//! `starts_with`, `ends_with`, `contains` and `none` — and refuses the rest (`regex`, the
//! legacy `eventfilter = <regex>` form) rather than play a filter it does not apply.

use click2dial_core::ami::{Decoder, Frame, Message};

/// How a filter's value is compared with the header's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    None,
    Exact,
    StartsWith,
    EndsWith,
    Contains,
}

/// One `eventfilter(...)` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventFilter {
    include: bool,
    name: Option<String>,
    header: Option<String>,
    method: Method,
    value: String,
}

impl EventFilter {
    /// Whether `message` meets the filter's criteria.
    fn matches(&self, message: &Message<'_>) -> bool {
        if let Some(name) = &self.name {
            if message.event() != Some(name.as_str()) {
                return false;
            }
        }
        let Some(header) = &self.header else {
            return true;
        };
        let Some(value) = message.get(header) else {
            return false;
        };
        match self.method {
            Method::None => true,
            Method::Exact => value == self.value,
            Method::StartsWith => value.starts_with(&self.value),
            Method::EndsWith => value.ends_with(&self.value),
            Method::Contains => value.contains(&self.value),
        }
    }
}

/// Whether an event passes `filters`.
pub fn passes(filters: &[EventFilter], message: &Message<'_>) -> bool {
    let (mut includes, mut included, mut excluded) = (false, false, false);
    for filter in filters {
        if filter.include {
            includes = true;
            included = included || filter.matches(message);
        } else {
            excluded = excluded || filter.matches(message);
        }
    }
    (included || !includes) && !excluded
}

/// Whether the rendered event `frame` passes `filters` (a frame that is not a message
/// passes: filters look at events only).
pub fn passes_frame(filters: &[EventFilter], frame: &[u8]) -> bool {
    if filters.is_empty() {
        return true;
    }
    match Decoder::without_banner().decode(frame) {
        Ok(Some(decoded)) => match decoded.frame {
            Frame::Message(message) => passes(filters, &message),
            Frame::Banner(_) => true,
        },
        _ => true,
    }
}

/// The event filters of `user`'s section of the `manager.conf` text `conf`.
pub fn read(conf: &str, user: &str) -> Result<Vec<EventFilter>, String> {
    let mut section = None;
    let mut filters = Vec::new();
    for line in conf.lines() {
        let line = line.split(';').next().unwrap_or_default().trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.trim().to_string());
            continue;
        }
        if section.as_deref() != Some(user) {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key == "eventfilter" {
            return Err(format!(
                "`{line}`: legacy (regex) event filters are not simulated"
            ));
        }
        if let Some(criteria) = key
            .strip_prefix("eventfilter(")
            .and_then(|k| k.strip_suffix(')'))
        {
            filters.push(parse(criteria, value.trim()).map_err(|e| format!("`{line}`: {e}"))?);
        }
    }
    Ok(filters)
}

/// `action(…),name(…),header(…),method(…)` and the value after `=`.
fn parse(criteria: &str, value: &str) -> Result<EventFilter, String> {
    let mut filter = EventFilter {
        include: true,
        name: None,
        header: None,
        method: Method::None,
        value: value.to_string(),
    };
    for criterion in criteria.split("),").map(|c| c.trim_end_matches(')')) {
        let (what, arg) = criterion
            .split_once('(')
            .ok_or_else(|| format!("unreadable criterion {criterion:?}"))?;
        match (what.trim(), arg.trim()) {
            ("action", "include") => filter.include = true,
            ("action", "exclude") => filter.include = false,
            ("name", name) => filter.name = Some(name.to_string()),
            ("header", header) => filter.header = Some(header.to_string()),
            ("method", "none") => filter.method = Method::None,
            ("method", "exact") => filter.method = Method::Exact,
            ("method", "starts_with") => filter.method = Method::StartsWith,
            ("method", "ends_with") => filter.method = Method::EndsWith,
            ("method", "contains") => filter.method = Method::Contains,
            (what, arg) => return Err(format!("{what}({arg}) is not simulated")),
        }
    }
    if filter.header.is_none() && !filter.value.is_empty() {
        return Err(
            "a value without header() (a match on the whole event) is not simulated".into(),
        );
    }
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passes_frame(filters: &[EventFilter], frame: &str) -> bool {
        super::passes_frame(filters, frame.as_bytes())
    }

    #[test]
    fn the_kits_filters_pass_the_hosts_events_only() {
        let conf = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../host/asterisk/manager.conf"),
        )
        .expect("the kit");
        let filters = read(&conf, "c2d").expect("the kit's filters");
        assert!(filters.len() > 5, "{filters:?}");
        assert!(read(&conf, "someone-else").expect("no section").is_empty());
        for event in ["Newchannel", "Hangup", "OriginateResponse", "FullyBooted"] {
            assert!(passes_frame(
                &filters,
                &format!("Event: {event}\r\nUniqueid: x\r\n\r\n")
            ));
        }
        for event in ["Newexten", "NewConnectedLine", "RTCPSent", "BridgeLeave"] {
            assert!(!passes_frame(
                &filters,
                &format!("Event: {event}\r\nUniqueid: x\r\n\r\n")
            ));
        }
        let varset = |variable: &str| {
            format!("Event: VarSet\r\nVariable: {variable}\r\nValue: dial\r\n\r\n")
        };
        assert!(passes_frame(&filters, &varset("C2D_DECISION")));
        assert!(!passes_frame(&filters, &varset("C2D_DECISION2")));
        assert!(!passes_frame(&filters, &varset("MIXMONITOR_FILENAME")));
    }

    #[test]
    fn excludes_and_includes_combine_as_asterisk_documents() {
        let conf = "[u]\n\
            eventfilter(action(exclude),name(VarSet),header(Variable),method(starts_with)) = SIP\n";
        let only_excludes = read(conf, "u").expect("reads");
        assert!(passes_frame(&only_excludes, "Event: Newexten\r\n\r\n"));
        assert!(!passes_frame(
            &only_excludes,
            "Event: VarSet\r\nVariable: SIPCALLID\r\n\r\n"
        ));
        let both = read(
            &format!("{conf}eventfilter(action(include),name(VarSet)) =\n"),
            "u",
        )
        .expect("reads");
        assert!(!passes_frame(&both, "Event: Newexten\r\n\r\n"));
        assert!(passes_frame(&both, "Event: VarSet\r\nVariable: X\r\n\r\n"));
        assert!(!passes_frame(
            &both,
            "Event: VarSet\r\nVariable: SIPX\r\n\r\n"
        ));
        assert!(read("[u]\neventfilter = Event: Hangup\n", "u").is_err());
        assert!(read("[u]\neventfilter(method(regex),header(A)) = x.*\n", "u").is_err());
    }
}
