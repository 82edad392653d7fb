//! Links with cortex-m-rt's and defmt's scripts and this folder's `memory.x`: the image runs
//! from the ACTIVE partition of the bootloader's flash map. Writes the fleet's update key.

fn main() {
    update_key();
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    println!("cargo::rustc-link-search={dir}");
    println!("cargo::rerun-if-changed=memory.x");
    println!("cargo::rustc-link-arg-bins=--nmagic");
    println!("cargo::rustc-link-arg-bins=-Tlink.x");
    println!("cargo::rustc-link-arg-bins=-Tdefmt.x");
}

/// `OUT_DIR/update_key.rs`: `Some([..])` with the 32 bytes of the file `C2D_UPDATE_PUBLIC_KEY`
/// names (`boards/sign-update.sh public`), or `None`.
fn update_key() {
    println!("cargo::rerun-if-env-changed=C2D_UPDATE_PUBLIC_KEY");
    let key = match std::env::var_os("C2D_UPDATE_PUBLIC_KEY") {
        Some(path) => {
            println!("cargo::rerun-if-changed={}", path.to_string_lossy());
            let bytes = std::fs::read(&path).unwrap_or_else(|e| {
                panic!("C2D_UPDATE_PUBLIC_KEY={}: {e}", path.to_string_lossy())
            });
            assert_eq!(
                bytes.len(),
                32,
                "C2D_UPDATE_PUBLIC_KEY: a raw 32-byte Ed25519 key (sign-update.sh public)"
            );
            format!("Some({bytes:?})")
        }
        None => "None".to_string(),
    };
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("update_key.rs"), key).expect("write update_key.rs");
}
