//! The configuration file, environment overrides and `check-config`, through the binary.

use std::process::Command;

fn host() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_click2dial-host"));
    // The tests' own environment must not leak overrides in.
    for (key, _) in std::env::vars() {
        if key.starts_with("C2D_") {
            c.env_remove(key);
        }
    }
    c
}

fn write(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("click2dial.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

#[test]
fn check_config_prints_the_effective_configuration_with_secrets_masked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        &dir,
        "[ami]\nsecret = \"s3cret\"\naddress = \"10.0.0.5:5038\"\n[redis]\nurl = \"redis://:hunter2@127.0.0.1:6379/0\"\n",
    );
    let out = host()
        .args(["--config", path.to_str().expect("utf-8"), "check-config"])
        .env("C2D_HTTP__PORT", "9090")
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let parsed: toml::Value = toml::from_str(&text).expect("TOML");
    assert_eq!(parsed["ami"]["address"].as_str(), Some("10.0.0.5:5038"));
    assert_eq!(
        parsed["http"]["http_port"].as_integer(),
        Some(9090),
        "env overrides file"
    );
    assert_eq!(parsed["ami"]["secret"].as_str(), Some("********"));
    assert!(!text.contains("s3cret"));
    assert!(!text.contains("hunter2"));
    assert_eq!(
        parsed["redis"]["call_key_template"].as_str(),
        Some("teleforge:notifications:c2d:{contact_ref}")
    );
}

#[test]
fn a_bad_file_names_the_key_and_exits_non_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (text, key) in [
        ("[http]\nhttp_port = \"eighty\"\n", "http_port"),
        ("[ami]\nsekret = \"x\"\n", "sekret"),
        (
            "[redis]\ncall_key_template = \"one-list\"\n",
            "redis.call_key_template",
        ),
        (
            "[policy]\nallowed_country_codes = [\"+44\"]\n",
            "policy.allowed_country_codes",
        ),
        ("[http\n", "TOML"),
    ] {
        let path = write(&dir, text);
        let out = host()
            .args(["--config", path.to_str().expect("utf-8"), "check-config"])
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(key) || (key == "TOML" && err.contains("click2dial.toml")),
            "{text:?} → {err}"
        );
    }
    let out = host()
        .args(["--config", "/nonexistent/click2dial.toml", "check-config"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn environment_overrides_reach_nested_lists() {
    let out = host()
        .arg("check-config")
        .env("C2D_POLICY__ALLOWED_COUNTRY_CODES", "[\"44\",\"49\"]")
        .env("C2D_AMI__SECRET", "from-env")
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: toml::Value =
        toml::from_str(&String::from_utf8(out.stdout).expect("utf-8")).expect("TOML");
    let codes: Vec<&str> = parsed["policy"]["allowed_country_codes"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(codes, ["44", "49"]);
    assert_eq!(parsed["ami"]["secret"].as_str(), Some("********"));
}
