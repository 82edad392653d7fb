//! The admin API and the configuration kept in flash (issue 16 item 3), on the `admin` image,
//! through the device's real HTTP port: a configuration changed over `PUT /admin/config`
//! survives a guest-triggered reset (`POST /admin/reboot`: QEMU's flash is RAM that keeps its
//! contents across a reset within one run); a bad one is refused with the host's
//! `check-config` message and changes nothing; the admin key is required; a factory reset
//! brings the compiled configuration back; a stored record that fails the check at boot is
//! not used.

use std::time::{Duration, Instant};

use click2dial_core::config::ConfigError;

use crate::footprint::assert_admin_ram_in_budget;
use crate::qemu_support::{
    firmware_admin, hash_bytes, random_secret, CaptureAmi, Device, Response, ADMIN_KEY,
    ADMIN_KEY_HASH,
};
use crate::support::host_binary;

/// A call API key, and its SHA-256.
const API_KEY: &str = "new-api-key";
const API_KEY_HASH: &str = "15a95b611dd3fd8d9f9d7a8a22d336c58ced36bb9d31d9e60c8ab7ba57c5d931";

/// The admin key the device is given over `PUT /admin/config`, and its SHA-256.
const NEW_ADMIN_KEY: &str = "rotated-admin-key";
const NEW_ADMIN_KEY_HASH: &str = "760909ae0ad514ec5b78fcc2b2ca6aaa45e9931cd19bfcfc7ba9d79d5c4ec9a6";

const CALL: &str =
    r#"{"agent":"1001","callee":"0820001234","outbound_id":"0820001234","contact_ref":"CREF"}"#;

fn boot(pbx_port: u16, flash: Option<(&[u8], u32)>) -> Option<Device> {
    let fw = firmware_admin()?;
    let hash = hash_bytes(ADMIN_KEY_HASH);
    Some(Device::boot_with(
        fw,
        pbx_port,
        1,
        &random_secret(),
        Some(&hash),
        flash,
    ))
}

fn admin(device: &Device, method: &str, path: &str, key: Option<&str>, body: &str) -> Response {
    let auth = key.map(|k| format!("Authorization: Bearer {k}"));
    let mut headers = vec!["Content-Type: application/json"];
    headers.extend(auth.as_deref());
    device.request(method, path, &headers, body.as_bytes())
}

fn get_config(device: &Device) -> serde_json::Value {
    let r = admin(device, "GET", "/admin/config", Some(ADMIN_KEY), "");
    assert_eq!(r.status, 200, "{r:?}");
    serde_json::from_slice(&r.body).expect("GET /admin/config is JSON")
}

