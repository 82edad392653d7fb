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

/// The output of a `check-config` that must succeed, as text and as parsed TOML.
fn effective(out: std::process::Output) -> (String, toml::Value) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let parsed = toml::from_str(&text).expect("TOML");
    (text, parsed)
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
    let (text, parsed) = effective(out);
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

/// `[dialplan]` and `[policy]` go through core's check, the one the appliance's build runs:
/// every case of core's table of refused values (`core/tests/fixtures/config/refused.toml`,
/// which appliance/tests/build_config.rs runs through the build) is refused with its message.
#[test]
fn check_config_refuses_what_the_firmware_build_refuses_with_cores_message() {
    let table: toml::Table = include_str!("../../core/tests/fixtures/config/refused.toml")
        .parse()
        .expect("the table is TOML");
    let cases = table["case"].as_array().expect("cases");
    assert!(cases.len() >= 5, "{cases:?}");
    let dir = tempfile::tempdir().expect("tempdir");
    for case in cases {
        let field = |name: &str| case[name].as_str().expect("a string").to_string();
        let text = format!("[{}]\n{}\n", field("section"), field("line"));
        let path = write(&dir, &text);
        let out = host()
            .args(["--config", path.to_str().expect("utf-8"), "check-config"])
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&field("message")), "{text:?} → {err}");
    }
}

/// `[redis] sentinels` replaces `url`: the two together, or Sentinel's keys without
/// sentinels, are refused naming the key; the sentinels' and the master's passwords are
/// masked.
#[test]
fn sentinel_keys_are_checked_and_their_passwords_masked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sentinels =
        "sentinels = [\"redis://:sentinelpw@10.0.0.1:26379\", \"redis://10.0.0.2:26379\"]\n";
    let path = write(
        &dir,
        &format!("[redis]\n{sentinels}master_name = \"c2d\"\nmaster_password = \"masterpw\"\n"),
    );
    let out = host()
        .args(["--config", path.to_str().expect("utf-8"), "check-config"])
        .output()
        .expect("runs");
    let (text, parsed) = effective(out);
    assert_eq!(parsed["redis"]["master_name"].as_str(), Some("c2d"));
    assert_eq!(
        parsed["redis"]["sentinels"].as_array().map(Vec::len),
        Some(2)
    );
    assert!(!text.contains("sentinelpw"), "{text}");
    assert!(!text.contains("masterpw"), "{text}");
    assert!(
        parsed["redis"].get("url").is_none(),
        "no url next to the sentinels: the output loads again"
    );
    let again = write(&dir, &text);
    let out = host()
        .args(["--config", again.to_str().expect("utf-8"), "check-config"])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (text, env, key) in [
        (
            format!(
                "[redis]\n{sentinels}master_name = \"c2d\"\nurl = \"redis://127.0.0.1:6379\"\n"
            ),
            None,
            "redis.url",
        ),
        (
            format!("[redis]\n{sentinels}master_name = \"c2d\"\n"),
            Some(("C2D_REDIS__URL", "redis://127.0.0.1:6379")),
            "redis.url",
        ),
        (format!("[redis]\n{sentinels}"), None, "redis.master_name"),
        (
            "[redis]\nmaster_name = \"c2d\"\n".to_string(),
            None,
            "redis.master_name",
        ),
        (
            "[redis]\nsentinels = [\"10.0.0.1:26379\"]\nmaster_name = \"c2d\"\n".to_string(),
            None,
            "redis.sentinels",
        ),
    ] {
        let path = write(&dir, &text);
        let mut command = host();
        command.args(["--config", path.to_str().expect("utf-8"), "check-config"]);
        if let Some((name, value)) = env {
            command.env(name, value);
        }
        let out = command.output().expect("runs");
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("`{key}`")), "{text:?} → {err}");
    }
}

