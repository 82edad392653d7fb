//! References on the QEMU board, which has no random number generator: the ChaCha20
//! keystream under the device secret provisioned at flashing time, with a nonce from the boot
//! counter in flash and the boot's timing. Two boots of the same image with the same secret
//! (two QEMU runs from the same flash contents, so the counter starts alike) must still give
//! different references, with nothing sequential between them; within one run, the boot
//! counter goes on across a reset.

use crate::qemu_support::{firmware, random_secret, CaptureAmi, Device};

/// A call without a `contact_ref`: the device generates one, and the recording reference.
const CALL: &str = r#"{"agent":"1001","callee":"0820001234","outbound_id":"0820001234"}"#;

/// The 128 bits a base32 reference carries.
fn bits(reference: &str) -> u128 {
    reference.bytes().fold(0u128, |acc, c| {
        let v = match c {
            b'a'..=b'z' => c - b'a',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("{reference:?} is not base32"),
        };
        acc.wrapping_shl(5) | u128::from(v)
    })
}

fn references_of_one_boot(secret: &[u8; 32], calls: usize) -> Vec<String> {
    let fw = firmware().expect("checked by the caller");
    let ami = CaptureAmi::start();
    let device = Device::boot_provisioned(fw, ami.port, 1, secret);
    let refs = references(&device, calls);
    let log = device.assert_log_clean();
    assert!(
        log.contains("boot 0"),
        "a fresh flash counts boot 0:\n{log}"
    );
    refs
}

/// The references of `calls` calls placed through `device`.
fn references(device: &Device, calls: usize) -> Vec<String> {
    let mut refs = Vec::new();
    for i in 0..calls {
        let r = if i == 0 {
            device.post_when_ready(CALL)
        } else {
            device.post(CALL)
        };
        assert_eq!(r.status, 202, "{}", r.text());
        let body: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
        for key in ["contact_ref", "recording_ref"] {
            refs.push(body[key].as_str().expect(key).to_string());
        }
    }
    refs
}

/// Checks that no reference came twice and that no two are related.
fn assert_unrelated(all: &[&String]) {
    for (i, a) in all.iter().enumerate() {
        assert_eq!(a.len(), 26, "{a}");
        for b in &all[i + 1..] {
            let (x, y) = (bits(a), bits(b));
            assert_ne!(x, y, "a reference came twice: {all:?}");
            // Unrelated 128-bit values differ in about 64 bits, and by far more than a step.
            let differing = (x ^ y).count_ones();
            assert!(
                (24..=104).contains(&differing),
                "{a} and {b} differ in {differing} bits"
            );
            assert!(x.abs_diff(y) > 1 << 64, "{a} and {b} are close as numbers");
        }
    }
}

#[test]
fn two_boots_of_one_image_give_different_unrelated_references() {
    if firmware().is_none() {
        return;
    }
    let secret = random_secret();
    let first = references_of_one_boot(&secret, 3);
    let second = references_of_one_boot(&secret, 3);
    let all: Vec<&String> = first.iter().chain(&second).collect();
    assert_unrelated(&all);
}

#[test]
fn the_boot_counter_survives_a_reset() {
    let Some(fw) = firmware() else { return };
    let ami = CaptureAmi::start();
    let device = Device::boot(fw, ami.port, 1);
    let before = references(&device, 2);
    device.reset();
    let after = references(&device, 2);
    let log = device.log();
    assert!(
        log.contains("boot 0") && log.contains("boot 1"),
        "the second boot counts 1:\n{log}"
    );
    let all: Vec<&String> = before.iter().chain(&after).collect();
    assert_unrelated(&all);
}
