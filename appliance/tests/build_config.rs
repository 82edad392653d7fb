//! The build refuses what the host's `check-config` refuses: `build.rs` runs core's
//! configuration check, and the error it stops the build with is core's message.

#[allow(dead_code)]
#[path = "../build.rs"]
mod build_script;

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

/// Every case of core's table of refused values (`core/tests/fixtures/config/refused.toml`,
/// which host/tests/config.rs runs through `check-config`) stops the build with its message.
#[test]
fn dialplan_and_policy_are_refused_with_cores_message() {
    let table: toml::Table = include_str!("../../core/tests/fixtures/config/refused.toml")
        .parse()
        .expect("the table is TOML");
    let cases = table["case"].as_array().expect("cases");
    assert!(cases.len() >= 5, "{cases:?}");
    for (i, case) in cases.iter().enumerate() {
        let field = |name: &str| case[name].as_str().expect("a string");
        let line = field("line");
        assert_eq!(
            generate(&format!("case-{i}"), &file_with(field("section"), line)),
            Err(field("message").to_string()),
            "{line}"
        );
    }
    assert!(
        generate("digits", &file_with("dialplan", "callee_digits = \"E164\""))
            .is_err_and(|e| e.contains("dialplan.callee_digits"))
    );
}
