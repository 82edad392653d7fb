#!/usr/bin/env bash
# Bounded, coverage-guided fuzzing of click2dial-core (core/fuzz, cargo-fuzz + libFuzzer).
#
# Called by .ci/run as `bash .ci/fuzz.sh`. Exits non-zero when the fuzzer finds a crash (a
# panic in the core or a broken invariant), a hang or a memory blow-up, and prints the input.
#
#   FUZZ_SECONDS=45                 seconds of fuzzing per target (default: 45 each, but
#                                   60 for ami_session and 15 for range: about 165 s of
#                                   fuzzing, under 4 minutes with the builds on 2 cores)
#   FUZZ_TARGETS="parse_validate agi_session ami_session range"   space-separated targets
#                                   (also: request_ref)
#   FUZZ_TOOLCHAIN=nightly          toolchain to fuzz with (installed, minimal profile, if missing)
#   FUZZ_SANITIZER=address          address (needs nightly) or none (about 3.5x more exec/s)
#   FUZZ_DRIVER=auto                auto, cargo-fuzz, or plain (cargo build + run the binary)
#   CARGO_FUZZ_VERSION=0.13.2       cargo-fuzz version installed when none is on PATH
#
# Needs: rustup, a C++ compiler (libfuzzer-sys builds libFuzzer), crates.io.
# Preferred set-up: nightly + cargo-fuzz, AddressSanitizer on. Fallbacks, each announced
# loudly: no nightly -> the pinned stable toolchain with `--sanitizer none` (still
# coverage-guided libFuzzer, debug assertions and overflow checks on; only ASan is lost,
# and the core has one justified unsafe block, in validate.rs); no cargo-fuzz -> the same build done with plain cargo
# and cargo-fuzz's RUSTFLAGS, and the libFuzzer binary run directly.
#
# The committed seed corpus (core/fuzz/corpus/<target>/) is only read: libFuzzer works on a
# copy in a temporary directory, so the repository stays clean. Build output goes to
# core/fuzz/target/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
FUZZ_DIR=$ROOT/core/fuzz

FUZZ_SECONDS=${FUZZ_SECONDS:-}
FUZZ_TARGETS=${FUZZ_TARGETS:-parse_validate agi_session ami_session range}
FUZZ_TOOLCHAIN=${FUZZ_TOOLCHAIN:-nightly}
FUZZ_SANITIZER=${FUZZ_SANITIZER:-address}
FUZZ_DRIVER=${FUZZ_DRIVER:-auto}
CARGO_FUZZ_VERSION=${CARGO_FUZZ_VERSION:-0.13.2}

case $FUZZ_SECONDS in
  '') ;;
  *[!0-9]*) echo "fuzz.sh: FUZZ_SECONDS must be a whole number of seconds, not '$FUZZ_SECONDS'" >&2; exit 2 ;;
esac

say() { echo "fuzz.sh: $*"; }
# Seconds of fuzzing for a target: FUZZ_SECONDS when set, else the CI budget's share. The
# AMI session is the slowest per input (whole call transcripts); range is tiny.
seconds_for() {
  if [ -n "$FUZZ_SECONDS" ]; then echo "$FUZZ_SECONDS"; return; fi
  case $1 in
    ami_session) echo 60 ;;
    range) echo 15 ;;
    *) echo 45 ;;
  esac
}
loud() {
  echo "fuzz.sh: ################################################################"
  local line
  for line in "$@"; do echo "fuzz.sh: ## $line"; done
  echo "fuzz.sh: ################################################################"
}

# --- toolchain ---------------------------------------------------------------------------
# TC: the toolchain to fuzz with; empty = the pinned one of rust-toolchain.toml (stable).
TC=""
SANITIZER=$FUZZ_SANITIZER
if RUSTUP_AUTO_INSTALL=0 rustup run "$FUZZ_TOOLCHAIN" rustc --version >/dev/null 2>&1; then
  TC=$FUZZ_TOOLCHAIN
