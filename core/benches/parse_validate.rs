//! Create-call parsing and validation: `click2dial-core` against the code most services would
//! write (serde_json into owned `String`s, one `regex` per accepted form, `format!` for E.164).
//!
//! Both paths run over the same mix of request bodies per iteration; before anything is
//! measured they are checked to accept and reject exactly the same bodies, with the same
//! normalised result. After criterion has run, the medians and their ratio are printed from
//! criterion's `estimates.json`.
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/target-bench cargo bench -p click2dial-core --bench parse_validate
//! ```

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use click2dial_core::number::E164_MAX_LEN;
use click2dial_core::{request, DialPolicy, Error, ValidCall, Validators, Warning};
use criterion::Criterion;
use regex::Regex;
use serde::Deserialize;

/// Criterion group name; also the directory criterion writes the estimates to.
const GROUP: &str = "parse_validate";
/// Benchmark id of the core path.
const ID_CORE: &str = "core";
/// Benchmark id of the baseline path.
const ID_BASELINE: &str = "baseline";

/// The request mix: mostly valid calls in every accepted form, and a few invalid ones.
const BODIES: &[&[u8]] = &[
    // National callee, 27 caller ID: the documented example.
    br#"{"agent":"1001","callee":"0820001234","outbound_id":"27820001234","contact_ref":"crm-42"}"#,
    // 27 callee, Verified Services campaign caller ID.
    br#"{"agent":"2002","callee":"27821234567","outbound_id":"tvc_spring-sale_2026","contact_ref":"crm-1043:lead.7"}"#,
    // 0027 callee, national caller ID (accepted with a warning).
    br#"{"agent":"1001","callee":"0027823456789","outbound_id":"0821110000","contact_ref":"crm-9001"}"#,
    // Integer agent.
    br#"{"agent":1001,"callee":"0114567890","outbound_id":"27114567890","contact_ref":"acct~77"}"#,
    // Legacy call_ref (before v3.0.0).
    br#"{"agent":"3456","callee":"0831234567","outbound_id":"27831234567","call_ref":"legacy-5521"}"#,
    // An unknown extra field, ignored.
    br#"{"agent":"1001","callee":"0820001234","outbound_id":"27820001234","contact_ref":"crm-43","source":"crm-widget"}"#,
    // No contact_ref: the server generates one.
    br#"{"agent":"4321","callee":"27219876543","outbound_id":"tvc_renewals","channel":"web"}"#,
    // One-leg call: agent equals callee.
    br#"{"agent":"0821234567","callee":"0821234567","outbound_id":"tvc_direct","contact_ref":"crm-46"}"#,
    // Invalid: callee too short.
    br#"{"agent":"1001","callee":"08200012","outbound_id":"27820001234","contact_ref":"crm-44"}"#,
    // Invalid: callee as a JSON number (the leading 0 is lost).
    br#"{"agent":"1001","callee":820001234,"outbound_id":"27820001234","contact_ref":"crm-45"}"#,
    // Refused by the dialling policy: premium rate (086 2…).
    br#"{"agent":"1001","callee":"0862001234","outbound_id":"27820001234","contact_ref":"crm-47"}"#,
];

// ---------------------------------------------------------------------------------------
// Core path

/// What the core path produces for an accepted body: the call and its E.164 forms, written
/// into stack buffers.
struct CoreAccepted<'a> {
    call: ValidCall<'a>,
    callee_e164: [u8; E164_MAX_LEN],
    callee_len: usize,
    outbound_e164: [u8; E164_MAX_LEN],
    outbound_len: Option<usize>,
}

/// Parses, validates, and writes the E.164 forms: the measured core path for one body.
#[inline(never)]
fn run_core<'a>(validators: &Validators, body: &'a [u8]) -> Result<CoreAccepted<'a>, Error> {
    let request = request::parse(body)?;
    let call = validators.validate(&request, &DialPolicy::SOUTH_AFRICA)?;
    let mut callee_e164 = [0u8; E164_MAX_LEN];
    let callee_len = call
        .callee
        .write_e164(&mut callee_e164)
        .map_err(|_| Error::INTERNAL)?;
    let mut outbound_e164 = [0u8; E164_MAX_LEN];
    let outbound_len = match call.outbound_id.number() {
        Some(number) => Some(
            number
                .write_e164(&mut outbound_e164)
                .map_err(|_| Error::INTERNAL)?,
        ),
        None => None,
    };
    Ok(CoreAccepted {
        call,
        callee_e164,
        callee_len,
        outbound_e164,
        outbound_len,
    })
}

