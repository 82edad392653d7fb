//! `boards/sign-update.sh` as the tests run it: shared by the appliance's signature tests
//! and the QEMU update tests (`tests/tests/qemu/update.rs` includes this file).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The script, as shipped.
fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../boards/sign-update.sh")
}

/// Runs `bash boards/sign-update.sh ARGS…`, whatever its exit status.
pub(crate) fn run_sign_update(args: &[&Path]) -> Output {
    Command::new("bash")
        .arg(script())
        .args(args)
        .output()
        .expect("bash runs")
}

/// Runs `bash boards/sign-update.sh ARGS…`, which must succeed, and returns its standard
/// output.
pub(crate) fn sign_update(args: &[&Path]) -> Vec<u8> {
    let out = run_sign_update(args);
    assert!(
        out.status.success(),
        "sign-update.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