else
  say "no '$FUZZ_TOOLCHAIN' toolchain: installing it (minimal profile)"
  started=$(date +%s)
  if timeout 900 rustup toolchain install "$FUZZ_TOOLCHAIN" --profile minimal; then
    TC=$FUZZ_TOOLCHAIN
    say "installed $FUZZ_TOOLCHAIN in $(($(date +%s) - started)) s"
  else
    SANITIZER=none
    loud "NIGHTLY TOOLCHAIN UNAVAILABLE: 'rustup toolchain install $FUZZ_TOOLCHAIN' failed." \
      "FALLING BACK to the pinned stable toolchain with --sanitizer none:" \
      "still coverage-guided libFuzzer with debug assertions and overflow checks," \
      "but without AddressSanitizer."
  fi
fi
PLUS=${TC:++$TC} # `+nightly` for cargo, or nothing
rustc_() { if [ -n "$TC" ]; then rustup run "$TC" rustc "$@"; else rustc "$@"; fi; }
say "toolchain: $(rustc_ --version)"
HOST=$(rustc_ -vV | sed -n 's/^host: //p')

# --- cargo-fuzz --------------------------------------------------------------------------
# `cargo install` puts it in ~/.cargo/bin, which outlives the CI clone on the same machine,
# so only the first run on a machine pays for the build (about 50 s on 2 cores).
USE_CARGO_FUZZ=1
if [ "$FUZZ_DRIVER" = plain ]; then
  USE_CARGO_FUZZ=0
elif ! cargo fuzz --version >/dev/null 2>&1; then
  say "cargo-fuzz not found: cargo install cargo-fuzz --version $CARGO_FUZZ_VERSION --locked"
  started=$(date +%s)
  if timeout 1200 cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked; then
    say "installed cargo-fuzz in $(($(date +%s) - started)) s"
  elif [ "$FUZZ_DRIVER" = cargo-fuzz ]; then
    say "cargo-fuzz could not be installed and FUZZ_DRIVER=cargo-fuzz"
    exit 1
  else
    USE_CARGO_FUZZ=0
    loud "CARGO-FUZZ UNAVAILABLE: 'cargo install cargo-fuzz' failed." \
      "FALLING BACK to building the libFuzzer binary with plain cargo and cargo-fuzz's" \
      "instrumentation flags, and running it directly (same fuzzing, other driver)."
  fi
fi
if [ "$USE_CARGO_FUZZ" = 1 ]; then
  DRIVER="$(cargo fuzz --version)"
else
  DRIVER="plain cargo + libFuzzer binary"
fi
say "driver: $DRIVER"

# --- build -------------------------------------------------------------------------------
build() { # target
  local target=$1
  if [ "$USE_CARGO_FUZZ" = 1 ]; then
    # shellcheck disable=SC2086 # $PLUS is empty or one word
    (cd "$FUZZ_DIR" && cargo $PLUS fuzz build --sanitizer "$SANITIZER" "$target")
  else
    # What cargo-fuzz 0.13 passes; --target keeps build scripts and proc macros uninstrumented.
    local flags="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4"
    flags+=" -Cllvm-args=-sanitizer-coverage-inline-8bit-counters"
    flags+=" -Cllvm-args=-sanitizer-coverage-pc-table"
    flags+=" -Cllvm-args=-sanitizer-coverage-trace-compares"
    flags+=" -Cdebug-assertions -Coverflow-checks -Cforce-frame-pointers"
    [ "$SANITIZER" = address ] && flags+=" -Zsanitizer=address"
    # shellcheck disable=SC2086
    (cd "$FUZZ_DIR" && RUSTFLAGS="$flags" cargo $PLUS build --release --target "$HOST" --bin "$target")
  fi
}

# --- run ---------------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/click2dial-fuzz.XXXXXX")
KEEP_WORK=0
trap '[ "$KEEP_WORK" = 1 ] || rm -rf "$WORK"' EXIT

