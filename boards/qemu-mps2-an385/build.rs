//! Puts `memory-budget.x` (or, with the `admin` feature, `memory-admin.x`) as `memory.x` and
//! `device.x` (src/vectors.rs) on the linker path and links with cortex-m-rt's and defmt's scripts.

fn main() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // The admin image is the fleet image: linked at ACTIVE, started by the bootloader
    // (memory-admin.x); it does not fit the 96 KiB budget. Neither file is called memory.x in this folder: the
    // linker would find that one first, whatever the search path says.
    let memory = if std::env::var_os("CARGO_FEATURE_ADMIN").is_some() {
        "memory-admin.x"
    } else {
        "memory-budget.x"
    };
    std::fs::copy(memory, out.join("memory.x")).expect("copy memory.x");
    std::fs::copy("device.x", out.join("device.x")).expect("copy device.x");
    println!("cargo::rustc-link-search={}", out.display());
    println!("cargo::rerun-if-changed=memory-budget.x");
    println!("cargo::rerun-if-changed=memory-admin.x");
    println!("cargo::rerun-if-changed=device.x");
    println!("cargo::rustc-link-arg=--nmagic");
    // Identical code folding: monomorphised copies that compile to the same bytes are kept
    // once (1,144 B less flash for the admin image, measured).
    println!("cargo::rustc-link-arg=--icf=all");
    println!("cargo::rustc-link-arg=-Tlink.x");
    println!("cargo::rustc-link-arg=-Tdefmt.x");
}
