//! The boards' footprint against their budgets: `.text`, `.rodata`, `.data` and `.bss` read
//! from each image's section headers, and the QEMU image's stack high-water mark under a
//! mixed workload, measured by the firmware itself (cortex-m-rt paints the stack; the
//! firmware logs the deepest use over defmt).
//!
//! The QEMU image must fit 96 KiB of flash and 48 KiB of RAM (statics + the stack's
//! high-water mark), as a small MCU would hold it twice for A/B updates. The NUCLEO image is
//! reported when it was built (`.ci/firmware.sh` builds it first); its chip has 2 MiB and
//! 512 KiB, so only the QEMU image has a budget. The report also goes to
//! `boards/qemu-mps2-an385/target/footprint.txt`.

use std::path::Path;
use std::time::Duration;

use crate::qemu_support::{board_dir, firmware, firmware_admin, CaptureAmi, Device};

/// Flash budget of the QEMU image: `.vector_table` + `.text` + `.rodata` + `.data`.
const FLASH_BUDGET: u64 = 96 * 1024;
/// RAM budget of the QEMU image: `.data` + `.bss` + `.uninit` + the stack's high-water mark.
pub(crate) const RAM_BUDGET: u64 = 48 * 1024;

/// The admin image's RAM against the budget: its statics and the deepest stack `log` (the
/// device's decoded log) reports; `what` names the workload behind that stack.
pub(crate) fn assert_admin_ram_in_budget(log: &str, what: &str) {
    let stack: u64 = log
        .lines()
        .filter_map(|l| {
            l.split("stack high-water: ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .max()
        .expect("a stack high-water line");
    let statics = Sections::read(&firmware_admin().expect("built").elf).static_ram();
    eprintln!(
        "admin image {what}: static RAM {statics} + stack high-water {stack} = {}",
        statics + stack
    );
    assert!(
        statics + stack <= RAM_BUDGET,
        "{statics} + {stack} > {RAM_BUDGET}"
    );
}
/// Bytes the stack may never come closer than to the statics below it.
const MARGIN: u64 = 1024;

#[test]
fn footprint_stays_inside_the_budget() {
    let Some(fw) = firmware() else { return };
    let (stack, reserved) = stack_high_water(fw);
    assert!(
        stack + MARGIN <= reserved,
        "the stack ({stack} bytes) comes within {MARGIN} bytes of the statics ({reserved} reserved)"
    );
    let qemu = Sections::read(&fw.elf);
    let mut report = String::from(
        "board              .text  .rodata  .data    .bss    flash  static RAM  stack high-water  RAM total\n",
    );
    report.push_str(&qemu.line("qemu-mps2-an385", Some(stack)));
    // The image with the admin API, the configuration store and signed updates (feature
    // `admin`, linked at ACTIVE: 256 KiB) does not fit the flash budget: reported, not held
    // to it (its RAM is, by tests/qemu/admin.rs and update.rs).
    if let Some(admin) = firmware_admin() {
        report.push_str(&Sections::read(&admin.elf).line("qemu (admin)", None));
    }
    let nucleo = Path::new(env!("CARGO_MANIFEST_DIR")).join(
        "../boards/nucleo-h743zi/target/thumbv7em-none-eabihf/release/click2dial-nucleo-h743zi",
    );
    if nucleo.is_file() {
        report.push_str(&Sections::read(&nucleo).line("nucleo-h743zi", None));
    }
    report.push_str(&format!(
        "budget (qemu-mps2-an385): flash {FLASH_BUDGET}, RAM total {RAM_BUDGET}\n"
    ));
    eprint!("{report}");
    std::fs::write(board_dir().join("target/footprint.txt"), &report).expect("write the report");
    assert!(
        qemu.flash() <= FLASH_BUDGET,
        "flash over budget: {} > {FLASH_BUDGET}\n{report}",
        qemu.flash()
    );
    assert!(
        qemu.static_ram() + stack <= RAM_BUDGET,
        "RAM over budget: {} > {RAM_BUDGET}\n{report}",
        qemu.static_ram() + stack
    );
}

/// Boots the image, drives every kind of request through it, and returns the deepest stack
/// use the firmware logged and the bytes reserved for the stack.
fn stack_high_water(fw: &crate::qemu_support::Firmware) -> (u64, u64) {
    let ami = CaptureAmi::start();
    let device = Device::boot(fw, ami.port, 1);
    let valid = |r: &str| {
        format!(
            r#"{{"agent":"1001","callee":"0820001234","outbound_id":"0820001234","contact_ref":"{r}"}}"#
        )
    };
    assert_eq!(device.post_when_ready(&valid("fp-0")).status, 202);
    let long_ref = "a".repeat(300);
    for i in 0..20 {
        device.post(&valid(&format!("fp-{i}")));
        device.post(&valid(&long_ref));
        device.post(r#"{"agent":1001,"callee":"0027820001234","outbound_id":"tvc_spring-sale"}"#);
        device.post(r#"{"agent":"1001","callee":12,"outbound_id":[1,[2,[3,{"a":[4]}]]]}"#);
        device.post(&format!("{{\"pad\":\"{}\"}}", "x".repeat(4000)));
        device.retry(|| device.raw(b"POST /click2dial/calls HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n"));
    }
    // The firmware checks its stack every 500 ms.
    std::thread::sleep(Duration::from_millis(1200));
    let log = device.assert_log_clean();
    log.lines()
        .filter_map(|l| {
            let rest = l.split("stack high-water: ").nth(1)?;
            let mut words = rest.split_whitespace();
            let used = words.next()?.parse().ok()?;
            let size = words.nth(2)?.parse().ok()?;
            Some((used, size))
        })
        .max()
        .unwrap_or_else(|| panic!("no stack high-water line in\n{log}"))
}

/// The sizes of an ARM image's allocated sections, from its ELF32 section headers.
#[derive(Debug, Default)]
pub(crate) struct Sections {
    vector_table: u64,
    text: u64,
    rodata: u64,
    data: u64,
    bss: u64,
    uninit: u64,
}

impl Sections {
    pub(crate) fn read(elf: &Path) -> Self {
        let bytes = std::fs::read(elf).unwrap_or_else(|e| panic!("{}: {e}", elf.display()));
        assert_eq!(
            &bytes[..6],
            b"\x7fELF\x01\x01",
            "{}: not a little-endian ELF32",
            elf.display()
        );
        let u16_at = |at: usize| u64::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]));
        let u32_at = |at: usize| {
            u64::from(u32::from_le_bytes(
                bytes[at..at + 4].try_into().expect("4 bytes"),
            ))
        };
        let (shoff, shentsize, shnum, shstrndx) =
            (u32_at(0x20), u16_at(0x2E), u16_at(0x30), u16_at(0x32));
        let header = |i: u64| usize::try_from(shoff + i * shentsize).expect("offset");
        let names = u32_at(header(shstrndx) + 0x10);
        let mut sections = Self::default();
        for i in 0..shnum {
            let h = header(i);
            let name_at = usize::try_from(names + u32_at(h)).expect("offset");
            let end = bytes[name_at..].iter().position(|&b| b == 0).expect("NUL");
            let name = std::str::from_utf8(&bytes[name_at..name_at + end]).expect("UTF-8");
            let size = u32_at(h + 0x14);
            match name {
                ".vector_table" => sections.vector_table += size,
                ".text" => sections.text += size,
                ".rodata" => sections.rodata += size,
                ".data" => sections.data += size,
                ".bss" => sections.bss += size,
                ".uninit" => sections.uninit += size,
                _ => {}
            }
        }
        sections
    }

    /// What the image takes of flash: the vector table, code, constants and `.data`'s
    /// initial values.
    fn flash(&self) -> u64 {
        self.vector_table + self.text + self.rodata + self.data
    }

    /// What its statics take of RAM.
    pub(crate) fn static_ram(&self) -> u64 {
        self.data + self.bss + self.uninit
    }

    fn line(&self, board: &str, stack: Option<u64>) -> String {
        let (stack, total) = match stack {
            Some(s) => (s.to_string(), (self.static_ram() + s).to_string()),
            None => ("n/a".into(), "n/a".into()),
        };
        format!(
            "{board:<16} {:>7} {:>8} {:>6} {:>7} {:>8} {:>11} {:>17} {:>10}\n",
            self.text,
            self.rodata,
            self.data,
            self.bss,
            self.flash(),
            self.static_ram(),
            stack,
            total
        )
    }
}
