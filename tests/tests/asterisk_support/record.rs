//! Records a call's AMI bytes on a real Asterisk 22 with the kit — one-leg calls, and calls
//! cut by the host's `Hangup` or a max duration — for the PBX simulator and the codec tests
//! (`core/tests/fixtures/ami/transcripts/`, see `core/tests/fixtures/ami/README.md`); and
//! `CoreShowChannels` asked during a call (`…/queries/`).
//! A tool, not a check: not part of the normal run (`#[ignore]`); run on a machine with the bundle and SIPp:
//!
//! ```sh
//! C2D_RECORD_DIR=/tmp/rec cargo test -p click2dial-tests --test asterisk_e2e -- --ignored record::
//! ```
//!
//! Each case writes `<case>.ami` (every byte Asterisk sent, the instance's recordings
//! directory rewritten to `/var/spool/asterisk/monitor/click2dial` as in the older
//! transcripts), `<case>.client.ami` (every byte sent: `Login`, the `Originate` exactly as
//! the host writes it, a cut case's two `Hangup`s, `Logoff`) and `<case>.summary.txt` (one line per
//! frame with its offset from the connection, the older transcripts' format).
//!
//! The Asterisk is the real-PBX suite's (`asterisk_support`: the kit `#include`d, SIPp as the
//! carrier and as phone 1000 of `[c2d-direct-destination]`); the manager user `c2d` is given
//! the older recordings' secret, read classes and `channelvars` (`[c2d](+)`, `[general](+)`)
//! so that the events carry the same lines as every other transcript.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{Asterisk, Phone, Sipp, Site};

#[path = "../../../core/tests/summary/mod.rs"]
mod summary;
use click2dial_core::ami::{Decoder, Frame, BANNER_PREFIX};
use click2dial_core::dial::DialControls;
use click2dial_core::originate::{write_originate, Dialplan, OriginateCall};
use click2dial_core::reference::ChannelId;
use summary::summary_line;

/// The older recordings' manager user and `channelvars` (`../shared/pbx/asterisk-config/`).
const RECORDED_MANAGER: &str = "[general](+)\nchannelvars = C2D_CONTACT_REF,C2D_RECORDING_REF\n\n\
     [c2d](+)\nsecret = secret\n\
     read = system,call,agent,user,config,dtmf,reporting,cdr,dialplan,originate,agi,cc,aoc,message\n\
     write = all\n";

const RECORDED_MONITOR_DIR: &str = "/var/spool/asterisk/monitor/click2dial";