/// A create-call with `key` (none: no `Authorization`), until the PBX session is up.
fn call(device: &Device, key: Option<&str>, contact_ref: &str) -> Response {
    let auth = key.map(|k| format!("Authorization: Bearer {k}"));
    let mut headers = vec!["Content-Type: application/json"];
    headers.extend(auth.as_deref());
    let body = CALL.replace("CREF", contact_ref);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = device.request("POST", "/click2dial/calls", &headers, body.as_bytes());
        if r.status != 503 || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `POST /admin/reboot`, then waits for the device to come back (its log shows a new boot).
fn reboot(device: &Device) {
    reboot_with(device, ADMIN_KEY);
}

/// [`reboot`] with the admin key the device was given since.
fn reboot_with(device: &Device, admin_key: &str) {
    // Let the firmware log its stack high-water mark (every 500 ms) before the reset.
    std::thread::sleep(Duration::from_millis(600));
    device.reboot_with(admin_key);
}

fn assert_unauthorized(r: &Response, message: &str) {
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(
        r.text(),
        format!(r#"{{"error":{{"code":"unauthorized","message":"{message}"}}}}"#)
    );
    assert!(
        r.head
            .contains("www-authenticate: Bearer realm=\"click2dial\""),
        "{r:?}"
    );
}

#[test]
fn a_changed_configuration_survives_a_reboot_until_a_factory_reset() {
    let first = CaptureAmi::start();
    let second = CaptureAmi::start();
    let Some(device) = boot(first.port, None) else {
        return;
    };
    let factory = get_config(&device);
    assert_eq!(factory["source"], "factory");
    assert_eq!(
        factory["ami"]["address"],
        format!("10.0.2.2:{}", first.port)
    );
    assert!(factory["ami"].get("secret").is_none(), "{factory}");
    assert_eq!(factory["auth"]["api_key_hash"], serde_json::Value::Null);
    // The compiled configuration asks no API key.
    assert_eq!(call(&device, None, "before-1").status, 202);

    // A new PBX and an API key: stored, in force from the next boot.
    let change = format!(
        r#"{{"ami":{{"address":"10.0.2.2:{}","secret":"secret"}},
            "policy":{{"allowed_country_codes":["44"]}},
            "auth":{{"api_key_hash":"sha256:{API_KEY_HASH}"}}}}"#,
        second.port
    );
    let r = admin(&device, "PUT", "/admin/config", Some(ADMIN_KEY), &change);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(get_config(&device)["source"], "factory");
    reboot(&device);

    let stored = get_config(&device);
    assert_eq!(stored["source"], "stored");
    assert_eq!(
        stored["ami"]["address"],
        format!("10.0.2.2:{}", second.port)
    );
    assert_eq!(
        stored["policy"]["allowed_country_codes"],
        serde_json::json!(["44"])
    );
    assert_eq!(
        stored["auth"]["api_key_hash"],
        format!("sha256:{API_KEY_HASH}")
    );
    assert_unauthorized(
        &call(&device, None, "after-1"),
        "an API key is required: Authorization: Bearer <key>",
    );
    assert_unauthorized(
        &call(&device, Some("old-or-made-up"), "after-2"),
        "the API key is not valid",
    );
    // The admin key is not an API key.
    assert_unauthorized(
        &call(&device, Some(ADMIN_KEY), "after-3"),
        "the API key is not valid",
    );
    let originates_before = second.originates.lock().unwrap().len();
    let r = call(&device, Some(API_KEY), "after-4");
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(
        second.originates.lock().unwrap().len(),
        originates_before + 1,
        "the call went to the second PBX"
    );
    assert!(!second.logins.lock().unwrap().is_empty());

    // Factory reset: erased now, the compiled configuration from the next boot.
    let r = admin(&device, "POST", "/admin/factory-reset", Some(ADMIN_KEY), "");
    assert_eq!(r.status, 200, "{r:?}");
    reboot(&device);
    let again = get_config(&device);
    assert_eq!(again["source"], "factory");
    assert_eq!(again, factory);
    let r = call(&device, None, "reset-1");
    assert_eq!(r.status, 202, "{r:?}");
    // The firmware checks its stack every 500 ms.
    std::thread::sleep(Duration::from_millis(1200));
    let log = device.log();
    assert!(log.contains("configuration stored"), "{log}");
    assert!(log.contains("stored configuration erased"), "{log}");
    device.assert_log_clean();
    // The admin image's RAM against the budget: its statics and the deepest stack it logged
    // through every admin route above.
    assert_admin_ram_in_budget(&log, "through the admin routes");
}