/// `[redis] cluster` replaces `url`: with `url`, with `sentinels`, with Sentinel's keys,
/// with a bad node URL or with `{recording_ref}` in the list template it is refused, naming
/// the key; node passwords are masked and the output loads again.
#[test]
fn cluster_keys_are_checked_and_their_passwords_masked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = "cluster = [\"redis://:nodepw@10.0.0.1:7000\", \"redis://10.0.0.2:7000\"]\n";
    let path = write(&dir, &format!("[redis]\n{cluster}"));
    let out = host()
        .args(["--config", path.to_str().expect("utf-8"), "check-config"])
        .output()
        .expect("runs");
    let (text, parsed) = effective(out);
    assert_eq!(parsed["redis"]["cluster"].as_array().map(Vec::len), Some(2));
    assert!(!text.contains("nodepw"), "{text}");
    assert!(parsed["redis"].get("url").is_none(), "{text}");
    let again = write(&dir, &text);
    let out = host()
        .args(["--config", again.to_str().expect("utf-8"), "check-config"])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (text, env, key, says) in [
        (
            format!("[redis]\n{cluster}sentinels = [\"redis://10.0.0.9:26379\"]\nmaster_name = \"c2d\"\n"),
            None,
            "redis.cluster",
            "not with redis.sentinels",
        ),
        (
            format!("[redis]\n{cluster}url = \"redis://127.0.0.1:6379\"\n"),
            None,
            "redis.url",
            "not with redis.cluster",
        ),
        (
            format!("[redis]\n{cluster}"),
            Some(("C2D_REDIS__URL", "redis://127.0.0.1:6379")),
            "redis.url",
            "not with redis.cluster",
        ),
        (
            format!("[redis]\n{cluster}master_name = \"c2d\"\n"),
            None,
            "redis.master_name",
            "only for",
        ),
        (
            "[redis]\ncluster = [\"10.0.0.1:7000\"]\n".to_string(),
            None,
            "redis.cluster",
            "not a cluster node's URL",
        ),
        (
            "[redis]\ncluster = [\"redis://10.0.0.1:7000/3\"]\n".to_string(),
            None,
            "redis.cluster",
            "database 0",
        ),
        (
            format!("[redis]\n{cluster}call_key_template = \"c2d:{{contact_ref}}:{{recording_ref}}\"\n"),
            None,
            "redis.call_key_template",
            "{recording_ref}",
        ),
    ] {
        let path = write(&dir, &text);
        let mut command = host();
        command.args(["--config", path.to_str().expect("utf-8"), "check-config"]);
        if let Some((name, value)) = env {
            command.env(name, value);
        }
        let out = command.output().expect("runs");
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("`{key}`")), "{text:?} → {err}");
        assert!(err.contains(says), "{text:?} → {err}");
    }
}

