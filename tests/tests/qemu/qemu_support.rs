//! Hardware-in-the-loop support: the QEMU board's image built once, booted in
//! `qemu-system-arm` with a free forwarded HTTP port and a PBX port written into RAM at boot,
//! its defmt log decoded with `defmt-print`, the PBX simulator on a fixed free port (so it can
//! be stopped and started again), a capturing AMI server, and a raw HTTP/1.1 client.
//!
//! Without `qemu-system-arm` or `defmt-print` the tests are skipped with a loud message —
//! except under `CI=true`, where that is a failure (`.ci/firmware.sh` installs both).

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use click2dial_core::ami::{Decoder, Frame};

/// The first line each start of the image logs (boards/qemu-mps2-an385/src/main.rs).
pub const BOOT_BANNER: &str = "click2dial appliance, mps2-an385";

/// The admin key the tests provision, and its SHA-256.
pub const ADMIN_KEY: &str = "admin-key-for-tests";
pub const ADMIN_KEY_HASH: &str = "37ad48f6764c66f3e06c07ac0cfa55d5e282c98c39804baa94644de7324ef84e";

/// The board folder, from the tests crate.
pub fn board_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../boards/qemu-mps2-an385")
}

pub use crate::support::{free_port, kill};

/// The built image and the tools to run it.
pub struct Firmware {
    pub elf: PathBuf,
    pub defmt_print: PathBuf,
    /// For an image linked at ACTIVE: the bootloader that starts it and the image as a raw
    /// binary (what is signed, uploaded, and flashed at FACTORY).
    pub boot: Option<Boot>,
}

/// The bootloader and the raw image of a fleet image.
pub struct Boot {
    pub bootloader: PathBuf,
    pub bin: PathBuf,
}

/// The bootloader's folder.
pub fn bootloader_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../boards/qemu-mps2-an385-bootloader")
}

/// Where the raw image goes in the device's flash: FACTORY (src/storage.rs); the bootloader
/// copies it into an ACTIVE that was never programmed.
const FACTORY: u32 = 0x0020_0000;

/// Builds of the board are one at a time: the fleet images share a target folder, each copied
/// out under its own name before the next.
static BUILDS: Mutex<()> = Mutex::new(());

fn on_path(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        dirs.push(PathBuf::from(home).join("bin"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// Skips (locally) or fails (in CI) when a tool is missing.
fn missing(tool: &str, install: &str) -> Option<Firmware> {
    let message = format!(
        "\n\n*** QEMU hardware-in-the-loop test SKIPPED: `{tool}` is not installed ({install}); \
         .ci/firmware.sh installs it ***\n"
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message}(CI=true: a skipped QEMU test is a failure)");
    }
    // Straight to the process's stderr: the test harness does not capture that, so the
    // skip is visible even for a passing test.
    let _ = writeln!(std::io::stderr(), "{message}");
    None
}

/// Builds the QEMU image (once per test binary); `None` when the tests must be skipped.
pub fn firmware() -> Option<&'static Firmware> {
    static FIRMWARE: OnceLock<Option<Firmware>> = OnceLock::new();
    FIRMWARE.get_or_init(|| build(&[], "target", &[])).as_ref()
}

/// The image with the admin API, the configuration store and signed updates (feature
/// `admin`), linked at ACTIVE and started by the bootloader; built into `target/admin` so it
/// does not rebuild over the budget image.
pub fn firmware_admin() -> Option<&'static Firmware> {
    static FIRMWARE: OnceLock<Option<Firmware>> = OnceLock::new();
    FIRMWARE
        .get_or_init(|| fleet_image("admin", &["--features", "admin"], None))
        .as_ref()
}