failed=0
total_runs=0
summary=()
for target in $FUZZ_TARGETS; do
  seeds=$FUZZ_DIR/corpus/$target
  corpus=$WORK/$target/corpus
  artifacts=$WORK/$target/artifacts/
  log=$WORK/$target/libfuzzer.log
  mkdir -p "$corpus" "$artifacts"
  if [ -d "$seeds" ]; then cp -R "$seeds/." "$corpus/"; fi
  seed_count=$(find "$corpus" -type f | wc -l)

  say "== $target: build (sanitizer: $SANITIZER) =="
  started=$(date +%s)
  build "$target"
  say "$target: built in $(($(date +%s) - started)) s"

  seconds=$(seconds_for "$target")
  dict=$FUZZ_DIR/$target.dict # tokens of the target's input format
  [ -f "$dict" ] || dict=$FUZZ_DIR/parse_validate.dict
  libfuzzer_args=(
    -max_total_time="$seconds"
    -dict="$dict"
    -artifact_prefix="$artifacts"
    -timeout=10
    -rss_limit_mb=2048
    -print_final_stats=1
  )
  say "== $target: fuzzing for $seconds s from $seed_count seeds (working corpus $corpus) =="
  # libFuzzer stops itself after $seconds; `timeout` is only a safety net.
  limit=$((seconds + 600))
  set +e
  if [ "$USE_CARGO_FUZZ" = 1 ]; then
    replay="(cd core/fuzz && cargo ${PLUS:+$PLUS }fuzz run --sanitizer $SANITIZER $target FILE)"
    # shellcheck disable=SC2086
    (cd "$FUZZ_DIR" && timeout "$limit" cargo $PLUS fuzz run --sanitizer "$SANITIZER" "$target" "$corpus" -- "${libfuzzer_args[@]}") >"$log" 2>&1
  else
    replay="core/fuzz/target/$HOST/release/$target FILE"
    timeout "$limit" "$FUZZ_DIR/target/$HOST/release/$target" "${libfuzzer_args[@]}" "$corpus" >"$log" 2>&1
  fi
  rc=$?
  set -e

  # The log without per-input progress lines, stack frames and the recommended dictionary.
  noise='^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)|# Uses: |^[[:space:]]+NEW_FUNC|^[[:space:]]+#[0-9]+ 0x'
  runs=$(sed -n 's/^Done \([0-9]*\) runs in .*/\1/p' "$log" | tail -n 1)
  [ -n "$runs" ] || runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
  secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
  corpus_after=$(find "$corpus" -type f | wc -l)
  total_runs=$((total_runs + ${runs:-0}))

  if [ "$rc" -eq 0 ]; then
    grep -v -E "$noise" "$log" | tail -n 15 || true
    rate=""
    if [ -n "$runs" ] && [ -n "$secs" ] && [ "$secs" -gt 0 ]; then rate=" ($((runs / secs)) exec/s)"; fi
    summary+=("$target: no crash; Done ${runs:-?} runs in ${secs:-?} s$rate; corpus $seed_count -> $corpus_after inputs")
    continue
  fi

  failed=1
  KEEP_WORK=1
  loud "FUZZ FAILURE in $target (exit $rc): the core panicked, broke an invariant, hung or" \
    "ran out of memory. The report and the input follow; full log: $log"
  grep -v -E "$noise" "$log" |
    sed -n '/panicked at\|ERROR: libFuzzer\|ERROR: AddressSanitizer\|ALARM: working on the last\|out-of-memory/,$p' |
    head -n 80 || true
  if [ "$rc" -eq 124 ]; then say "libFuzzer did not stop within $limit s: killed by timeout"; fi
  for artifact in "$artifacts"*; do
    [ -f "$artifact" ] || continue
    say "input $(basename "$artifact") ($(wc -c <"$artifact") bytes), base64:"
    base64 -w 0 "$artifact"
    echo
    say "hex dump:"
    od -A d -t x1z -v "$artifact" | head -n 64
    say "replay: save it (base64 -d) as FILE, then: $replay"
  done
  summary+=("$target: FAILED (exit $rc) after ${runs:-?} executions; inputs kept in $artifacts")
done

for line in "${summary[@]}"; do say "$line"; done
if [ "$failed" -ne 0 ]; then
  say "fuzzing FAILED: $total_runs executions in all (sanitizer: $SANITIZER; driver: $DRIVER)"
  exit 1
fi
say "fuzzing passed: $total_runs executions in all, no crash (sanitizer: $SANITIZER; driver: $DRIVER)"
