//! The preflight against what a real Asterisk 22 answered (`fixtures/ami/preflight/`): each
//! recorded case is replayed line by line on a virtual clock; the machine must send exactly
//! the recorded client bytes and find exactly the problems the answers show.

use std::fs;
use std::path::Path;

use click2dial_core::ami::{
    Checks, ContextCheck, Decoder, Frame, Outcome, Preflight, ProblemCode, MAX_MESSAGE_LEN,
};

fn read(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ami/preflight")
        .join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const fn context(context: &'static str) -> ContextCheck<'static> {
    ContextCheck {
        context,
        extension: None,
        campaigns: false,
    }
}

/// The contexts of the `full` case, in the order it asked for them.
const FULL: [ContextCheck<'static>; 7] = [
    context("c2d-outbound"),
    ContextCheck {
        context: "c2d-tvc",
        extension: None,
        campaigns: true,
    },
    context("c2d-missing"),
    ContextCheck {
        context: "c2d-agent-webrtc",
        extension: Some("c2d"),
        campaigns: false,
    },
    ContextCheck {
        context: "c2d-agent-webrtc",
        extension: Some("nope"),
        campaigns: false,
    },
    ContextCheck {
        context: "c2d-missing",
        extension: Some("c2d"),
        campaigns: false,
    },
    context("empty-ctx"),
];

fn checks<'a>(username: &'a str, secret: &'a str, contexts: &'a [ContextCheck<'a>]) -> Checks<'a> {
    Checks {
        username,
        secret,
        contexts,
        booted_within_ms: 5_000,
        answer_within_ms: 5_000,
        lists_channels: true,
    }
}

type Machine<'a> = Preflight<'a, 16>;

/// Feeds `server` line by line at time 0 and collects what the machine sends meanwhile.
fn replay(preflight: &mut Machine<'_>, server: &[u8]) -> Vec<u8> {
    let mut sent = Vec::new();
    let mut out = [0u8; 1024];
    let mut transmit = |preflight: &mut Machine<'_>, sent: &mut Vec<u8>| {
        while let Some(n) = preflight.poll_transmit(&mut out).expect("fits") {
            sent.extend_from_slice(&out[..n]);
        }
    };
    transmit(preflight, &mut sent);
    let mut rest = server;
    while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
        preflight.handle_line(0, &rest[..end]);
        rest = &rest[end + 2..];
        transmit(preflight, &mut sent);
        if preflight.outcome().is_some() {
            break;
        }
    }
    sent
}

fn codes(preflight: &Machine<'_>) -> Vec<(&'static str, String)> {
    preflight
        .problems()
        .map(|p| (p.code.as_str(), p.subject().to_owned()))
        .collect()
}

/// The recorded client bytes up to the first action the machine does not send.
fn client_until(name: &str, stop: &str) -> Vec<u8> {
    let client = read(name);
    let end = client
        .windows(stop.len())
        .position(|w| w == stop.as_bytes())
        .unwrap_or(client.len());
    client[..end].to_vec()
}

#[test]
fn full_pbx_missing_context_and_extension_and_the_campaigns() {
    let mut preflight = Machine::login(checks("c2d", "secret", &FULL), 0);
    let sent = replay(&mut preflight, &read("full.server.ami"));
    assert_eq!(
        String::from_utf8_lossy(&sent),
        String::from_utf8_lossy(&client_until("full.client.ami", "Action: Originate"))
    );
    assert_eq!(
        preflight.outcome(),
        Some(Outcome::Failed {
            session_usable: true
        })
    );
    assert_eq!(
        codes(&preflight),
        [
            ("dialplan_context_missing", "c2d-missing".to_owned()),
            (
                "dialplan_extension_missing",
                "nope@c2d-agent-webrtc".to_owned()
            ),
        ]
    );
    let campaigns: Vec<&str> = preflight.campaigns().iter().collect();
    assert_eq!(campaigns, ["renewals", "spring"]);
    assert!(preflight.campaigns().contains("spring"));
    assert!(!preflight.campaigns().contains("Spring"));
    assert!(!preflight.campaigns().overflowed());
    assert_eq!(preflight.poll_timeout(), None);
}

#[test]
fn the_kit_contexts_pass() {
    let server = read("full.server.ami");
    let mut preflight = Machine::login(checks("c2d", "secret", &FULL[..2]), 0);
    replay(&mut preflight, &server);
    assert_eq!(preflight.outcome(), Some(Outcome::Passed));
    assert_eq!(preflight.campaigns().len(), 2);
}

#[test]
fn restricted_write_names_the_missing_privilege() {
    let mut preflight = Machine::login(checks("limited", "secret", &FULL), 0);
    let sent = replay(&mut preflight, &read("limited.server.ami"));
    // Without ShowDialPlan the dialplan is not asked for.
    assert_eq!(
        sent,
        client_until("limited.client.ami", "Action: ShowDialPlan")
    );
    // The host lists the channels after each login (re-synchronising its calls):
    // `write = reporting` allows both.
    assert_eq!(
        codes(&preflight),
        [
            ("ami_permission_missing", "ShowDialPlan".to_owned()),
            ("ami_permission_missing", "CoreShowChannels".to_owned())
        ]
    );
    assert_eq!(
        preflight.outcome(),
        Some(Outcome::Failed {
            session_usable: false
        })
    );
    let sentences: Vec<String> = preflight.problems().map(|p| p.to_string()).collect();
    assert_eq!(
        sentences,
        [
            "the manager user may not run ShowDialPlan: add reporting to its write= in \
             manager.conf (the kit has write = originate,call,reporting), then \
             `manager reload`",
            "the manager user may not run CoreShowChannels: add reporting to its write= in \
             manager.conf (the kit has write = originate,call,reporting), then \
             `manager reload`"
        ]
    );
    // The firmware follows no calls and never lists them: only ShowDialPlan is missing.
    let firmware = Checks {
        lists_channels: false,
        ..checks("limited", "secret", &FULL)
    };
    let mut preflight = Machine::login(firmware, 0);
    replay(&mut preflight, &read("limited.server.ami"));
    assert_eq!(
        codes(&preflight),
        [("ami_permission_missing", "ShowDialPlan".to_owned())]
    );
}

#[test]
fn permission_denied_to_show_dial_plan_is_a_missing_privilege() {
    // The same recorded session, as the dialplan-only check of run 0 reads it: only the
    // `Permission denied` answer carries its ActionID (c2d-pf-0-0).
    let mut preflight = Machine::dialplan(checks("limited", "secret", &FULL), 0, 0);
    replay(&mut preflight, &read("limited.server.ami"));
    assert_eq!(
        codes(&preflight),
        [("ami_permission_missing", "ShowDialPlan".to_owned())]
    );
}

#[test]
fn no_fully_booted_means_read_system_is_missing() {
    let mut preflight = Machine::login(checks("noread", "secret", &FULL), 1_000);
    replay(&mut preflight, &read("noread.server.ami"));
    assert_eq!(preflight.outcome(), None);
    // The deadline runs from the accepted login (read at t=0 here).
    assert_eq!(preflight.poll_timeout(), Some(5_000));
    preflight.handle_timeout(4_999);
    assert_eq!(preflight.outcome(), None);
    preflight.handle_timeout(5_000);
    assert_eq!(codes(&preflight), [("ami_not_fully_booted", String::new())]);
    assert!(preflight
        .problems()
        .next()
        .expect("one")
        .to_string()
        .contains("read = system"));
}

#[test]
fn refused_login_says_so() {
    let mut preflight = Machine::login(checks("c2d", "wrong", &FULL), 0);
    let sent = replay(&mut preflight, &read("badlogin.server.ami"));
    assert_eq!(sent, read("badlogin.client.ami"));
    assert_eq!(codes(&preflight), [("ami_login_failed", String::new())]);
    assert_eq!(
        preflight.outcome(),
        Some(Outcome::Failed {
            session_usable: false
        })
    );
    let sentence = preflight.problems().next().expect("one").to_string();
    assert!(sentence.contains("Authentication failed") && sentence.contains("permit"));
}

#[test]
fn write_all_lists_everything_in_one_large_message() {
    let server = read("admin.server.ami");
    let mut preflight = Machine::login(checks("admin", "secret", &[]), 0);
    let sent = replay(&mut preflight, &server);
    assert_eq!(sent, read("admin.client.ami"));
    assert_eq!(preflight.outcome(), Some(Outcome::Passed));
    let start = server
        .windows(11)
        .position(|w| w == b"c2d-pf-0-lc")
        .expect("answer");
    let len = server[start..]
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end");
    assert!(
        len > MAX_MESSAGE_LEN * 9 / 10,
        "{len}: close to the frame limit"
    );
}

#[test]
fn messages_from_the_decoder_work_as_lines_do() {
    let server = read("full.server.ami");
    let mut preflight = Machine::dialplan(checks("c2d", "secret", &FULL), 0, 0);
    let mut decoder = Decoder::new();
    let mut start = 0;
    let mut out = [0u8; 512];
    let mut sent = Vec::new();
    while let Some(decoded) = decoder.decode(&server[start..]).expect("AMI") {
        while let Some(n) = preflight.poll_transmit(&mut out).expect("fits") {
            sent.extend_from_slice(&out[..n]);
        }
        if let Frame::Message(m) = decoded.frame {
            preflight.handle_message(0, &m);
        }
        start += decoded.len;
    }
    assert_eq!(
        preflight.outcome(),
        Some(Outcome::Failed {
            session_usable: true
        })
    );
    assert_eq!(codes(&preflight).len(), 2);
    assert_eq!(preflight.campaigns().len(), 2);
    let sent = String::from_utf8(sent).expect("ASCII");
    assert_eq!(sent.matches("Action: ShowDialPlan").count(), 7);
    assert!(!sent.contains("Login"));
}

#[test]
fn silence_after_an_action_is_no_answer() {
    let mut preflight = Machine::dialplan(checks("c2d", "secret", &FULL), 3, 100);
    let mut out = [0u8; 256];
    let n = preflight
        .poll_transmit(&mut out)
        .expect("fits")
        .expect("one");
    assert_eq!(
        &out[..n],
        b"Action: ShowDialPlan\r\nActionID: c2d-pf-3-0\r\nContext: c2d-outbound\r\n\r\n"
    );
    assert_eq!(preflight.poll_transmit(&mut out), Ok(None));
    assert_eq!(preflight.poll_timeout(), Some(5_100));
    preflight.handle_timeout(5_100);
    assert_eq!(
        codes(&preflight),
        [("ami_no_answer", "ShowDialPlan".into())]
    );
    assert!(!ProblemCode::NoAnswer.is_configuration());
    assert!(ProblemCode::ContextMissing.is_configuration());
}

#[test]
fn a_small_buffer_keeps_the_action_due() {
    let mut preflight = Machine::login(checks("c2d", "secret", &FULL), 0);
    let mut small = [0u8; 8];
    assert!(preflight.poll_transmit(&mut small).is_err());
    let mut out = [0u8; 256];
    assert!(preflight.poll_transmit(&mut out).expect("fits").is_some());
}

#[test]
fn not_asterisk() {
    let mut preflight = Machine::login(checks("c2d", "secret", &FULL), 0);
    preflight.handle_line(0, b"HTTP/1.1 400 Bad Request");
    assert_eq!(codes(&preflight), [("ami_not_asterisk", String::new())]);
}

#[test]
fn sentences_for_the_dialplan() {
    let mut preflight = Machine::login(checks("c2d", "secret", &FULL), 0);
    replay(&mut preflight, &read("full.server.ami"));
    let sentences: Vec<String> = preflight.problems().map(ToString::to_string).collect();
    assert_eq!(
        sentences,
        [
            "context c2d-missing not found in the PBX dialplan: #include the click2dial \
             extensions.conf kit and `dialplan reload`",
            "extension nope@c2d-agent-webrtc not found in the PBX dialplan: add it from the \
             click2dial extensions.conf kit and `dialplan reload`",
        ]
    );
}

/// `core::ami::Session` on a virtual clock: the recorded preflight answers log it in, the
/// recorded call transcripts follow (their banner, login answer and `FullyBooted` are just
/// messages on a running session), and time only moves when the test says so.
mod session {
    use std::collections::HashMap;

    use click2dial_core::ami::session::{Config, Down, Event, OriginateError, RECEIVE_BUFFER_LEN};
    use click2dial_core::ami::{Backoff, Outcome, Session};
    use click2dial_core::call::{CallTracker, Mode};
    use click2dial_core::json::{Cause, Event as Notification};
    use click2dial_core::originate::{Dialplan, OriginateCall};

    use super::{checks, read, FULL};

    /// What the session said, owned.
    #[derive(Debug, Clone, PartialEq)]
    enum Seen {
        Checked(bool, Outcome),
        Answered(String, Option<String>),
        Channel(String),
        Listed(String),
        Resynced(bool),
        Message,
        Down(Down),
    }

    struct World {
        session: Session<'static, 16, 4>,
        now: u64,
        sent: String,
        seen: Vec<Seen>,
        calls: HashMap<String, CallTracker>,
        outcomes: HashMap<String, Vec<(Notification, Option<Cause>)>>,
    }

    fn config(contexts: &'static [click2dial_core::ami::ContextCheck<'static>]) -> Config<'static> {
        Config {
            checks: checks("c2d", "secret", contexts),
            ping_interval_ms: 20_000,
            originate_answer_within_ms: 5_000,
            recheck_misconfigured_ms: 5_000,
            first_backoff_ms: 250,
            max_backoff_ms: 30_000,
        }
    }

    impl World {
        fn new(config: Config<'static>) -> Self {
            let buf = Box::leak(vec![0u8; RECEIVE_BUFFER_LEN].into_boxed_slice());
            Self {
                session: Session::new(config, buf),
                now: 0,
                sent: String::new(),
                seen: Vec::new(),
                calls: HashMap::new(),
                outcomes: HashMap::new(),
            }
        }

        /// Connects and logs in with the recorded answers of the `full` case.
        fn logged_in(contexts: &'static [click2dial_core::ami::ContextCheck<'static>]) -> Self {
            let mut world = Self::new(config(contexts));
            assert!(world.session.wants_connect(0));
            world.session.handle_connected(0);
            world.feed(&read("full.server.ami"));
            world
        }

        fn drain(&mut self) {
            let mut out = [0u8; 2048];
            while let Some(n) = self.session.poll_transmit(&mut out) {
                self.sent
                    .push_str(std::str::from_utf8(&out[..n]).expect("text"));
            }
            while let Some(event) = self.session.poll_event() {
                let seen = match event {
                    Event::Checked { login, outcome } => Seen::Checked(login, outcome),
                    Event::OriginateAnswered { action_id, refused } => {
                        Seen::Answered(action_id.into(), refused.map(Into::into))
                    }
                    Event::Channel { key, event, .. } => {
                        if let Some(tracker) = self.calls.get_mut(key) {
                            tracker.handle_event(self.now, &event);
                            while let Some(p) = tracker.poll_progress() {
                                self.outcomes
                                    .entry(key.to_owned())
                                    .or_default()
                                    .push((p.event, p.cause));
                            }
                        }
                        Seen::Channel(key.into())
                    }
                    Event::Listed { key, channel } => {
                        if let Some(tracker) = self.calls.get_mut(key) {
                            tracker.handle_listed(&channel);
                        }
                        Seen::Listed(key.into())
                    }
                    Event::Resynced { complete } => {
                        for tracker in self.calls.values_mut() {
                            if complete {
                                tracker.handle_resynced(self.now);
                            } else {
                                tracker.handle_resync_failed(self.now);
                            }
                        }
                        self.collect();
                        Seen::Resynced(complete)
                    }
                    Event::Message(_) => Seen::Message,
                    Event::Down(why) => {
                        for tracker in self.calls.values_mut() {
                            tracker.handle_pbx_lost(self.now);
                        }
                        Seen::Down(why)
                    }
                };
                self.seen.push(seen);
                while let Some(n) = self.session.poll_transmit(&mut out) {
                    self.sent
                        .push_str(std::str::from_utf8(&out[..n]).expect("text"));
                }
            }
        }

        /// Moves every call's new notifications to `outcomes`.
        fn collect(&mut self) {
            for (key, tracker) in &mut self.calls {
                while let Some(p) = tracker.poll_progress() {
                    self.outcomes
                        .entry(key.clone())
                        .or_default()
                        .push((p.event, p.cause));
                }
            }
        }

        /// Feeds `bytes` one message at a time, as a PBX answers: never before the
        /// action was sent.
        fn feed(&mut self, bytes: &[u8]) {
            self.drain();
            let mut rest = bytes;
            while !rest.is_empty() {
                let end = rest
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .map_or(rest.len(), |i| i + 4);
                let mut message = &rest[..end];
                rest = &rest[end..];
                while !message.is_empty() {
                    let n = self.session.handle_input(self.now, message);
                    message = &message[n..];
                    self.drain();
                }
            }
        }

        fn at(&mut self, now: u64) {
            self.now = now;
            self.session.handle_timeout(now);
            self.drain();
        }

        fn originate(&mut self, channel_id: &str) -> Result<(), OriginateError> {
            let call = OriginateCall {
                channel_id,
                agent: "1001",
                callee: "0820001234",
                callee_e164: "+27820001234",
                outbound_id: "27820001234",
                contact_ref: "crm-42",
                recording_ref: "rec",
                single_leg: false,
                controls: click2dial_core::dial::DialControls::DEFAULT,
            };
            let mut out = [0u8; 2048];
            let n = self
                .session
                .originate(self.now, &call, &Dialplan::DEFAULT, &mut out)?;
            self.sent
                .push_str(std::str::from_utf8(&out[..n]).expect("text"));
            let tracker = CallTracker::new(channel_id, Mode::TwoLeg, self.now).expect("fits");
            self.calls.insert(channel_id.to_owned(), tracker);
            Ok(())
        }

        fn take_seen(&mut self) -> Vec<Seen> {
            std::mem::take(&mut self.seen)
        }
    }

    /// A recorded call transcript without its banner line.
    fn transcript(case: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/ami/transcripts/{case}.ami",
            env!("CARGO_MANIFEST_DIR")
        );
        let bytes = std::fs::read(path).expect("fixture");
        let start = bytes.windows(2).position(|w| w == b"\r\n").expect("banner") + 2;
        bytes[start..].to_vec()
    }

    fn answer(action_id: &str) -> Vec<u8> {
        format!("Response: Success\r\nActionID: {action_id}\r\nMessage: Originate successfully queued\r\n\r\n").into_bytes()
    }

    #[test]
    fn login_ok_sends_the_recorded_check_and_is_ready() {
        let world = World::logged_in(&FULL[..2]);
        assert_eq!(world.seen, [Seen::Checked(true, Outcome::Passed)]);
        assert!(world.session.is_ready());
        let recorded = super::client_until(
            "full.client.ami",
            "Action: ShowDialPlan\r\nActionID: c2d-pf-0-2",
        );
        assert_eq!(world.sent, String::from_utf8(recorded).expect("text"));
        let campaigns: Vec<&str> = world.session.check().campaigns().iter().collect();
        assert_eq!(campaigns, ["renewals", "spring"]);
    }

    #[test]
    fn login_failed_ends_the_connection_and_backs_off() {
        let mut world = World::new(config(&FULL));
        world.session.handle_connected(0);
        world.now = 1_000;
        world.feed(&read("badlogin.server.ami"));
        assert_eq!(
            world.take_seen(),
            [
                Seen::Checked(
                    true,
                    Outcome::Failed {
                        session_usable: false
                    }
                ),
                Seen::Down(Down::Misconfigured)
            ]
        );
        let problem = world.session.check().problems().next().expect("one");
        assert_eq!(problem.code.as_str(), "ami_login_failed");
        assert!(!world.session.is_connected());
        assert_eq!(world.session.poll_timeout(), Some(1_250));
        assert!(!world.session.wants_connect(1_249));
        assert!(world.session.wants_connect(1_250));
    }

    #[test]
    fn no_fully_booted_within_the_deadline() {
        let mut world = World::new(config(&FULL));
        world.session.handle_connected(0);
        world.feed(&read("noread.server.ami"));
        assert!(world.take_seen().is_empty());
        assert_eq!(world.session.poll_timeout(), Some(5_000));
        world.at(4_999);
        assert!(world.take_seen().is_empty());
        world.at(5_000);
        assert_eq!(
            world.take_seen(),
            [
                Seen::Checked(
                    true,
                    Outcome::Failed {
                        session_usable: false
                    }
                ),
                Seen::Down(Down::Misconfigured)
            ]
        );
        let problem = world.session.check().problems().next().expect("one");
        assert_eq!(problem.code.as_str(), "ami_not_fully_booted");
    }

    #[test]
    fn an_unanswered_ping_ends_the_session_when_the_next_is_due() {
        let mut world = World::logged_in(&FULL[..2]);
        world.take_seen();
        world.sent.clear();
        assert_eq!(world.session.poll_timeout(), Some(20_000));
        world.at(20_000);
        assert!(
            world
                .sent
                .starts_with("Action: Ping\r\nActionID: c2d-ping\r\n\r\n"),
            "{}",
            world.sent
        );
        world.feed(
            b"Response: Success\r\nActionID: c2d-ping\r\nPing: Pong\r\nTimestamp: 1.0\r\n\r\n",
        );
        world.sent.clear();
        world.at(40_000);
        assert!(world.sent.contains("Action: Ping"));
        world.take_seen();
        world.at(59_999);
        assert!(world.session.is_ready());
        world.at(60_000);
        assert_eq!(world.take_seen(), [Seen::Down(Down::PingTimeout)]);
        assert!(!world.session.is_connected());
    }

    #[test]
    fn a_probe_is_a_ping_that_must_be_answered_within_the_originate_deadline() {
        let mut world = World::logged_in(&FULL[..2]);
        world.take_seen();
        world.sent.clear();
        assert!(!world.session.is_probing());
        world.now = 1_000;
        world.session.probe(1_000);
        assert!(world.session.is_probing());
        assert_eq!(world.session.poll_timeout(), Some(6_000));
        world.at(1_000);
        assert_eq!(world.sent, "Action: Ping\r\nActionID: c2d-ping\r\n\r\n");
        world.now = 1_010;
        world.feed(
            b"Response: Success\r\nActionID: c2d-ping\r\nPing: Pong\r\nTimestamp: 1.0\r\n\r\n",
        );
        assert!(!world.session.is_probing());
        assert_eq!(world.session.heard_at(), 1_010);
        // Unanswered: the connection is given up at the deadline, not at the next ping.
        world.session.probe(2_000);
        world.at(6_999);
        assert!(world.session.is_ready());
        world.at(7_000);
        assert_eq!(world.take_seen(), [Seen::Down(Down::PingTimeout)]);
        assert!(!world.session.is_probing());
        world.session.probe(7_000);
        assert!(!world.session.is_probing(), "no probe while down");
    }

    #[test]
    fn refused_originates_say_why_and_an_unanswered_one_ends_the_session() {
        let mut world = World::logged_in(&FULL[..2]);
        world.take_seen();
        for id in [
            "f1-missing-channel",
            "f2-channel-no-slash",
            "f3-bad-priority",
            "f4-bad-timeout",
        ] {
            world.originate(id).expect("sent");
        }
        assert_eq!(world.originate("one-too-many"), Err(OriginateError::Busy));
        world.feed(&transcript("f_originate_errors"));
        let answers: Vec<Seen> = world
            .take_seen()
            .into_iter()
            .filter(|s| matches!(s, Seen::Answered(..)))
            .collect();
        assert_eq!(
            answers,
            [
                Seen::Answered(
                    "f1-missing-channel".into(),
                    Some("Channel not specified".into())
                ),
                Seen::Answered("f2-channel-no-slash".into(), Some("Invalid channel".into())),
                Seen::Answered("f3-bad-priority".into(), Some("Invalid priority".into())),
                Seen::Answered("f4-bad-timeout".into(), None),
            ]
        );
        world.now = 10_000;
        world.originate("c2d-unanswered").expect("sent");
        assert_eq!(world.session.poll_timeout(), Some(15_000));
        world.at(14_999);
        assert!(world.take_seen().is_empty());
        world.at(15_000);
        assert_eq!(world.take_seen(), [Seen::Down(Down::OriginateTimeout)]);
        assert_eq!(world.originate("later"), Err(OriginateError::NotConnected));
    }

    #[test]
    fn an_extension_refused_by_the_dialplan_makes_a_recheck_due_at_once() {
        let mut world = World::logged_in(&FULL[..1]);
        world.take_seen();
        world.originate("or-1").expect("sent");
        world.sent.clear();
        world.feed(
            b"Response: Error\r\nActionID: or-1\r\nMessage: Extension does not exist.\r\n\r\n",
        );
        assert_eq!(
            world.take_seen(),
            [Seen::Answered(
                "or-1".into(),
                Some("Extension does not exist.".into())
            )]
        );
        assert!(
            world
                .sent
                .starts_with("Action: ShowDialPlan\r\nActionID: c2d-pf-1-0\r\n"),
            "{}",
            world.sent
        );
    }

    #[test]
    fn a_misconfigured_dialplan_is_checked_again_one_context_at_a_time() {
        let mut world = World::logged_in(&FULL);
        assert_eq!(
            world.take_seen(),
            [Seen::Checked(
                true,
                Outcome::Failed {
                    session_usable: true
                }
            )]
        );
        assert!(world.session.is_up() && !world.session.is_ready());
        assert_eq!(world.originate("x"), Err(OriginateError::NotConnected));
        world.sent.clear();
        assert_eq!(world.session.poll_timeout(), Some(5_000));
        world.at(5_000);
        assert_eq!(
            world.sent.matches("Action: ShowDialPlan").count(),
            1,
            "{}",
            world.sent
        );
        // The same answers, for the second check of this session (run 1).
        let server = String::from_utf8(read("full.server.ami")).expect("text");
        let dialplan = &server[server.find("ActionID: c2d-pf-0-0").expect("answers")
            - "Event: ListDialplan\r\n".len()..];
        let dialplan = dialplan.replace("c2d-pf-0-", "c2d-pf-1-");
        world.feed(dialplan.as_bytes());
        assert_eq!(
            world.sent.matches("Action: ShowDialPlan").count(),
            FULL.len()
        );
        let seen = world.take_seen();
        assert!(
            seen.contains(&Seen::Checked(
                false,
                Outcome::Failed {
                    session_usable: true
                }
            )),
            "{seen:?}"
        );
        assert!(world.session.is_up() && !world.session.is_ready());
        assert_eq!(world.session.poll_timeout(), Some(10_000));
    }

    #[test]
    fn events_are_routed_to_their_call() {
        let mut world = World::logged_in(&FULL[..2]);
        let a = "c2d-a_success-7244a9c1";
        let b = "c2d-b_agent_noanswer-1df9fa7e";
        world.originate(a).expect("sent");
        world.originate(b).expect("sent");
        world.feed(&answer(a));
        world.feed(&answer(b));
        world.take_seen();
        world.feed(&transcript("b_agent_noanswer"));
        world.feed(&transcript("a_success"));
        let seen = world.take_seen();
        assert!(seen.contains(&Seen::Channel(a.into())));
        assert!(seen.contains(&Seen::Channel(b.into())));
        assert!(world.calls.values().all(CallTracker::is_finished));
        let last = |id: &str| {
            *world.outcomes[id]
                .iter()
                .rev()
                .find(|(e, _)| *e != Notification::RecordingReady)
                .expect("ended")
        };
        assert_eq!(last(a), (Notification::Hangup, Some(Cause::NormalClearing)));
        assert_eq!(last(b), (Notification::Failed, Some(Cause::AgentNoAnswer)));
        assert!(world.session.is_ready());
    }

    /// A client that checks no context (the appliance) is never woken for a re-check: its
    /// only timer is the ping.
    #[test]
    fn without_contexts_only_the_ping_wakes_the_session() {
        let mut world = World::new(config(&[]));
        world.session.handle_connected(0);
        world.feed(&read("admin.server.ami"));
        assert!(world.session.is_ready(), "{:?}", world.seen);
        for round in 1..=3u64 {
            assert_eq!(world.session.poll_timeout(), Some(round * 20_000));
            world.sent.clear();
            world.at(round * 20_000);
            assert_eq!(world.sent, "Action: Ping\r\nActionID: c2d-ping\r\n\r\n");
            world.feed(b"Response: Success\r\nActionID: c2d-ping\r\nPing: Pong\r\n\r\n");
        }
    }

    #[test]
    fn the_backoff_doubles_and_starts_over_after_a_login_that_passed() {
        let mut world = World::new(config(&FULL[..2]));
        let mut delays = Vec::new();
        for _ in 0..9 {
            let now = world.session.poll_timeout().expect("retry");
            world.now = now;
            world.session.handle_disconnected(now, Down::Connect);
            world.drain();
            delays.push(world.session.poll_timeout().expect("retry") - now);
        }
        assert_eq!(
            delays,
            [250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]
        );
        // A refused login does not start over.
        world.now = world.session.poll_timeout().expect("retry");
        world.session.handle_connected(world.now);
        world.feed(&read("badlogin.server.ami"));
        assert_eq!(world.session.poll_timeout(), Some(world.now + 30_000));
        // A login that passed does.
        world.now += 30_000;
        world.session.handle_connected(world.now);
        world.feed(&read("full.server.ami"));
        assert!(world.session.is_ready());
        world.session.handle_disconnected(world.now, Down::Closed);
        world.drain();
        assert_eq!(world.take_seen().last(), Some(&Seen::Down(Down::Closed)));
        assert_eq!(world.session.poll_timeout(), Some(world.now + 250));

        let mut backoff = Backoff::new(250, 1_000);
        assert_eq!(
            [
                backoff.next_delay(),
                backoff.next_delay(),
                backoff.next_delay(),
                backoff.next_delay()
            ],
            [250, 500, 1_000, 1_000]
        );
        backoff.reset();
        assert_eq!(backoff.next_delay(), 250);
    }

    /// The recorded connected call (`queries/l_core_show_channels_connected`), split into
    /// its messages without the banner: the call's events, the `CoreShowChannels` answer
    /// (its `ActionID` made the session's) and the two `Hangup`s.
    struct Recorded {
        channel_id: &'static str,
        messages: Vec<String>,
    }

    impl Recorded {
        fn load() -> Self {
            Self::named("l_core_show_channels_connected")
        }

        fn named(case: &str) -> Self {
            let path = format!(
                "{}/tests/fixtures/ami/queries/{case}.ami",
                env!("CARGO_MANIFEST_DIR")
            );
            let text = String::from_utf8(std::fs::read(path).expect("fixture")).expect("text");
            let body = &text[text.find("\r\n").expect("banner") + 2..];
            let messages = body
                .split_inclusive("\r\n\r\n")
                .map(|m| m.replace("ActionID: show-1", "ActionID: c2d-sync"))
                .collect();
            Self {
                channel_id: "c2d-oacxmqkrhrsl63ywyav6eykpgq",
                messages,
            }
        }

        fn index(&self, starts: &str) -> usize {
            self.messages
                .iter()
                .position(|m| m.starts_with(starts))
                .unwrap_or_else(|| panic!("no {starts:?}"))
        }

        /// The messages from the first that starts with `from` to the one that starts with
        /// `to`, both included.
        fn between(&self, from: &str, to: &str) -> Vec<u8> {
            let (a, b) = (self.index(from), self.index(to));
            self.messages[a..=b].concat().into_bytes()
        }

        fn listing(&self) -> Vec<u8> {
            self.between(
                "Response: Success\r\nActionID: c2d-sync",
                "Event: CoreShowChannelsComplete",
            )
        }
    }

    /// A world whose call of the recording got as far as `until` (a message start) before
    /// the connection broke; logged in again and resyncing.
    fn lost_and_back(recorded: &Recorded, until: &str) -> World {
        let mut world = World::logged_in(&FULL[..2]);
        world.originate(recorded.channel_id).expect("sent");
        world.feed(&answer(recorded.channel_id));
        world.feed(&recorded.between("Event: Newchannel", until));
        world.now = 2_000;
        world.session.handle_disconnected(2_000, Down::Closed);
        world.drain();
        assert!(world.calls[recorded.channel_id].is_lost());
        world.take_seen();
        world.now = world.session.poll_timeout().expect("retry");
        world.session.handle_connected(world.now);
        world.feed(&read("full.server.ami"));
        assert!(world.session.is_ready(), "{:?}", world.seen);
        world.sent.clear();
        world.session.resync(world.now);
        world.drain();
        assert_eq!(
            world.sent,
            "Action: CoreShowChannels\r\nActionID: c2d-sync\r\n\r\n"
        );
        world.take_seen();
        world
    }

    fn outcomes(world: &World, id: &str) -> Vec<(Notification, Option<Cause>)> {
        world.outcomes.get(id).cloned().unwrap_or_default()
    }

    /// The spec's "re-synchronise the calls in flight": a call whose agent answered before
    /// the connection broke, and that was joined meanwhile, goes on from the recorded
    /// listing: `joined` now, then its real end.
    #[test]
    fn a_call_in_flight_goes_on_from_the_recorded_listing() {
        use Notification::*;
        let recorded = Recorded::load();
        let id = recorded.channel_id;
        let mut world = lost_and_back(&recorded, "Event: MixMonitorStart");
        assert_eq!(
            outcomes(&world, id),
            [(Queued, None), (AgentRinging, None), (AgentAnswered, None)]
        );
        world.feed(&recorded.listing());
        assert_eq!(
            world.take_seen(),
            [
                Seen::Listed(id.into()),
                Seen::Listed(id.into()),
                Seen::Resynced(true)
            ]
        );
        assert!(!world.session.is_resyncing());
        let tracker = &world.calls[id];
        assert!(!tracker.is_lost() && !tracker.is_finished());
        assert_eq!(outcomes(&world, id)[3..], [(Joined, None)]);
        let hangups = recorded.index("Event: Hangup");
        world.feed(recorded.messages[hangups..hangups + 2].concat().as_bytes());
        assert_eq!(
            outcomes(&world, id)[4..],
            [
                (Hangup, Some(Cause::NormalClearing)),
                (RecordingReady, None)
            ]
        );
        assert!(world.calls[id].is_finished());
        assert!(world.session.is_ready());
    }

    /// The same call lost while the agent's phone rang: the listing shows it joined, so the
    /// steps it proves are notified (`agent_answered`, `joined`), not the ones it does not
    /// (`callee_ringing`).
    #[test]
    fn the_steps_a_listing_proves_are_notified_once() {
        use Notification::*;
        let recorded = Recorded::load();
        let id = recorded.channel_id;
        let mut world = lost_and_back(&recorded, "Event: DialState");
        world.feed(&recorded.listing());
        assert_eq!(
            outcomes(&world, id),
            [
                (Queued, None),
                (AgentRinging, None),
                (AgentAnswered, None),
                (Joined, None)
            ]
        );
        // A second listing proves nothing new.
        world
            .calls
            .get_mut(id)
            .expect("call")
            .handle_pbx_lost(world.now);
        world.session.resync(world.now);
        world.feed(&recorded.listing());
        assert_eq!(outcomes(&world, id).len(), 4);
        assert!(!world.calls[id].is_lost());
    }

    /// Lost before `MixMonitorStart`: a listing that shows the callee's channel proves the
    /// recording started when the dialplan records before it dials (the kit's does), so
    /// `recording_ready` follows the end; without that, the tracker claims no recording.
    #[test]
    fn a_recording_started_unseen_is_ready_when_the_dialplan_records() {
        use Notification::*;
        let recorded = Recorded::load();
        let id = recorded.channel_id;
        let hangups = recorded.index("Event: Hangup");
        let ends = recorded.messages[hangups..hangups + 2].concat();
        for records in [true, false] {
            let mut world = lost_and_back(&recorded, "Event: DialState");
            if records {
                world.calls.get_mut(id).expect("call").expect_recording();
            }
            world.feed(&recorded.listing());
            world.feed(ends.as_bytes());
            let mut want = vec![
                (Queued, None),
                (AgentRinging, None),
                (AgentAnswered, None),
                (Joined, None),
                (Hangup, Some(Cause::NormalClearing)),
            ];
            if records {
                want.push((RecordingReady, None));
            }
            assert_eq!(outcomes(&world, id), want);
            assert!(world.calls[id].is_finished());
        }
    }

    /// A call none of whose channels is listed ended while the connection was down, or the
    /// PBX restarted: how is not known, so `pbx_error`, and no recording is claimed (a
    /// restart may have cut it short).
    #[test]
    fn a_call_that_vanished_meanwhile_ends_with_pbx_error() {
        use Notification::*;
        let recorded = Recorded::load();
        let id = recorded.channel_id;
        let mut world = lost_and_back(&recorded, "Event: BridgeEnter");
        world.feed(
            b"Response: Success\r\nActionID: c2d-sync\r\nEventList: start\r\nMessage: Channels will follow\r\n\r\n\
              Event: CoreShowChannelsComplete\r\nActionID: c2d-sync\r\nEventList: Complete\r\nListItems: 0\r\n\r\n",
        );
        assert_eq!(
            outcomes(&world, id)[4..],
            [(Joined, None), (Hangup, Some(Cause::PbxError))]
        );
        assert!(world.calls[id].is_finished());
    }

    /// The originated channel is gone but the callee's is listed: the call is ending
    /// (`pbx_error`, its cause unseen), and the callee's hangup, in sight, completes the
    /// recording (`recording_ready`).
    #[test]
    fn a_call_whose_originated_channel_is_gone_ends_and_its_recording_follows() {
        use Notification::*;
        let recorded = Recorded::load();
        let id = recorded.channel_id;
        let mut world = lost_and_back(&recorded, "Event: BridgeEnter");
        let listing: String = String::from_utf8(recorded.listing())
            .expect("text")
            .split_inclusive("\r\n\r\n")
            .filter(|m| !m.contains(&format!("Uniqueid: {id}\r\n")))
            .collect::<String>()
            .replace("ListItems: 2", "ListItems: 1");
        world.feed(listing.as_bytes());
        assert_eq!(
            outcomes(&world, id)[4..],
            [(Joined, None), (Hangup, Some(Cause::PbxError))]
        );
        assert!(!world.calls[id].is_finished(), "the callee's channel lives");
        let carrier = recorded.index("Event: Hangup");
        world.feed(recorded.messages[carrier].as_bytes());
        assert_eq!(outcomes(&world, id)[6..], [(RecordingReady, None)]);
        assert!(world.calls[id].is_finished());
    }

    /// A host that starts while the call is in flight resumes it from what was notified
    /// (its history) and the PBX's listing: only what was not notified yet follows.
    #[test]
    fn a_resumed_call_notifies_only_what_was_not_notified() {
        use click2dial_core::call::Timeouts;
        use Notification::*;
        let recorded = Recorded::load();
        let id = recorded.channel_id;
        let hangups = recorded.index("Event: Hangup");
        let ends = recorded.messages[hangups..hangups + 2].concat();
        type Said = (Notification, Option<Cause>);
        let cases: [(&[Notification], &[Said]); 3] = [
            (
                &[Queued, AgentRinging, AgentAnswered, CalleeRinging, Joined],
                &[
                    (Hangup, Some(Cause::NormalClearing)),
                    (RecordingReady, None),
                ],
            ),
            (
                &[Queued, AgentRinging],
                &[
                    (AgentAnswered, None),
                    (Joined, None),
                    (Hangup, Some(Cause::NormalClearing)),
                    (RecordingReady, None),
                ],
            ),
            (
                &[Queued],
                &[
                    (AgentAnswered, None),
                    (Joined, None),
                    (Hangup, Some(Cause::NormalClearing)),
                    (RecordingReady, None),
                ],
            ),
        ];
        for (notified, then) in cases {
            let mut world = World::logged_in(&FULL[..2]);
            let mut tracker = CallTracker::resume(id, Mode::TwoLeg, 0, Timeouts::DEFAULT, notified)
                .expect("fits");
            assert!(tracker.is_lost() && !tracker.is_finished());
            assert_eq!(
                tracker.poll_progress(),
                None,
                "nothing twice, not even queued"
            );
            tracker.expect_recording();
            world.calls.insert(id.to_owned(), tracker);
            world.session.resync(world.now);
            world.feed(&recorded.listing());
            world.feed(ends.as_bytes());
            assert_eq!(outcomes(&world, id), then, "after {notified:?}");
            assert!(world.calls[id].is_finished());
        }
    }

    /// A resumed call that was joined before the restart counts its `max_duration_ms`
    /// from the bridge its history gives (`notified_at`), not from the resume: the PBX's
    /// hangup at that limit says `max_duration`, as it would have without the restart.
    #[test]
    fn a_resumed_call_counts_its_longest_duration_from_its_history() {
        use click2dial_core::call::Timeouts;
        use Notification::*;
        let recorded = Recorded::load();
        let id = recorded.channel_id;
        let hangups = recorded.index("Event: Hangup");
        let ends = recorded.messages[hangups..hangups + 2].concat();
        let notified = [Queued, AgentRinging, AgentAnswered, CalleeRinging, Joined];
        let timeouts = Timeouts {
            max_duration_ms: Some(60_000),
            ..Timeouts::DEFAULT
        };
        for (joined_ago, cause) in [
            (Some(60_000), Cause::MaxDuration),
            (None, Cause::NormalClearing),
        ] {
            let mut world = World::logged_in(&FULL[..2]);
            world.now += 60_000;
            let mut tracker = CallTracker::resume(id, Mode::TwoLeg, world.now, timeouts, &notified)
                .expect("fits");
            if let Some(ago) = joined_ago {
                tracker.notified_at(Joined, world.now - ago);
            }
            tracker.expect_recording();
            world.calls.insert(id.to_owned(), tracker);
            world.session.resync(world.now);
            world.feed(&recorded.listing());
            world.feed(ends.as_bytes());
            assert_eq!(
                outcomes(&world, id),
                [(Hangup, Some(cause)), (RecordingReady, None)],
                "joined {joined_ago:?} ms before the resume"
            );
        }
    }

    /// Lost while the agent's phone rings, and still ringing in the recorded list (the
    /// Originate's channel, `AppDial2`, in no bridge): nothing new is claimed, and the
    /// call's real end follows (`failed`/`agent_no_answer` when the ring times out).
    #[test]
    fn a_call_still_ringing_in_the_list_goes_on_unchanged() {
        use Notification::*;
        let recorded = Recorded::named("l2_core_show_channels_ringing");
        let id = recorded.channel_id;
        let mut world = lost_and_back(&recorded, "Event: DialState");
        world.feed(&recorded.listing());
        assert_eq!(
            world.take_seen(),
            [Seen::Listed(id.into()), Seen::Resynced(true)]
        );
        assert_eq!(outcomes(&world, id), [(Queued, None), (AgentRinging, None)]);
        assert!(!world.calls[id].is_lost() && !world.calls[id].is_finished());
        world.feed(&recorded.between("Event: OriginateResponse", "Event: Hangup"));
        assert_eq!(
            outcomes(&world, id)[2..],
            [(Failed, Some(Cause::AgentNoAnswer))]
        );
        assert!(world.calls[id].is_finished());
    }

    /// A manager user without `write = reporting` is refused the listing: the calls end
    /// as before re-synchronisation existed (`failed`/`pbx_error`, no recording claimed).
    #[test]
    fn a_refused_listing_fails_the_lost_calls() {
        use Notification::*;
        let recorded = Recorded::load();
        let id = recorded.channel_id;
        let mut world = lost_and_back(&recorded, "Event: MixMonitorStart");
        world.feed(b"Response: Error\r\nActionID: c2d-sync\r\nMessage: Permission denied\r\n\r\n");
        assert_eq!(world.take_seen(), [Seen::Resynced(false)]);
        assert_eq!(outcomes(&world, id)[3..], [(Failed, Some(Cause::PbxError))]);
        assert!(world.calls[id].is_finished());
        assert!(world.session.is_ready());
    }

    /// The listing must be complete within the Originate answer deadline.
    #[test]
    fn an_unfinished_listing_ends_the_connection() {
        let recorded = Recorded::load();
        let mut world = lost_and_back(&recorded, "Event: MixMonitorStart");
        let start = world.now;
        let listing = recorded.listing();
        world.feed(&listing[..listing.len() / 2]);
        assert_eq!(world.session.poll_timeout(), Some(start + 5_000));
        world.at(start + 4_999);
        assert!(world.session.is_up());
        world.at(start + 5_000);
        assert_eq!(
            world.take_seen().last(),
            Some(&Seen::Down(Down::SyncTimeout))
        );
        assert!(world.calls[recorded.channel_id].is_lost());
    }
}