#[test]
fn environment_overrides_reach_nested_lists() {
    let out = host()
        .arg("check-config")
        .env("C2D_POLICY__ALLOWED_COUNTRY_CODES", "[\"44\",\"49\"]")
        .env("C2D_AMI__SECRET", "from-env")
        .output()
        .expect("runs");
    let (_, parsed) = effective(out);
    let codes: Vec<&str> = parsed["policy"]["allowed_country_codes"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(codes, ["44", "49"]);
    assert_eq!(parsed["ami"]["secret"].as_str(), Some("********"));
}

#[test]
fn api_keys_come_from_the_file_or_the_environment_and_are_checked() {
    let hash = "sha256:6ea7a695ba70270cbdd09e7d3e7957532c35ccc651264b051f9915ce43483668";
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        &dir,
        &format!(
            "[[auth.keys]]\nid = \"crm\"\nhash = \"{hash}\"\noutbound_ids = [\"27820001234\"]\nagents = \"1000-1999\"\nrate_per_minute = 30\n"
        ),
    );
    let out = host()
        .args(["--config", path.to_str().expect("utf-8"), "check-config"])
        .output()
        .expect("runs");
    let (text, parsed) = effective(out);
    let key = &parsed["auth"]["keys"][0];
    assert_eq!(key["id"].as_str(), Some("crm"));
    assert_eq!(key["agents"].as_str(), Some("1000-1999"));
    assert_eq!(key["rate_per_minute"].as_integer(), Some(30));
    assert!(!text.contains(hash), "the hash is shortened");

    let out = host()
        .arg("check-config")
        .env(
            "C2D_AUTH__KEYS",
            format!(
                r#"[{{id="a",hash="{hash}"}},{{id="b",hash="{}"}}]"#,
                hash.replace("6ea7", "7ea7")
            ),
        )
        .output()
        .expect("runs");
    let (_, parsed) = effective(out);
    assert_eq!(parsed["auth"]["keys"].as_array().map(Vec::len), Some(2));

    for (entry, why) in [
        (r#"{id="a",hash="sha256:abc"}"#.to_string(), "short hash"),
        (
            format!(r#"{{id="a",hash="{}"}}"#, hash.replace("sha256", "md5")),
            "other hash",
        ),
        (format!(r#"{{id="",hash="{hash}"}}"#), "empty id"),
        (format!(r#"{{id="a b",hash="{hash}"}}"#), "id with a space"),
        (
            format!(
                r#"{{id="a",hash="{hash}"}},{{id="a",hash="{}"}}"#,
                hash.replace("6ea7", "7ea7")
            ),
            "same id",
        ),
        (
            format!(r#"{{id="a",hash="{hash}"}},{{id="b",hash="{hash}"}}"#),
            "same hash",
        ),
        (
            format!(r#"{{id="a",hash="{hash}",agents="1999-1000"}}"#),
            "backwards range",
        ),
        (
            format!(r#"{{id="a",hash="{hash}",agents="10-99999"}}"#),
            "not extensions",
        ),
        (
            format!(r#"{{id="a",hash="{hash}",outbound_ids=[""]}}"#),
            "empty caller ID",
        ),
    ] {
        let out = host()
            .arg("check-config")
            .env("C2D_AUTH__KEYS", format!("[{entry}]"))
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{why}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("auth.keys"), "{why}: {err}");
    }
}

#[test]
fn webhooks_are_checked_and_their_secrets_masked() {
    let hash = "sha256:6ea7a695ba70270cbdd09e7d3e7957532c35ccc651264b051f9915ce43483668";
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let keys = |webhook: &str| format!(r#"[{{id="crm",hash="{hash}",webhook={webhook}}}]"#);
    let out = host()
        .arg("check-config")
        .env(
            "C2D_AUTH__KEYS",
            keys(&format!(
                r#"{{url="https://crm.example.com/hook",secrets=["{secret}"]}}"#
            )),
        )
        .output()
        .expect("runs");
    let (text, parsed) = effective(out);
    let webhook = &parsed["auth"]["keys"][0]["webhook"];
    assert_eq!(
        webhook["url"].as_str(),
        Some("https://crm.example.com/hook")
    );
    assert_eq!(webhook["secrets"][0].as_str(), Some("whsec_********"));
    assert!(!text.contains(secret), "the secret is masked");
    assert_eq!(
        parsed["webhooks"]["give_up_after_secs"].as_integer(),
        Some(259_200),
        "retried for three days by default"
    );

    for (webhook, why, says) in [
        (
            format!(r#"{{url="crm.example.com/hook",secrets=["{secret}"]}}"#),
            "no scheme",
            "webhook.url",
        ),
        (
            format!(r#"{{url="ftp://crm.example.com/",secrets=["{secret}"]}}"#),
            "not HTTP",
            "https://",
        ),
        (
            r#"{url="https://crm.example.com/",secrets=["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]}"#
                .to_string(),
            "no whsec_ prefix",
            "whsec_",
        ),
        (
            r#"{url="https://crm.example.com/",secrets=["whsec_%%%"]}"#.to_string(),
            "not base64",
            "base64",
        ),
        (
            r#"{url="https://crm.example.com/",secrets=["whsec_c2hvcnQ="]}"#.to_string(),
            "too short",
            "24 to 64 bytes",
        ),
        (
            r#"{url="https://crm.example.com/",secrets=[]}"#.to_string(),
            "no secret",
            "webhook.secrets",
        ),
        (
            format!(
                r#"{{url="https://crm.example.com/",secrets=["{secret}","{secret}","{secret}"]}}"#
            ),
            "three secrets",
            "webhook.secrets",
        ),
    ] {
        let out = host()
            .arg("check-config")
            .env("C2D_AUTH__KEYS", keys(&webhook))
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{why}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("auth.keys") && err.contains(says),
            "{why}: {err}"
        );
    }
    let out = host()
        .arg("check-config")
        .env("C2D_WEBHOOKS__RETRY_MAX_DELAY_MS", "1")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("webhooks.retry_max_delay_ms"));
}

#[test]
fn the_systemd_unit_starts_this_binary_and_is_valid() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/click2dial-host.service"
    ))
    .expect("unit file");
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let args: Vec<&str> = exec.split_whitespace().skip(1).collect();
    assert_eq!(args.last(), Some(&"run"));
    // The same options parse (with `check-config` in place of `run`).
    let mut check: Vec<&str> = args[..args.len() - 1].to_vec();
    check.push("check-config");
    let out = host().args(&check).output().expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // systemd's own check, where systemd is installed; the binary path is this build's.
    let Ok(analyze) = Command::new("systemd-analyze").arg("--version").output() else {
        return;
    };
    if !analyze.status.success() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("click2dial-host.service");
    let exe = env!("CARGO_BIN_EXE_click2dial-host");
    std::fs::write(&path, unit.replace("/usr/local/bin/click2dial-host", exe)).expect("write");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze");
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    let complaints: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("click2dial-host.service"))
        .collect();
    assert!(complaints.is_empty(), "{text}");
}

/// `[[pbx]]` through `check-config` as shipped: two entries that share an agent are refused
/// with the key and both names; without the overlap the file is valid, each entry's secret
/// masked, and `[ami]`'s secret is the one an entry without its own uses.
#[test]
fn pbx_entries_are_checked_and_their_secrets_masked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pbxes = |west_agents: &str| {
        format!(
            r#"
[ami]
secret = "shared-secret"

[[pbx]]
name = "east"
address = "127.0.0.1:5038"
agents = ["1000-1099"]

[[pbx]]
name = "west"
address = "127.0.0.1:5039"
secret = "west-secret"
agents = [{west_agents}]
"#
        )
    };
    let path = write(&dir, &pbxes(r#""2000-2099", "1050""#));
    let out = host()
        .args(["--config", path.to_str().expect("utf-8"), "check-config"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for word in ["`pbx.agents`", "\"west\"", "\"east\"", "agent 1050"] {
        assert!(stderr.contains(word), "{word} in {stderr}");
    }
    let path = write(&dir, &pbxes(r#""2000-2099""#));
    let (text, parsed) = effective(
        host()
            .args(["--config", path.to_str().expect("utf-8"), "check-config"])
            .output()
            .expect("run"),
    );
    assert!(
        !text.contains("west-secret") && !text.contains("shared-secret"),
        "{text}"
    );
    let entries = parsed["pbx"].as_array().expect("[[pbx]]");
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1]["name"].as_str(), Some("west"));
    assert_eq!(entries[1]["secret"].as_str(), Some("********"));
    assert!(entries[0].get("secret").is_none(), "east uses [ami] secret");
}

/// The message of a `check-config` with `var` set to `value`, which must be refused.
fn refused_var(var: &str, value: &str) -> String {
    let out = host()
        .arg("check-config")
        .env(var, value)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{var}={value:?}: {stderr}");
    stderr
}

/// The message of a `check-config` of the file `text`, which must be refused.
fn refused_file(text: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(&dir, text);
    let out = host()
        .args(["--config", path.to_str().expect("utf-8"), "check-config"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    stderr
}

#[test]
fn a_redis_url_the_client_cannot_use_is_refused_with_its_password_masked() {
    // Before, such a URL was taken and the host ran without Redis, saying nothing.
    for url in [
        "bogus://127.0.0.1:6379",
        "127.0.0.1:6379",
        // TLS is not built in: the URL would never connect.
        "rediss://127.0.0.1:6380",
        "redis://u:s3cret@127.0.0.1:6379/not-a-db",
        "unix:///run/redis.sock?db=x&pass=s3cret",
    ] {
        let stderr = refused_var("C2D_REDIS__URL", url);
        assert!(stderr.contains("`redis.url`"), "{url}: {stderr}");
        assert!(stderr.contains("unix:///path/to/redis.sock"), "{stderr}");
        assert!(
            !stderr.contains("s3cret"),
            "the password is masked: {stderr}"
        );
    }
    let (text, parsed) = effective(
        host()
            .arg("check-config")
            .env(
                "C2D_REDIS__URL",
                "unix:///run/redis/redis.sock?db=2&pass=s3cret",
            )
            .output()
            .expect("run"),
    );
    assert!(!text.contains("s3cret"), "{text}");
    assert_eq!(
        parsed["redis"]["url"].as_str(),
        Some("unix:///run/redis/redis.sock?db=2&pass=********")
    );
}

#[test]
fn a_pbx_address_must_be_host_and_port() {
    // Before, a typo here only showed as a PBX that never answered.
    for address in [
        "nonsense",
        "10.0.0.5",
        "10.0.0.5:0",
        "10.0.0.5:99999",
        "::1:5038",
    ] {
        let stderr = refused_var("C2D_AMI__ADDRESS", address);
        assert!(stderr.contains("`ami.address`"), "{address}: {stderr}");
    }
    // A link-local PBX: its interface by number, as the connection reads it, not by name.
    let stderr = refused_var("C2D_AMI__ADDRESS", "[fe80::1%eth0]:5038");
    assert!(
        stderr.contains("[fe80::1%2]:5038 with the interface's number"),
        "{stderr}"
    );
    let out = host()
        .arg("check-config")
        .env("C2D_AMI__ADDRESS", "[fe80::1%2]:5038")
        .output()
        .expect("run");
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(r#"address = "[fe80::1%2]:5038""#));
    let stderr = refused_file(
        r#"
[[pbx]]
name = "east"
address = "pbx.example:5038"
default = true

[[pbx]]
name = "west"
address = "[fd00::6]:50380"
agents = ["2000-2099"]

[[pbx]]
name = "north"
address = "10.0.0.7:70000"
agents = ["3000"]
"#,
    );
    assert!(
        stderr.contains(r#"`pbx.address`: pbx "north": "10.0.0.7:70000" is not host:port"#),
        "{stderr}"
    );
}

#[test]
fn zeros_and_empty_names_that_would_not_mean_off_are_refused() {
    // Each was taken before: a TTL of 0 deleted at once, a burst of 0 was quietly 1, an
    // empty manager user never logged in (nor one with a line break, which the AMI writer
    // refused at every login), an empty prefix put the claims at Redis's top.
    for (var, value, key) in [
        ("C2D_AMI__MAX_BACKOFF_SECS", "0", "`ami.max_backoff_secs`"),
        ("C2D_REDIS__TTL_SECS", "0", "`redis.ttl_secs`"),
        (
            "C2D_RECORDINGS__OWNER_TTL_SECS",
            "0",
            "`recordings.owner_ttl_secs`",
        ),
        (
            "C2D_RECORDINGS__ABANDONED_AFTER_SECS",
            "0",
            "`recordings.abandoned_after_secs`",
        ),
        ("C2D_LIMITS__BURST", "0", "`limits.burst`"),
        (
            "C2D_LIMITS__CALL_SILENCE_SECS",
            "0",
            "`limits.call_silence_secs`",
        ),
        ("C2D_AMI__USERNAME", "", "`ami.username`"),
        // What the firmware refuses too (core's rule for names).
        ("C2D_AMI__USERNAME", "c2d user", "`ami.username`"),
        (
            "C2D_AMI__USERNAME",
            "c2d\r\nAction: Originate",
            "`ami.username`",
        ),
        ("C2D_AMI__SECRET", "s3\r\nAction: Originate", "`ami.secret`"),
        (
            "C2D_REDIS__IDEMPOTENCY_PREFIX",
            "",
            "`redis.idempotency_prefix`",
        ),
        ("C2D_REDIS__LEGACY_KEY", "", "`redis.legacy_key`"),
        (
            "C2D_AUTH__KEYS",
            r#"[{id="crm",hash="sha256:0000000000000000000000000000000000000000000000000000000000000000",burst=0}]"#,
            "key \"crm\": burst must be at least 1",
        ),
    ] {
        let stderr = refused_var(var, value);
        assert!(stderr.contains(key), "{var}={value}: {stderr}");
        if value == "c2d user" {
            // Core's reason, after the key the host names.
            assert!(
                stderr.contains("`ami.username`: only printable ASCII without blanks"),
                "{stderr}"
            );
        }
    }
    // Off is said so: the deprecated list may have no name once it is not written.
    effective(
        host()
            .arg("check-config")
            .env("C2D_REDIS__LEGACY_KEY", "")
            .env("C2D_REDIS__LEGACY_KEY_ENABLED", "false")
            .output()
            .expect("run"),
    );
    let stderr = refused_file(
        r#"
[ami]
username = ""

[[pbx]]
name = "east"
address = "10.0.0.5:5038"
username = "c2d-east"
default = true

[[pbx]]
name = "west"
address = "10.0.0.6:5038"
agents = ["2000-2099"]
"#,
    );
    assert!(
        stderr.contains(r#"`pbx.username`: pbx "west": no manager user"#),
        "{stderr}"
    );
}

#[test]
fn a_call_silence_shorter_than_a_ring_is_warned_of() {
    let warned = |vars: &[(&str, &str)]| {
        let out = host()
            .arg("check-config")
            .envs(vars.iter().copied())
            .output()
            .expect("run");
        assert!(out.status.success(), "taken: only a warning");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert_eq!(
        warned(&[]),
        "",
        "the defaults: a silence of 120 s, rings of 120 s at most"
    );
    let stderr = warned(&[("C2D_LIMITS__CALL_SILENCE_SECS", "60")]);
    assert!(
        stderr.contains(
            "warning: limits.call_silence_secs (60 s) is shorter than the longest a phone may \
             ring (120 s"
        ),
        "{stderr}"
    );
    let stderr = warned(&[("C2D_DIALPLAN__AGENT_RING_TIMEOUT_MS", "300000")]);
    assert!(
        stderr.contains("(120 s) is shorter than the longest a phone may ring (300 s"),
        "{stderr}"
    );
}