/// Another build of the fleet image: `version` as `C2D_FIRMWARE_VERSION`, `features` for the
/// board (`admin`, or `never-mark-booted` for the rollback test); `name` names its files.
pub fn fleet_image(name: &str, features: &[&str], version: Option<&str>) -> Option<Firmware> {
    let _one_at_a_time = BUILDS.lock().unwrap_or_else(|e| e.into_inner());
    let bootloader = build_bootloader()?;
    let mut args = features.to_vec();
    args.extend(["--target-dir", "target/admin"]);
    let env: Vec<(&str, &str)> = version
        .map(|v| ("C2D_FIRMWARE_VERSION", v))
        .into_iter()
        .collect();
    let built = build(&args, "target/admin", &env)?;
    let images = board_dir().join("target/admin/images");
    std::fs::create_dir_all(&images).expect("images folder");
    let elf = images.join(format!("{name}.elf"));
    std::fs::copy(&built.elf, &elf).expect("copy the image");
    let bin = images.join(format!("{name}.bin"));
    let status = Command::new("arm-none-eabi-objcopy")
        .args(["-O", "binary"])
        .arg(&elf)
        .arg(&bin)
        .status()
        .expect("arm-none-eabi-objcopy (binutils-arm-none-eabi)");
    assert!(status.success(), "objcopy of {}", elf.display());
    Some(Firmware {
        elf,
        defmt_print: built.defmt_print,
        boot: Some(Boot { bootloader, bin }),
    })
}

/// Builds the QEMU board's bootloader (once).
fn build_bootloader() -> Option<PathBuf> {
    static BOOTLOADER: OnceLock<PathBuf> = OnceLock::new();
    on_path("qemu-system-arm")?;
    Some(
        BOOTLOADER
            .get_or_init(|| {
                let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
                let status = Command::new(cargo)
                    .args(["build", "--release"])
                    .current_dir(bootloader_dir())
                    .env_remove("CARGO_TARGET_DIR")
                    .env_remove("CARGO_BUILD_TARGET")
                    .env_remove("RUSTFLAGS")
                    .status()
                    .expect("cargo build of the QEMU bootloader");
                assert!(status.success(), "building the QEMU bootloader failed");
                bootloader_dir()
                    .join("target/thumbv7m-none-eabi/release/click2dial-qemu-mps2-an385-bootloader")
            })
            .clone(),
    )
}

fn build(args: &[&str], target_dir: &str, env: &[(&str, &str)]) -> Option<Firmware> {
    let Some(_) = on_path("qemu-system-arm") else {
        return missing("qemu-system-arm", "apt-get install qemu-system-arm");
    };
    let Some(defmt_print) = on_path("defmt-print") else {
        return missing("defmt-print", "cargo install defmt-print --locked");
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release"])
        .args(args)
        .current_dir(board_dir())
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTFLAGS")
        .env_remove("C2D_FIRMWARE_VERSION")
        .envs(env.iter().copied())
        .status()
        .expect("cargo build of the QEMU board");
    assert!(
        status.success(),
        "building boards/qemu-mps2-an385 {args:?} failed"
    );
    let elf = board_dir()
        .join(target_dir)
        .join("thumbv7m-none-eabi/release/click2dial-qemu-mps2-an385");
    assert!(elf.is_file(), "no image at {}", elf.display());
    Some(Firmware {
        elf,
        defmt_print,
        boot: None,
    })
}

/// Address of the override block the firmware reads at boot (src/overrides.rs).
const OVERRIDE_BLOCK: u32 = 0x2001_0000;
const OVERRIDE_MAGIC: u32 = 0xC2D0_0001;

/// One booted device.
pub struct Device {
    child: Child,
    pub http_port: u16,
    raw_log: PathBuf,
    elf: PathBuf,
    defmt_print: PathBuf,
    _dir: tempfile::TempDir,
}

/// Where the provisioning page goes in the device's flash (src/storage.rs).
const PROVISIONING: u32 = 0x0001_F000;

/// 32 bytes from the host's random number generator: a device secret.
pub fn random_secret() -> [u8; 32] {
    let mut secret = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut secret))
        .expect("/dev/urandom");
    secret
}

