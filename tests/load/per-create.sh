#!/usr/bin/env bash
# The host's cost per create in counts that do not move with the machine's load (CI runs
# MODE=instructions 1 s on the debug build, a smoke test): user-space instructions
# (callgrind) and system calls (perf's raw_syscalls tracepoint, and strace's table of them
# by name), each divided by the creates answered `202` in the same run. The set-up is
# load.sh's (redis-server, the PBX simulator, wrk with tests/load/post.lua), at a fixed
# number of connections.
#
#   bash tests/load/per-create.sh                  # both; CONNECTIONS=8 DURATION=10
#   MODE=instructions bash tests/load/per-create.sh
#   MODE=syscalls HOST_BIN=/tmp/base/click2dial-host bash tests/load/per-create.sh
#
# HOST_BIN (common.sh) runs another build of the host, a baseline, against the same rest.
# Calls still in flight when wrk stops are let finish (SETTLE seconds) before the counts
# are read, so each create is counted with its notifications.
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${DURATION:-10}
connections=${CONNECTIONS:-8}
settle=${SETTLE:-3}
mode=${MODE:-both}
source tests/load/common.sh
if [ "$mode" != syscalls ]; then
  command -v valgrind >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind; }
fi
if [ "$mode" != instructions ]; then
  command -v strace >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace; }
fi

start_redis
start_sim 0.01

creates() { # $1 = run_wrk's line → the creates answered 202
  awk '{ print $5 - $4 }' <<<"$1"
}

printf '== host cost per create (%s, %d connections, %s s) ==\n' "$host_bin" "$connections" "$duration"

if [ "$mode" = both ] || [ "$mode" = instructions ]; then
  read -r addr pid < <(start_host callgrind valgrind --tool=callgrind --callgrind-out-file="$work/cg.out")
  pids+=("$pid")
  export WRK_PREFIX=cg$$
  run_wrk "$addr" 2 0 >/dev/null # warm: connections, caches, the scripts in Redis
  sleep "$settle"
  callgrind_control -z "$pid" >/dev/null
  line=$(run_wrk "$addr" "$connections" 0)
  sleep "$settle"
  callgrind_control -d "$pid" >/dev/null
  [ -z "${CALLGRIND_KEEP:-}" ] || cp "$work"/cg.out.* "$CALLGRIND_KEEP"
  n=$(creates "$line")
  total=$(for f in "$work"/cg.out*; do callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'; done | sort -n | tail -1)
  awk -v t="$total" -v n="$n" 'BEGIN { printf "instructions per create: %.1fk (%d creates, %d instructions)\n", t / n / 1000, n, t }'
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
fi

if [ "$mode" = both ] || [ "$mode" = syscalls ]; then
  read -r addr pid < <(start_host plain)
  pids+=("$pid")
  export WRK_PREFIX=sc$$
  run_wrk "$addr" 2 0 >/dev/null
  # perf: the count alone, at a tracepoint's cost.
  perf stat -e raw_syscalls:sys_enter -p "$pid" -o "$work/perf.txt" &
  perf_pid=$!
  line=$(run_wrk "$addr" "$connections" 0)
  sleep "$settle"
  kill -INT "$perf_pid"
  wait "$perf_pid" 2>/dev/null || true
  n=$(creates "$line")
  calls=$(awk '/raw_syscalls:sys_enter/ { gsub(",", "", $1); print $1 }' "$work/perf.txt")
  awk -v c="$calls" -v n="$n" -v r="$(awk '{ print $1 }' <<<"$line")" 'BEGIN { printf "system calls per create (perf): %.2f (%d creates, %.0f req/s)\n", c / n, n, r }'
  # strace: by name (it slows the host, so the batching differs from the perf run's).
  strace -c -f -p "$pid" -o "$work/strace.txt" &
  strace_pid=$!
  sleep 1
  line=$(run_wrk "$addr" "$connections" 0)
  sleep "$settle"
  kill -INT "$strace_pid"
  wait "$strace_pid" 2>/dev/null || true
  n=$(creates "$line")
  printf 'system calls per create by name (strace, %d creates):\n' "$n"
  awk -v n="$n" '$4 ~ /^[0-9]+$/ && $NF ~ /^[a-z_0-9]+$/ && $NF != "total" {
      printf "  %-16s %6.2f\n", $NF, $4 / n }' "$work/strace.txt" | sort -k2 -nr | head -12
  kill "$pid" 2>/dev/null || true
fi
