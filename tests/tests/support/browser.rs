//! What the browser tests share: the node project in `tests/browser`, Chromium, the tools
//! they need (a missing one fails the test with the command that installs it; never a
//! skip), and the folder where screenshots and logs are kept.

use std::path::{Path, PathBuf};

/// How to install everything a browser test needs.
pub const SETUP: &str =
    "run `bash .ci/browser.sh` (installs chromium, kamailio, sipp and node, and runs `npm ci` in tests/browser)";

/// `tests/browser`: the test scripts and their `node_modules`.
pub fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// `target/browser-artifacts/<name>`, emptied: screenshots and logs of one test, kept after
/// the run as test artifacts.
pub fn artifacts_dir(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test binary>
    let target = exe
        .ancestors()
        .nth(3)
        .expect("target directory")
        .to_path_buf();
    let dir = target.join("browser-artifacts").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("artifacts directory");
    dir
}

/// The path of `program` on `PATH` (or in /usr/sbin, which a user's `PATH` may lack), or a
/// failure that names its Debian package.
pub fn require(program: &str, package: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("`{program}` not found (Debian package {package}): {SETUP}"))
}

/// Chromium (`C2D_CHROMIUM`, else Debian's `/usr/bin/chromium`), after checking that node
/// and playwright-core are there too.
pub fn require_browser() -> PathBuf {
    let chromium = std::env::var_os("C2D_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.is_file(),
        "{} not found (Debian package chromium): {SETUP}",
        chromium.display()
    );
    require("node", "nodejs");
    assert!(
        browser_dir()
            .join("node_modules/playwright-core/package.json")
            .is_file(),
        "playwright-core is not installed in tests/browser/node_modules: {SETUP}"
    );
    chromium
}