// ---------------------------------------------------------------------------------------
// Baseline: the code most services would write

/// `agent` may be a string or an integer.
#[derive(Deserialize)]
#[serde(untagged)]
enum AgentField {
    Text(String),
    Integer(u64),
}

/// The request body, with owned strings.
#[derive(Deserialize)]
struct CreateCall {
    agent: AgentField,
    callee: String,
    outbound_id: String,
    #[serde(default)]
    contact_ref: Option<String>,
    #[serde(default)]
    call_ref: Option<String>,
}

/// A validated call, with owned strings.
struct BaselineCall {
    agent: String,
    callee_e164: String,
    outbound_id: String,
    outbound_e164: Option<String>,
    national_caller_id: bool,
    single_leg: bool,
    contact_ref: Option<String>,
    contact_ref_truncated: bool,
}

/// Why the baseline refused a body.
enum BaselineError {
    Json(serde_json::Error),
    Field(&'static str, &'static str),
}

impl std::fmt::Display for BaselineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Json(e) => write!(f, "malformed: {e}"),
            Self::Field(field, message) => write!(f, "{field}: {message}"),
        }
    }
}

/// Regexes compiled once, one per accepted form (the patterns of `core/build.rs`).
struct Baseline {
    agent: Regex,
    callee_national: Regex,
    callee_international: Regex,
    callee_prefixed: Regex,
    callee_foreign: Regex,
    outbound_campaign: Regex,
    outbound_national: Regex,
    outbound_international: Regex,
    contact_ref: Regex,
}

/// South African premium-rate prefixes of the national significant number.
const PREMIUM_PREFIXES: [&str; 11] = [
    "862", "863", "864", "865", "866", "867", "868", "869", "90", "91", "92",
];

impl Baseline {
    fn new() -> Self {
        let re = |p: &str| Regex::new(p).expect("valid regex");
        Self {
            agent: re(r"^[0-9]{3,4}$"),
            callee_national: re(r"^0[1-9][0-9]{8}$"),
            callee_international: re(r"^27[1-9][0-9]{8}$"),
            callee_prefixed: re(r"^0027[1-9][0-9]{8}$"),
            callee_foreign: re(r"^00(?:2[0-689]|[13-9])[0-9]{10,13}$"),
            outbound_campaign: re(r"^tvc_[A-Za-z0-9_-]{1,64}$"),
            outbound_national: re(r"^0[1-9][0-9]{8}$"),
            outbound_international: re(r"^27[1-9][0-9]{8}$"),
            contact_ref: re(r"^[A-Za-z0-9._~:-]+$"),
        }
    }

