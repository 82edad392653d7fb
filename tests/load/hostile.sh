#!/usr/bin/env bash
# Memory of the host under hostile, unauthenticated traffic (CI runs the script on the
# debug build as a smoke test; the same tests run in CI's e2e binary, with looser bounds).
#
# Builds the release host and runs security::resources (e2e binary) against it with real
# redis-server and pbx-sim: 20,000 requests with made-up methods and paths over 8
# keep-alive connections, then 2,000 connections that each send half a request head
# (8 KiB). Prints the host's RSS before and after each, how many half-open connections the
# host held, and the size of /metrics afterwards.
#
#   bash tests/load/hostile.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v redis-server >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; }
# LOAD_PROFILE=debug (CI's smoke run) uses the debug builds the tests made; figures need release.
release=(--release)
[ "${LOAD_PROFILE:-release}" = debug ] && release=()
cargo build "${release[@]}" -q -p click2dial-host --bin click2dial-host
C2D_HOSTILE_REPORT=1 cargo test "${release[@]}" -q -p click2dial-tests --test e2e \
  security::resources -- --nocapture --test-threads 1 2>/dev/null | grep -oE '(hostile requests|half-open connections|symlink race|redis (hung|down)):.*|test result.*'
