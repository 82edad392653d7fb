//! Signed A/B updates (issue 16 item 4) on the `admin` image started by the QEMU board's
//! bootloader, through the device's real HTTP port: images signed with
//! `boards/sign-update.sh` as shipped, uploaded to `PUT /admin/update` (the image, then its
//! 64-byte signature), swapped in by the bootloader at `POST /admin/reboot` (a guest reset:
//! QEMU's flash is RAM that keeps its contents across a reset within one run), kept once the
//! new image marks itself booted, rolled back when it does not. Refused uploads leave the boot
//! state unmarked and the old image running. An image that never marks itself booted is reset
//! by the board's watchdog once its boot deadline passes, with no reboot asked for, and rolled
//! back; an image that marked itself booted runs on past the deadline.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::footprint::assert_admin_ram_in_budget;
use crate::qemu_support::{
    firmware_admin, fleet_image, hash_bytes, random_secret, CaptureAmi, Device, Firmware, Response,
    ADMIN_KEY, ADMIN_KEY_HASH, BOOT_BANNER,
};

#[path = "../../../appliance/tests/support/sign_update.rs"]
mod sign_update;
use sign_update::sign_update;

/// The version of the image as built for the other tests (the board crate's).
const FIRST: &str = "0.1.0";
/// The boot state and DFU partitions (boards/qemu-mps2-an385/src/storage.rs).
const STATE: u32 = 0x0002_0000;
const DFU: u32 = 0x0008_0000;
/// embassy-boot's "swap on the next reset" magic, in every byte of the state word.
const SWAP_MAGIC: u32 = 0xF0F0_F0F0;

/// The same image as `firmware_admin`'s with another version string.
fn second() -> Option<&'static Firmware> {
    static FW: OnceLock<Option<Firmware>> = OnceLock::new();
    FW.get_or_init(|| fleet_image("update-b", &["--features", "admin"], Some("update-b")))
        .as_ref()
}

/// An image that never marks itself booted (feature `never-mark-booted`).
fn never_marks() -> Option<&'static Firmware> {
    static FW: OnceLock<Option<Firmware>> = OnceLock::new();
    FW.get_or_init(|| {
        fleet_image(
            "update-c",
            &["--features", "never-mark-booted"],
            Some("update-c"),
        )
    })
    .as_ref()
}

/// A fleet key made by the script: the private key's file and the public key.
struct FleetKey {
    pem: PathBuf,
    public: [u8; 32],
    _dir: tempfile::TempDir,
}

impl FleetKey {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let pem = dir.path().join("update-key.pem");
        sign_update(&[Path::new("new-key"), &pem]);
        let public: [u8; 32] = sign_update(&[Path::new("public"), &pem])
            .try_into()
            .expect("32 bytes of public key");
        Self {
            pem,
            public,
            _dir: dir,
        }
    }

    /// The signature of `image` (a file), as the script prints it.
    fn sign(&self, image: &Path) -> Vec<u8> {
        let sig = sign_update(&[Path::new("sign"), &self.pem, image]);
        assert_eq!(sig.len(), 64);
        sig
    }

    /// The signature of `bytes`.
    fn sign_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let file = self._dir.path().join("image.bin");
        std::fs::write(&file, bytes).expect("write the image");
        self.sign(&file)
    }
}

fn boot(key: &FleetKey) -> Option<(Device, CaptureAmi)> {
    let fw = firmware_admin()?;
    let ami = CaptureAmi::start();
    let device = Device::boot_full(
        fw,
        ami.port,
        1,
        &random_secret(),
        Some(&hash_bytes(ADMIN_KEY_HASH)),
        Some(&key.public),
        None,
    );
    Some((device, ami))
}

fn status(device: &Device) -> serde_json::Value {
    let r = device.request(
        "GET",
        "/admin/update",
        &[&format!("Authorization: Bearer {ADMIN_KEY}")],
        b"",
    );
    assert_eq!(r.status, 200, "{r:?}");
    serde_json::from_slice(&r.body).expect("GET /admin/update is JSON")
}

