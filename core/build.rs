//! Compiles the field validators into dense DFAs and serialises them into `OUT_DIR`.
//!
//! The patterns are the single source of truth for what each field accepts; the run-time
//! code only deserialises the tables (`DFA::from_bytes`) and walks them. Each pattern set is
//! matched anchored at both ends by the caller (walk every byte, then one more byte in place of
//! the end-of-input transition), so the patterns carry no `^`/`$`. The patterns of one field
//! start differently: the caller reads the form of an accepted value from its leading bytes,
//! and debug builds check it against the pattern index the DFA reports (pattern order matters).

use std::{env, fs, path::PathBuf};

use regex_automata::{
    dfa::{dense, StartKind},
    nfa::thompson,
    util::syntax,
    MatchKind,
};

/// One validator: file name and its patterns, in the order of the run-time form enums.
const VALIDATORS: &[(&str, &[&str])] = &[
    // A 3–4 digit extension.
    ("agent", &["[0-9]{3,4}"]),
    // National, 27 + NSN, 00 27 + NSN, 00 + another country code (never 0, never 27).
    (
        "callee",
        &[
            "0[1-9][0-9]{8}",
            "27[1-9][0-9]{8}",
            "0027[1-9][0-9]{8}",
            "00(?:2[0-689][0-9]{9,12}|[13-9][0-9]{10,13})",
        ],
    ),
    // Verified Services campaign, national (warned), 27 + NSN (recommended).
    (
        "outbound_id",
        &[
            "tvc_[A-Za-z0-9_-]{1,64}",
            "0[1-9][0-9]{8}",
            "27[1-9][0-9]{8}",
        ],
    ),
    // Charset only; the length rule (truncation at 230) is applied by the caller.
    ("contact_ref", &["[A-Za-z0-9._~:-]+"]),
    // What the reference generator emits: 26 characters of lowercase RFC 4648 base32.
    ("recording_ref", &["[a-z2-7]{26}"]),
];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let big_endian = env::var("CARGO_CFG_TARGET_ENDIAN").as_deref() == Ok("big");

    for (name, patterns) in VALIDATORS {
        let nfa = thompson::Compiler::new()
            .syntax(syntax::Config::new().unicode(false).utf8(false))
            .configure(thompson::Config::new().utf8(false))
            .build_many(patterns)
            .unwrap_or_else(|e| panic!("validator {name}: {e}"));
        // The run-time walk ends with one more byte instead of the end-of-input transition
        // (`validate.rs`, `FieldDfa::full_match`): the same thing only while no pattern has
        // a look-around assertion (`^`, `$`, `\b`, ...).
        assert!(
            nfa.look_set_any().is_empty(),
            "validator {name}: patterns must not use look-around assertions"
        );
        let dfa = dense::Builder::new()
            .configure(
                dense::Config::new()
                    .match_kind(MatchKind::All)
                    .start_kind(StartKind::Anchored)
                    .minimize(true),
            )
            .build_from_nfa(&nfa)
            .unwrap_or_else(|e| panic!("validator {name}: {e}"));
        let (bytes, pad) = if big_endian {
            dfa.to_bytes_big_endian()
        } else {
            dfa.to_bytes_little_endian()
        };
        fs::write(out_dir.join(format!("{name}.dfa")), &bytes[pad..])
            .unwrap_or_else(|e| panic!("writing {name}.dfa: {e}"));
    }
}