impl Device {
    /// Boots the image with the PBX at the host's `pbx_port` (10.0.2.2 from the guest) and a
    /// reconnection backoff capped at `max_backoff_secs`, provisioned with a fresh device
    /// secret; waits until HTTP answers.
    pub fn boot(fw: &Firmware, pbx_port: u16, max_backoff_secs: u32) -> Self {
        Self::boot_provisioned(fw, pbx_port, max_backoff_secs, &random_secret())
    }

    /// [`Device::boot`] with the device secret `secret` written into its flash's provisioning
    /// page, as an installer does at flashing time.
    pub fn boot_provisioned(
        fw: &Firmware,
        pbx_port: u16,
        max_backoff_secs: u32,
        secret: &[u8; 32],
    ) -> Self {
        Self::boot_with(fw, pbx_port, max_backoff_secs, secret, None, None)
    }

    /// [`Device::boot_provisioned`] with, optionally, the SHA-256 of an admin key in the
    /// provisioning page (`C2DA` after the secret) and `flash` bytes loaded at an address of
    /// the device's flash (e.g. a configuration record).
    pub fn boot_with(
        fw: &Firmware,
        pbx_port: u16,
        max_backoff_secs: u32,
        secret: &[u8; 32],
        admin_key_hash: Option<&[u8; 32]>,
        flash: Option<(&[u8], u32)>,
    ) -> Self {
        Self::boot_full(
            fw,
            pbx_port,
            max_backoff_secs,
            secret,
            admin_key_hash,
            None,
            flash,
        )
    }

