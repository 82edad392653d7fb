//! Puts `memory-budget.x` as `memory.x` and `device.x` (src/vectors.rs) on the linker path and
//! links with cortex-m-rt's and defmt's scripts.

fn main() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // Every image, the admin one included, links within the 96 KiB budget (memory-budget.x;
    // memory-admin.x, 112 KiB, is no longer used). Neither file is called memory.x in this
    // folder: the linker would find that one first, whatever the search path says.
    let memory = "memory-budget.x";
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