fn out_dir() -> PathBuf {
    let dir = std::env::var_os("C2D_RECORD_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| super::repo().join("target/ami-recordings"));
    std::fs::create_dir_all(&dir).expect("output dir");
    dir
}

/// The Originate the host writes for a one-leg call (agent == callee) of `crm-42`.
pub fn one_leg_originate() -> Vec<u8> {
    one_leg_originate_with(DialControls::DEFAULT)
}

/// The Originate the host writes for a two-leg call of `crm-42`: agent `1001` (phone 1001 of
/// the suite), then callee `0820001234` through the carrier.
fn two_leg_originate(controls: DialControls) -> Vec<u8> {
    let channel_id = ChannelId::for_contact_ref("crm-42").to_string();
    let call = OriginateCall {
        channel_id: &channel_id,
        agent: "1001",
        callee: "0820001234",
        callee_e164: "+27820001234",
        outbound_id: "27820001234",
        contact_ref: "crm-42",
        recording_ref: "rec-abc",
        single_leg: false,
        controls,
    };
    let mut out = [0u8; 2048];
    let n = write_originate(&call, &Dialplan::DEFAULT, &mut out).expect("originate");
    out[..n].to_vec()
}

/// The one-leg Originate of `crm-42` with `controls`.
fn one_leg_originate_with(controls: DialControls) -> Vec<u8> {
    let channel_id = ChannelId::for_contact_ref("crm-42").to_string();
    let call = OriginateCall {
        channel_id: &channel_id,
        agent: "0820001234",
        callee: "0820001234",
        callee_e164: "+27820001234",
        outbound_id: "27820001234",
        contact_ref: "crm-42",
        recording_ref: "rec-abc",
        single_leg: true,
        controls,
    };
    let mut out = [0u8; 2048];
    let n = write_originate(&call, &Dialplan::DEFAULT, &mut out).expect("originate");
    out[..n].to_vec()
}

/// A manager session that keeps every byte sent and received, with when it came.
struct Session {
    stream: TcpStream,
    opened: Instant,
    sent: Vec<u8>,
    received: Vec<(Duration, Vec<u8>)>,
}

impl Session {
    fn open(address: &str) -> Self {
        let stream = TcpStream::connect(address).expect("AMI connect");
        stream
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        Self {
            stream,
            opened: Instant::now(),
            sent: Vec::new(),
            received: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
        self.sent.extend_from_slice(bytes);
    }

    /// Reads for `time`, or until the connection closes (true then).
    fn read_for(&mut self, time: Duration) -> bool {
        let until = Instant::now() + time;
        let mut chunk = [0u8; 16384];
        while Instant::now() < until {
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(n) => self
                    .received
                    .push((self.opened.elapsed(), chunk[..n].to_vec())),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("AMI read: {e}"),
            }
        }
        false
    }

    fn text(&self) -> String {
        let bytes: Vec<u8> = self.received.iter().flat_map(|(_, b)| b.clone()).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Writes the case's three files; the recordings directory of `asterisk` is rewritten.
fn write_case(name: &str, session: &Session, asterisk: &Asterisk, closed: bool) {
    let monitor = asterisk.recordings().display().to_string();
    let mut server = Vec::new();
    // Where each received chunk ends in the rewritten stream, and when it came.
    let mut ends = Vec::new();
    for (at, chunk) in &session.received {
        let text = String::from_utf8_lossy(chunk).replace(&monitor, RECORDED_MONITOR_DIR);
        server.extend_from_slice(text.as_bytes());
        ends.push((server.len(), *at));
    }
    // A chunk may end inside the directory's name: rewrite the whole stream once more.
    let whole = String::from_utf8_lossy(
        &session
            .received
            .iter()
            .flat_map(|(_, b)| b.clone())
            .collect::<Vec<u8>>(),
    )
    .replace(&monitor, RECORDED_MONITOR_DIR);
    assert_eq!(whole.as_bytes(), server, "the directory never spans chunks");

    let mut summary = String::new();
    let mut decoder = Decoder::new();
    let mut at = 0;
    while let Ok(Some(decoded)) = decoder.decode(&server[at..]) {
        let end = at + decoded.len;
        let when = ends
            .iter()
            .find(|(e, _)| *e >= end)
            .map_or(Duration::ZERO, |(_, t)| *t);
        match decoded.frame {
            Frame::Banner(version) => {
                summary.push_str(&format!("banner: {BANNER_PREFIX}{version}\n"));
            }
            Frame::Message(m) => {
                summary.push_str(&format!(
                    "{:7.3} {}\n",
                    when.as_secs_f64(),
                    summary_line(&m)
                ));
            }
        }
        at = end;
    }
    assert_eq!(at, server.len(), "{name}: the stream ends on a frame");
    if closed {
        summary.push_str("(server closed the connection)\n");
    }
    let dir = out_dir();
    std::fs::write(dir.join(format!("{name}.ami")), &server).expect("write");
    std::fs::write(dir.join(format!("{name}.client.ami")), &session.sent).expect("write");
    std::fs::write(dir.join(format!("{name}.summary.txt")), summary).expect("write");
    eprintln!("{name}: written to {}", dir.display());
}

/// What a cut case does: once the stream shows `after` times `count` (and 1 s more), sends
/// `actions` in one write: for a `DELETE` case the host's `Hangup`s ([`hangup_actions`]).
struct Cut {
    after: &'static str,
    count: usize,
    actions: fn() -> Vec<u8>,
}

/// The `Hangup` the host writes for `crm-42` (its channel's Uniqueid, cause 16), and one of
/// an unknown channel.
fn hangup_actions() -> Vec<u8> {
    let channel_id = ChannelId::for_contact_ref("crm-42").to_string();
    format!(
        "Action: Hangup\r\nActionID: hangup-1\r\nChannel: {channel_id}\r\nCause: 16\r\n\r\n\
         Action: Hangup\r\nActionID: hangup-2\r\nChannel: c2d-nosuchchannel\r\nCause: 16\r\n\r\n"
    )
    .into_bytes()
}

/// Logs in, sends `originate` 0.55 s later (as the older recordings did), then `cut`'s
/// `Hangup`s; reads until the phones are done and Asterisk has been quiet for 2.5 s, logs off.
fn record_call(
    name: &str,
    phones: &mut [Phone],
    asterisk: &Asterisk,
    originate: &[u8],
    cut: Option<Cut>,
) {
    let mut session = Session::open(&asterisk.ami_address());
    session.send(b"Action: Login\r\nActionID: login-1\r\nUsername: c2d\r\nSecret: secret\r\n\r\n");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !session.text().contains("Event: FullyBooted") {
        assert!(Instant::now() < deadline, "login: {}", session.text());
        session.read_for(Duration::from_millis(50));
    }
    session.read_for(Duration::from_millis(550));
    session.send(originate);
    let deadline = Instant::now() + Duration::from_secs(60);
    if let Some(cut) = cut {
        while session.text().matches(cut.after).count() < cut.count {
            assert!(
                Instant::now() < deadline,
                "never {}: {}",
                cut.after,
                session.text()
            );
            session.read_for(Duration::from_millis(20));
        }
        session.read_for(Duration::from_millis(1000));
        session.send(&(cut.actions)());
    }
    for phone in phones.iter_mut() {
        while phone.wait(Duration::from_millis(10)).is_none() {
            assert!(Instant::now() < deadline, "the phones never finished");
            session.read_for(Duration::from_millis(50));
        }
    }
    // Until quiet.
    loop {
        let before = session.received.len();
        session.read_for(Duration::from_millis(2500));
        if session.received.len() == before {
            break;
        }
    }
    session.send(b"Action: Logoff\r\nActionID: logoff-1\r\n\r\n");
    let closed = session.read_for(Duration::from_secs(3));
    write_case(name, &session, asterisk, closed);
    let problems = asterisk.problems();
    assert!(problems.is_empty(), "{problems:#?}");
}

fn asterisk() -> Asterisk {
    Asterisk::start(Site {
        manager_extra: RECORDED_MANAGER.into(),
        ..Site::default()
    })
}

/// Who runs a SIPp scenario in a recording.
#[derive(Clone, Copy)]
enum Who {
    /// The carrier trunk: the callee.
    Carrier,
    /// Phone 1000, the one-leg call's direct destination.
    Desk,
    /// Phone 1001, the two-leg call's agent.
    Agent,
}

/// Starts `who`'s phone with `scenario` (a file of `tests/asterisk/sipp/`).
fn phone(asterisk: &Asterisk, who: Who, scenario: &str, name: &str) -> Phone {
    let (port, label) = match who {
        Who::Carrier => (asterisk.carrier_port, "carrier"),
        Who::Desk => (asterisk.phone_port("1000"), "1000"),
        Who::Agent => (asterisk.phone_port("1001"), "1001"),
    };
    let phone = Sipp::new(scenario, port).run(
        &asterisk.sip_address(),
        &asterisk.dir.join(format!("{name}-{label}")),
    );
    std::thread::sleep(Duration::from_millis(300));
    phone
}

/// Records case `name` on a fresh Asterisk: `phones` started, then `originate` (and `cut`).
fn record(name: &str, phones: &[(Who, &str)], originate: &[u8], cut: Option<Cut>) {
    let asterisk = asterisk();
    let mut running: Vec<Phone> = phones
        .iter()
        .map(|&(who, scenario)| phone(&asterisk, who, scenario, name))
        .collect();
    record_call(name, &mut running, &asterisk, originate, cut);
}

/// Once a phone rings (the `n`th `Ringing` state seen).
const fn ringing(count: usize) -> Option<Cut> {
    Some(Cut {
        after: "ChannelStateDesc: Ringing",
        count,
        actions: hangup_actions,
    })
}

/// Once two channels entered a bridge.
const BRIDGED: Option<Cut> = Some(Cut {
    after: "Event: BridgeEnter",
    count: 2,
    actions: hangup_actions,
});

/// `CoreShowChannels`: what a host would ask after logging in again, to learn which of its
/// calls still have channels.
fn core_show_channels() -> Vec<u8> {
    b"Action: CoreShowChannels\r\nActionID: show-1\r\n\r\n".to_vec()
}

const DEFAULT: DialControls = DialControls::DEFAULT;

/// A max duration of 3 s.
const MAX_3S: DialControls = DialControls {
    max_duration_secs: Some(3),
    ..DialControls::DEFAULT
};

/// The callee answers; `[c2d-direct-destination]` rings phone 1000, which answers and hangs
/// up after 3 s.
#[test]
#[ignore = "records a fixture on a real Asterisk"]
fn record_i_one_leg_success() {
    let phones = [(Who::Carrier, "answer_long.xml"), (Who::Desk, "answer.xml")];
    record("i_one_leg_success", &phones, &one_leg_originate(), None);
}

/// The callee answers 486: nothing is connected or recorded.
#[test]
#[ignore = "records a fixture on a real Asterisk"]
fn record_i2_one_leg_callee_busy() {
    let phones = [(Who::Carrier, "busy_486.xml")];
    record(
        "i2_one_leg_callee_busy",
        &phones,
        &one_leg_originate(),
        None,
    );
}

/// `DELETE` of a ringing one-leg call: the callee's phone rings (never answers) when the
/// host hangs the call's channel up by `Uniqueid`; then a `Hangup` of an unknown channel.
#[test]
#[ignore = "records a fixture on a real Asterisk"]
fn record_j_hangup_ringing() {
    let phones = [(Who::Carrier, "noanswer.xml")];
    record(
        "j_hangup_ringing",
        &phones,
        &one_leg_originate(),
        ringing(1),
    );
}

/// `DELETE` of a connected one-leg call (callee and phone 1000 bridged).
#[test]
#[ignore = "records a fixture on a real Asterisk"]
fn record_j2_hangup_connected() {
    let phones = [
        (Who::Carrier, "answer_long.xml"),
        (Who::Desk, "answer_long.xml"),
    ];
    record(
        "j2_hangup_connected",
        &phones,
        &one_leg_originate(),
        BRIDGED,
    );
}

/// A one-leg call of `max_duration_secs: 3`: both phones would talk for 30 s; Dial's `S(3)`
/// cuts it.
#[test]
#[ignore = "records a fixture on a real Asterisk"]
fn record_j3_max_duration() {
    let phones = [
        (Who::Carrier, "answer_long.xml"),
        (Who::Desk, "answer_long.xml"),
    ];
    let originate = one_leg_originate_with(MAX_3S);
    record("j3_max_duration", &phones, &originate, None);
}

/// `DELETE` of a two-leg call whose agent's phone rings (never answers).
#[test]
#[ignore = "records a fixture on a real Asterisk"]
fn record_k_two_leg_hangup_ringing() {
    let phones = [(Who::Agent, "noanswer.xml")];
    let originate = two_leg_originate(DEFAULT);
    record("k_two_leg_hangup_ringing", &phones, &originate, ringing(1));
}

/// `DELETE` of a connected two-leg call: agent and callee answered and are bridged.
#[test]
#[ignore = "records a fixture on a real Asterisk"]
fn record_k2_two_leg_hangup_connected() {
    let phones = [
        (Who::Agent, "answer_long.xml"),
        (Who::Carrier, "answer_long.xml"),
    ];
    let originate = two_leg_originate(DEFAULT);
    record("k2_two_leg_hangup_connected", &phones, &originate, BRIDGED);
}

/// A two-leg call of `max_duration_secs: 3`: both phones would talk for 30 s.
#[test]
#[ignore = "records a fixture on a real Asterisk"]
fn record_k3_two_leg_max_duration() {
    let phones = [
        (Who::Agent, "answer_long.xml"),
        (Who::Carrier, "answer_long.xml"),
    ];
    let originate = two_leg_originate(MAX_3S);
    record("k3_two_leg_max_duration", &phones, &originate, None);
}

/// `DELETE` of a two-leg call whose agent answered while the callee's phone rings.
#[test]
#[ignore = "records a fixture on a real Asterisk"]
fn record_k4_two_leg_hangup_dialling() {
    let phones = [
        (Who::Agent, "answer_long.xml"),
        (Who::Carrier, "noanswer.xml"),
    ];
    let originate = two_leg_originate(DEFAULT);
    record(
        "k4_two_leg_hangup_dialling",
        &phones,
        &originate,
        ringing(2),
    );
}

/// A connected two-leg call, asked `CoreShowChannels` once both legs are bridged (the answer
/// a re-synchronising host would read); both phones hang up after 30 s. Kept apart from the
/// call cases, in `core/tests/fixtures/ami/queries/`.
#[test]
#[ignore = "records a fixture on a real Asterisk"]
fn record_l_core_show_channels_connected() {
    let phones = [
        (Who::Agent, "answer_long.xml"),
        (Who::Carrier, "answer_long.xml"),
    ];
    let originate = two_leg_originate(DEFAULT);
    let asked = Some(Cut {
        after: "Event: BridgeEnter",
        count: 2,
        actions: core_show_channels,
    });
    record("l_core_show_channels_connected", &phones, &originate, asked);
}

/// The agent's phone rings (it never answers): `CoreShowChannels` asked while it rings, the
/// list a re-synchronising host reads for a call not answered yet. In `queries/` too.
#[test]
#[ignore = "records a fixture on a real Asterisk"]
fn record_l2_core_show_channels_ringing() {
    let phones = [(Who::Agent, "noanswer.xml")];
    let originate = two_leg_originate(DEFAULT);
    let asked = Some(Cut {
        after: "ChannelStateDesc: Ringing",
        count: 1,
        actions: core_show_channels,
    });
    record("l2_core_show_channels_ringing", &phones, &originate, asked);
}