    /// [`Device::boot_with`] with, optionally, the fleet's Ed25519 update key in the
    /// provisioning page (`C2DU` at byte 72).
    pub fn boot_full(
        fw: &Firmware,
        pbx_port: u16,
        max_backoff_secs: u32,
        secret: &[u8; 32],
        admin_key_hash: Option<&[u8; 32]>,
        update_key: Option<&[u8; 32]>,
        flash: Option<(&[u8], u32)>,
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let provisioning = dir.path().join("provisioning.bin");
        let mut page = [&b"C2DS"[..], secret].concat();
        if let Some(hash) = admin_key_hash {
            page.extend_from_slice(b"C2DA");
            page.extend_from_slice(hash);
        }
        if let Some(key) = update_key {
            page.resize(72, 0);
            page.extend_from_slice(b"C2DU");
            page.extend_from_slice(key);
        }
        std::fs::write(&provisioning, page).expect("provisioning");
        let extra_flash = dir.path().join("flash.bin");
        let mut loaders = Vec::new();
        if let Some((bytes, addr)) = flash {
            std::fs::write(&extra_flash, bytes).expect("flash image");
            loaders.push(format!(
                "loader,file={},addr={addr:#x}",
                extra_flash.display()
            ));
        }
        let raw_log = dir.path().join("defmt.bin");
        let http_port = free_port();
        let word = |offset: u32, value: u32| {
            format!(
                "loader,addr={:#x},data={value:#x},data-len=4",
                OVERRIDE_BLOCK + offset
            )
        };
        let child = Command::new("qemu-system-arm")
            .args(["-M", "mps2-an385", "-nographic", "-monitor"])
            .arg(format!(
                "unix:{},server=on,wait=off",
                dir.path().join("monitor.sock").display()
            ))
            .args(["-serial", "none"])
            .args(["-semihosting-config", "enable=on,target=native"])
            .args([
                "-nic",
                &format!("user,hostfwd=tcp:127.0.0.1:{http_port}-:80"),
            ])
            .args(["-device", &word(0, OVERRIDE_MAGIC)])
            .args(["-device", &word(8, u32::from(pbx_port))])
            .args(["-device", &word(12, max_backoff_secs)])
            .args([
                "-device",
                &format!(
                    "loader,file={},addr={PROVISIONING:#x}",
                    provisioning.display()
                ),
            ])
            .args(loaders.iter().flat_map(|l| ["-device", l.as_str()]))
            .args(fw.boot.iter().flat_map(|b| {
                [
                    "-device".to_string(),
                    format!(
                        "loader,file={},addr={FACTORY:#x},force-raw=on",
                        b.bin.display()
                    ),
                ]
            }))
            .arg("-kernel")
            .arg(fw.boot.as_ref().map_or(&fw.elf, |b| &b.bootloader))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&raw_log).expect("log file"))
            .stderr(std::fs::File::create(dir.path().join("qemu.err")).expect("err file"))
            .spawn()
            .expect("qemu-system-arm");
        let device = Self {
            child,
            http_port,
            raw_log,
            elf: fw.elf.clone(),
            defmt_print: fw.defmt_print.clone(),
            _dir: dir,
        };
        device.wait_http(Duration::from_secs(30));
        device
    }

    /// Resets the machine as its reset line would (QEMU's `system_reset`): the image and the
    /// provisioning page are loaded again, the rest of flash and RAM keep their contents.
    /// Waits until HTTP answers again.
    pub fn reset(&self) {
        let socket = self._dir.path().join("monitor.sock");
        let mut monitor = std::os::unix::net::UnixStream::connect(&socket).expect("QEMU monitor");
        monitor.write_all(b"system_reset\n").expect("system_reset");
        // The monitor answers with its prompt once the command ran.
        let _ = monitor.set_read_timeout(Some(Duration::from_secs(2)));
        let mut echo = [0u8; 256];
        let _ = monitor.read(&mut echo);
        std::thread::sleep(Duration::from_millis(500));
        self.wait_http(Duration::from_secs(30));
    }

    /// Words of the guest's memory at `addr`, read through QEMU's monitor (`xp`).
    pub fn memory_words(&self, addr: u32, count: usize) -> Vec<u32> {
        let socket = self._dir.path().join("monitor.sock");
        let mut monitor = std::os::unix::net::UnixStream::connect(&socket).expect("QEMU monitor");
        let _ = monitor.set_read_timeout(Some(Duration::from_millis(500)));
        let mut sink = [0u8; 4096];
        let _ = monitor.read(&mut sink); // the banner and prompt
        monitor
            .write_all(format!("xp /{count}xw {addr:#x}\n").as_bytes())
            .expect("xp");
        let mut text = String::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut words = Vec::new();
        while words.len() < count && Instant::now() < deadline {
            if let Ok(n @ 1..) = monitor.read(&mut sink) {
                text.push_str(&String::from_utf8_lossy(&sink[..n]));
            }
            words = text
                .lines()
                .filter_map(|l| l.split_once(": "))
                .flat_map(|(_, w)| w.split_whitespace())
                .filter_map(|w| u32::from_str_radix(w.trim().trim_start_matches("0x"), 16).ok())
                .collect();
        }
        assert_eq!(words.len(), count, "xp answered {text:?}");
        words
    }

    /// How many times the image has started so far: its boot banners in the log.
    pub fn boots(&self) -> usize {
        self.log().matches(BOOT_BANNER).count()
    }

    /// Waits until the image has started more than `boots` times and answers HTTP, at most
    /// `limit` for the start.
    pub fn wait_for_boot(&self, boots: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.boots() <= boots {
            assert!(
                Instant::now() < deadline,
                "no new start in {limit:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        self.wait_http(Duration::from_secs(30));
    }

    /// Reboots the device through the admin API ([`ADMIN_KEY`]) and waits until it has
    /// started again and answers HTTP.
    pub fn reboot(&self) {
        self.reboot_with(ADMIN_KEY);
    }

    /// [`Device::reboot`] with another admin key (one the device was given since).
    pub fn reboot_with(&self, admin_key: &str) {
        let boots = self.boots();
        let auth = format!("Authorization: Bearer {admin_key}");
        let r = self.request("POST", "/admin/reboot", &[&auth], b"");
        assert_eq!(r.status, 202, "{r:?}");
        assert_eq!(r.text(), r#"{"status":"rebooting"}"#);
        self.wait_for_boot(boots, Duration::from_secs(60));
    }

    /// Waits until the device answers HTTP (a `405` for `GET`).
    pub fn wait_http(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(r) = self.raw(b"GET /click2dial/calls HTTP/1.1\r\nHost: d\r\n\r\n") {
                assert_eq!(r.status, 405, "{r:?}");
                assert!(r.head.contains("allow: POST"), "{r:?}");
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the device did not answer HTTP\n{}", self.log());
    }

    /// Sends `bytes` on a new connection and reads the answer until the device closes;
    /// `None` when the connection was refused or closed without an answer (all listeners
    /// busy, or the guest not up yet).
    pub fn raw(&self, bytes: &[u8]) -> Option<Response> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.http_port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .ok()?;
        stream
            .set_write_timeout(Some(Duration::from_secs(20)))
            .ok()?;
        stream.write_all(bytes).ok()?;
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        Response::parse(&answer)
    }

    /// `method path` with `headers` (each `Name: value`) and `body` (with its
    /// `Content-Length`), retried while the device refuses the connection.
    pub fn request(&self, method: &str, path: &str, headers: &[&str], body: &[u8]) -> Response {
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: device\r\n").into_bytes();
        for h in headers {
            request.extend_from_slice(format!("{h}\r\n").as_bytes());
        }
        request.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        request.extend_from_slice(body);
        self.retry(|| self.raw(&request))
    }

    /// `POST /click2dial/calls` with `content_type` (none: no header) and a `Content-Length`.
    pub fn post_as(&self, content_type: Option<&str>, body: &[u8]) -> Option<Response> {
        let mut request = b"POST /click2dial/calls HTTP/1.1\r\nHost: device\r\n".to_vec();
        if let Some(ct) = content_type {
            request.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        request.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        request.extend_from_slice(body);
        self.raw(&request)
    }

    /// A JSON `POST`, retried while the device refuses the connection.
    pub fn post(&self, body: &str) -> Response {
        self.retry(|| self.post_as(Some("application/json"), body.as_bytes()))
    }

    /// Retries `send` for up to 20 s while it gets no answer.
    pub fn retry(&self, mut send: impl FnMut() -> Option<Response>) -> Response {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(r) = send() {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "no answer from the device\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Posts `body` until the answer is not `503` (the PBX session is up) or 30 s pass.
    pub fn post_when_ready(&self, body: &str) -> Response {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self.post(body);
            if r.status != 503 || Instant::now() > deadline {
                return r;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The decoded defmt log so far.
    pub fn log(&self) -> String {
        let Ok(raw) = std::fs::File::open(&self.raw_log) else {
            return String::new();
        };
        let out = Command::new(&self.defmt_print)
            .arg("-e")
            .arg(&self.elf)
            .stdin(raw)
            .output()
            .expect("defmt-print");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Fails on any panic, fault or error line in the log; returns the log.
    pub fn assert_log_clean(&self) -> String {
        let log = self.log();
        let bad: Vec<&str> = log
            .lines()
            .filter(|l| {
                let l = l.trim_start();
                l.starts_with("ERROR") || l.contains("panicked") || l.contains("hard fault")
            })
            .collect();
        assert!(
            bad.is_empty(),
            "error lines in the device log: {bad:#?}\n{log}"
        );
        assert!(
            log.contains("listening on"),
            "the log does not show the device starting:\n{log}"
        );
        log
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// An HTTP answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    fn parse(bytes: &[u8]) -> Option<Self> {
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
        let status = head.split(' ').nth(1)?.parse().ok()?;
        let body = bytes[end + 4..].to_vec();
        let length = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().to_string())
            })
            .and_then(|v| v.parse::<usize>().ok());
        assert_eq!(length, Some(body.len()), "Content-Length of {head:?}");
        Some(Self { status, head, body })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `pbx-sim` on a port of the test's choosing, so it can come back on the same port.
pub struct Sim {
    child: Option<Child>,
    pub port: u16,
    log: PathBuf,
    dir: tempfile::TempDir,
}

impl Sim {
    pub fn start() -> Self {
        let mut sim = Self {
            child: None,
            port: free_port(),
            log: PathBuf::new(),
            dir: tempfile::tempdir().expect("tempdir"),
        };
        sim.log = sim.dir.path().join("pbx-sim.log");
        sim.spawn();
        sim
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("sim log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_pbx-sim"))
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--secret", "secret", "--time-scale", "0.05"])
            // The appliance's two contexts: two-leg calls and one-leg (agent = callee) calls.
            .args(["--context", "c2d-outbound", "--context", "c2d-direct"])
            .arg("--recordings-dir")
            .arg(self.dir.path().join("recordings"))
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("pbx-sim");
        let stdout = child.stdout.take().expect("stdout");
        let mut first = String::new();
        BufReader::new(stdout)
            .read_line(&mut first)
            .expect("pbx-sim stdout");
        assert!(first.starts_with("listening "), "pbx-sim said {first:?}");
        self.child = Some(child);
    }

    /// Stops the simulator (its connections close).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill(&mut c);
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The simulator's `originate …` log lines for this `ActionID`.
    pub fn originate_lines(&self, action_id: &str) -> Vec<String> {
        let needle = format!(" originate action_id=\"{action_id}\"");
        self.log_text()
            .lines()
            .filter(|l| l.contains(&needle))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A minimal AMI server that logs every client in, answers `Ping` and `Originate` with
/// `Success`, and keeps the raw bytes of every Originate it receives.
pub struct CaptureAmi {
    pub port: u16,
    pub originates: Arc<Mutex<Vec<Vec<u8>>>>,
    pub logins: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl CaptureAmi {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let originates = Arc::new(Mutex::new(Vec::new()));
        let logins = Arc::new(Mutex::new(Vec::new()));
        let (o, l) = (originates.clone(), logins.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let (o, l) = (o.clone(), l.clone());
                std::thread::spawn(move || serve_ami(stream, &o, &l));
            }
        });
        Self {
            port,
            originates,
            logins,
        }
    }
}

fn serve_ami(
    mut stream: TcpStream,
    originates: &Mutex<Vec<Vec<u8>>>,
    logins: &Mutex<Vec<Vec<u8>>>,
) {
    let _ = stream.write_all(b"Asterisk Call Manager/11.0.0\r\n");
    let mut decoder = Decoder::without_banner();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Ok(Some(decoded)) = decoder.decode(&buf) {
            let len = decoded.len;
            let Frame::Message(m) = decoded.frame else {
                buf.drain(..len);
                continue;
            };
            let id = m.action_id().unwrap_or("").to_string();
            let action = m.get("Action").unwrap_or("").to_ascii_lowercase();
            let raw = buf[..len].to_vec();
            let mut answer = format!("Response: Success\r\nActionID: {id}\r\n");
            match action.as_str() {
                "login" => {
                    logins.lock().expect("lock").push(raw);
                    answer.push_str("Message: Authentication accepted\r\n\r\nEvent: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n");
                }
                // The check the appliance runs at login (core::ami::Session): the actions
                // it needs, as Asterisk lists them.
                "listcommands" => answer.push_str(
                    "Originate: Originate a call. (Priv: originate,all)\r\n\
                     Ping: Keepalive command. (Priv: <none>)\r\n\
                     ShowDialPlan: Show dialplan contexts and extensions (Priv: config,reporting,all)\r\n\r\n",
                ),
                "originate" => {
                    originates.lock().expect("lock").push(raw);
                    answer.push_str("Message: Originate successfully queued\r\n\r\n");
                }
                _ => answer.push_str("Ping: Pong\r\n\r\n"),
            }
            buf.drain(..len);
            if stream.write_all(answer.as_bytes()).is_err() {
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

/// The contract's error body for `error`, written by core's writer (as the host writes it).
pub fn error_body(error: &click2dial_core::Error) -> String {
    let mut buf = [0u8; click2dial_core::json::ERROR_BODY_MAX_LEN];
    let n = click2dial_core::json::write_error(error, &mut buf).expect("error body fits");
    String::from_utf8(buf[..n].to_vec()).expect("UTF-8")
}

/// The 32 bytes a 64-digit hex string (a SHA-256 among the tests' constants) spells.
pub fn hash_bytes(hex: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex");
    }
    out
}
