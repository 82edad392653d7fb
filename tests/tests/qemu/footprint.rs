//! The QEMU image's stack high-water mark under a mixed workload, measured by the firmware
//! itself (cortex-m-rt paints the stack; the firmware logs the deepest use over defmt).
//! Written to `boards/qemu-mps2-an385/target/stack-high-water.txt` for `.ci/firmware.sh`,
//! which prints it beside `.text`/`.data`/`.bss`.

use std::time::Duration;

use crate::qemu_support::{board_dir, firmware, CaptureAmi, Device};

/// Bytes the stack may never come closer than to the statics below it.
const MARGIN: usize = 1024;

#[test]
fn stack_high_water_under_load_stays_inside_the_budget() {
    let Some(fw) = firmware() else { return };
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
    let (used, size) = log
        .lines()
        .filter_map(|l| {
            let rest = l.split("stack high-water: ").nth(1)?;
            let mut words = rest.split_whitespace();
            let used: usize = words.next()?.parse().ok()?;
            let size: usize = words.nth(2)?.parse().ok()?;
            Some((used, size))
        })
        .max()
        .unwrap_or_else(|| panic!("no stack high-water line in\n{log}"));
    eprintln!("stack high-water: {used} bytes of {size} reserved");
    assert!(
        used + MARGIN <= size,
        "the stack ({used} bytes) comes within {MARGIN} bytes of the statics ({size} reserved)"
    );
    let report = board_dir().join("target/stack-high-water.txt");
    std::fs::write(&report, format!("{used} {size}\n")).expect("write the stack report");
}
