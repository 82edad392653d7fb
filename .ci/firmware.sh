#!/usr/bin/env bash
# Firmware CI: installs what a fresh machine lacks (qemu-system-arm, arm-none-eabi-size,
# defmt-print, the thumb targets), checks and builds the appliance and both boards, runs the
# QEMU hardware-in-the-loop tests, and prints the footprint of each image against the budget.
# Idempotent: on a machine that has everything it only checks, builds and tests.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s ==\n' "$*"; }
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

step "firmware tools"
need=()
command -v qemu-system-arm >/dev/null || need+=(qemu-system-arm)
command -v arm-none-eabi-size >/dev/null || need+=(binutils-arm-none-eabi)
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

folders=(appliance boards/qemu-mps2-an385 boards/nucleo-h743zi)

step "format and clippy (-D warnings) in each firmware folder"
for dir in "${folders[@]}"; do
  [ -f "$dir/Cargo.toml" ] || continue
  (cd "$dir" && cargo fmt -- --check && cargo clippy --locked -- -D warnings)
done

step "appliance unit tests (on the host)"
host=$(rustc -vV | sed -n 's/^host: //p')
(cd appliance && cargo test --locked --target "$host")

step "build both boards (release)"
for dir in "${folders[@]:1}"; do
  [ -f "$dir/Cargo.toml" ] || continue
  (cd "$dir" && cargo build --release --locked)
done

step "QEMU hardware-in-the-loop tests"
cargo test -p click2dial-tests --locked --test qemu

step "footprint (budget for the QEMU image: flash <= 128 KiB, static RAM + stack <= 64 KiB)"
report() {
  local name="$1" elf="$2" stack_file="${3:-}"
  # Berkeley format: text = .text + .rodata + vector table, then .data, .bss.
  read -r text data bss _ < <(arm-none-eabi-size "$elf" | tail -1)
  local flash=$((text + data)) ram=$((data + bss)) stack="n/a" total="n/a"
  if [ -n "$stack_file" ] && [ -f "$stack_file" ]; then
    read -r stack _ <"$stack_file"
    total=$((ram + stack))
  fi
  printf '%-24s text %7d  .data %6d  .bss %7d  flash %7d  static RAM %6d  stack high-water %6s  RAM total %6s\n' \
    "$name" "$text" "$data" "$bss" "$flash" "$ram" "$stack" "$total"
  if [ "$name" = qemu-mps2-an385 ]; then
    [ "$flash" -le $((128 * 1024)) ] || { echo "flash over budget" >&2; exit 1; }
    [ "$total" != n/a ] && [ "$total" -le $((64 * 1024)) ] || { echo "RAM over budget" >&2; exit 1; }
  fi
}
report qemu-mps2-an385 \
  boards/qemu-mps2-an385/target/thumbv7m-none-eabi/release/click2dial-qemu-mps2-an385 \
  boards/qemu-mps2-an385/target/stack-high-water.txt
if [ -f boards/nucleo-h743zi/Cargo.toml ]; then
  report nucleo-h743zi \
    boards/nucleo-h743zi/target/thumbv7em-none-eabihf/release/click2dial-nucleo-h743zi
fi
echo "(stack high-water of the QEMU image measured by painting the stack and logging the deepest use over defmt, under the tests' load)"