/// `PUT /admin/update` with `body` (the image and its signature).
fn upload(device: &Device, key: Option<&str>, body: &[u8]) -> Response {
    let auth = key.map(|k| format!("Authorization: Bearer {k}"));
    let mut headers = vec!["Content-Type: application/octet-stream"];
    headers.extend(auth.as_deref());
    device.request("PUT", "/admin/update", &headers, body)
}

/// `POST /admin/reboot`, then waits until the device answers again after a new start (its
/// uptime is younger than the request).
/// The head of an upload with the admin key that declares `len` bytes of body.
fn upload_head(len: usize) -> String {
    format!(
        "PUT /admin/update HTTP/1.1\r\nHost: d\r\nAuthorization: Bearer {ADMIN_KEY}\r\nContent-Length: {len}\r\n\r\n"
    )
}

/// A connection with [`upload_head`] sent, for a test to write (some of) the body itself.
fn open_upload(device: &Device, len: usize, read_timeout: Duration) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", device.http_port)).expect("connect");
    stream
        .set_read_timeout(Some(read_timeout))
        .expect("timeout");
    stream.write_all(upload_head(len).as_bytes()).expect("head");
    stream
}

/// Reboots the device and answers its status once it is up again.
fn reboot(device: &Device) -> serde_json::Value {
    device.reboot();
    status(device)
}

