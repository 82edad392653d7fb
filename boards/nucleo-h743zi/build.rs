//! Links with cortex-m-rt's and defmt's scripts; embassy-stm32 (`memory-x`) provides
//! `memory.x` for the STM32H743ZI.

fn main() {
    println!("cargo::rustc-link-arg-bins=--nmagic");
    println!("cargo::rustc-link-arg-bins=-Tlink.x");
    println!("cargo::rustc-link-arg-bins=-Tdefmt.x");
}