/// A leaked admin key is replaced over the API, not by reflashing: the new one is stored
/// with the configuration and required from the next boot; until then the provisioned key
/// still holds (so a mistyped hash can still be put right). A factory reset brings the
/// provisioned key back.
#[test]
fn the_admin_key_is_rotated_from_the_next_boot_until_a_factory_reset() {
    let pbx = CaptureAmi::start();
    let Some(device) = boot(pbx.port, None) else {
        return;
    };
    let get = |key: &str| admin(&device, "GET", "/admin/config", Some(key), "");
    assert_eq!(
        get_config(&device)["auth"]["admin_key_hash"],
        format!("sha256:{ADMIN_KEY_HASH}")
    );
    // One key for both APIs is refused, and nothing is stored.
    let same = format!(
        r#"{{"auth":{{"api_key_hash":"sha256:{API_KEY_HASH}","admin_key_hash":"sha256:{API_KEY_HASH}"}}}}"#
    );
    let r = admin(&device, "PUT", "/admin/config", Some(ADMIN_KEY), &same);
    assert_eq!(r.status, 422, "{r:?}");
    assert!(r.text().contains("auth.admin_key_hash"), "{r:?}");
    let rotate = format!(r#"{{"auth":{{"admin_key_hash":"sha256:{NEW_ADMIN_KEY_HASH}"}}}}"#);
    assert_unauthorized(
        &admin(
            &device,
            "PUT",
            "/admin/config",
            Some(NEW_ADMIN_KEY),
            &rotate,
        ),
        "the admin key is not valid",
    );
    let r = admin(&device, "PUT", "/admin/config", Some(ADMIN_KEY), &rotate);
    assert_eq!(r.status, 200, "{r:?}");
    // Until the reboot the provisioned key holds, and only it.
    assert_eq!(get(ADMIN_KEY).status, 200);
    assert_unauthorized(&get(NEW_ADMIN_KEY), "the admin key is not valid");
    reboot(&device);

    assert_unauthorized(&get(ADMIN_KEY), "the admin key is not valid");
    assert_unauthorized(
        &admin(&device, "POST", "/admin/reboot", Some(ADMIN_KEY), ""),
        "the admin key is not valid",
    );
    let r = get(NEW_ADMIN_KEY);
    assert_eq!(r.status, 200, "{r:?}");
    let stored: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
    assert_eq!(stored["source"], "stored");
    assert_eq!(
        stored["auth"]["admin_key_hash"],
        format!("sha256:{NEW_ADMIN_KEY_HASH}")
    );
    // The call API is unchanged (the compiled configuration asks no key).
    assert_eq!(call(&device, None, "rotated-1").status, 202);

    let r = admin(
        &device,
        "POST",
        "/admin/factory-reset",
        Some(NEW_ADMIN_KEY),
        "",
    );
    assert_eq!(r.status, 200, "{r:?}");
    reboot_with(&device, NEW_ADMIN_KEY);
    assert_eq!(get(ADMIN_KEY).status, 200);
    assert_unauthorized(&get(NEW_ADMIN_KEY), "the admin key is not valid");
    device.assert_log_clean();
}

/// The host's `check-config` message for `toml`, from the host binary.
fn host_check_config(toml: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("click2dial.toml");
    std::fs::write(&path, toml).expect("write");
    let out = std::process::Command::new(host_binary())
        .args(["--config", path.to_str().expect("utf-8"), "check-config"])
        .output()
        .expect("click2dial-host");
    assert_eq!(out.status.code(), Some(2), "{toml}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_configurations_and_keys_are_refused_and_change_nothing() {
    let ami = CaptureAmi::start();
    let Some(device) = boot(ami.port, None) else {
        return;
    };
    let before = get_config(&device);

    // The credentials come first, on every admin route.
    for (method, path) in [
        ("GET", "/admin/config"),
        ("PUT", "/admin/config"),
        ("POST", "/admin/reboot"),
        ("POST", "/admin/factory-reset"),
        ("GET", "/admin/status"),
    ] {
        assert_unauthorized(
            &admin(&device, method, path, None, "{}"),
            "an admin key is required: Authorization: Bearer <admin key>",
        );
        assert_unauthorized(
            &admin(&device, method, path, Some("wrong"), "{}"),
            "the admin key is not valid",
        );
        assert_unauthorized(
            &admin(&device, method, path, Some(&ADMIN_KEY[1..]), "{}"),
            "the admin key is not valid",
        );
    }
    let r = admin(&device, "DELETE", "/admin/config", Some(ADMIN_KEY), "");
    assert_eq!(r.status, 405, "{r:?}");
    assert!(r.head.contains("allow: GET, PUT"), "{r:?}");
    let r = admin(&device, "POST", "/admin/status", Some(ADMIN_KEY), "");
    assert_eq!(r.status, 405, "{r:?}");
    assert!(r.head.contains("allow: GET"), "{r:?}");

    // The same mistakes the host's check-config refuses, with its message (core's).
    for (body, toml, error) in [
        (
            r#"{"dialplan":{"direct_channel":"Local/c2d-single"}}"#,
            "[dialplan]\ndirect_channel = \"Local/c2d-single\"\n",
            ConfigError::Form {
                key: "dialplan.direct_channel",
                expected: "<tech>/<resource> with {callee} in the resource, \
                           e.g. Local/{callee}@c2d-single",
            },
        ),
        (
            r#"{"policy":{"allowed_country_codes":["44","+49"]}}"#,
            "[policy]\nallowed_country_codes = [\"44\", \"+49\"]\n",
            ConfigError::Digits {
                key: "policy.allowed_country_codes",
                index: 1,
                max: 3,
            },
        ),
        (
            r#"{"dialplan":{"outbound_context":"c2d outbound","agent_tech":"PJSIP"}}"#,
            "[dialplan]\noutbound_context = \"c2d outbound\"\n",
            ConfigError::Character {
                key: "dialplan.outbound_context",
            },
        ),
    ] {
        let r = admin(&device, "PUT", "/admin/config", Some(ADMIN_KEY), body);
        assert_eq!(r.status, 422, "{body} → {r:?}");
        let mut expected = [0u8; 512];
        let n = click2dial_core::json::write_config_error(&error, &mut expected).unwrap();
        assert_eq!(r.text(), std::str::from_utf8(&expected[..n]).unwrap());
        let host = host_check_config(toml);
        assert!(host.contains(&error.to_string()), "host said {host}");
    }
    let r = admin(
        &device,
        "PUT",
        "/admin/config",
        Some(ADMIN_KEY),
        "{\"ami\":",
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.text().contains("\"malformed_json\""), "{r:?}");
    // An API key equal to the admin key is refused.
    let r = admin(
        &device,
        "PUT",
        "/admin/config",
        Some(ADMIN_KEY),
        &format!(r#"{{"auth":{{"api_key_hash":"sha256:{ADMIN_KEY_HASH}"}}}}"#),
    );
    assert_eq!(r.status, 422, "{r:?}");
    assert!(r.text().contains("auth.api_key_hash"), "{r:?}");
    // Bodies are bounded: a declared length over 1 KiB is refused unread; so is a longer
    // chunked one.
    let big = format!(r#"{{"ami":{{"secret":"{}"}}}}"#, "s".repeat(2000));
    let r = admin(&device, "PUT", "/admin/config", Some(ADMIN_KEY), &big);
    assert_eq!(r.status, 413, "{r:?}");
    assert!(r.text().contains("larger than 1024 bytes"), "{r:?}");
    let chunked = format!(
        "PUT /admin/config HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n\
         Authorization: Bearer {ADMIN_KEY}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
        big.len()
    );
    let r = device.retry(|| device.raw(chunked.as_bytes()));
    assert_eq!(r.status, 413, "{r:?}");

    // Nothing was stored: after a reboot the compiled configuration still runs.
    reboot(&device);
    assert_eq!(get_config(&device), before);
    assert_eq!(call(&device, None, "still-factory").status, 202);
    device.assert_log_clean();
}

/// CRC-32 (zlib's), as the store checks a record.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// A record for the store's first page (`appliance/src/store.rs`): header, then `data`.
fn record(data: &[u8], crc: u32) -> Vec<u8> {
    let mut record = Vec::new();
    for word in [0xC2D0_C0F1u32, 0, data.len() as u32, crc] {
        record.extend_from_slice(&word.to_le_bytes());
    }
    record.resize(32, 0xFF);
    record.extend_from_slice(data);
    record
}

#[test]
fn a_stored_configuration_that_fails_the_check_at_boot_is_not_used() {
    // A well-formed record (its CRC checks) holding a configuration the check refuses, as a
    // firmware with stricter rules would find it; and a record whose CRC does not check.
    let refused = br#"{"dialplan":{"direct_channel":"Local/c2d-single"}}"#;
    let good = br#"{"idempotency":{"ttl_secs":60}}"#;
    for (record, logged) in [
        (
            record(refused, crc32(refused)),
            "the stored configuration is refused (dialplan.direct_channel); factory configuration instead",
        ),
        (
            record(good, crc32(good) ^ 1),
            "the stored configuration is corrupt (CRC); factory configuration instead",
        ),
    ] {
        let ami = CaptureAmi::start();
        let Some(device) = boot(ami.port, Some((&record, 0x0001_C000))) else {
            return;
        };
        let config = get_config(&device);
        assert_eq!(config["source"], "factory_stored_refused");
        assert_eq!(
            config["dialplan"]["direct_channel"],
            "Local/{callee}@c2d-single"
        );
        assert_eq!(config["idempotency"]["ttl_secs"], 86400);
        assert_eq!(call(&device, None, "fallback-1").status, 202);
        let log = device.log();
        assert!(log.contains(logged), "{log}");
    }
}
