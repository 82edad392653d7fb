#!/usr/bin/env bash
# Firmware CI: installs what a fresh machine lacks (qemu-system-arm, arm-none-eabi-size,
# defmt-print, the thumb targets), checks and builds the appliance and both boards, runs the
# QEMU hardware-in-the-loop tests (which check the footprint of each image against the
# budget), and prints that footprint. With C2D_QEMU_TESTS_LATER set (.ci/test) it stops
# before the QEMU tests: the caller runs them with the workspace's tests.
# Idempotent: on a machine that has everything it only checks, builds and tests.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s ==\n' "$*"; }
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

step "firmware tools"
need=()
command -v qemu-system-arm >/dev/null || need+=(qemu-system-arm)
command -v arm-none-eabi-size >/dev/null || need+=(binutils-arm-none-eabi)
command -v openssl >/dev/null || need+=(openssl)   # boards/sign-update.sh (appliance and QEMU tests)
command -v curl >/dev/null || need+=(curl)            # the operator's upload, as README shows it (QEMU tests)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
qemu-system-arm --version | sed -n 1p
if ! command -v defmt-print >/dev/null; then
  # About 1.5-3.5 minutes; the binary stays in ~/.cargo/bin for the next run.
  cargo install defmt-print --version 1.2.0 --locked
fi
defmt-print --version
rustup target add thumbv7m-none-eabi thumbv7em-none-eabihf

folders=(appliance boards/qemu-mps2-an385 boards/nucleo-h743zi boards/nucleo-h743zi-bootloader
  boards/qemu-mps2-an385-bootloader)

step "format and clippy (-D warnings) in each firmware folder"
for dir in "${folders[@]}"; do
  [ -f "$dir/Cargo.toml" ] || continue
  (cd "$dir" && cargo fmt -- --check && cargo clippy --locked -- -D warnings)
done
# The QEMU image with the admin API, the configuration store and signed updates, and the
# rollback test's image that never marks itself booted (the tests build both).
(cd boards/qemu-mps2-an385 && cargo clippy --locked --features admin -- -D warnings \
  && cargo clippy --locked --features never-mark-booted -- -D warnings)

step "appliance unit tests (on the host)"
host=$(rustc -vV | sed -n 's/^host: //p')
(cd appliance && cargo test --locked --target "$host")

step "build the boards and the bootloaders (release)"
for dir in "${folders[@]:1}"; do
  [ -f "$dir/Cargo.toml" ] || continue
  (cd "$dir" && cargo build --release --locked)
done

arm-none-eabi-size boards/nucleo-h743zi-bootloader/target/thumbv7em-none-eabihf/release/click2dial-nucleo-h743zi-bootloader \
  boards/qemu-mps2-an385-bootloader/target/thumbv7m-none-eabi/release/click2dial-qemu-mps2-an385-bootloader

if [ -n "${C2D_QEMU_TESTS_LATER:-}" ]; then
  # .ci/test runs them with the rest of the workspace's tests (once, not twice) and prints
  # the footprint after them.
  exit 0
fi

step "QEMU hardware-in-the-loop tests (they build the admin image, its update builds and the QEMU bootloader)"
cargo test -p click2dial-tests --locked --test qemu

step "footprint (budget for the QEMU image: flash <= 96 KiB, static RAM + stack <= 48 KiB)"
# Written and enforced by tests/tests/qemu/footprint.rs in the step above: the sections of
# each board's image and the QEMU image's stack high-water mark under the tests' load.
cat boards/qemu-mps2-an385/target/footprint.txt
