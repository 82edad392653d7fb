//! The build refuses what the host's `check-config` refuses: `build.rs` runs core's
//! configuration check, and the error it stops the build with is core's message.

#[allow(dead_code)]
#[path = "../build.rs"]
mod build_script;

use click2dial_core::config::ConfigError;

/// The board's file with `line` added to its `section`.
fn file_with(section: &str, line: &str) -> String {
    let base = "[network]\nmode = \"dhcp\"\n\n[ami]\naddress = \"10.0.2.2:5038\"\n\
                username = \"c2d\"\nsecret = \"s3cret\"\n";
    format!("{base}\n[{section}]\n{line}\n")
}

fn generate(name: &str, text: &str) -> Result<String, String> {
    let path =
        std::env::temp_dir().join(format!("c2d-appliance-{}-{name}.toml", std::process::id()));
    std::fs::write(&path, text).expect("write the file");
    let result = build_script::generate(&path);
    let _ = std::fs::remove_file(&path);
    result
}

#[test]
fn the_example_files_build() {
    for text in [
        file_with("dialplan", "agent_tech = \"PJSIP\""),
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/appliance.toml"))
            .expect("appliance.toml"),
    ] {
        let source = generate("good", &text).expect("accepted");
        assert!(source.contains("pub const BUILD: Config"), "{source}");
    }
}

#[test]
fn a_policy_not_given_is_cores_default() {
    let default = click2dial_core::DialPolicy::SOUTH_AFRICA;
    let source =
        generate("default", &file_with("dialplan", "agent_tech = \"PJSIP\"")).expect("accepted");
    let expected = format!(
        "policy: DialPolicy {{ allowed_country_codes: &{:?}, refuse_premium_rate: {}, \
         denied_prefixes: &{:?} }}",
        default.allowed_country_codes, default.refuse_premium_rate, default.denied_prefixes
    );
    assert!(source.contains(&expected), "{expected}\n{source}");
    // One list given, the rest still core's.
    let source = generate(
        "partial",
        &file_with("policy", "allowed_country_codes = [\"44\"]"),
    )
    .expect("accepted");
    let expected = format!(
        "policy: DialPolicy {{ allowed_country_codes: &[\"44\"], refuse_premium_rate: {}, \
         denied_prefixes: &{:?} }}",
        default.refuse_premium_rate, default.denied_prefixes
    );
    assert!(source.contains(&expected), "{expected}\n{source}");
}

#[test]
fn dialplan_and_policy_are_refused_with_cores_message() {
    for (name, section, line, error) in [
        (
            "no-slash",
            "dialplan",
            "direct_channel = \"Local-no-slash\"",
            ConfigError::Form {
                key: "dialplan.direct_channel",
                expected: "<tech>/<resource> with {callee} in the resource, \
                           e.g. Local/{callee}@c2d-single",
            },
        ),
        (
            "blank",
            "dialplan",
            "outbound_context = \"c2d outbound\"",
            ConfigError::Character {
                key: "dialplan.outbound_context",
            },
        ),
        (
            "ring",
            "dialplan",
            "agent_ring_timeout_ms = 0",
            ConfigError::OutOfRange {
                key: "dialplan.agent_ring_timeout_ms",
                min: click2dial_core::config::MIN_RING_TIMEOUT_MS,
                max: click2dial_core::config::MAX_RING_TIMEOUT_MS,
            },
        ),
        (
            "code",
            "policy",
            "allowed_country_codes = [\"44\", \"+49\"]",
            ConfigError::Digits {
                key: "policy.allowed_country_codes",
                index: 1,
                max: 3,
            },
        ),
    ] {
        assert_eq!(
            generate(name, &file_with(section, line)),
            Err(error.to_string()),
            "{line}"
        );
    }
    assert!(
        generate("digits", &file_with("dialplan", "callee_digits = \"E164\""))
            .is_err_and(|e| e.contains("dialplan.callee_digits"))
    );
}