fn assert_error(r: &Response, status: u16, code: &str, message: &str) {
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(
        r.text(),
        format!(r#"{{"error":{{"code":"{code}","message":"{message}"}}}}"#)
    );
}

fn assert_unmarked(device: &Device, version: &str) {
    let s = status(device);
    assert_eq!(s["version"], version, "{s}");
    assert_eq!(s["state"], "boot", "{s}");
    assert_ne!(device.memory_words(STATE, 1)[0], SWAP_MAGIC);
}

const SIGNATURE_REFUSED: &str =
    "the signature does not verify against the fleet key: nothing was marked";

#[test]
fn a_signed_update_uploaded_with_curl_is_swapped_in_and_kept() {
    let key = FleetKey::new();
    let Some(new) = second() else { return };
    let Some((device, _ami)) = boot(&key) else {
        return;
    };
    let s = status(&device);
    assert_eq!(s["version"], FIRST, "{s}");
    assert_eq!(s["state"], "boot", "{s}");
    assert_eq!(s["at_boot"], "boot", "{s}");
    assert_eq!(s["key"], true, "{s}");
    assert_eq!(s["capacity"], 256 * 1024, "{s}");

    // As the README tells an operator: sign, then send the image and its signature.
    let bin = &new.boot.as_ref().expect("a fleet image").bin;
    let sig_file = bin.with_extension("bin.sig");
    std::fs::write(&sig_file, key.sign(bin)).expect("signature file");
    let out = Command::new("sh")
        .arg("-c")
        .arg(
            r#"cat "$IMAGE" "$IMAGE.sig" | curl -sS --max-time 30 -X PUT --data-binary @- \
  -H "Authorization: Bearer $ADMIN_KEY" -H 'Content-Type: application/octet-stream' \
  "http://$DEVICE/admin/update""#,
        )
        .env("IMAGE", bin)
        .env("ADMIN_KEY", ADMIN_KEY)
        .env("DEVICE", format!("127.0.0.1:{}", device.http_port))
        .output()
        .expect("curl");
    assert!(out.status.success(), "curl: {out:?}\n{}", device.log());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        r#"{"status":"marked","effective":"after POST /admin/reboot"}"#
    );
    let s = status(&device);
    assert_eq!(
        s["version"], FIRST,
        "the old image runs until the reboot: {s}"
    );
    assert_eq!(s["state"], "swap", "{s}");
    assert_eq!(device.memory_words(STATE, 1)[0], SWAP_MAGIC);
    // A second upload waits for the first one's reboot.
    let again = [std::fs::read(bin).expect("image"), key.sign(bin)].concat();
    assert_error(
        &upload(&device, Some(ADMIN_KEY), &again),
        400,
        "bad_request",
        "an update is already marked or on trial: POST /admin/reboot first",
    );

    let s = reboot(&device);
    assert_eq!(s["version"], "update-b", "{s}");
    assert_eq!(s["at_boot"], "swap", "the bootloader swapped it in: {s}");
    // The new image marks itself booted once its network is up.
    let deadline = Instant::now() + Duration::from_secs(20);
    while status(&device)["state"] != "boot" {
        assert!(
            Instant::now() < deadline,
            "never marked booted: {}",
            status(&device)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Kept across the next reset.
    let s = reboot(&device);
    assert_eq!(s["version"], "update-b", "{s}");
    assert_eq!(s["at_boot"], "boot", "{s}");
    // And it still places calls.
    let r = device.post_when_ready(
        r#"{"agent":"1001","callee":"0820001234","outbound_id":"0820001234","contact_ref":"upd-1"}"#,
    );
    assert_eq!(r.status, 202, "{r:?}");
}

#[test]
fn refused_updates_leave_the_old_image_and_the_state_unmarked() {
    let key = FleetKey::new();
    let other = FleetKey::new();
    let Some(new) = second() else { return };
    let Some((device, _ami)) = boot(&key) else {
        return;
    };
    let image = std::fs::read(&new.boot.as_ref().expect("a fleet image").bin).expect("image");
    let good = key.sign_bytes(&image);

    // No admin key: 401 before any body byte is read; nothing written to DFU.
    let body = [image.clone(), good.clone()].concat();
    let r = upload(&device, None, &body);
    assert_error(
        &r,
        401,
        "unauthorized",
        "an admin key is required: Authorization: Bearer <admin key>",
    );
    let r = upload(&device, Some("not-the-admin-key"), &body);
    assert_error(&r, 401, "unauthorized", "the admin key is not valid");
    assert_eq!(device.memory_words(DFU, 8), vec![0; 8], "DFU written");
    assert_unmarked(&device, FIRST);

    // One flipped bit in the image.
    let mut flipped = image.clone();
    flipped[image.len() / 2] ^= 0x04;
    let r = upload(&device, Some(ADMIN_KEY), &[flipped, good.clone()].concat());
    assert_error(&r, 400, "bad_request", SIGNATURE_REFUSED);
    assert_unmarked(&device, FIRST);

    // A truncated image with the whole image's signature.
    let cut = &image[..image.len() - 1000];
    let r = upload(&device, Some(ADMIN_KEY), &[cut, &good].concat());
    assert_error(&r, 400, "bad_request", SIGNATURE_REFUSED);
    assert_unmarked(&device, FIRST);

    // Signed by another key.
    let foreign = other.sign_bytes(&image);
    let r = upload(&device, Some(ADMIN_KEY), &[image.clone(), foreign].concat());
    assert_error(&r, 400, "bad_request", SIGNATURE_REFUSED);
    assert_unmarked(&device, FIRST);

    // A body that ends before its Content-Length.
    let half = &body[..body.len() / 2];
    let mut stream = open_upload(&device, body.len(), Duration::from_secs(20));
    stream.write_all(half).expect("half a body");
    stream.shutdown(Shutdown::Write).expect("shutdown");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(
        answer.ends_with(
            r#"{"error":{"code":"bad_request","message":"the body ended before its Content-Length: nothing was marked"}}"#
        ),
        "{answer}"
    );
    assert_unmarked(&device, FIRST);

    // Larger than the partition: 413 on the declared length alone.
    let r = device.retry(|| device.raw(upload_head(256 * 1024 + 64 + 1).as_bytes()));
    assert_error(
        &r,
        413,
        "body_too_large",
        "the image is larger than the update partition",
    );
    // No image at all, or no Content-Length.
    let r = upload(&device, Some(ADMIN_KEY), &good);
    let framing = "an update is the image followed by its 64-byte Ed25519 signature, sent with Content-Length";
    assert_error(&r, 400, "bad_request", framing);
    let r = device.retry(|| {
        device.raw(
            format!("PUT /admin/update HTTP/1.1\r\nHost: d\r\nAuthorization: Bearer {ADMIN_KEY}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n").as_bytes(),
        )
    });
    assert_error(&r, 400, "bad_request", framing);

    // A stalled upload: the connection is dropped once idle for request_timeout_ms (5 s),
    // without an answer, and nothing is marked.
    let mut stream = open_upload(&device, body.len(), Duration::from_secs(30));
    stream
        .write_all(&body[..4096])
        .expect("a little of the body");
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the stalled upload was held for {:?}",
        started.elapsed()
    );
    assert_unmarked(&device, FIRST);

    // The signature checks above ran on the stack (embassy-boot's blocking API): the image's
    // statics and the deepest stack it logged stay inside the RAM budget.
    std::thread::sleep(Duration::from_millis(1200));
    let log = device.log();
    assert!(
        log.contains("update refused: its signature does not verify"),
        "{log}"
    );
    assert_admin_ram_in_budget(&log, "with a signature check");

    // After all that, the reset changes nothing.
    let s = reboot(&device);
    assert_eq!(s["version"], FIRST, "{s}");
    assert_eq!(s["at_boot"], "boot", "{s}");
    assert_unmarked(&device, FIRST);
}

#[test]
fn an_update_that_never_marks_itself_booted_is_rolled_back() {
    let key = FleetKey::new();
    let Some(bad) = never_marks() else { return };
    let Some((device, _ami)) = boot(&key) else {
        return;
    };
    let image = std::fs::read(&bad.boot.as_ref().expect("a fleet image").bin).expect("image");
    let r = upload(
        &device,
        Some(ADMIN_KEY),
        &[image.clone(), key.sign_bytes(&image)].concat(),
    );
    assert_eq!(r.status, 202, "{r:?}");

    let s = reboot(&device);
    assert_eq!(s["version"], "update-c", "{s}");
    assert_eq!(s["at_boot"], "swap", "{s}");
    // On trial: never marked, and no update is taken on top of it.
    std::thread::sleep(Duration::from_secs(2));
    let s = status(&device);
    assert_eq!(s["state"], "swap", "{s}");
    let r = upload(
        &device,
        Some(ADMIN_KEY),
        &[image.clone(), key.sign_bytes(&image)].concat(),
    );
    assert_eq!(r.status, 400, "{r:?}");

    // Nobody reboots it: the watchdog does, once the image is past its boot deadline without
    // having come up, and the bootloader swaps the previous image back. That one marks
    // itself booted.
    let boots = device.boots();
    let limit = Duration::from_secs(4 * (BOOT_DEADLINE_SECS + 2 * WATCHDOG_PERIOD_SECS));
    device.wait_for_boot(boots, limit);
    let s = status(&device);
    assert_eq!(s["version"], FIRST, "{s}");
    assert_eq!(s["at_boot"], "revert", "{s}");
    let log = device.log();
    assert!(log.contains(NOT_PETTED), "no watchdog warning: {log}");
    assert_eq!(log.matches(BOOT_BANNER).count(), boots + 1, "{log}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while status(&device)["state"] != "boot" {
        assert!(Instant::now() < deadline, "not marked: {}", status(&device));
        std::thread::sleep(Duration::from_millis(200));
    }
    // Marked: petted past the deadline and two watchdog periods.
    let outlived = BOOT_DEADLINE_SECS + 2 * WATCHDOG_PERIOD_SECS + 2;
    let deadline = Instant::now() + Duration::from_secs(3 * outlived);
    loop {
        let s = status(&device);
        assert_eq!(s["version"], FIRST, "{s}");
        if s["uptime_secs"].as_u64().expect("uptime") >= outlived {
            break;
        }
        assert!(Instant::now() < deadline, "{s}");
        std::thread::sleep(Duration::from_secs(1));
    }
    let log = device.log();
    assert_eq!(log.matches(BOOT_BANNER).count(), boots + 1, "{log}");
    assert_eq!(log.matches(NOT_PETTED).count(), 1, "{log}");
    let s = reboot(&device);
    assert_eq!(s["version"], FIRST, "{s}");
}

/// The QEMU board's boot deadline and watchdog period (boards/qemu-mps2-an385/src/main.rs).
const BOOT_DEADLINE_SECS: u64 = 15;
const WATCHDOG_PERIOD_SECS: u64 = 4;
/// What the appliance's watchdog keeper logs when it stops petting.
const NOT_PETTED: &str = "no longer petted";