    /// Parses, validates, and formats the E.164 forms: the measured baseline for one body.
    #[inline(never)]
    fn run(&self, body: &[u8]) -> Result<BaselineCall, BaselineError> {
        let req: CreateCall = serde_json::from_slice(body).map_err(BaselineError::Json)?;
        let agent = match req.agent {
            AgentField::Text(s) => s,
            AgentField::Integer(n) => n.to_string(),
        };
        let single_leg = agent == req.callee;
        if !single_leg && !self.agent.is_match(&agent) {
            return Err(BaselineError::Field("agent", "invalid agent"));
        }
        let callee = &req.callee;
        // (E.164, national significant number; None for a foreign number)
        let (callee_e164, nsn) = if self.callee_national.is_match(callee) {
            (format!("+27{}", &callee[1..]), Some(&callee[1..]))
        } else if self.callee_international.is_match(callee) {
            (format!("+{callee}"), Some(&callee[2..]))
        } else if self.callee_prefixed.is_match(callee) {
            (format!("+{}", &callee[2..]), Some(&callee[4..]))
        } else if self.callee_foreign.is_match(callee) {
            (format!("+{}", &callee[2..]), None)
        } else {
            return Err(BaselineError::Field("callee", "invalid callee"));
        };
        let outbound = &req.outbound_id;
        let (outbound_e164, national_caller_id) = if self.outbound_campaign.is_match(outbound) {
            (None, false)
        } else if self.outbound_national.is_match(outbound) {
            (Some(format!("+27{}", &outbound[1..])), true)
        } else if self.outbound_international.is_match(outbound) {
            (Some(format!("+{outbound}")), false)
        } else {
            return Err(BaselineError::Field("outbound_id", "invalid outbound_id"));
        };
        let given = |r: Option<String>| r.filter(|s| !s.is_empty());
        let contact_ref = match (given(req.contact_ref), given(req.call_ref)) {
            (Some(c), Some(l)) if c != l => {
                return Err(BaselineError::Field("contact_ref", "ambiguous reference"))
            }
            (Some(c), _) | (None, Some(c)) => Some(c),
            (None, None) => None,
        };
        let mut contact_ref_truncated = false;
        let contact_ref = match contact_ref {
            Some(mut r) => {
                if !self.contact_ref.is_match(&r) {
                    return Err(BaselineError::Field("contact_ref", "invalid contact_ref"));
                }
                if r.len() > 230 {
                    r.truncate(230);
                    contact_ref_truncated = true;
                }
                Some(r)
            }
            None => None,
        };
        match nsn {
            None => return Err(BaselineError::Field("callee", "foreign number refused")),
            Some(nsn) if PREMIUM_PREFIXES.iter().any(|p| nsn.starts_with(p)) => {
                return Err(BaselineError::Field(
                    "callee",
                    "premium-rate number refused",
                ))
            }
            Some(_) => {}
        }
        Ok(BaselineCall {
            agent,
            callee_e164,
            outbound_id: req.outbound_id,
            outbound_e164,
            national_caller_id,
            single_leg,
            contact_ref,
            contact_ref_truncated,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Honesty check: both paths must agree on every body before either is measured

/// A path's result for one body, in a form both can produce.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Rejected,
    Accepted {
        agent: String,
        callee_e164: String,
        outbound_id: String,
        outbound_e164: Option<String>,
        national_caller_id: bool,
        single_leg: bool,
        contact_ref: Option<String>,
        contact_ref_truncated: bool,
    },
}

fn core_outcome(validators: &Validators, body: &[u8]) -> Outcome {
    match run_core(validators, body) {
        Err(_) => Outcome::Rejected,
        Ok(a) => {
            let text = |b: &[u8]| String::from_utf8(b.to_vec()).expect("E.164 is ASCII");
            Outcome::Accepted {
                agent: a.call.agent.to_owned(),
                callee_e164: text(&a.callee_e164[..a.callee_len]),
                outbound_id: a.call.outbound_id.as_str().to_owned(),
                outbound_e164: a.outbound_len.map(|n| text(&a.outbound_e164[..n])),
                national_caller_id: a.call.warnings.contains(Warning::OutboundIdNational),
                single_leg: a.call.single_leg,
                contact_ref: a.call.contact_ref.map(str::to_owned),
                contact_ref_truncated: a.call.warnings.contains(Warning::ContactRefTruncated),
            }
        }
    }
}

fn baseline_outcome(baseline: &Baseline, body: &[u8]) -> Outcome {
    match baseline.run(body) {
        Err(_) => Outcome::Rejected,
        Ok(c) => Outcome::Accepted {
            agent: c.agent,
            callee_e164: c.callee_e164,
            outbound_id: c.outbound_id,
            outbound_e164: c.outbound_e164,
            national_caller_id: c.national_caller_id,
            single_leg: c.single_leg,
            contact_ref: c.contact_ref,
            contact_ref_truncated: c.contact_ref_truncated,
        },
    }
}

/// Panics unless both paths give the same outcome for every body of the mix.
fn assert_same_outcomes(validators: &Validators, baseline: &Baseline) {
    let mut accepted = 0;
    for body in BODIES {
        let core = core_outcome(validators, body);
        let base = baseline_outcome(baseline, body);
        assert_eq!(
            core,
            base,
            "core and baseline disagree on {} (core: {:?}; baseline: {})",
            String::from_utf8_lossy(body),
            run_core(validators, body).err(),
            baseline
                .run(body)
                .err()
                .map_or(String::new(), |e| e.to_string()),
        );
        if matches!(core, Outcome::Accepted { .. }) {
            accepted += 1;
        }
    }
    assert!(
        accepted > 0 && accepted < BODIES.len(),
        "the mix should hold valid and invalid bodies"
    );
}

// ---------------------------------------------------------------------------------------
// Benchmarks

fn bench(c: &mut Criterion) {
    let validators = Validators::new().expect("embedded DFAs load");
    let baseline = Baseline::new();
    assert_same_outcomes(&validators, &baseline);

    let mut group = c.benchmark_group(GROUP);
    group.bench_function(ID_CORE, |b| {
        b.iter(|| {
            for &body in BODIES {
                let _ = black_box(run_core(black_box(&validators), black_box(body)));
            }
        })
    });
    group.bench_function(ID_BASELINE, |b| {
        b.iter(|| {
            for &body in BODIES {
                let _ = black_box(black_box(&baseline).run(black_box(body)));
            }
        })
    });
    group.finish();
}

/// The benchmark group, with short run times for a shared machine.
mod group {
    // `criterion_group!` generates an undocumented `pub fn benches`.
    #![allow(missing_docs, unreachable_pub)]

    use std::time::Duration;

    use criterion::{criterion_group, Criterion};

    criterion_group! {
        name = benches;
        config = Criterion::default()
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3))
            .sample_size(50);
        targets = super::bench
    }
}

// ---------------------------------------------------------------------------------------
// Summary

/// Where criterion writes its results: the same order of preference criterion uses.
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("criterion")
}

/// The median (ns per iteration) criterion estimated for `id` in this run; `None` when the
/// benchmark did not run now (`--test`, `--list`, a filter), so a stale file is never read.
fn median_ns(id: &str, since: SystemTime) -> Option<f64> {
    let path = criterion_dir()
        .join(GROUP)
        .join(id)
        .join("new/estimates.json");
    let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
    if modified < since {
        return None;
    }
    let text = std::fs::read(&path).ok()?;
    let estimates: serde_json::Value = serde_json::from_slice(&text).ok()?;
    estimates["median"]["point_estimate"].as_f64()
}

fn print_summary(since: SystemTime) {
    let per_body = |ns: f64| ns / BODIES.len() as f64;
    let core = median_ns(ID_CORE, since);
    let baseline = median_ns(ID_BASELINE, since);
    for (name, median) in [("core", core), ("baseline", baseline)] {
        if let Some(ns) = median {
            println!(
                "median {name}: {ns:.1} ns per mix ({:.1} ns per body, {} bodies)",
                per_body(ns),
                BODIES.len()
            );
        }
    }
    if let (Some(core), Some(baseline)) = (core, baseline) {
        println!("ratio baseline/core: {:.2}x", baseline / core);
    }
}

/// `C2D_BENCH_ONLY=core|baseline` runs that path over the mix `C2D_BENCH_ITERS` times
/// (default 10 000) and nothing else, for an instruction count under
/// `valgrind --tool=callgrind` (see `core/benches/instructions.sh`): unlike wall time, it
/// does not depend on what else the machine is doing.
fn run_only(which: &str) {
    let iterations: usize = std::env::var("C2D_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let validators = Validators::new().expect("embedded DFAs load");
    let baseline = Baseline::new();
    for _ in 0..iterations {
        for &body in BODIES {
            if which == ID_CORE {
                let _ = black_box(run_core(black_box(&validators), black_box(body)));
            } else {
                let _ = black_box(black_box(&baseline).run(black_box(body)));
            }
        }
    }
}

fn main() {
    if let Ok(which) = std::env::var("C2D_BENCH_ONLY") {
        run_only(&which);
        return;
    }
    // A little slack for file systems with coarse modification times.
    let started = SystemTime::now() - Duration::from_secs(2);
    group::benches();
    Criterion::default().configure_from_args().final_summary();
    print_summary(started);
}
